#!/usr/bin/env bash
# Build tools and C/C++ libraries tusk needs beyond Rust, from Debian's packages:
# - nasm, which assembles libjpeg-turbo's SIMD code (tusk decodes JPEGs with libjpeg-turbo,
#   Pillow's decoder, through the mozjpeg crate);
# - OpenCV 4.6 (libopencv-dev) for ORB features and RANSAC, which verify re-posted photos
#   (reuse::verify), and libclang-dev, which the `opencv` crate uses to generate its bindings.
# No-op when all are present.
set -euo pipefail
have_all() {
  command -v nasm >/dev/null 2>&1 &&
    pkg-config --exists opencv4 2>/dev/null &&
    ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1
}
if have_all; then
  exit 0
fi
packages=(nasm pkg-config libopencv-dev libclang-dev clang)
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup-build: installing ${packages[*]} (apt-get, once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "${packages[@]}" >/dev/null; }
fi
have_all || { echo "setup-build: tusk needs nasm, pkg-config, OpenCV 4 (libopencv-dev) and libclang (libclang-dev); install them with your package manager" >&2; exit 1; }
