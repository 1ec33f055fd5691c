#!/usr/bin/env bash
# Fails when deploy/install.yaml differs from what hack/render-install.sh
# renders from the chart now. Fix: run hack/render-install.sh and commit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMMITTED="${ROOT}/deploy/install.yaml"

tmp="$(mktemp)"
trap 'rm -f "${tmp}"' EXIT

"${ROOT}/hack/render-install.sh" "${tmp}" 2>/dev/null

if [[ ! -f "${COMMITTED}" ]]; then
  echo "check-install: deploy/install.yaml is missing; run hack/render-install.sh" >&2
  exit 1
fi
if ! diff -u "${COMMITTED}" "${tmp}"; then
  echo "check-install: deploy/install.yaml is stale; run hack/render-install.sh and commit it" >&2
  exit 1
fi
echo "check-install: deploy/install.yaml is up to date" >&2
