#!/usr/bin/env bash
# Where lanrelay's CPU time goes under load: starts the release server on 127.0.0.1,
# drives it with lanrelay-load, records the server with `perf record` during the
# measurement window, and prints the top entries (self time, by symbol).
#
#   benches/profile.sh [lanrelay-load flags...]
#   benches/profile.sh --viewers 100 --duration 10
#   benches/profile.sh --scenario rooms --rooms 2 --room-size 5
#
# PERF_DATA=file keeps the recording (default: a temporary file);
# PERF_CALLGRAPH='--call-graph dwarf,16384' records whole call stacks (default -g);
# PERF_FREQ=samples per second (default 999);
# SERVER_CPUS=1 LOAD_CPUS=0 pin the server and the generator to those cores (taskset);
# SERVER_ARGS='--no-bandwidth-estimation' adds flags to the server.
# Needs `perf`
# (Debian: linux-perf) and permission to profile (root, or perf_event_paranoid <= 1).
# A benchmark, not a test: it is not part of tests/run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
WORK=$(mktemp -d /tmp/lanrelay-profile.XXXXXX)
PERF_DATA=${PERF_DATA:-$WORK/perf.data}
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cargo build --release --locked --workspace --bins >&2
# Every simulated participant comes from 127.0.0.1: lift the limits per address.
PIN_SERVER=() PIN_LOAD=()
[ -n "${SERVER_CPUS:-}" ] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
[ -n "${LOAD_CPUS:-}" ] && PIN_LOAD=(taskset -c "$LOAD_CPUS")
RUST_LOG=lanrelay=warn "${PIN_SERVER[@]}" "$TARGET_DIR/release/lanrelay" \
    --listen 127.0.0.1:0 --no-http --certs "$WORK/certs" --room-capacity 1000 \
    --max-per-address 1000000 --max-sessions 1000000 --max-rooms 1000000 \
    --max-joins-per-minute 1000000 --max-connections-per-address 1000000 \
    ${SERVER_ARGS:-} >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
URL=
for _ in $(seq 100); do
    URL=$(grep -o 'https://127.0.0.1:[0-9]*' "$WORK/server.log" | head -1 || true)
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { echo "profile: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }

# Record from when the generator reports everyone connected (its "measuring" line)
# until it finishes the step.
"${PIN_LOAD[@]}" "$TARGET_DIR/release/lanrelay-load" --server-url "$URL" --server-pid "$SERVER_PID" \
    "$@" 2>"$WORK/load.err" | tee "$WORK/load.out" &
LOAD_PID=$!
for _ in $(seq 600); do
    grep -q 'measuring' "$WORK/load.err" 2>/dev/null && break
    sleep 0.1
done
# The generator measures for --duration seconds (default 10); record 6 of them.
perf record -F ${PERF_FREQ:-999} ${PERF_CALLGRAPH:--g} -p "$SERVER_PID" -o "$PERF_DATA" -- sleep "${PROFILE_SECS:-6}" 2>/dev/null >&2
wait "$LOAD_PID"
perf report -i "$PERF_DATA" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -${TOP:-25}
