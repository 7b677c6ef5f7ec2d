#!/usr/bin/env bash
# Trains tusk's X-ray detector (models/xray-v1) on synthetic scans. Never run in CI: CI uses the
# committed model. One command, fixed seeds:
#   1. .venv (numpy, scipy, Pillow) and .venv-train (torch, torchvision, onnx)
#   2. scripts/xray/synth.py: 4,000 train, 400 validation, 600 test scans into .cache/xray-synth
#      (threat image projection onto the train / val / test shares of ../shared/datasets/xray and
#      simulated parcels; the test split gets held-out shape families) — ~6 min on 2 cores
#   3. scripts/xray/train_detector.py: 60 epochs, thresholds on validation, ONNX export into
#      models/xray-v1/ (xray-v1.onnx, thresholds.json). Uses a CUDA GPU when there is one
#      (4.5 min on an H200); on this 2-core machine one epoch takes ~5 min, so the full recipe needs
#      ~5 h: --max-minutes (default 85) stops it early, with a weaker model.
#   4. tusk eval on the test split and the real scans that were no training background ->
#      models/xray-v1/metrics.json (the numbers on MODEL_CARD.md and in scripts/quality.sh).
# Then copy the printed sha256 and thresholds into models/xray-v1/model.toml.
# Extra arguments go to train_detector.py (e.g. --epochs 20 --device cpu).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-python.sh
[ -x .venv-train/bin/python ] || python3 -m venv .venv-train
.venv-train/bin/pip install --quiet torch torchvision onnx onnxscript onnxruntime==1.31.1 pillow==13.0.0 numpy==2.4.6
[ -f .cache/xray-synth/manifest.csv ] || .venv/bin/python scripts/xray/synth.py --out .cache/xray-synth
.venv-train/bin/python scripts/xray/train_detector.py --data .cache/xray-synth --out models/xray-v1 "$@"
sha256sum models/xray-v1/xray-v1.onnx
cat models/xray-v1/thresholds.json
echo "update models/xray-v1/model.toml (sha256, thresholds), then:"
echo "  scripts/setup-ort.sh && cargo run --release -- eval --kind xray --labels .cache/xray-synth/eval.csv --boxes .cache/xray-synth/eval_boxes.csv --json / > models/xray-v1/metrics.json"
