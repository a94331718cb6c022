#!/usr/bin/env bash
# test_latency_pgss.sh -- PostgreSQL: where pg_stat_statements is loaded and
# installed, the latency probe is also the mean execution time of the
# application's own statements, not only a round trip.  The application
# here runs statements that each take at least 300 ms (pg_sleep), so the
# idle baseline the worker logs is at least 50 ms (a round trip alone is a
# fraction of a millisecond); zdm's own statements (state tables, the
# backfill's batches: they name zdm) are left out, so after the backfill
# pg_stat_statements holds no zdm statement that was counted.  Without the
# extension the probe is the round trip, as before.  Every row converted.
# No timing is asserted beyond the lower bound pg_sleep guarantees.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init latency_pgss

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    exit 77
fi
if [ ! -f "$(_pg_find_bindir)/../lib/pg_stat_statements.so" ]; then
    t_note "pg_stat_statements is not installed (postgresql-contrib): skipped"
    exit 77
fi
t_pg_start

plan_body='
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
batch_size = 500
target_batch_ms = 0'

t_section "without pg_stat_statements: the round trip"
db_new pg lat_plain
plans_empty
db_sql "CREATE TABLE t (id bigint PRIMARY KEY, a integer)" >/dev/null
db_sql "INSERT INTO t SELECT i, i FROM generate_series(1, 2000) i" >/dev/null
plan_write p_plain "$plan_body"
zdm_run advance p_plain
t_rc "expand" 0
zdm_run advance p_plain
t_rc "backfill" 0
base=$(grep -o 'latency probe idle: [0-9.]* ms' <<<"$ZERR$ZOUT" | grep -o '[0-9.]*' | head -n 1)
t_ne "the baseline is logged" "" "$base"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"

t_section "with pg_stat_statements: the application's statements"
pg_psql -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
if ! _pg_as_owner "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -l "$_PG_DIR/server.log" -m fast -w -t 60 restart \
        >"$T_DIR/pg_ctl.log" 2>&1; then
    _t_fail "pg_ctl restart with pg_stat_statements failed" "$(cat "$T_DIR/pg_ctl.log")"
fi
db_new pg lat_pgss
plans_empty
db_sql "CREATE EXTENSION pg_stat_statements" >/dev/null
db_sql "CREATE TABLE t (id bigint PRIMARY KEY, a integer)" >/dev/null
db_sql "INSERT INTO t SELECT i, i FROM generate_series(1, 2000) i" >/dev/null
plan_write p_pgss "$plan_body"
zdm_run advance p_pgss
t_rc "expand" 0
# the application: 10 statements of at least 300 ms each.  Counted with
# them: the worker's own few statements that do not name zdm (BEGIN,
# COMMIT...), far fewer than 50, so the mean stays over 50 ms.
db_sql "SELECT pg_stat_statements_reset()" >/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do db_sql "SELECT pg_sleep(0.3)" >/dev/null; done
zdm_run advance p_pgss
t_rc "backfill" 0
base=$(grep -o 'latency probe idle: [0-9.]* ms' <<<"$ZERR$ZOUT" | grep -o '[0-9.]*' | head -n 1)
t_ne "the baseline is logged" "" "$base"
if awk -v b="${base:-0}" 'BEGIN { exit !(b >= 50) }'; then t_ok; else
    _t_fail "the baseline is the application's statements' mean (>= 50 ms), not a round trip" "baseline $base ms"
fi
t_has "the log names where the baseline comes from" "pg_stat_statements" "$ZERR$ZOUT"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"
# the backfill's batches update t; they carry zdm's comment, so the
# probe's filter (text not naming zdm) leaves them out
t_eq "no batch counted as the application's" "0" \
    "$(db_sql "SELECT count(*) FROM pg_stat_statements WHERE query ILIKE 'UPDATE%t%SET%' AND query NOT LIKE '%zdm%'")"

t_finish
