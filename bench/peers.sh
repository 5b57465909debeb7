#!/usr/bin/env bash
# Peer runner of issue 6: the same quire-bench scenarios against Quire
# (SQLite, durable acks on), the reference y-websocket server, Hocuspocus and
# the null relay, each server pinned to core 0 and the generator to core 1,
# a fresh server process (and data folder) per scenario. Appends one record
# per (scenario, server) to OUT/results.jsonl and prints the Markdown table of
# bench/report.mjs at the end. See "Peer runner" in docs/benchmarks.md.
#
#   bench/peers.sh [--quick] [--out DIR] [--servers LIST] [--cases LIST]
#                  [--soak-secs S] [--soak-interval-secs I]
#                  [--no-build] [--no-install]
#
#   --quick         tiny durations and counts: checks the pipeline end to end
#   --out DIR       results folder (default: $PEERS_DIR/results/<UTC time>)
#   --servers LIST  comma-separated subset of: quire,y-websocket,hocuspocus,null
#   --cases LIST    comma-separated subset of the cases: fanout, saturate,
#                   hot-document, connections-spread, connections-one,
#                   connections-10k (Quire only), trace, coldload (Quire
#                   only), burst, soak (Quire and y-websocket only); all by
#                   default, run in this order
#   --soak-secs S   length of the soak (default 300; quick mode 6)
#   --soak-interval-secs I
#                   its reporting interval (default 60; quick mode 2)
#   --no-build      use target/release as it is
#   --no-install    use the peers already installed in $PEERS_DIR
#
# Environment: QUIRE_PEERS_DIR (default /tmp/quire-peers) is where the peers
# are installed from npm; nothing of them is written into the repository.
# QUIRE_HOCUSPOCUS_VERSION, QUIRE_YWS_VERSION and QUIRE_YJS_VERSION override
# the pinned versions. QUIRE_BENCH_ACCOUNT (default
# bench@example.test:bench-password) is the account the generator uses on
# Quire.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${QUIRE_PEERS_DIR:-/tmp/quire-peers}
# @hocuspocus/server 4.x declares node >= 22; 3.4.4 is the newest for Node 20.
HP_VERSION=${QUIRE_HOCUSPOCUS_VERSION:-3.4.4}
# @y/websocket-server 0.1.1 runs on yjs 13 (0.1.5 moved to yjs 14).
YWS_VERSION=${QUIRE_YWS_VERSION:-0.1.1}
YJS_VERSION=${QUIRE_YJS_VERSION:-^13.6.8}
ACCOUNT=${QUIRE_BENCH_ACCOUNT:-bench@example.test:bench-password}
# Quire serves /metrics only to its operator's bearer token; the generator
# reads the server's own counters (connections, live documents) with it.
# Both take it from the environment, which keeps it out of the recorded
# command lines.
QUIRE_METRICS_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export QUIRE_METRICS_TOKEN QUIRE_BENCH_METRICS_TOKEN=$QUIRE_METRICS_TOKEN
TRACE="$ROOT/bench/traces/automerge-paper.json.gz"
ALL_SERVERS="quire y-websocket hocuspocus null"
ALL_CASES="fanout saturate hot-document connections-spread connections-one connections-10k trace coldload burst soak"

QUICK=0
OUT=""
SERVERS=$ALL_SERVERS
CASES=$ALL_CASES
BUILD=1
INSTALL=1
SOAK_SECS=""
SOAK_INTERVAL=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --out) OUT=$2; shift ;;
        --servers) SERVERS=${2//,/ }; shift ;;
        --cases) CASES=${2//,/ }; shift ;;
        --soak-secs) SOAK_SECS=$2; shift ;;
        --soak-interval-secs) SOAK_INTERVAL=$2; shift ;;
        --no-build) BUILD=0 ;;
        --no-install) INSTALL=0 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for s in $SERVERS; do
    case " $ALL_SERVERS " in *" $s "*) ;; *) echo "unknown server: $s" >&2; exit 2 ;; esac
done
for c in $CASES; do
    case " $ALL_CASES " in *" $c "*) ;; *) echo "unknown case: $c" >&2; exit 2 ;; esac
