#!/usr/bin/env python3
"""Preprocessing parity: runs a model the way a trainer would (Pillow + numpy + Python
onnxruntime, torchvision's Resize(shorter)/CenterCrop conventions) on real images and writes
the reference scores that `tests/parity.rs` compares tusk against (tolerance 1e-3).

`tests/parity.rs` runs this script itself, on the machine that runs the test: ONNX Runtime's
int8 kernels give different scores on CPUs with and without AVX-512 VNNI (up to 0.13 for the
int8 ImageNet baseline), so a reference written on another machine would not be comparable.

The images are lossless PNGs: the demo's PNG photos, and Pillow's decoding of the demo's Met
JPEGs saved to tests/fixtures/parity/ (JPEG decoders differ by a few grey levels, which the
int8 model turns into score changes of up to 0.25; tests/parity.rs bounds that gap separately).

Usage: .venv/bin/python scripts/parity_reference.py [models/imagenet-mobilenetv2] --out FILE
       .venv/bin/python scripts/parity_reference.py --jpeg-fixtures   (rewrites tests/fixtures/parity/)
Needs: pip install onnxruntime==1.31.1 pillow numpy (scripts/setup-python.sh does it)."""
import argparse, json, pathlib, tomllib

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO = ROOT / "datasets" / "demo" / "images"
FIXTURES = ROOT / "tests" / "fixtures" / "parity"


def write_jpeg_fixtures():
    """Writes Pillow's decoding of each demo Met JPEG as PNG (committed: libjpeg-turbo's integer
    decoding is the same on every CPU)."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for jpg in sorted(DEMO.glob("met_*.jpg")) + sorted(DEMO.glob("reposted_*.jpg")):
        load_rgb(jpg).save(FIXTURES / (jpg.stem + ".png"))


def parity_images():
    """Every lossless image: the demo's PNGs and the committed Pillow decodings of its JPEGs."""
    return sorted(DEMO.glob("*.png")) + sorted(FIXTURES.glob("*.png"))


def load_rgb(path):
    img = Image.open(path)
    img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


def fit(img, spec):
    w, h = img.size
    tw, th = spec["width"], spec["height"]
    if spec["resize"] == "stretch":
        return img.resize((tw, th), Image.BILINEAR)
    if spec["resize"] == "centre-crop":
        s = spec["resize_shorter"]
        # torchvision.transforms.Resize(s): shorter side to s, longer side truncated.
        nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        img = img.resize((nw, nh), Image.BILINEAR)
        # torchvision.transforms.CenterCrop: Python round() of the margins.
        left, top = int(round((nw - tw) / 2.0)), int(round((nh - th) / 2.0))
        return img.crop((left, top, left + tw, top + th))
    if spec["resize"] == "letterbox":
        scale = min(tw / w, th / h)
        nw, nh = max(1, min(tw, round(w * scale))), max(1, min(th, round(h * scale)))
        pad = spec.get("pad_value", 114)
        canvas = Image.new("RGB", (tw, th), (pad, pad, pad))
        canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((tw - nw) // 2, (th - nh) // 2))
        return canvas
    raise ValueError(spec["resize"])


def tensor(img, spec):
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    x = (x - np.asarray(spec["mean"], dtype=np.float32)) / np.asarray(spec["std"], dtype=np.float32)
    return x.transpose(2, 0, 1) if spec["layout"] == "nchw" else x


def activate(row, kind):
    if kind == "softmax":
        e = np.exp(row - row.max())
        return e / e.sum()
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-row))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", nargs="?", default=str(ROOT / "models" / "imagenet-mobilenetv2"))
    ap.add_argument("--out", required=True, help="where to write the reference scores (JSON)")
    ap.add_argument("--jpeg-fixtures", action="store_true", help="rewrite tests/fixtures/parity/*.png and stop")
    args = ap.parse_args()
    if args.jpeg_fixtures:
        write_jpeg_fixtures()
        print(f"wrote {FIXTURES.relative_to(ROOT)}")
        return
    model_dir = pathlib.Path(args.model_dir)
    m = tomllib.loads((model_dir / "model.toml").read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model_dir / m["file"]), opts, providers=["CPUExecutionProvider"])
    out = {"model": m["name"], "version": m["version"], "onnxruntime": ort.__version__, "images": []}
    for path in parity_images():
        x = tensor(fit(load_rgb(path), m["input"]), m["input"])[None]
        raw = sess.run([m["output"]["name"]], {m["input"]["name"]: x})[0][0]
        probs = activate(raw.astype(np.float64), m["output"]["activation"])
        labels = {l["name"]: float(min(1.0, probs[l["classes"]].sum())) for l in m["labels"]}
        top5 = np.argsort(-probs)[:5]
        out["images"].append({
            "file": path.relative_to(ROOT).as_posix(),
            "labels": labels,
            "top5": [[int(i), float(probs[i])] for i in top5],
            "probabilities": [round(float(p), 7) for p in probs],
        })
    dest = pathlib.Path(args.out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out) + "\n")
    print(f"{len(out['images'])} images -> {dest}")


if __name__ == "__main__":
    main()
