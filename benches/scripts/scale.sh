#!/usr/bin/env bash
# Veil against DuckDB and Polars' streaming engine on the same bounded question, at sizes
# up to larger than memory: wall time and peak resident memory of each, side by side.
# Not run in CI (it writes gigabytes and takes minutes per size).
#
#   benches/scripts/scale.sh [ROWS ...]          (default: 10000000 100000000)
#
#   BUDGET=4GiB       memory budget: `veil run --memory`, DuckDB's memory_limit
#   REPEATS=3         runs of each tool per size (the medians are printed)
#   WORK=/tmp/veil-scale   data, spill and temporary files (remove it when done)
#   VEIL=path/to/veil, BASELINE=path/to/polars-baseline   (default: release builds)
#   KEEP_DATA=1       keep each size's Parquet file (default: removed after its size)
#
# The question is BENCHMARKS.md's engine job: count and sum of `value` (clamped to
# [0, 100]) per `country`, each user in at most 3 countries with at most 5 rows in each,
# on `veil sample-data --rows N --users N/10` (seed 42). Veil releases it (ε = 1,
# δ = 1e-6, exact noise, ledger); DuckDB runs the same bounding in SQL (ROW_NUMBER over
# (user, country) by a keyed hash, then over user) with `memory_limit` set to the same
# budget and 2 threads; Polars runs the plain-Polars bounded baseline of
# `benches/src/lib.rs` (first rows and ranks instead of keyed hashes: less work than
# the others) on its streaming engine, under an address-space limit of 3 × BUDGET so that
# a run that cannot fit fails instead of starving the machine. Requires Python with the
# `duckdb` package (`pip install duckdb`).
set -euo pipefail

cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000000 100000000)
budget="${BUDGET:-4GiB}"
repeats="${REPEATS:-3}"
work="${WORK:-${TMPDIR:-/tmp}/veil-scale}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${VEIL:-}" ] || [ -z "${BASELINE:-}" ]; then
  cargo build --release -p veil-cli -p veil-bench --quiet
fi
veil="${VEIL:-$CARGO_TARGET_DIR/release/veil}"
baseline="${BASELINE:-$CARGO_TARGET_DIR/release/polars-baseline}"
budget_bytes=$(python3 -c "
import re, sys
m = re.fullmatch(r'([0-9.]+)\s*([KMGT]?)(i?B)?', sys.argv[1], re.I)
print(int(float(m[1]) * 1024 ** ' KMGT'.index((m[2] or ' ').upper())))" "$budget")
mkdir -p "$work"

# One run: wall seconds and peak resident memory (MiB) from /usr/bin/time, or "failed".
measure() {
  local log="$work/time.log"
  if /usr/bin/time -v "$@" >"$work/out.log" 2>"$log"; then
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0;
                  for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s }
                /Maximum resident set size/ { rss = $2 / 1024 }
                END { printf "%.2f %.0f\n", wall, rss }' "$log"
  else
    echo "failed failed"
    tail -n 3 "$log" "$work/out.log" >&2 || true
  fi
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "failed"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

cat >"$work/duckdb_bounded.py" <<'PY'
import sys, duckdb
path, budget, temp = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute(f"SET memory_limit = '{budget}'")
con.execute("SET threads = 2")
con.execute(f"SET temp_directory = '{temp}'")
con.execute("SET max_temp_directory_size = '15GiB'")
con.execute("SET preserve_insertion_order = false")
rows = con.execute(f"""
WITH r AS (
  SELECT user_id, country, LEAST(GREATEST(value, 0), 100) AS v,
         hash(7310937, user_id, country, value) AS row_key
  FROM read_parquet('{path}') WHERE user_id IS NOT NULL
), linf AS (
  SELECT user_id, country, v,
         ROW_NUMBER() OVER (PARTITION BY user_id, country ORDER BY row_key) AS nth_row
  FROM r
), pairs AS (
  SELECT user_id, country, count(*) AS n, sum(v) AS s FROM linf WHERE nth_row <= 5
  GROUP BY user_id, country
), l0 AS (
  SELECT country, n, s,
         ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY hash(4242, user_id, country)) AS nth_group
  FROM pairs
)
SELECT country, sum(n) AS count, sum(s) AS sum FROM l0 WHERE nth_group <= 3 GROUP BY country
""").fetchall()
print(len(rows), "groups")
PY

printf '| rows | file | tool | wall (median) | peak RSS (median) | runs (wall s / RSS MiB) |\n'
printf '|---|---|---|---|---|---|\n'
for rows in "${sizes[@]}"; do
  data="$work/events-$rows.parquet"
  [ -f "$data" ] || "$veil" sample-data --rows "$rows" --users "$((rows / 10))" --out "$data" 2>/dev/null
  file_size=$(du -h "$data" | cut -f1)
  rm -rf "$work/ledger.sqlite" "$work/out" "$work/duck-tmp"
  mkdir -p "$work/duck-tmp"
  "$veil" budget init --ledger "$work/ledger.sqlite" --dataset events --purpose analytics \
    --epsilon 1000000000 --delta 0.5 >/dev/null
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
  { kind = "sum", column = "value", bounds = [0.0, 100.0] },
]

[output]
path = "$work/out"
format = "parquet"

[engine]
memory = "$budget"
JOB
  declare -A walls=() rsss=() runs=()
  for _ in $(seq "$repeats"); do
    # Interleaved, so that all three see the same load on the machine.
    for tool in veil duckdb polars-streaming; do
      case "$tool" in
        veil) result=$(measure "$veil" run "$work/job.toml" --quiet --spill-dir "$work") ;;
        duckdb) result=$(measure python3 "$work/duckdb_bounded.py" "$data" "$budget" "$work/duck-tmp") ;;
        polars-streaming) result=$( (ulimit -v $((budget_bytes * 3 / 1024)); measure "$baseline" bounded-streaming "$data") ) ;;
      esac
      read -r wall rss <<<"$result"
      walls[$tool]+="$wall "
      rsss[$tool]+="$rss "
      runs[$tool]+="$wall/$rss, "
    done
  done
  for tool in veil duckdb polars-streaming; do
    wall=$(tr ' ' '\n' <<<"${walls[$tool]}" | grep -v '^$' | grep -v failed | median)
    rss=$(tr ' ' '\n' <<<"${rsss[$tool]}" | grep -v '^$' | grep -v failed | median)
    printf '| %s | %s | %s | %s s | %s MiB | %s |\n' "$rows" "$file_size" "$tool" "$wall" "$rss" "${runs[$tool]%, }"
  done
  unset walls rsss runs
  [ -n "${KEEP_DATA:-}" ] || rm -f "$data"
done
rm -rf "$work/duck-tmp" "$work/out" "$work/ledger.sqlite"
