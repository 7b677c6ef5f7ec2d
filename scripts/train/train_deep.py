"""Fine-tunes a listing model end to end from stage 2 up, on freshly augmented photos every epoch.

train.py trains only the top (stages 5-6 and the head) on trunk features cached once, with one
augmented view per photo; training stage 4 that way overfitted (listing-v3's card, the deeper
trial). Issue 18 asks for fine-tuning deeper than stages 5-6. This script trains stages
`frozen_stages`.. 6 and the head on every step's own augmentation (train.augment, a plain photo
half the time), batch norm statistics frozen (batch 32 is too small to re-estimate them), stem and
the first stages frozen: about 14 training images/s on 2 CPU cores for Lite0 at 224 x 224.

  train_deep.py --version listing-v5 --epochs 3

Same split, loss weights and threshold rules as the recipe's base; a checkpoint after every epoch
(rerun to resume); exports models/<version>/<version>.onnx and runs evaluate.py, as train.py does.
"""

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from backbone import efficientnet_lite  # noqa: E402
from train import (LABELS, RECIPES, add_path_args, augment, checked_export, evaluate_and_report, load_rgb,  # noqa: E402
                   load_sets, loss_weights, resolve_paths, size_of, targets, to_tensor, val_aps)


def batches(items, order, size, rng, patina, batch):
    """(images, indices) of `items` in `order`, each photo augmented with probability 1/2."""
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        xs = []
        for j in idx:
            img = load_rgb(items[j][0])
            xs.append(to_tensor(augment(img, rng, patina) if rng.random() < 0.5 else img, size))
        yield torch.from_numpy(np.stack(xs)), torch.as_tensor(idx)


@torch.no_grad()
def probabilities(net, items, size, batch=64):
    """Sigmoid outputs of `net` for every item, plain (validation)."""
    net.eval()
    out = []
    for i in range(0, len(items), batch):
        x = np.stack([to_tensor(load_rgb(p), size) for p, _ in items[i : i + batch]])
        out.append(torch.sigmoid(net(torch.from_numpy(x))))
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_path_args(ap)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1203)
    ap.add_argument("--lr", type=float, default=3e-4, help="peak learning rate of the trained stages (the classifier: 5x)")
    ap.add_argument("--limit", type=int, default=0, help="use only N images per set (smoke test)")
    args = resolve_paths(ap.parse_args())
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.time()
    sets = load_sets(args)
    recipe, size = RECIPES[args.version], size_of(args.version)
    frozen = recipe["frozen_stages"]
    train = sets["train"]
    print(f"train {len(train)}, val {len(sets['val'])} images; stages {frozen}-6 trained at {size} px", flush=True)

    net = efficientnet_lite(recipe.get("backbone", "lite0"), num_classes=len(LABELS))
    for module in (net.conv_stem, net.bn1, *net.blocks[:frozen]):
        for p in module.parameters():
            p.requires_grad_(False)
    body = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("classifier")]
    opt = torch.optim.AdamW([{"params": body, "lr": args.lr}, {"params": list(net.classifier.parameters()), "lr": 5 * args.lr}],
                            weight_decay=1e-4)
    tm = [targets(l) for _, l in train]
    y = torch.tensor([t for t, _ in tm])
    m = torch.tensor([mm for _, mm in tm])
    w = m * torch.tensor([loss_weights(l, args.version) for _, l in train])
    pos_weight = torch.sqrt(((1 - y) * m).sum(0) / (y * m).sum(0).clamp(min=1))  # clamp: a --limit sample may lack a label
    batch = 32
    steps = args.epochs * math.ceil(len(train) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, 5 * args.lr], total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt, first = args.work / "checkpoint.pt", 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        rng.setstate(state["rng"])
        first = state["epoch"]
        print(f"resumed after epoch {first}", flush=True)
    y_val = np.array([targets(l)[0] for _, l in sets["val"]])
    m_val = np.array([targets(l)[1] for _, l in sets["val"]])
    for epoch in range(first, args.epochs):
        net.eval()  # batch norm statistics stay ImageNet's; dropout off
        order = torch.randperm(len(train), generator=gen).tolist()
        total, seen, t0 = 0.0, 0, time.time()
        for x, idx in batches(train, order, size, rng, recipe.get("patina", False), batch):
            loss = F.binary_cross_entropy_with_logits(net(x), y[idx], weight=w[idx], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if seen % (batch * 50) == 0:
                print(f"  {seen}/{len(train)}: loss {total / seen:.4f} ({seen / (time.time() - t0):.1f} images/s)", flush=True)
        sv = probabilities(net, sets["val"], size)
        aps = val_aps(sv, y_val, m_val)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / seen:.4f}, val AP {[round(a, 4) for a in aps]} "
              f"({time.time() - started:.0f} s)", flush=True)
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                    "rng": rng.getstate(), "epoch": epoch + 1}, ckpt)

    net.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    dummy = torch.from_numpy(np.stack([to_tensor(load_rgb(sets["val"][i][0]), size) for i in range(4)]))
    diff = checked_export(net, dummy, args.onnx)
    evaluate_and_report(args, args.onnx, {"onnx_vs_torch_max_diff": diff, "trainer": "train_deep.py"}, started)


if __name__ == "__main__":
    main()
