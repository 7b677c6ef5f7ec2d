#!/usr/bin/env bash
# Quick start, part 2: every test (unit, parity, bad input, end to end, CLI), with the real
# ONNX Runtime. Needs nothing outside the repository. Extra arguments go to `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-ort.sh
cargo test --workspace "$@"
