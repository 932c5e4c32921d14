#!/usr/bin/env bash
# The utility report's cost against one release of the same job, on the same data, in
# the same run: `veil run` and a 6-ε × 200-trial `veil report`, each repeated, medians and
# their ratio printed.
#
#   benches/scripts/report-vs-run.sh [ROWS] [REPEATS]     (defaults: 1000000, 5)
#
# Uses the release binary (built if missing; `VEIL=path/to/veil` picks another) and a sample table of ROWS rows with
# ROWS/10 users (`veil sample-data`, seed 42), in $TMPDIR.
set -euo pipefail

rows="${1:-1000000}"
repeats="${2:-5}"
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${VEIL:-}" ]; then
  cargo build --release -p veil-cli --quiet
fi
veil="${VEIL:-$CARGO_TARGET_DIR/release/veil}"

work="${TMPDIR:-/tmp}/veil-report-vs-run-$rows"
mkdir -p "$work"
data="$work/events.parquet"
[ -f "$data" ] || "$veil" sample-data --rows "$rows" --users "$((rows / 10))" --out "$data"

# The quickstart's query on the generated table (no consent log or registry: the sample
# users have none).
cat >"$work/job.toml" <<JOB
[source]
path = "$data"
privacy_unit = "user_id"

[budget]
ledger = "$work/ledger.sqlite"
dataset = "events"
purpose = "analytics"
epsilon = 1.0
delta = 1e-6

[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = 3
max_rows_per_group = 5
partitions = "private"
aggregates = [
  { kind = "count" },
  { kind = "unit_count" },
  { kind = "sum", column = "value", bounds = [0.0, 100.0] },
  { kind = "mean", column = "value", bounds = [0.0, 100.0] },
  { kind = "quantiles", column = "value", bounds = [0.0, 100.0], q = [0.5, 0.9] },
]

[output]
path = "$work/out"
format = "parquet"
JOB

rm -f "$work/ledger.sqlite"
"$veil" budget init --ledger "$work/ledger.sqlite" --dataset events --purpose analytics \
  --epsilon 1000000 --delta 0.5 >/dev/null

seconds() { # wall-clock seconds of a command, its output discarded
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { print e - s }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

runs=()
reports=()
for _ in $(seq "$repeats"); do
  # Interleaved, so both see the same machine load.
  runs+=("$(seconds "$veil" run "$work/job.toml")")
  reports+=("$(seconds "$veil" report "$work/job.toml" --epsilons 0.1,0.25,0.5,1,2,4 \
    --trials 200 --output "$work/report")")
done
run_median=$(printf '%s\n' "${runs[@]}" | median)
report_median=$(printf '%s\n' "${reports[@]}" | median)
printf 'rows %s, %s repeats\n' "$rows" "$repeats"
printf 'veil run:    median %.2f s (%s)\n' "$run_median" "${runs[*]}"
printf 'veil report: median %.2f s (%s)\n' "$report_median" "${reports[*]}"
awk -v r="$report_median" -v q="$run_median" 'BEGIN { printf "report / run: %.2f\n", r / q }'
