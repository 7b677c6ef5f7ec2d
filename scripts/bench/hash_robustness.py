"""Hash robustness benchmark (issue 6): does a re-posted photo still match its original?

Takes real photos (../shared/datasets/photos, one per near-duplicate group, and a seeded sample
of the marketplace product photos in ../shared/datasets/listing, one per group), applies what
re-posting does (resize, re-compression, crops, borders, a frame, a watermark, brightness,
mirroring, a screenshot-like frame), hashes everything with tusk's own hasher
(pipeline/examples/hash_files.rs: borders trimmed, pHash, dHash, PDQ with its exact dihedral
variants), and prints, per hash and per transformation, the recall at the distance threshold
where the false-match rate on pairs of different photos is at most 1e-4.

Run through scripts/bench/hash_robustness.sh (builds the hasher, sets up .venv).
"""
import argparse
import csv
import itertools
import os
import pathlib
import random
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets"
FMR = 1e-4


def originals(n_products, seed):
    photos = []
    seen_groups = set()
    # The Coral cat appears four times and the motorcycle is a stereo pair: keep one of each.
    skip = {"resized_cat.png", "cat_720p.jpg", "cat_1080p.jpg", "motorcycle_right.png"}
    for row in csv.DictReader(open(SHARED / "photos/manifest.csv")):
        if pathlib.Path(row["file"]).name not in skip:
            photos.append(SHARED / "photos" / row["file"])
    rows = [r for r in csv.DictReader(open(SHARED / "listing/labels.csv")) if r["label"] == "product"]
    random.Random(seed).shuffle(rows)
    products = []
    for r in rows:
        if r["group"] in seen_groups:
            continue
        seen_groups.add(r["group"])
        products.append(SHARED / "listing" / r["file"])
        if len(products) == n_products:
            break
    return photos + products


def font(size):
    for path in ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def crop(img, share, rng):
    """Removes `share` of the width and of the height, split unevenly between the two sides."""
    w, h = img.size
    cut_w, cut_h = round(w * share), round(h * share)
    left, top = round(cut_w * rng.uniform(0.2, 0.8)), round(cut_h * rng.uniform(0.2, 0.8))
    return img.crop((left, top, w - (cut_w - left), h - (cut_h - top)))


def border(img, _rng):
    w, h = img.size
    pad = max(4, round(0.08 * max(w, h)))
    return ImageOps.expand(img, border=pad, fill=(255, 255, 255))


def frame(img, _rng):
    """A two-tone picture frame: dark outer band, light mat inside it."""
    w, h = img.size
    inner = ImageOps.expand(img, border=max(3, round(0.04 * max(w, h))), fill=(236, 228, 210))
    return ImageOps.expand(inner, border=max(3, round(0.05 * max(w, h))), fill=(70, 40, 20))


def watermark(img, rng):
    img = img.convert("RGBA")
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    f = font(max(10, w // 14))
    text = "@seller_%04d  WhatsApp +00 555" % rng.randrange(10000)
    x, y = round(w * rng.uniform(0.02, 0.2)), round(h * rng.uniform(0.6, 0.85))
    draw.text((x, y), text, font=f, fill=(255, 255, 255, 150), stroke_width=2, stroke_fill=(0, 0, 0, 110))
    return Image.alpha_composite(img, layer).convert("RGB")


def screenshot(img, rng):
    """The photo as it appears in a phone screenshot of a listing: status bar, app header, the
    photo scaled to the screen width, title and price below."""
    sw, sh = 720, 1480
    canvas = Image.new("RGB", (sw, sh), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, sw, 48), fill=(20, 20, 20))
    draw.text((24, 10), "9:41", font=font(26), fill=(255, 255, 255))
    draw.rectangle((0, 48, sw, 150), fill=(255, 255, 255))
    draw.text((90, 80), "Marketplace", font=font(36), fill=(30, 30, 30))
    photo = img.resize((sw, max(1, round(img.height * sw / img.width))), Image.BILINEAR)
    photo = photo.crop((0, 0, sw, min(photo.height, sh - 420)))
    canvas.paste(photo, (0, 150))
    y = 150 + photo.height + 30
    draw.text((24, y), "Antique carving, old, rare  #%d" % rng.randrange(1000), font=font(34), fill=(20, 20, 20))
    draw.text((24, y + 60), "$ %d" % rng.randrange(50, 900), font=font(40), fill=(200, 30, 30))
    return canvas


def transforms():
    return {
        "resize_50": lambda im, r: im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.BILINEAR),
        "resize_200": lambda im, r: im.resize((im.width * 2, im.height * 2), Image.BICUBIC),
        "jpeg_q30": None,  # handled at save time
        "crop_5": lambda im, r: crop(im, 0.05, r),
        "crop_10": lambda im, r: crop(im, 0.10, r),
        "border": border,
        "frame": frame,
        "watermark": watermark,
        "brighter_20": lambda im, r: ImageEnhance.Brightness(im).enhance(1.2),
        "darker_20": lambda im, r: ImageEnhance.Brightness(im).enhance(0.8),
        "mirror": lambda im, r: ImageOps.mirror(im),
        "screenshot": screenshot,
    }


def make_images(files, out, seed):
    rng = random.Random(seed)
    paths = {"original": []}
    for name in transforms():
        paths[name] = []
        (out / name).mkdir(parents=True, exist_ok=True)
    (out / "original").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        im = Image.open(f).convert("RGB")
        p = out / "original" / f"{i:05d}.png"
        if not p.exists():
            im.save(p)
        paths["original"].append(p)
        for name, fn in transforms().items():
            p = out / name / f"{i:05d}.jpg"
            if not p.exists():
                if name == "jpeg_q30":
                    im.save(p, quality=30)
                else:
                    fn(im, rng).save(p, quality=90)
            paths[name].append(p)
    return paths


