#!/usr/bin/env bash
# test_sqlite_backfill_shape.sh -- what makes SQLite's backfill cheap must
# not cost a row:
#  - the forward UPDATE trigger of a plan without sources fires on every
#    column but the targets, so the backfill's own UPDATE (targets only)
#    compiles no trigger program at all (EXPLAIN shows no Program opcode),
#    while an application UPDATE of any other column still converts the
#    row, before and after the backfill;
#  - a batch of the rowid (or the INTEGER PRIMARY KEY that names it, or a
#    table's implicit rowid) is a span of key values converted by one
#    UPDATE, with no peek first (1,000-row batches of ids two apart
#    convert 500 rows each); any other key is walked by the next
#    batch_size keys in key order (one peek that streams them through
#    max()/count()): an INT PRIMARY KEY has its own batches of 1,000 rows,
#    a TEXT key holding '1'..'40000' (text order: '10000' < '9000') has
#    every row converted exactly once, and sparse integer keys (ids 100,003
#    apart) take a few batches, not one per row (a look at the keys'
#    spread every few spans);
#  - a batch whose set calls a function keeps its statement journal (WAL)
#    in memory (the worker's temp_store): no temporary file is opened for
#    it (strace, when there is one);
#  - the rows to convert are estimated from rowids drawn at random (no
#    scan), within a few percent, and counted when the keys are too sparse
#    for the draws to hit rows;
#  - a one-way plan's bodies write no zdm_guard row (no trigger of the plan
#    can fire from them): an application UPDATE of a source, or an INSERT,
#    changes its row and the trigger's UPDATE only (total_changes() + 2,
#    not + 4), with recursive_triggers on too, and the row is converted;
#    a two-way plan keeps the row (its reverse trigger would otherwise
#    rewrite what the application wrote: '007' -> 7 -> '7');
#  - a paced worker checkpoints the WAL after each batch, so no commit of
#    the application copies the worker's pages into the database file
#    (the WAL never reaches the 1000 pages of SQLite's autocheckpoint).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_backfill_shape

# programs DML: how many trigger programs SQLite compiles into DML
programs() {
    db_sql "EXPLAIN $1" | awk '$2 == "Program"' | wc -l | tr -d ' '
}

t_section "one-way without sources: the backfill's UPDATE fires no trigger, the application's do"
db_new sqlite shape
plans_empty
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a text NOT NULL, n integer)" >/dev/null
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
        INSERT INTO t SELECT i, 'v' || i, 0 FROM c" >/dev/null
plan_write p_shape '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN u text"
down = "ALTER TABLE t DROP COLUMN u"
[backfill]
table = "t"
set.u = "upper(a)"
[backfill.throttle]
max_latency_factor = 0'
zdm_run advance p_shape
t_rc "expand (installs the triggers)" 0
t_eq "a forward UPDATE trigger exists" 1 \
    "$(db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'zdm_dw_p_shape_fu'")"
# the statement the backfill runs: it writes the targets only
t_eq "trigger programs in the backfill's UPDATE" 0 "$(programs "UPDATE t SET u = (upper(a)) WHERE id > 0 AND id <= 100")"
t_ne "trigger programs in an UPDATE of a source" 0 "$(programs "UPDATE t SET a = 'x' WHERE id = 1")"
t_ne "trigger programs in an UPDATE of another column" 0 "$(programs "UPDATE t SET n = 1 WHERE id = 1")"
# the application before the backfill: a source, another column, the target
db_sql "UPDATE t SET a = 'new1' WHERE id = 1" >/dev/null
db_sql "UPDATE t SET n = 7 WHERE id = 2" >/dev/null
db_sql "UPDATE t SET u = 'mine' WHERE id = 3" >/dev/null
t_eq "an UPDATE of a source converts its row" "NEW1" "$(db_sql "SELECT u FROM t WHERE id = 1")"
t_eq "an UPDATE of another column converts its row" "V2" "$(db_sql "SELECT u FROM t WHERE id = 2")"
t_eq "an UPDATE that gives the target keeps it (one-way)" "mine" "$(db_sql "SELECT u FROM t WHERE id = 3")"
t_eq "rows nobody wrote wait for the backfill" "" "$(db_sql "SELECT u FROM t WHERE id = 4")"
zdm_run advance p_shape
t_rc "backfill" 0
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE u IS NOT upper(a)")"
db_sql "UPDATE t SET a = 'late' WHERE id = 10" >/dev/null
t_eq "after the backfill an UPDATE of a source converts its row" "LATE" "$(db_sql "SELECT u FROM t WHERE id = 10")"

