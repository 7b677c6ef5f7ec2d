"""Prints a listing model card's result tables (markdown) from models/<version>/metrics.json, and
the worst mistakes per label from the test scores that evaluate.py wrote
(.cache/<version>/scores_*.csv), so the card's numbers are copied by a program, not by hand.

  card_tables.py [--version listing-v2] [--mistakes] [--kinds] [--compare OTHER_REPORT.json] [--sheet OUT.jpg]

--kinds: false positives per kind of negative on the test split (ivory look-alikes by material, as
the dataset's `detail` names it). --compare: the issue's goals, this model against another
model's report on the same split (evaluate.py --thresholds-from ... --report ...)."""

import argparse
import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["ivory", "pangolin_scales", "live_reptile"]
NAMES = {"val": "validation split (thresholds chosen here)", "test": "real test split", "render_test": "held-out pangolin-scale renders", "imagenet": "ImageNet sample photos (reported apart)"}
POSITIVES = {"ivory": {"ivory", "ivory_composite"}, "live_reptile": {"reptile"}, "pangolin_scales": {"pangolin_scales"}}
LOOKALIKES = ("bone", "ceramic", "ivory_lookalike", "other_carving")
ANIMALS = ("pet_nonreptile", "exotic_pet_nonreptile")
# ivory_lookalike's material, from the first matching word of its `detail`
MATERIALS = (("antler", "horn / antler / bone"), ("horn", "horn / antler / bone"), ("bone china", "bone china / porcelain"),
             ("bone", "horn / antler / bone"), ("china", "bone china / porcelain"), ("porcelain", "bone china / porcelain"),
             ("parian", "bone china / porcelain"), ("alabaster", "marble / alabaster / plaster"), ("marble", "marble / alabaster / plaster"),
             ("plaster", "marble / alabaster / plaster"))


def pct(v):
    return "–" if v is None else f"{100 * v:.1f} %"


def flagged(s: dict, label: str, kinds) -> tuple[int, int]:
    cells = [s["flagged_by_source_label"].get(k, {}).get(label, [0, 0]) for k in kinds]
    return sum(c[0] for c in cells), sum(c[1] for c in cells)


def frac(k: int, n: int) -> str:
    return f"{pct(k / n if n else None)} ({k}/{n})"


def tables(m: dict) -> None:
    print(f"Thresholds (chosen on validation): {', '.join(f'`{k}` ≥ {v}' for k, v in m['thresholds'].items())}\n")
    for name, s in m["sets"].items():
        print(f"**{NAMES[name]}** ({s['images']} images)\n")
        print("| label | precision | recall | AP | FPR (all negatives) | FPR on product photos | TP / FP / FN / TN |")
        print("|---|---|---|---|---|---|---|")
        for lab in LABELS:
            x = s["labels"][lab]
            prod = s["flagged_by_source_label"].get("product", {}).get(lab)
            pf = f"{pct(prod[0] / prod[1])} ({prod[0]}/{prod[1]})" if prod else "–"
            ap = "–" if x["ap"] is None else f"{x['ap']:.3f}"
            print(f"| {lab} | {pct(x['precision'])} | {pct(x['recall'])} | {ap} | {pct(x['fpr'])} | {pf} | {x['tp']} / {x['fp']} / {x['fn']} / {x['tn']} |")
        print()
        print("Flagged per dataset label: " + "; ".join(
            f"{src}: " + ", ".join(f"{lab} {k}/{n}" for lab, (k, n) in cells.items() if k)
            for src, cells in s["flagged_by_source_label"].items() if any(k for k, _ in cells.values())) + "\n")


def material(detail: str) -> str:
    d = detail.lower()
    return next((name for word, name in MATERIALS if word in d), "other")


def kinds(version: str, m: dict, data: Path) -> None:
    """Test-split false positives per kind of negative, with ivory look-alikes by material."""
    detail = {r["file"]: r["detail"] for r in csv.DictReader(open(data / "labels.csv", newline=""))}
    th = m["thresholds"]
    for name in ("test", "imagenet"):
        rows = list(csv.DictReader(open(ROOT / f".cache/{version}/scores_{name}.csv", newline="")))
        counts: dict[tuple[str, str], list[int]] = {}
        for r in rows:
            rel = str(Path(r["file"]).relative_to(data)) if Path(r["file"]).is_relative_to(data) else r["file"]
            kind = r["label"] + (f": {material(detail.get(rel, ''))}" if r["label"] == "ivory_lookalike" else "")
            for lab in ("ivory", "live_reptile"):
                c = counts.setdefault((kind, lab), [0, 0])
                c[0] += float(r[lab]) >= th[lab]
                c[1] += 1
        print(f"**{NAMES[name]}: flagged per kind of photo**\n")
        print("| kind (dataset label) | flagged as ivory | flagged as live_reptile |")
        print("|---|---|---|")
        for kind in sorted({k for k, _ in counts}):
            print(f"| {kind} | {frac(*counts[(kind, 'ivory')])} | {frac(*counts[(kind, 'live_reptile')])} |")
        print()


