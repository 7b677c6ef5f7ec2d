"""Fine-tunes xray-v1 into xray-v2 on CPU, with hard negatives from real scans of more scanners.

xray-v1 flags too many innocent real scans (4 % of SIXray / GDXray, 15 % of scans from scanners
it never saw) because it learnt clutter from one scanner's look and simulated look-alikes only.
This recipe starts from xray-v1's committed weights (read back from its ONNX file: batch norm is
folded into the convolutions there, so each norm layer becomes a frozen identity plus the folded
bias) and trains on:
- the synthetic scans of `synth.py --backgrounds 2` (wildlife projected onto the real scans of
  every training source, the new sets of more/ included, and simulated parcels);
- real benign scans as pure background, a quarter of every batch: before each epoch the current
  model scores every real training scan and the ones it fires on (any class >= --mine-floor) are
  drawn first (hard-negative mining); the rest of the quarter is random real training scans
  (--balance-sources: each training source equally likely).
The stem stays frozen (the fine texture filters; no backward pass through the largest maps).

`--arch lite0` (xray-v3, a trial) trains litedet.LiteDet instead: EfficientNet-Lite0's ImageNet
trunk (stem and stages 0-3 frozen by default, --frozen; the rest at --backbone-lr-scale of the
learning rate) under a new pyramid and head; --init is not read. --warm starts from an earlier
run's checkpoint (its weights only), so a model can be trained on over several CPU sessions. Same data, mining, thresholds rule and output layout.

Thresholds (validation only): per class the score at which validation recall is --target-recall,
then one common floor raised until at most --max-fa of the real validation scans (no projected
object) are flagged for any label; the 95 % Clopper-Pearson interval of that rate is printed.
Resumable: a checkpoint is written after every epoch to --work and picked up by a rerun.

--station DIR adds a station's reviewed scans (a `tusk export reviewed --format coco` folder:
confirmed scans to training, rejected and cleared ones to the mined real negatives, its val split
to the thresholds rule; models/xray-v4/MODEL_CARD.md, "Retraining with a station's reviewed
scans"). --zoom-out P shrinks a share P of the batches (a trial, models/xray-v4/trials/zoom-out.md).
"""

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_detector as T  # noqa: E402
from synth import source_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def from_onnx(model: nn.Module, path: Path) -> None:
    """Loads an exported TinyDet's or LiteDet's weights: a Conv node named /m/<module path>/Conv
    holds the convolution with its batch norm (the norm registered right after it) folded in; the
    norm becomes x + bias (running var 1 - eps), which is the same function while norms are frozen."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    order = list(model.named_modules())
    mods = dict(order)
    norm_after = {k: order[i + 1][1] for i, (k, m) in enumerate(order[:-1])
                  if isinstance(m, nn.Conv2d) and isinstance(order[i + 1][1], nn.BatchNorm2d)}
    done = set()
    for n in g.node:
        if n.op_type != "Conv" or not n.name.startswith("/m/"):
            continue
        comps, parts = n.name.split("/")[2:-1], []
        if comps[-1][-2:] in ("_1", "_2"):
            continue  # the shared head appears once per pyramid level
        for prev, comp in zip([""] + comps, comps):
            parts.append(comp[len(prev) + 1 :] if prev and comp.startswith(prev + ".") else comp)
        path_ = ".".join(parts)
        if path_ in done:
            continue
        conv = mods[path_]
        w, b = inits[n.input[1]].copy(), inits[n.input[2]].copy()
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(b))
            else:
                bn = norm_after[path_]
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(b))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
        done.add(path_)
    convs = [k for k, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    missing = [k for k in convs if k not in done]
    if missing:
        raise SystemExit(f"{path}: no weights for {missing}")


def freeze_norms(model: nn.Module) -> None:
    """Batch norm keeps its (folded) statistics: batches of 32 mixed scans would only add noise."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def scanner_jitter(x: torch.Tensor, gen: torch.Generator, amount: float) -> torch.Tensor:
    """Another scanner's look: attenuation scaled per colour channel (its palette) and a gamma
    (its detector curve), drawn per scan, so that no one palette is learnt as the background."""
    if amount <= 0:
        return x
    b = len(x)
    gains = 1 + amount * (2 * torch.rand((b, 3, 1, 1), generator=gen).to(x.device) - 1)
    gamma = torch.exp(amount * (2 * torch.rand((b, 1, 1, 1), generator=gen).to(x.device) - 1))
    return (1 - (1 - x) * gains).clamp(0, 1).pow(gamma)