def bits(hex_strings, width):
    """Hex hashes -> packed uint64 array (n, width // 64)."""
    words = width // 64
    out = np.zeros((len(hex_strings), words), dtype=np.uint64)
    for i, h in enumerate(hex_strings):
        for w in range(words):
            out[i, w] = int(h[w * 16:(w + 1) * 16], 16)
    return out


def distances(a, b):
    """Pairwise Hamming distances between rows of a (n, w) and b (m, w): (n, m)."""
    d = np.zeros((a.shape[0], b.shape[0]), dtype=np.int32)
    for w in range(a.shape[1]):
        d += np.bitwise_count(a[:, w][:, None] ^ b[:, w][None, :]).astype(np.int32)
    return d


def threshold_at(impostor, fmr):
    """Largest t with (#impostor distances <= t) / n <= fmr."""
    values = np.sort(impostor.ravel())
    allowed = int(np.floor(fmr * values.size))
    # values[allowed] is the first distance we may not accept.
    return int(values[allowed]) - 1 if allowed < values.size else int(values[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--hasher", default=str(ROOT / "target/release/examples/hash_files"))
    ap.add_argument("--out", default=str(ROOT / ".cache/hash_robustness"))
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    files = originals(args.products, args.seed)
    paths = make_images(files, out, args.seed)
    everything = [str(p) for ps in paths.values() for p in ps]
    res = subprocess.run([args.hasher], input="\n".join(everything), capture_output=True, text=True, check=True)
    table = {}
    for line in res.stdout.splitlines():
        f = line.split("\t")
        if f[1] == "error":
            sys.exit(f"hashing failed: {line}")
        table[f[0]] = f
    n = len(files)
    names = list(paths)

    def column(name, k):
        return [table[str(p)][k] for p in paths[name]]

    orig = {"phash": bits(column("original", 1), 64), "dhash": bits(column("original", 2), 64), "pdq": bits(column("original", 3), 256)}
    quality = np.array([int(q) for q in column("original", 4)])
    off_diag = ~np.eye(n, dtype=bool)
    pair_mask = np.triu(off_diag, 1)

    # Distances of every transformed copy (query) to every original (stored).
    def query_distances(name):
        q = {"phash": bits(column(name, 1), 64), "dhash": bits(column(name, 2), 64), "pdq": bits(column(name, 3), 256)}
        d = {k: distances(q[k], orig[k]) for k in q}
        variants = [v.split(",") for v in column(name, 5)]
        dih = np.stack([distances(bits([v[j] for v in variants], 256), orig["pdq"]) for j in range(8)]).min(axis=0)
        d["pdq_dihedral"] = dih
        return d

    per = {name: query_distances(name) for name in names}
    kinds = ["phash", "dhash", "pdq", "pdq_dihedral"]
    # Impostors: original i as query against a different original j (the false matches an
    # analyst would see), plus every transformed copy against the other photos' originals.
    impostor = {k: np.concatenate([per[name][k][off_diag] for name in names]) for k in kinds}
    genuine = {name: {k: np.diag(per[name][k]) for k in kinds} for name in names if name != "original"}
    thresholds = {k: threshold_at(impostor[k], FMR) for k in kinds}

    # tusk's default rule: a match when PDQ (best of the eight variants) is within t1 or pHash
    # within t2, both thresholds chosen together so that the combined false-match rate stays
    # at or under 1e-4 and overall recall is highest.
    best = None
    for t1 in range(0, 129, 2):
        fm_pdq = impostor["pdq_dihedral"] <= t1
        if fm_pdq.mean() > FMR:
            break
        for t2 in range(-1, 33):
            fm = (fm_pdq | (impostor["phash"] <= t2)).mean()
            if fm > FMR:
                break
            rec = np.mean([np.mean((g["pdq_dihedral"] <= t1) | (g["phash"] <= t2)) for g in genuine.values()])
            if best is None or rec > best[0]:
                best = (rec, t1, t2, fm)
    rec, t1, t2, fm = best
    print(f"photos: {n} originals ({len(files) - args.products} natural photos, {args.products} product photos), "
          f"{len(names) - 1} transformations; impostor pairs per hash: {impostor['pdq'].size:,}; "
          f"low-quality PDQ (<50) among originals: {(quality < 50).sum()}")
    print()
    header = "| transformation | " + " | ".join(f"{k} (≤{thresholds[k]})" for k in kinds) + f" | default: pdq_dihedral ≤{t1} or phash ≤{t2} |"
    print(header)
    print("|" + "---|" * (len(kinds) + 2))
    overall = {k: [] for k in kinds + ["default"]}
    for name, g in genuine.items():
        cells = []
        for k in kinds:
            r = float(np.mean(g[k] <= thresholds[k]))
            overall[k].append(r)
            cells.append(f"{r:.3f}")
        r = float(np.mean((g["pdq_dihedral"] <= t1) | (g["phash"] <= t2)))
        overall["default"].append(r)
        cells.append(f"{r:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| **overall** | " + " | ".join(f"**{np.mean(overall[k]):.3f}**" for k in kinds + ["default"]) + " |")
    print()
    print("false-match rate at these thresholds: " + ", ".join(f"{k} {np.mean(impostor[k] <= thresholds[k]):.1e}" for k in kinds)
          + f", default {fm:.1e}")


if __name__ == "__main__":
    main()
