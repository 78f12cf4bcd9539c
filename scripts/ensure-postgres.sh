#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for user postgres and a
# database `test`. On this project's machines one is already running; elsewhere this installs
# Debian's postgresql, starts it and creates what the tests need. Prints the URL to use.
set -euo pipefail
URL="postgres://postgres@127.0.0.1:5432/test"

answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if ! answers; then
  echo "ensure-postgres: no server on 127.0.0.1:5432; installing Debian's postgresql" >&2
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf="/etc/postgresql/$version/main"
  # Trust local TCP connections (test machine only), as on the project's machines.
  if ! grep -q "second-opinion-fhir" "$conf/pg_hba.conf"; then
    sed -i '1i # second-opinion-fhir tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$conf/pg_hba.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || pg_ctlcluster --skip-systemctl-redirect "$version" main restart >&2
  for _ in $(seq 1 30); do answers && break; sleep 1; done
fi

if command -v psql >/dev/null 2>&1; then
  if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1; then
    psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "CREATE DATABASE test" >&2
  fi
fi
echo "$URL"