def palette_mix(x: torch.Tensor, gen: torch.Generator, amount: float) -> torch.Tensor:
    """Another scanner's palette: the colour channels' attenuations mixed by a random 3 x 3 matrix
    near the identity (entries spread by `amount`, rows summing to one so grey stays grey), drawn
    per scan. Wider than scanner_jitter's per-channel gains: a palette that maps organic matter to
    green instead of orange (EDS, PIDray) is a mix of channels, not a gain on each. `amount` below
    1/3 keeps every row's sum (1 ± 3·amount) away from zero, which the scaling divides by."""
    if amount <= 0:
        return x
    if amount >= 1 / 3:
        raise ValueError(f"--palette {amount}: must be below 1/3")
    m = torch.eye(3) + amount * (2 * torch.rand((len(x), 3, 3), generator=gen) - 1)
    m = (m / m.sum(2, keepdim=True)).to(x.device)
    return (1 - torch.einsum("bij,bjhw->bihw", m, 1 - x)).clamp(0, 1)


def flagged(vmax: np.ndarray, th: dict) -> np.ndarray:
    """Which real scans (rows of vmax: best score per label) the thresholds `th` flag for any
    label: the alarm the rule bounds, counted the same way everywhere."""
    return (vmax >= np.array([th[n] for n in T.CLASSES])).any(1)


def floor_thresholds(recall_th: dict, vmax: np.ndarray, max_fa: float) -> tuple[dict, float]:
    """The thresholds rule: each label's recall threshold, then one common floor (0.05 + 0.005 k)
    raised until at most max_fa of the real validation scans (rows of vmax: best score per label)
    are flagged by any label. Returns the thresholds (4 decimals) and the floor."""
    floor = 0.05
    for floor in np.arange(0.05, 0.951, 0.005):
        th = {n: max(recall_th[n], floor) for n in T.CLASSES}
        if int(flagged(vmax, th).sum()) <= max_fa * len(vmax):
            break
    return {n: round(float(max(recall_th[n], floor)), 4) for n in T.CLASSES}, floor