def compare(m: dict, other: dict, version: str) -> None:
    """The issue's goals on the test split: the other model's report, then this one."""
    a, b = other["sets"]["test"], m["sets"]["test"]
    print(f"| goal (test split) | target | {other.get('model', 'other')} | {version} |")
    print("|---|---|---|---|")

    def row(what, target, f):
        print(f"| {what} | {target} | {f(a)} | {f(b)} |")

    row("ivory recall / precision", "≥ 0.90 / ≥ 0.90", lambda s: f"{s['labels']['ivory']['recall']:.3f} / {s['labels']['ivory']['precision']:.3f}")
    row("ivory AP", "–", lambda s: f"{s['labels']['ivory']['ap']:.3f}")
    row("live_reptile recall / precision", "≥ 0.95 / ≥ 0.90", lambda s: f"{s['labels']['live_reptile']['recall']:.3f} / {s['labels']['live_reptile']['precision']:.3f}")
    row("live_reptile AP", "–", lambda s: f"{s['labels']['live_reptile']['ap']:.3f}")
    row("other animals (pet_nonreptile, exotic_pet_nonreptile) flagged as live_reptile", "≤ 2 %", lambda s: frac(*flagged(s, "live_reptile", ANIMALS)))
    row("look-alikes (bone, ceramic, ivory_lookalike, other_carving) flagged as ivory", "as low as recall allows", lambda s: frac(*flagged(s, "ivory", LOOKALIKES)))
    for lab in LABELS:
        row(f"product photos flagged as {lab}", "≤ 2 %", lambda s, lab=lab: frac(*flagged(s, lab, ("product",))))
    if "imagenet" in other["sets"] and "imagenet" in m["sets"]:
        a, b = other["sets"]["imagenet"], m["sets"]["imagenet"]
        row("ImageNet samples (apart): non-reptile photos flagged as live_reptile", "–", lambda s: frac(*flagged(s, "live_reptile", ("imagenet_other", "pet_nonreptile"))))
        row("ImageNet samples (apart): reptiles found", "–", lambda s: frac(*flagged(s, "live_reptile", ("reptile",))))
    print()


def mistakes(version: str, m: dict) -> None:
    th = m["thresholds"]
    for name in ("test", "render_test"):
        rows = list(csv.DictReader(open(ROOT / f".cache/{version}/scores_{name}.csv")))
        for lab in LABELS:
            negatives = (r for r in rows if r["label"] not in POSITIVES[lab] | {"ivory_painting"})  # paintings: not in ivory's metrics
            fps = sorted((r for r in negatives if float(r[lab]) >= th[lab]), key=lambda r: -float(r[lab]))
            print(f"{name} {lab} flagged: " + ", ".join(f"{Path(r['file']).name}({r['label']},{float(r[lab]):.2f})" for r in fps[:40]))
            miss = sorted((r for r in rows if r["label"] in POSITIVES[lab] and float(r[lab]) < th[lab]), key=lambda r: float(r[lab]))
            print(f"{name} {lab} missed: " + ", ".join(f"{Path(r['file']).name}({float(r[lab]):.2f})" for r in miss[:25]))


def sheet(version: str, m: dict, data: Path, out: Path, per_row: int = 6) -> None:
    """The test split's ivory and live_reptile mistakes as pictures, worst first, only photos whose
    licence allows showing them (CC0 / public domain in labels.csv); the rest are named in the text."""
    from PIL import Image, ImageDraw, ImageOps

    lic = {r["file"]: r["license"] for r in csv.DictReader(open(data / "labels.csv"))}
    th = m["thresholds"]
    rows = list(csv.DictReader(open(ROOT / f".cache/{version}/scores_test.csv")))
    picked = []
    for lab in ("ivory", "live_reptile"):
        neg = [r for r in rows if r["label"] not in POSITIVES[lab] | {"ivory_painting"} and float(r[lab]) >= th[lab]]
        miss = [r for r in rows if r["label"] in POSITIVES[lab] and float(r[lab]) < th[lab]]
        for kind, group, key in (("missed", miss, 1.0), ("false", neg, -1.0)):
            for r in sorted(group, key=lambda r: key * float(r[lab])):
                rel = str(Path(r["file"]).relative_to(data))
                if lic.get(rel, "").startswith("CC0"):
                    picked.append((f"{lab} {kind} {float(r[lab]):.2f}", Path(r["file"]), r["label"]))
    tiles = []
    for title, path, label in picked[: per_row * 4]:
        im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        im.thumbnail((200, 200))
        t = Image.new("RGB", (200, 240), (30, 30, 30))
        t.paste(im, ((200 - im.width) // 2, 36))
        d = ImageDraw.Draw(t)
        d.text((4, 2), title, fill=(255, 255, 255))
        d.text((4, 16), f"{path.name} ({label})", fill=(200, 200, 200))
        tiles.append(t)
    out_im = Image.new("RGB", (200 * per_row, 240 * ((len(tiles) + per_row - 1) // per_row)), (0, 0, 0))
    for i, t in enumerate(tiles):
        out_im.paste(t, (200 * (i % per_row), 240 * (i // per_row)))
    out_im.save(out, quality=85)
    print(f"{out}: {len(tiles)} of {len(picked)} CC0 mistakes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="listing-v1")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/listing")
    ap.add_argument("--mistakes", action="store_true")
    ap.add_argument("--kinds", action="store_true")
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--sheet", type=Path, help="write the test mistakes whose licence allows it as a picture sheet")
    args = ap.parse_args()
    m = json.loads((ROOT / f"models/{args.version}/metrics.json").read_text())
    tables(m)
    if args.kinds:
        kinds(args.version, m, args.data.resolve())
    if args.compare:
        compare(m, json.loads(args.compare.read_text()), args.version)
    if args.mistakes:
        mistakes(args.version, m)
    if args.sheet:
        sheet(args.version, m, args.data, args.sheet)


if __name__ == "__main__":
    main()
