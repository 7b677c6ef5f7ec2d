#!/usr/bin/env bash
# The review queue with 100,000 objects in the store (goal: every page answers in < 200 ms):
# fills a SQLite store and a PostgreSQL 15 database (temporary, free port) with N listing objects
# (pipeline/examples/review_fill.rs: half flagged, one flagged in twenty decided), starts a
# release `tusk serve` on each, signs in with an analyst token and times queue pages with curl:
# the first request, the background build of the re-used-photo clusters (the page says when it
# is done; at 100,000 objects it dominates a cold start: the all-pairs PDQ search is linear per
# object), then 10 of each page.
#   scripts/bench/review_queue.sh        N=20000 BACKENDS=postgres scripts/bench/review_queue.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-ort.sh >/dev/null
scripts/setup-build.sh >/dev/null
pg_bin="$(scripts/setup-postgres.sh)"
cargo build --release --quiet --bin tusk --example review_fill
export TUSK_MODELS="$root/models"
n="${N:-100000}"
work="$(mktemp -d)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port="$(free_port)"
serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
"$pg_bin/psql" "postgres://postgres@127.0.0.1:$pg_port/postgres" -qc "CREATE DATABASE review"

ms() { python3 -c "import sys; print(f'{float(sys.argv[1]) * 1000:.1f}')" "$1"; }

bench() {
  local name="$1" db="$2"
  target/release/examples/review_fill "$db" "$n"
  local token port
  token="$(target/release/tusk token create --role analyst --name bench-analyst --db "$db" 2>/dev/null)"
  port="$(free_port)"
  target/release/tusk serve --listen "127.0.0.1:$port" --db "$db" --data "$work/serve-$name" >"$work/serve-$name.log" 2>&1 &
  serve_pid=$!
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done
  local base="http://127.0.0.1:$port"
  local first
  first="$(curl -s -o /dev/null -w '%{time_total}' -b "tusk_session=$token" "$base/")"
  echo "== $name, $n objects: first page: $(ms "$first") ms"
  local t0=$SECONDS
  while curl -s -b "tusk_session=$token" "$base/" | grep -q clusters-pending; do sleep 5; done
  echo "   re-used-photo clusters built in the background in about $((SECONDS - t0)) s"
  printf '%-44s %9s %9s %9s\n' "page" "p50 ms" "max ms" "items"
  for page in "/" "/?order=uncertain" "/?decided=no" "/?decided=yes&order=uncertain" "/?label=ivory&platform=p3" "/?seller=s17" "/?page=200" "/?kind=xray"; do
    local times=()
    for _ in $(seq 10); do times+=("$(curl -s -o "$work/page.html" -w '%{time_total}' -b "tusk_session=$token" "$base$page")"); done
    local items
    items="$({ grep -o 'data-object-id=' "$work/page.html" || true; } | wc -l)"
    python3 - "$page" "$items" "${times[@]}" <<'PY'
import statistics, sys
page, items, t = sys.argv[1], sys.argv[2], [float(x) * 1000 for x in sys.argv[3:]]
print(f"{page:<44} {statistics.median(t):9.1f} {max(t):9.1f} {items:>9}")
PY
  done
  kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=""
}

for backend in ${BACKENDS:-sqlite postgres}; do
  case "$backend" in
    sqlite) bench sqlite "$work/review.db" ;;
    postgres) bench postgres "postgres://postgres@127.0.0.1:$pg_port/review" ;;
  esac
done
