#!/usr/bin/env bash
# A three-node Quire cluster behind nginx, on this machine's loopback, for
# trying scale-out:
#
#   deploy/local-cluster.sh          # builds, starts, prints the URL; Ctrl-C stops all
#
# Needs PostgreSQL on 127.0.0.1:5432 (database `test`, trust auth, as in CI)
# and Redis on 127.0.0.1:6379; nginx is installed from Debian if missing.
# Everything else is overridable:
#   QUIRE_DATABASE_URL   (default postgres://postgres@127.0.0.1:5432/test)
#   QUIRE_DATABASE_SCHEMA (default quire_local_cluster)
#   QUIRE_REDIS_URL      (default redis://127.0.0.1:6379/)
#   QUIRE_METRICS_TOKEN  (bearer token for each node's /metrics; default: random)
#   NODES (default 3)  BASE_PORT (default 7421)  LISTEN (default 127.0.0.1:7420)
#   QUIRE_BIN            (a built binary; default: cargo build --release)
#   QUIRE_SERVE_ARGS     (more `quire serve` flags for every node, e.g. the
#                         browser tests' --insecure-fast-password-hashing)
set -euo pipefail
cd "$(dirname "$0")/.."

export QUIRE_DATABASE_URL="${QUIRE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export QUIRE_DATABASE_SCHEMA="${QUIRE_DATABASE_SCHEMA:-quire_local_cluster}"
export QUIRE_REDIS_URL="${QUIRE_REDIS_URL:-redis://127.0.0.1:6379/}"
export QUIRE_METRICS_TOKEN="${QUIRE_METRICS_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
NODES="${NODES:-3}"
BASE_PORT="${BASE_PORT:-7421}"
LISTEN="${LISTEN:-127.0.0.1:7420}"

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian package)…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

if [ -z "${QUIRE_BIN:-}" ]; then
  cargo build --release -p quire-server
  QUIRE_BIN="${CARGO_TARGET_DIR:-target}/release/quire"
fi

run="$(mktemp -d -t quire-cluster.XXXXXX)"
chmod 755 "$run"  # nginx workers run as nobody
pids=()
cleanup() {
  trap - EXIT INT TERM
  [ -f "$run/nginx/nginx.pid" ] && kill "$(cat "$run/nginx/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; logs were in $run"
}
trap cleanup EXIT INT TERM

# Migrate once, so the nodes don't all do it at the same moment.
"$QUIRE_BIN" migrate

upstreams=""
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i - 1))
  QUIRE_LOG="${QUIRE_LOG:-info}" "$QUIRE_BIN" serve \
    --listen "127.0.0.1:$port" --node-id "node$i" --data-dir "$run/node$i" \
    --trusted-proxies 127.0.0.1 ${QUIRE_SERVE_ARGS:-} \
    >"$run/node$i.out" 2>"$run/node$i.log" &
  pids+=($!)
  upstreams+="        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
done
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i - 1))
  for _ in $(seq 1 100); do
    grep -q "Quire is running" "$run/node$i.out" 2>/dev/null && break
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { cat "$run/node$i.log"; exit 1; }
    sleep 0.1
  done
  grep -q "Quire is running" "$run/node$i.out" || { echo "node$i did not start"; cat "$run/node$i.log"; exit 1; }
done

mkdir -p "$run/nginx"
awk -v ups="$upstreams" -v listen="$LISTEN" -v prefix="$run/nginx" '
  { gsub(/@LISTEN@/, listen); gsub(/@PREFIX@/, prefix) }
  /@UPSTREAMS@/ { printf "%s", ups; next }
  { print }
' deploy/nginx.conf.template >"$run/nginx.conf"
"$NGINX" -t -q -c "$run/nginx.conf" -p "$run/nginx"
"$NGINX" -c "$run/nginx.conf" -p "$run/nginx"

echo
echo "Quire cluster: http://$LISTEN/  ($NODES nodes on ports $BASE_PORT..$((BASE_PORT + NODES - 1)), logs in $run)"
echo "Metrics per node: curl -H 'Authorization: Bearer $QUIRE_METRICS_TOKEN' http://127.0.0.1:$BASE_PORT/metrics"
echo "Kill a node to see its clients move: kill ${pids[0]}   (Ctrl-C stops everything)"
wait "${pids[@]}"
