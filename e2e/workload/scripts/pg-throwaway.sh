#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the mcp-workload tests and benchmark.
#
#   pg-throwaway.sh start  [DIR] [PORT]  initdb (password auth) + start; prints DATABASE_URL
#   pg-throwaway.sh kill   [DIR]         pg_ctl stop -m immediate (simulated crash)
#   pg-throwaway.sh resume [DIR]         start again without waiting (tests poll for readiness)
#   pg-throwaway.sh restart-wait [DIR]   start again and wait until accepting
#   pg-throwaway.sh status [DIR]
#   pg-throwaway.sh stop   [DIR]         stop and delete DIR (only if this script created it)
#
# DIR defaults to $PG_THROWAWAY_DIR or ${TMPDIR:-/tmp}/mcp-workload-pg, PORT to
# $PG_THROWAWAY_PORT or 55432. Listens on 127.0.0.1 only. The password is
# random unless PG_THROWAWAY_PASSWORD is set. PostgreSQL binaries come from
# $PG_BIN, else the newest /usr/lib/postgresql/*/bin. When run as root the
# server runs as the `postgres` user (or `nobody`), since PostgreSQL refuses root.
# Nothing outside DIR is touched; `stop` refuses to delete a DIR without the
# marker file this script writes.
set -euo pipefail

cmd=${1:-}
dir=${2:-${PG_THROWAWAY_DIR:-${TMPDIR:-/tmp}/mcp-workload-pg}}
port=${3:-${PG_THROWAWAY_PORT:-55432}}
marker="$dir/.mcp-workload-throwaway"

find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  echo "pg-throwaway: PostgreSQL binaries not found; install postgresql (apt-get install postgresql-15) or set PG_BIN" >&2
  exit 127
}

run_as() {
  if [[ $(id -u) -eq 0 ]]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

owner_fix() {
  if [[ $(id -u) -eq 0 ]]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    chown -R "$user" "$@"
  fi
}

bin=$(find_bin)

case "$cmd" in
  start)
    if [[ -e "$dir" && ! -e "$marker" ]]; then
      echo "pg-throwaway: $dir exists and was not created by this script; refusing to use it" >&2
      exit 1
    fi
    mkdir -p "$dir"
    touch "$marker"
    chmod 755 "$dir"
    password=${PG_THROWAWAY_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)}
    if [[ ! -d "$dir/data" ]]; then
      printf '%s\n' "$password" > "$dir/pwfile"
      chmod 600 "$dir/pwfile"
      owner_fix "$dir"
      run_as "$bin/initdb" -D "$dir/data" -U workload --pwfile="$dir/pwfile" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      printf '%s\n' "$port" > "$dir/port"
      owner_fix "$dir"
    fi
    port=$(cat "$dir/port")
    password=$(cat "$dir/pwfile")
    run_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    url="postgres://workload:${password}@127.0.0.1:${port}/postgres"
    printf 'export TEST_DATABASE_URL=%q\nexport PG_DATA_DIR=%q\nexport PG_BIN=%q\n' "$url" "$dir/data" "$bin" > "$dir/env"
    echo "DATABASE_URL=$url"
    ;;
  kill)
    run_as "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null
    ;;
  resume|restart-wait)
    port=$(cat "$dir/port")
    wait_flag=-W
    [[ "$cmd" == restart-wait ]] && wait_flag=-w
    run_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" $wait_flag -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    ;;
  status)
    run_as "$bin/pg_ctl" -D "$dir/data" status
    ;;
  stop)
    if [[ ! -e "$marker" ]]; then
      echo "pg-throwaway: $dir was not created by this script; not touching it" >&2
      exit 1
    fi
    run_as "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf -- "$dir"
    ;;
  *)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
