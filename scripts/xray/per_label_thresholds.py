"""Per-label thresholds for an X-ray detector, matched to a baseline's detection on validation.

  per_label_thresholds.py choose --out T.json      # validation only: picks the thresholds
  per_label_thresholds.py test --thresholds T.json --out R.json   # test split, once
  per_label_thresholds.py models-dir --thresholds T.json --dest DIR   # a models folder for tusk eval

choose: for each label, the highest threshold at which the candidate's (default models/xray-v2)
validation detection rate is at least the baseline's (default models/xray-v1) at the baseline's
shipped thresholds (model.toml). Detection as in the model card: a true box is found when a
same-label box (after class-wise NMS at IoU 0.5, scan pixels) with IoU >= 0.5 scores at least the
threshold. Validation = the synthetic val split of --data (manifest.csv / boxes.csv) and the real
benign validation scans (backgrounds.csv split "val", as finetune.py reads them). The threshold is
the k-th highest of the candidate's per-box best scores (k = boxes the baseline finds), rounded
down to 4 decimals (what model.toml stores). Reports the share of real validation scans flagged
(any label) with a 95 % Clopper-Pearson interval.

test: both models on --set's eval.csv / eval_boxes.csv (as card.py: synthetic test scans, real
scans per source, `_val` rows left out of the test total): baseline at its shipped thresholds,
candidate at its shipped thresholds and at the chosen ones. Refuses to overwrite --out: the test
split is evaluated once.

Scoring reuses card.py's detect() (ONNX Runtime, tusk's letterbox), with one inference thread.
"""

import argparse
import csv
import json
import math
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import card as C  # noqa: E402
import train_detector as T  # noqa: E402
from finetune import clopper_pearson  # noqa: E402
from synth import source_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)
_Session = ort.InferenceSession


def _one_thread_session(path, **kw):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return _Session(path, sess_options=so, **kw)


C.ort = types.SimpleNamespace(InferenceSession=_one_thread_session)  # card.detect, one thread


def best_scores(dets, truth, files):
    """Per label: for each true box, the best score of a same-label detection at IoU >= 0.5 (0: none)."""
    best = {lab: [] for lab in T.CLASSES}
    for f, (d, _) in zip(files, dets):
        for c, *box in truth.get(f, []):
            s = [sc for cc, sc, *b in d if cc == c and T.box_iou(b, box) >= 0.5]
            best[T.CLASSES[c]].append(max(s) if s else 0.0)
    return best


def found(best, th):
    return {lab: (sum(s >= th[lab] for s in v), len(v)) for lab, v in best.items()}


def flagged(dets, th):
    return [any(s >= th[T.CLASSES[c]] for c, s, *_ in d) for d, _ in dets]


def per_source(srcs, flags):
    out = {}
    for s, f in zip(srcs, flags):
        k, n = out.get(s, (0, 0))
        out[s] = (k + int(f), n + 1)
    return dict(sorted(out.items()))


def rate(k, n):
    lo, hi = clopper_pearson(k, n)
    return dict(k=k, n=n, rate=k / n, ci95=[lo, hi])


def validation_set(data):
    """The validation split of synth.py's output `data`: synthetic scan paths, their true boxes
    (path -> [(class, x0, y0, x1, y1)]), the real benign scans (paths under --xray, as
    finetune.py reads them) and their sources."""
    files = [str(data / r["file"]) for r in csv.DictReader(open(data / "manifest.csv")) if r["split"] == "val"]
    truth = {}
    for r in csv.DictReader(open(data / "boxes.csv")):
        truth.setdefault(str(data / r["file"]), []).append(
            (T.CLASSES.index(r["label"]), *(float(r[k]) for k in ("x0", "y0", "x1", "y1"))))
    real = [r["file"] for r in csv.DictReader(open(data / "backgrounds.csv")) if r["split"] == "val"]
    print(f"validation: {len(files)} synthetic scans, {sum(len(truth.get(f, [])) for f in files)} boxes; "
          f"{len(real)} real benign scans", flush=True)
    return files, truth, real, [source_of(f) for f in real]


