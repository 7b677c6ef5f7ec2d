"""Ensemble of two X-ray detectors with the same output layout: one ONNX graph, mean of output0 (trial, issue 17).

  ensemble_trial.py build --out .cache/xray-ens/xray-ens.onnx        # graph + onnxruntime check
  ensemble_trial.py choose --onnx .cache/xray-ens/xray-ens.onnx --out .cache/xray-ens/threshold.json
  ensemble_trial.py models-dir --onnx ... --thresholds ... --dest /tmp/ens-models   # for tusk eval

build: xray-v1's and xray-v2's graphs side by side (every node, initializer and value name
prefixed "v1_" / "v2_"), both fed by the one input "images"; "output0" = (v1 + v2) / 2, i.e. each
anchor's box (cx, cy, w, h) and class scores averaged. Checked with ONNX Runtime on random inputs
against the two models run separately (max abs difference <= 1e-5), and the class rows checked to
be probabilities (a Sigmoid feeds them; all values in [0, 1]).

choose (validation only): finetune.py's threshold rule — per label the score at which validation
recall is 90 %, then one common floor (0.05, 0.055, ... 0.95) raised until at most 2 % of the 225
real benign validation scans are flagged for any label; 95 % Clopper-Pearson interval of that rate.
Detection scored as per_label_thresholds.py does (card.py's detect(): ONNX Runtime, tusk's
letterbox, class-wise NMS, boxes in scan pixels, one thread). Also reports xray-v1 (shipped
thresholds) and xray-v2 (shipped 0.48) on the same validation scans.

models-dir: a models folder = models/ copied, plus xray-ens/ with the ONNX and a model.toml copied
from xray-v2's (name, version, file, sha256, thresholds changed; default = false).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[2]


def build(a):
    import onnx
    from onnx import compose, helper, TensorProto
    import onnxruntime as ort

    models = []
    for tag, path in (("v1_", a.v1), ("v2_", a.v2)):
        m = onnx.load(str(path))
        assert [i.name for i in m.graph.input] == ["images"] and [o.name for o in m.graph.output] == ["output0"]
        models.append(compose.add_prefix(m, tag))
    m1, m2 = models
    g1, g2 = m1.graph, m2.graph
    nodes = []
    for g, tag in ((g1, "v1_"), (g2, "v2_")):
        for n in g.node:
            n2 = onnx.NodeProto()
            n2.CopyFrom(n)
            for i, name in enumerate(n2.input):
                if name == tag + "images":
                    n2.input[i] = "images"
            nodes.append(n2)
    nodes.append(helper.make_node("Add", ["v1_output0", "v2_output0"], ["ens_sum"], name="ens_add"))
    nodes.append(helper.make_node("Mul", ["ens_sum", "ens_half"], ["output0"], name="ens_mean"))
    half = helper.make_tensor("ens_half", TensorProto.FLOAT, [], [0.5])
    src = onnx.load(str(a.v1)).graph
    graph = helper.make_graph(
        nodes, "xray_ens", [src.input[0]], [src.output[0]],
        initializer=list(g1.initializer) + list(g2.initializer) + [half],
        value_info=list(g1.value_info) + list(g2.value_info) + list(g1.output) + list(g2.output))
    base = onnx.load(str(a.v1))
    model = helper.make_model(graph, opset_imports=base.opset_import, producer_name="tusk ensemble_trial.py")
    model.ir_version = base.ir_version
    onnx.checker.check_model(model, full_check=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(a.out))
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB), sha256 {sha256(a.out)}")

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = {k: ort.InferenceSession(str(p), sess_options=so, providers=["CPUExecutionProvider"])
            for k, p in (("v1", a.v1), ("v2", a.v2), ("ens", a.out))}
    rng = np.random.default_rng(0)
    worst = 0.0
    for bs in (1, 3):
        x = rng.random((bs, 3, 384, 384), dtype=np.float32)
        o1, o2, oe = (sess[k].run(["output0"], {"images": x})[0] for k in ("v1", "v2", "ens"))
        assert oe.shape == o1.shape == (bs, 7, 3024), oe.shape
        d = float(np.abs(oe - (o1 + o2) / 2).max())
        worst = max(worst, d)
        cls = np.concatenate([o1[:, 4:], o2[:, 4:], oe[:, 4:]])
        print(f"batch {bs}: max |ens - (v1 + v2) / 2| = {d:.3g}; class scores in "
              f"[{cls.min():.4g}, {cls.max():.4g}]; boxes (cx,cy,w,h) in [{oe[:, :4].min():.4g}, {oe[:, :4].max():.4g}]")
    assert worst <= 1e-5, worst
    # is output0's class block a Sigmoid's output? trace the Concat that feeds the final Transpose
    g = onnx.load(str(a.v1)).graph
    prod = {o: n for n in g.node for o in n.output}
    cat = prod[prod["output0"].input[0]]
    feeders = [prod[i].op_type if i in prod else "initializer/input" for i in cat.input]
    print(f"xray-v1 output0 = {prod['output0'].op_type}({cat.op_type}({', '.join(feeders)}))"
          f" -> class rows come from: {feeders[-1]}")
    print(f"check passed: max abs difference {worst:.3g} <= 1e-5")


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def choose(a):
    import per_label_thresholds as P  # one-thread ORT sessions for card.detect
    import card as C
    import train_detector as T
    from finetune import clopper_pearson, floor_thresholds

    files, truth, real, srcs = P.validation_set(a.data)

    th_v1, onnx_v1 = C.thresholds(a.v1_dir)
    th_v2, onnx_v2 = C.thresholds(a.v2_dir)
    scored = {}
    for name, onnx in (("xray-ens", a.onnx), ("xray-v1", onnx_v1), ("xray-v2", onnx_v2)):
        dets = C.detect(onnx, files + [str(a.xray / f) for f in real])
        scored[name] = (P.best_scores(dets[: len(files)], truth, files), dets[len(files):])
        print(f"scored {name}", flush=True)

    # finetune.py's rule, on the ensemble
    best, real_e = scored["xray-ens"]
    vmax = np.array([[max([s for c, s, *_ in d if c == k], default=0.0) for k in range(len(T.CLASSES))]
                     for d, _ in real_e])
    recall_th = {n: T.recall_threshold(np.array(best[n]), a.target_recall) for n in T.CLASSES}
    th, floor = floor_thresholds(recall_th, vmax, a.max_fa)
    common = len(set(th.values())) == 1
    print(f"recall-{a.target_recall:.0%} thresholds {({k: round(v, 4) for k, v in recall_th.items()})}; "
          f"common floor {floor:.3f}; thresholds {th} ({'one threshold for all labels' if common else 'NOT common'})")

    # sensitivity (validation only): flagged and detection on the grid around the floor
    grid = []
    for f in np.arange(max(0.05, floor - 0.05), min(0.951, floor + 0.0501), 0.005):
        t = {n: float(max(recall_th[n], f)) for n in T.CLASSES}
        fl = int((vmax >= np.array([t[n] for n in T.CLASSES])).any(1).sum())
        grid.append(dict(floor=round(float(f), 3), flagged=fl, detection=P.found(best, t)))

    runs = {"xray-ens chosen": ("xray-ens", th), "xray-v1 shipped": ("xray-v1", th_v1),
            "xray-v2 shipped": ("xray-v2", th_v2)}
    v = dict(detection={}, real_flagged={}, real_flagged_per_source={})
    for label, (name, t) in runs.items():
        b, dets = scored[name]
        v["detection"][label] = P.found(b, t)
        fl = P.flagged(dets, t)
        v["real_flagged"][label] = P.rate(sum(fl), len(fl))
        v["real_flagged_per_source"][label] = P.per_source(srcs, fl)
    out = dict(
        rule=f"finetune.py: per label the score at {a.target_recall:.0%} validation recall, then one common floor "
             f"(0.05 + 0.005 k) raised until <= {a.max_fa:.0%} of real validation scans are flagged",
        onnx=str(a.onnx), sha256=sha256(a.onnx), thresholds=th, common_floor=round(float(floor), 4),
        recall_thresholds={k: round(float(x), 6) for k, x in recall_th.items()},
        validation=v, floor_grid=grid)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    P.report(v, "validation")
    print("\nfloor grid (validation): floor, real flagged /225, detection")
    for gr in grid:
        print(f"  {gr['floor']:.3f} {gr['flagged']:3d}  " + "  ".join(
            f"{lab} {k}/{n} ({k / n:.1%})" for lab, (k, n) in gr["detection"].items()))
    lo, hi = clopper_pearson(v["real_flagged"]["xray-ens chosen"]["k"], len(vmax))
    print(f"\nchosen: {th}; real validation flagged {v['real_flagged']['xray-ens chosen']['k']}/{len(vmax)} "
          f"(95 % Clopper-Pearson {lo:.1%} - {hi:.1%})")
    print(f"wrote {a.out}")


def models_dir(a):
    cfg = json.loads(a.thresholds.read_text())
    if a.dest.exists():
        raise SystemExit(f"{a.dest} exists")
    shutil.copytree(ROOT / "models", a.dest)
    d = a.dest / "xray-ens"
    d.mkdir()
    shutil.copy2(a.onnx, d / "xray-ens.onnx")
    digest = sha256(d / "xray-ens.onnx")
    import per_label_thresholds as P

    lines, top = [], True
    for line in (ROOT / "models/xray-v2/model.toml").read_text().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("["):
            top = False
        if line.startswith("name = ") and top:
            line = 'name = "xray-ens"'
        elif line.startswith("version = "):
            line = 'version = "ens-trial"'
        elif line.startswith("file = "):
            line = 'file = "xray-ens.onnx"'
        elif line.startswith("sha256 = "):
            line = f'sha256 = "{digest}"'
        elif line.startswith("default = "):
            line = "default = false"
        elif line.startswith("source = "):
            line = 'source = "trial: mean of xray-v1 and xray-v2 output0 (scripts/xray/ensemble_trial.py)"'
        lines.append(line)
    lines = P.with_thresholds(lines, cfg["thresholds"])
    text = "# trial only (not committed): ensemble of xray-v1 and xray-v2, see .cache/xray-ens/report.md\n" + "\n".join(lines) + "\n"
    assert "default = false" in text
    (d / "model.toml").write_text(text)
    print(text)
    print(f"wrote {a.dest} (xray-ens sha256 {digest})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["build", "choose", "models-dir"])
    ap.add_argument("--v1", type=Path, default=ROOT / "models/xray-v1/xray-v1.onnx")
    ap.add_argument("--v2", type=Path, default=ROOT / "models/xray-v2/xray-v2.onnx")
    ap.add_argument("--v1-dir", type=Path, default=ROOT / "models/xray-v1")
    ap.add_argument("--v2-dir", type=Path, default=ROOT / "models/xray-v2")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--onnx", type=Path, default=ROOT / ".cache/xray-ens/xray-ens.onnx")
    ap.add_argument("--data", type=Path, default=ROOT / ".cache/xray-v2-synth", help="synth.py output (val split)")
    ap.add_argument("--xray", type=Path, default=ROOT.parent / "shared/datasets/xray")
    ap.add_argument("--target-recall", type=float, default=0.90)
    ap.add_argument("--max-fa", type=float, default=0.02)
    ap.add_argument("--thresholds", type=Path)
    ap.add_argument("--dest", type=Path)
    a = ap.parse_args()
    {"build": build, "choose": choose, "models-dir": models_dir}[a.cmd](a)


if __name__ == "__main__":
    main()
