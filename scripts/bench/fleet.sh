#!/usr/bin/env bash
# The fleet on this machine, with a real PostgreSQL 15 in a temporary folder on a free port:
#  1. the queue alone: 20,000 jobs claimed and completed (with a minimal object row each) by 8
#     concurrent workers (pipeline/examples/queue_bench.rs) — jobs/s, goal >= 1,000;
#  2. real work: COUNT (default 1,000) real listing photos from ../shared/datasets/listing,
#     `tusk enqueue` then 1 and then 2 `tusk worker --until-empty` processes (default models),
#     each on a fresh database — objects/s, the ratio, and `tusk scan` on the same photos.
#   scripts/bench/fleet.sh            COUNT=2000 scripts/bench/fleet.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-ort.sh >/dev/null
scripts/setup-build.sh >/dev/null
pg_bin="$(scripts/setup-postgres.sh)"
cargo build --release --quiet --bin tusk --example queue_bench
export TUSK_MODELS="$root/models"
work="$(mktemp -d)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/data" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
base="postgres://postgres@127.0.0.1:$port"
newdb() { "$pg_bin/psql" "$base/postgres" -qc "CREATE DATABASE $1"; echo "$base/$1"; }

echo "== the queue alone (8 workers, batch 32, 20,000 jobs)"
target/release/examples/queue_bench "$(newdb queue)" 20000 8 32

count="${COUNT:-1000}"
images="$work/images"
mkdir -p "$images"
# Copies, not links: a folder source refuses links that leave it. (sed, not head: head would close the pipe early, which pipefail counts as a failure)
find ../shared/datasets/listing -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort | sed -n "1,${count}p" |
  while read -r f; do cp "$f" "$images/$(echo "$f" | md5sum | cut -c1-12).${f##*.}"; done
n="$(ls "$images" | wc -l)"
echo "== $n real listing photos, default models, workers on $(nproc) cores"
declare -A rate
for workers in 1 2; do
  db="$(newdb "w$workers")"
  target/release/tusk enqueue "$images" --db "$db" 2>/dev/null
  start="$(date +%s.%N)"
  for i in $(seq "$workers"); do
    target/release/tusk worker --db "$db" --until-empty --name "bench-$i" --threads "$(( $(nproc) / workers > 0 ? $(nproc) / workers : 1 ))" >/dev/null 2>"$work/worker-$workers-$i.log" &
  done
  wait
  end="$(date +%s.%N)"
  done_n="$("$pg_bin/psql" "$db" -qAtc "SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'failed')")"
  rate[$workers]="$(python3 -c "print(f'{$done_n / ($end - $start):.1f}')")"
  echo "$workers worker(s): $done_n objects in $(python3 -c "print(f'{$end - $start:.1f}')") s = ${rate[$workers]} objects/s"
done
python3 -c "print(f'2 workers / 1 worker: {${rate[2]} / ${rate[1]}:.2f}x')"
# The same photos through one `tusk scan` (its pipelined stages, SQLite), for comparison.
scan_out="$(target/release/tusk scan "$images" --db "$work/scan.db" --progress off 2>/dev/null | grep -oE '[0-9.]+ images/s')"
echo "tusk scan on the same photos: $scan_out; 1 worker / scan: $(python3 -c "print(f'{${rate[1]} / ${scan_out% images/s}:.2f}x')")"
