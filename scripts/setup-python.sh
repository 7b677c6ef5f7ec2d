#!/usr/bin/env bash
# A Python venv (.venv) with onnxruntime, Pillow, numpy and pydicom, for the reference scripts
# (scripts/parity_reference.py, scripts/make_demo.py, the pangolin-scale test renders and the
# synthetic X-ray scans of scripts/quality.sh, scripts/xray/synth.py, the DICOS objects that
# tests/dicos.rs writes and reads with pydicom). Not needed to build, run or test tusk.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet onnxruntime==1.31.1 pillow==13.0.0 numpy==2.4.6 pdqhash==0.2.8 scipy==1.17.1 pydicom==3.0.2
