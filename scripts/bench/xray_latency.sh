#!/usr/bin/env bash
# Single-scan latency of the X-ray path (issue 5): 100 simulated 1024 x 1024 parcel scans
# (pseudo-colour PNG, 16-bit PNG and 16-bit TIFF; made once by scripts/xray/synth.py into
# .cache/bench/xray1024), one inference thread, one scan at a time; prints p50/p99 of
# decode -> hashes -> letterbox -> detector -> boxes, and each stage's median.
# Extra arguments: [MODEL_DIR] [ROUNDS] (default models/xray-v4, the default detector; 3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-ort.sh
scripts/setup-build.sh
scripts/setup-python.sh
scans=.cache/bench/xray1024
if [ ! -f "$scans/manifest.csv" ]; then
    .venv/bin/python scripts/xray/synth.py --out "$scans" --train 0 --val 0 --test 100 --size 1024 --square --seed 1024
fi
cargo run --release --quiet --example xray_latency -- "$scans/test/images" "$@"
