#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver for the review page's browser tests (tests/review.rs),
# once. The tests start their own chromedriver on a free loopback port and a headless Chromium
# with a fresh profile; nothing here starts one. Prints the chromedriver path.
set -euo pipefail
driver="${TUSK_CHROMEDRIVER:-/usr/bin/chromedriver}"
if [ ! -x "$driver" ] || [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-browser: Chromium is missing and installing it needs root: apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  echo "setup-browser: installing chromium and chromium-driver (apt, once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium chromium-driver >&2
fi
echo "$driver"
