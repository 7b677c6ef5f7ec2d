"""Which layers of a listing model lose its ivory score when quantised, and what leaving the worst in
float buys back.

quantize.py's post-training variants (every layer, the stem and head left in float, the trained top
left in float, every depthwise convolution left in float) all lost about 2 points of validation
ivory AP; the choice of what to leave in float was by name, not measured. This script measures it:

1. calibrates once (percentile, 256 training images, the seed quantize.py uses; cached);
2. for every unit (a convolution with its activation, a residual Add, the pooling, the
   classifier), quantises that unit alone (the rest float) and records how far the
   ivory logit moves from the float model's on a fixed sample of validation images (RMS), which
   depends on the photos, not on their labels;
3. quantises everything but the k worst units, for each k in --keep-float, and scores val and test
   (AP per label against the float model) and times inference per image.

Weights use 7 bits (reduce_range), the form a shipped int8 file needs to score the same on CPUs
with and without AVX-512 VNNI (int8_trunk.py says why).

Usage: .venv-train/bin/python scripts/train/int8_sensitivity.py --version listing-v1
Report: models/<version>/int8-trials/int8-sensitivity.json; int8 files in .cache/<version>/sensitivity/.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).parent))
from evaluate import per_label  # noqa: E402
from quantize import per_image_ms, static_qdq  # noqa: E402
from train import LABELS, add_path_args, datasets, load_rgb, resolve_paths, size_of, to_tensor  # noqa: E402


def units(model: onnx.ModelProto) -> list[list[str]]:
    """The parts quantised together: each convolution with the ReLU6 (Clip) that alone reads it (its
    output is quantised to the Clip's range, as in the whole int8 model; quantised alone, the
    convolution's output would get its pre-activation range, tens of times wider), each residual
    Add (both inputs computed by convolutions or Adds), the pooling and the classifier. The integer
    arithmetic of TF-style "same" padding is not a unit."""
    producer = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    out = []
    for n in model.graph.node:
        if n.op_type == "Conv":
            after = readers.get(n.output[0], [])
            out.append([n.name] + ([after[0].name] if len(after) == 1 and after[0].op_type == "Clip" else []))
        elif n.op_type == "Add" and all(i in producer and producer[i].op_type in ("Conv", "Add") for i in n.input):
            out.append([n.name])
        elif n.op_type in ("GlobalAveragePool", "Gemm"):
            out.append([n.name])
    return out


def tensors(items, size: int, cache: Path) -> np.ndarray:
    """The preprocessed images of `items`, cached as float16 (exact enough to rank, 2x smaller)."""
    if cache.exists():
        return np.load(cache).astype(np.float32)
    x = np.stack([to_tensor(load_rgb(p), size) for p, _ in items])
    np.save(cache, x.astype(np.float16))
    return x.astype(np.float16).astype(np.float32)


def run(path: Path, x: np.ndarray, threads: int, batch: int = 32) -> np.ndarray:
    """Logits of the model at `path` on `x`."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"image": x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def aps(logits: np.ndarray, items) -> dict:
    """AP per label (masked as evaluate.py masks), None where a set has no positives."""
    per = per_label(1 / (1 + np.exp(-logits.astype(np.float64))), [l for _, l in items], dict.fromkeys(LABELS, 0.5))
    return {lab: m["ap"] for lab, m in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_path_args(ap)
    ap.add_argument("--calibration", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1130)
    ap.add_argument("--method", default="percentile")
    ap.add_argument("--sample", type=int, default=384, help="validation images the per-unit error is measured on")
    ap.add_argument("--keep-float", default="0,2,4,8,12,16", help="k values: the k worst units left in float")
    args = resolve_paths(ap.parse_args())
    size = size_of(args.version)
    work = args.work / "sensitivity"
    work.mkdir(parents=True, exist_ok=True)
    sets = datasets(args.data, args.split, args.renders)
    calib = random.Random(args.seed).sample(sets["train"], args.calibration)
    pre = work / "pre.onnx"
    quant_pre_process(str(args.onnx), str(pre), skip_symbolic_shape=True)
    cache = work / f"calibration-{args.method}.json"

    def quantise(out: Path, **options) -> Path:
        static_qdq(pre, out, calib, size, args.method, reduce_range=True, calibration_cache_path=str(cache), **options)
        return out

    started = time.time()
    x = {name: tensors(sets[name], size, work / f"{name}.npy") for name in ("val", "test")}
    print(f"tensors ready in {time.time() - started:.0f} s", flush=True)
    sample = np.array(sorted(random.Random(args.seed).sample(range(len(x["val"])), args.sample)))
    xs = x["val"][sample]
    ivory = LABELS.index("ivory")
    ref = run(pre, xs, args.threads)[:, ivory]

    parts = units(onnx.load(str(pre)))
    errors, members = {}, {}
    for i, part in enumerate(parts):
        q = run(quantise(work / "one.onnx", nodes_to_quantize=part), xs, args.threads)[:, ivory]
        errors[part[0]], members[part[0]] = float(np.sqrt(np.mean((q - ref) ** 2))), part
        print(f"[{i + 1}/{len(parts)}] {part}: ivory logit RMS error {errors[part[0]]:.4f}", flush=True)
    ranked = sorted(errors, key=errors.get, reverse=True)
    whole = run(quantise(work / "all.onnx"), xs, args.threads)[:, ivory]
    print(f"every node int8: ivory logit RMS error {np.sqrt(np.mean((whole - ref) ** 2)):.4f}", flush=True)

    float_logits = {name: run(pre, x[name], args.threads) for name in x}
    float_ap = {name: aps(float_logits[name], sets[name]) for name in x}
    variants = []
    for k in (int(v) for v in args.keep_float.split(",")):
        path = quantise(work / f"keep{k}.onnx", nodes_to_exclude=[n for u in ranked[:k] for n in members[u]])
        q_ap = {name: aps(run(path, x[name], args.threads), sets[name]) for name in x}
        drop = {name: {lab: None if float_ap[name][lab] is None else round(100 * (float_ap[name][lab] - q_ap[name][lab]), 2)
                       for lab in LABELS} for name in x}
        ms = {"float": round(per_image_ms(pre, x["test"][:64], args.threads, 32), 2),
              "int8": round(per_image_ms(path, x["test"][:64], args.threads, 32), 2)}
        variants.append({"keep_float": k, "left_in_float": ranked[:k], "ap": q_ap, "drop_points": drop,
                         "ms_per_image_batch32": ms})
        print(f"k={k}: AP drop (points) {json.dumps(drop)}; ms/image float {ms['float']} int8 {ms['int8']}", flush=True)

    report = {"model": args.version, "quantisation": f"QDQ, per-channel int8 weights in 7 bits (reduce_range), uint8 "
              f"activations, {args.method} calibration on {args.calibration} training images (seed {args.seed})",
              "error_measure": f"RMS of the ivory logit, unit quantised alone vs float, {args.sample} validation images",
              "float_ap": float_ap, "unit_errors": {n: round(errors[n], 5) for n in ranked}, "variants": variants,
              "seconds": round(time.time() - started)}
    out = args.out / "int8-trials" / "int8-sensitivity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
