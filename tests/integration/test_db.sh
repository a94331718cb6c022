#!/usr/bin/env bash
# test_db.sh -- the driver layer against real databases: starts a private
# PostgreSQL (tests/lib/pg.sh), checks that libpq connects and runs SELECT 1,
# then runs the cmocka driver tests (test_db_drivers.c) on SQLite and on
# that server.  ctest passes ZDM_SRC and ZDM_BUILD.
set -euo pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
: "${ZDM_BUILD:?ZDM_BUILD must name the build directory}"
prog="$ZDM_BUILD/tests/test_db_drivers"
if [ ! -x "$prog" ]; then
    echo "test_db.sh: $prog is not built" >&2
    exit 1
fi

# shellcheck source=../lib/pg.sh
source "$ZDM_SRC/tests/lib/pg.sh"
pg_start

# Smoke: the server answers through libpq at the exported URL.
got=$(pg_psql -At -d "$ZDM_TEST_PG_URL" -c 'SELECT 1')
if [ "$got" != 1 ]; then
    echo "test_db.sh: SELECT 1 returned '$got'" >&2
    exit 1
fi

status=0
"$prog" || status=$?
exit "$status"
