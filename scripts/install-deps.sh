#!/usr/bin/env bash
# What building Veil needs besides Rust: `protoc`, which the Spark Connect client's build
# uses to compile Spark's protocol files. Installs it with apt-get (Debian, Ubuntu) when
# it is missing; otherwise says how. Safe to run again.
set -euo pipefail

if command -v protoc >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then
    sudo="sudo"
  else
    echo "protoc is missing: install your system's protobuf compiler (Debian, Ubuntu: apt-get install protobuf-compiler; macOS: brew install protobuf), or set PROTOC to its path" >&2
    exit 1
  fi
fi
if command -v apt-get >/dev/null; then
  echo "installing protoc (Debian's protobuf-compiler)" >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq protobuf-compiler >/dev/null
else
  echo "protoc is missing and apt-get is not available: install your system's protobuf compiler, or set PROTOC to its path" >&2
  exit 1
fi
