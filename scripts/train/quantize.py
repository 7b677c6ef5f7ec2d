"""Static int8 quantisation of a listing model with ONNX Runtime's tools, and what it costs.

QDQ format, int8 weights per channel, uint8 activations, MinMax calibration on training-split
images (plain view, tusk's preprocessing, fixed seed). Writes models/<version>/<version>-int8.onnx,
then scores it with evaluate.py at the float model's thresholds (--thresholds-from) on val and
test (report: models/<version>/int8-metrics.json), and times inference per image, float and int8,
with the same threads and images.

Usage: .venv-train/bin/python scripts/train/quantize.py --version listing-v2 [--calibration 256]
The int8 file replaces the float one in model.toml only if every label's test AP drops by at most
0.5 points and tests/parity.rs still holds (the model card says which).
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).parent))
from train import LABELS, add_path_args, datasets, load_rgb, resolve_paths, size_of, to_tensor  # noqa: E402


class Images(CalibrationDataReader):
    def __init__(self, items, size: int, batch: int = 16):
        self.items, self.size, self.batch, self.i = items, size, batch, 0

    def get_next(self):
        if self.i >= len(self.items):
            return None
        part = self.items[self.i : self.i + self.batch]
        self.i += self.batch
        return {"image": np.stack([to_tensor(load_rgb(p), self.size) for p, _ in part])}


METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}


def static_qdq(pre: Path, out: Path, calib, size: int, method: str, **options) -> None:
    """ONNX Runtime's static quantisation as tusk's int8 files use it: QDQ with per-channel int8
    weights and uint8 activations, calibrated on `calib` (image paths with labels) by `method`,
    of `pre` (a model after `quant_pre_process`, whose node names `options` may list); `options`
    go to quantize_static (nodes to leave in float or to quantise, reduce_range)."""
    quantize_static(str(pre), str(out), Images(calib, size), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=METHODS[method],
                    **options)


def per_image_ms(path: Path, x: np.ndarray, threads: int, batch: int, repeats: int = 3) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"image": x[:batch]})  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            sess.run(None, {"image": x[i : i + batch]})
        best = min(best, (time.perf_counter() - t) / len(x) * 1000)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_path_args(ap)
    ap.add_argument("--calibration", type=int, default=256, help="training images to calibrate on")
    ap.add_argument("--seed", type=int, default=1130)
    ap.add_argument("--method", default="minmax", choices=sorted(METHODS),
                    help="how activation ranges are calibrated")
    ap.add_argument("--exclude", default="", help="comma-separated node names left in float (e.g. /conv_stem/Conv)")
    ap.add_argument("--name", default="int8", help="output suffix: models/<version>/<version>-<name>.onnx")
    args = resolve_paths(ap.parse_args())
    sets = datasets(args.data, args.split, args.renders)
    calib = random.Random(args.seed).sample(sets["train"], args.calibration)
    pre = args.work / f"{args.version}-pre.onnx"
    out = args.out / f"{args.version}-{args.name}.onnx"
    exclude = [n for n in args.exclude.split(",") if n]
    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    quant_pre_process(str(args.onnx), str(pre), skip_symbolic_shape=True)
    static_qdq(pre, out, calib, size_of(args.version), args.method, nodes_to_exclude=exclude)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.time() - started:.0f} s", flush=True)

    x = np.stack([to_tensor(load_rgb(p), size_of(args.version)) for p, _ in sets["test"][:64]])
    timing = {f"{name}_batch{b}_ms_per_image": round(per_image_ms(path, x, args.threads, b), 2)
              for name, path in (("float", args.onnx), ("int8", out)) for b in (1, 32)}
    print(f"inference, {args.threads} threads, 64 test images: {timing}", flush=True)

    import evaluate

    sys.argv = [sys.argv[0], "--version", args.version, "--data", str(args.data), "--split", str(args.split),
                "--renders", str(args.renders), "--work", str(args.work / args.name), "--out", str(args.out),
                "--threads", str(args.threads), "--model", str(out), "--sets", "val", "test",
                "--thresholds-from", str(args.out / "metrics.json"), "--report", str(args.out / f"{args.name}-metrics.json"),
                "--extra", json.dumps({"quantisation": "ONNX Runtime quantize_static, QDQ, per-channel int8 weights, "
                                       f"uint8 activations, {args.method} calibration", "left_in_float": exclude,
                                       "calibration_images": args.calibration, "timing": timing})]
    evaluate.main()
    f = json.loads((args.out / "metrics.json").read_text())["sets"]
    q = json.loads((args.out / f"{args.name}-metrics.json").read_text())["sets"]
    for name in ("val", "test"):
        for lab in LABELS:
            a, b = f[name]["labels"][lab]["ap"], q[name]["labels"][lab]["ap"]
            if a is not None:
                print(f"{name} {lab}: AP float {a:.4f} int8 {b:.4f} (drop {100 * (a - b):.2f} points)")


if __name__ == "__main__":
    main()
