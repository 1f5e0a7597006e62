#!/usr/bin/env bash
# A/B of two server builds under the same load: alternating runs of lanrelay-load, each
# spawning one of the two binaries, the server and the generator pinned to their own
# cores, then a summary: each build's runs of server CPU per forwarded packet, their
# medians, in how many pairs B was lower, and the median of the paired differences.
#
#   benches/ab.sh A_BINARY B_BINARY [lanrelay-load flags...]
#   cp target/release/lanrelay /tmp/lanrelay-before   # then change and build again
#   ROUNDS=10 benches/ab.sh /tmp/lanrelay-before target/release/lanrelay --viewers 100
#   benches/ab.sh /tmp/a /tmp/b --scenario rooms --rooms 4 --room-size 5
#
# ROUNDS runs of each (default 5); SERVER_CPUS (default 1) and LOAD_CPUS (default 0)
# are taskset lists; DURATION and WARMUP are the generator's (default 8 and 3 s).
# Builds lanrelay-load if needed. The speed of a shared machine drifts within the
# hour by more than most changes: only alternating runs compare, and a difference
# inside the spread of one build's runs is not one. Rounds alternate which build
# runs first (A B, B A, ...): the first run of a pair was the faster one in 8 of
# 11 pairs of the same comparison run both ways. The summary's sign test says how
# often a split at least as lopsided as "B lower in k of n" comes from two equal
# builds (p), and the interval is the distribution-free one for the paired
# differences' median (at least 90 %, from 6 pairs on).
# A benchmark, not a test: it is not part of tests/run.sh.
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$(realpath "$1") B=$(realpath "$2")
shift 2
for bin in "$A" "$B"; do
    [ -x "$bin" ] || { echo "ab: $bin is not an executable" >&2; exit 2; }
done
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
LOAD="$TARGET_DIR/release/lanrelay-load"
[ -x "$LOAD" ] || cargo build --release --locked -p lanrelay-load >&2
ROUNDS=${ROUNDS:-5}
OUT=$(mktemp /tmp/lanrelay-ab.XXXXXX)
trap 'rm -f "$OUT"' EXIT

echo "A: $A"
echo "B: $B"
echo "load: $* (rounds $ROUNDS, server on cpu ${SERVER_CPUS:-1}, generator on ${LOAD_CPUS:-0})"
echo "| round | build | µs/pkt (kernel) | KiB/recv | transit p50 / p99 / max ms | receiving |"
echo "|--:|---|--:|--:|--:|--:|"
for r in $(seq "$ROUNDS"); do
    order="A B"
    [ $((r % 2)) -eq 0 ] && order="B A"
    for side in $order; do
        bin=$A
        [ "$side" = B ] && bin=$B
        row=$(taskset -c "${LOAD_CPUS:-0}" "$LOAD" --spawn "$bin" --server-cpus "${SERVER_CPUS:-1}" \
            --duration "${DURATION:-8}" --warmup "${WARMUP:-3}" "$@" 2>/dev/null |
            grep '^| lanrelay' || true)
        if [ -z "$row" ]; then
            echo "| $r | $side | run failed | | | |"
            continue
        fi
        # Columns of lanrelay-load's table: 8 receiving, 13 µs/pkt (kernel), 14 KiB,
        # 15 transit.
        echo "$row" | awk -F'|' -v r="$r" -v s="$side" '{printf "| %s | %s |%s|%s|%s|%s|\n", r, s, $13, $14, $15, $8}'
        us=$(echo "$row" | awk -F'|' '{split($13, a, " "); print a[1]}')
        echo "$r $side $us" >>"$OUT"
    done
done

awk '
    { v[$2, $1] = $3; if ($1 > n) n = $1 }
    function median(arr, k,   i, j, t) {
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
            if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
        return k % 2 ? arr[(k + 1) / 2] : (arr[k / 2] + arr[k / 2 + 1]) / 2
    }
    END {
        ka = kb = kd = lower = 0
        for (r = 1; r <= n; r++) {
            if (("A", r) in v) a[++ka] = v["A", r]
            if (("B", r) in v) b[++kb] = v["B", r]
            if ((("A", r) in v) && (("B", r) in v)) {
                d[++kd] = v["B", r] - v["A", r]
                lower += v["B", r] < v["A", r]
            }
        }
        if (!ka || !kb) { print "ab: no complete runs"; exit 1 }
        printf "\nA: median %.2f µs/pkt over %d runs; B: median %.2f over %d runs\n", median(a, ka), ka, median(b, kb), kb
        if (!kd) exit 0
        printf "B lower in %d of %d pairs; paired difference B - A: median %+.2f µs/pkt\n", lower, kd, median(d, kd)
        # Sign test, two-sided: P(a split at least this uneven | no difference).
        m = lower < kd - lower ? lower : kd - lower
        tail = 0; c = 1
        for (i = 0; i <= m; i++) { tail += c; c = c * (kd - i) / (i + 1) }
        p = 2 * tail / 2 ^ kd; if (p > 1) p = 1
        line = sprintf("sign test: p = %.2f", p)
        # Distribution-free interval (at least 90 %) for the median difference: the k-th
        # smallest and k-th largest, k the largest with P(Bin(n, 1/2) < k) <= 5 %.
        if (kd >= 6) {
            median(d, kd)   # sorts d
            k = 0; cum = 0; c = 1
            for (i = 0; i < kd; i++) { if ((cum + c) / 2 ^ kd > 0.05) break; cum += c; c = c * (kd - i) / (i + 1); k = i + 1 }
            if (k < 1) k = 1
            line = line sprintf("; interval (>= 90 %%) of the median difference: %+.2f to %+.2f µs/pkt", d[k], d[kd - k + 1])
        }
        print line
    }' "$OUT"
