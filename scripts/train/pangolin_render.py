"""Renders photos of pangolin scales composited onto real product-photo backgrounds.

No real photo of pangolin scales exists in reach, so tusk's `pangolin_scales` label is trained on
these. A scale is a keratin plate: a rounded-triangular or fan-shaped outline, brown to beige,
with fine ridges fanning out from the attached base, darker at the base and translucent at the
free edge, slightly glossy. Scenes: piles on a surface, bags (plastic or sack), a few scales in
close-up, scattered on a table. Backgrounds are real product photos from the same split (train
backgrounds for train, test backgrounds for test) or synthetic wood/cloth surfaces.

Negatives come from the same compositing code with look-alike items that are not scales (pebbles,
beans, coins, leaves, wood chips, in the same brown tones), so the model cannot learn "something
was pasted here" instead of "these are scales".

Held out: the test split uses the `rhomb` and `broadfan` outline families, which train and val
never see, and backgrounds from test-split product photos only.

Output: OUT/{train,val,test}/{pos,neg}/NNNNN.jpg (JPEG q85, like the real data) and
OUT/renders.csv (file, label, split, family, scene, background, seed), OUT/test.csv (file, label
of the test split, for `tusk eval --labels`).
"""

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[2]
TRAIN_FAMILIES = ["shield", "fan", "leaf"]
TEST_FAMILIES = ["rhomb", "broadfan"]
SCENES = ["pile", "bag", "closeup", "scatter"]
NEG_ITEMS = ["pebble", "bean", "coin", "leaf", "chip"]


