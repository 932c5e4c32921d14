#!/usr/bin/env bash
# Builds the browser client's npm-ready folder: the veil-ldp-web crate compiled to
# WebAssembly (Cargo profile `web`: small), its JavaScript bindings made by wasm-bindgen,
# and the wrapper, types and README from crates/veil-ldp-web/js.
#
# Needs only Rust: the wasm32 target is added with rustup, and wasm-bindgen-cli is installed
# with cargo, at exactly the version of the wasm-bindgen library in Cargo.lock (the two must
# match), into tools/ beside the build directory (kept between runs, like the build).
#
# Usage: scripts/build-web.sh [OUT]      (default OUT: $CARGO_TARGET_DIR/web/veil-ldp)
# Prints the folder, then the .wasm's size raw and gzipped.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/veil/target}"
out="${1:-$CARGO_TARGET_DIR/web/veil-ldp}"
tools="${VEIL_TOOLS:-$(dirname "$CARGO_TARGET_DIR")/tools}"

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ -z "$version" ]; then
  echo "build-web: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown >&2
fi

if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
  echo "build-web: installing wasm-bindgen-cli $version into $tools" >&2
  # Its own lock file first; if the registry lacks a version it pins, resolve afresh (the
  # CLI itself stays at exactly $version).
  cargo install wasm-bindgen-cli --version "=$version" --locked --root "$tools" >&2 ||
    cargo install wasm-bindgen-cli --version "=$version" --root "$tools" >&2
fi

cargo build --locked --profile web --target wasm32-unknown-unknown -p veil-ldp-web >&2
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/web/veil_ldp_web.wasm"

rm -rf "$out"
mkdir -p "$out"
"$tools/bin/wasm-bindgen" --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$out" --out-name veil_ldp_web "$wasm"
cp crates/veil-ldp-web/js/index.js crates/veil-ldp-web/js/index.d.ts crates/veil-ldp-web/js/README.md "$out/"
crate_version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
cat > "$out/package.json" <<EOF
{
  "name": "@veil-dp/ldp",
  "version": "$crate_version",
  "description": "Local differential privacy in the browser: Veil's randomizers in WebAssembly",
  "license": "Apache-2.0",
  "type": "module",
  "main": "index.js",
  "types": "index.d.ts",
  "files": ["index.js", "index.d.ts", "veil_ldp_web.js", "veil_ldp_web_bg.wasm", "README.md"],
  "sideEffects": false
}
EOF

echo "$out"
raw=$(wc -c < "$out/veil_ldp_web_bg.wasm")
gzipped=$(gzip -9c "$out/veil_ldp_web_bg.wasm" | wc -c)
echo "veil_ldp_web_bg.wasm: $raw bytes, $gzipped gzipped" >&2
