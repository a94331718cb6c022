#!/usr/bin/env bash
# test_sqlite_cancel.sh -- SQLite: the first SIGTERM cancels a backfill
# batch that waits for the database's write lock, as PostgreSQL's does.
#
# Another connection holds the write lock (BEGIN IMMEDIATE, kept open);
# the backfill runs inside "zdm advance", whose waits for the write lock
# last the plan's lock_timeout x lock_retries (10 minutes here).  SQLite's
# busy loop ignores sqlite3_interrupt(), so before, the first SIGTERM was
# only seen once that wait ended: ten minutes.  Now, while the other
# connection still holds the lock:
#  * the worker logs that the signal cancelled its wait for the write
#    lock (not a timeout: no "database busy" retry);
#  * once the lock goes, advance exits 4, nothing half-done: the plan is
#    still expanded, its history row closed "interrupted", and a second
#    advance finishes the backfill from where it stood.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_cancel
command -v python3 >/dev/null || {
    echo "python3 missing" >&2
    exit 77
}

db_new sqlite cancel
plans_empty
# max_latency_factor = 0: without the latency probe too, the batch's own
# BEGIN is what waits (the probe's wait is cancelled the same way).
plan_write bf '
lock_timeout = "60s"
lock_retries = 10
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN v integer"
down = "ALTER TABLE t DROP COLUMN v"
[backfill]
table = "t"
where = "v IS NULL"
set.v = "id"
[backfill.throttle]
batch_size = 20
min_batch_size = 20
max_batch_size = 20
max_rows_per_second = 200
max_latency_factor = 0'
db_sql "CREATE TABLE t (id integer PRIMARY KEY);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
        INSERT INTO t SELECT x FROM c" >/dev/null
zdm_run advance bf
t_rc "expand" 0

# holder.py: takes the write lock, says so, keeps it until told to let go.
cat >"$T_DIR/holder.py" <<'PY'
import os, sqlite3, sys, time
path, flag = sys.argv[1], sys.argv[2]
con = sqlite3.connect(path, timeout=30, isolation_level=None)
con.execute("BEGIN IMMEDIATE")
open(flag + ".locked", "w").close()
while not os.path.exists(flag + ".release"):
    time.sleep(0.05)
con.execute("ROLLBACK")
PY
done_rows() { db_sql 'SELECT count(*) FROM t WHERE v IS NOT NULL' 2>/dev/null; }

t_section "the first SIGTERM ends a batch's wait for the write lock"
zdm_bg "$T_DIR/w" advance bf
job=$ZBG_JOB
pid=$ZBG_PID
t_wait_for "the worker commits batches" 60 "[ \"\$(done_rows)\" -gt 100 ]"
python3 "$T_DIR/holder.py" "$T_SQLITE_FILE" "$T_DIR/h" &
holder=$!
t_wait_for "another connection holds the write lock" 30 "[ -e '$T_DIR/h.locked' ]"
# The worker's next batch now waits for the lock: no batch commits any
# more (two reads a second apart agree; at 200 rows/s they would not).
t_wait_for "the worker is held by the lock" 60 \
    "a=\$(done_rows); sleep 1; [ -n \"\$a\" ] && [ \"\$a\" = \"\$(done_rows)\" ]"
held=$(done_rows)
kill -TERM "$pid"
t_wait_for "while the lock is still held, the worker says the signal cancelled its wait" 30 \
    "grep -q 'cancelled: sqlite: cancelled by a signal while waiting for the database.s write lock' '$T_DIR/w.err'"
t_eq "the lock is still held meanwhile" "" "$(ls "$T_DIR/h.release" 2>/dev/null)"
t_lacks "not a lock timeout retried" "database busy" "$(cat "$T_DIR/w.err")"
touch "$T_DIR/h.release"
wait "$holder"
t_wait_exit "$job" 60
t_eq "advance exits 4 (interrupted)" 4 "$WAIT_RC"
t_eq "no batch committed after the lock was taken" "$held" "$(done_rows)"
t_eq "the plan is still expanded" expanded "$(zdm_phase_of bf)"
t_eq "its history row is closed interrupted" interrupted \
    "$(db_sql "SELECT outcome FROM zdm_history WHERE plan_id = 'bf' AND action = 'advance' ORDER BY id DESC LIMIT 1")"
zdm_run set bf max_rows_per_second=0 batch_size=1000 max_batch_size=1000
t_rc "the rest at full speed (zdm set)" 0
zdm_run advance bf
t_rc "advance again: the backfill resumes and finishes" 0
t_eq "every row converted" 0 "$(db_sql 'SELECT count(*) FROM t WHERE v IS NULL')"
t_eq "backfilled" backfilled "$(zdm_phase_of bf)"

t_finish
