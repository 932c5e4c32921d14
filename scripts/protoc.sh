#!/usr/bin/env bash
# Prints the path of a `protoc` for the Spark engine's build (`--features spark`): $PROTOC
# if set, else the one on PATH, else the binary that the `protoc-bin-vendored` crate ships
# (fetched from crates.io by cargo, like any dependency: nothing but Rust is needed).
#
# Usage: PROTOC=$(scripts/protoc.sh) cargo build --release -p veil-cli --features spark
set -euo pipefail

if [ -n "${PROTOC:-}" ]; then
  echo "$PROTOC"
elif command -v protoc >/dev/null; then
  command -v protoc
else
  cd "$(dirname "$0")/.."
  cargo run --quiet --locked --manifest-path tools/protoc/Cargo.toml
fi
