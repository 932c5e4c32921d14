#!/usr/bin/env bash
# RUNS concurrent `veil run`s (default 20) against one ledger whose budget fits exactly
# ALLOWED of them (default 10): exactly ALLOWED succeed, the rest exit 3 having released
# nothing.
#
#   scripts/faults/concurrent-runs.sh
source "$(dirname "$0")/common.sh"

RUNS="${RUNS:-20}"
ALLOWED="${ALLOWED:-10}"
make_data
write_job "$WORK/job.toml" 0.05

# The cost of one run as the ledger composes it: run once on a scratch ledger, read its
# mechanisms, and compose ALLOWED and ALLOWED + 1 of them with the accountant. A total
# halfway between fits exactly ALLOWED runs.
"$VEIL" budget init --ledger "$WORK/scratch.sqlite" --dataset events --purpose faults \
  --epsilon 1000 >/dev/null
"$VEIL" run "$WORK/job.toml" --ledger "$WORK/scratch.sqlite" --output "$WORK/scratch" \
  --show 0 >/dev/null 2>&1
mapfile -t specs < <(python3 -c "
import sqlite3, sys
for (spec, times) in sqlite3.connect(sys.argv[1]).execute('SELECT mechanism, times FROM charge_items'):
    print(spec)
" "$WORK/scratch.sqlite")
compose() {
  local times="$1"
  local args=()
  for spec in "${specs[@]}"; do args+=("${spec},times=${times}"); done
  "$VEIL" accountant compose --delta 0 "${args[@]}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["epsilon"])'
}
fits=$(compose "$ALLOWED")
over=$(compose $((ALLOWED + 1)))
total=$(python3 -c "print(($fits + $over) / 2)")
echo "${ALLOWED} runs cost ε = ${fits}, $((ALLOWED + 1)) cost ε = ${over}: budget ε = ${total}"
"$VEIL" budget init --ledger "$WORK/ledger.sqlite" --dataset events --purpose faults \
  --epsilon "$total" >/dev/null

pids=()
for run in $(seq 1 "$RUNS"); do
  "$VEIL" run "$WORK/job.toml" --output "$WORK/out/run-$run" --show 0 \
    >"$WORK/run-$run.log" 2>&1 &
  pids+=($!)
done
succeeded=0
refused=0
other=0
for pid in "${pids[@]}"; do
  code=0
  wait "$pid" || code=$?
  case "$code" in
    0) succeeded=$((succeeded + 1)) ;;
    3) refused=$((refused + 1)) ;;
    *) other=$((other + 1)) ;;
  esac
done
echo "${succeeded} released, ${refused} refused (exit 3), ${other} other"
check_ledger "$WORK/ledger.sqlite" "$WORK"/out/run-*
grep -h "^error" "$WORK"/run-*.log | sort | uniq -c | head -3
if [[ "$succeeded" != "$ALLOWED" || "$refused" != $((RUNS - ALLOWED)) || "$other" != 0 ]]; then
  echo "concurrent-runs: FAILED" >&2
  exit 1
fi
echo "concurrent-runs: ok"
