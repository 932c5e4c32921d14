#!/usr/bin/env bash
# Kill -9 `veil run` at random points of its run, TRIALS times (default 100), then check
# that the ledger is intact, that no output file is half-written, and that every
# published output is matched by a committed charge.
#
#   scripts/faults/kill-runs.sh            # 100 trials
#   TRIALS=20 SEED=3 scripts/faults/kill-runs.sh
source "$(dirname "$0")/common.sh"

TRIALS="${TRIALS:-100}"
RANDOM="${SEED:-1}"
make_data
write_job "$WORK/job.toml" 0.01
"$VEIL" budget init --ledger "$WORK/ledger.sqlite" --dataset events --purpose faults \
  --epsilon 1000 >/dev/null

# How long one run takes, to spread the kills over all of it (and a little past it).
start=$(date +%s%N)
"$VEIL" run "$WORK/job.toml" --output "$WORK/out/calibration" --show 0 >/dev/null 2>&1
duration_ms=$(( ($(date +%s%N) - start) / 1000000 ))
window_ms=$(( duration_ms * 12 / 10 ))
echo "one run takes ${duration_ms} ms; killing at random in [0, ${window_ms}] ms, ${TRIALS} times"

killed=0
finished=0
for trial in $(seq 1 "$TRIALS"); do
  delay_ms=$(( (RANDOM * 32768 + RANDOM) % (window_ms + 1) ))
  "$VEIL" run "$WORK/job.toml" --output "$WORK/out/run-$trial" --show 0 >/dev/null 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then
    killed=$((killed + 1))
  else
    finished=$((finished + 1))
  fi
  wait "$pid" 2>/dev/null || true
done
leftover=$(find "$WORK/out" -name '.*' -type f | wc -l)
echo "killed ${killed} runs, ${finished} finished before their kill; ${leftover} hidden temporary files left behind"
check_ledger "$WORK/ledger.sqlite" "$WORK"/out/run-*
"$VEIL" budget status --ledger "$WORK/ledger.sqlite" >/dev/null
echo "kill-runs: ok"
