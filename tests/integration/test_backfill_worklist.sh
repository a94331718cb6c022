#!/usr/bin/env bash
# test_backfill_worklist.sh -- PostgreSQL: a `where` that costs a scan per
# statement (de-duplication: a subquery over the whole table) makes the
# worker choose the work-list strategy and say so; a cheap `where` keeps
# key ranges.  With the work list:
#  * every matching row is converted exactly once (rows_done = rows
#    changed), rows outside `where` are untouched;
#  * a row written after the keys were collected is checked against
#    `where` again: the plan's probe_query (it runs before every batch)
#    moves row 29901 out of its duplicate pair once the first batch has
#    committed, and touches row 29801 without changing it (the in-place
#    trigger converts it then); 29901 must stay untouched (by key alone it
#    would be converted), 29801 converted once, by the trigger.
# No timing is asserted.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init backfill_worklist

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    exit 77
fi
t_pg_start

t_section "costly where: the work list"
db_new pg wl
plans_empty
db_sql "CREATE TABLE d (id bigint PRIMARY KEY, k bigint NOT NULL, fixed text)" >/dev/null
# 30,000 rows; ids 100a and 100a + 1 share k = -a: 598 duplicates (ids 1
# and 30000 have no partner)
db_sql "INSERT INTO d SELECT i, CASE WHEN i % 100 < 2 THEN -(i / 100) ELSE i END, NULL FROM generate_series(1, 30000) i" >/dev/null
db_sql "UPDATE d SET fixed = 'keep' WHERE id = 15000" >/dev/null  # a duplicate outside where
db_sql "CREATE INDEX ON d (k)" >/dev/null
db_sql "ANALYZE d" >/dev/null
plan_write p_wl '
[[expand.steps]]
sql  = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "d"
where = "fixed IS NULL AND k IN (SELECT k FROM d GROUP BY k HAVING count(*) > 1)"
set.fixed = "'"'dup'"'"
[backfill.throttle]
batch_size = 50
target_batch_ms = 0
max_latency_factor = 100
probe_query = "WITH started AS (SELECT 1 FROM d WHERE fixed = '"'dup'"' LIMIT 1), touch AS (UPDATE d SET k = k WHERE id = 29801 AND EXISTS (SELECT 1 FROM started) RETURNING 1) UPDATE d SET k = k + 1000000000 WHERE id = 29901 AND EXISTS (SELECT 1 FROM started)"'
zdm_run advance p_wl
t_rc "expand" 0
zdm_run advance p_wl
t_rc "backfill" 0
t_match "the strategy is printed: work list" "strategy: work list" "$ZERR$ZOUT"
t_match "rows written since the collection re-checked" "done by work list: [0-9]+ collection\(s\) of its matching keys, [1-9][0-9]* row\(s\) written" "$ZERR$ZOUT"
t_eq "matching rows converted (598 - the kept one - the one moved out)" 596 "$(db_sql "SELECT count(*) FROM d WHERE fixed = 'dup'")"
# 29801 was converted by the in-place trigger when the probe wrote it
t_eq "each converted once (rows_done: all but 29801)" 595 "$(db_sql "SELECT sum(rows_done) FROM zdm.ranges WHERE plan_id = 'p_wl'")"
t_eq "rows outside where untouched" 0 "$(db_sql "SELECT count(*) FROM d WHERE id % 100 >= 2 AND fixed IS NOT NULL")"
t_eq "the row moved out of its pair after the collection: untouched" "" "$(db_sql "SELECT fixed FROM d WHERE id = 29901")"
t_eq "the row touched but still a duplicate: converted" "dup" "$(db_sql "SELECT fixed FROM d WHERE id = 29801")"
t_eq "the kept duplicate untouched" "keep" "$(db_sql "SELECT fixed FROM d WHERE id = 15000")"
est=$(grep -o 'started: about [0-9]* rows of d to convert' <<<"$ZERR$ZOUT" | grep -o '[0-9]*' | head -n 1)
T_CHECKS=$((T_CHECKS + 1))
if [ -z "$est" ] || [ "$est" -ge 30000 ]; then
    _t_fail "progress counts the rows where matches (the planner's estimate), not the table's 30000" "estimate: ${est:-none}"
fi

t_section "cheap where: key ranges"
db_sql "CREATE TABLE c (id bigint PRIMARY KEY, a integer, b integer)" >/dev/null
db_sql "INSERT INTO c SELECT i, i, NULL FROM generate_series(1, 5000) i" >/dev/null
db_sql "ANALYZE c" >/dev/null
plan_write p_cheap '
[[expand.steps]]
sql  = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "c"
where = "b IS NULL"
set.b = "a"
[backfill.throttle]
max_latency_factor = 0'
zdm_run advance p_cheap
t_rc "expand" 0
zdm_run advance p_cheap
t_rc "backfill" 0
t_match "the strategy is printed: key ranges" "strategy: key ranges" "$ZERR$ZOUT"
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM c WHERE b IS DISTINCT FROM a")"

t_finish
