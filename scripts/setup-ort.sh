#!/usr/bin/env bash
# Fetch ONNX Runtime's shared library (libonnxruntime.so) from the onnxruntime PyPI wheel into
# .ort/lib/, where .cargo/config.toml and the tusk binary look for it. Idempotent: does nothing
# when the library is already there.
set -euo pipefail
ORT_VERSION=1.31.1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.ort/lib"
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [ -s "$lib" ] && [ -L "$dest/libonnxruntime.so" ]; then
  exit 0
fi
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "setup-ort: downloading the onnxruntime==$ORT_VERSION wheel for libonnxruntime.so" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$ORT_VERSION"
wheel="$(ls "$tmp"/onnxruntime-*.whl | head -n1)"
python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so.")]
    if not names:
        sys.exit("setup-ort: no libonnxruntime.so.* in " + sys.argv[1])
    z.extract(names[0], sys.argv[2])
PY
cp "$tmp/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$lib.part"
mv "$lib.part" "$lib"
ln -sfn "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
echo "setup-ort: installed $lib" >&2
