#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, from
# the npm registry, pinned in e2e/workload/conformance/package-lock.json)
# against the bundled workload server (mcp-workload-server) on loopback:
#   legacy     0.1.16's server scenarios, server with MCP_ERAS=both
#   2026-07-28 0.2.0-alpha.12 --requirements 2026-07-28, MCP_ERAS=both
#   2026-only  the same, MCP_ERAS=2026 (no initialize, no ping, no sessions)
# and its client scenarios against the operator's prober (the `mcpcheck`
# binary: one check of mcp_operator::mcpcheck::Checker, the URL as $1):
#   client-legacy     0.1.16's client scenarios
#   client-2026-07-28 0.2.0-alpha.12's
# Only the scenarios a health prober should pass are run (`client:` rows of
# the table with `pass`); the others are listed as n/a with the reason.
# Each scenario's expectation and, where one does not apply, why, is in
# e2e/workload/conformance/scenarios.tsv: `pass` (no failed check),
# `pass-except` (only the listed checks may fail) or `n/a` (reported only).
# Writes conformance.json and conformance.md to CONFORMANCE_OUT (default
# target/conformance). Exits 1 when a scenario that should pass fails, or a
# scenario the table does not know fails.
#
# Node 22 (the suite needs fs.globSync) comes from the npm `node` package,
# installed with the suite under $MCP_CACHE/conformance (npm ci, once per
# lock file). MCP_WORKLOAD_SERVER=<binary> and MCP_CHECK_BIN=<binary> skip
# the cargo builds.
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

check_bin=${MCP_CHECK_BIN:-}
if [[ -z "$check_bin" ]]; then
  cargo build -p mcp-operator --bin mcpcheck --locked -q >&2
  check_bin=$CARGO_TARGET_DIR/debug/mcpcheck
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

# The client scenarios the table expects the prober to pass, one at a time:
# the suite starts its own server and runs the prober against it. Every
# other client scenario the suite lists becomes an n/a row.
run_client() { # label suite-entry
  local label=$1 entry=$2 scenario
  mkdir -p "$out/raw/$label"
  "$node" "$entry" list --client >"$out/raw/$label.list" 2>&1 || true
  for scenario in $(sed -nE 's/^client:([^\t]+)\tpass.*/\1/p' "$pkg/scenarios.tsv"); do
    grep -qE "^  - $scenario( |$)" "$out/raw/$label.list" || continue
    log "$label: client scenario $scenario against the prober ($check_bin)"
    local rc=0
    "$node" "$entry" client --command "$check_bin" --scenario "$scenario" \
      -o "$out/raw/$label" >>"$out/raw/$label.log" 2>&1 || rc=$?
    echo "$rc" >"$out/raw/$label.$scenario.exit"
  done
}
run_client client-legacy "$suite_legacy"
run_client client-2026-07-28 "$suite_2026"

OUT=$out TABLE=$pkg/scenarios.tsv "$node" - <<'EOF'
const fs = require("fs"), path = require("path");
const out = process.env.OUT;
const table = new Map();
for (const line of fs.readFileSync(process.env.TABLE, "utf8").split("\n")) {
  if (!line.trim() || line.startsWith("#")) continue;
  const [scenario, expect, except, reason] = line.split("\t");
  table.set(scenario, { expect, except: except === "-" ? [] : except.split(","), reason });
}
// Client rows are keyed `client:<scenario>`; `client:auth/*` covers a family.
const lookup = (key) => table.get(key) || table.get(key.replace(/\/[^/]*$/, "/*")) ||
  { expect: "unknown", except: [], reason: "not in e2e/workload/conformance/scenarios.tsv: classify it" };
const runs = [["legacy", "both", "server"], ["2026-07-28", "both", "server"], ["2026-only", "2026", "server"],
  ["client-legacy", "-", "client"], ["client-2026-07-28", "-", "client"]];
