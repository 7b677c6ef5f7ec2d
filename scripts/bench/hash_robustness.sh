#!/usr/bin/env bash
# Hash robustness benchmark (issue 6): recall per hash and per re-posting transformation at a
# false-match rate of 1e-4. Prints a Markdown table. Args go to hash_robustness.py
# (--products N, --seed S). Images are cached in .cache/hash_robustness.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-build.sh
scripts/setup-python.sh
cargo build --release --quiet --example hash_files
.venv/bin/python scripts/bench/hash_robustness.py "$@"
