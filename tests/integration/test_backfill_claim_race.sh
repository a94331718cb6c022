#!/usr/bin/env bash
# test_backfill_claim_race.sh -- a worker never leaves while a range that
# no live worker holds is still open (PostgreSQL).  Two workers that finish
# their ranges at once both claim the last free range; the claim passes
# over a range row another claim has locked (SKIP LOCKED), so the loser
# finds no free range, and, reading without waiting, no busy range to split
# either: it used to stop there, leaving the winner a whole range alone
# (or, had that claim rolled back, the range to nobody: the plan stayed
# expanded).  Here a session holds the second of two ranges' row locked,
# as an uncommitted claim does, until the worker has finished the first
# range and looked for more for a second, then lets go without claiming
# it: the worker waits for the lock, finds the range free, converts it and
# finishes the plan.  No timing is asserted: the lock is held until the
# first range is done (watched), then 1 s more.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init backfill_claim_race

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    T_SKIPPED="PostgreSQL (no server binaries)"
    t_finish
fi
t_pg_start
t_section "a range locked by a claim in flight is waited for, not left behind"
db_new pg claim_race
plans_empty
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer, b integer)" >/dev/null
db_sql "INSERT INTO t (id, a) SELECT i, i FROM generate_series(1, 20000) i" >/dev/null
db_sql "ANALYZE t" >/dev/null
plan_write p_race '
[[expand.steps]]
sql  = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "t"
where = "b IS NULL"
set.b = "a"
[backfill.throttle]
batch_size = 1000
target_batch_ms = 0
max_rows_per_second = 4000
max_latency_factor = 0'
zdm_run advance p_race
t_rc "expand" 0
"$ZDM" --db "$T_DB" --plans "$T_PLANS" backfill p_race >"$T_DIR/a.out" 2>"$T_DIR/a.err" &
a=$!
t_wait_for "the worker split the keys" 60 \
    "[ \"\$(db_sql \"SELECT count(*) FROM zdm.ranges WHERE plan_id = 'p_race'\")\" -ge 2 ]"
t_eq "two ranges (20,000 rows)" 2 "$(db_sql "SELECT count(*) FROM zdm.ranges WHERE plan_id = 'p_race'")"
# The lock a claim in flight holds on the last range's row: taken before
# the worker is done with the first range (4,000 rows/s: 2.5 s), held until
# it is, and a second more, then let go with nothing changed (as a claim
# that rolled back; a committed one would make the range the other
# worker's, to split).
pg_psql -d "$T_PG_URL" -q -c "DO \$\$
BEGIN
    PERFORM 1 FROM zdm.ranges WHERE plan_id = 'p_race' AND range_id = 1 FOR UPDATE;
    FOR i IN 1..600 LOOP
        EXIT WHEN (SELECT done FROM zdm.ranges WHERE plan_id = 'p_race' AND range_id = 0) = 1;
        PERFORM pg_sleep(0.1);
    END LOOP;
    PERFORM pg_sleep(1);
END
\$\$" >"$T_DIR/lock.out" 2>&1 &
locker=$!
wait "$a"
arc=$?
wait "$locker"
t_eq "locker exit" 0 "$?"
t_eq "worker exit" 0 "$arc"
t_eq "the first range was done while the second was locked" 1 \
    "$(db_sql "SELECT done FROM zdm.ranges WHERE plan_id = 'p_race' AND range_id = 0")"
t_lacks "the worker did not leave a range behind" "no range left for this worker" "$(cat "$T_DIR/a.err")"
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"
t_eq "phase" backfilled "$(zdm_phase_of p_race)"
t_finish
