"""Prints the model card's result tables (markdown) from models/listing-v1/metrics.json, and the
worst mistakes per label from the test scores that train.py wrote (.cache/listing-v1/scores_*.csv),
so the card's numbers are copied by a program, not by hand."""

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["ivory", "pangolin_scales", "live_reptile"]
NAMES = {"val": "validation split (thresholds chosen here)", "test": "real test split", "render_test": "held-out pangolin-scale renders", "imagenet": "ImageNet sample photos (reported apart)"}


def pct(v):
    return "–" if v is None else f"{100 * v:.1f} %"


def main() -> None:
    m = json.loads((ROOT / "models/listing-v1/metrics.json").read_text())
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
    if "--mistakes" in sys.argv:
        th = m["thresholds"]
        for name in ("test", "render_test"):
            rows = list(csv.DictReader(open(ROOT / f".cache/listing-v1/scores_{name}.csv")))
            for lab in LABELS:
                fps = sorted((r for r in rows if float(r[lab]) >= th[lab]), key=lambda r: -float(r[lab]))
                print(f"{name} {lab} flagged: " + ", ".join(f"{Path(r['file']).name}({r['label']},{float(r[lab]):.2f})" for r in fps[:40] if r["label"] not in ({"ivory", "ivory_composite"} if lab == "ivory" else {"reptile"} if lab == "live_reptile" else {"pangolin_scales"})))
                pos = {"ivory": {"ivory", "ivory_composite"}, "live_reptile": {"reptile"}, "pangolin_scales": {"pangolin_scales"}}[lab]
                miss = sorted((r for r in rows if r["label"] in pos and float(r[lab]) < th[lab]), key=lambda r: float(r[lab]))
                print(f"{name} {lab} missed: " + ", ".join(f"{Path(r['file']).name}({float(r[lab]):.2f})" for r in miss[:25]))


if __name__ == "__main__":
    main()
