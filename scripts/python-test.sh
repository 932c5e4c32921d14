#!/usr/bin/env bash
# Tests of the Python package (crates/veil-py): builds its wheel with maturin (debug
# profile by default: the Rust it shares with the workspace's tests is built already),
# installs it into a virtualenv under $HOME/.cache/veil/python (override with
# VEIL_PYTHON_CACHE) with the pinned tools and libraries of
# crates/veil-py/tests/requirements.txt (installed once, again when that file changes),
# and runs the pytest suite, with VEIL naming the `veil` command the suite compares
# against (default: this build's debug binary, built if missing).
#
# Usage: scripts/python-test.sh [extra pytest arguments]
#        VEIL_PYTHON_PROFILE=release scripts/python-test.sh   tests a release wheel
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/veil/target}"
profile="${VEIL_PYTHON_PROFILE:-dev}"
cache="${VEIL_PYTHON_CACHE:-$HOME/.cache/veil/python}"
venv="$cache/venv"
requirements=crates/veil-py/tests/requirements.txt

say() { printf '==> %s\n' "$*"; }

stamp="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements" 2>/dev/null || true)" != "$stamp" ]; then
  say "installing maturin, pytest, pyarrow, pandas and polars into $venv (once)"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$stamp" > "$venv/.requirements"
fi

if [ -z "${VEIL:-}" ]; then
  cargo build -p veil-cli --locked --quiet
  export VEIL="$CARGO_TARGET_DIR/debug/veil"
fi

wheels="$(mktemp -d -t veil-wheel.XXXXXX)"
trap 'rm -rf "$wheels"' EXIT
say "building the wheel ($profile profile)"
"$venv/bin/maturin" build --quiet --locked --profile "$profile" -m crates/veil-py/Cargo.toml \
  --interpreter "$venv/bin/python" --out "$wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/*.whl

say "pytest crates/veil-py/tests (veil: $VEIL)"
cd crates/veil-py
"$venv/bin/python" -m pytest -q -rs tests "$@"