# delta SQL...: total_changes() across the statements, in one connection
delta() {
    local sql="SELECT total_changes();"
    for s in "$@"; do sql="$sql $s;"; done
    sql="$sql SELECT total_changes();"
    db_sql "$sql" | awk 'NR == 1 { a = $1 } END { print $1 - a }'
}
# guard_writes SQL: how many rows the statement inserts into zdm_guard
guard_writes() {
    db_sql "CREATE TEMP TABLE gl (n integer);
            CREATE TEMP TRIGGER gl_t AFTER INSERT ON main.zdm_guard BEGIN INSERT INTO gl VALUES (1); END;
            $1; SELECT count(*) FROM gl;" | tail -n 1
}

t_section "one-way: a body writes no guard row, the application's write costs its row and the trigger's UPDATE"
db_new sqlite bare
plans_empty
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a text NOT NULL, n integer)" >/dev/null
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100)
        INSERT INTO t SELECT i, 'v' || i, 0 FROM c" >/dev/null
plan_write p_bare '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN u text"
down = "ALTER TABLE t DROP COLUMN u"
[backfill]
table = "t"
set.u = "upper(a)"
[backfill.dual_write]
sources = ["a"]
[backfill.throttle]
max_latency_factor = 0'
zdm_run advance p_bare
t_rc "expand (installs the triggers)" 0
t_eq "an UPDATE of a source: its row and the trigger's UPDATE" 2 "$(delta "UPDATE t SET a = 'x1' WHERE id = 1")"
t_eq "... converts the row" "X1" "$(db_sql "SELECT u FROM t WHERE id = 1")"
t_eq "with recursive_triggers on: the same two" 2 \
    "$(delta "PRAGMA recursive_triggers = ON" "UPDATE t SET a = 'x2' WHERE id = 2")"
t_eq "... converts the row" "X2" "$(db_sql "SELECT u FROM t WHERE id = 2")"
t_eq "an INSERT: its row and the trigger's UPDATE (which fires no UPDATE trigger)" 2 \
    "$(delta "PRAGMA recursive_triggers = ON" "INSERT INTO t (id, a, n) VALUES (1000, 'ins', 0)")"
t_eq "... converts the row" "INS" "$(db_sql "SELECT u FROM t WHERE id = 1000")"
t_eq "no guard row written by application writes" 0 \
    "$(guard_writes "UPDATE t SET a = 'x3' WHERE id = 3; INSERT INTO t (id, a, n) VALUES (1001, 'i2', 0)")"
t_eq "zdm_guard empty" 0 "$(db_sql "SELECT count(*) FROM zdm_guard")"
zdm_run advance p_bare
t_rc "backfill" 0
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE u IS NOT upper(a)")"

t_section "two-way: the bodies keep the guard row, the reverse never rewrites the application's write"
db_new sqlite guarded
plans_empty
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a text)" >/dev/null
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100)
        INSERT INTO t SELECT i, CAST(i AS text) FROM c" >/dev/null
plan_write p_two '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "CAST(a AS integer)"
[backfill.dual_write]
sources = ["a"]
reverse.a = "CAST(b AS text)"
[backfill.throttle]
max_latency_factor = 0'
zdm_run advance p_two
t_rc "expand (installs the triggers)" 0
t_eq "an UPDATE of a source: its row, the guard row in and out, the trigger's UPDATE" 4 \
    "$(delta "PRAGMA recursive_triggers = ON" "UPDATE t SET a = '007' WHERE id = 1")"
t_eq "... the application's value stays (no ping-pong)" "007|7" "$(db_sql "SELECT a, b FROM t WHERE id = 1")"
t_ne "guard rows written by a two-way body" 0 "$(guard_writes "UPDATE t SET a = '008' WHERE id = 2")"
t_eq "... the application's value stays" "008|8" "$(db_sql "SELECT a, b FROM t WHERE id = 2")"
t_eq "zdm_guard empty" 0 "$(db_sql "SELECT count(*) FROM zdm_guard")"

t_section "a TEXT key of integer-looking values: walked by its keys, every row once"
db_new sqlite textkey
plans_empty
db_sql "CREATE TABLE t (code text PRIMARY KEY, a integer)" >/dev/null
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 40000)
        INSERT INTO t SELECT CAST(i AS text), i FROM c" >/dev/null
