#!/usr/bin/env bash
# Quick start, part 1: scan the bundled demo data with the real model into SQLite and JSONL.
# Installs ONNX Runtime first if needed. Extra arguments go to `tusk scan`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-ort.sh
scripts/setup-build.sh
mkdir -p out
cargo run --release --quiet -- scan datasets/demo/manifest.jsonl \
  --db out/demo.db --jsonl out/demo.jsonl "$@"
echo "results: out/demo.db (SQLite), out/demo.jsonl (one JSON line per object)"
