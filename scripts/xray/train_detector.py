"""Trains tusk's X-ray detector (models/xray-v1) on the synthetic scans of synth.py.

A small anchor-free detector written here (no AGPL code or weights; trained from scratch):
a residual CNN backbone with strides 8/16/32, a top-down feature pyramid, and one shared head per
level predicting box side distances (l, t, r, b in strides) and three class logits. Targets are
assigned FCOS-style (cells near a box's centre, the level by box size). The ONNX export decodes
inside the graph to the YOLOv8/YOLO11 layout tusk reads: output0 = [batch, 4 + 3, anchors],
rows cx, cy, w, h in input pixels, then a sigmoid score per class.

Preprocessing is tusk's: letterbox to 384 x 384 (Pillow bilinear, pad 114), RGB scaled to 0..1;
16-bit grayscale becomes 8-bit as tusk's decoder does ((v + 128) // 257) and is replicated to RGB.

Thresholds are chosen on the validation split: per class, the highest score at which validation
recall (IoU >= 0.5) is still >= --target-recall, raised if needed until at most --max-fa of the
pure real validation backgrounds would be flagged. They are written to OUT/thresholds.json.
"""

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CLASSES = ["ivory", "pangolin_scales", "live_reptile"]
STRIDES = (8, 16, 32)
RANGES = ((0, 48), (48, 112), (112, 1e9))  # max side distance (px) each level handles


# ------------------------------------------------------------------ data


