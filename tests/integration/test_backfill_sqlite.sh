#!/usr/bin/env bash
# test_backfill_sqlite.sh -- the backfill engine on a real SQLite file:
# exactly once under kill -9, dual-write under concurrent application
# writes (old and new column), pause/resume, pause_query, the rate limit,
# adaptive batch size, SIGTERM, keys it cannot walk, a failing set
# expression, and trigger removal at contract and rollback.  The cases
# live in tests/lib/backfill.sh; test_backfill_pg.sh runs them on
# PostgreSQL with a few more.  ctest passes ZDM and ZDM_SRC.
set -uo pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=tests/lib/backfill.sh
source "$ZDM_SRC/tests/lib/backfill.sh"
bf_init test_backfill_sqlite sqlite

# A writer holding SQLite's write lock: the worker's next batch waits for
# it at BEGIN IMMEDIATE (within zdm's 5 s busy timeout).  Taken once the
# worker runs: a worker still starting would wait before it handles signals.
bf_hold_prepare() { :; }
bf_hold_start() {
    bf_until "the worker converts rows" 30 bf_rows_done_ge 0002_inc 200
    rm -f "$BF_DIR/held" "$BF_DIR/release"
    {
        echo ".timeout 20000"
        echo "BEGIN IMMEDIATE;"
        echo ".shell touch $BF_DIR/held"
        while [ ! -e "$BF_DIR/release" ]; do sleep 0.05; done
        echo "COMMIT;"
    } | sqlite3 -batch "$BF_FILE" >"$BF_DIR/hold.out" 2>&1 &
    BF_HOLDER=$!
    BF_PIDS+=("$BF_HOLDER")
    bf_until "the holder has the write lock" 30 test -e "$BF_DIR/held"
    sleep 0.3 # the worker reaches its next BEGIN IMMEDIATE and waits
}
bf_hold_release() {
    touch "$BF_DIR/release"
    bf_wait "$BF_HOLDER" 30
    bf_eq "the lock holder" "" "$(cat "$BF_DIR/hold.out")"
}

bf_run bf_case_kill9 120000 "sleep_ms = 20" ""
bf_run bf_case_dualwrite 20000
bf_run bf_case_pause 30000
bf_run bf_case_pause_query 5000
bf_run bf_case_rate
bf_run bf_case_adaptive 20000
bf_run bf_case_sigterm 30000

bf_run bf_case_bad_key 0002_nonunique '[[expand.steps]]
sql = "CREATE TABLE k (id integer PRIMARY KEY, v integer NOT NULL)"
down = "DROP TABLE k"
[[expand.steps]]
sql = "CREATE INDEX k_v ON k (v)"
down = "DROP INDEX k_v"' 'key = ["v"]' "no unique index covers exactly the key columns"

# SQLite's division by zero is NULL, not an error: a CHECK fails instead.
bf_run bf_case_failing_expr "d - 1" "x integer CHECK (x >= 0)" \
    "UPDATE f SET d = 0 WHERE id = 5000" "UPDATE f SET d = 1 WHERE id = 5000" \
    'allow_unsafe = [{rule = "constraint-not-valid", reason = "the CHECK is what fails the backfill"}]' 

bf_finish
