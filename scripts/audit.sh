#!/usr/bin/env bash
# The privacy audit: every mechanism, every LDP oracle, the shipped LDP descriptor and the
# quickstart job, through `veil audit`, at fixed seeds. `.ci/run` runs the CI size (about
# two minutes); `--thorough` runs ten times the trials, four bounding keys and the
# quickstart with its quantiles (see TESTING.md for its runtime). Exits non-zero if any
# audit fails. Nothing is charged or written outside a temporary directory.
#
#   scripts/audit.sh              # CI size
#   scripts/audit.sh --thorough   # larger samples, tighter bounds
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/veil/target}"
if [[ -z "${VEIL:-}" ]]; then
  # A no-op when the binary is up to date (as after `cargo test`).
  cargo build -p veil-cli --bin veil --quiet --locked
  VEIL="$CARGO_TARGET_DIR/debug/veil"
fi

scale=1
keys=1
if [[ "${1:-}" == "--thorough" ]]; then
  scale=10
  keys=4
fi

summary() {
  python3 -c '
import json, sys
audit = json.load(sys.stdin)
print("  %s: claimed ε = %.4g, lower bound = %.4f, confidence = %s, verdict = %s" % (
    sys.argv[1], audit["claimed_epsilon"], audit["empirical_epsilon_lower_bound"],
    audit["confidence"], audit["verdict"]))
sys.exit(0 if audit["verdict"] == "pass" else 1)
' "$1"
}

run() {
  local name="$1"
  shift
  local start=$SECONDS
  local code=0
  "$VEIL" audit "$@" >"$out/$name.json" 2>"$out/$name.err" || code=$?
  if [[ "$code" != 0 && "$code" != 1 ]]; then
    cat "$out/$name.err" >&2
    exit "$code"
  fi
  summary "$name" <"$out/$name.json" || failed=1
  echo "    ($((SECONDS - start)) s)"
}

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
failed=0
echo "privacy audit (scale ${scale}): $VEIL"
run mechanisms-pure mechanism --mechanism all --epsilon 1 --delta 1e-6 \
  --trials $((200000 * scale)) --seed 1
run mechanisms-integer-sensitivity mechanism --mechanism discrete-laplace --epsilon 0.5 \
  --sensitivity 3 --trials $((200000 * scale)) --seed 2
run gaussian-large-epsilon mechanism --mechanism discrete-gaussian --epsilon 4 --delta 1e-5 \
  --trials $((300000 * scale)) --seed 3
# At ε = 4 and 5 rows per person the planner's joint draws and the threshold on their count
# are staircase-shaped (at ε = 1 above, the staircase is audited at step 1/2).
run staircase-large-epsilon mechanism --mechanism joint-staircase --epsilon 4 --sensitivity 5 \
  --trials $((200000 * scale)) --seed 9
run staircase-threshold mechanism --mechanism joint-count-threshold --epsilon 4 --delta 1e-6 \
  --sensitivity 5 --trials $((100000 * scale)) --seed 10
run ldp-oracles ldp --protocol all --epsilon 1 --trials $((200000 * scale)) --seed 4
run ldp-oracles-large-epsilon ldp --protocol all --epsilon 4 --domain-size 64 \
  --trials $((200000 * scale)) --seed 5
run ldp-country ldp --protocol configs/ldp-country.toml --trials $((200000 * scale)) --seed 6
# The quickstart's query without its quantiles: quantiles noise a histogram tree per group,
# which makes each release about 20 times slower in a debug build. The thorough audit also
# runs the quickstart itself.
sed -e 's/^  { kind = "quantiles".*$//' -e "s|^ledger = .*|ledger = \"$out/unused.sqlite\"|" \
  -e "s|^path = \"out/quickstart\"|path = \"$out/unused\"|" configs/quickstart.toml >"$out/job.toml"
run job-without-quantiles job "$out/job.toml" --trials $((1500 * scale)) --keys "$keys" --seed 7
if [[ "$scale" != 1 ]]; then
  run quickstart job configs/quickstart.toml --trials 500 --keys "$keys" --seed 8
fi
if [[ "$failed" != 0 ]]; then
  echo "privacy audit: FAILED" >&2
  exit 1
fi
echo "privacy audit: every audit passed"
