#!/usr/bin/env bash
# Build tools tusk needs beyond Rust: nasm, which assembles libjpeg-turbo's SIMD code (tusk decodes
# JPEGs with libjpeg-turbo, Pillow's decoder, through the mozjpeg crate). No-op when present.
set -euo pipefail
if command -v nasm >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq nasm >/dev/null 2>&1 || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq nasm >/dev/null; }
fi
command -v nasm >/dev/null 2>&1 || { echo "setup-build: nasm is required to build tusk (install it with your package manager)" >&2; exit 1; }
