"""Synthetic parcel X-ray scans with wildlife items, reproducible from a seed.

Two kinds of scan:
- simulated parcels (a box, padded envelope or bag full of clutter, maybe look-alikes, maybe
  wildlife), rendered from thickness maps through the dual-energy physics in physics.py;
- threat image projection (TIP): a wildlife item (or a look-alike, or nothing) rendered alone and
  multiplied into a real scan from ../shared/datasets/xray in transmission space (per colour
  channel for the pseudo-colour SIXray scans, on the gray level for GDXray and the packaged goods).
  Simulated photon noise goes inside the objects only, so the real scan around them stays as raw
  as a station's (--noise-everywhere: the rendering xray-v1 to xray-v3 were made with;
  --no-object-noise: none at all, a check that a detector does not rely on the simulated noise).

Splits keep the test set unseen: real backgrounds are split by file (train / val / test / unused;
every real scan that is not a train background stays available for measuring false alarms), and
the test split draws wildlife shapes from held-out families (objects.HELD_OUT_FAMILY) with seeds of
its own. Output, under OUT:
  {train,val,test}/images/NAME.png|.tiff   pseudo-colour RGB, 16-bit or 8-bit grayscale
  {train,val,test}/labels/NAME.txt          YOLO: class cx cy w h (normalised)
  {train,val,test}/other/NAME.png           with --both: a simulated scan's other rendering
  {train,val,test}.json                     COCO detection JSON
  manifest.csv                              file, split, background, seed, render, objects
  backgrounds.csv                           every real scan and the split it serves (or "unused")
  boxes.csv                                 file, label, x0, y0, x1, y1 (pixels; for tusk eval)
  eval_boxes.csv                            the same boxes with absolute paths (tusk eval --boxes)
  eval.csv                                  file (absolute), label: every test scan ("synthetic")
                                            and every real scan that is not a train background
                                            (its source; "_val" added for validation backgrounds,
                                            which chose the thresholds) — `tusk eval --labels`
"""

import argparse
import csv
import json
import sys
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import objects as O  # noqa: E402
from physics import Scene, grayscale16, pseudo_colour  # noqa: E402
from shapes import box_shell, ellipsoid, noise_field  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPLITS = {"train": 0, "val": 1, "test": 2}
BG_FRACTION = {"train": 0.30, "val": 0.10, "test": 0.10}  # rest: unused
HELD_OUT_SOURCE = "more/eds/"  # version 2: a scanner never used in training or threshold choice


def real_backgrounds(xray: Path, version: int = 1) -> list[tuple[str, str]]:
    """(relative path, split) for every real scan; the split is fixed by a hash of the path.

    Version 1 (xray-v1): SIXray, GDXray crops and packaged goods; 30 / 10 / 10 % train / val / test,
    the rest "unused". Version 2 (xray-v2) keeps every version-1 train, val and test scan where it
    was, sends half of the unused ones to train and half to test (by a second hash), and adds the
    scans of more/: EDS is held out entirely ("heldout": never a training scan nor a threshold
    input, a scanner the detector never saw), the other four sets split 50 / 20 / 30 %."""
    out = []
    for sub in ["sixray/images", "gdxray_crops", "packaged_goods_voc/images"]:
        for p in sorted((xray / sub).rglob("*")):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            rel = str(p.relative_to(xray))
            split = _hash_split(rel, BG_FRACTION)
            if version >= 2 and split == "unused":
                split = _hash_split(rel + "#v2", {"train": 0.5, "test": 0.5})
            out.append((rel, split))
    if version >= 2 and (xray / "more/manifest.csv").is_file():
        for r in csv.DictReader(open(xray / "more/manifest.csv")):
            rel = "more/" + r["file"]
            held = rel.startswith(HELD_OUT_SOURCE)
            out.append((rel, "heldout" if held else _hash_split(rel, {"train": 0.5, "val": 0.2, "test": 0.3})))
    return out


def _hash_split(rel: str, fractions: dict) -> str:
    u = (zlib.crc32(rel.encode()) % 10000) / 10000
    acc = 0.0
    for s, f in fractions.items():
        if acc <= u < acc + f:
            return s
        acc += f
    return "unused"


def source_of(rel: str) -> str:
    """The eval label of a real scan: its set ("sixray", "gdxray", "packaged_goods"; "more_" and
    the set for the scans of more/)."""
    parts = rel.split("/")
    if parts[0] == "more":
        return "more_" + parts[1]
    return parts[0].replace("_crops", "").replace("_voc", "")


def pick_family(rng, split):
    if split == "test" and rng.random() < 0.5:
        return O.HELD_OUT_FAMILY
    return int(rng.integers(0, 2))


