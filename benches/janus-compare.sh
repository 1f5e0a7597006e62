#!/usr/bin/env bash
# lanrelay and Janus side by side: the same load generator, the same scenario, the
# same machine, in one run. Prints the report table with a lanrelay row and a Janus
# row for every step, and their ratio.
#
#   benches/janus-compare.sh [lanrelay-load flags...]
#   benches/janus-compare.sh --viewers 10,50,100,200 --duration 10 --json report.json
#   benches/janus-compare.sh --viewers 100 --rounds 3   # alternating; medians and range
#
# What it does (needs root, like the namespace tests):
# - installs Debian's `janus` if missing;
# - builds the release binaries (lanrelay, lanrelay-load);
# - creates a network namespace with a veth pair to the host namespace (10.203.0.1 on
#   the host end, 10.203.0.2 inside): Janus gathers no loopback ICE candidates, so it
#   needs a non-loopback interface. Traffic never leaves the namespace: everything runs
#   inside it and 10.203.0.2 is a local address there (routed over its loopback);
# - writes a minimal Janus configuration to a temporary directory (HTTP API on
#   127.0.0.1:8088 inside the namespace, videoroom plugin only, ICE on 10.203.0.2,
#   JANUS_EVENT_LOOPS media threads, default 2 = the cores of these machines; set it
#   to 0 for Janus's default of one thread per handle), starts Janus in the namespace;
# - runs `lanrelay-load --target lanrelay,janus`, which spawns lanrelay on 127.0.0.1
#   for each step and drives Janus's videoroom through its HTTP API;
# - removes the namespace, Janus and the temporary directory on exit (trap).
#
# SERVER_CPUS=1 LOAD_CPUS=0 pin both servers (lanrelay, Janus) to the first list of
# cores and the generator to the second (taskset), so the server has a core to itself.
#
# This is a benchmark, not a test: it is not part of tests/run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NS=lrbench$$
HOST_IF=lrb$$h
NS_IF=lrb$$n
HOST_IP=10.203.0.1
NS_IP=10.203.0.2
EVENT_LOOPS=${JANUS_EVENT_LOOPS:-2}
WORK=$(mktemp -d /tmp/janus-compare.XXXXXX)
JANUS_PID=

cleanup() {
    if [ -n "$JANUS_PID" ]; then
        kill "$JANUS_PID" 2>/dev/null || true
        wait "$JANUS_PID" 2>/dev/null || true
    fi
    ip link del "$HOST_IF" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" != 0 ]; then
    echo "janus-compare: needs root (network namespaces)" >&2
    exit 1
fi
if ! command -v janus >/dev/null; then
    echo "janus-compare: installing janus (Debian package)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi

echo "janus-compare: building release binaries" >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --locked --workspace --bins -q
# Copies, so a concurrent build in a shared target directory cannot swap them mid-run.
cp "$TARGET_DIR/release/lanrelay" "$TARGET_DIR/release/lanrelay-load" "$WORK/"

ip netns add "$NS"
ip -n "$NS" link set lo up
ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
ip addr add "$HOST_IP/24" dev "$HOST_IF"
ip link set "$HOST_IF" up
ip -n "$NS" addr add "$NS_IP/24" dev "$NS_IF"
ip -n "$NS" link set "$NS_IF" up

LIB=/usr/lib/x86_64-linux-gnu/janus
[ -d "$LIB" ] || LIB=$(dirname "$(dirname "$(find /usr/lib -name libjanus_videoroom.so | head -1)")")
disable_except() { # folder, the one .so to keep
    find "$1" -maxdepth 1 -name '*.so' -printf '%f\n' | grep -vx "$2" | paste -sd, -
}
cat >"$WORK/janus.jcfg" <<EOF
general: {
    configs_folder = "$WORK"
    plugins_folder = "$LIB/plugins"
    transports_folder = "$LIB/transports"
    events_folder = "$LIB/events"
    loggers_folder = "$LIB/loggers"
    debug_level = 3
    admin_secret = "janus-compare"
    session_timeout = 60
    event_loops = $EVENT_LOOPS
}
certificates: {
}
media: {
    rtp_port_range = "20000-40000"
}
nat: {
    nice_debug = false
    ice_enforce_list = "$NS_IP"
}
plugins: {
    disable = "$(disable_except "$LIB/plugins" libjanus_videoroom.so)"
}
transports: {
    disable = "$(disable_except "$LIB/transports" libjanus_http.so)"
}
loggers: {
    disable = "$(disable_except "$LIB/loggers" none)"
}
events: {
    broadcast = false
    disable = "$(disable_except "$LIB/events" none)"
}
EOF
cat >"$WORK/janus.transport.http.jcfg" <<EOF
general: {
    json = "compact"
    base_path = "/janus"
    http = true
    port = 8088
    ip = "127.0.0.1"
    https = false
}
admin: {
    admin_http = false
    admin_https = false
}
EOF
cat >"$WORK/janus.plugin.videoroom.jcfg" <<EOF
general: {
}
EOF

PIN_SERVER=() PIN_LOAD=() PIN_FLAG=()
if [ -n "${SERVER_CPUS:-}" ]; then
    PIN_SERVER=(taskset -c "$SERVER_CPUS")
    PIN_FLAG=(--server-cpus "$SERVER_CPUS")
fi
[ -n "${LOAD_CPUS:-}" ] && PIN_LOAD=(taskset -c "$LOAD_CPUS")

ip netns exec "$NS" "${PIN_SERVER[@]}" janus -C "$WORK/janus.jcfg" -F "$WORK" >"$WORK/janus.log" 2>&1 &
JANUS_PID=$!
for _ in $(seq 1 50); do
    if ip netns exec "$NS" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8088' 2>/dev/null; then
        break
    fi
    if ! kill -0 "$JANUS_PID" 2>/dev/null; then
        echo "janus-compare: janus exited; its log:" >&2
        cat "$WORK/janus.log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "janus-compare: janus $(janus --version 2>/dev/null | head -1) pid $JANUS_PID, event_loops=$EVENT_LOOPS${SERVER_CPUS:+, servers on cores $SERVER_CPUS}${LOAD_CPUS:+, generator on cores $LOAD_CPUS}" >&2

status=0
ip netns exec "$NS" "${PIN_LOAD[@]}" "$WORK/lanrelay-load" \
    --target lanrelay,janus \
    "${PIN_FLAG[@]}" \
    --spawn "$WORK/lanrelay" \
    --janus-url http://127.0.0.1:8088/janus \
    --janus-pid "$JANUS_PID" \
    --janus-bind "$NS_IP" \
    "$@" || status=$?
if [ "$status" != 0 ]; then
    echo "janus-compare: the load generator failed ($status); the end of Janus's log:" >&2
    tail -20 "$WORK/janus.log" >&2
fi
exit "$status"
