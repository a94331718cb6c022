#!/usr/bin/env bash
# test_backfill_balance.sh -- PostgreSQL: the key ranges are cut by the rows
# they hold (the key's statistics), not by equal widths of the key span.
# 40,000 keys 1..40000 plus 400 near 10^12: equal widths put ~99 % of the
# rows in the first of 4 ranges (a second worker has nothing to do); split
# by quantiles no range holds more than 40 %.  Every row converted once.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init backfill_balance

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    exit 77
fi
t_pg_start
t_section "skewed integer keys: ranges of about equal rows"
db_new pg bal
plans_empty
db_sql "CREATE TABLE t (id bigint PRIMARY KEY, a integer)" >/dev/null
db_sql "INSERT INTO t SELECT i, i FROM generate_series(1, 40000) i" >/dev/null
db_sql "INSERT INTO t SELECT 1000000000000 + i, i FROM generate_series(1, 400) i" >/dev/null
db_sql "ANALYZE t" >/dev/null
plan_write p_bal '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
max_latency_factor = 0'
zdm_run advance p_bal
t_rc "expand" 0
zdm_run advance p_bal
t_rc "backfill" 0
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"
ranges=$(db_sql "SELECT count(*) FROM zdm.ranges WHERE plan_id = 'p_bal'")
t_eq "4 ranges (40,400 rows / 10,000)" 4 "$ranges"
t_eq "each row counted once" 40400 "$(db_sql "SELECT sum(rows_done) FROM zdm.ranges WHERE plan_id = 'p_bal'")"
share=$(db_sql "SELECT (max(rows_done) * 100 / sum(rows_done))::integer FROM zdm.ranges WHERE plan_id = 'p_bal'")
t_note "largest range: $share % of the rows"
T_CHECKS=$((T_CHECKS + 1))
if [ "${share:-100}" -gt 40 ]; then
    _t_fail "largest range holds $share % of the rows (> 40 %)" "$(db_sql "SELECT range_id, lo, hi, rows_done FROM zdm.ranges WHERE plan_id = 'p_bal' ORDER BY range_id")"
fi
t_finish