def choose_thresholds(model, va_x, va_t, vneg_x, size: int, target_recall: float, max_fa: float,
                      device: torch.device = torch.device("cpu")):
    """The validation thresholds rule on a trained model: each label's score at `target_recall` of
    the synthetic validation boxes, then floor_thresholds on the real validation scans. Returns the
    thresholds, the floor, each label's best score per validation box, and the real scans' maxima."""
    dets = T.predict(model, va_x, size, device)
    vmax = max_scores(model, vneg_x, size, device)
    best = {name: T.best_scores(dets, va_t, c) for c, name in enumerate(T.CLASSES)}
    recall_th = {name: T.recall_threshold(best[name], target_recall) for name in T.CLASSES}
    th, floor = floor_thresholds(recall_th, vmax, max_fa)
    return th, floor, best, vmax, recall_th


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact 95 % binomial interval of k / n."""
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


@torch.no_grad()
def max_scores(model, imgs, size, device: torch.device = torch.device("cpu"), bs=32) -> np.ndarray:
    """[N, classes]: the highest score of each class anywhere in each scan (no NMS needed)."""
    ex = T.Export(model, size).eval()
    out = []
    for i in range(0, len(imgs), bs):
        x = torch.as_tensor(imgs[i : i + bs], device=device).permute(0, 3, 1, 2).float() / 255.0
        out.append(ex(x)[:, 4:, :].amax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(T.CLASSES)))


def real_split(data: Path, xray: Path, split: str, size: int):
    rows = [r["file"] for r in csv.DictReader(open(data / "backgrounds.csv")) if r["split"] == split]
    return np.stack([im for im, _ in T.load_letterboxed([xray / f for f in rows], size)]), rows


def zoom_out(x: torch.Tensor, targets: list, gen: torch.Generator, chance: float, smallest: float = 0.5):
    """With probability `chance`, the whole batch shrunk by one factor drawn from [smallest, 1) and
    placed at one random offset on tusk's letterbox grey (114): a large scan letterboxed to the
    input size holds smaller objects than most training scans, and those are what the detector
    misses (validation, objects under 48 px). Draws nothing from `gen` when `chance` is 0, so the
    earlier recipes reproduce."""
    if chance <= 0 or torch.rand(1, generator=gen) >= chance:
        return x, targets
    size = x.shape[-1]
    f = smallest + (1 - smallest) * float(torch.rand(1, generator=gen))
    side = max(1, round(size * f))
    f = side / size
    ox, oy = (int(v) for v in torch.randint(size - side + 1, (2,), generator=gen))
    out = torch.full_like(x, 114 / 255.0)
    out[..., oy : oy + side, ox : ox + side] = nn.functional.interpolate(x, size=(side, side), mode="bilinear",
                                                                         align_corners=False, antialias=True)
    t = []
    for b in targets:
        b = b.copy()
        b[:, [1, 3]] = b[:, [1, 3]] * f + ox
        b[:, [2, 4]] = b[:, [2, 4]] * f + oy
        t.append(b)
    return out, t


def add_station(d: Path, split: str, size: int, x, t, neg_x, neg_files):
    """A station's reviewed scans (`tusk export reviewed --format coco` folder `d`) of `split`
    added: scans with boxes (confirmed) to the boxed scans `x`/`t`, scans without (rejected alarms,
    cleared parcels) to the real benign scans `neg_x`, mined like the others under source "station".
    Their test split is left for measuring."""
    s_x, s_t, s_files = T.load_split(d, split, size)
    pos = [i for i, b in enumerate(s_t) if len(b)]
    neg = [i for i, b in enumerate(s_t) if not len(b)]
    print(f"station {d}: {split} {len(pos)} scans with boxes, {len(neg)} without", flush=True)
    return (np.concatenate([x, s_x[pos]]), t + [s_t[i] for i in pos], np.concatenate([neg_x, s_x[neg]]),
            neg_files + [f"station/{s_files[i]}" for i in neg])


def make_batch(tr_all, tr_t, neg_all, idx, negs, a, gen, look=None):
    """One training batch: synthetic scans `idx` with their boxes and real benign scans `negs`
    (no boxes), augmented (zoom_out too when --zoom-out is set) and scanner-jittered, on the data's
    device. With --palette the palettes are mixed too, drawn from `look` (a generator of their own,
    so that every other draw is the run's without --palette)."""
    x = torch.cat([tr_all[idx], neg_all[torch.from_numpy(negs)]]).permute(0, 3, 1, 2).float() / 255.0
    t = [tr_t[j] for j in idx.tolist()] + [np.zeros((0, 5), np.float32)] * len(negs)
    x, t = T.augment(x, t, a.size, gen)
    x, t = zoom_out(x, t, gen, a.zoom_out)
    if a.palette > 0:
        x = palette_mix(x, look, a.palette)
    return scanner_jitter(x, gen, a.channel_jitter), t


def sync(dev: torch.device) -> float:
    """time.time() once the device has finished its queued work (timings on a GPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.time()


def epochs_for(minutes: float, model, tr_all, tr_t, neg_all, neg_x, a, dev, steps_per_epoch: int) -> int:
    """How many epochs fit `minutes`: a few timed forward and backward passes (no optimiser step,
    norms frozen, a generator of their own: the model and the run's random draws are untouched)
    and one timed mining pass, with 10 % to spare. Printed, so that the run can be repeated with
    --epochs."""
    g = torch.Generator().manual_seed(0)
    model.train()
    freeze_norms(model)
    times = []
    for _ in range(8):
        t0 = sync(dev)
        idx = torch.randint(len(tr_all), (a.batch - a.negatives,), generator=g)
        negs = torch.randint(len(neg_all), (a.negatives,), generator=g).numpy()
        x, t = make_batch(tr_all, tr_t, neg_all, idx, negs, a, g, g)
        T.loss_fn(model(x), t, a.size)[0].backward()
        model.zero_grad(set_to_none=True)
        times.append(sync(dev) - t0)
    model.eval()
    t0 = sync(dev)
    max_scores(model, neg_x, a.size, dev)
    mine = sync(dev) - t0
    step = float(np.median(times[3:]))
    per_epoch = 1.1 * (steps_per_epoch * step + mine)
    n = max(1, int(minutes * 60 // per_epoch))
    print(f"timed: {step * 1000:.0f} ms per step, {mine:.1f} s per mining pass, ~{per_epoch:.0f} s per epoch "
          f"-> {n} epochs in {minutes} min (repeat with --epochs {n})", flush=True)
    return n


def build(a) -> tuple[nn.Module, list[dict]]:
    """The network `--arch` names and its optimiser parameter groups (each with its `lr`)."""
    if a.arch == "lite0":
        from litedet import LiteDet

        model = LiteDet(len(T.CLASSES), frozen=a.frozen)
        old = {id(p) for p in model.pretrained()}
        new = [p for p in model.parameters() if p.requires_grad and id(p) not in old]
        return model, [{"params": model.pretrained(), "lr": a.lr * a.backbone_lr_scale}, {"params": new, "lr": a.lr}]
    model = T.TinyDet(len(T.CLASSES))
    from_onnx(model, a.init)
    for p in model.stem.parameters():
        p.requires_grad_(False)
    return model, [{"params": [p for p in model.parameters() if p.requires_grad], "lr": a.lr}]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / ".cache/xray-v2-synth")
    ap.add_argument("--xray", type=Path, default=ROOT.parent / "shared/datasets/xray")
    ap.add_argument("--arch", default="tinydet", choices=("tinydet", "lite0"),
                    help="tinydet: --init's network fine-tuned; lite0: litedet.LiteDet from ImageNet weights")
    ap.add_argument("--init", type=Path, default=ROOT / "models/xray-v1/xray-v1.onnx")
    ap.add_argument("--warm", type=Path, default=None,
                    help="a finished run's checkpoint.pt or weights.pt: its weights start this run (fresh "
                         "optimiser and schedule), to train a model further in a later session; or a shipped "
                         "model's ONNX file (batch norm folded: the same function, another parameterisation, "
                         "so a run from it is close to, not the same as, one from the weights)")
    ap.add_argument("--frozen", type=int, default=4,
                    help="lite0: leading stages not trained (with the stem); 4 keeps the backward pass to the 24 x 24 and 12 x 12 maps")
    ap.add_argument("--backbone-lr-scale", type=float, default=0.25,
                    help="lite0: the pretrained stages' learning rate as a share of --lr")
    ap.add_argument("--out", type=Path, default=ROOT / "models/xray-v2")
    ap.add_argument("--work", type=Path, default=ROOT / ".cache/xray-v2-train")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=0,
                    help="instead of --epochs: as many epochs as fit this many minutes of training, timed on "
                         "this machine before training starts (epochs_for; the number is printed and recorded)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--negatives", type=int, default=8, help="real benign scans in each batch")
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--balance-sources", action="store_true",
                    help="draw the random real negatives source-balanced (each training source equally "
                         "likely), so the small sets of other scanners weigh as much as SIXray and GDXray")
    ap.add_argument("--warmup", type=float, default=0.1,
                    help="share of steps warming up (one-cycle schedule); 0: cosine decay from --lr at once, "
                         "for continuing a trained model (--warm) without a warm-up bump")
    ap.add_argument("--mine-floor", type=float, default=0.2)
    ap.add_argument("--channel-jitter", type=float, default=0.0,
                    help="per-channel attenuation gain and gamma spread (scanner_jitter); 0: off")
    ap.add_argument("--palette", type=float, default=0.0,
                    help="spread of the random colour-channel mix applied per scan (palette_mix), for scanners "
                         "whose palette training never saw; 0: off")
    ap.add_argument("--zoom-out", type=float, default=0.0,
                    help="share of batches shrunk by a random factor in [0.5, 1) onto letterbox grey (zoom_out); 0: off")
    ap.add_argument("--station", type=Path, action="append", default=[],
                    help="a station's `tusk export reviewed --format coco` folder (repeatable): its train and val "
                         "scans join training and the thresholds rule (add_station); its test scans do not")
    ap.add_argument("--target-recall", type=float, default=0.90)
    ap.add_argument("--max-fa", type=float, default=0.02)
    ap.add_argument("--limit", type=int, default=0, help="first N synthetic train scans only (smoke tests; xray-v4 trains on the first 2,000)")
    ap.add_argument("--seed", type=int, default=1203)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"  # one input size: let cuDNN pick its kernels
    t0 = time.time()
    tr_x, tr_t, _ = T.load_split(a.data, "train", a.size, a.limit)
    va_x, va_t, _ = T.load_split(a.data, "val", a.size)
    neg_x, neg_files = real_split(a.data, a.xray, "train", a.size)
    vneg_x, vneg_files = real_split(a.data, a.xray, "val", a.size)
    for d in a.station:
        tr_x, tr_t, neg_x, neg_files = add_station(d, "train", a.size, tr_x, tr_t, neg_x, neg_files)
        va_x, va_t, vneg_x, vneg_files = add_station(d, "val", a.size, va_x, va_t, vneg_x, vneg_files)
    print(f"loaded {len(tr_x)} synthetic train, {len(va_x)} val, {len(neg_x)} real train, "
          f"{len(vneg_x)} real val scans in {time.time() - t0:.0f} s", flush=True)

    model, groups = build(a)
    if a.warm:
        if a.warm.suffix == ".onnx":
            from_onnx(model, a.warm)  # a shipped model (e.g. models/xray-v3/xray-v3.onnx), norms folded
        else:
            model.load_state_dict(torch.load(a.warm, weights_only=False, map_location="cpu")["model"])
        print(f"weights from {a.warm}", flush=True)
    model.to(dev)
    params = [p for g in groups for p in g["params"]]
    print(f"{a.arch}: {sum(p.numel() for p in params) / 1e6:.2f} M trained parameters on {dev}", flush=True)
    tr_all = torch.as_tensor(tr_x).to(dev)
    neg_all = torch.as_tensor(neg_x).to(dev)
    pos_per_batch = a.batch - a.negatives
    steps_per_epoch = math.ceil(len(tr_x) / pos_per_batch)
    ckpt = a.work / "checkpoint.pt"
    c = torch.load(ckpt, weights_only=False, map_location="cpu") if ckpt.exists() else None
    if a.minutes > 0 and c is not None:  # a resumed run keeps the epoch count it chose
        a.epochs = c.get("epochs", a.epochs)
    elif a.minutes > 0:
        a.epochs = epochs_for(a.minutes, model, tr_all, tr_t, neg_all, neg_x, a, dev, steps_per_epoch)
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=5e-4)
    total_steps = max(1, a.epochs * steps_per_epoch)
    if a.warmup > 0:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups],
                                                    total_steps=total_steps, pct_start=a.warmup)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    gen = torch.Generator().manual_seed(a.seed)
    look = torch.Generator().manual_seed(a.seed + 1)  # --palette's draws only
    a.work.mkdir(parents=True, exist_ok=True)
    start, log = 0, []
    if c is not None:
        model.load_state_dict(c["model"])
        opt.load_state_dict(c["opt"])
        sched.load_state_dict(c["sched"])
        gen.set_state(c["gen"])
        if "look" in c:
            look.set_state(c["look"])
        start, log = c["epoch"], c["log"]
        print(f"resumed after epoch {start}", flush=True)
    neg_src = [source_of(f) for f in neg_files]
    counts = {src: neg_src.count(src) for src in set(neg_src)}
    neg_w = torch.tensor([1.0 / counts[src] for src in neg_src])
    t_train = time.time()
    a.out.mkdir(parents=True, exist_ok=True)
    for ep in range(start, a.epochs):
        model.eval()
        s = max_scores(model, neg_x, a.size, dev).max(1)
        hard = np.nonzero(s >= a.mine_floor)[0]
        fired = {}
        for i in hard:
            src = source_of(neg_files[i])
            fired[src] = fired.get(src, 0) + 1
        print(f"epoch {ep + 1}: {len(hard)}/{len(neg_x)} real training scans fire >= {a.mine_floor} {fired}", flush=True)
        model.train()
        freeze_norms(model)
        perm = torch.randperm(len(tr_x), generator=gen)
        tot, n = [0.0, 0.0], 0
        for i in range(0, len(perm), pos_per_batch):
            idx = perm[i : i + pos_per_batch]
            k_hard = min(len(hard), a.negatives // 2 if len(hard) else 0)
            pick_h = hard[torch.randint(len(hard), (k_hard,), generator=gen).numpy()] if k_hard else np.zeros(0, int)
            if a.balance_sources:
                pick_r = torch.multinomial(neg_w, a.negatives - k_hard, replacement=True, generator=gen).numpy()
            else:  # the earlier recipes' draw, kept so that they reproduce
                pick_r = torch.randint(len(neg_x), (a.negatives - k_hard,), generator=gen).numpy()
            negs = np.concatenate([pick_h, pick_r]).astype(np.int64)
            x, t = make_batch(tr_all, tr_t, neg_all, idx, negs, a, gen, look)
            loss, lc, lb = T.loss_fn(model(x), t, a.size)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            tot[0] += lc
            tot[1] += lb
            n += 1
            if n % 20 == 0:
                print(f"  step {n}/{steps_per_epoch}: cls {tot[0] / n:.3f} box {tot[1] / n:.3f} "
                      f"({(time.time() - t_train) / 60:.1f} min)", flush=True)
        log.append(dict(epoch=ep + 1, cls=tot[0] / n, box=tot[1] / n, hard=int(len(hard)), fired=fired,
                        minutes=round((time.time() - t_train) / 60, 1)))
        print(f"epoch {ep + 1}/{a.epochs}: cls {tot[0] / n:.3f} box {tot[1] / n:.3f} "
              f"({(time.time() - t_train) / 60:.1f} min)", flush=True)
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                        gen=gen.get_state(), look=look.get_state(), epoch=ep + 1, epochs=a.epochs, log=log), ckpt)
        # the weights alone (a quarter of the checkpoint's size): what --warm and val_compare.py
        # read, small enough to bring back from a borrowed GPU machine after every epoch
        torch.save(dict(model=model.state_dict(), epoch=ep + 1, log=log), a.out / "weights.pt")

    model.eval()
    th, floor, best, vmax, recall_th = choose_thresholds(model, va_x, va_t, vneg_x, a.size, a.target_recall,
                                                         a.max_fa, dev)
    n_flagged = int(flagged(vmax, th).sum())
    lo, hi = clopper_pearson(n_flagged, len(vmax))
    report = {}
    for name in T.CLASSES:
        s = best[name]
        report[name] = dict(threshold=th[name], recall_threshold=round(recall_th[name], 4),
                            val_recall=float((s >= th[name]).mean()), val_boxes=int(len(s)))
        print(f"{name}: threshold {th[name]} (recall rule {recall_th[name]:.4f}) "
              f"val recall {report[name]['val_recall']:.3f}", flush=True)
    print(f"real validation scans flagged (any label): {n_flagged}/{len(vmax)} = {n_flagged / len(vmax):.1%} "
          f"(95 % interval {lo:.1%} - {hi:.1%})", flush=True)
    onnx_path = a.out / f"{a.out.name}.onnx"
    T.export_onnx(model, a.size, onnx_path)
    (a.out / "thresholds.json").write_text(json.dumps(dict(
        thresholds=th, validation=report, common_floor=round(float(floor), 4),
        val_real_flagged=[n_flagged, len(vmax)], val_real_flagged_interval=[round(lo, 4), round(hi, 4)],
        init=(str(a.warm) if a.warm else "ImageNet EfficientNet-Lite0" if a.arch == "lite0" else
              str(a.init.relative_to(ROOT)) if a.init.is_relative_to(ROOT) else str(a.init)), arch=a.arch,
        epochs=a.epochs, minutes=a.minutes, device=a.device, lr=a.lr, negatives=a.negatives, balance_sources=a.balance_sources, warmup=a.warmup,
        zoom_out=a.zoom_out, station=[str(d) for d in a.station],
        log=log), indent=2))
    print(f"wrote {onnx_path} and thresholds.json", flush=True)


if __name__ == "__main__":
    main()
