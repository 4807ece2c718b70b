#!/usr/bin/env bash
# `make test`: the whole suite on SQLite, then again on PostgreSQL.
# PostgreSQL: TEST_DATABASE_URL when set; else a throwaway cluster started here from the
# machine's PostgreSQL binaries (Debian's postgresql package). In CI (CI=true) a missing
# PostgreSQL is an error; on a developer machine the PostgreSQL run is skipped with a notice.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

echo "== suite on SQLite"
$PY -m pytest "$@"

cleanup() { :; }
trap 'cleanup' EXIT
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ]; then
    dir=$(mktemp -d /tmp/dashboard-pg.XXXXXX)
    port=${TEST_PG_PORT:-55432}
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
      chown postgres "$dir"
      as_pg=(runuser -u postgres --)
    fi
    "${as_pg[@]}" "$pgbin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off" start >/dev/null
    cleanup() { "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true; rm -rf "$dir"; }
    "${as_pg[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres dashboard_test
    export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/dashboard_test"
  elif [ "${CI:-}" = "true" ]; then
    echo "CI: PostgreSQL is required (set TEST_DATABASE_URL or install the postgresql package)" >&2
    exit 1
  else
    echo "== PostgreSQL run skipped: no PostgreSQL here (install postgresql or set TEST_DATABASE_URL)"
    exit 0
  fi
fi
echo "== suite on PostgreSQL"
$PY -m pytest --database-url "$TEST_DATABASE_URL" "$@"