plan_write p_tk '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
max_latency_factor = 0
batch_size = 500
max_batch_size = 5000'
zdm_run advance p_tk
t_rc "expand" 0
zdm_run advance p_tk
t_rc "backfill" 0
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a")"
t_eq "each row counted once" 40000 "$(db_sql "SELECT sum(rows_done) FROM zdm_ranges WHERE plan_id = 'p_tk'")"

t_section "sparse integer keys: batches of rows, not of key values"
db_new sqlite sparse
plans_empty
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
        INSERT INTO t SELECT i * 100003, i FROM c" >/dev/null
plan_write p_sp '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
max_latency_factor = 0'
zdm_run advance p_sp
t_rc "expand" 0
zdm_run advance p_sp
t_rc "backfill" 0
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a")"
t_eq "each row counted once" 20000 "$(db_sql "SELECT sum(rows_done) FROM zdm_ranges WHERE plan_id = 'p_sp'")"
batches=$(db_sql "SELECT sum(batches) FROM zdm_ranges WHERE plan_id = 'p_sp'")
t_note "$batches batches for 20,000 rows 100,003 apart"
T_CHECKS=$((T_CHECKS + 1))
if [ "${batches:-99999}" -gt 2000 ]; then
    _t_fail "$batches batches: about one per row (batches of key values?)" ""
fi

# span_case NAME COLUMNS LOW HIGH: 20,000 rows of ids two apart, fixed
# batches of 1,000 (target_batch_ms = 0: no pacer); the batches taken
# must lie in LOW..HIGH.  Spans of 1,000 key values hold 500 rows (about
# 36 batches with the looks at the spread); the keys' own batches hold
# 1,000 rows (about 21).
span_case() {
    db_new sqlite "span_$1"
    plans_empty
    db_sql "CREATE TABLE t ($2)" >/dev/null
    db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
            INSERT INTO t (rowid, id, a) SELECT 2 * i, 2 * i, i FROM c" >/dev/null
    plan_write p_span '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
max_latency_factor = 0
batch_size = 1000
max_batch_size = 1000
target_batch_ms = 0'
    zdm_run advance p_span
    t_rc "expand" 0
    zdm_run advance p_span
    t_rc "backfill" 0
    t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a")"
    t_eq "each row counted once" 20000 "$(db_sql "SELECT sum(rows_done) FROM zdm_ranges WHERE plan_id = 'p_span'")"
    local batches
    batches=$(db_sql "SELECT sum(batches) FROM zdm_ranges WHERE plan_id = 'p_span'")
    t_note "$1: $batches batches (expected $3..$4)"
    T_CHECKS=$((T_CHECKS + 1))
    if [ "${batches:-0}" -lt "$3" ] || [ "${batches:-0}" -gt "$4" ]; then
        _t_fail "$1: $batches batches outside $3..$4" ""
    fi
}

t_section "the rowid is walked in spans of key values; any other integer key by its keys"
span_case alias "id integer PRIMARY KEY, a integer" 30 45
span_case implicit_rowid "id integer NOT NULL, a integer" 30 45
span_case int_pk "id INT PRIMARY KEY, a integer" 18 25

t_section "a batch's statement journal stays in memory: no temporary file"
if command -v strace >/dev/null 2>&1; then
    db_new sqlite journal
    plans_empty
    # WAL, as applications run SQLite: no rollback journal holds the pages'
    # old contents, so the statement journal holds every page it writes
    db_sql "PRAGMA journal_mode = WAL" >/dev/null
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a text NOT NULL)" >/dev/null
    db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60000)
            INSERT INTO t SELECT i, 'v' || i FROM c" >/dev/null
    plan_write p_jr '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN u text"
down = "ALTER TABLE t DROP COLUMN u"
[backfill]
table = "t"
where = "u IS NULL"
set.u = "upper(a)"
[backfill.throttle]
max_latency_factor = 0
batch_size = 20000
max_batch_size = 20000
target_batch_ms = 0'
    zdm_run advance p_jr
    t_rc "expand" 0
    # upper() may fail halfway: SQLite keeps the UPDATE's statement
    # journal, which spills past 64 KiB to a file unless temp_store says
    # memory (three 20,000-row batches: 3 files)
    # (LeakSanitizer cannot run under ptrace: leaks are checked elsewhere)
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq -e trace=openat -o "$T_DIR/jr.strace" \
        "$ZDM" --db "$T_DB" --plans "$T_PLANS" -q backfill p_jr >"$T_DIR/jr.out" 2>&1
    t_eq "backfill exit status" 0 "$?"
    t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE u IS NOT upper(a)")"
    t_eq "temporary files opened" 0 "$(grep -c 'etilqs_' "$T_DIR/jr.strace")"
