#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, from
# the npm registry, pinned in e2e/workload/conformance/package-lock.json)
# against the bundled workload server (mcp-workload-server) on loopback:
#   legacy     0.1.16's server scenarios, server with MCP_ERAS=both
#   2026-07-28 0.2.0-alpha.12 --requirements 2026-07-28, MCP_ERAS=both
#   2026-only  the same, MCP_ERAS=2026 (no initialize, no ping, no sessions)
# Each scenario's expectation and, where one does not apply, why, is in
# e2e/workload/conformance/scenarios.tsv: `pass` (no failed check),
# `pass-except` (only the listed checks may fail) or `n/a` (reported only).
# Writes conformance.json and conformance.md to CONFORMANCE_OUT (default
# target/conformance). Exits 1 when a scenario that should pass fails, or a
# scenario the table does not know fails.
#
# Node 22 (the suite needs fs.globSync) comes from the npm `node` package,
# installed with the suite under $MCP_CACHE/conformance (npm ci, once per
# lock file). MCP_WORKLOAD_SERVER=<binary> skips the cargo build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../e2e/cluster/local/versions.sh
. e2e/cluster/local/versions.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MCP_CACHE/target}
log() { printf '[%(%H:%M:%S)T] conformance: %s\n' -1 "$*" >&2; }

pkg=e2e/workload/conformance
cache=${CONFORMANCE_DIR:-$MCP_CACHE/conformance}
out=${CONFORMANCE_OUT:-target/conformance}

# Install (idempotent: again only when the lock file changed).
mkdir -p "$cache"
stamp=$(sha256sum "$pkg/package-lock.json" | cut -d' ' -f1)
if [[ "$(cat "$cache/.installed" 2>/dev/null)" != "$stamp" || ! -x "$cache/node_modules/.bin/node" ]]; then
  log "installing the pinned suite and Node 22 into $cache (npm ci)"
  cp "$pkg/package.json" "$pkg/package-lock.json" "$cache/"
  (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$stamp" >"$cache/.installed"
fi
node=$cache/node_modules/.bin/node
suite_legacy=$cache/node_modules/@modelcontextprotocol/conformance/dist/index.js
suite_2026=$cache/node_modules/conformance-2026/dist/index.js
log "node $("$node" --version), suites $("$node" "$suite_legacy" --version) and $("$node" "$suite_2026" --version)"

server_bin=${MCP_WORKLOAD_SERVER:-}
if [[ -z "$server_bin" ]]; then
  cargo build -p mcp-workload --bin mcp-workload-server --locked -q >&2
  server_bin=$CARGO_TARGET_DIR/debug/mcp-workload-server
fi

rm -rf "$out"
mkdir -p "$out/raw"
server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

free_port() {
  "$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# The server needs a DATABASE_URL but none of the scenarios reaches the
# database (discover, initialize, ping, tools/list): it points at a closed port.
start_server() { # eras
  local port
  port=$(free_port)
  env -i PATH="$PATH" DATABASE_URL=postgres://conformance@127.0.0.1:1/none \
    BIND_ADDRESS=127.0.0.1 PORT="$port" MCP_ERAS="$1" LOG_FORMAT=text RUST_LOG=warn \
    "$server_bin" >>"$out/raw/server-$1.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      url=http://127.0.0.1:$port/mcp
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  log "the server (MCP_ERAS=$1) did not listen on $port; its log:"
  cat "$out/raw/server-$1.log" >&2
  exit 1
}

run() { # label eras suite-entry args...
  local label=$1 eras=$2 entry=$3
  shift 3
  start_server "$eras"
  log "$label: suite $("$node" "$entry" --version) against $url (MCP_ERAS=$eras)"
  # The suite's exit code counts every scenario, applicable or not: the
  # verdict is ours, from its checks.json files.
  "$node" "$entry" server --url "$url" "$@" -o "$out/raw/$label" >"$out/raw/$label.log" 2>&1 || true
  stop_server
}

run legacy both "$suite_legacy"
run 2026-07-28 both "$suite_2026" --requirements 2026-07-28
run 2026-only 2026 "$suite_2026" --requirements 2026-07-28

OUT=$out TABLE=$pkg/scenarios.tsv "$node" - <<'EOF'
const fs = require("fs"), path = require("path");
const out = process.env.OUT;
const table = new Map();
for (const line of fs.readFileSync(process.env.TABLE, "utf8").split("\n")) {
  if (!line.trim() || line.startsWith("#")) continue;
  const [scenario, expect, except, reason] = line.split("\t");
  table.set(scenario, { expect, except: except === "-" ? [] : except.split(","), reason });
}
const runs = [["legacy", "both"], ["2026-07-28", "both"], ["2026-only", "2026"]];
const rows = [];
for (const [run, eras] of runs) {
  const dir = path.join(out, "raw", run);
  const dirs = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  if (dirs.length === 0) rows.push({ run, eras, scenario: "(none)", passed: 0, failed: 1, status: "failed",
    expect: "pass", verdict: "FAILED", reason: `the suite wrote no results: see raw/${run}.log`, failed_checks: [] });
  for (const d of dirs) {
    const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
    let checks = [];
    try { checks = JSON.parse(fs.readFileSync(path.join(dir, d, "checks.json"), "utf8")); } catch (e) {
      checks = [{ id: "checks.json", status: "FAILURE" }];
    }
    const failedChecks = checks.filter((c) => c.status === "FAILURE").map((c) => c.id);
    const passed = checks.filter((c) => c.status === "SUCCESS").length;
    const t = table.get(scenario) || { expect: "unknown", except: [], reason: "not in e2e/workload/conformance/scenarios.tsv: classify it" };
    let verdict;
    if (t.expect === "n/a") verdict = "n/a";
    else if (t.expect === "pass") verdict = failedChecks.length === 0 ? "ok" : "FAILED";
    else if (t.expect === "pass-except") verdict = failedChecks.every((c) => t.except.includes(c)) ? "ok" : "FAILED";
    else verdict = failedChecks.length === 0 ? "ok" : "FAILED";
    rows.push({ run, eras, scenario, passed, failed: failedChecks.length,
      status: failedChecks.length === 0 ? "passed" : "failed", expect: t.expect, verdict,
      reason: t.reason, failed_checks: failedChecks });
  }
}
const bad = rows.filter((r) => r.verdict === "FAILED");
fs.writeFileSync(path.join(out, "conformance.json"), JSON.stringify({ rows, failed: bad.length }, null, 2) + "\n");
const md = ["| run | server MCP_ERAS | scenario | checks passed | checks failed | status | expected | verdict | why |",
  "| --- | --- | --- | ---: | ---: | --- | --- | --- | --- |"];
for (const r of rows) md.push(`| ${r.run} | ${r.eras} | ${r.scenario} | ${r.passed} | ${r.failed} | ${r.status} | ${r.expect} | ${r.verdict} | ${r.reason.replace(/\|/g, "/")} |`);
fs.writeFileSync(path.join(out, "conformance.md"), md.join("\n") + "\n");
const applicable = rows.filter((r) => r.verdict !== "n/a");
console.log(`conformance: ${applicable.length - bad.length} passed, ${bad.length} failed (${rows.length - applicable.length} scenarios not applicable; ${path.join(out, "conformance.md")})`);
for (const r of bad) console.log(`conformance ${r.run}: FAILED ${r.scenario}: ${r.failed_checks.join(", ")} (${r.reason})`);
process.exit(bad.length ? 1 : 0);
EOF