done
OUT=${OUT:-$PEERS_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)$([ $QUICK = 1 ] && echo -quick)}
mkdir -p "$OUT/raw" "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
RESULTS="$OUT/results.jsonl"
QUIRE="$ROOT/target/release/quire"
BENCH="$ROOT/target/release/quire-bench"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes
# Every server this script starts is recorded here and ended on exit, by pid.
STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        stop_pid "$pid"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: SIGTERM, up to 10 s for it to go, then SIGKILL.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# free_port: a port on 127.0.0.1 nothing listens on (bounded tries).
free_port() {
    local i p
    for ((i = 0; i < 200; i++)); do
        # Below the kernel's ephemeral range (32768+ here): thousands of
        # generator sockets come and go there, and a port one of them still
        # holds cannot be listened on.
        p=$((10000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# wait_ready PID PORT [HTTP_PATH]: polls until the port accepts connections
# (and, with a path, answers it with 2xx), the process dies, or 60 s pass.
wait_ready() {
    local pid=$1 port=$2 path=${3:-} i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [ -n "$path" ]; then
            curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port$path" && return 0
        elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_server NAME TAG [DATA_DIR [FLAG...]]: starts NAME on core 0 on a free
# port, Quire with the extra FLAGs; sets SPID, SURL (the --url for the
# generator) and SFLAGS (its other flags).
start_server() {
    local name=$1 tag=$2 data=${3:-} port ready_path=""
    local extra=("${@:4}")
    port=$(free_port)
    local slog="$OUT/logs/$tag.server.log"
    case "$name" in
        quire)
            [ -n "$data" ] || data=$(mktemp -d "$OUT/quire-data.XXXXXX")
            # --ws-connect-burst: the per-user connect limit (60, then 4/s)
            # would throttle the connect phase of every scenario; and every
            # generated client comes from 127.0.0.1, one address, which
            # --max-connections-per-address (256) would cap. One generated
            # account owns every document (one per socket in `connections`)
            # and a saturating run writes more than any person: no quotas.
            taskset -c 0 "$QUIRE" serve --listen "127.0.0.1:$port" --data-dir "$data" \
                --ws-connect-burst 20000 --max-connections-per-address 20000 \
                --max-documents-per-account 0 --max-account-bytes 0 \
                "${extra[@]+"${extra[@]}"}" >>"$slog" 2>&1 &
            SURL="ws://127.0.0.1:$port/ws"
            SFLAGS=(--account "$ACCOUNT")
            ready_path=/readyz
            ;;
        y-websocket)
            # No YPERSISTENCE: documents live in memory only.
            taskset -c 0 env HOST=127.0.0.1 PORT="$port" \
                node "$PEERS_DIR/node_modules/@y/websocket-server/src/server.js" >>"$slog" 2>&1 &
            SURL="ws://127.0.0.1:$port/ws"
            SFLAGS=()
            ready_path=/
            ;;
        hocuspocus)
            taskset -c 0 env PORT="$port" node "$PEERS_DIR/start-hocuspocus.mjs" >>"$slog" 2>&1 &
            SURL="ws://127.0.0.1:$port"
            SFLAGS=(--dialect hocuspocus)
            ready_path=/
            ;;
        null)
            taskset -c 0 "$BENCH" null-server --listen "127.0.0.1:$port" >>"$slog" 2>&1 &
            SURL="ws://127.0.0.1:$port/ws"
            SFLAGS=()
            ;;
    esac
    SPID=$!
    STARTED+=("$SPID")
    if ! wait_ready "$SPID" "$port" "$ready_path"; then
        tail -n 20 "$slog" >&2 || true
        die "$name did not become ready on port $port (log: $slog)"
    fi
}