def outline(family: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Unit outline (x right, y down; attached base at the top, free edge at the bottom)."""
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    if family == "shield":  # rounded triangle, point down
        w = rng.uniform(0.8, 1.1)
        x = np.sin(t) * w * (0.55 + 0.45 * np.cos(t) ** 2 * (np.cos(t) < 0))
        y = -np.cos(t) * (1.0 + 0.25 * (np.cos(t) < 0))
        x = np.sin(t) * w * np.where(np.cos(t) < 0, 0.35 + 0.65 * (1 + np.cos(t)) ** 0.5 / 1.0, 1.0)
    elif family == "fan":  # narrow base, broad rounded free edge
        w = rng.uniform(0.9, 1.3)
        y = -np.cos(t)
        x = np.sin(t) * w * (0.45 + 0.55 * (1 + y) / 2) ** 1.2
    elif family == "leaf":  # ovate, slightly pointed free edge
        w = rng.uniform(0.55, 0.8)
        y = -np.cos(t)
        x = np.sin(t) * w * (1 - 0.35 * np.clip(y, 0, 1) ** 2)
    elif family == "rhomb":  # rounded diamond
        w = rng.uniform(0.75, 1.05)
        y = -np.cos(t)
        x = np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.7 * w * (1 - np.abs(y)) ** 0.6
        x = x * 1.2
    elif family == "broadfan":  # wider than long, wavy free edge
        w = rng.uniform(1.2, 1.6)
        y = -np.cos(t) * 0.8 + 0.05 * np.sin(7 * t) * (np.cos(t) > 0)
        x = np.sin(t) * w * (0.5 + 0.5 * (1 - np.cos(t)) / 2)
    else:
        raise ValueError(family)
    return list(zip(x.tolist(), y.tolist()))


def brown(rng: np.random.Generator) -> np.ndarray:
    """A keratin colour: dark brown to amber to beige."""
    v = rng.uniform(0.28, 0.85)
    hue = rng.uniform(18, 42) / 360
    sat = rng.uniform(0.25, 0.7) * (1.1 - 0.4 * v)
    import colorsys

    return np.array(colorsys.hsv_to_rgb(hue, sat, v)) * 255


def mask_from(points: list[tuple[float, float]], size: int, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    span = max(xs.max() - xs.min(), ys.max() - ys.min())
    s = (size - 4) / span
    cx = size / 2 - (xs.max() + xs.min()) / 2 * s
    cy = size / 2 - (ys.max() + ys.min()) / 2 * s
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([(cx + x * s, cy + y * s) for x, y in points], fill=255)
    img = img.filter(ImageFilter.GaussianBlur(size / 60 + 0.5))
    m = np.asarray(img, dtype=np.float32) / 255
    m = np.clip((m - 0.5) * 4 + 0.5, 0, 1)
    base_y = cy + ys.min() * s
    return m, cx, base_y


def scale_sprite(family: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One pangolin scale as an RGBA sprite, base at the top."""
    m, cx, base_y = mask_from(outline(family, rng), size, rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # ridges fan out from a point just above the base
    ang = np.arctan2(xx - cx, yy - (base_y - size * 0.25))
    k = rng.uniform(40, 90)
    ridges = 0.5 + 0.5 * np.sin(ang * k + rng.uniform(0, 6.28))
    ridges = ridges ** rng.uniform(1.0, 3.0)
    depth = np.clip((yy - base_y) / size, 0, 1)  # 0 at base, 1 at free edge
    ridges *= np.clip(1.3 - depth * 1.2, 0, 1)  # fine striations fade towards the smooth free edge
    col = brown(rng)
    shade = 0.75 + 0.35 * depth  # darker base, lighter free edge
    shade *= 1 - rng.uniform(0.04, 0.15) * ridges
    # edge darkening and a soft glossy highlight
    edge = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(size / 25)), np.float32) / 255
    shade *= 0.7 + 0.3 * edge
    hx, hy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size
    gloss = np.exp(-(((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * (size * rng.uniform(0.1, 0.25)) ** 2)))
    rgb = col[None, None, :] * shade[..., None] + 255 * rng.uniform(0.05, 0.3) * gloss[..., None]
    rgb += rng.normal(0, 4, rgb.shape)
    # translucent free edge: a little less alpha at the far rim
    alpha = m * (1 - 0.25 * (depth > 0.8) * (1 - edge))
    out = np.dstack([np.clip(rgb, 0, 255), alpha * 255]).astype(np.uint8)
    return Image.fromarray(out, "RGBA")


def item_sprite(item: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A look-alike item that is not a scale, as an RGBA sprite."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    if item in ("pebble", "bean", "coin"):
        a = c * (0.95 if item == "coin" else rng.uniform(0.6, 0.95))
        b = a if item == "coin" else a * rng.uniform(0.45, 0.85)
        d = ((xx - c) / a) ** 2 + ((yy - c) / b) ** 2
        m = np.clip((1 - d) * 8, 0, 1)
        if item == "coin":
            col = np.array([rng.uniform(150, 220), rng.uniform(120, 190), rng.uniform(60, 140)])
        elif item == "bean":
            col = brown(rng) * rng.uniform(0.6, 1.1)
        else:
            g = rng.uniform(80, 220)
            col = np.array([g, g * rng.uniform(0.85, 1.0), g * rng.uniform(0.7, 1.0)]) if rng.random() < 0.5 else brown(rng)
        shade = 1.15 - 0.35 * np.clip(d, 0, 1)
        if item == "coin":
            shade *= 1 - 0.15 * ((d > 0.75) & (d < 0.85))
    elif item == "leaf":
        m, _, _ = mask_from(outline("leaf", rng), size, rng)
        col = np.array([rng.uniform(40, 140), rng.uniform(90, 170), rng.uniform(30, 80)]) if rng.random() < 0.6 else brown(rng)
        shade = 1 - 0.3 * (np.abs(xx - c) < size / 60)
    else:  # wood chip: irregular polygon with parallel grain
        pts = [(c + math.cos(a) * c * rng.uniform(0.5, 0.95), c + math.sin(a) * c * rng.uniform(0.3, 0.9)) for a in np.linspace(0, 6.28, 7, endpoint=False)]
        img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(img).polygon(pts, fill=255)
        m = np.asarray(img, np.float32) / 255
        col = brown(rng)
        shade = 0.85 + 0.15 * np.sin(yy * rng.uniform(0.3, 0.8) + 3 * np.sin(xx / 17))
    rgb = col[None, None, :] * shade[..., None] + rng.normal(0, 5, (size, size, 3))
    out = np.dstack([np.clip(rgb, 0, 255), m * 255]).astype(np.uint8)
    return Image.fromarray(out, "RGBA")


def surface(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """A synthetic wood, cloth or plain surface."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        base = brown(rng) * rng.uniform(0.7, 1.2)
        grain = 0.85 + 0.15 * np.sin(yy * rng.uniform(0.05, 0.2) + 4 * np.sin(xx / rng.uniform(30, 90)))
        rgb = base * grain[..., None]
    elif kind == 1:
        base = rng.uniform(60, 240, 3)
        weave = 0.92 + 0.08 * np.sin(xx * 1.3) * np.sin(yy * 1.3)
        rgb = base * weave[..., None]
    else:
        base = rng.uniform(150, 250, 3)
        rgb = base * (0.9 + 0.1 * yy / h)[..., None]
    rgb = rgb + rng.normal(0, 3, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def background(paths: list[Path], rng: np.random.Generator) -> tuple[Image.Image, str]:
    w, h = int(rng.integers(256, 385)), int(rng.integers(256, 385))
    if rng.random() < 0.3 or not paths:
        return surface(w, h, rng), "synthetic"
    p = paths[int(rng.integers(len(paths)))]
    img = Image.open(p).convert("RGB")
    s = max(w / img.width, h / img.height)
    img = img.resize((max(w, round(img.width * s)), max(h, round(img.height * s))), Image.BILINEAR)
    x, y = int(rng.integers(img.width - w + 1)), int(rng.integers(img.height - h + 1))
    return img.crop((x, y, x + w, y + h)), p.name


def paste(bg: Image.Image, sprite: Image.Image, x: float, y: float, angle: float, shadow: bool) -> None:
    sp = sprite.rotate(angle, resample=Image.BICUBIC, expand=True)
    px, py = int(x - sp.width / 2), int(y - sp.height / 2)
    if shadow:
        a = sp.getchannel("A").filter(ImageFilter.GaussianBlur(max(1, sp.width / 20)))
        sh = Image.new("RGBA", sp.size, (0, 0, 0, 0))
        sh.putalpha(a.point(lambda v: v * 0.45))
        off = max(1, sp.width // 14)
        bg.alpha_composite(sh, (px + off, py + off)) if px + off >= 0 and py + off >= 0 else _paste_clip(bg, sh, px + off, py + off)
    _paste_clip(bg, sp, px, py)


def _paste_clip(bg: Image.Image, sp: Image.Image, px: int, py: int) -> None:
    layer = Image.new("RGBA", bg.size, (0, 0, 0, 0))
    layer.paste(sp, (px, py))
    bg.alpha_composite(layer)


def scene(bg: Image.Image, make, scene_kind: str, rng: np.random.Generator) -> Image.Image:
    """Places sprites made by `make(size)` on `bg` as a pile, bag, close-up or scatter."""
    canvas = bg.convert("RGBA")
    w, h = canvas.size
    short = min(w, h)
    if scene_kind == "closeup":
        n, sizes = int(rng.integers(1, 6)), (short * 0.3, short * 0.6)
    elif scene_kind == "scatter":
        n, sizes = int(rng.integers(5, 20)), (short * 0.1, short * 0.22)
    else:
        n, sizes = int(rng.integers(25, 110)), (short * 0.07, short * 0.16)
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.4, 0.65) * h
    spread = rng.uniform(0.12, 0.28) * short
    bag = None
    if scene_kind == "bag":
        bw, bh = rng.uniform(0.45, 0.8) * w, rng.uniform(0.45, 0.8) * h
        bx, by = cx - bw / 2, cy - bh / 2
        bag = (bx, by, bx + bw, by + bh)
        sack = rng.random() < 0.5
        if sack:  # burlap or paper sack behind the scales
            col = tuple(int(v) for v in brown(rng) * rng.uniform(0.9, 1.3))
            ImageDraw.Draw(canvas).rounded_rectangle(bag, radius=bw / 8, fill=col + (255,))
        spread = min(bw, bh) / 3.5
    placed = 0
    cache = [make(int(rng.uniform(*sizes))) for _ in range(min(n, 8))]
    while placed < n:
        if scene_kind == "scatter" or scene_kind == "closeup":
            x, y = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        else:
            x, y = rng.normal(cx, spread), rng.normal(cy, spread * 0.7)
        if bag and not (bag[0] < x < bag[2] and bag[1] < y < bag[3]):
            continue
        sprite = cache[int(rng.integers(len(cache)))]
        s = rng.uniform(0.8, 1.2)
        sprite = sprite.resize((max(4, int(sprite.width * s)), max(4, int(sprite.height * s))), Image.BILINEAR)
        paste(canvas, sprite, x, y, rng.uniform(0, 360), shadow=rng.random() < 0.8)
        placed += 1
    if bag and rng.random() < 0.6:  # clear plastic film over the bag: sheen and wrinkles
        film = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(film)
        d.rounded_rectangle(bag, radius=(bag[2] - bag[0]) / 10, fill=(255, 255, 255, int(rng.uniform(25, 70))), outline=(240, 240, 240, 160), width=2)
        for _ in range(int(rng.integers(3, 9))):
            x0 = rng.uniform(bag[0], bag[2])
            d.line([(x0, bag[1]), (x0 + rng.uniform(-30, 30), bag[3])], fill=(255, 255, 255, int(rng.uniform(40, 110))), width=int(rng.integers(2, 6)))
        canvas.alpha_composite(film.filter(ImageFilter.GaussianBlur(1.5)))
    # global light / camera: brightness, slight blur
    out = canvas.convert("RGB")
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    arr = np.asarray(out, np.float32) * rng.uniform(0.8, 1.15)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/listing")
    ap.add_argument("--split", type=Path, default=ROOT / "datasets/listing-v1/split.csv")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache/pangolin")
    ap.add_argument("--counts", default="train=1600:600,val=300:120,test=300:120", help="split=positives:negatives")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rows = list(csv.DictReader(open(args.split, newline="")))
    bgs = {s: [args.data / r["file"] for r in rows if r["label"] == "product" and r["split"] == s] for s in ("train", "val", "test")}
    records = []
    for part in args.counts.split(","):
        split, counts = part.split("=")
        n_pos, n_neg = (int(c) for c in counts.split(":"))
        families = TEST_FAMILIES if split == "test" else TRAIN_FAMILIES
        for label, n in (("pangolin_scales", n_pos), ("render_negative", n_neg)):
            folder = args.out / split / ("pos" if label == "pangolin_scales" else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = [args.seed, ("train", "val", "test").index(split), label == "pangolin_scales", i]
                rng = np.random.default_rng(seed)
                bg, bg_name = background(bgs[split], rng)
                kind = SCENES[int(rng.integers(len(SCENES)))]
                if label == "pangolin_scales":
                    family = families[int(rng.integers(len(families)))]
                    img = scene(bg, lambda size: scale_sprite(family, size, rng), kind, rng)
                else:
                    family = NEG_ITEMS[int(rng.integers(len(NEG_ITEMS)))]
                    img = scene(bg, lambda size: item_sprite(family, size, rng), kind, rng)
                path = folder / f"{i:05d}.jpg"
                img.save(path, quality=85)
                records.append([str(path.relative_to(args.out)), label, split, family, kind, bg_name, "-".join(map(str, map(int, seed)))])
        print(f"{split}: {n_pos} scale renders, {n_neg} look-alike renders")
    with open(args.out / "renders.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "split", "family", "scene", "background", "seed"])
        w.writerows(records)
    with open(args.out / "test.csv", "w", newline="") as f:  # what `tusk eval --labels` reads
        w = csv.writer(f)
        w.writerow(["file", "label"])
        w.writerows([r[0], r[1]] for r in records if r[2] == "test")
    print(f"wrote {len(records)} images under {args.out}")


if __name__ == "__main__":
    main()
