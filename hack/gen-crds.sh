#!/usr/bin/env bash
# Regenerate the committed CRD files from the Rust types.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --locked --quiet --bin crdgen > crds/mcp.operator.dev_mcpservers.yaml
cp crds/mcp.operator.dev_mcpservers.yaml charts/mcp-operator/crds/mcp.operator.dev_mcpservers.yaml
echo "CRDs regenerated" >&2
