"""Seller-link robustness benchmark (issue 13): can an analyst trust `tusk clusters` / `tusk links`?

Measures tusk through its command line only (`tusk scan --hash-only`, `tusk clusters --json`,
`tusk links --out links.json`), so it measures whatever matching tusk does, before and after
verification is added.

The catalogue:
- unrelated photos: one image per near-duplicate `group` of ../shared/datasets/listing/labels.csv
  (every label; seeded sample) plus ../shared/datasets/photos (without the duplicates that
  scripts/bench/hash_robustness.py skips), each posted by its own seller `seller-u<i>`;
- re-posts: a seeded subset of them, re-posted by a second seller once per edit
  (`seller-r<i>-<edit>`), with the edit functions of scripts/bench/hash_robustness.py (plus
  crop_8, 4 % per side). With `--layout one-edit` each re-posted photo gets a single edit instead
  (13 x 300 different photos): no re-post can reach its original through another edit's re-post;
- hard negatives, every object posted by its own seller, drawn from groups not used above:
  (screenshot) two different photos in the same screenshot chrome (identical bar, header, title and
  price); (style) two different product shots of the same `detail` category (studio shots of
  the same kind of product, e.g. T-shirts on white); (watermark) two different photos with the same
  text watermark at the same place.

Every object has an origin (the photo it was made from). From the clusters:
- recall per edit: share of re-posts whose cluster also holds their original;
- false links: pairs of objects of different origins in the same cluster, per 10^6 such pairs in
  the catalogue (C(N,2) minus the same-origin pairs); false seller-seller edges in links.json;
- hard-negative pairs linked (in the same cluster), per kind.

Dataset errata: scripts/bench/link_errata.csv lists pairs of near-duplicate groups of
../shared/datasets/listing that hold the same photo (cropped, mirrored or re-framed: a labelling
error of the dataset, each reviewed side by side). Their objects count as one origin, so a link
between them is not a false link; the false links as labelled are printed too, and
--no-errata evaluates strictly as labelled.

Arguments this script does not know (e.g. `--hash-kind pdq --radius 31`) are passed to
`tusk clusters` and `tusk links`. Run through scripts/bench/link_robustness.sh.
"""
import argparse
import csv
import json
import math
import os
import pathlib
import random
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import hash_robustness as hr  # noqa: E402  (the edit functions; its behaviour is not changed)
from PIL import Image  # noqa: E402

ROOT = hr.ROOT
SHARED = hr.SHARED
# Bump when the generated images change, so a stale cache is not reused.
GEN_VERSION = 1

GOAL_OVERALL = 0.95
GOAL_HARD_EDITS = {"screenshot": 0.90, "crop_10": 0.90, "watermark": 0.90}
GOAL_FALSE_PER_MILLION = 1.0


def edits():
    """The re-posting edits, in table order: hash_robustness's twelve plus a 4 %-per-side crop."""
    base = hr.transforms()
    out = {}
    for name, fn in base.items():
        out[name] = fn
        if name == "crop_5":
            out["crop_8"] = lambda im, r: hr.crop(im, 0.08, r)
    return out


EDITS = list(edits())


def photos_files():
    """../shared/datasets/photos without the known duplicates, exactly as hash_robustness keeps them."""
    # hash_robustness.originals(n, seed) returns the natural photos followed by n products.
    return hr.originals(1, 0)[:-1]


def load_groups():
    """group id -> its rows (sorted by file)."""
    groups = defaultdict(list)
    for r in csv.DictReader(open(SHARED / "listing/labels.csv")):
        groups[r["group"]].append(r)
    for rows in groups.values():
        rows.sort(key=lambda r: r["file"])
    return groups


# Mean absolute difference (0-255) of 32x32 grey thumbnails below which two photos count as
# near-copies, not as look-alikes.
NEAR_COPY = 4.0


def thumb(row):
    import numpy as np

    return np.asarray(Image.open(SHARED / "listing" / row["file"]).convert("L").resize((32, 32), Image.BILINEAR), dtype=float)


def thumb_distance(a, b):
    import numpy as np

    return float(np.abs(thumb(a) - thumb(b)).mean())


