#!/usr/bin/env bash
# Hamming index speed (issue 6): 10 million random hashes with planted near-duplicates; prints
# query latency p50/p99 of tusk's index against a linear scan in the same run, and memory.
# Needs about 1.5 GB of RAM at the default size; pass a smaller N as the first argument.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-build.sh
cargo run --release --quiet --example index_bench -- "$@"
