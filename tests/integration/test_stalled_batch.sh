#!/usr/bin/env bash
# test_stalled_batch.sh -- a backfill batch blocked by a table lock held by
# another session (PostgreSQL):
#  * the batch gives up after its lock timeout, the wait is logged, and the
#    batch is retried (nothing is lost: the backfill finishes once the
#    lock goes);
#  * meanwhile /metrics answers (from its own thread: while the batch
#    waits, not only between its tries), with the plan's last-progress
#    time, and
#    zdm_backfill_stalled flips to 1 once no batch has committed for
#    stall_after_ms (2 s here, set live with zdm set; 5 min by default;
#    a [backfill.throttle] key too);
#  * SIGTERM stops the blocked worker (exit 4) instead of waiting for the
#    other session;
#  * the first SIGTERM cancels the blocked batch itself (PostgreSQL logs
#    "canceling statement due to user request", not a lock timeout): it
#    rolls back, exit 4, and the range resumes where it stood.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init stalled_batch
PY=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
if ! t_pg_available || [ -z "$PY" ]; then
    echo "needs PostgreSQL and python3: skipping"
    exit 77
fi
t_pg_start
db_new pg stall
plans_empty
plan_write bf '[[expand.steps]]
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
max_rows_per_second = 100'
db_sql "CREATE TABLE t (id integer PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 2000)" >/dev/null
zdm_run advance bf
t_rc "expand" 0
fetch() { "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1" 2>/dev/null; }

t_section "a batch blocked by a table lock: logged, retried, metrics answer, SIGTERM stops it"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
zdm_bg "$T_DIR/w1" backfill bf --listen "127.0.0.1:$port"
job=$ZBG_JOB
pid=$ZBG_PID
t_wait_for "the worker commits batches" 30 "[ \"\$(db_sql 'SELECT count(*) FROM t WHERE v IS NOT NULL')\" -gt 0 ]"
stalled() { fetch "http://127.0.0.1:$port/metrics" | sed -n 's/^zdm_backfill_stalled{plan="bf"} //p'; }
t_eq "stalled after 5 min by default (its HELP says so)" 1 \
    "$(fetch "http://127.0.0.1:$port/metrics" | grep -c '^# HELP zdm_backfill_stalled 1 when no batch has committed for 300 s')"
zdm_run set bf stall_after_ms=2000
t_rc "zdm set bf stall_after_ms=2000" 0
zdm_run set bf stall_after_ms=0
t_rc "stall_after_ms=0 is refused" 2
t_wait_for "the worker reads it (HELP: 2 s)" 30 \
    "fetch http://127.0.0.1:$port/metrics | grep -q '^# HELP zdm_backfill_stalled 1 when no batch has committed for 2 s'"
t_wait_for "not stalled while batches commit" 30 "[ \"\$(stalled)\" = 0 ]"
pg_session_start locker
pg_session_send locker "BEGIN; LOCK TABLE t IN SHARE MODE; SELECT 'locked';"
t_wait_for "the other session holds the lock" 10 "grep -q locked '$T_DIR/locker.log'"
t_wait_for "the blocked batch gives up and the wait is logged" 60 "grep -q 'database busy' '$T_DIR/w1.err'"
t_has "the log names the lock timeout" "lock timeout" "$(grep 'database busy' "$T_DIR/w1.err" | head -n 1)"
# A blocked batch holds the worker's loop for at most its lock timeout
# (5 s); between the retries /metrics answers.
t_wait_for "/metrics answers while the table is locked" 60 \
    "fetch http://127.0.0.1:$port/metrics | grep -q '^zdm_backfill_last_progress_timestamp_seconds{plan=\"bf\"} [1-9]'"
t_wait_for "stalled: no batch for 2 s while the table is locked" 60 "[ \"\$(stalled)\" = 1 ]"
# /metrics is served from a thread of its own: it answers while a batch is
# blocked, not only between its tries.  The same waiting batch (backend
# and start) is seen before and after the scrape; a scrape answered by the
# worker's loop would have waited for that batch to time out (5 s) first.
waiting="SELECT pid || ' ' || query_start FROM pg_stat_activity WHERE wait_event_type = 'Lock'
           AND state = 'active' AND query NOT LIKE '%pg_stat_activity%'"