def select(args):
    """Chooses the photos: unrelated ones, the re-posted subset and the hard-negative pairs."""
    rng = random.Random(f"link_robustness-{args.seed}")
    groups = load_groups()
    ids = sorted(groups, key=lambda g: (len(g), g))
    rng.shuffle(ids)
    pick = {g: rng.choice(groups[g]) for g in sorted(groups, key=lambda g: (len(g), g))}

    # (style) pairs first, from studio product shots (fashion / Flipkart categories), so that the
    # unrelated sample does not use them up; spread over the categories round-robin.
    by_detail = defaultdict(list)
    for g in ids:
        r = pick[g]
        if r["label"] == "product" and r["detail"].split(":")[0] in ("fashion", "flipkart") and r["detail"] != "fashion: unlabeled":
            by_detail[r["detail"]].append(g)
    details = sorted(d for d in by_detail if len(by_detail[d]) >= 2)
    rng.shuffle(details)
    used = set()
    style_pairs = []
    while len(style_pairs) < args.hard_pairs and details:
        for d in list(details):
            free = [g for g in by_detail[d] if g not in used]
            if len(free) < 2:
                details.remove(d)
                continue
            # The look-alike: of a few candidates, the one whose thumbnail is closest to the
            # anchor's, but not a near-copy (an unlabelled duplicate would not be a negative).
            a = free[0]
            cands = [(thumb_distance(pick[a], pick[g]), g) for g in free[1:9]]
            cands = [c for c in cands if c[0] >= NEAR_COPY]
            if not cands:
                used.add(a)
                continue
            b = min(cands)[1]
            used.update((a, b))
            style_pairs.append((d, a, b))
            if len(style_pairs) == args.hard_pairs:
                break

    rest = [g for g in ids if g not in used]
    unrelated_groups = rest[: args.unrelated]
    rest = rest[args.unrelated:]
    if len(rest) < 4 * args.hard_pairs:
        sys.exit("not enough groups left for the hard negatives")
    screenshot_pairs = [(rest[2 * k], rest[2 * k + 1]) for k in range(args.hard_pairs)]
    rest = rest[2 * args.hard_pairs:]
    watermark_pairs = [(rest[2 * k], rest[2 * k + 1]) for k in range(args.hard_pairs)]

    def listing(g):
        return {"origin": f"group:{g}", "file": SHARED / "listing" / pick[g]["file"], "label": pick[g]["label"], "detail": pick[g]["detail"]}

    unrelated = [listing(g) for g in unrelated_groups]
    unrelated += [{"origin": f"photos:{p.relative_to(SHARED / 'photos')}", "file": p, "label": "photo", "detail": ""} for p in photos_files()]
    # reposted: photo index -> the edits it is re-posted with.
    if args.layout == "all-edits":
        chosen = sorted(random.Random(f"link_robustness-reposts-{args.seed}").sample(range(len(unrelated)), args.reposts))
        reposted = {i: list(EDITS) for i in chosen}
    else:
        if len(unrelated) < args.reposts * len(EDITS):
            sys.exit(f"--layout one-edit needs at least {args.reposts * len(EDITS)} unrelated photos (--unrelated)")
        chosen = random.Random(f"link_robustness-reposts-{args.seed}").sample(range(len(unrelated)), args.reposts * len(EDITS))
        reposted = {i: [EDITS[k // args.reposts]] for k, i in enumerate(chosen)}
        reposted = dict(sorted(reposted.items()))
    hard = {
        "screenshot": [(listing(a), listing(b)) for a, b in screenshot_pairs],
        "style": [(listing(a), listing(b)) for _, a, b in style_pairs],
        "watermark": [(listing(a), listing(b)) for a, b in watermark_pairs],
    }
    return unrelated, reposted, hard


def save(img, path, quality):
    """Writes atomically, so an interrupted run never leaves a truncated image in the cache."""
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="JPEG", quality=quality)
    os.replace(tmp, path)


def make_reposts(task):
    """The edits of one photo (one task, so the photo is decoded once)."""
    i, src, out_dir, seed, names = task
    todo = [(name, out_dir / name / f"{i:05d}.jpg") for name in names]
    todo = [(n, p) for n, p in todo if not p.exists()]
    if not todo:
        return
    im = Image.open(src).convert("RGB")
    fns = edits()
    for name, p in todo:
        rng = random.Random(f"{seed}-{i}-{name}")
        if name == "jpeg_q30":
            save(im, p, 30)
        else:
            save(fns[name](im, rng), p, 90)


def make_hard(task):
    """Both photos of one hard-negative pair through the same edit with the same random draws:
    identical chrome (screenshot) or identical watermark text and position."""
    kind, k, src_a, src_b, out_dir, seed = task
    fn = {"screenshot": hr.screenshot, "watermark": hr.watermark}[kind]
    for side, src in (("a", src_a), ("b", src_b)):
        p = out_dir / kind / f"{k:04d}_{side}.jpg"
        if not p.exists():
            save(fn(Image.open(src).convert("RGB"), random.Random(f"{seed}-{kind}-{k}")), p, 90)


def run_tasks(fn, tasks, workers):
    if workers <= 1:
        for t in tasks:
            fn(t)
        return
    import multiprocessing

    with multiprocessing.Pool(workers) as pool:
        for _ in pool.imap_unordered(fn, tasks, chunksize=8):
            pass


def build_catalogue(args, cache):
    """Generates (or reuses) the images and returns the object list, one dict per object."""
    unrelated, reposted, hard = select(args)
    img_dir = cache / "images"
    for name in EDITS:
        (img_dir / "repost" / name).mkdir(parents=True, exist_ok=True)
    for kind in ("screenshot", "watermark"):
        (img_dir / "hard" / kind).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    run_tasks(make_reposts, [(i, unrelated[i]["file"], img_dir / "repost", args.seed, names) for i, names in reposted.items()], args.workers)
    run_tasks(make_hard, [(kind, k, a["file"], b["file"], img_dir / "hard", args.seed) for kind in ("screenshot", "watermark") for k, (a, b) in enumerate(hard[kind])], args.workers)
    gen_s = time.time() - t0

    objects = []
    for i, u in enumerate(unrelated):
        objects.append({"seller": f"seller-u{i}", "uri": str(u["file"]), "origin": u["origin"], "role": "original", "index": i, "label": u["label"]})
    for i, names in reposted.items():
        for name in names:
            objects.append({"seller": f"seller-r{i}-{name}", "uri": str(img_dir / "repost" / name / f"{i:05d}.jpg"), "origin": unrelated[i]["origin"], "role": "repost", "index": i, "edit": name})
    for kind, pairs in hard.items():
        for k, (a, b) in enumerate(pairs):
            for side, item in (("a", a), ("b", b)):
                uri = item["file"] if kind == "style" else img_dir / "hard" / kind / f"{k:04d}_{side}.jpg"
                objects.append({"seller": f"seller-h{kind}{k}-{side}", "uri": str(uri), "origin": item["origin"], "role": "hard", "kind": kind, "pair": k, "detail": item["detail"]})
    assert len({o["seller"] for o in objects}) == len(objects) and len({o["uri"] for o in objects}) == len(objects)
    return objects, unrelated, reposted, hard, gen_s


def tusk(args, cmd, capture=True):
    full = [args.tusk] + cmd
    t0 = time.time()
    res = subprocess.run(full, capture_output=capture, text=True)
    dt = time.time() - t0
    if res.returncode != 0:
        sys.exit(f"{shlex.join(full)} failed ({res.returncode}):\n{res.stdout or ''}{res.stderr or ''}")
    return res, dt


def pairs(n):
    return n * (n - 1) // 2


def evaluate(objects, clusters, links):
    by_seller = {o["seller"]: o for o in objects}
    cluster_of = {}
    for ci, c in enumerate(clusters):
        for m in c["members"]:
            s = m.get("seller_id")
            if s not in by_seller:
                sys.exit(f"cluster member not in the manifest: {m}")
            cluster_of[s] = ci

    def together(a, b):
        return a in cluster_of and cluster_of.get(a) == cluster_of.get(b)

    originals = {o["index"]: o["seller"] for o in objects if o["role"] == "original"}
    recall = {name: [0, 0] for name in EDITS}
    for o in objects:
        if o["role"] == "repost":
            recall[o["edit"]][1] += 1
            recall[o["edit"]][0] += together(o["seller"], originals[o["index"]])

    # Pairs of objects of different origins that share a cluster.
    false_pairs = 0
    impure = []
    for c in clusters:
        origins = Counter(by_seller[m["seller_id"]]["origin"] for m in c["members"])
        fp = pairs(len(c["members"])) - sum(pairs(v) for v in origins.values())
        false_pairs += fp
        if fp:
            impure.append({"objects": len(c["members"]), "origins": len(origins), "false_pairs": fp})
    per_origin = Counter(o["origin"] for o in objects)
    unrelated_pairs = pairs(len(objects)) - sum(pairs(v) for v in per_origin.values())

    false_edges = []
    for e in links["edges"]:
        a, b = by_seller.get(e["source"]), by_seller.get(e["target"])
        if a is None or b is None:
            sys.exit(f"links.json edge with an unknown seller: {e}")
        if a["origin"] != b["origin"]:
            false_edges.append({"source": e["source"], "target": e["target"], "source_origin": a["origin"], "target_origin": b["origin"], "source_uri": a["uri"], "target_uri": b["uri"]})

    hard = defaultdict(lambda: [0, 0])
    hard_linked = []
    for o in objects:
        if o["role"] == "hard" and o["seller"].endswith("-a"):
            other = o["seller"][:-2] + "-b"
            linked = together(o["seller"], other)
            hard[o["kind"]][1] += 1
            hard[o["kind"]][0] += linked
            if linked:
                hard_linked.append({"kind": o["kind"], "a": o["uri"], "b": by_seller[other]["uri"]})
    return {
        "recall": recall,
        "false_pairs": false_pairs,
        "unrelated_pairs": unrelated_pairs,
        "false_per_million": false_pairs / unrelated_pairs * 1e6,
        "impure_clusters": sorted(impure, key=lambda c: -c["false_pairs"]),
        "edges": len(links["edges"]),
        "false_edges": false_edges,
        "sellers_falsely_linked": len({s for e in false_edges for s in (e["source"], e["target"])}),
        "hard": dict(hard),
        "hard_linked": hard_linked,
        "clusters": len(clusters),
    }


def load_errata():
    """origin -> the origin it is the same photo as (scripts/bench/link_errata.csv)."""
    parent = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for r in csv.DictReader(open(pathlib.Path(__file__).resolve().parent / "link_errata.csv")):
        a, b = find(f"group:{r['group_a']}"), find(f"group:{r['group_b']}")
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in parent}


def pct(k, n):
    return f"{100 * k / n:.1f} %" if n else "-"


def report(m, meta):
    lines = []
    lines.append(f"tusk link robustness: {meta['objects']:,} objects ({meta['unrelated']:,} unrelated photos, "
                 f"{meta['reposts']:,} re-posts ({meta['layout']}: {meta['reposted']} photos x {meta['edits_per_photo']} edit(s)), "
                 f"{meta['hard_pairs']} hard-negative pairs per kind); "
                 f"tusk clusters/links flags: {' '.join(meta['pass_through']) or '(defaults)'}")
    lines.append(f"scan --hash-only: {meta['scan']['processed']} processed, {meta['scan']['failed']} failed in {meta['scan']['seconds']:.1f} s "
                 f"({meta['scan']['images_per_s']:.1f} images/s); clusters {meta['clusters_s']:.1f} s, links {meta['links_s']:.1f} s")
    lines.append("")
    lines.append("| edit | recall (linked/re-posts) |")
    lines.append("|---|---|")
    tk = tn = 0
    for name in EDITS:
        k, n = m["recall"][name]
        tk, tn = tk + k, tn + n
        lines.append(f"| {name} | {pct(k, n)} ({k}/{n}) |")
    lines.append(f"| **overall** | **{pct(tk, tn)}** ({tk}/{tn}) |")
    lines.append("")
    goals = []
    goals.append((f"overall recall >= {GOAL_OVERALL:.0%}", f"{pct(tk, tn)}", tn and tk / tn >= GOAL_OVERALL))
    for name, g in GOAL_HARD_EDITS.items():
        k, n = m["recall"][name]
        goals.append((f"{name} recall >= {g:.0%}", pct(k, n), n and k / n >= g))
    goals.append((f"false links <= {GOAL_FALSE_PER_MILLION:g} per 10^6 pairs", f"{m['false_per_million']:.2f}", m["false_per_million"] <= GOAL_FALSE_PER_MILLION))
    hk = sum(v[0] for v in m["hard"].values())
    goals.append(("hard-negative pairs linked = 0", str(hk), hk == 0))
    lines.append("| goal | measured | |")
    lines.append("|---|---|---|")
    for g, v, ok in goals:
        lines.append(f"| {g} | {v} | {'PASS' if ok else 'FAIL'} |")
    lines.append("")
    fe = len(m["false_edges"])
    lines.append(f"false links: {m['false_pairs']:,} object pairs of different origins share a cluster, of {m['unrelated_pairs']:,} "
                 f"such pairs = {m['false_per_million']:.2f} per 10^6; {len(m['impure_clusters'])} of {m['clusters']} clusters mix origins "
                 f"(largest: {m['impure_clusters'][0]['objects'] if m['impure_clusters'] else 0} objects); "
                 f"links.json: {fe} of {m['edges']} seller edges false ({pct(fe, m['edges'])}), "
                 f"{m['sellers_falsely_linked']} of {meta['objects']:,} sellers with a false edge")
    if m.get("as_labelled"):
        raw = m["as_labelled"]
        lines.append(f"as labelled (without the {raw['errata']} reviewed dataset errata of scripts/bench/link_errata.csv): "
                     f"{raw['false_pairs']:,} false pairs = {raw['false_per_million']:.2f} per 10^6, {raw['false_edges']} false seller edges")
    lines.append("hard negatives linked: " + ", ".join(f"{kind} {v[0]}/{v[1]}" for kind, v in sorted(m["hard"].items())))
    return "\n".join(lines), goals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                 epilog="Any other flag (e.g. --hash-kind pdq --radius 31) is passed to tusk clusters and tusk links.")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--unrelated", type=int, help="listing groups among the unrelated photos, plus the 37 natural photos "
                    "[3000; one-edit: 13 x --reposts + 100]")
    ap.add_argument("--reposts", type=int, default=300, help="re-posts per edit")
    ap.add_argument("--layout", choices=["all-edits", "one-edit"], default="one-edit",
                    help="all-edits: the same --reposts photos are re-posted once per edit (13 re-posts each, and a re-post "
                    "may reach its original through another re-post's cluster); one-edit: each re-posted photo gets one "
                    "edit (13 x --reposts different photos), so it reaches its original only through its own match")
    ap.add_argument("--hard-pairs", type=int, default=100, help="pairs per hard-negative kind")
    ap.add_argument("--tusk", default=str(ROOT / "target/release/tusk"), help="the tusk binary [target/release/tusk]")
    ap.add_argument("--cache", default=str(ROOT / ".cache/link_robustness"), help="images, manifest, store, clusters and links")
    ap.add_argument("--workers", type=int, default=1, choices=[1, 2], help="processes generating images")
    ap.add_argument("--scan-args", default="", help="extra flags for tusk scan (one string)")
    ap.add_argument("--keep-db", action="store_true", help="reuse the store of an earlier run (the scan then only does what is new)")
    ap.add_argument("--json-out", help="write the results as JSON here")
    ap.add_argument("--no-errata", action="store_true", help="evaluate strictly as labelled, without scripts/bench/link_errata.csv")
    args, pass_through = ap.parse_known_args()

    if args.unrelated is None:
        args.unrelated = 3000 if args.layout == "all-edits" else max(3000, args.reposts * len(EDITS) + 100)
    cache = pathlib.Path(args.cache) / f"v{GEN_VERSION}-{args.layout}-s{args.seed}-u{args.unrelated}-r{args.reposts}-h{args.hard_pairs}"
    cache.mkdir(parents=True, exist_ok=True)
    objects, unrelated, reposted, hard, gen_s = build_catalogue(args, cache)
    print(f"catalogue: {len(objects):,} objects in {cache} (image generation {gen_s:.1f} s)", flush=True)

    manifest = cache / "manifest.jsonl"
    with open(manifest, "w") as f:
        for o in objects:
            f.write(json.dumps({"uri": o["uri"], "seller_id": o["seller"], "listing_id": "L-" + o["seller"].removeprefix("seller-"), "platform": "bench"}) + "\n")
    truth = cache / "truth.jsonl"
    with open(truth, "w") as f:
        for o in objects:
            f.write(json.dumps(o) + "\n")

    db = cache / "tusk.db"
    if not args.keep_db:
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(str(db) + suffix).unlink(missing_ok=True)
    res, scan_s = tusk(args, ["scan", str(manifest), "--db", str(db), "--hash-only", "--progress", "off"] + shlex.split(args.scan_args))
    summary = next((l for l in res.stdout.splitlines() if l.startswith("tusk scan:")), "")
    print(summary, flush=True)
    counts = {}
    for word in ("processed", "skipped", "failed"):
        tok = summary.split(f" {word}")[0].split()
        counts[word] = int(tok[-1]) if tok and tok[-1].isdigit() else None
    processed = counts["processed"] if counts["processed"] is not None else len(objects)

    tag = "-".join(a.lstrip("-").replace("/", "_") for a in pass_through) or "default"
    res, clusters_s = tusk(args, ["clusters", "--db", str(db), "--min-sellers", "2", "--json"] + pass_through)
    clusters = json.loads(res.stdout)
    (cache / f"clusters-{tag}.json").write_text(res.stdout)
    links_path = cache / f"links-{tag}.json"
    _, links_s = tusk(args, ["links", "--db", str(db), "--out", str(links_path)] + pass_through)
    links = json.loads(links_path.read_text())

    m = evaluate(objects, clusters, links)
    if not args.no_errata:
        errata = load_errata()
        merged = [dict(o, origin=errata.get(o["origin"], o["origin"])) for o in objects]
        raw = m
        m = evaluate(merged, clusters, links)
        m["as_labelled"] = {"errata": len(errata), "false_pairs": raw["false_pairs"], "false_per_million": raw["false_per_million"],
                            "false_edges": len(raw["false_edges"])}
    meta = {
        "tusk": args.tusk,
        "pass_through": pass_through,
        "scan_args": args.scan_args,
        "seed": args.seed,
        "objects": len(objects),
        "unrelated": len(unrelated),
        "layout": args.layout,
        "reposted": len(reposted),
        "edits_per_photo": len(EDITS) if args.layout == "all-edits" else 1,
        "reposts": sum(len(v) for v in reposted.values()),
        "hard_pairs": args.hard_pairs,
        "scan": {"processed": processed, "skipped": counts["skipped"], "failed": counts["failed"], "seconds": scan_s,
                 "images_per_s": processed / scan_s if scan_s > 0 else 0.0, "summary": summary},
        "clusters_s": clusters_s,
        "links_s": links_s,
        "generation_s": gen_s,
        "cache": str(cache),
    }
    text, goals = report(m, meta)
    print(text)
    if counts["failed"]:
        print(f"warning: {counts['failed']} objects failed in the scan (counted as not linked)")
    if args.json_out:
        tk = sum(v[0] for v in m["recall"].values())
        tn = sum(v[1] for v in m["recall"].values())
        out = dict(meta)
        out.update({
            "recall": {name: {"linked": k, "reposts": n, "recall": k / n if n else None} for name, (k, n) in m["recall"].items()},
            "overall": {"linked": tk, "reposts": tn, "recall": tk / tn if tn else None},
            "false_pairs": m["false_pairs"],
            "unrelated_pairs": m["unrelated_pairs"],
            "false_per_million_pairs": m["false_per_million"],
            "as_labelled": m.get("as_labelled"),
            "clusters": m["clusters"],
            "impure_clusters": m["impure_clusters"],
            "edges": m["edges"],
            "false_edges": len(m["false_edges"]),
            "sellers_falsely_linked": m["sellers_falsely_linked"],
            "false_edge_list": m["false_edges"],
            "hard_negatives": {kind: {"linked": k, "pairs": n} for kind, (k, n) in m["hard"].items()},
            "hard_negatives_linked": m["hard_linked"],
            "goals": [{"goal": g, "measured": v, "pass": bool(ok)} for g, v, ok in goals],
        })
        pathlib.Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json_out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
