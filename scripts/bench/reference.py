"""The Python pipeline tusk is compared with: what a competent engineer would write with Pillow,
onnxruntime and imagehash.

Per image: Pillow decode (EXIF orientation, RGB), the model's preprocessing from its model.toml
(the same Pillow bilinear resize and normalisation tusk reproduces), imagehash pHash + dHash.
Images are decoded, hashed and preprocessed by a thread pool (Pillow releases the GIL while it
decodes and resizes), inference runs in batches of --batch on one onnxruntime session with
--threads intra-op threads, and results go to SQLite in one transaction per batch.
`--hash-only` skips the model (decode + hash only).

Usage: reference.py IMAGES_DIR --db OUT.db [--model models/listing-v1] [--threads N] [--batch 8]
Prints one line: images, seconds, images/s.
"""

import argparse
import collections
import json
import os
import sqlite3
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagehash
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=ROOT / "models/listing-v1")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hash-only", action="store_true")
    args = ap.parse_args()

    m = tomllib.loads((args.model / "model.toml").read_text())
    spec = m["input"]
    assert spec["resize"] == "stretch" and spec["layout"] == "nchw", "this reference implements the listing model's preprocessing"
    mean = np.asarray(spec["mean"], np.float32)
    std = np.asarray(spec["std"], np.float32)
    session = None
    if not args.hash_only:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(args.model / m["file"]), opts, providers=["CPUExecutionProvider"])

    def load(path: Path):
        img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        hashes = (str(imagehash.phash(img)), str(imagehash.dhash(img)))
        x = None
        if session is not None:
            x = np.asarray(img.resize((spec["width"], spec["height"]), Image.BILINEAR), np.float32) / np.float32(255.0)
            x = ((x - mean) / std).transpose(2, 0, 1)
        return str(path), img.width, img.height, hashes, x

    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    args.db.unlink(missing_ok=True)
    db = sqlite3.connect(args.db)
    db.execute("CREATE TABLE objects (uri TEXT PRIMARY KEY, width INT, height INT, phash TEXT, dhash TEXT, scores TEXT)")
    labels = [(l["name"], l["classes"]) for l in m["labels"]]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        # a bounded window of decodes in flight, so memory stays flat while inference runs
        window = collections.deque()
        todo = iter(files)
        batch = []
        for path in todo:
            window.append(pool.submit(load, path))
            if len(window) >= 4 * args.batch:
                batch.append(window.popleft().result())
            if len(batch) == args.batch:
                write(db, session, m, labels, batch)
                batch = []
        batch.extend(f.result() for f in window)
        for i in range(0, len(batch), args.batch):
            write(db, session, m, labels, batch[i : i + args.batch])
    db.close()
    took = time.perf_counter() - started
    print(f"reference: {len(files)} images in {took:.2f} s ({len(files) / took:.1f} images/s)")


def write(db, session, m, labels, batch) -> None:
    scores = [{} for _ in batch]
    if session is not None:
        x = np.stack([b[4] for b in batch])
        logits = session.run([m["output"]["name"]], {m["input"]["name"]: x})[0]
        probs = 1 / (1 + np.exp(-logits))
        scores = [{name: float(p[classes].sum()) for name, classes in labels} for p in probs]
    with db:
        db.executemany(
            "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?)",
            [(uri, w, h, ph, dh, json.dumps(s)) for (uri, w, h, (ph, dh), _), s in zip(batch, scores)],
        )


if __name__ == "__main__":
    main()
