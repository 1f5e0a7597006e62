#!/usr/bin/env bash
# Instructions per forwarded packet, counted rather than timed: starts the release
# server under valgrind's callgrind on 127.0.0.1, drives it with lanrelay-load (a few
# receivers: valgrind runs the server some 50 times slower), stops it, and prints
# for each step of the forwarding path its instructions per call, inclusive of what
# it calls, and how many calls there were.
#
#   benches/instructions.sh [lanrelay-load flags...]   (default: --viewers 5)
#   benches/instructions.sh --viewers 5 --duration 15
#   benches/instructions.sh --scenario pairs --pairs 3
#   SERVER=/tmp/lanrelay-before benches/instructions.sh   # a prebuilt server
#
# Unlike CPU time, these counts do not move with the machine's load: two builds
# give the same figures run after run, so a change that removes work shows even
# when it is far below the noise of `benches/ab.sh`. They say nothing of cache
# misses, which a change of layout is about: time those with `benches/ab.sh`.
# Under valgrind, aws-lc takes its AES-NI path, not the AVX-512 one (valgrind hides
# AVX-512), so SRTP's counts are higher than on the bare machine.
# CG_OUT=file keeps the callgrind output (default: a temporary file).
# Needs valgrind (Debian: valgrind). A benchmark, not a test: it is not part of
# tests/run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions: needs valgrind (apt install valgrind)" >&2; exit 2; }
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
WORK=$(mktemp -d /tmp/lanrelay-instructions.XXXXXX)
CG_OUT=${CG_OUT:-$WORK/callgrind.out}
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cargo build --release --locked --workspace --bins >&2
SERVER=${SERVER:-$TARGET_DIR/release/lanrelay}
[ $# -gt 0 ] || set -- --viewers 5 --duration 15
valgrind --tool=callgrind --callgrind-out-file="$CG_OUT" "$SERVER" \
    --listen 127.0.0.1:0 --no-http --certs "$WORK/certs" --room-capacity 1000 \
    --max-per-address 1000000 --max-sessions 1000000 --max-rooms 1000000 \
    --max-joins-per-minute 1000000 --max-connections-per-address 1000000 \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
URL=
for _ in $(seq 600); do
    URL=$(grep -o 'https://127.0.0.1:[0-9]*' "$WORK/server.log" | head -1 || true)
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { echo "instructions: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
"$TARGET_DIR/release/lanrelay-load" --server-url "$URL" --server-pid "$SERVER_PID" "$@" 2>"$WORK/load.err" |
    grep '^| lanrelay' || { echo "instructions: the load run failed" >&2; cat "$WORK/load.err" >&2; exit 1; }
# callgrind writes its counts when the server exits.
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

callgrind_annotate --inclusive=yes --tree=calling "$CG_OUT" 2>/dev/null | python3 -c '
import re, sys

# Each block of the calling tree starts with "IR (pct)  *  file:function [object]"
# (IR: inclusive instructions of that function; the object is not always named)
# and lists what it calls as
# "IR (pct)  >   file:function (Nx) [object]": summed over callers, N is the calls.
STEPS = [
    ("a copy to one receiver (write_down)", "lanrelay::sfu::shard::fanout::write_down"),
    ("  str0m: write_rtp_at", "str0m::change::direct::DirectApi::write_rtp_at"),
    ("    build the packet (build_packet)", "str0m::streams::send::build_packet"),
    ("      its header and extensions", "str0m::rtp_::header::RtpHeader::write_to"),
    ("    retransmission cache", "str0m::streams::rtx_cache::RtxCache::cache_sent_packet"),
    ("    SRTP encrypt (protect_rtp)", "str0m::rtp_::srtp::SrtpContext::protect_rtp"),
    ("  the drain after it (Driver::drain)", "lanrelay::sfu::driver::Driver::drain"),
    ("a datagram received (Driver::receive)", "lanrelay::sfu::driver::Driver::receive"),
    ("  SRTP decrypt (unprotect_rtp)", "str0m::rtp_::srtp::SrtpContext::unprotect_rtp"),
    ("  str0m: handle_rtp_receive", "str0m::session::Session::handle_rtp_receive"),
    ("a packet or a held group to all receivers (fan_out_group)", "lanrelay::sfu::shard::fanout::<impl lanrelay::sfu::shard::Shard>::fan_out_group"),
]
num = lambda s: int(s.replace(",", ""))
head = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+\*\s+\S*?:(.+?)(?: \[.*)?$")
call = re.compile(r"^\s*[\d,]+ \([^)]*\)\s+>\s+\S*?:(.+?) \(([\d,]+)x\)(?: \[.*)?$")
incl, calls = {}, {}
for line in sys.stdin:
    m = head.match(line)
    if m:
        f = m.group(2)
        incl[f] = max(incl.get(f, 0), num(m.group(1)))
        continue
    m = call.match(line)
    if m:
        calls[m.group(1)] = calls.get(m.group(1), 0) + num(m.group(2))
print("| step | instructions per call | calls |")
print("|---|--:|--:|")
for label, f in STEPS:
    n = calls.get(f, 0)
    if n == 0 or f not in incl:
        print(f"| {label} | – | 0 |")
        continue
    print(f"| {label} | {incl[f] / n:,.0f} | {n:,} |")
'
