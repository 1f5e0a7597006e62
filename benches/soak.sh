#!/usr/bin/env bash
# The soak: 20 rooms with churn for 30 minutes against a release lanrelay on
# 127.0.0.1, one line a minute (server RSS, open fds, CPU, sessions, joins and leaves,
# loss and transit of the steady streams), then a verdict: with only the steady
# participants left, are the server's descriptors and sessions back where they
# started, and did its memory stay flat after the settling minutes? Exits 1 if not.
#
#   benches/soak.sh [lanrelay-load flags...]
#   benches/soak.sh --minutes 3                  # a short try
#   benches/soak.sh --soak-rooms 10 --churn 4 --json soak.json
#
# Defaults it adds unless given: --minutes 30 --video-kbps 400 --fps 15 --threads 2
# (every lanrelay-load --soak flag may be passed; see docs/benchmarks.md). The server
# runs with a fresh certificate directory, ephemeral ports, no HTTP helper, and its
# limits per address and server-wide lifted (every simulated participant comes from
# 127.0.0.1); its log (warnings and errors) is summarised at the end.
#
# BIN_DIR=dir runs the lanrelay and lanrelay-load in dir instead of building (e.g.
# to soak an older build). Loopback only. A benchmark, not a test: it is not part of tests/run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
WORK=$(mktemp -d /tmp/lanrelay-soak.XXXXXX)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ARGS=("$@")
given() {
    local a
    for a in "${ARGS[@]}"; do
        [[ $a == "$1" || $a == "$1="* ]] && return 0
    done
    return 1
}
DEFAULTS=()
given --minutes || DEFAULTS+=(--minutes 30)
given --video-kbps || DEFAULTS+=(--video-kbps 400)
given --fps || DEFAULTS+=(--fps 15)
given --threads || DEFAULTS+=(--threads 2)

# Each participant holds a WebSocket on the server and a UDP socket in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --locked --workspace --bins >&2
fi
BIN_DIR=${BIN_DIR:-$TARGET_DIR/release}
"$BIN_DIR/lanrelay" --listen 127.0.0.1:0 --no-http --certs "$WORK/certs" \
    --room-capacity 1000 --max-rooms 100000 --max-sessions 100000 \
    --max-per-address 100000 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
URL=
for _ in $(seq 100); do
    URL=$(grep -o 'https://127.0.0.1:[0-9]*' "$WORK/server.log" | head -1 || true)
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { echo "soak: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }

echo "soak: lanrelay pid $SERVER_PID at $URL; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
STATUS=0
"$BIN_DIR/lanrelay-load" --scenario soak --server-url "$URL" \
    --server-pid "$SERVER_PID" "${DEFAULTS[@]}" "$@" || STATUS=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "soak: FAILED: the server exited" >&2
    STATUS=1
fi
# The log is coloured (tracing's ANSI codes) unless the terminal says otherwise.
PLAIN=$(sed -E 's/\x1b\[[0-9;]*m//g' "$WORK/server.log")
WARN=$(grep -c ' WARN ' <<<"$PLAIN" || true)
ERR=$(grep -c ' ERROR ' <<<"$PLAIN" || true)
echo "server log: $WARN warnings, $ERR errors"
if [ "$((WARN + ERR))" -gt 0 ]; then
    # The most frequent messages, without timestamps and numbers.
    grep -E ' (WARN|ERROR) ' <<<"$PLAIN" \
        | sed -E 's/^[^ ]+ +//; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -10
fi
exit "$STATUS"