t_wait_for "a batch just began to wait for the lock" 60 \
    "[ -n \"\$(db_sql \"$waiting AND now() - query_start < interval '1 second'\")\" ]"
before=$(db_sql "$waiting")
scrape=$(fetch "http://127.0.0.1:$port/metrics")
after=$(db_sql "$waiting")
t_has "the scrape answered, stalled" 'zdm_backfill_stalled{plan="bf"} 1' "$scrape"
t_has "... with the last progress time" 'zdm_backfill_last_progress_timestamp_seconds{plan="bf"} 1' "$scrape"
t_eq "... while that same batch still waited for the lock" "$before" "$after"
done_before=$(db_sql 'SELECT count(*) FROM t WHERE v IS NOT NULL')
kill -TERM "$pid"
t_wait_exit "$job" 30
t_eq "SIGTERM: the worker stops although the lock is still held (exit 4)" 4 "$WAIT_RC"
pg_session_end locker
t_eq "rows converted before the lock stay converted" "$done_before" "$(db_sql 'SELECT count(*) FROM t WHERE v IS NOT NULL')"
zdm_run backfill bf
t_rc "once the lock is gone, a worker finishes the backfill" 0
t_eq "every row converted" 0 "$(db_sql 'SELECT count(*) FROM t WHERE v IS NULL')"

t_section "the first SIGTERM cancels a batch blocked on a lock"
plan_write bf2 '[[expand.steps]]
sql  = "ALTER TABLE t2 ADD COLUMN v integer"
down = "ALTER TABLE t2 DROP COLUMN v"
[backfill]
table = "t2"
where = "v IS NULL"
set.v = "id"
[backfill.throttle]
batch_size = 20
min_batch_size = 20
max_batch_size = 20
max_rows_per_second = 100
stall_after_ms = 60000'
zdm_run plan show bf2 --json
t_eq "stall_after_ms is a plan key" 60000 "$(jq -r '.backfill.throttle.stall_after_ms' <<<"$ZOUT")"
db_sql "CREATE TABLE t2 (id integer PRIMARY KEY); INSERT INTO t2 SELECT generate_series(1, 2000)" >/dev/null
zdm_run advance bf2
t_rc "expand bf2" 0
zdm_bg "$T_DIR/w2" backfill bf2
job=$ZBG_JOB
pid=$ZBG_PID
t_wait_for "the worker commits batches" 30 "[ \"\$(db_sql 'SELECT count(*) FROM t2 WHERE v IS NOT NULL')\" -gt 100 ]"
pg_session_start locker2
pg_session_send locker2 "BEGIN; LOCK TABLE t2 IN SHARE MODE; SELECT 'locked';"
t_wait_for "the other session holds the lock" 10 "grep -q locked '$T_DIR/locker2.log'"
# Blocked now, and not about to give up (its lock timeout is 5 s): the
# signal lands while the batch waits.
blocked="SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND state = 'active'
           AND query NOT LIKE '%pg_stat_activity%' AND now() - query_start < interval '2 seconds'"
t_wait_for "a batch waits for the lock" 60 "[ \"\$(db_sql \"$blocked\")\" -ge 1 ]"
cancels() { pg_log | grep -c 'canceling statement due to user request'; }
before=$(cancels)
kill -TERM "$pid"
t_wait_exit "$job" 30
t_eq "first SIGTERM: exit 4" 4 "$WAIT_RC"
t_eq "PostgreSQL: the batch was cancelled (one more 'due to user request'), not timed out" \
    $((before + 1)) "$(cancels)"
pg_session_end locker2
zdm_run backfill bf2
t_rc "the range resumes: a worker finishes the backfill" 0
t_eq "every row converted" 0 "$(db_sql 'SELECT count(*) FROM t2 WHERE v IS NULL')"

t_finish
