"""Compares TinyDet-layout X-ray models on one validation set by finetune.py's threshold rule.

Each model's thresholds are chosen on the same scans (per label the score at --target-recall of
the synthetic validation boxes, then one common floor raised until at most --max-fa of the real
validation scans are flagged), and its validation detection there is printed. For deciding between
trained models without spending a test split (models/xray-v2/trials/round3.md).

  val_compare.py --data .cache/xray-v3-synth models/xray-v2/xray-v2.onnx .cache/xray-r3/xray-r3.onnx
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finetune as F  # noqa: E402
import train_detector as T  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="ONNX files in xray-v1's layout")
    ap.add_argument("--data", type=Path, required=True, help="synth.py output with a val split and backgrounds.csv")
    ap.add_argument("--xray", type=Path, default=F.ROOT.parent / "shared/datasets/xray")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--target-recall", type=float, default=0.90)
    ap.add_argument("--max-fa", type=float, default=0.02)
    a = ap.parse_args()
    va_x, va_t, _ = T.load_split(a.data, "val", a.size)
    vneg_x, _ = F.real_split(a.data, a.xray, "val", a.size)
    print(f"{len(va_x)} synthetic and {len(vneg_x)} real validation scans")
    for onnx in a.models:
        model = T.TinyDet()
        F.from_onnx(model, onnx)
        model.eval()
        th, floor, best, _, _ = F.choose_thresholds(model, va_x, va_t, vneg_x, a.size, a.target_recall, a.max_fa)
        found = " / ".join(f"{(best[n] >= th[n]).mean():.1%}" for n in T.CLASSES)
        print(f"{onnx}: floor {floor:.3f}, validation detection {' / '.join(T.CLASSES)} {found}", flush=True)


if __name__ == "__main__":
    main()
