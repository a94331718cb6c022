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
t_init_dialect test_backfill_sqlite sqlite

# A writer holding SQLite's write lock: the worker's next batch waits for
# it at BEGIN IMMEDIATE (within zdm's 5 s busy timeout).  Taken once the
# worker runs: a worker still starting would wait before it handles signals.
bf_hold_prepare() { :; }
bf_hold_start() {
    t_wait_for "the worker converts rows" 30 bf_rows_done_ge 0002_inc 200
    rm -f "$T_DIR/held" "$T_DIR/release"
    {
        echo ".timeout 20000"
        echo "BEGIN IMMEDIATE;"
        echo ".shell touch $T_DIR/held"
        while [ ! -e "$T_DIR/release" ]; do sleep 0.05; done
        echo "COMMIT;"
    } | sqlite3 -batch "$T_SQLITE_FILE" >"$T_DIR/hold.out" 2>&1 &
    BF_HOLDER=$!
    T_BG_PIDS+=("$BF_HOLDER")
    t_wait_for "the holder has the write lock" 30 test -e "$T_DIR/held"
    sleep 0.3 # the worker reaches its next BEGIN IMMEDIATE and waits
}
bf_hold_release() {
    touch "$T_DIR/release"
    t_wait_exit "$BF_HOLDER" 30
    t_eq "the lock holder" "" "$(cat "$T_DIR/hold.out")"
}

t_run bf_case_kill9 120000 "sleep_ms = 20" ""
t_run bf_case_dualwrite 20000
t_run bf_case_pause 30000
t_run bf_case_pause_query 5000
t_run bf_case_rate
t_run bf_case_adaptive 20000
t_run bf_case_sigterm 30000

t_run bf_case_bad_key 0002_nonunique '[[expand.steps]]
sql = "CREATE TABLE k (id integer PRIMARY KEY, v integer NOT NULL)"
down = "DROP TABLE k"
[[expand.steps]]
sql = "CREATE INDEX k_v ON k (v)"
down = "DROP INDEX k_v"' 'key = ["v"]' "no unique index covers exactly the key columns"

# SQLite's division by zero is NULL, not an error: a CHECK fails instead.
t_run bf_case_failing_expr "d - 1" "x integer CHECK (x >= 0)" \
    "UPDATE f SET d = 0 WHERE id = 5000" "UPDATE f SET d = 1 WHERE id = 5000" \
    'allow_unsafe = [{rule = "constraint-not-valid", reason = "the CHECK is what fails the backfill"}]' 

t_finish
