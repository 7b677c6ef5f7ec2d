#!/usr/bin/env bash
# Install s3s-fs 0.14.1 (a real S3-compatible server that checks SigV4 and keeps objects on disk)
# for the S3 tests. Cached under ~/.cache/tusk/ so later runs on the same machine reuse it.
# Prints the binary's path.
set -euo pipefail
VERSION=0.14.1
root="${TUSK_TOOLS:-$HOME/.cache/tusk}/s3s-fs-$VERSION"
bin="$root/bin/s3s-fs"
if [ ! -x "$bin" ]; then
  echo "setup-s3s: installing s3s-fs $VERSION into $root (about 3 minutes, once)" >&2
  cargo install --quiet --locked --root "$root" --features binary "s3s-fs@$VERSION" >&2
fi
echo "$bin"
