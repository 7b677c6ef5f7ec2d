#!/usr/bin/env bash
# tusk against the Python reference (scripts/bench/reference.py: Pillow + onnxruntime + imagehash
# + SQLite) and against the machine's ceiling (pipeline/examples/ceiling.rs: decoding alone plus
# inference alone, each at full speed), on the same >= 2,000 real listing photos upscaled to
# 800-1200 px, with the same model (the default listing model, the one `tusk scan` runs; MODEL=name
# to measure another), batch size and thread count.
# Runs the three alternately ROUNDS times (default 3) and prints medians, ratios and peak RSS;
# then the same for decode + hash only (no model).
#   scripts/bench/compare.sh            # needs ../shared/datasets/listing for the photos
#   ROUNDS=5 COUNT=3000 scripts/bench/compare.sh
#   MODEL=listing-v2 scripts/bench/compare.sh   # tusk scan then runs --model listing-v2
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-ort.sh
scripts/setup-python.sh
scripts/setup-build.sh
.venv/bin/pip install --quiet imagehash==4.3.2
cargo build --release --quiet --bin tusk --example ceiling
images="$root/.cache/bench/images"
.venv/bin/python scripts/bench/prepare_images.py "$images" --count "${COUNT:-2000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rounds="${ROUNDS:-3}"
cores="$(nproc)"
batch=8
# the shipped default for listing photos, as tusk itself reads the manifests (`tusk models`; awk
# reads to the end, so the pipe never closes early under pipefail)
model="${MODEL:-$(target/release/tusk models --models models | awk '/ kinds=([a-z]+,)*listing[, ]/ && /\(default\)/ && !m { m = $1 } END { print m }')}"
[ -f "models/$model/model.toml" ] || { echo "compare.sh: no model models/$model" >&2; exit 2; }

# runs a command, prints "<images/s> <peak RSS MiB>" from its own output and /usr/bin/time
measure() {
  local out
  out="$( { /usr/bin/time -f 'RSS_KB %M' "$@" 2>&1 1>&3 3>&-; } 3>&1 )"
  local ips rss
  ips="$(grep -oE '[0-9.]+ images/s' <<<"$out" | tail -1 | cut -d' ' -f1)"
  rss="$(grep -oE 'RSS_KB [0-9]+' <<<"$out" | cut -d' ' -f2)"
  echo "$ips $((rss / 1024))"
}

run_mode() {
  local mode="$1" tusk_extra=(--model "$model") ref_extra=() ceil_extra=()
  if [ "$mode" = hash-only ]; then tusk_extra=(--hash-only); ref_extra=(--hash-only); ceil_extra=(--hash-only); fi
  : >"$work/tusk" ; : >"$work/ref" ; : >"$work/ceil"
  for r in $(seq "$rounds"); do
    rm -f "$work"/t.db*
    # tusk at its defaults: one inference session per core, one thread each, batches of 8
    measure target/release/tusk scan "$images" --db "$work/t.db" --progress off "${tusk_extra[@]}" >>"$work/tusk"
    measure .venv/bin/python scripts/bench/reference.py "$images" --db "$work/r.db" --batch "$batch" \
      --model "models/$model" --threads "$cores" "${ref_extra[@]}" >>"$work/ref"
    measure target/release/examples/ceiling "$images" "models/$model" --batch "$batch" \
      --sessions "$cores" --threads 1 "${ceil_extra[@]}" >>"$work/ceil"
    echo "  round $r/$rounds: tusk $(tail -1 "$work/tusk"), reference $(tail -1 "$work/ref"), ceiling $(tail -1 "$work/ceil")  (images/s, peak MiB)" >&2
  done
  python3 - "$mode" "$work" "$(ls "$images" | wc -l)" <<'PY'
import statistics, sys
mode, work, n = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    rows = [tuple(map(float, l.split())) for l in open(f"{work}/{name}") if l.strip()]
    return statistics.median(r[0] for r in rows), max(r[1] for r in rows), [r[0] for r in rows]
t, r, c = load("tusk"), load("ref"), load("ceil")
print(f"\n{mode} — {n} photos, median of {len(t[2])} alternating rounds")
print(f"| pipeline | images/s (median) | all rounds | peak RSS |")
print(f"|---|---|---|---|")
for name, (ips, rss, all_) in (("tusk", t), ("Python reference", r), ("ceiling (decode + inference alone)", c)):
    print(f"| {name} | {ips:.1f} | {', '.join(f'{x:.1f}' for x in all_)} | {rss:.0f} MiB |")
print(f"tusk / reference = {t[0] / r[0]:.2f}x    tusk / ceiling = {100 * t[0] / c[0]:.1f} %")
PY
}

echo "tusk vs Python reference vs ceiling: $cores cores, batch $batch, model $model" >&2
run_mode end-to-end
run_mode hash-only
