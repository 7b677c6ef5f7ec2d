"""How far averaging listing models' ivory logits gets towards 0.90 precision at 0.90 recall.

Reads the per-image score CSVs that evaluate.py writes (.cache/<work>/scores_{val,test}.csv) for
models scored on one split, averages their logits for every combination, and prints ivory AP on
validation and test and the best precision at recall 0.90 (an oracle threshold on each set, to
bound what any threshold could give; the bone photos are also left out once, since bone and ivory
netsuke look alike). Choose on validation; the test column is reported, not chosen on.

  evaluate.py --version listing-v1 --split datasets/listing-v2/split.csv --work .cache/ens-listing-v1 \
      --thresholds-from models/listing-v1/metrics.json --report /tmp/v1.json --sets val test
  ensemble_ap.py v1=.cache/ens-listing-v1 v3=.cache/ens-listing-v3 v4=.cache/listing-v4 [--report F]
"""

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from metrics import label_metrics  # noqa: E402
from train import LABELS, targets  # noqa: E402

IVORY = LABELS.index("ivory")


def load(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(files relative to the dataset, dataset labels, ivory logits) of one scores CSV."""
    rows = list(csv.DictReader(open(path, newline="")))
    p = np.clip(np.array([float(r["ivory"]) for r in rows]), 1e-7, 1 - 1e-7)
    return [r["file"].split("listing/")[-1] for r in rows], [r["label"] for r in rows], np.log(p / (1 - p))


def precision_at_recall(logits: np.ndarray, y: np.ndarray, recall: float) -> float:
    """The precision of the highest threshold that still finds `recall` of the positives."""
    order = np.argsort(-logits, kind="stable")
    tp = np.cumsum(y[order])
    k = int(np.searchsorted(tp, np.ceil(recall * y.sum())))
    return float(tp[k] / (k + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="NAME=DIR with DIR/scores_val.csv and DIR/scores_test.csv")
    ap.add_argument("--report", type=Path)
    args = ap.parse_args()
    dirs = dict(m.split("=", 1) for m in args.models)
    sets = {}
    for name in ("val", "test"):
        loaded = {k: load(Path(d) / f"scores_{name}.csv") for k, d in dirs.items()}
        files, labels, _ = next(iter(loaded.values()))
        assert all(f == files for f, _, _ in loaded.values()), f"{name}: the models were scored on different images"
        keep = np.array([targets(l)[1][IVORY] > 0 for l in labels])  # ivory paintings left out
        y = np.array([targets(l)[0][IVORY] for l in labels])
        bone = np.array([l == "bone" for l in labels])
        sets[name] = {"logits": {k: v[2] for k, v in loaded.items()}, "keep": keep, "y": y, "bone": bone}
    rows = []
    for n in range(1, len(dirs) + 1):
        for combo in itertools.combinations(dirs, n):
            row = {"models": "+".join(combo)}
            for name, s in sets.items():
                lg = np.mean([s["logits"][k] for k in combo], 0)
                m = s["keep"]
                row[f"{name}_ap"] = label_metrics(1 / (1 + np.exp(-lg[m])), s["y"][m], 0.5)["ap"]
                row[f"{name}_precision_at_recall_0.90"] = precision_at_recall(lg[m], s["y"][m], 0.90)
                nb = m & ~s["bone"]
                row[f"{name}_precision_at_recall_0.90_without_bone"] = precision_at_recall(lg[nb], s["y"][nb], 0.90)
            rows.append(row)
            print(" | ".join([row["models"]] + [f"{v:.3f}" for k, v in row.items() if k != "models"]))
    if args.report:
        args.report.write_text(json.dumps({"columns": list(rows[0]), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