stop_server() {
    stop_pid "$1"
    local keep=() p
    for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    STARTED=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------- records
# record SERVER CASE FIELDS_JSON: appends one line to results.jsonl.
record() {
    node -e '
        const [server, kase, extra] = process.argv.slice(1);
        process.stdout.write(JSON.stringify({ server, case: kase, ...JSON.parse(extra) }) + "\n");
    ' "$1" "$2" "$3" >>"$RESULTS"
}

na() {
    log "  $1 / $2: n/a ($3)"
    record "$1" "$2" "$(node -e 'process.stdout.write(JSON.stringify({na: process.argv[1]}))' "$3")"
}

# run_bench SERVER CASE TAG ARGS...: the generator on core 1; its stdout (one
# JSON line) is kept in raw/TAG.json, its table and errors in logs/TAG.log.
# Sets RC. Records the result unless NO_RECORD=1.
run_bench() {
    local server=$1 kase=$2 tag=$3
    shift 3
    local raw="$OUT/raw/$tag.json" blog="$OUT/logs/$tag.log" started ended
    printf '$ quire-bench' >"$blog"
    printf ' %q' "$@" >>"$blog"
    printf '\n' >>"$blog"
    started=$(date +%s%N)
    RC=0
    timeout --kill-after=10 "$CASE_TIMEOUT" taskset -c 1 "$BENCH" "$@" >"$raw" 2>>"$blog" || RC=$?
    ended=$(date +%s%N)
    [ "${NO_RECORD:-0}" = 1 ] && return 0
    node -e '
        const fs = require("fs");
        const [raw, blog, rc, t0, t1, ...argv] = process.argv.slice(1);
        const secs = Math.round((Number(t1) - Number(t0)) / 1e6) / 1e3;
        const lines = fs.readFileSync(raw, "utf8").split("\n").filter((l) => l.trim().startsWith("{"));
        let result = null;
        try { result = lines.length ? JSON.parse(lines[lines.length - 1]) : null; } catch {}
        const rec = { exit_code: Number(rc), seconds: Number(secs), command: "quire-bench " + argv.join(" "), result };
        if (Number(rc) !== 0) {
            rec.error = fs.readFileSync(blog, "utf8").trim().split("\n").slice(-6).join("\n");
        }
        process.stdout.write(JSON.stringify(rec));
     ' "$raw" "$blog" "$RC" "$started" "$ended" "$@" >"$OUT/raw/$tag.record"
    record "$server" "$kase" "$(cat "$OUT/raw/$tag.record")"
    if [ "$RC" = 0 ]; then
        log "  $server / $kase: ok"
    else
        log "  $server / $kase: FAILED (exit $RC; see $blog)"
    fi
}

# ---------------------------------------------------------------- setup
command -v node >/dev/null || die "node is required (>= 20)"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v curl >/dev/null || die "curl is required"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "node >= 20 is required (have $(node --version))"
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs: server and generator share a core"
# 10,000 connections need more descriptors than the usual 1024, in the
# server and in the generator (both inherit this limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 10500 ] ||
    log "warning: open files limit is $(ulimit -n): the 10,000-connection case may fail"

install_peers() {
    mkdir -p "$PEERS_DIR"
    local manifest
    manifest=$(cat <<EOF
{
  "name": "quire-peers",
  "private": true,
  "description": "Peer servers for quire's bench/peers.sh; installed by it, not part of the repository",
  "type": "module",
  "dependencies": {
    "@hocuspocus/server": "$HP_VERSION",
    "@y/websocket-server": "$YWS_VERSION",
    "y-protocols": "^1.0.6",
    "yjs": "$YJS_VERSION"
  }
}
EOF
)
    if [ -f "$PEERS_DIR/node_modules/.quire-peers-manifest" ] &&
        [ "$(cat "$PEERS_DIR/node_modules/.quire-peers-manifest")" = "$manifest" ]; then
        log "peers already installed in $PEERS_DIR"
    else
        log "installing the peers into $PEERS_DIR (npm)"
        printf '%s\n' "$manifest" >"$PEERS_DIR/package.json"
        rm -f "$PEERS_DIR/package-lock.json"
        # No install scripts: nothing here needs one (y-leveldb's leveldown
        # ships prebuilt binaries and is only loaded with YPERSISTENCE).
        (cd "$PEERS_DIR" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error) >&2
        printf '%s' "$manifest" >"$PEERS_DIR/node_modules/.quire-peers-manifest"
    fi
    cat >"$PEERS_DIR/start-hocuspocus.mjs" <<'EOF'
// Hocuspocus with no extensions (no persistence, no auth hooks), as a team
// would start it first. Written by quire's bench/peers.sh.
import { Server } from '@hocuspocus/server'

const port = Number(process.env.PORT || 1234)
const server = new Server({ port, address: '127.0.0.1', quiet: true })
await server.listen()
console.log(`hocuspocus listening on 127.0.0.1:${port}`)
EOF
}

peer_versions() {
    (cd "$PEERS_DIR" && node -e '
        // Read from node_modules: some packages do not export package.json.
        const v = (p) => { try { return JSON.parse(require("fs").readFileSync("node_modules/" + p + "/package.json", "utf8")).version } catch { return null } };
        process.stdout.write(JSON.stringify({
            node: process.versions.node,
            "@hocuspocus/server": v("@hocuspocus/server"),
            "@y/websocket-server": v("@y/websocket-server"),
            yjs: v("yjs"),
            "y-protocols": v("y-protocols"),
        }))')
}

needs_peers=0
for s in $SERVERS; do case $s in y-websocket|hocuspocus) needs_peers=1 ;; esac; done
if [ $needs_peers = 1 ]; then
    if [ $INSTALL = 1 ]; then install_peers; fi
    [ -f "$PEERS_DIR/start-hocuspocus.mjs" ] || die "peers not installed in $PEERS_DIR (drop --no-install)"
    yjs_major=$(cd "$PEERS_DIR" && node -p 'require("yjs/package.json").version.split(".")[0]')
    [ "$yjs_major" = 13 ] || die "the peers must run on yjs 13 (found $yjs_major)"
fi

if [ $BUILD = 1 ]; then
    log "building (cargo build --release -p quire-server -p quire-bench)"
    (cd "$ROOT" && cargo build --release -p quire-server -p quire-bench) >&2
fi
[ -x "$QUIRE" ] && [ -x "$BENCH" ] || die "missing $QUIRE or $BENCH (drop --no-build)"
[ -f "$TRACE" ] || die "missing the trace $TRACE"

has_scenario() { "$BENCH" "$1" --help >/dev/null 2>&1; }

# ---------------------------------------------------------------- cases
if [ $QUICK = 1 ]; then
    CASE_TIMEOUT=300
    FANOUT=(--docs 2 --clients 4 --writers 2 --rate 20 --duration 2 --drain 3)
    # A 1-s step on a busy machine can see a send lag over a tight limit;
    # the quick run only checks the pipeline.
    SATURATE=(--docs 2 --clients 4 --writers 2 --start-rate 20 --step-duration 1 --max-steps 2 --drain 2
        --p99-limit-ms 1000)
    HOT=(--docs 1 --clients 20 --writers 4 --rate 10 --duration 2 --drain 3)
    CONN_COUNT=50
    CONN_BIG=300
    CONN=(--hold-secs 1 --settle-secs 2)
    TRACE_ARGS=(--trace "$TRACE" --limit 3000)
    BURST=(--keystrokes 3000)
    # A small trace (the first 1,500 transactions of automerge-paper, with
    # its endContent) so that the cold load is quick too.
    COLD_TRACE="$OUT/quick-trace.json.gz"
    node -e '
        const zlib = require("zlib"), fs = require("fs");
        const [src, dst, n] = process.argv.slice(1);
        const t = JSON.parse(zlib.gunzipSync(fs.readFileSync(src)));
        const txns = t.txns.slice(0, Number(n));
        let s = [...t.startContent];
        for (const tx of txns) for (const [pos, del, ins] of tx.patches) s.splice(pos, del, ...[...ins]);
        fs.writeFileSync(dst, zlib.gzipSync(JSON.stringify({ startContent: t.startContent, endContent: s.join(""), txns })));
    ' "$TRACE" "$COLD_TRACE" 1500
    COLD_POPULATE=(--trace "$COLD_TRACE" --history-docs 10 --history-updates 50)
    COLD_MEASURE=(--expect-trace "$COLD_TRACE" --runs 3)
    SOAK=(--docs 2 --clients 4 --writers 2 --rate 20 --duration "${SOAK_SECS:-6}"
        --interval-secs "${SOAK_INTERVAL:-2}" --drain 5)
    # So that a few seconds of typing compact too (the default is every
    # 2,000 updates of a document).
    SOAK_QUIRE=(--compact-after-updates 50)
else
    CASE_TIMEOUT=2400
    FANOUT=(--docs 10 --clients 10 --writers 2 --rate 20 --duration 20)
    SATURATE=(--docs 10 --clients 10 --writers 2 --p99-limit-ms 50)
    HOT=(--docs 1 --clients 200 --writers 20)
    CONN_COUNT=1000
    CONN_BIG=10000
    CONN=()
    TRACE_ARGS=(--trace "$TRACE")
    BURST=(--keystrokes 100000)
    COLD_TRACE="$TRACE"
    COLD_POPULATE=(--trace "$COLD_TRACE")
    COLD_MEASURE=(--expect-trace "$COLD_TRACE")
    # 50 documents × 2 writers × 20 keys/s × 9 receivers = 18,000
    # deliveries/s (issue 12). Quire on its defaults: it compacts a
    # document's log every 2,000 updates, i.e. every 50 s here.
    SOAK=(--docs 50 --clients 10 --writers 2 --rate 20 --duration "${SOAK_SECS:-300}"
        --interval-secs "${SOAK_INTERVAL:-60}")
    SOAK_QUIRE=()
fi

# Flags for servers without durable acks / without state a fresh client can
# read back (Hocuspocus unloads a document when its last client leaves; the
# null relay keeps none; y-websocket keeps documents in memory).
no_acks() { [ "$1" = quire ] || echo --no-acks; }
no_server_check() { case $1 in hocuspocus|null) echo --skip-server-check ;; esac; }

