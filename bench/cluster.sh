#!/usr/bin/env bash
# Runs one quire-bench scenario against N Quire nodes on PostgreSQL and Redis,
# with the scenario's clients spread over the nodes (one --url per node), so
# a cluster's cross-node fan-out can be set beside the same load on one node.
#
#   bench/cluster.sh NODES SCENARIO [quire-bench options…]
#   bench/cluster.sh 3 fanout --docs 1 --clients 30 --writers 6 --rate 20 --duration 20
#   bench/cluster.sh 1 fanout --docs 1 --clients 30 --writers 6 --rate 20 --duration 20
#
# Every run gets a fresh PostgreSQL schema (dropped afterwards) and its own
# Redis channel prefix. The nodes are started directly (no nginx: the load
# balancer's hop is not what is measured) and stopped at the end. The
# scenario's JSON line goes to stdout, its table to stderr.
#
# Environment: QUIRE_BIN, QUIRE_BENCH_BIN (default: target/release/…, built
# if missing), QUIRE_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
# QUIRE_REDIS_URL (default redis://127.0.0.1:6379/), BASE_PORT (default 7521),
# SERVER_CPUS / BENCH_CPUS (taskset lists; default: not pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || { sed -n '2,18p' "$0"; exit 2; }
NODES="$1"; SCENARIO="$2"; shift 2

export QUIRE_DATABASE_URL="${QUIRE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export QUIRE_REDIS_URL="${QUIRE_REDIS_URL:-redis://127.0.0.1:6379/}"
run_id="bench_cluster_$$_$(date +%s)"
export QUIRE_DATABASE_SCHEMA="$run_id"
export QUIRE_REDIS_CHANNEL_PREFIX="$run_id"
BASE_PORT="${BASE_PORT:-7521}"

if [ -z "${QUIRE_BIN:-}" ] || [ -z "${QUIRE_BENCH_BIN:-}" ]; then
  cargo build --release -p quire-server -p quire-bench >&2
fi
QUIRE_BIN="${QUIRE_BIN:-${CARGO_TARGET_DIR:-target}/release/quire}"
QUIRE_BENCH_BIN="${QUIRE_BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/quire-bench}"
server_pin=(); [ -n "${SERVER_CPUS:-}" ] && server_pin=(taskset -c "$SERVER_CPUS")
bench_pin=(); [ -n "${BENCH_CPUS:-}" ] && bench_pin=(taskset -c "$BENCH_CPUS")

work="$(mktemp -d -t quire-bench-cluster.XXXXXX)"
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    for log in "$work"/node*.log; do echo "--- $log" >&2; tail -n 20 "$log" >&2; done
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$QUIRE_DATABASE_URL" -q -c "DROP SCHEMA IF EXISTS $run_id CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$QUIRE_BIN" migrate >&2
urls=()
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i - 1))
  "${server_pin[@]}" "$QUIRE_BIN" serve --listen "127.0.0.1:$port" --node-id "bench$i" \
    --data-dir "$work/node$i" --ws-connect-burst 100000 --max-connections-per-address 20000 \
    --max-documents-per-account 0 --max-account-bytes 0 \
    >"$work/node$i.out" 2>"$work/node$i.log" &
  pids+=($!)
  urls+=(--url "ws://127.0.0.1:$port/ws")
done
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i - 1))
  ready=""
  for _ in $(seq 1 300); do
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || break
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
  done
  [ -n "$ready" ] || { echo "node $i did not become ready:" >&2; cat "$work/node$i.log" >&2; exit 1; }
done

"${bench_pin[@]}" "$QUIRE_BENCH_BIN" "$SCENARIO" "${urls[@]}" \
  --account "bench@example.test:bench-password" "$@"
