"""The same real scans, raw and put through synth.py's renderer with nothing projected onto them:
does a detector score the rendered copy higher? (models/xray-v3/MODEL_CARD.md, "A render shortcut")

  .venv-train/bin/python scripts/xray/raw_vs_rendered.py [--set .cache/xray-v3-synth] [MODEL.onnx ...]

Takes the validation scans of a synth.py output that hold no object and lie on a real background,
scores each and its raw background file (card.py's scoring: ONNX Runtime, tusk's letterbox), and
prints per model the median top score of both, how often the rendered copy scores higher, and
how many reach 0.23 and 0.40.
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import card as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path,
                    default=[ROOT / "models/xray-v1/xray-v1.onnx", ROOT / "models/xray-v3/xray-v3.onnx"])
    ap.add_argument("--set", type=Path, default=ROOT / ".cache/xray-v3-synth")
    ap.add_argument("--xray", type=Path, default=ROOT.parent / "shared/datasets/xray")
    a = ap.parse_args()
    rows = [r for r in csv.DictReader(open(a.set / "manifest.csv"))
            if r["split"] == "val" and not r["objects"] and not r["background"].startswith("sim")]
    rendered = [str(a.set / r["file"]) for r in rows]
    raw = [str(a.xray / r["background"]) for r in rows]
    print(f"{len(rows)} validation scans with nothing projected onto a real background")
    for m in a.models:
        top = [np.array([max([s for _, s, *_ in d] or [0.0]) for d, _ in C.detect(m, files)]) for files in (rendered, raw)]
        r, w = top
        print(f"{m.name}: median top score rendered {np.median(r):.3f}, raw {np.median(w):.3f}; rendered higher in "
              f"{(r > w).sum()}; >= 0.23: {(r >= 0.23).sum()} rendered, {(w >= 0.23).sum()} raw; >= 0.40: "
              f"{(r >= 0.4).sum()} rendered, {(w >= 0.4).sum()} raw")


if __name__ == "__main__":
    main()
