#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 600), one after the other, with
# cargo-fuzz (libFuzzer). cargo-fuzz needs nightly flags: on a stable toolchain they are
# enabled with RUSTC_BOOTSTRAP=1. Corpora grow in fuzz/corpus/<target>; crashes land in
# fuzz/artifacts/<target> and make the script fail. See TESTING.md.
#
#   cargo install cargo-fuzz --locked   # once
#   scripts/fuzz.sh                     # 10 minutes per target
#   scripts/fuzz.sh 60 ldp_report       # one target, one minute
#   STABLE=1 scripts/fuzz.sh 600        # no libFuzzer: the stable runner, 10 minutes each
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
shift || true
targets=("$@")
if [[ ${#targets[@]} == 0 ]]; then
  targets=(job_parser purposes ldp_descriptor ldp_report)
fi

# Without cargo-fuzz (or where libFuzzer cannot be built): the same checks on mutated and
# random input from the stable test `crates/veil-cli/tests/it/fuzz.rs`, not coverage-guided.
if [[ -n "${STABLE:-}" ]]; then
  cd ..
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/veil/target}"
  VEIL_FUZZ_SECONDS="$seconds" cargo test -p veil-cli --test it --locked -- fuzz:: \
    --nocapture --test-threads 1 2>&1 | grep -E "^fuzz |panicked|test result"
  exit "${PIPESTATUS[0]}"
fi
export RUSTC_BOOTSTRAP=1
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/veil/target-fuzz}"
build=(--dev --sanitizer none --target-dir "$target_dir")
cargo fuzz build "${build[@]}"

# Seeds: the shipped configuration files.
mkdir -p corpus/job_parser corpus/purposes corpus/ldp_descriptor corpus/ldp_report
cp ../configs/quickstart.toml corpus/job_parser/ 2>/dev/null || true
cp ../configs/purposes.toml corpus/purposes/ 2>/dev/null || true
cp ../configs/ldp-country.toml corpus/ldp_descriptor/ 2>/dev/null || true

# The job parser reads the files a job names relative to the current directory: run it
# in an empty one.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
for target in "${targets[@]}"; do
  echo "==> $target for ${seconds}s"
  mkdir -p "artifacts/$target"
  code=0
  (
    cd "$scratch"
    "$target_dir/x86_64-unknown-linux-gnu/debug/$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$OLDPWD/artifacts/$target/" "$OLDPWD/corpus/$target"
  ) >"artifacts/$target.log" 2>&1 || code=$?
  grep -E "^#[0-9]+.*DONE|^stat::number_of_executed_units|^stat::peak_rss|Test unit written|^SUMMARY|panicked" \
    "artifacts/$target.log" || true
  if [[ "$code" != 0 ]]; then
    echo "$target: libFuzzer exited with $code (see fuzz/artifacts/$target.log)" >&2
    failed=1
  fi
done
exit "$failed"
