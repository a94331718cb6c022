#!/usr/bin/env bash
# test_pg_paced_scans.sh -- while latency pacing is on, the worker's own
# scans of the whole table are never parallel (PostgreSQL; dialect.h
# paced_session): the final check planned as a Parallel Seq Scan took
# three processes on every core of a 2-core server at the end of every
# backfill.  The server logs every plan (auto_explain); the test makes
# parallel plans cheap (parallel_setup_cost = 0 ...) so that the final
# check of a small table would be one unless the session forbids it:
#  * defaults (paced): the final check's plan has no Gather;
#  * unthrottled (max_latency_factor = 0): it has one -- the server's
#    setting is back, and the check above can see a parallel plan;
#  * every row converted in both.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init pg_paced_scans

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    t_finish
    exit $?
fi
t_pg_start
if [ ! -e "$(pg_config --pkglibdir 2>/dev/null || echo /nonexistent)/auto_explain.so" ] &&
    ! ls /usr/lib/postgresql/*/lib/auto_explain.so >/dev/null 2>&1; then
    t_note "no auto_explain module: skipped"
    t_finish
    exit $?
fi

db_new pg scans
pg_psql -d "$T_DB" -c "LOAD 'auto_explain'" \
    -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER SYSTEM SET auto_explain.log_min_duration = 0" \
    -c "ALTER SYSTEM SET parallel_setup_cost = 0" -c "ALTER SYSTEM SET parallel_tuple_cost = 0" \
    -c "ALTER SYSTEM SET min_parallel_table_scan_size = 0" -c "ALTER SYSTEM SET max_parallel_workers_per_gather = 2" \
    -c "SELECT pg_reload_conf()" >/dev/null

# final_plan TABLE: the plan auto_explain logged for the final check of TABLE
final_plan() {
    pg_log | awk -v q="Query Text: SELECT count(*) FROM \"$1\" WHERE" '
        index($0, q) { on = 1; next }
        on && /^[0-9][0-9][0-9][0-9]-/ { on = 0 }
        on { print }'
}

for t in paced unthrottled; do
    t_section "$t: the final check's plan"
    plans_empty
    db_sql "CREATE TABLE $t (id integer PRIMARY KEY, a integer NOT NULL)" >/dev/null
    db_sql "INSERT INTO $t SELECT i, i FROM generate_series(1, 5000) i" >/dev/null
    db_sql "ANALYZE $t" >/dev/null
    extra=""
    [ "$t" = unthrottled ] && extra="max_latency_factor = 0"
    plan_write "p_$t" "
[[expand.steps]]
sql  = \"ALTER TABLE $t ADD COLUMN b integer\"
down = \"ALTER TABLE $t DROP COLUMN b\"
[backfill]
table = \"$t\"
where = \"b IS NULL\"
set.b = \"a + 1\"
[backfill.throttle]
$extra"
    zdm_run advance "p_$t"
    t_rc "expand" 0
    zdm_run advance "p_$t"
    t_rc "backfill" 0
    t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM $t WHERE b IS DISTINCT FROM a + 1")"
    final_plan "$t" >"$T_DIR/plan_$t.txt"
    t_ne "the final check's plan was logged" "0" "$(grep -c . "$T_DIR/plan_$t.txt")"
    if [ "$t" = paced ]; then
        t_eq "no parallel workers in it" "0" "$(grep -c 'Gather' "$T_DIR/plan_$t.txt")"
    else
        t_ne "parallel workers in it" "0" "$(grep -c 'Gather' "$T_DIR/plan_$t.txt")"
    fi
done

t_finish
