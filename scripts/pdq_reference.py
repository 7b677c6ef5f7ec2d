"""Writes tests/fixtures/pdq_reference.tsv: Meta's reference C++ PDQ (the PyPI package
`pdqhash`, which wraps it) on Pillow's decoding of each image — the same pixels tusk decodes —
so tests/pdq.rs can require tusk's port to agree bit for bit. Run: .venv/bin/python
scripts/pdq_reference.py (scripts/setup-python.sh installs the packages)."""
import os
import pathlib
import sys

import numpy as np
import pdqhash
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
FOLDERS = [ROOT.parent / "shared/reference/pdq", ROOT / "datasets/demo/images"]


def reference_hex(bits):
    """pdqhash returns bit 255 first; the hex form prints bit 255 first too."""
    value = 0
    for b in bits:
        value = value << 1 | int(b)
    return f"{value:064x}"


def main():
    rows = []
    for folder in FOLDERS:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            rgb = np.asarray(Image.open(path).convert("RGB"))
            bits, quality = pdqhash.compute(rgb)
            rel = os.path.relpath(path, ROOT)
            rows.append(f"{rel}\t{reference_hex(bits)}\t{quality}")
    out = ROOT / "tests/fixtures/pdq_reference.tsv"
    out.write_text("path\tpdq\tquality\n" + "\n".join(rows) + "\n")
    print(f"{len(rows)} hashes -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
