"""Averages the weights of LiteDet detectors fine-tuned from one start into one (a "model soup").

Models trained on from one set of weights land near each other; their uniform mean is often better
than each (Wortsman et al., 2022) and costs nothing at inference: the same network, one set of
weights. Every floating-point tensor is averaged (weights and batch-norm running statistics); integer
ones (batch counts) are taken from the first. Writes `weights.pt` (what val_compare.py and
finetune.py --warm read) and, with --onnx, the ONNX file in xray-v1's output layout.

  soup.py --out .cache/xray-soup a/weights.pt b/weights.pt c/weights.pt
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_detector as T  # noqa: E402


def soup(paths: list[Path]) -> dict:
    """The uniform mean of the `model` state dicts saved at `paths` (same architecture)."""
    dicts = [torch.load(p, weights_only=False, map_location="cpu")["model"] for p in paths]
    out = {}
    for k, v in dicts[0].items():
        if v.is_floating_point():
            out[k] = torch.stack([d[k] for d in dicts]).mean(0)
        else:
            out[k] = v.clone()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", type=Path, help="finetune.py --arch lite0 weights.pt or checkpoint.pt files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--onnx", action="store_true", help="also export <out>/<out name>.onnx")
    ap.add_argument("--size", type=int, default=384)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    state = soup(a.weights)
    torch.save(dict(model=state, soup=[str(p) for p in a.weights]), a.out / "weights.pt")
    print(f"averaged {len(a.weights)} models into {a.out / 'weights.pt'}", flush=True)
    if a.onnx:
        from litedet import for_weights

        model = for_weights(state)
        path = a.out / f"{a.out.name}.onnx"
        T.export_onnx(model.eval(), a.size, path)
        print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
