"""Makes the benchmark's image set: real listing photos (marketplace products and live reptiles
from ../shared/datasets/listing) upscaled to typical listing sizes (longest side 800-1200 px,
Lanczos) and saved as JPEG q85, like a marketplace serves them. Seeded: the same set every time.

Usage: prepare_images.py OUT_DIR [--count 2000]
"""

import argparse
import csv
import random
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/listing")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rows = [r for r in csv.DictReader(open(args.data / "labels.csv", newline="")) if r["label"] in ("product", "reptile")]
    rng = random.Random(args.seed)
    rng.shuffle(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    existing = sorted(args.out.glob("*.jpg"))
    if len(existing) == args.count:
        print(f"{args.out}: {len(existing)} images already there")
        return
    total = 0
    for i, r in enumerate(rows[: args.count]):
        img = Image.open(args.data / r["file"]).convert("RGB")
        side = rng.randint(800, 1200)
        s = side / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
        path = args.out / f"{i:05d}_{r['label']}.jpg"
        img.save(path, quality=85)
        total += path.stat().st_size
    print(f"{args.out}: {args.count} JPEGs, {total / args.count / 1024:.0f} KiB on average")


if __name__ == "__main__":
    main()
