"""Splits ../shared/datasets/listing into train / val / test by near-duplicate group.

Every image of a group lands on the same side, so a re-crop of a test photo is never trained on.
Groups are stratified by label (a group's label is its most common one), 70 / 15 / 15, with a
fixed seed. Rows from the ImageNet samples repository, and rows the dataset marks as
"ImageNet-derived" (PyTorch's hymenoptera ants and bees), go to a separate `imagenet` split: the
backbone was pretrained on ImageNet and may have seen them, so they are reported apart and never
trained on.

With --base (an earlier split.csv), every group already in it keeps its split and only the new
groups are split as above: a later model's test split then holds no image an earlier model
trained on, so both can be measured on it. listing-v1: no --base; listing-v2: --base
datasets/listing-v1/split.csv.

Writes datasets/<version>/split.csv (file, label, group, split) and test.csv (file, label: the
test split, for `tusk eval --labels`): paths only, no images.
"""

import argparse
import collections
import csv
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGENET_SOURCE = "EliSchwartz/imagenet-sample-images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/listing")
    ap.add_argument("--out", type=Path, default=ROOT / "datasets/listing-v1/split.csv")
    ap.add_argument("--base", type=Path, help="an earlier split.csv whose groups keep their split")
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args()

    kept: dict[str, str] = {}
    if args.base:
        kept = {r["group"]: r["split"] for r in csv.DictReader(open(args.base, newline=""))}

    rows = list(csv.DictReader(open(args.data / "labels.csv", newline="")))
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for r in rows:
        groups[r["group"]].append(r)

    by_label: dict[str, list[str]] = collections.defaultdict(list)
    split_of: dict[str, str] = {}
    for gid, members in sorted(groups.items(), key=lambda kv: int(kv[0])):
        if gid in kept:
            split_of[gid] = kept[gid]
            continue
        if any(IMAGENET_SOURCE in m["source"] or "ImageNet-derived" in m["detail"] for m in members):
            split_of[gid] = "imagenet"
            continue
        label = collections.Counter(m["label"] for m in members).most_common(1)[0][0]
        by_label[label].append(gid)

    rng = random.Random(args.seed)
    for label in sorted(by_label):
        gids = by_label[label]
        rng.shuffle(gids)
        n = len(gids)
        n_test = round(n * 0.15)
        n_val = round(n * 0.15)
        for i, gid in enumerate(gids):
            split_of[gid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "group", "split"])
        for r in rows:
            w.writerow([r["file"], r["label"], r["group"], split_of[r["group"]]])

    test_csv = args.out.with_name("test.csv")
    with open(test_csv, "w", newline="") as f:  # what `tusk eval --labels` reads
        w = csv.writer(f)
        w.writerow(["file", "label"])
        for r in rows:
            if split_of[r["group"]] == "test":
                w.writerow([r["file"], r["label"]])

    table = collections.Counter((split_of[r["group"]], r["label"]) for r in rows)
    labels = sorted({r["label"] for r in rows})
    print(f"{'label':24}" + "".join(f"{s:>10}" for s in ("train", "val", "test", "imagenet")))
    for label in labels:
        print(f"{label:24}" + "".join(f"{table[(s, label)]:>10}" for s in ("train", "val", "test", "imagenet")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
