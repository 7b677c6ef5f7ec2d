#!/usr/bin/env bash
# Fuzzes every parser that takes outside bytes with cargo-fuzz (libFuzzer, AddressSanitizer):
#   image          image bytes: decode (limits), preprocessing for every committed model, hashing
#   dicos          DICOS/DICOM DX objects: read_dx, the PNG it makes, a Threat Detection Report
#   manifest_line  JSONL manifest lines: the manifest parser and the record line
#   model_toml     model.toml text: parse + validate, preprocessing to the model's input size
#   serve_http     raw HTTP/1.1 connections through hyper and tusk serve's router, in process
# What each target does with an input is tests/fuzz_harness/mod.rs; inputs that crash are fixed
# at their cause and kept under tests/fixtures/fuzz/<target>/ (replayed by scripts/test.sh).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 600 s for each of the five targets)
# Installs cargo-fuzz from crates.io when missing. Stable Rust: the nightly flags cargo-fuzz
# passes (-Zsanitizer=address) are allowed by RUSTC_BOOTSTRAP=1, no other toolchain is fetched.
# FUZZ_SANITIZER=none builds without AddressSanitizer (faster; no malloc limit). Seeds come from
# fuzz/seeds/ (fuzz/make_seeds.py), tests/fixtures, datasets/demo and models/; the growing
# corpus stays in fuzz/corpus/, crash inputs in fuzz/artifacts/, logs in fuzz/logs/.
# Prints executions, coverage (libFuzzer's edge count and features), time and findings per
# target; exits non-zero when a target found something. Not run in CI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-600}"
shift || true
all=(image dicos manifest_line model_toml serve_http)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

scripts/setup-build.sh
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io (once)" >&2
  cargo install cargo-fuzz --locked
fi

# --dev: fuzz/Cargo.toml's dev profile (opt-level 1, debug assertions and overflow checks on:
# integer overflow panics instead of wrapping), far quicker to build than cargo-fuzz's release
# mode (one codegen unit per crate). The same flags for build and run, or `run` rebuilds.
flags=(--dev --sanitizer "$sanitizer")
cargo fuzz build "${flags[@]}"

# Seeds: staged fresh each run, read-only to libFuzzer; its corpus grows in fuzz/corpus/<target>.
stage_seeds() {
  local t="$1" dir="fuzz/tmp/seeds/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp fuzz/seeds/"$t"/* "$dir"/ 2>/dev/null || true
  cp tests/fixtures/fuzz/"$t"/* "$dir"/ 2>/dev/null || true
  case "$t" in
    image)
      cp tests/fixtures/*.jpg tests/fixtures/parity/*.png tests/fixtures/xray/*.png tests/fixtures/xray/*.tiff datasets/demo/images/* "$dir"/ ;;
    manifest_line)
      local n=0
      while IFS= read -r line; do
        n=$((n + 1))
        printf '%s\n' "$line" >"$dir/demo_line_$n.jsonl"
      done <datasets/demo/manifest.jsonl ;;
    model_toml)
      for m in models/*/model.toml; do cp "$m" "$dir/$(basename "$(dirname "$m")").toml"; done ;;
  esac
  rm -f "$dir"/README.md
  echo "$dir"
}

max_len() {
  case "$1" in
    manifest_line) echo 4096 ;;
    model_toml) echo 8192 ;;
    *) echo 65536 ;;
  esac
}

mkdir -p fuzz/logs
summary=fuzz/logs/summary.tsv
printf 'target\tseconds\texecutions\texec_per_s\tcoverage\tfeatures\tcorpus\tpeak_rss_mb\tresult\n' >"$summary"
status=0
for t in "${targets[@]}"; do
  seeds="$(stage_seeds "$t")"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/tmp/run"
  log="fuzz/logs/$t.log"
  before="$(ls "fuzz/artifacts/$t" | wc -l)"
  started=$(date +%s)
  # -malloc_limit_mb: one allocation over 1 GiB (twice the decoder's max_alloc) is a finding;
  # -timeout: one input over 30 s is a hang.
  set +e
  TMPDIR="$root/fuzz/tmp/run" cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "$seeds" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -malloc_limit_mb=1024 \
    -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - started ))
  rm -rf fuzz/tmp/run
  final_stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}' || true; }
  last="$(grep -E '^#[0-9]+.*cov: [0-9]+' "$log" | tail -n1 || true)"
  cov="$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")"
  ft="$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")"
  corp="$(sed -nE 's/.*corp: ([0-9]+).*/\1/p' <<<"$last")"
  execs="$(final_stat number_of_executed_units)"
  [ -n "$execs" ] || execs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")"
  found="$(ls "fuzz/artifacts/$t" | wc -l)"
  if [ "$rc" -eq 0 ]; then
    result="nothing found"
  else
    status=1
    what="$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer): [^(]*' "$log" || echo "exit status $rc")"
    panic="$(grep -m1 -A1 'panicked at' "$log" | tail -n1 || true)"
    result="FOUND ($((found - before)) new in fuzz/artifacts/$t): $what${panic:+: $panic}"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$took" "${execs:-?}" "$(final_stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$(final_stat peak_rss_mb)" "$result" >>"$summary"
  echo "fuzz: $t: $took s, ${execs:-?} executions, cov ${cov:-?} ft ${ft:-?}: $result (log: $log)" >&2
done
echo
column -t -s $'\t' "$summary" 2>/dev/null || cat "$summary"
exit "$status"
