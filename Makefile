# The two commands: `make demo` and `make test`. Everything else is a helper.
SHELL := /usr/bin/env bash
.PHONY: demo test soak bench-scale unit lint crds helm-lint e2e cluster-up cluster-down build

## Run the demo: a cluster (the local one; KUBECONFIG of your own needs IMAGE_REPOSITORY), the operator, Postgres killed once (S1), the report.
demo:
	e2e/demo.sh

## Run every test: fmt/clippy-clean code, unit, API-server and Postgres integration tests, the e2e suite.
test:
	hack/test-all.sh

## Not in CI: S1 and S2 alternately 100 times; first-success p50/p95/p99/max, lost writes, restarts.
soak:
	e2e/run-e2e.sh --scenarios SOAK

## Not in CI (N=50 of it is): N = 100, 1,000, 3,000 McpServers on kwok nodes beside ToolHive's operator; bench/scale/report.md.
bench-scale:
	bench/scale/run.sh

unit:
	cargo test --workspace --locked --lib

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

crds:
	hack/gen-crds.sh

helm-lint:
	hack/helm-lint.sh
	hack/check-install.sh

build:
	cargo build --release --locked -p mcp-operator -p mcp-workload -p mcp-e2e

cluster-up:
	e2e/cluster/local/up.sh

cluster-down:
	e2e/cluster/local/down.sh

e2e:
	e2e/run-suite.sh
