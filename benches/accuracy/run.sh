#!/usr/bin/env bash
# Veil's accuracy benchmark, peer side: OpenDP, PipelineDP and Tumult Analytics on every
# question and setting, then the Markdown table (with Veil's lines if results.jsonl has them).
#
#   benches/accuracy/run.sh [DATA.parquet]
#
# DATA defaults to ~/.cache/veil/accuracy/events-1m.parquet; if absent it is written by
# `veil sample-data --rows 1000000 --users 100000 --seed 42` when `veil` is on PATH, else
# by make_data.py. Environment:
#   RELEASES=20            releases per setting, for every peer
#   RELEASES_OPENDP, RELEASES_PIPELINEDP, RELEASES_TUMULT   per-peer overrides
#   PEERS="opendp pipelinedp tumult"   which peers to run
#   PARALLEL=0             1: run the peers at the same time (faster; per-release times
#                          then include contention for the two cores)
#   EPSILONS=0.1,1,4  QUESTIONS=q1,q2,q3,q4
# Not run in CI.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VEIL_ACCURACY_CACHE:-$HOME/.cache/veil/accuracy}
DATA=$(realpath -m "${1:-$CACHE/events-1m.parquet}")
OUT=$CACHE/results.jsonl
VENV=$CACHE/venvs/peers
RELEASES=${RELEASES:-20}
PEERS=${PEERS:-opendp pipelinedp tumult}
EPSILONS=${EPSILONS:-0.1,1,4}
QUESTIONS=${QUESTIONS:-q1,q2,q3,q4}
mkdir -p "$CACHE/logs"
cd "$CACHE"  # Spark and friends write scratch files into the working directory

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import opendp, pipeline_dp, tmlt.analytics" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
PY="$VENV/bin/python"

if [ ! -f "$DATA" ]; then
    if command -v veil >/dev/null 2>&1; then
        veil sample-data --rows 1000000 --users 100000 --seed 42 --out "$DATA"
    else
        "$PY" "$HERE/make_data.py" --rows 1000000 --users 100000 --seed 42 --out "$DATA"
    fi
fi

# Drop earlier lines of the peers about to run; keep everything else (Veil's lines).
if [ -f "$OUT" ]; then
    "$PY" - "$OUT" $PEERS <<'PYEOF'
import json, sys
path, peers = sys.argv[1], set(sys.argv[2:])
lines = [l for l in open(path) if l.strip() and json.loads(l).get("system") not in peers]
open(path, "w").writelines(lines)
PYEOF
fi

start=$(date +%s)
run_peer() {
    local peer=$1 var n
    var="RELEASES_$(echo "$peer" | tr '[:lower:]' '[:upper:]')"
    n=${!var:-$RELEASES}
    local t0=$(date +%s)
    "$PY" "$HERE/${peer}_peer.py" --data "$DATA" --epsilon "$EPSILONS" --question "$QUESTIONS" \
        --releases "$n" --out "$CACHE/$peer.jsonl" > "$CACHE/logs/$peer.log" 2>&1 \
        || echo "$peer failed: see $CACHE/logs/$peer.log"
    echo "$peer: $n releases per setting, $(( $(date +%s) - t0 )) s"
}
pids=()
for peer in $PEERS; do
    rm -f "$CACHE/$peer.jsonl"
    if [ "${PARALLEL:-0}" = 1 ]; then run_peer "$peer" & pids+=($!); else run_peer "$peer"; fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
for peer in $PEERS; do cat "$CACHE/$peer.jsonl" >> "$OUT"; done
echo "total: $(( $(date +%s) - start )) s"

"$PY" "$HERE/report.py" "$OUT" > "$CACHE/report.md"
echo "wrote $OUT and $CACHE/report.md"
