"""Model-card tables and pictures for an X-ray detector, from its eval set.

  card.py --model models/xray-v2 --set .cache/xray-v2-test [--compare models/xray-v1 ...]
          [--metrics models/xray-v2/metrics.json] [--pictures models/xray-v2/examples.jpg]

Prints (markdown):
- per-source false alarms at the shipped thresholds, from `tusk eval --json` output (--metrics),
  with exact 95 % binomial (Clopper-Pearson) intervals;
- an operating-point table: one threshold for every label, detection rate per label (a true box
  found by a same-label box at IoU >= 0.5 scoring at least that) on the synthetic test scans and
  the share of real scans flagged, per source; scored here with ONNX Runtime and the training
  script's preprocessing (letterbox as tusk does), not chosen on these scans;
- in that table, the synthetic test scans without wildlife that are flagged, in two groups: those
  holding look-alikes (simulated resin carvings, bone chews, belts, cables and the like: the
  manifest lists objects) and those holding none (a simulated parcel's clutter or a real scan);
- with --pictures, a sheet of hits, misses and false alarms (real false alarms only on scans whose
  licence allows showing them: packaged goods, CC BY 4.0; else synthetic scans without wildlife).
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_detector as T  # noqa: E402
from finetune import clopper_pearson  # noqa: E402

COLOURS = {"ivory": (255, 0, 255), "pangolin_scales": (255, 40, 40), "live_reptile": (0, 220, 255)}


def thresholds(model_dir: Path) -> tuple[dict, Path]:
    """A model folder's per-label thresholds and its ONNX file, from model.toml."""
    import tomllib

    m = tomllib.loads((model_dir / "model.toml").read_text())
    return {lab["name"]: lab["threshold"] for lab in m["labels"]}, model_dir / m["file"]