const rows = [];
for (const [run, eras, side] of runs) {
  const dir = path.join(out, "raw", run);
  const dirs = fs.existsSync(dir) ? fs.readdirSync(dir).filter((d) => fs.statSync(path.join(dir, d)).isDirectory()).sort() : [];
  if (dirs.length === 0) rows.push({ run, side, eras, scenario: "(none)", passed: 0, failed: 1, status: "failed",
    expect: "pass", verdict: "FAILED", reason: `the suite wrote no results: see raw/${run}.log`, failed_checks: [] });
  const ran = new Set();
  for (const d of dirs) {
    const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
    ran.add(scenario);
    let checks = [];
    try { checks = JSON.parse(fs.readFileSync(path.join(dir, d, "checks.json"), "utf8")); } catch (e) {
      checks = [{ id: "checks.json", status: "FAILURE" }];
    }
    // A client that exits non-zero, or passes no check, did not pass: the
    // suite writes no failed check for a client that gave up.
    if (side === "client") {
      const exit = path.join(out, "raw", `${run}.${scenario}.exit`);
      const rc = fs.existsSync(exit) ? fs.readFileSync(exit, "utf8").trim() : "?";
      if (rc !== "0") checks.push({ id: `suite-exit-${rc}`, status: "FAILURE" });
      if (!checks.some((c) => c.status === "SUCCESS")) checks.push({ id: "no-check-passed", status: "FAILURE" });
    }
    const failedChecks = checks.filter((c) => c.status === "FAILURE").map((c) => c.id);
    const passed = checks.filter((c) => c.status === "SUCCESS").length;
    const t = side === "client" ? lookup(`client:${scenario}`) : lookup(scenario);
    let verdict;
    if (t.expect === "n/a") verdict = "n/a";
    else if (t.expect === "pass") verdict = failedChecks.length === 0 ? "ok" : "FAILED";
    else if (t.expect === "pass-except") verdict = failedChecks.every((c) => t.except.includes(c)) ? "ok" : "FAILED";
    else verdict = failedChecks.length === 0 ? "ok" : "FAILED";
    rows.push({ run, side, eras, scenario, passed, failed: failedChecks.length,
      status: failedChecks.length === 0 ? "passed" : "failed", expect: t.expect, verdict,
      reason: t.reason, failed_checks: failedChecks });
  }
  // The client scenarios the suite lists and the prober is not run against.
  const list = path.join(out, "raw", `${run}.list`);
  if (side === "client" && fs.existsSync(list)) {
    for (const m of fs.readFileSync(list, "utf8").matchAll(/^  - (\S+)/gm)) {
      if (ran.has(m[1])) continue;
      const t = lookup(`client:${m[1]}`);
      const verdict = t.expect === "n/a" ? "n/a" : "FAILED";
      rows.push({ run, side, eras, scenario: m[1], passed: 0, failed: 0, status: "not run", expect: t.expect,
        verdict, reason: verdict === "n/a" ? t.reason : `not run: ${t.reason}`, failed_checks: [] });
    }
  }
}
const bad = rows.filter((r) => r.verdict === "FAILED");
fs.writeFileSync(path.join(out, "conformance.json"), JSON.stringify({ rows, failed: bad.length }, null, 2) + "\n");
const md = ["| run | side | server MCP_ERAS | scenario | checks passed | checks failed | status | expected | verdict | why |",
  "| --- | --- | --- | --- | ---: | ---: | --- | --- | --- | --- |"];
for (const r of rows) md.push(`| ${r.run} | ${r.side} | ${r.eras} | ${r.scenario} | ${r.passed} | ${r.failed} | ${r.status} | ${r.expect} | ${r.verdict} | ${r.reason.replace(/\|/g, "/")} |`);
fs.writeFileSync(path.join(out, "conformance.md"), md.join("\n") + "\n");
const applicable = rows.filter((r) => r.verdict !== "n/a");
console.log(`conformance: ${applicable.length - bad.length} passed, ${bad.length} failed (${rows.length - applicable.length} scenarios not applicable; ${path.join(out, "conformance.md")})`);
for (const r of bad) console.log(`conformance ${r.run}: FAILED ${r.scenario}: ${r.failed_checks.join(", ")} (${r.reason})`);
process.exit(bad.length ? 1 : 0);
EOF
