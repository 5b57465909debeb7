#!/usr/bin/env bash
# The browser collaboration test once more, through nginx in front of a
# three-node cluster (deploy/local-cluster.sh, as `make cluster` runs it),
# so that what a proxy must pass for sockets to open (docs/operations.md,
# "Behind a proxy") cannot break unnoticed. Needs PostgreSQL and Redis (as
# `make test` starts them) and nginx (installed from Debian if missing).
#
#   web/e2e/cluster.sh        # from anywhere; QUIRE_BIN as for the e2e tests
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

port="$(free_port)"
base="$(free_port)"
schema="quire_e2e_cluster_$$"
log="$(mktemp -t quire-e2e-cluster.XXXXXX)"
export QUIRE_DATABASE_URL="${QUIRE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

cluster=""
finish() {
  trap - EXIT INT TERM
  if [ -n "$cluster" ]; then
    kill -TERM "$cluster" 2>/dev/null || true
    wait "$cluster" 2>/dev/null || true
  fi
  psql -q "$QUIRE_DATABASE_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -f "$log"
}
trap finish EXIT INT TERM

QUIRE_BIN="$(realpath "${QUIRE_BIN:-target/debug/quire}")" \
  QUIRE_DATABASE_SCHEMA="$schema" NODES=3 BASE_PORT="$base" LISTEN="127.0.0.1:$port" \
  QUIRE_LOG=warn QUIRE_SERVE_ARGS="--insecure-fast-password-hashing --auth-burst 1000" \
  deploy/local-cluster.sh >"$log" 2>&1 &
cluster=$!

for _ in $(seq 1 600); do
  grep -q '^Quire cluster:' "$log" && break
  kill -0 "$cluster" 2>/dev/null || { cat "$log"; echo "the cluster did not start" >&2; exit 1; }
  sleep 0.1
done
grep -q '^Quire cluster:' "$log" || { cat "$log"; echo "the cluster did not start within 60 s" >&2; exit 1; }

cd web
QUIRE_E2E_URL="http://127.0.0.1:$port" \
  node --test --test-concurrency=1 --test-reporter=spec e2e/collaboration.test.mjs
