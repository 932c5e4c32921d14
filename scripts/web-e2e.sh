#!/usr/bin/env bash
# The opt-in loop end to end: the consent page (examples/web) with the browser client in
# Debian's headless Chromium (installed with apt-get if missing), posting to `veil ldp
# collect`; then `veil ldp aggregate` over what the collector stored must match what the
# page sent. The page is driven through playwright-core (npm, pinned in
# crates/veil-ldp-web/e2e; it downloads no browser), and audited with axe-core.
#
# Bounded: a fixed number of visitors (VISITORS, default 3000), a timeout on every step.
# Usage: scripts/web-e2e.sh            (VEIL=path/to/veil to test another binary)
# Prints the measurements as JSON (randomizer speed in Chromium included); exit 1 on failure.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/veil/target}"
veil="${VEIL:-$CARGO_TARGET_DIR/debug/veil}"
visitors="${VISITORS:-3000}"

chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
  echo "web-e2e: installing Debian's chromium" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  timeout 600 $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive timeout 900 $sudo apt-get install -y -qq chromium >&2
  chromium=$(command -v chromium)
fi
if [ ! -x "$veil" ]; then
  cargo build --locked -p veil-cli >&2
fi

work=$(mktemp -d)
collector_pid=""
cleanup() {
  if [ -n "$collector_pid" ]; then kill -TERM "$collector_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The page, with the client built beside it.
mkdir -p "$work/page" "$work/bench"
cp -r examples/web/. "$work/page/"
scripts/build-web.sh "$work/page/veil-ldp" > /dev/null
# The test's npm packages, exactly as locked.
(cd crates/veil-ldp-web/e2e &&
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund --ignore-scripts --silent)

# The protocol (memoising: a visitor's country is one permanent answer) and the collector,
# which lets the page's origin post.
printf 'FR\nDE\nIT\nES\nPL\n' > "$work/countries.txt"
"$veil" ldp protocol --oracle grr --epsilon 2 --memoize --domain-file "$work/countries.txt" \
  --output "$work/protocol.toml" 2> /dev/null
for oracle in grr olh hadamard; do
  "$veil" ldp protocol --json --oracle "$oracle" --epsilon 1 --domain-size 1024 \
    --output "$work/bench/$oracle-1024.json" 2> /dev/null
done
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"$veil" ldp collect --protocol "$work/protocol.toml" --listen 127.0.0.1:0 --out "$work/reports" \
  --allow-origin "http://127.0.0.1:$port" 2> "$work/collector.log" &
collector_pid=$!
for _ in $(seq 1 300); do
  grep -q '^listening on ' "$work/collector.log" && break
  sleep 0.1
done
url=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$work/collector.log")
if [ -z "$url" ]; then
  cat "$work/collector.log" >&2
  exit 1
fi

timeout 600 node crates/veil-ldp-web/e2e/e2e.mjs --page "$work/page" --port "$port" \
  --collector "$url" --chromium "$chromium" --visitors "$visitors" \
  --bench-descriptors "$work/bench" --out "$work/result.json"

kill -TERM "$collector_pid"
timeout 60 tail --pid="$collector_pid" -f /dev/null
collector_pid=""
cat "$work/collector.log" >&2

sent=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).sent)' "$work/result.json")
"$veil" ldp aggregate --protocol "$work/protocol.toml" --reports "$work/reports" \
  --output "$work/estimates.csv" 2> "$work/aggregate.log"
cat "$work/aggregate.log" >&2
grep -q "aggregated $sent of $sent reports" "$work/aggregate.log" || {
  echo "web-e2e: the collector did not store exactly the $sent reports the page sent" >&2
  exit 1
}
node crates/veil-ldp-web/e2e/check.mjs "$work/result.json" "$work/estimates.csv"
echo "web-e2e: ok ($sent reports; $root)"