def detect(onnx: Path, files: list[str], size: int = 384, bs: int = 16):
    """Per scan: (detections in scan pixels after class-wise NMS at score 0.02, scan size)."""
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(files), bs):
        ims = [T.load_rgb(Path(f)) for f in files[i : i + bs]]
        boxes = [T.letterbox(im, size) for im in ims]
        x = np.stack([b[0] for b in boxes]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        raw = sess.run(None, {"images": x})[0]
        for d, (_, (sx, sy, left, top)), im in zip(T.nms_detect(torch.from_numpy(raw)), boxes, ims):
            scan = [(c, s, (x0 - left) / sx, (y0 - top) / sy, (x1 - left) / sx, (y1 - top) / sy)
                    for c, s, x0, y0, x1, y1 in d]
            out.append((scan, im.size))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--set", type=Path, required=True, help="synth.py output with eval.csv, eval_boxes.csv")
    ap.add_argument("--compare", type=Path, action="append", default=[],
                    help="another model folder for the operating-point table (repeatable)")
    ap.add_argument("--metrics", type=Path, help="tusk eval --json output at the shipped thresholds")
    ap.add_argument("--pictures", type=Path)
    ap.add_argument("--levels", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    ap.add_argument("--projected-only", action="store_true",
                    help="of the synthetic test scans, only those projected onto a real scan (simulated "
                         "parcels left out): the ones most like a real parcel")
    a = ap.parse_args()
    manifest = list(csv.DictReader(open(a.set / "manifest.csv")))
    rows = list(csv.DictReader(open(a.set / "eval.csv")))
    if a.projected_only:
        simulated = {Path(r["file"]).name for r in manifest if r["background"].startswith("sim")}
        rows = [r for r in rows if r["label"] != "synthetic" or Path(r["file"]).name not in simulated]
    truth = {}
    for r in csv.DictReader(open(a.set / "eval_boxes.csv")):
        truth.setdefault(r["file"], []).append(
            (T.CLASSES.index(r["label"]), *(float(r[k]) for k in ("x0", "y0", "x1", "y1"))))
    files = [r["file"] for r in rows]
    sources = sorted({r["label"] for r in rows} - {"synthetic"})
    objects = {Path(r["file"]).name: r["objects"] for r in manifest}

    if a.metrics:
        m = json.loads(a.metrics.read_text())["models"][0]
        print(f"\n**{m['model']} at its thresholds: real scans flagged (any label), per source** "
              f"(`tusk eval`; 95 % Clopper-Pearson interval)\n")
        print("| source | flagged | rate | 95 % interval |\n|---|---|---|---|")
        tk = tn = 0
        for src, (k, n) in sorted(m["flagged_any_by_dataset_label"].items()):
            if src == "synthetic":
                continue
            k, n = int(k), int(n)
            if not src.endswith("_val"):
                tk, tn = tk + k, tn + n
            lo, hi = clopper_pearson(k, n)
            print(f"| {src} | {k} / {n} | {k / n:.1%} | {lo:.1%} – {hi:.1%} |")
        lo, hi = clopper_pearson(tk, tn)
        print(f"| **all test real scans** (no `_val`) | **{tk} / {tn}** | **{tk / tn:.1%}** | {lo:.1%} – {hi:.1%} |")

    levels = [float(v) for v in a.levels.split(",")]
    models = [a.model] + a.compare
    results = {}
    for md in models:
        th, onnx = thresholds(md)
        results[md.name] = (th, detect(onnx, files))
    print("\n**Operating points** (one threshold for all labels; synthetic test detection rate per "
          "label; real test scans flagged, `_val` rows left out)\n")
    head = "| model | threshold | " + " | ".join(T.CLASSES) + " | no wildlife: look-alikes / nothing added | " \
        + "real test scans flagged | " + " | ".join(s for s in sources if not s.endswith("_val")) + " |"
    print(head + "\n" + "|---" * (head.count("|") - 1) + "|")
    for name, (th, dets) in results.items():
        for lv in levels + ["shipped"]:
            cell = []
            for c, lab in enumerate(T.CLASSES):
                t = th[lab] if lv == "shipped" else lv
                found = total = 0
                for f, (d, _) in zip(files, dets):
                    for row in truth.get(f, []):
                        if row[0] != c:
                            continue
                        total += 1
                        found += any(cc == c and s >= t and T.box_iou(b, row[1:]) >= 0.5 for cc, s, *b in d)
                cell.append(f"{found / max(total, 1):.1%}")
            per = {}
            look, plain = [0, 0], [0, 0]
            for r, (d, _) in zip(rows, dets):
                hit = any(s >= (th[T.CLASSES[c]] if lv == "shipped" else lv) for c, s, *_ in d)
                if r["label"] == "synthetic" and not truth.get(r["file"]):
                    g = look if objects.get(Path(r["file"]).name) else plain
                    g[0], g[1] = g[0] + hit, g[1] + 1
                if r["label"] == "synthetic" or r["label"].endswith("_val"):
                    continue
                k, n = per.get(r["label"], (0, 0))
                per[r["label"]] = (k + hit, n + 1)
            k = sum(v[0] for v in per.values())
            n = sum(v[1] for v in per.values())
            label = "shipped" if lv == "shipped" else f"{lv:.2f}"
            print(f"| {name} | {label} | " + " | ".join(cell) + f" | {look[0]}/{look[1]} / {plain[0]}/{plain[1]} | {k / n:.1%} ({k}/{n}) | "
                  + " | ".join(f"{per[s][0]}/{per[s][1]}" for s in sources if not s.endswith("_val")) + " |")

    if a.pictures:
        th, dets = results[a.model.name]
        by = {r["file"]: (r, d) for r, d in zip(rows, dets)}
        hits, misses, alarms, looks = [], [], [], []
        for f, (r, (d, _)) in by.items():
            if r["label"] == "synthetic" and truth.get(f):
                ok = [any(cc == c and s >= th[T.CLASSES[c]] and T.box_iou(b, t) >= 0.5 for cc, s, *b in d)
                      for c, *t in truth[f]]
                (hits if all(ok) else misses).append(f)
            elif r["label"] == "synthetic" and any(s >= th[T.CLASSES[c]] for c, s, *_ in d):
                looks.append(f)
            elif r["label"].startswith("packaged") and any(s >= th[T.CLASSES[c]] for c, s, *_ in d):
                alarms.append(f)
        picks = hits[:3] + misses[:3] + (alarms + looks)[:2]
        tiles = []
        for f in picks:
            r, (d, _) = by[f]
            im = T.load_rgb(Path(f))
            dr = ImageDraw.Draw(im)
            for c, x0, y0, x1, y1 in truth.get(f, []):
                dr.rectangle([x0, y0, x1, y1], outline=(255, 255, 255), width=3)
            for c, s, x0, y0, x1, y1 in d:
                if s >= th[T.CLASSES[c]]:
                    dr.rectangle([x0, y0, x1, y1], outline=COLOURS[T.CLASSES[c]], width=3)
                    dr.text((x0 + 4, y0 + 4), f"{T.CLASSES[c]} {s:.2f}", fill=COLOURS[T.CLASSES[c]])
            im.thumbnail((400, 400))
            tile = Image.new("RGB", (400, 420), (30, 30, 30))
            tile.paste(im, (0, 20))
            kind = "hit" if f in hits else "miss" if f in misses else "false alarm" if f in alarms \
                else "false alarm (no wildlife)"
            ImageDraw.Draw(tile).text((4, 4), f"{kind}: {Path(f).name}", fill=(255, 255, 255))
            tiles.append(tile)
        sheet = Image.new("RGB", (400 * 4, 420 * ((len(tiles) + 3) // 4)), (0, 0, 0))
        for i, t in enumerate(tiles):
            sheet.paste(t, (400 * (i % 4), 420 * (i // 4)))
        sheet.save(a.pictures, quality=85)
        print(f"\npictures: {a.pictures} ({', '.join(Path(p).name for p in picks)}); "
              f"hits {len(hits)}, misses {len(misses)}, packaged-goods false alarms {len(alarms)}, "
              f"synthetic false alarms without wildlife {len(looks)}")


if __name__ == "__main__":
    main()
