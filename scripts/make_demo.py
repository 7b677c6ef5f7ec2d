#!/usr/bin/env python3
"""Builds datasets/demo/ from ../shared/datasets: only CC0 / public-domain images, plus one
photo re-posted by a second seller (resized and recompressed), a JSONL manifest with made-up
seller ids, and SOURCES.csv recording each image's origin and licence.

Run once by a developer (needs ../shared and Pillow); the output is committed."""
import csv, io, json, pathlib, shutil, sys

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "datasets" / "demo"

MET = [  # (file under listing/, what it is)
    ("met/ivory/ivory_41975.jpg", "ivory statuette"),
    ("met/ivory/ivory_60217.jpg", "ivory netsuke"),
    ("met/ivory/ivory_324177.jpg", "ivory relief"),
    ("met/ivory/ivory_501075.jpg", "ivory horn"),
    ("met/ivory/ivory_193713.jpg", "ivory medallion with silver mount"),
    ("met/ivory/ivory_199901.jpg", "bone chessmen"),
    ("met/ivory/ivory_444871.jpg", "bone amulet"),
    ("met/non_ivory/non_ivory_14356.jpg", "ceramic"),
    ("met/non_ivory/non_ivory_202632.jpg", "ceramic"),
    ("met/non_ivory/non_ivory_318953.jpg", "ceramic"),
]
SKIMAGE = [  # scikit-image sample data: licences as its skimage.data docstrings state them
    ("chelsea.png", "CC0 (photographer Stefan van der Walt)"),
    ("coffee.png", "CC0 (photographer Rachel Michetti)"),
    ("astronaut.png", "public domain (NASA)"),
    ("rocket.jpg", "public domain (SpaceX, CC0)"),
    ("horse.png", "CC0 (openclipart)"),
    ("coins.png", "no known copyright restrictions (Brooklyn Museum)"),
    ("camera.png", "CC0 / public domain (scikit-image sample)"),
]


def main():
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED}")
    labels = {r["file"]: r for r in csv.DictReader(open(SHARED / "listing" / "labels.csv"))}
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "images").mkdir(parents=True)
    sources, lines = [], []
    sellers = ["seller-ana", "seller-bo", "seller-cy", "seller-dee"]
    for i, (f, what) in enumerate(MET):
        row = labels[f]
        name = "met_" + pathlib.Path(f).name
        shutil.copy(SHARED / "listing" / f, OUT / "images" / name)
        sources.append({"file": f"images/{name}", "what": what, "label": row["label"],
                        "source": row["source"], "license": row["license"]})
        lines.append({"uri": f"images/{name}", "kind": "listing", "listing_id": f"L{100 + i}",
                      "seller_id": sellers[i % len(sellers)], "platform": "demo-market",
                      "meta": {"title": what}})
    for j, (f, lic) in enumerate(SKIMAGE):
        src = SHARED / "photos" / "scikit_image_0.26.0" / f
        name = "skimage_" + f
        img = Image.open(src)
        if f in ("astronaut.png", "coffee.png"):  # keep the demo small: these two as JPEG
            name = name.replace(".png", ".jpg")
            img.convert("RGB").save(OUT / "images" / name, quality=90)
        else:
            shutil.copy(src, OUT / "images" / name)
        sources.append({"file": f"images/{name}", "what": f, "label": "photo",
                        "source": "scikit-image 0.26.0 sample data", "license": lic})
        lines.append({"uri": f"images/{name}", "kind": "listing", "listing_id": f"L{200 + j}",
                      "seller_id": sellers[j % len(sellers)], "platform": "demo-market",
                      "meta": {"title": f}})
    # One photo re-posted by another seller: 70 % size, JPEG quality 70.
    orig = "images/met_ivory_41975.jpg"
    img = Image.open(OUT / orig).convert("RGB")
    img = img.resize((int(img.width * 0.7), int(img.height * 0.7)), Image.LANCZOS)
    reuse = "images/reposted_ivory_41975.jpg"
    img.save(OUT / reuse, quality=70)
    sources.append({"file": reuse, "what": "the ivory statuette re-posted: resized to 70 %, JPEG q70",
                    "label": "ivory", "source": "derived from " + orig, "license": sources[0]["license"]})
    lines.append({"uri": reuse, "kind": "listing", "listing_id": "L900", "seller_id": "seller-zed",
                  "platform": "other-market", "meta": {"title": "old carved figure", "reposted_from": "L100"}})
    with open(OUT / "manifest.jsonl", "w") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")
    with open(OUT / "SOURCES.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "what", "label", "source", "license"])
        w.writeheader()
        w.writerows(sources)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(lines)} images, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