def load_rgb(path: Path) -> Image.Image:
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I"):
        a = np.asarray(im, np.uint32)
        im = Image.fromarray(((a + 128) // 257).astype(np.uint8))
    return im.convert("RGB")


def letterbox(im: Image.Image, size: int):
    w, h = im.size
    s = min(size / w, size / h)
    nw, nh = max(1, min(size, round(w * s))), max(1, min(size, round(h * s)))
    out = Image.new("RGB", (size, size), (114, 114, 114))
    out.paste(im.resize((nw, nh), Image.BILINEAR), ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(out), (nw / w, nh / h, (size - nw) // 2, (size - nh) // 2)


def load_split(data: Path, split: str, size: int, limit: int = 0):
    rows = [r for r in csv.DictReader(open(data / "manifest.csv")) if r["split"] == split]
    rows = rows[:limit] if limit else rows
    boxes = {}
    for r in csv.DictReader(open(data / "boxes.csv")):
        boxes.setdefault(r["file"], []).append(
            (CLASSES.index(r["label"]), *(float(r[k]) for k in ("x0", "y0", "x1", "y1")))
        )
    imgs = np.zeros((len(rows), size, size, 3), np.uint8)
    targets = []
    for i, (img, (sx, sy, left, top)) in enumerate(load_letterboxed([data / r["file"] for r in rows], size)):
        imgs[i] = img
        t = [(c, x0 * sx + left, y0 * sy + top, x1 * sx + left, y1 * sy + top) for c, x0, y0, x1, y1 in boxes.get(rows[i]["file"], [])]
        targets.append(np.array(t, np.float32).reshape(-1, 5))
    return imgs, targets, [r["file"] for r in rows]


def load_letterboxed(paths: list, size: int) -> list:
    """letterbox(load_rgb(p), size) for every path, decoded on a thread per core (Pillow's decoders
    and resize release the GIL: a 16-core machine loads 10,000 scans in seconds, not minutes)."""
    from concurrent.futures import ThreadPoolExecutor
    import os

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(lambda p: letterbox(load_rgb(p), size), paths))


def load_backgrounds(xray: Path, bgs_csv: Path, split: str, size: int):
    files = [r["file"] for r in csv.DictReader(open(bgs_csv)) if r["split"] == split]
    return np.stack([im for im, _ in load_letterboxed([xray / f for f in files], size)]) if files else None


# ------------------------------------------------------------------ model


def conv(cin, cout, k=3, s=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = conv(c, c // 2, 1), conv(c // 2, c, 3)

    def forward(self, x):
        return x + self.b(self.a(x))


class TinyDet(nn.Module):
    """Backbone (strides 2..32), top-down pyramid, shared head; see the module docstring."""

    def __init__(self, nc=3, w=(24, 48, 96, 128, 192), neck=64):
        super().__init__()
        self.nc = nc
        self.stem = nn.Sequential(conv(3, w[0], 3, 2), conv(w[0], w[1], 3, 2), Res(w[1]))
        self.s3 = nn.Sequential(conv(w[1], w[2], 3, 2), Res(w[2]), Res(w[2]))
        self.s4 = nn.Sequential(conv(w[2], w[3], 3, 2), Res(w[3]), Res(w[3]))
        self.s5 = nn.Sequential(conv(w[3], w[4], 3, 2), Res(w[4]), Res(w[4]))
        add_pyramid(self, (w[2], w[3], w[4]), neck, nc)

    def features(self, x):
        c3 = self.s3(self.stem(x))
        c4 = self.s4(c3)
        return pyramid(self, c3, c4, self.s5(c4))

    def forward(self, x):
        """Raw outputs per level: [B, 4 + nc, H, W]."""
        return [self.head(p) for p in self.features(x)]


def add_pyramid(m: nn.Module, chs, neck: int, nc: int) -> None:
    """Gives a detector (TinyDet, litedet.LiteDet) its top-down pyramid over maps of `chs`
    channels at strides 8 / 16 / 32 (l3, l4, l5, f3, f4) and its shared head (prior score 1 %)."""
    m.l3, m.l4, m.l5 = (conv(c, neck, 1) for c in chs)
    m.f3, m.f4 = conv(neck, neck), conv(neck, neck)
    m.head = nn.Sequential(conv(neck, neck), nn.Conv2d(neck, 4 + nc, 1))
    b = m.head[-1].bias
    nn.init.constant_(b[4:], -4.6)  # prior score 1 %
    nn.init.constant_(b[:4], 0.5)


def pyramid(m: nn.Module, c3, c4, c5) -> list:
    """The pyramid levels [p3, p4, p5] of a detector built by add_pyramid."""
    p5 = m.l5(c5)
    p4 = m.f4(m.l4(c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest"))
    p3 = m.f3(m.l3(c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest"))
    return [p3, p4, p5]


def grids(size, device):
    out = []
    for s in STRIDES:
        n = size // s
        ys, xs = torch.meshgrid(torch.arange(n, device=device), torch.arange(n, device=device), indexing="ij")
        out.append(torch.stack([(xs.flatten() + 0.5) * s, (ys.flatten() + 0.5) * s], 1).float())
    return out


def decode(raw, size):
    """[B, A, 4] boxes x0 y0 x1 y1 (input px) and [B, A, nc] logits, anchors level by level."""
    boxes, logits = [], []
    for r, g, s in zip(raw, grids(size, raw[0].device), STRIDES):
        B, C = r.shape[:2]
        r = r.view(B, C, -1).permute(0, 2, 1)
        d = F.softplus(r[..., :4]) * s
        boxes.append(torch.cat([g - d[..., :2], g + d[..., 2:]], -1))
        logits.append(r[..., 4:])
    return torch.cat(boxes, 1), torch.cat(logits, 1)


def export_onnx(model: nn.Module, size: int, path) -> None:
    """Writes `model` (moved to the CPU) as the graph tusk runs (Export: YOLOv8 layout, opset 17,
    dynamic batch), the one export every training recipe shares."""
    ex = Export(model.cpu(), size).eval()
    torch.onnx.export(ex, torch.zeros(1, 3, size, size), path, input_names=["images"], output_names=["output0"],
                      dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}}, opset_version=17, dynamo=False)


class Export(nn.Module):
    """The graph tusk runs: images [B,3,S,S] in 0..1 -> output0 [B, 4 + nc, A] (YOLOv8 layout)."""

    def __init__(self, m, size):
        super().__init__()
        self.m, self.size = m, size

    def forward(self, images):
        b, logits = decode(self.m(images), self.size)
        cxcywh = torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], -1)
        return torch.cat([cxcywh, torch.sigmoid(logits)], -1).permute(0, 2, 1)


# ------------------------------------------------------------------ targets and loss


def assign(targets, size, device):
    """Per image: class target [A, nc] and box target [A, 4] (nan where not positive)."""
    pts = grids(size, device)
    lv = torch.cat([torch.full((len(p),), i, device=device) for i, p in enumerate(pts)])
    strides = torch.tensor(STRIDES, device=device, dtype=torch.float32)[lv]
    allp = torch.cat(pts)
    A = len(allp)
    cls_t = torch.zeros((len(targets), A, len(CLASSES)), device=device)
    box_t = torch.full((len(targets), A, 4), float("nan"), device=device)
    lo = torch.tensor([r[0] for r in RANGES], device=device)[lv]
    hi = torch.tensor([r[1] for r in RANGES], device=device)[lv]
    for i, t in enumerate(targets):
        if len(t) == 0:
            continue
        t = torch.as_tensor(t, device=device)
        c, bx = t[:, 0].long(), t[:, 1:]
        x, y = allp[:, 0:1], allp[:, 1:2]
        l, tp = x - bx[:, 0], y - bx[:, 1]
        r, b = bx[:, 2] - x, bx[:, 3] - y
        ltrb = torch.stack([l, tp, r, b], -1)  # [A, G, 4]
        inside = ltrb.min(-1).values > 0
        cx, cy = (bx[:, 0] + bx[:, 2]) / 2, (bx[:, 1] + bx[:, 3]) / 2
        rad = strides[:, None] * 1.5
        central = ((x - cx).abs() < rad) & ((y - cy).abs() < rad)
        m = ltrb.max(-1).values
        ok = inside & central & (m >= lo[:, None]) & (m <= hi[:, None])
        # every box gets at least the P3 cell holding its centre
        cell = ((cy / 8).long().clamp(0, size // 8 - 1) * (size // 8) + (cx / 8).long().clamp(0, size // 8 - 1))
        ok[cell, torch.arange(len(t), device=device)] = True
        area = ((bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1]))[None].expand(A, -1)
        area = torch.where(ok, area, torch.full_like(area, float("inf")))
        best = area.argmin(1)
        pos = torch.isfinite(area.min(1).values)
        cls_t[i, pos, c[best[pos]]] = 1.0
        box_t[i, pos] = bx[best[pos]]
    return cls_t, box_t


def giou(a, b):
    ix0, iy0 = torch.max(a[:, 0], b[:, 0]), torch.max(a[:, 1], b[:, 1])
    ix1, iy1 = torch.min(a[:, 2], b[:, 2]), torch.min(a[:, 3], b[:, 3])
    inter = (ix1 - ix0).clamp(0) * (iy1 - iy0).clamp(0)
    area = lambda z: (z[:, 2] - z[:, 0]).clamp(0) * (z[:, 3] - z[:, 1]).clamp(0)  # noqa: E731
    union = area(a) + area(b) - inter + 1e-7
    iou = inter / union
    cx0, cy0 = torch.min(a[:, 0], b[:, 0]), torch.min(a[:, 1], b[:, 1])
    cx1, cy1 = torch.max(a[:, 2], b[:, 2]), torch.max(a[:, 3], b[:, 3])
    hull = (cx1 - cx0) * (cy1 - cy0) + 1e-7
    return iou - (hull - union) / hull, iou


def loss_fn(raw, targets, size):
    boxes, logits = decode(raw, size)
    cls_t, box_t = assign(targets, size, boxes.device)
    pos = ~torch.isnan(box_t[..., 0])
    npos = max(1.0, float(pos.sum()))
    g, iou = giou(boxes[pos], box_t[pos]) if pos.any() else (boxes.new_zeros(0), boxes.new_zeros(0))
    # IoU-aware classification target on positives (scores rank boxes by quality for NMS/AP)
    q = cls_t.clone()
    q[pos] = q[pos] * iou.detach().clamp(0.2, 1.0)[:, None]
    p = torch.sigmoid(logits)
    w = (p - q).abs().pow(2.0)  # focal-style weight
    l_cls = (F.binary_cross_entropy_with_logits(logits, q, reduction="none") * w).sum() / npos
    l_box = (1.0 - g).sum() / npos
    return l_cls + 2.0 * l_box, float(l_cls.detach()), float(l_box.detach())


# ------------------------------------------------------------------ evaluation helpers


def nms_detect(out, conf=0.02, iou=0.5, top=100):
    """Per image: list of (class, score, x0, y0, x1, y1) after class-wise NMS."""
    from torchvision.ops import batched_nms

    res = []
    for o in out:  # [4 + nc, A]
        o = o.T
        b = torch.cat([o[:, :2] - o[:, 2:4] / 2, o[:, :2] + o[:, 2:4] / 2], 1)
        s, c = o[:, 4:].max(1)
        k = s > conf
        b, s, c = b[k], s[k], c[k]
        keep = batched_nms(b, s, c, iou)[:top]
        res.append([(int(c[j]), float(s[j]), *b[j].tolist()) for j in keep])
    return res


def box_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def best_scores(dets, targets, cls):
    """For each true box of `cls`, the highest score of a same-class detection with IoU >= 0.5."""
    out = []
    for d, t in zip(dets, targets):
        for row in t:
            if int(row[0]) != cls:
                continue
            s = [sc for c, sc, *b in d if c == cls and box_iou(b, row[1:]) >= 0.5]
            out.append(max(s) if s else 0.0)
    return np.array(out)


def recall_threshold(best: np.ndarray, target: float) -> float:
    """The highest score at which a share `target` of the true boxes (their `best_scores`) is
    still found; 0.05 when no score reaches that recall."""
    cand = np.sort(best[best > 0])[::-1]
    k = int(math.ceil(target * len(best))) - 1
    return float(cand[k]) if 0 <= k < len(cand) else 0.05


@torch.no_grad()
def predict(model, imgs, size, device, bs=64):
    ex = Export(model, size).eval()
    dets = []
    for i in range(0, len(imgs), bs):
        x = torch.as_tensor(imgs[i : i + bs], device=device).permute(0, 3, 1, 2).float() / 255.0
        dets += nms_detect(ex(x))
    return dets


# ------------------------------------------------------------------ main


def augment(x, targets, size, gen):
    """Random flips and transposition (scans have no up), the same for a whole batch; a random
    gain per scan. Boxes follow."""
    t = [b.copy() for b in targets]
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(-1)
        for b in t:
            b[:, [1, 3]] = size - b[:, [3, 1]]
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(-2)
        for b in t:
            b[:, [2, 4]] = size - b[:, [4, 2]]
    if torch.rand(1, generator=gen) < 0.5:
        x = x.transpose(-1, -2)
        t = [b[:, [0, 2, 1, 4, 3]] for b in t]
    gain = 0.85 + 0.3 * torch.rand((len(x), 1, 1, 1), generator=gen).to(x.device)
    return (1 - (1 - x) * gain).clamp(0, 1), t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parents[2]
    ap.add_argument("--data", type=Path, default=root / ".cache/xray-synth")
    ap.add_argument("--xray", type=Path, default=root.parent / "shared/datasets/xray")
    ap.add_argument("--out", type=Path, default=root / "models/xray-v1")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--target-recall", type=float, default=0.93)
    ap.add_argument("--max-fa", type=float, default=0.01)
    ap.add_argument("--max-minutes", type=float, default=85.0, help="stop training after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N train/val scans (smoke tests)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    dev = torch.device(a.device)
    t0 = time.time()
    tr_x, tr_t, _ = load_split(a.data, "train", a.size, a.limit)
    va_x, va_t, _ = load_split(a.data, "val", a.size, a.limit)
    bg_x = load_backgrounds(a.xray, a.data / "backgrounds.csv", "val", a.size) if a.xray.exists() else None
    print(f"loaded {len(tr_x)} train, {len(va_x)} val scans in {time.time() - t0:.0f} s", flush=True)
    model = TinyDet(len(CLASSES)).to(dev)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=5e-4)
    steps = a.epochs * math.ceil(len(tr_x) / a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(a.seed)
    tr_gpu = torch.as_tensor(tr_x, device=dev)
    t_train = time.time()
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(tr_x), generator=gen)
        tot = [0.0, 0.0, 0]
        for i in range(0, len(perm), a.batch):
            idx = perm[i : i + a.batch]
            x = tr_gpu[idx.to(dev)].permute(0, 3, 1, 2).float() / 255.0
            x, t = augment(x, [tr_t[j] for j in idx.tolist()], a.size, gen)
            loss, lc, lb = loss_fn(model(x), t, a.size)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            tot[0] += lc
            tot[1] += lb
            tot[2] += 1
        el = (time.time() - t_train) / 60
        print(f"epoch {ep + 1}/{a.epochs}: cls {tot[0] / tot[2]:.3f} box {tot[1] / tot[2]:.3f} ({el:.1f} min)", flush=True)
        if el > a.max_minutes:
            print(f"stopping: {a.max_minutes} min budget reached", flush=True)
            break
    train_minutes = (time.time() - t_train) / 60
    model.eval()
    dets = predict(model, va_x, a.size, dev)
    bg_dets = predict(model, bg_x, a.size, dev) if bg_x is not None else []
    thresholds, report = {}, {}
    for c, name in enumerate(CLASSES):
        s = best_scores(dets, va_t, c)
        th = recall_threshold(s, a.target_recall)
        bg_max = np.array([max([sc for cc, sc, *_ in d if cc == c], default=0.0) for d in bg_dets])
        if len(bg_max):
            lim = float(np.quantile(bg_max, 1 - a.max_fa)) + 1e-4
            th = max(th, lim)
        th = round(min(max(th, 0.05), 0.95), 4)
        thresholds[name] = th
        report[name] = dict(threshold=th, val_recall=float((s >= th).mean()) if len(s) else None,
                            val_boxes=int(len(s)),
                            val_background_fa=float((bg_max >= th).mean()) if len(bg_dets) else None)
        print(f"{name}: threshold {th} val recall {report[name]['val_recall']:.3f} "
              f"bg flagged {report[name]['val_background_fa']}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), a.out / "xray-v1.pt")
    export_onnx(model, a.size, a.out / "xray-v1.onnx")
    (a.out / "thresholds.json").write_text(json.dumps(dict(thresholds=thresholds, validation=report,
                                                           train_minutes=round(train_minutes, 1),
                                                           device=a.device, epochs=a.epochs), indent=2))
    print(f"trained {train_minutes:.1f} min on {a.device}; wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
