#!/usr/bin/env bash
# Prints the path of kwok (sigs.k8s.io/kwok: fake nodes, and pods on them that
# turn Ready without containers), built from its Go module on first use, and
# writes beside it stages.yaml: kwokctl's default stages (node initialize and
# heartbeat with a Lease; pod ready, complete and delete), from the same module.
# Usage: kwok=$(hack/kwok.sh); "$kwok" --config "$(dirname "$kwok")/stages.yaml" ...
set -euo pipefail
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
bin=$("$(dirname "$0")/go-tool.sh" kwok sigs.k8s.io/kwok cmd/kwok "$KWOK_VERSION")
dir=$(dirname "$bin")
if [[ ! -s "$dir/stages.yaml" ]]; then
  src=$(cat "$dir/.module-dir")/kustomize/stage
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$src/$f"
  done >"$dir/stages.yaml.tmp"
  mv "$dir/stages.yaml.tmp" "$dir/stages.yaml"
fi
echo "$bin"
