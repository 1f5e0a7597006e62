#!/usr/bin/env bash
# The attack suite at the rates the security review used: each attack of
# tests/attack/attacks.py for 25 s from a second host (a network namespace) during a
# live one-to-four call, with the call's loss and transit p99, the server's open files
# and memory, and each attack's evidence printed. Needs root.
#
#   benches/attack.sh                 # every attack
#   benches/attack.sh --only hijack   # one (names: see tests/attack/attacks.py)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --workspace
start=$SECONDS
python3 tests/attack/suite.py --full --seconds 25 "$@"
echo "duration: $((SECONDS - start)) s"
