"""Does a detector find the projected objects, or the rendering around them?

  shortcut_check.py [--set .cache/xray-v3-test] [--seed 20261204] [--model xray-v1 ...]

synth.py projected wildlife onto real scans and, until 2026-12-04 (now `--noise-everywhere`), added
simulated photon noise to the whole scan, the real pixels around the objects included; a raw scan
from a station has no such noise. SET is such a rendering (scripts/quality.sh makes xray-v3's);
this renders the same test split again with `--noise-inside-objects` (same objects, same
boxes; outside them the raw scan), then measures each model through `tusk eval --boxes` on the
projected scans of both renderings: detection per label, and the share of projected scans
without wildlife that are flagged. A model that lost detection on the clean rendering was
partly finding the noise (models/xray-v3/MODEL_CARD.md, "A render shortcut"). Simulated parcels
are left out: they are rendered whole either way.
"""

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("ivory", "pangolin_scales", "live_reptile")


def projected_eval_files(set_dir: Path) -> tuple[Path, Path]:
    """Labels and boxes CSVs of `set_dir`'s projected test scans, written into it, for `tusk eval`:
    dataset label `wildlife` or `no_wildlife`, so the report counts flagged scans of each."""
    rows = [r for r in csv.DictReader(open(set_dir / "manifest.csv")) if r["split"] == "test"]
    boxes = list(csv.DictReader(open(set_dir / "eval_boxes.csv")))
    with_boxes = {Path(b["file"].strip()).name for b in boxes}
    keep = {}
    for r in rows:
        if not r["background"].startswith("sim"):
            name = Path(r["file"].strip()).name
            keep[str(set_dir.resolve() / r["file"].strip())] = "wildlife" if name in with_boxes else "no_wildlife"
    labels, box_csv = set_dir / f"{set_dir.name}-labels.csv", set_dir / f"{set_dir.name}-boxes.csv"
    with open(labels, "w") as f:
        f.write("file,label\n")
        f.writelines(f"{k},{v}\n" for k, v in sorted(keep.items()))
    with open(box_csv, "w") as f:
        f.write("file,label,x0,y0,x1,y1\n")
        for b in boxes:
            file = str(set_dir.resolve() / "test/images" / Path(b["file"].strip()).name)
            if file in keep:
                f.write(",".join([file] + [b[k].strip() for k in ("label", "x0", "y0", "x1", "y1")]) + "\n")
    return labels, box_csv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, default=ROOT / ".cache/xray-v3-test", help="a synth.py test split")
    ap.add_argument("--seed", type=int, default=20261204, help="the seed that split was rendered with")
    ap.add_argument("--backgrounds", type=int, default=2)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--model", action="append", help="model names (default xray-v1, xray-v2, xray-v3)")
    ap.add_argument("--tusk", type=Path, default=ROOT / "target/release/tusk")
    ap.add_argument("--files-only", action="store_true",
                    help="render and write SET/SET-labels.csv, SET/SET-boxes.csv (and the clean set's), no eval "
                         "(scripts/quality.sh: tests/quality.rs evaluates them)")
    a = ap.parse_args()
    models = a.model or ["xray-v1", "xray-v2", "xray-v3"]
    clean = a.set.parent / f"{a.set.name}-clean"
    if not (clean / "manifest.csv").is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts/xray/synth.py"), "--out", str(clean), "--backgrounds",
                        str(a.backgrounds), "--seed", str(a.seed), "--train", "0", "--val", "0", "--test", str(a.test),
                        "--noise-inside-objects"], check=True, stdout=subprocess.DEVNULL)
    renderings = [("noise everywhere (as trained)", projected_eval_files(a.set)),
                  ("noise inside objects only", projected_eval_files(clean))]
    if a.files_only:
        return
    print("| model | rendering | " + " | ".join(LABELS) + " | projected scans without wildlife flagged |")
    print("|---|---|---|---|---|---|")
    for model in models:
        for name, (labels, boxes) in renderings:
            out = subprocess.run([str(a.tusk), "eval", "/", "--kind", "xray", "--labels", str(labels), "--boxes",
                                  str(boxes), "--model", model, "--json"], check=True, capture_output=True, text=True)
            m = json.loads(out.stdout)["models"][0]
            k, n = m["flagged_any_by_dataset_label"]["no_wildlife"]
            cells = [f"{100 * m['boxes'][lab]['detection_rate']:.1f} %" for lab in LABELS]
            print(f"| {model} | {name} | " + " | ".join(cells) + f" | {k} / {n} |", flush=True)


if __name__ == "__main__":
    main()
