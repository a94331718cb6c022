#!/usr/bin/env bash
# test_backfill_keys.sh -- the keys a backfill walks, on SQLite and
# PostgreSQL: a composite primary key (row comparison), sparse integer keys
# with a huge gap, a text key (one range), a text key of digits in many
# ranges ('1'..'120000': split and walked in text order, never by
# numbers, or keys of one range fall in another too and are converted
# twice), a uuid key (PostgreSQL), a table without a primary key (SQLite:
# rowid), and a named key
# backed by a unique index.  Each converts every row exactly once: the set
# expression is n = n + 1 on rows that start at 0.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init backfill_keys

# key_case DIALECT ID CREATE INSERT [KEY]
key_case() {
    local d=$1 id=$2 create=$3 insert=$4 key=${5:-}
    t_section "$d: $id"
    db_new "$d" "k_$id"
    plans_empty
    plan_write "${id}_base" "
[[expand.steps]]
sql = \"\"\"$create\"\"\"
down = \"DROP TABLE t_$id\"
"
    plan_write "${id}_bf" "
requires = [\"${id}_base\"]
[[expand.steps]]
sql = \"SELECT 1\"
down = \"SELECT 1\"
[backfill]
table = \"t_$id\"
${key:+key = $key}
set.n = \"n + 1\"
dual_write = false
[backfill.throttle]
batch_size = ${KEY_BATCH:-97}
target_batch_ms = 0
"
    zdm_complete "${id}_base"
    db_sql "$insert" >/dev/null
    local rows
    rows=$(db_sql "SELECT count(*) FROM t_$id")
    zdm_run advance "${id}_bf"
    t_rc "$d $id: expand" 0
    zdm_run -v advance "${id}_bf"
    t_rc "$d $id: backfill" 0
    t_eq "$d $id: every row converted once" "$rows|0" \
        "$(db_sql "SELECT sum(CASE WHEN n = 1 THEN 1 ELSE 0 END), sum(CASE WHEN n <> 1 THEN 1 ELSE 0 END) FROM t_$id")"
    t_eq "$d $id: phase" backfilled "$(zdm_phase_of "${id}_bf")"
}

run_cases() {
    local d=$1 gen
    if [ "$d" = pg ]; then
        gen="generate_series(1, 2000) g(i)"
    else
        gen="(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000) SELECT i FROM c) g"
    fi
    key_case "$d" composite \
        "CREATE TABLE t_composite (tenant integer NOT NULL, id integer NOT NULL, n integer NOT NULL DEFAULT 0, PRIMARY KEY (tenant, id))" \
        "INSERT INTO t_composite (tenant, id) SELECT i % 7, i FROM $gen"
    # sparse integer keys with one huge gap: PostgreSQL walks integer keys
    # by spans of key values and must jump the gaps, not crawl them
    key_case "$d" sparse \
        "CREATE TABLE t_sparse (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0)" \
        "INSERT INTO t_sparse (id) SELECT CASE WHEN i % 2 = 0 THEN i * 1000 ELSE i * 1000 + 5000000000 END FROM $gen"
    # ... in batches of about their size (97 rows), not of 97 key values
    # (a row or two each on PostgreSQL: 2000 batches for 2000 rows, which
    # max_rows_per_second and latency pacing count as 97 rows each)
    t_cmp "$d sparse: batches for 2000 rows of batch_size 97" \
        "$(db_sql "SELECT sum(batches) FROM $(zdm_tbl ranges) WHERE plan_id = 'sparse_bf'")" -lt 200
    key_case "$d" text \
        "CREATE TABLE t_text (code text PRIMARY KEY, n integer NOT NULL DEFAULT 0)" \
        "INSERT INTO t_text (code) SELECT 'k' || i FROM $gen"
    # a text key of digits orders as text ('10' < '9'): in 16 ranges cut
    # at numbers ('6250' > '12500' as text) a key fell in two ranges
    # (n = 2), and walked by spans of numbers PostgreSQL left 38,667 of
    # 40,000 rows
    local num big
    if [ "$d" = pg ]; then
        num="i::text" big="generate_series(1, 120000) g(i)"
    else
        num="CAST(i AS text)"
        big="(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 120000) SELECT i FROM c) g"
    fi
    KEY_BATCH=5000 key_case "$d" textnum \
        "CREATE TABLE t_textnum (code text PRIMARY KEY, n integer NOT NULL DEFAULT 0)" \
        "INSERT INTO t_textnum (code) SELECT $num FROM $big"
    # a uuid key has no min()/max(): the preflight checked the integer
    # key's span statements for it and refused every plan on the table
    [ "$d" = pg ] && key_case "$d" uuid \
        "CREATE TABLE t_uuid (id uuid PRIMARY KEY, n integer NOT NULL DEFAULT 0)" \
        "INSERT INTO t_uuid (id) SELECT gen_random_uuid() FROM $gen"
    key_case "$d" named \
        "CREATE TABLE t_named (a integer NOT NULL, b text NOT NULL, n integer NOT NULL DEFAULT 0); CREATE UNIQUE INDEX t_named_ab ON t_named (a, b)" \
        "INSERT INTO t_named (a, b) SELECT i / 3, 'x' || i FROM $gen" '["a", "b"]'
}

# SQLite: a table without a primary key is walked by rowid.
rowid_case() {
    key_case sqlite rowid \
        "CREATE TABLE t_rowid (label text, n integer NOT NULL DEFAULT 0)" \
        "INSERT INTO t_rowid (label) SELECT 'r' || i FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1500) SELECT i FROM c)"
}

run_cases sqlite
rowid_case
t_with_pg run_cases pg
t_finish
