#!/usr/bin/env bash
# Model quality on the real photos of ../shared/datasets (not in the repository: licences), through
# the real pipeline (`tusk eval`, `tusk scan`). Fails loudly when that folder is missing.
# Renders the held-out pangolin-scale test images (scripts/train/pangolin_render.py, fixed seeds,
# about 30 s) and the X-ray test scans (scripts/xray/synth.py, about 1 minute) first if they are
# not there yet.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-ort.sh
scripts/setup-build.sh
if [ ! -f ../shared/datasets/listing/labels.csv ]; then
  echo "quality: ../shared/datasets/listing/labels.csv is missing; this check needs the shared datasets" >&2
  exit 1
fi
if [ ! -f .cache/pangolin/test.csv ]; then
  scripts/setup-python.sh
  .venv/bin/python scripts/train/pangolin_render.py --counts test=300:120
fi
# The X-ray detector's held-out synthetic test split (600 scans, fixed seed, about 1 minute) and
# the list of real scans that were no training background.
if [ ! -f .cache/xray-test/eval.csv ]; then
  scripts/setup-python.sh
  .venv/bin/python scripts/xray/synth.py --out .cache/xray-test --train 0 --val 0 --test 600 --noise-everywhere
fi
# xray-v2's: the same generator on the version-2 split of the real scans (more/ added, EDS held
# out), its own seed.
if [ ! -f .cache/xray-v2-test/eval.csv ]; then
  scripts/setup-python.sh
  .venv/bin/python scripts/xray/synth.py --out .cache/xray-v2-test --backgrounds 2 --seed 20261203 --train 0 --val 0 --test 600 --noise-everywhere
fi
# xray-v3's: a fresh render of the same real-scan split, seed 20261204, in the rendering it was
# trained on (noise over the whole scan).
if [ ! -f .cache/xray-v3-test/eval.csv ]; then
  scripts/setup-python.sh
  .venv/bin/python scripts/xray/synth.py --out .cache/xray-v3-test --backgrounds 2 --seed 20261204 --train 0 --val 0 --test 600 --noise-everywhere
fi
# The same split with the render noise inside objects only (synth.py's default since xray-v3's
# card, "A render shortcut"): xray-v4's (the default) test split; and both renderings as
# projected-scan-only eval lists (about 1.5 minutes).
if [ ! -f .cache/xray-v3-test-clean/xray-v3-test-clean-labels.csv ]; then
  scripts/setup-python.sh
  .venv/bin/python scripts/xray/shortcut_check.py --files-only
fi
cargo test --test quality -- --nocapture "$@"