def with_thresholds(lines, thresholds):
    """model.toml's lines with each [[labels]] table's threshold set from thresholds (label -> value)."""
    out, label = [], None
    for line in lines:
        if line.strip() == "[[labels]]":
            label = ""
        elif label == "" and line.startswith("name = "):
            label = line.split("=", 1)[1].strip().strip('"')
        elif label and line.startswith("threshold = "):
            line = f"threshold = {thresholds[label]}"
            label = None
        out.append(line)
    return out


def choose(a):
    files, truth, real, srcs = validation_set(a.data)

    th_base, onnx_base = C.thresholds(a.base)
    th_cand, onnx_cand = C.thresholds(a.model)
    res = {}
    for name, onnx in ((a.base.name, onnx_base), (a.model.name, onnx_cand)):
        dets = C.detect(onnx, files + [str(a.xray / f) for f in real])
        res[name] = (best_scores(dets[: len(files)], truth, files), dets[len(files):])
        print(f"scored {name}", flush=True)
    best_b, real_b = res[a.base.name]
    best_c, real_c = res[a.model.name]

    base_found = found(best_b, th_base)
    chosen, exact = {}, {}
    for lab in T.CLASSES:
        k, n = base_found[lab]
        cand = sorted((s for s in best_c[lab] if s > 0), reverse=True)
        if k == 0:
            raise SystemExit(f"{lab}: baseline finds no box")
        if k > len(cand):
            raise SystemExit(f"{lab}: {a.model.name} finds only {len(cand)} boxes at any score, baseline {k}")
        exact[lab] = cand[k - 1]
        chosen[lab] = math.floor(exact[lab] * 1e4) / 1e4
    cand_found = found(best_c, chosen)
    for lab in T.CLASSES:
        assert cand_found[lab][0] >= base_found[lab][0], lab
        # the next higher 4-decimal threshold would fall below the baseline
        assert found(best_c, {**chosen, lab: chosen[lab] + 1e-4})[lab][0] < base_found[lab][0], lab

    out = dict(
        rule="per label: highest threshold (4 decimals) at which the candidate's validation detection "
             "rate >= the baseline's at its shipped thresholds",
        base=a.base.name, model=a.model.name, base_thresholds=th_base, model_shipped_thresholds=th_cand,
        thresholds=chosen, exact_kth_score=exact,
        validation=dict(
            detection={
                f"{a.base.name} shipped": base_found,
                f"{a.model.name} chosen": cand_found,
                f"{a.model.name} shipped": found(best_c, th_cand),
            },
            real_flagged={},
            real_flagged_per_source={},
        ),
    )
    for label, dets, th in ((f"{a.base.name} shipped", real_b, th_base),
                            (f"{a.model.name} chosen", real_c, chosen),
                            (f"{a.model.name} shipped", real_c, th_cand)):
        fl = flagged(dets, th)
        out["validation"]["real_flagged"][label] = rate(sum(fl), len(fl))
        out["validation"]["real_flagged_per_source"][label] = per_source(srcs, fl)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    report(out["validation"], "validation")
    print("chosen thresholds:", chosen, "(exact k-th scores:", {k: round(v, 6) for k, v in exact.items()}, ")")
    print(f"wrote {a.out}")


def report(v, split):
    print(f"\n{split}: detection per label")
    for name, d in v["detection"].items():
        print(f"  {name:24s} " + "  ".join(f"{lab} {k}/{n} ({k / n:.1%})" for lab, (k, n) in d.items()))
    print(f"{split}: real scans flagged (any label)")
    for name, r in v["real_flagged"].items():
        print(f"  {name:24s} {r['k']}/{r['n']} = {r['rate']:.1%} (95 % CI {r['ci95'][0]:.1%} - {r['ci95'][1]:.1%})")
        print("      " + ", ".join(f"{s} {k}/{n}" for s, (k, n) in v["real_flagged_per_source"][name].items()))


