#!/usr/bin/env bash
# Seller-link robustness benchmark (issue 13): ~3,000 unrelated real photos, 300 of them re-posted
# by a second seller after each of 13 edits, and hard-negative pairs (same screenshot chrome,
# same-style product shots, same watermark), scanned with `tusk scan --hash-only` and linked with
# `tusk clusters` / `tusk links`. Prints recall per edit, the false links per 10^6 pairs of
# unrelated objects, false seller edges and hard negatives linked, with the issue's goals.
#
#   scripts/bench/link_robustness.sh                              # tusk's default matching
#   scripts/bench/link_robustness.sh --hash-kind pdq --radius 31  # flags for clusters / links
#   scripts/bench/link_robustness.sh --json-out out/links.json    # also the results as JSON
#
# Own flags (see link_robustness.py --help): --seed, --unrelated, --reposts, --hard-pairs,
# --workers (1 or 2), --scan-args "...", --keep-db, --json-out; any other flag goes to tusk
# clusters and tusk links. Images, manifest, store and outputs are cached in .cache/link_robustness.
# TUSK_BIN=path/to/tusk uses that binary as it is (no setup-build, no cargo build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-python.sh
if [ -z "${TUSK_BIN:-}" ]; then
    scripts/setup-build.sh
    cargo build --release --quiet --bin tusk
    TUSK_BIN=target/release/tusk
fi
exec .venv/bin/python scripts/bench/link_robustness.py --tusk "$TUSK_BIN" "$@"
