#!/usr/bin/env bash
# test_backfill_busy_start.sh -- a SQLite backfill worker that starts
# while the application holds a read transaction waits for it, it does
# not exit "database is locked".
#
# The first worker splits the keys into ranges in a write transaction.
# Its COMMIT waits only 25 ms for the readers to leave (db_sqlite.c), then
# fails as a lock timeout; the worker stopped there with exit 1, where a
# busy batch is simply tried again.  Found by the torture checker (seed
# 130 on SQLite, the second plan's workers starting while the
# application wrote).  Each round holds a reader for 1.5 s, starts a
# worker on a plan with no ranges yet, and wants exit 0 and every row
# converted (the old code failed about one round in two, so four rounds).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init backfill_busy_start
command -v python3 >/dev/null || {
    echo "python3 missing" >&2
    exit 77
}

db_new sqlite busy_start
plans_empty
plan_write p '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN dst INTEGER"
down = "ALTER TABLE t DROP COLUMN dst"
[backfill]
table = "t"
set.dst = "src * 2 + 1"
[backfill.throttle]
batch_size = 500'
db_sql "PRAGMA journal_mode=delete; CREATE TABLE t(id INTEGER PRIMARY KEY, src INTEGER NOT NULL);
        WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
        INSERT INTO t(id, src) SELECT i, i FROM g;" >/dev/null
zdm_run init
t_rc "init" 0

cat >"$T_DIR/hold.py" <<'PY'
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30.0, isolation_level=None)
con.execute("BEGIN")
con.execute("SELECT count(*) FROM t").fetchall()
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
con.execute("COMMIT")
PY

for round in 1 2 3 4; do
    t_section "round $round: a worker starts while the application reads"
    zdm_run advance p
    t_rc "expand" 0
    rm -f "$T_DIR/held"
    python3 "$T_DIR/hold.py" "$T_SQLITE_FILE" "$T_DIR/held" 1.5 &
    hold=$!
    T_BG_PIDS+=("$hold")
    t_wait_for "the reader to hold its lock" 30 "[ -e '$T_DIR/held' ]"
    zdm_run backfill p
    t_rc "the worker waits for the reader and finishes" 0
    wait "$hold"
    t_eq "backfilled" backfilled "$(zdm_phase_of p)"
    t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE dst IS NOT src * 2 + 1")"
    zdm_run rollback p
    t_rc "rollback (the next round splits the keys again)" 0
done
t_finish
