#!/usr/bin/env bash
# Quick start, part 2: every test (unit, parity, bad input, end to end, CLI, S3, stores), with
# the real ONNX Runtime, a real S3-compatible server (s3s-fs, installed once into ~/.cache/tusk
# and started by the tests on loopback ports), a real PostgreSQL 15 (Debian's package, installed
# once; each test starts its own cluster in a temporary folder on a free loopback port), Debian's
# Chromium and ChromeDriver for the review page's browser tests (installed once; each test starts
# its own headless browser), and the Python reference the parity tests compute on
# this machine (.venv, scripts/setup-python.sh). Needs nothing outside the repository.
# Every test binary runs even when one fails (--no-fail-fast); the exit status is still non-zero.
# Extra arguments go to `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-ort.sh
scripts/setup-build.sh
scripts/setup-python.sh
TUSK_S3S_FS="$(scripts/setup-s3s.sh)"
export TUSK_S3S_FS
TUSK_PG_BIN="$(scripts/setup-postgres.sh)"
export TUSK_PG_BIN
TUSK_CHROMEDRIVER="$(scripts/setup-browser.sh)"
export TUSK_CHROMEDRIVER
cargo test --workspace --no-fail-fast "$@"
