#!/usr/bin/env bash
# test_backfill_finish.sh -- PostgreSQL: workers that run out of ranges
# together run the final check (a scan of the whole table) once, not once
# each: the first holds the backfills row through its check and commit,
# the next waits there and finds the plan finished.
# The set expression calls a function that, outside a batch (the
# backfill's mark unset: the final check), records its backend and sleeps
# a little per row, so the check lasts ~2 s, longer than a waiting
# worker's recheck (1 s): without the serialization both workers check.
# Two `zdm backfill` commands (a --workers parent's workers do not wait for
# each other's ranges).  Every row converted, the plan backfilled, both
# workers exit 0.
# No timing is asserted.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init backfill_finish

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    exit 77
fi
t_pg_start

t_section "two workers finishing together: one final check"
db_new pg fin
plans_empty
db_sql "CREATE TABLE t (id bigint PRIMARY KEY, a integer, b integer)" >/dev/null
db_sql "INSERT INTO t SELECT i, i, NULL FROM generate_series(1, 20000) i" >/dev/null
db_sql "ANALYZE t" >/dev/null
db_sql "CREATE TABLE checks (pid integer PRIMARY KEY)" >/dev/null
db_sql "CREATE FUNCTION slow_b(a integer) RETURNS integer LANGUAGE plpgsql AS \$\$
BEGIN
  IF current_setting('zdm.backfill', true) IS DISTINCT FROM 'p' THEN
    INSERT INTO checks VALUES (pg_backend_pid()) ON CONFLICT DO NOTHING;
    PERFORM pg_sleep(0.0001);
  END IF;
  RETURN a;
END \$\$" >/dev/null
plan_write p '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN IF NOT EXISTS b integer"
down = "SELECT 1"
[backfill]
table = "t"
set.b = "slow_b(a)"
[backfill.throttle]
max_latency_factor = 0'
zdm_run advance p
t_rc "expand" 0
# two commands (as on two hosts): each waits for the other's range
zdm_bg "$T_DIR/w1" backfill p
j1=$ZBG_JOB
zdm_bg "$T_DIR/w2" backfill p
j2=$ZBG_JOB
rc1=0 rc2=0
wait "$j1" || rc1=$?
wait "$j2" || rc2=$?
zdm_bg_collect "$T_DIR/w1"
t_eq "worker 1 exit" 0 "$rc1"
zdm_bg_collect "$T_DIR/w2"
t_eq "worker 2 exit" 0 "$rc2"
t_eq "plan backfilled" "backfilled" "$(db_phase p)"
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"
t_eq "each row counted once" 20000 "$(db_sql "SELECT sum(rows_done) FROM zdm.ranges WHERE plan_id = 'p'")"
t_eq "the final check ran in one backend" 1 "$(db_sql "SELECT count(*) FROM checks")"

t_finish
