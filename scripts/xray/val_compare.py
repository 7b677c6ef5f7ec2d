"""Compares TinyDet-layout X-ray models on one validation set by finetune.py's threshold rule.

Each model's thresholds are chosen on the same scans (per label the score at --target-recall of
the synthetic validation boxes, then one common floor raised until at most --max-fa of the real
validation scans are flagged), and its validation detection there is printed. For deciding between
trained models without spending a test split (models/xray-v2/trials/round3.md).

  val_compare.py --data .cache/xray-v3-synth models/xray-v2/xray-v2.onnx .cache/xray-r3/xray-r3.onnx

A `checkpoint.pt` or `weights.pt` of `finetune.py --arch lite0` is read as a LiteDet, and so is an
ONNX file whose graph holds EfficientNet-Lite0's blocks (xray-v3, xray-v4: shipped models compare
without their PyTorch weights). Per source, the real
validation scans flagged at the chosen thresholds are printed too: the rule bounds their total,
and a scanner that is rare in training shows here first.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finetune as F  # noqa: E402
import train_detector as T  # noqa: E402
from synth import source_of  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="ONNX files in xray-v1's output layout (TinyDet or LiteDet), or LiteDet .pt weights")
    ap.add_argument("--data", type=Path, required=True, help="synth.py output with a val split and backgrounds.csv")
    ap.add_argument("--xray", type=Path, default=F.ROOT.parent / "shared/datasets/xray")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--target-recall", type=float, default=0.90)
    ap.add_argument("--max-fa", type=float, default=0.02)
    ap.add_argument("--curve", action="store_true",
                    help="also the detection at floors allowing 1, 2, 3, 4, 5, 6, 8 and 11 flagged real validation "
                         "scans: the rule's floor rests on a handful of scans, so a better model should be better "
                         "along this curve, not at one point of it")
    a = ap.parse_args()
    va_x, va_t, _ = T.load_split(a.data, "val", a.size)
    vneg_x, vneg_files = F.real_split(a.data, a.xray, "val", a.size)
    print(f"{len(va_x)} synthetic and {len(vneg_x)} real validation scans")
    for path in a.models:
        model = load(path)
        th, floor, best, vmax, recall_th = F.choose_thresholds(model, va_x, va_t, vneg_x, a.size, a.target_recall, a.max_fa)
        def found(th: dict) -> str:
            return " / ".join(f"{(best[n] >= th[n]).mean():.1%}" for n in T.CLASSES)

        print(f"{path}: floor {floor:.3f}, validation detection {' / '.join(T.CLASSES)} {found(th)}", flush=True)
        fired = F.flagged(vmax, th)
        per = {}
        for f, hit in zip(vneg_files, fired):
            k = per.setdefault(source_of(f), [0, 0])
            k[0] += int(hit)
            k[1] += 1
        print("  real validation scans flagged per source: "
              + ", ".join(f"{src} {k}/{n}" for src, (k, n) in sorted(per.items())), flush=True)
        if a.curve:
            for allowed in (1, 2, 3, 4, 5, 6, 8, 11):
                # half a scan over `allowed`: allowed / n * n can round below allowed (3 / 47 * 47 < 3)
                cth, cfloor = F.floor_thresholds(recall_th, vmax, (allowed + 0.5) / len(vmax))
                print(f"  at most {allowed:>2} real validation scans flagged: floor {cfloor:.3f}, "
                      f"{int(F.flagged(vmax, cth).sum())} flagged, "
                      f"detection {found(cth)}", flush=True)


def load(path: Path):
    """A detector from its ONNX file (a LiteDet when the graph has EfficientNet-Lite0's `blocks`, a
    TinyDet otherwise; batch norm folded, the same function), or a LiteDet from a finetune.py
    --arch lite0 checkpoint or weights."""
    from litedet import for_weights

    if path.suffix == ".pt":
        import torch

        model = for_weights(torch.load(path, weights_only=False, map_location="cpu")["model"])
    else:
        import onnx

        lite = any(n.name.startswith("/m/blocks") for n in onnx.load(str(path)).graph.node)
        model = for_weights() if lite else T.TinyDet()
        F.from_onnx(model, path)
    return model.eval()


if __name__ == "__main__":
    main()
