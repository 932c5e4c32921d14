# Shared setup of the fault and load scripts: the `veil` binary, a scratch directory with
# a small synthetic dataset, and a job over it. Sourced, not run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/veil/target}"
VEIL="${VEIL:-$CARGO_TARGET_DIR/debug/veil}"
if [[ ! -x "$VEIL" ]]; then
  (cd "$ROOT" && cargo build -p veil-cli --bin veil --quiet)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/veil-faults.XXXXXX")"
if [[ -z "${KEEP:-}" ]]; then
  trap 'rm -rf "$WORK"' EXIT
else
  echo "keeping $WORK"
fi

# A small dataset: ROWS events of USERS users (default 200,000 and 20,000).
make_data() {
  "$VEIL" sample-data --rows "${ROWS:-200000}" --users "${USERS:-20000}" \
    --out "$WORK/events.parquet" --seed 7 2>/dev/null
  printf 'country\n' > "$WORK/countries.csv"
  for country in US IN BR DE GB FR JP MX ID IT; do printf '%s\n' "$country" >> "$WORK/countries.csv"; done
}

# write_job FILE EPSILON: counts and sums per country over public partitions, pure ε.
write_job() {
  cat > "$1" <<JOB
[source]
path = "$WORK/events.parquet"
privacy_unit = "user_id"

[budget]
ledger = "$WORK/ledger.sqlite"
dataset = "events"
purpose = "faults"
epsilon = $2

[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = 2
max_rows_per_group = 5
partitions = { public = "$WORK/countries.csv" }
aggregates = [
  { kind = "count" },
  { kind = "sum", column = "value", bounds = [0.0, 100.0] },
  { kind = "quantiles", column = "value", bounds = [0.0, 100.0], q = [0.5] },
]

[output]
path = "$WORK/out"
format = "csv"
JOB
}

# check_ledger LEDGER OUTPUTS...: the ledger is intact and every published output is
# complete and matched by a committed charge. Prints a one-line summary.
check_ledger() {
  local ledger="$1"
  shift
  python3 - "$ledger" "$@" <<'PY'
import csv, json, os, sqlite3, sys

ledger, outputs = sys.argv[1], sys.argv[2:]
db = sqlite3.connect(ledger)
problems = []
if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
    problems.append("integrity_check failed")
states = dict(db.execute("SELECT id, state FROM charges").fetchall())
for charge, state in states.items():
    if state not in ("reserved", "committed", "aborted"):
        problems.append(f"charge {charge} in state {state}")
for (charge,) in db.execute("SELECT DISTINCT charge_id FROM releases"):
    if states.get(charge) != "committed":
        problems.append(f"release recorded for charge {charge} in state {states.get(charge)}")
published = 0
for directory in outputs:
    if not os.path.isdir(directory):
        continue
    visible = [name for name in os.listdir(directory) if not name.startswith(".")]
    if not visible:
        continue
    published += 1
    for name in visible:
        path = os.path.join(directory, name)
        if name == "release.json":
            with open(path) as handle:
                manifest = json.load(handle)  # a half-written file does not parse
            charge = manifest["ledger"]["charge_id"]
            if states.get(charge) != "committed":
                problems.append(f"{path}: charge {charge} is {states.get(charge)}")
        elif name.endswith(".csv"):
            with open(path, newline="") as handle:
                rows = list(csv.reader(handle))
            width = len(rows[0])
            if any(len(row) != width for row in rows) or len(rows) < 2:
                problems.append(f"{path}: incomplete table")
        else:
            problems.append(f"{path}: unexpected file")
committed = sum(1 for state in states.values() if state == "committed")
if published > committed:
    problems.append(f"{published} outputs published but only {committed} charges committed")
counts = {s: sum(1 for v in states.values() if v == s) for s in ("committed", "reserved", "aborted")}
print(f"charges: {counts}; outputs published: {published}; integrity: ok" if not problems else "")
for problem in problems:
    print("PROBLEM:", problem)
sys.exit(1 if problems else 0)
PY
}
