#!/usr/bin/env bash
# Model quality on the real photos of ../shared/datasets (not in the repository: licences).
# Fails loudly when that folder is missing. Prints recall and false-positive rate.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-ort.sh
if [ ! -f ../shared/datasets/listing/labels.csv ]; then
  echo "quality: ../shared/datasets/listing/labels.csv is missing; this check needs the shared datasets" >&2
  exit 1
fi
cargo test --test quality -- --nocapture "$@"