def make_item(rng, split, ppc, pool):
    maker = pool[int(rng.integers(0, len(pool)))]
    family = pick_family(rng, split)
    item = maker(rng, ppc, family)
    item.family = family
    return maker, item


def place(scene_parts, boxes, item, y, x):
    for mat, t in item.parts:
        scene_parts.append((mat, t, y, x))
    for cls, y0, x0, y1, x1 in item.boxes:
        boxes.append((cls, y0 + y, x0 + x, y1 + y, x1 + x))


def wildlife_items(rng, split, ppc, region, canvas, parts, boxes, names):
    """Adds 0-2 wildlife items and 0-2 look-alikes inside `region` (y0, x0, y1, x1)."""
    r = rng.random()
    n_wild = 0 if r < 0.25 else 1 if r < 0.8 else 2
    n_look = int(rng.integers(0, 3)) if rng.random() < 0.6 else 0
    todo = [("wild", None)] * n_wild + [("look", None)] * n_look
    for what, _ in todo:
        for _try in range(6):
            if what == "wild":
                cls = int(rng.integers(0, 3))
                maker, item = make_item(rng, split, ppc, O.WILDLIFE[cls])
            else:
                maker, item = make_item(rng, split, ppc, O.LOOKALIKES)
            ry0, rx0, ry1, rx1 = region
            if item.h > canvas[0] or item.w > canvas[1]:
                ppc_try = ppc * 0.7  # too large for this scan: try smaller next time
                ppc = ppc_try
                continue
            lo_y, lo_x = min(max(ry0, 0), canvas[0] - item.h), min(max(rx0, 0), canvas[1] - item.w)
            hi_y = min(max(ry1 - item.h, lo_y), canvas[0] - item.h)
            hi_x = min(max(rx1 - item.w, lo_x), canvas[1] - item.w)
            y, x = int(rng.integers(lo_y, hi_y + 1)), int(rng.integers(lo_x, hi_x + 1))
            place(parts, boxes, item, y, x)
            names.append(f"{maker.__name__}:{getattr(item, 'family', '')}".rstrip(":"))
            break


def render(parts, h, w, rng, noise="everywhere"):
    """Both energies' transmissions of `parts`; simulated photon noise `noise`: "everywhere",
    "objects" (inside the objects only) or "none" (the same random draws, scaled to zero)."""
    sc = Scene(h, w)
    for mat, t, y, x in parts:
        sc.add(t, mat, y, x)
    return sc.transmissions(rng, noise=0.0 if noise == "none" else 0.008, noise_outside=noise == "everywhere")


def simulated(rng, split, size, square=False):
    """A simulated parcel. Returns (image array, mode, boxes, background name, object names,
    the same scan in the other rendering: 16-bit grayscale for a colour scan and vice versa)."""
    W = int(size * rng.uniform(0.8, 1.0))
    H = int(size * rng.uniform(0.6, 0.9))
    if square:
        W = H = size
    parcel_cm = rng.uniform(40, 75)
    ppc = W / parcel_cm
    parts, boxes, names = [], [], []
    kind = ["box", "envelope", "bag"][int(rng.integers(0, 3))]
    m = int(0.04 * W)
    if kind == "box":
        parts.append(("paper", box_shell(H, W, m, m, H - m, W - m, 0.5, 30.0, ppc), 0, 0))
    elif kind == "envelope":
        env = np.zeros((H, W))
        env[m:-m, m:-m] = 0.3
        parts.append(("paper", env, 0, 0))
        parts.append(("plastic", env * 2 * noise_field(rng, H, W, 0.8 * ppc), 0, 0))
    else:
        bag = ellipsoid(H, W, H / 2, W / 2, H / 2 - m, W / 2 - m, 0.0, 1.0) ** 0.15
        parts.append(("cloth", bag * 0.8, 0, 0))
        rail = np.zeros((H, W))
        for yy in (int(H * 0.2), int(H * 0.8)):
            rail[yy - 2 : yy + 2, m * 2 : W - m * 2] = 1.0
        parts.append(("aluminium", rail * 0.4, 0, 0))
        parts.append(("steel", (np.abs(np.arange(W) - W * 0.5) < 1)[None, :] * bag * 0.1, 0, 0))
    for _ in range(int(rng.integers(3, 12))):
        item = O.CLUTTER[int(rng.integers(0, len(O.CLUTTER)))](rng, ppc, 0)
        if item.h >= H or item.w >= W:
            continue
        y, x = int(rng.uniform(m, max(m + 1, H - m - item.h))), int(rng.uniform(m, max(m + 1, W - m - item.w)))
        place(parts, [], item, min(y, H - item.h), min(x, W - item.w))
    wildlife_items(rng, split, ppc, (m, m, H - m, W - m), (H, W), parts, boxes, names)
    t_low, t_high = render(parts, H, W, rng)
    colour, gray = pseudo_colour(t_low, t_high), grayscale16(t_low, t_high)
    if rng.random() < 0.65:
        return colour, "colour", boxes, f"sim:{kind}", names, gray
    return gray, "gray16", boxes, f"sim:{kind}", names, colour


