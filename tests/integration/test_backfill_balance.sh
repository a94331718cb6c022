#!/usr/bin/env bash
# test_backfill_balance.sh -- the key ranges are cut by the rows they hold
# (PostgreSQL: the key's statistics; text and composite keys: a sample of
# the key), not by equal widths of the key span; SQLite's integer keys at
# equal widths (one writer: balance buys nothing there).
# 40,000 keys 1..40000 plus 400 near 10^12: equal widths put ~99 % of the
# rows in the first of 4 ranges (a second worker has nothing to do); split
# by quantiles no range holds more than 40 %.  Every row converted once.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init backfill_balance

bal_plan='
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
max_latency_factor = 0'

# bal_check RANGES_TABLE [ROWS]: 4 ranges, each row once, none over 40 %
bal_check() {
    local rows=${2:-40400}
    t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NULL OR b <> a")"
    t_eq "4 ranges ($rows rows / 10,000)" 4 "$(db_sql "SELECT count(*) FROM $1 WHERE plan_id = 'p_bal'")"
    t_eq "each row counted once" "$rows" "$(db_sql "SELECT sum(rows_done) FROM $1 WHERE plan_id = 'p_bal'")"
    local share
    share=$(db_sql "SELECT CAST(max(rows_done) * 100 / sum(rows_done) AS integer) FROM $1 WHERE plan_id = 'p_bal'")
    t_note "largest range: $share % of the rows"
    T_CHECKS=$((T_CHECKS + 1))
    if [ "${share:-100}" -gt 40 ]; then
        _t_fail "largest range holds $share % of the rows (> 40 %)" \
            "$(db_sql "SELECT range_id, lo, hi, rows_done FROM $1 WHERE plan_id = 'p_bal' ORDER BY range_id")"
    fi
}

t_section "SQLite, skewed integer keys: equal widths (one writer: no sample scan), every row once"
db_new sqlite bal
plans_empty
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
db_sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000) INSERT INTO t SELECT i, i FROM n" >/dev/null
db_sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) INSERT INTO t SELECT 1000000000000 + i, i FROM n" >/dev/null
plan_write p_bal "$bal_plan"
zdm_run advance p_bal
t_rc "expand" 0
zdm_run advance p_bal
t_rc "backfill" 0
# One writer at a time: workers take turns whatever their ranges hold, so
# the ranges are cut at equal widths without reading the table (a sample
# would scan it); a second worker still gets half of a busy range
# (test_backfill_split.sh).
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NULL OR b <> a")"
t_eq "4 ranges (40,400 rows / 10,000)" 4 "$(db_sql "SELECT count(*) FROM zdm_ranges WHERE plan_id = 'p_bal'")"
t_eq "each row counted once" 40400 "$(db_sql "SELECT sum(rows_done) FROM zdm_ranges WHERE plan_id = 'p_bal'")"
t_eq "the first of equal widths holds the dense keys" 40000 \
    "$(db_sql "SELECT rows_done FROM zdm_ranges WHERE plan_id = 'p_bal' AND range_id = 0")"

# fixed_batches NAME ROWS: SQLite, keys 1..ROWS, batches of exactly 7,000
# rows; expand and backfill
fixed_batches() {
    db_new sqlite "$1"
    plans_empty
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) INSERT INTO t SELECT i, i FROM n" >/dev/null
    plan_write p_bal "$bal_plan
batch_size = 7000
max_batch_size = 7000
target_batch_ms = 0"
    zdm_run advance p_bal
    t_rc "expand" 0
    zdm_run advance p_bal
    t_rc "backfill" 0
    t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NULL OR b <> a")"
}

t_section "SQLite, ranges larger than the largest batch hold a whole number of batches"
# 40,000 keys, batches of 7,000: ranges of 10,000 would take a full batch
# and a 3,000-row one each (8 batches); of 14,000 they take two full ones
# (6 batches, the last range 12,000 rows).  Each range a claim and each
# batch a commit: on SQLite 1M rows took 39 batches where 30 do.
fixed_batches bal_al 40000
t_eq "3 ranges of 14,000 keys (two batches each), not 4 of 10,000" "3|14000" \
    "$(db_sql "SELECT count(*), max(CAST(json_extract(hi, '\$[0]') AS integer) - COALESCE(CAST(json_extract(lo, '\$[0]') AS integer), 0)) FROM zdm_ranges WHERE plan_id = 'p_bal'")"
t_eq "6 batches, none empty" "6|40000" \
    "$(db_sql "SELECT sum(batches), sum(rows_done) FROM zdm_ranges WHERE plan_id = 'p_bal'")"

# A batch that ends on its range's last key ends the range: 7,000 keys in
# one range, one batch of 7,000 (not a second, empty one to find out).
fixed_batches bal_one 7000
t_eq "one range, one batch" "1|1|7000" \
    "$(db_sql "SELECT count(*), sum(batches), sum(rows_done) FROM zdm_ranges WHERE plan_id = 'p_bal'")"

# other_keys DIALECT: a composite (text, integer) key and a text key of
# 40,000 rows, skewed (most rows under one tenant prefix): 4 ranges cut at
# sampled keys, none over 40 % of the rows, each row converted once
other_keys() {
    local d=$1 gen
    if [ "$d" = pg ]; then
        gen="generate_series(1, 40000) g(i)"
    else
        gen="(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 40000) SELECT i FROM c) g"
    fi
    local rt=zdm_ranges
    [ "$d" = pg ] && rt=zdm.ranges
    t_section "$d, composite (text, integer) key: ranges at sampled keys"
    db_new "$d" bal_ck
    plans_empty
    db_sql "CREATE TABLE t (tenant text NOT NULL, id integer NOT NULL, a integer, PRIMARY KEY (tenant, id))" >/dev/null
    # 99 % of the rows under tenant 'big', the rest spread over 400 tenants
    db_sql "INSERT INTO t SELECT CASE WHEN i % 100 = 0 THEN 'z' || (i % 400) ELSE 'big' END, i, i FROM $gen" >/dev/null
    [ "$d" = pg ] && db_sql "ANALYZE t" >/dev/null
    plan_write p_bal "$bal_plan"
    zdm_run advance p_bal
    t_rc "expand" 0
    zdm_run advance p_bal
    t_rc "backfill" 0
    bal_check "$rt" 40000
    t_section "$d, text key: ranges at sampled keys"
    db_new "$d" bal_tk
    plans_empty
    db_sql "CREATE TABLE t (code text PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO t SELECT 'k' || lpad(i::text, 6, '0'), i FROM $gen" >/dev/null 2>&1 ||
        db_sql "INSERT INTO t SELECT 'k' || substr('000000' || i, -6), i FROM $gen" >/dev/null
    [ "$d" = pg ] && db_sql "ANALYZE t" >/dev/null
    plan_write p_bal "$bal_plan"
    zdm_run advance p_bal
    t_rc "expand" 0
    zdm_run advance p_bal
    t_rc "backfill" 0
    bal_check "$rt" 40000
}
other_keys sqlite

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped the PostgreSQL part"
    t_finish
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
bal_check zdm.ranges
other_keys pg
t_finish