# run_case CASE SERVER: one scenario against a fresh server.
run_case() {
    local kase=$1 server=$2 tag="$1-$2" scenario args=() server_flags=()
    case "$kase" in
        fanout) scenario=fanout; args=("${FANOUT[@]}" $(no_acks "$server") $(no_server_check "$server")) ;;
        saturate) scenario=saturate; args=("${SATURATE[@]}" $(no_acks "$server") $(no_server_check "$server")) ;;
        hot-document) scenario=hot-document; args=("${HOT[@]}" $(no_acks "$server") $(no_server_check "$server")) ;;
        connections-spread) scenario=connections; args=(--count "$CONN_COUNT" --layout spread "${CONN[@]}") ;;
        connections-one) scenario=connections; args=(--count "$CONN_COUNT" --layout one "${CONN[@]}") ;;
        connections-10k)
            scenario=connections
            [ "$server" = quire ] || { na "$server" "$kase" "issue 6 asks 10,000 of Quire; peers are measured at $CONN_COUNT"; return; }
            args=(--count "$CONN_BIG" --layout spread "${CONN[@]}")
            ;;
        trace)
            scenario=trace
            if [ "$server" = quire ]; then
                args=("${TRACE_ARGS[@]}" --verify-reload)
            else
                args=("${TRACE_ARGS[@]}" --flow observer)
            fi
            ;;
        coldload)
            scenario=coldload
            case $server in
                quire) ;;
                null) na "$server" "$kase" "a relay stores nothing"; return ;;
                *) na "$server" "$kase" "no persistence configured: documents do not survive a restart"; return ;;
            esac
            ;;
        burst)
            scenario=burst
            [ "$server" != null ] || { na "$server" "$kase" "a relay keeps no state: an observer it closes cannot resync (fails by design)"; return; }
            args=("${BURST[@]}" $(no_acks "$server"))
            ;;
        soak)
            scenario=soak
            case $server in
                quire) server_flags=("${SOAK_QUIRE[@]+"${SOAK_QUIRE[@]}"}") ;;
                y-websocket) ;;
                *) na "$server" "$kase" "issue 12 compares the soak with y-websocket only"; return ;;
            esac
            args=("${SOAK[@]}" $(no_acks "$server"))
            ;;
    esac
    if ! has_scenario "$scenario"; then
        na "$server" "$kase" "quire-bench has no '$scenario' scenario in this build"
        return
    fi
    log "$kase against $server"
    if [ "$kase" = coldload ]; then
        run_coldload "$tag"
        return
    fi
    start_server "$server" "$tag" "" "${server_flags[@]+"${server_flags[@]}"}"
    run_bench "$server" "$kase" "$tag" "$scenario" --url "$SURL" "${SFLAGS[@]}" \
        --server-pid "$SPID" "${args[@]}"
    stop_server "$SPID"
    if [ "$kase" = soak ] && [ "$server" = quire ]; then
        soak_compactions "$OUT/raw/$tag.json"
    fi
}

