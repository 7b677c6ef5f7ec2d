#!/usr/bin/env bash
# Peak RSS of `tusk scan s3://…` for 10,000 and 100,000 keys against a local s3s-fs.
# The listing is streamed page by page and every queue is bounded, so peak memory should not
# grow with the number of keys. Objects are hard links to the demo photos under distinct keys
# (so they have no ETag; tusk falls back to size+mtime). `--kind xray` keeps the listing
# model out of it: this measures the pipeline, not inference.  COUNTS="1000 5000" to change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/setup-ort.sh
s3s="$(scripts/setup-s3s.sh)"
scripts/setup-build.sh
cargo build --release --quiet --bin tusk
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$work/data/bench"
"$s3s" --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret-123 "$work/data" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-123 AWS_EC2_METADATA_DISABLED=true
printf '%-8s %-10s %-10s %-12s %s\n' keys processed seconds images/s peak_rss_MB
for n in ${COUNTS:-10000 100000}; do
  python3 - "$n" "$work/data/bench/n$n" "$root/datasets/demo/images" <<'PY'
import os, sys
n, dest, src = int(sys.argv[1]), sys.argv[2], sys.argv[3]
photos = sorted(os.path.join(src, f) for f in os.listdir(src))
for i in range(n):
    d = os.path.join(dest, f"d{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    p = photos[i % len(photos)]
    os.link(p, os.path.join(d, f"{i:07d}{os.path.splitext(p)[1]}"))
PY
  python3 - "$n" "$port" "$work" <<'PY'
import resource, subprocess, sys, time, re
n, port, work = sys.argv[1], sys.argv[2], sys.argv[3]
cmd = ["target/release/tusk", "scan", f"s3://bench/n{n}/", "--endpoint-url", f"http://127.0.0.1:{port}",
       "--path-style", "--kind", "xray", "--db", f"{work}/n{n}.db", "--progress", "off"]
t = time.time()
out = subprocess.run(cmd, capture_output=True, text=True)
secs = time.time() - t
if out.returncode != 0:
    sys.exit(out.stdout + out.stderr)
processed = re.search(r"(\d+) processed", out.stdout).group(1)
rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{n:<8} {processed:<10} {secs:<10.1f} {int(processed) / secs:<12.0f} {rss_mb:.0f}")
PY
done