def projected(rng, split, xray: Path, bg_rel: str, noise: str = "everywhere"):
    """Threat image projection onto a real scan; `noise` as render's: "objects" leaves the scan's
    pixels outside every object as they were, "none" adds no simulated noise at all (the real
    scan's own noise shows through the objects, as in threat image projection at a station)."""
    bg = Image.open(xray / bg_rel)
    src = source_of(bg_rel)
    colour = bg.mode == "RGB" and src in ("sixray", "more_sixray", "more_opixray", "more_pidray", "more_eds")
    arr = np.asarray(bg.convert("RGB" if colour else "L"), np.float64) / 255.0
    if src == "gdxray":  # small crops: bring them to a scanner's scale
        f = 2.5
        bg2 = bg.convert("L").resize((int(bg.width * f), int(bg.height * f)), Image.BILINEAR)
        arr = np.asarray(bg2, np.float64) / 255.0
    H, W = arr.shape[:2]
    dark = (arr if arr.ndim == 2 else arr.mean(axis=2)) < 0.92
    ys, xs = np.nonzero(dark)
    region = (ys.min(), xs.min(), ys.max(), xs.max()) if len(ys) > 100 else (0, 0, H, W)
    # SIXray-like colour bags ~55 cm across the width; full GDXray baggage ~50 cm; GDXray crops
    # (enlarged above) 40 cm; packaged goods boxes ~30 cm
    ppc = W / (55.0 if (colour or src == "sixray") else 50.0 if src == "more_gdxray" else 30.0 if src == "packaged_goods" else 40.0)
    parts, boxes, names = [], [], []
    wildlife_items(rng, split, ppc, region, (H, W), parts, boxes, names)
    t_low, t_high = render(parts, H, W, rng, noise)
    if colour:
        obj = pseudo_colour(t_low, t_high).astype(np.float64) / 255.0
        out = np.clip(np.rint(arr * obj * 255.0), 0, 255).astype(np.uint8)
        return out, "colour", boxes, bg_rel, names, None
    obj = grayscale16(t_low, t_high).astype(np.float64) / 65535.0
    out = np.clip(np.rint(arr * obj * 255.0), 0, 255).astype(np.uint8)
    return out, "gray8", boxes, bg_rel, names, None


