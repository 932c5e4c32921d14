#!/usr/bin/env bash
# Output directories that cannot be written: on a full file system (a tmpfs filled up),
# on a read-only file system, and under a regular file. Each run must fail with a clear
# error naming the path, publish nothing, and leave no charge in force (aborted, or never
# reserved). Needs root for `mount` (tmpfs).
#
#   scripts/faults/full-disk.sh
source "$(dirname "$0")/common.sh"

make_data
write_job "$WORK/job.toml" 0.01
"$VEIL" budget init --ledger "$WORK/ledger.sqlite" --dataset events --purpose faults \
  --epsilon 1000 >/dev/null

mounts=()
cleanup_mounts() { for point in "${mounts[@]}"; do umount "$point" 2>/dev/null || true; done; }
trap 'cleanup_mounts; rm -rf "$WORK"' EXIT

expect_failure() {
  local name="$1" output="$2"
  local code=0
  "$VEIL" run "$WORK/job.toml" --output "$output" --show 0 >/dev/null 2>"$WORK/$name.err" || code=$?
  echo "$name: exit ${code}: $(grep '^error' "$WORK/$name.err")"
  if [[ "$code" == 0 ]]; then
    echo "full-disk: $name released" >&2
    exit 1
  fi
  if [[ -d "$output" ]] && find "$output" -mindepth 1 -not -name '.*' | grep -q .; then
    echo "full-disk: $name left files in $output" >&2
    exit 1
  fi
}

# A full file system: 64 KiB of tmpfs, filled before the run.
mkdir -p "$WORK/full"
mount -t tmpfs -o size=64k tmpfs "$WORK/full"
mounts+=("$WORK/full")
mkdir -p "$WORK/full/out"
dd if=/dev/zero of="$WORK/full/filler" bs=4k 2>/dev/null || true
expect_failure disk-full "$WORK/full/out"

# A read-only file system.
mkdir -p "$WORK/readonly"
mount -t tmpfs -o size=64k tmpfs "$WORK/readonly"
mounts+=("$WORK/readonly")
mkdir -p "$WORK/readonly/out"
mount -o remount,ro "$WORK/readonly"
expect_failure read-only "$WORK/readonly/out"

# A path under a regular file (no directory can be made there).
touch "$WORK/a-file"
expect_failure under-a-file "$WORK/a-file/out"

check_ledger "$WORK/ledger.sqlite"
python3 - "$WORK/ledger.sqlite" <<'PY'
import sqlite3, sys
states = [state for (state,) in sqlite3.connect(sys.argv[1]).execute("SELECT state FROM charges")]
assert "committed" not in states and "reserved" not in states, states
print(f"charges: {states} (the runs that reserved gave their reservation back)")
PY
"$VEIL" budget history --ledger "$WORK/ledger.sqlite" | tail -n 5
echo "full-disk: ok"
