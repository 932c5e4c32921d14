#!/usr/bin/env bash
# Live tests of the Spark engine: builds Veil with it (the `spark` feature; its Spark Connect
# client needs `protoc`, which scripts/protoc.sh finds or fetches from crates.io), starts a
# local Spark Connect server (`local[2]`) from the pyspark distribution, runs the tests that
# need one (veil-spark's, and the `veil` CLI's `spark::` tests) against it, and stops it on
# exit.
#
# pyspark is installed into a virtualenv under $HOME/.cache/veil/spark (override with
# VEIL_SPARK_CACHE) when it is not there yet, and reused afterwards. It needs Java 17+
# and Python 3 with venv; PyPI is the only download.
#
# Usage: scripts/spark-test.sh [extra cargo test arguments]
#        VEIL_SPARK_KEEP=1 scripts/spark-test.sh   keeps the server's log
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/veil/target}"

PYSPARK_VERSION=4.0.1
cache="${VEIL_SPARK_CACHE:-$HOME/.cache/veil/spark}"
venv="$cache/venv"

say() { printf '==> %s\n' "$*"; }

command -v java >/dev/null || { echo "spark-test: Java (17 or later) is needed to run Spark" >&2; exit 1; }

installed="$("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)' 2>/dev/null || true)"
if [ "$installed" != "$PYSPARK_VERSION" ]; then
  say "installing pyspark $PYSPARK_VERSION into $venv (once; about 450 MB)"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION"
fi
spark_home="$("$venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"

PROTOC="$(scripts/protoc.sh)"
export PROTOC
features=(--features veil-cli/spark,veil-spark/connect)

# Build the tests first, so the server does not wait for the compiler.
say "building the tests with the Spark engine (protoc: $PROTOC)"
cargo test -p veil-spark -p veil-cli "${features[@]}" --test it --no-run --quiet "$@"
say "veil-spark's unit tests with the Spark Connect client"
cargo test -p veil-spark --features connect --lib --quiet "$@"

# The server ends each result stream after 1 s (default: 2 minutes), so that every query
# of the tests is resumed by ReattachExecute, as long queries are on a real cluster.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp -t veil-spark-server.XXXXXX.log)"
say "starting a Spark Connect server on 127.0.0.1:$port (local[2]; log: $log)"
"$spark_home/bin/spark-submit" \
  --class org.apache.spark.sql.connect.service.SparkConnectServer \
  --name veil-spark-test \
  --master 'local[2]' \
  --driver-memory 2g \
  --conf spark.connect.grpc.binding.address=127.0.0.1 \
  --conf spark.connect.grpc.binding.port="$port" \
  --conf spark.ui.enabled=false \
  --conf spark.sql.shuffle.partitions=4 \
  --conf spark.connect.execute.reattachable.senderMaxStreamDuration=1s \
  spark-internal >"$log" 2>&1 &
server=$!

stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [ -z "${VEIL_SPARK_KEEP:-}" ]; then rm -f "$log"; fi
}
trap stop EXIT

for _ in $(seq 1 180); do
  if grep -q "Spark Connect server started" "$log"; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "spark-test: the Spark Connect server stopped while starting:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  sleep 1
done
grep -q "Spark Connect server started" "$log" || { echo "spark-test: the server did not start in 3 minutes" >&2; tail -n 40 "$log" >&2; exit 1; }

export VEIL_SPARK_REMOTE="sc://127.0.0.1:$port"
say "veil-spark's live tests against $VEIL_SPARK_REMOTE"
cargo test -p veil-spark --features connect --test it "$@" -- --test-threads 1
say "the veil CLI on Spark"
cargo test -p veil-cli --features spark --test it "$@" -- --test-threads 1 spark::
