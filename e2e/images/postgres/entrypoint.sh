#!/bin/bash
# Entrypoint of mcp-e2e/postgres:15 (Debian's PostgreSQL 15).
# First start: initdb in $PGDATA with the superuser password from
# $POSTGRES_PASSWORD, then postgres listens on 0.0.0.0:5432 with
# scram-sha-256 host auth. Later starts reuse the data (a PV survives pod
# kills; a kill -9 of postgres is recovered by postgres itself on restart).
# Started as root it fixes ownership of $PGDATA and drops to postgres
# (uid 999); started as uid 999 it runs directly.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
export PGDATA="${PGDATA:-/var/lib/postgresql/data/pgdata}"
export PATH="$PGBIN:$PATH"

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" "$(dirname "$PGDATA")" /var/run/postgresql 2>/dev/null || \
    chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

mkdir -p "$PGDATA" 2>/dev/null || true
chmod 700 "$PGDATA" 2>/dev/null || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "entrypoint: POSTGRES_PASSWORD must be set for the first start" >&2
    exit 1
  fi
  echo "entrypoint: initialising $PGDATA"
  # A half-done initdb (killed mid-way) leaves files but no PG_VERSION.
  find "$PGDATA" -mindepth 1 -delete
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    echo "port = 5432"
    echo "unix_socket_directories = '/var/run/postgresql'"
    echo "password_encryption = 'scram-sha-256'"
    echo "max_connections = ${POSTGRES_MAX_CONNECTIONS:-200}"
    echo "shared_buffers = 64MB"
    echo "jit = off"
    echo "fsync = ${POSTGRES_FSYNC:-on}"
    echo "log_destination = 'stderr'"
    echo "logging_collector = off"
  } >> "$PGDATA/postgresql.conf"
  {
    echo "host all all 0.0.0.0/0 scram-sha-256"
    echo "host all all ::/0 scram-sha-256"
  } >> "$PGDATA/pg_hba.conf"
  if [ -n "${POSTGRES_DB:-}" ] && [ "${POSTGRES_DB}" != postgres ]; then
    postgres --single -D "$PGDATA" -c listen_addresses='' postgres \
      <<<"CREATE DATABASE \"$POSTGRES_DB\";" >/dev/null
  fi
  echo "entrypoint: initialised"
fi

# A postmaster.pid left by a killed postgres in the same PV is handled by
# postgres itself (it checks whether the pid is alive).
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
if [ "$$" != 1 ]; then
  exec "$@"
fi
# As PID 1, stay a small init: the postmaster is a child, so `kill -9` of it
# (e.g. `pkill -KILL -o -x postgres` in the container) ends the container
# and the kubelet restarts it, while PID 1 itself cannot be SIGKILLed from
# inside. SIGTERM from the kubelet becomes a fast shutdown (SIGINT).
"$@" &
child=$!
trap 'kill -INT "$child" 2>/dev/null || true' TERM INT
trap 'kill -QUIT "$child" 2>/dev/null || true' QUIT
while :; do
  rc=0
  wait "$child" || rc=$?
  if ! kill -0 "$child" 2>/dev/null; then
    echo "entrypoint: postgres exited with status $rc" >&2
    exit "$rc"
  fi
done