else
    t_note "no strace: skipped"
fi

t_section "a paced worker checkpoints the WAL after its batches: it never grows to the autocheckpoint"
# Without it the WAL grows to 1000 pages, and the commit that crosses
# them -- the application's, as often as not -- copies every page of the
# batches since into the database file and syncs it (20-70 ms).  The WAL
# file keeps its high-water mark, so its size after the backfill says how
# far it grew.
db_new sqlite walckpt
plans_empty
db_sql "PRAGMA journal_mode = WAL" >/dev/null
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a text NOT NULL)" >/dev/null
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60000)
        INSERT INTO t SELECT i, printf('value %040d', i) FROM c" >/dev/null
db_sql "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
# a connection that stays open (as the application's would): the last one
# to close checkpoints the WAL and deletes it
python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
c.execute("SELECT count(*) FROM t").fetchall()
time.sleep(120)' "$T_SQLITE_FILE" &
holder=$!
T_BG_PIDS+=("$holder")
t_wait_for "the holder to open the database" 10 '[ -e "$T_SQLITE_FILE-wal" ]'
plan_write p_ck '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN u text"
down = "ALTER TABLE t DROP COLUMN u"
[backfill]
table = "t"
where = "u IS NULL"
set.u = "upper(a)"
[backfill.throttle]
batch_size = 2000
max_batch_size = 2000'
zdm_run advance p_ck
t_rc "expand" 0
zdm_run advance p_ck
t_rc "backfill (latency pacing on: the default)" 0
t_eq "every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE u IS NOT upper(a)")"
wal_pages=$(($(stat -c %s "$T_SQLITE_FILE-wal") / $(db_sql "PRAGMA page_size")))
t_note "the WAL grew to $wal_pages pages (30 batches of 2,000 rows)"
if [ "$wal_pages" -ge 500 ]; then
    _t_fail "the WAL grew to $wal_pages pages: the batches were not checkpointed after each" ""
fi
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

t_section "the rows to convert, estimated by 2,000 rowids drawn at random; counted where a sample cannot tell"
# est_case ROWS_SQL WHERE LOW HIGH: the plan's total_est after the split
est_case() {
    db_new sqlite "est$RANDOM"
    plans_empty
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "$1" >/dev/null
    plan_write p_est "
[[expand.steps]]
sql  = \"ALTER TABLE t ADD COLUMN b integer\"
down = \"ALTER TABLE t DROP COLUMN b\"
[backfill]
table = \"t\"
where = \"$2\"
set.b = \"a\"
[backfill.throttle]
max_latency_factor = 0"
    zdm_run advance p_est
    t_rc "expand" 0
    zdm_run advance p_est
    t_rc "backfill" 0
    local est
    est=$(db_sql "SELECT total_est FROM zdm_backfills WHERE plan_id = 'p_est'")
    t_note "estimated $est rows to convert (expected $3..$4)"
    T_CHECKS=$((T_CHECKS + 1))
    if [ "${est:-0}" -lt "$3" ] || [ "${est:-0}" -gt "$4" ]; then
        _t_fail "estimate $est outside $3..$4" ""
    fi
    t_eq "every matching row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a AND a % 4 = 0")"
}
# 150,000 dense rowids, a where (naming the table) matching 1 row in 4:
# sampled, within 20 % (about 2,000 draws of a 1-in-4 share: one
# standard error is 3.9 %, so 20 % is five of them -- 10 % failed about
# one run in a hundred; a sample that drew nothing useful is far outside)
est_case "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 150000)
          INSERT INTO t SELECT i, i FROM c" "t.b IS NULL AND t.a % 4 = 0" 30000 45000
# skewed: 150,000 rowids and 100 near 10^12 -- the draws hit no row: counted
est_case "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 150000)
          INSERT INTO t SELECT i * CASE WHEN i > 149900 THEN 6666666 ELSE 1 END, i FROM c" "a % 4 = 0" 37500 37500

t_finish