def one(args):
    split, i, seed, size, xray, bgs, out, square, both, noise = args
    rng = np.random.default_rng([seed, SPLITS[split], i])
    if bgs and not square and rng.random() < 0.6:
        img, mode, boxes, bg, names, other = projected(rng, split, Path(xray), bgs[int(rng.integers(0, len(bgs)))],
                                                          noise)
    else:
        img, mode, boxes, bg, names, other = simulated(rng, split, size, square)
    name = f"{split}_{i:05d}"
    ext = ".tiff" if (mode == "gray16" and split == "test" and i % 3 == 0) else ".png"
    file = f"{split}/images/{name}{ext}"
    H, W = img.shape[:2]
    Image.fromarray(img).save(Path(out) / file)
    if both and other is not None:
        (Path(out) / split / "other").mkdir(exist_ok=True)
        Image.fromarray(other).save(Path(out) / split / "other" / f"{name}.png")
    clean = []
    for cls, y0, x0, y1, x1 in boxes:
        y0, x0, y1, x1 = max(0, y0), max(0, x0), min(H, y1), min(W, x1)
        if y1 - y0 >= 3 and x1 - x0 >= 3:
            clean.append((int(cls), int(x0), int(y0), int(x1), int(y1)))
    with open(Path(out) / f"{split}/labels/{name}.txt", "w") as f:
        for cls, x0, y0, x1, y1 in clean:
            f.write(f"{cls} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} {(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}\n")
    return dict(file=file, split=split, background=bg, seed=f"{seed}/{SPLITS[split]}/{i}", render=mode,
                objects=";".join(names), width=W, height=H, boxes=clean)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".cache/xray-synth")
    ap.add_argument("--xray", type=Path, default=ROOT.parent / "shared/datasets/xray")
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--size", type=int, default=640, help="long side of simulated scans (px)")
    ap.add_argument("--backgrounds", type=int, default=1, choices=(1, 2),
                    help="which split of the real scans (real_backgrounds): 1 for xray-v1, 2 for xray-v2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--square", action="store_true", help="simulated parcels only, exactly size x size (benchmarks)")
    ap.add_argument("--both", action="store_true",
                    help="also write each simulated scan in its other rendering (SPLIT/other/NAME.png: 16-bit "
                         "grayscale for a colour scan, pseudo-colour for a grayscale one; same boxes)")
    noise = ap.add_mutually_exclusive_group()
    noise.add_argument("--noise-inside-objects", dest="noise", action="store_const", const="objects", default="objects",
                       help="the default: on projected scans, simulated photon noise inside the objects only; the "
                            "real scan around them stays as it was, as a station's raw scan is")
    noise.add_argument("--noise-everywhere", dest="noise", action="store_const", const="everywhere",
                       help="the rendering before 2026-12-04 (xray-v1, -v2 and -v3 were trained and measured on "
                            "it; reproduces their data byte for byte): photon noise over the whole projected scan, "
                            "which a detector can learn to tell from a raw one (models/xray-v3/MODEL_CARD.md, "
                            "'A render shortcut')")
    noise.add_argument("--no-object-noise", dest="noise", action="store_const", const="none",
                       help="projected objects without simulated photon noise (same objects and boxes as the "
                            "default): a check that a detector does not find objects by the noise the simulator "
                            "puts inside them, which a real parcel's objects do not carry")
    a = ap.parse_args()
    bgs = real_backgrounds(a.xray, a.backgrounds)
    if not bgs and not a.square:
        sys.exit(f"synth.py: no real scans under {a.xray} to project onto (../shared/datasets/xray beside the "
                 "checkout, or --xray DIR); without them every scan would silently be a simulated parcel")
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "backgrounds.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "split"])
        w.writerows(bgs)
    jobs = []
    for split, n in [("train", a.train), ("val", a.val), ("test", a.test)]:
        (a.out / split / "images").mkdir(parents=True, exist_ok=True)
        (a.out / split / "labels").mkdir(parents=True, exist_ok=True)
        mine = [p for p, s in bgs if s == split]
        jobs += [(split, i, a.seed, a.size, str(a.xray), mine, str(a.out), a.square, a.both,
                  a.noise) for i in range(n)]
    with Pool(a.workers) as pool:
        rows = pool.map(one, jobs, chunksize=8)
    with open(a.out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "split", "background", "seed", "render", "objects"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in w.fieldnames})
    with open(a.out / "boxes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "x0", "y0", "x1", "y1"])
        for r in rows:
            for cls, x0, y0, x1, y1 in r["boxes"]:
                w.writerow([r["file"], O.CLASSES[cls], x0, y0, x1, y1])
    for split in SPLITS:
        images, anns = [], []
        for r in rows:
            if r["split"] != split:
                continue
            iid = len(images) + 1
            images.append(dict(id=iid, file_name=r["file"], width=r["width"], height=r["height"]))
            for cls, x0, y0, x1, y1 in r["boxes"]:
                anns.append(dict(id=len(anns) + 1, image_id=iid, category_id=cls + 1, bbox=[x0, y0, x1 - x0, y1 - y0],
                                 area=(x1 - x0) * (y1 - y0), iscrowd=0))
        cats = [dict(id=i + 1, name=n) for i, n in enumerate(O.CLASSES)]
        (a.out / f"{split}.json").write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    with open(a.out / "eval.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label"])
        for r in rows:
            if r["split"] == "test":
                w.writerow([str((a.out / r["file"]).resolve()), "synthetic"])
        for rel, split in bgs:
            if split != "train":
                suffix = {"val": "_val", "heldout": "_heldout"}.get(split, "")
                w.writerow([str((a.xray / rel).resolve()), source_of(rel) + suffix])
    with open(a.out / "eval_boxes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "x0", "y0", "x1", "y1"])
        for r in rows:
            for cls, x0, y0, x1, y1 in r["boxes"]:
                w.writerow([str((a.out / r["file"]).resolve()), O.CLASSES[cls], x0, y0, x1, y1])
    counts = {s: sum(1 for r in rows if r["split"] == s) for s in SPLITS}
    boxes = {c: sum(1 for r in rows for b in r["boxes"] if b[0] == i) for i, c in enumerate(O.CLASSES)}
    print(f"wrote {counts} scans to {a.out}; boxes {boxes}")


if __name__ == "__main__":
    main()
