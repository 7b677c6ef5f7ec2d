#!/usr/bin/env bash
# Install PostgreSQL 15 (Debian's `postgresql` package) for the store and fleet tests, once.
# The tests start their own server in a temporary data folder on a free loopback port
# (tests/common/pgserver.rs); nothing here starts one. Prints the folder holding initdb/pg_ctl.
set -euo pipefail
bin="${TUSK_PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-postgres: PostgreSQL 15 is missing and installing it needs root: apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "setup-postgres: installing PostgreSQL 15 (apt, once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
echo "$bin"