# soak_compactions RAW_JSON: the soak is meant to run with compaction on;
# says how many compactions Quire counted (quire_compactions_total), and
# warns when there were none.
soak_compactions() {
    local n
    n=$(node -e '
        const fs = require("fs");
        const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.startsWith("{"));
        let c = null;
        try { c = JSON.parse(lines[lines.length - 1]).compactions; } catch {}
        process.stdout.write(String(c ?? "unknown"));
    ' "$1")
    case $n in
        unknown) log "  warning: the soak did not report Quire's compactions (is /metrics readable?)" ;;
        0) log "  warning: Quire counted no compaction during the soak" ;;
        *) log "  quire / soak: $n compactions during the run" ;;
    esac
}

# coldload: populate, restart Quire on the same data folder, measure.
run_coldload() {
    local tag=$1 data measure_args
    data=$(mktemp -d "$OUT/quire-data.XXXXXX")
    start_server quire "$tag-populate" "$data"
    NO_RECORD=1 run_bench quire coldload "$tag-populate" coldload populate --url "$SURL" \
        "${SFLAGS[@]}" "${COLD_POPULATE[@]}"
    stop_server "$SPID"
    if [ "$RC" != 0 ]; then
        record quire coldload "$(node -e '
            const fs = require("fs");
            process.stdout.write(JSON.stringify({ exit_code: Number(process.argv[1]),
                error: "populate failed: " + fs.readFileSync(process.argv[2], "utf8").trim().split("\n").slice(-6).join("\n") }))
        ' "$RC" "$OUT/logs/$tag-populate.log")"
        log "  quire / coldload: populate FAILED (see $OUT/logs/$tag-populate.log)"
        return
    fi
    measure_args=$(node -e '
        const fs = require("fs");
        const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.startsWith("{"));
        const j = JSON.parse(lines[lines.length - 1]);
        const a = j.measure_args;
        process.stdout.write((Array.isArray(a) ? a : String(a).split(/\s+/)).filter(Boolean).join("\n"));
    ' "$OUT/raw/$tag-populate.json")
    local margs=()
    mapfile -t margs <<<"$measure_args"
    start_server quire "$tag" "$data"
    local pid_flag=()
    if "$BENCH" coldload measure --help 2>/dev/null | grep -q -- --server-pid; then
        pid_flag=(--server-pid "$SPID")
    fi
    run_bench quire coldload "$tag" coldload measure --url "$SURL" "${SFLAGS[@]}" \
        "${pid_flag[@]+"${pid_flag[@]}"}" "${margs[@]}" "${COLD_MEASURE[@]}"
    stop_server "$SPID"
}

# ---------------------------------------------------------------- run
commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$ROOT" && git status --porcelain -- crates 2>/dev/null | head -c1)
versions='{}'
[ $needs_peers = 1 ] && versions=$(peer_versions)
node -e '
    const os = require("os");
    const [quick, commit, dirty, versions, servers, cases] = process.argv.slice(1);
    process.stdout.write(JSON.stringify({ run: {
        started: new Date().toISOString(), quick: quick === "1", commit, dirty: dirty !== "",
        cpu: os.cpus()[0].model, cpus: os.cpus().length, mem_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
        kernel: os.release(), versions: JSON.parse(versions),
        servers: servers.trim().split(/\s+/), cases: cases.trim().split(/\s+/) } }) + "\n");
' "$QUICK" "$commit" "$dirty" "$versions" "$SERVERS" "$CASES" >>"$RESULTS"

log "results: $RESULTS"
started=$(date +%s)
for kase in $CASES; do
    for server in $SERVERS; do
        run_case "$kase" "$server"
    done
done
log "all cases done in $(($(date +%s) - started)) s"

node "$ROOT/bench/report.mjs" "$RESULTS" | tee "$OUT/report.md"
log "table: $OUT/report.md"
