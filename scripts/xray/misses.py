"""Which simulated wildlife an X-ray detector misses: detection rate per object kind, shape family
(objects.HELD_OUT_FAMILY is the test-only one), background (simulated parcel or a real scan's
source), rendering and box size, on a synth.py test split, at each model's own thresholds.

  misses.py --set .cache/xray-v3-test --model models/xray-v2 [--model models/xray-v1] [--report F]

A true box is found as in `tusk eval --boxes` and card.py: a same-label detection at or above the
label's threshold with IoU >= 0.5. A box is attributed to an object kind only when its scan holds
one wildlife object of that label (manifest.csv `objects`); the rest count under "(several)".
Scored with ONNX Runtime and tusk's letterbox (card.detect). Describes; chooses nothing.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import objects as O  # noqa: E402
import train_detector as T  # noqa: E402
from card import detect, thresholds  # noqa: E402

KIND_LABEL = {fn.__name__: cls for cls, fns in O.WILDLIFE.items() for fn in fns}


def box_facts(set_dir: Path) -> list[dict]:
    """One row per true box of the test split: file, label, kind, family, background, render, size."""
    manifest = {r["file"]: r for r in csv.DictReader(open(set_dir / "manifest.csv", newline=""))}
    rows = []
    for r in csv.DictReader(open(set_dir / "boxes.csv", newline="")):
        m = manifest[r["file"]]
        cls = T.CLASSES.index(r["label"])
        same = [n for n in m["objects"].split(";") if n and KIND_LABEL.get(n.split(":")[0]) == cls]
        kind, family = same[0].split(":") if len(same) == 1 else ("(several)", "")
        bg = m["background"]
        bg = "simulated parcel" if not bg or bg.startswith("sim") else bg.split("/")[0] + ("/" + bg.split("/")[1] if bg.startswith("more/") else "")
        box = [float(r[k]) for k in ("x0", "y0", "x1", "y1")]
        side = ((box[2] - box[0]) * (box[3] - box[1])) ** 0.5
        rows.append(dict(file=str(set_dir / r["file"]), label=r["label"], cls=cls, kind=kind,
                         family=("held out" if family == str(O.HELD_OUT_FAMILY) else f"family {family}") if family else "",
                         background=bg, render=m["render"], size="< 48 px" if side < 48 else "48–128 px" if side < 128 else "≥ 128 px",
                         box=box))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--model", type=Path, action="append", required=True)
    ap.add_argument("--report", type=Path)
    a = ap.parse_args()
    boxes = box_facts(a.set)
    files = sorted({b["file"] for b in boxes})
    report = {}
    for md in a.model:
        th, onnx = thresholds(md)
        dets = dict(zip(files, (d for d, _ in detect(onnx, files))))
        for b in boxes:
            ious = [T.box_iou(bx, b["box"]) for c, s, *bx in dets[b["file"]] if c == b["cls"] and s >= th[b["label"]]]
            iou = max(ious, default=0.0)
            b[md.name] = iou >= 0.5
            b[f"{md.name} how"] = ("IoU >= 0.5" if iou >= 0.5 else "0.1 <= IoU < 0.5" if iou >= 0.1
                                   else "elsewhere in the scan only" if ious else "no box of its label")
    names = [md.name for md in a.model]
    print("\nHow each true box fares (at the model's thresholds, same-label boxes only)")
    for n in names:
        print(f"\n| label | {n}: found (IoU >= 0.5) | overlapped, IoU 0.1–0.5 | label flagged elsewhere only | not flagged |\n|---|---|---|---|---|")
        for label in T.CLASSES:
            bs = [b for b in boxes if b["label"] == label]
            cells = [sum(b[f"{n} how"] == h for b in bs) for h in
                     ("IoU >= 0.5", "0.1 <= IoU < 0.5", "elsewhere in the scan only", "no box of its label")]
            print(f"| {label} | " + " | ".join(f"{k} ({k / len(bs):.0%})" for k in cells) + " |")
            report.setdefault("how", []).append(dict(model=n, label=label, boxes=len(bs), iou_0_5=cells[0], overlap=cells[1],
                                                     elsewhere=cells[2], none=cells[3]))
    for facet in ("kind", "family", "background", "render", "size"):
        print(f"\n| label | {facet} | boxes | " + " | ".join(f"{n} found" for n in names) + " |")
        print("|---" * (3 + len(names)) + "|")
        table = {}
        for b in boxes:
            table.setdefault((b["label"], b[facet]), []).append(b)
        for (label, value), bs in sorted(table.items()):
            found = [sum(b[n] for b in bs) for n in names]
            print(f"| {label} | {value} | {len(bs)} | " + " | ".join(f"{k} ({k / len(bs):.0%})" for k in found) + " |")
            report.setdefault(facet, []).append(dict(label=label, value=value, boxes=len(bs), **dict(zip(names, found))))
    if a.report:
        a.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