def test(a):
    if a.out.exists():
        raise SystemExit(f"{a.out} exists: the test split is evaluated once")
    cfg = json.loads(a.thresholds.read_text())
    rows = list(csv.DictReader(open(a.set / "eval.csv")))
    truth = {}
    for r in csv.DictReader(open(a.set / "eval_boxes.csv")):
        truth.setdefault(r["file"], []).append(
            (T.CLASSES.index(r["label"]), *(float(r[k]) for k in ("x0", "y0", "x1", "y1"))))
    syn = [r["file"] for r in rows if r["label"] == "synthetic"]
    real = [r for r in rows if r["label"] != "synthetic"]
    th_base, onnx_base = C.thresholds(a.base)
    th_cand, onnx_cand = C.thresholds(a.model)
    runs = {f"{a.base.name} shipped": (onnx_base, th_base), f"{a.model.name} chosen": (onnx_cand, cfg["thresholds"]),
            f"{a.model.name} shipped": (onnx_cand, th_cand)}
    scored = {}
    for onnx in {onnx_base, onnx_cand}:
        dets = C.detect(onnx, syn + [r["file"] for r in real])
        scored[onnx] = (best_scores(dets[: len(syn)], truth, syn), dets[len(syn):])
        print(f"scored {onnx.name}", flush=True)
    v = dict(detection={}, real_flagged={}, real_flagged_per_source={}, eds_heldout={})
    for name, (onnx, th) in runs.items():
        best, dets = scored[onnx]
        v["detection"][name] = found(best, th)
        fl = flagged(dets, th)
        per = per_source([r["label"] for r in real], fl)
        v["real_flagged_per_source"][name] = per
        k = sum(kk for s, (kk, _) in per.items() if not s.endswith("_val"))
        n = sum(nn for s, (_, nn) in per.items() if not s.endswith("_val"))
        v["real_flagged"][name] = rate(k, n)
        v["eds_heldout"][name] = rate(*per["more_eds_heldout"]) if "more_eds_heldout" in per else None
    out = dict(set=str(a.set), thresholds=cfg["thresholds"], test=v)
    a.out.write_text(json.dumps(out, indent=2))
    report(v, "test")
    print(f"wrote {a.out}")


def models_dir(a):
    """A models folder with the baseline as is and the candidate at the chosen thresholds (for tusk eval)."""
    import shutil

    cfg = json.loads(a.thresholds.read_text())
    a.dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(a.base, a.dest / a.base.name, dirs_exist_ok=True)
    shutil.copytree(a.model, a.dest / a.model.name, dirs_exist_ok=True)
    toml = a.dest / a.model.name / "model.toml"
    toml.write_text("\n".join(with_thresholds(toml.read_text().splitlines(), cfg["thresholds"])) + "\n")
    print(f"wrote {a.dest} ({a.model.name} at {cfg['thresholds']})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["choose", "test", "models-dir"])
    ap.add_argument("--data", type=Path, default=ROOT / ".cache/xray-v2-synth", help="synth.py output (val split)")
    ap.add_argument("--xray", type=Path, default=ROOT.parent / "shared/datasets/xray")
    ap.add_argument("--set", type=Path, default=ROOT / ".cache/xray-v2-test", help="test set with eval.csv")
    ap.add_argument("--base", type=Path, default=ROOT / "models/xray-v1")
    ap.add_argument("--model", type=Path, default=ROOT / "models/xray-v2")
    ap.add_argument("--thresholds", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dest", type=Path)
    a = ap.parse_args()
    {"choose": choose, "test": test, "models-dir": models_dir}[a.cmd](a)


if __name__ == "__main__":
    main()
