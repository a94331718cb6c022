# ops.sh -- shared helpers for test_ops_pg.sh and test_ops_sqlite.sh (bash).
#
#   source "$ZDM_SRC/tests/lib/ops.sh"
#   (start with t_init_dialect NAME DIALECT, from zdm.sh)
#   ops_fresh DBNAME          a fresh database and plans dir: the baseline
#                             plan 0001_base complete, $OPS_N rows in acct
#   ops_plan ID TEXT          writes the plan of the operation under test;
#                             OPS_PLAN is its id
#   ops_catalog FILE          the normalised catalog of the application's
#                             schema: PostgreSQL columns (with attnum, type,
#                             NOT NULL, default), constraints (validated or
#                             not, definition, index), indexes (valid or
#                             not), views, triggers, schemas and functions
#                             outside pg_catalog (zdm's dual-write functions
#                             too); SQLite sqlite_master, one line each.
#                             zdm's own state (schema zdm, tables zdm_*) is
#                             left out.
#   ops_changes BEFORE AFTER  "- line" / "+ line" for each catalog line only
#                             before / only after (sorted): what a plan did
#   ops_to PHASE              zdm advance $OPS_PLAN, asserting exit 0 and
#                             "PLAN: from -> PHASE"
#   app WHO SQL               the application: WHO is old (the plain names)
#                             or new (PostgreSQL: search_path zdm_v_<plan>,
#                             public; SQLite: the same database, new names
#                             used directly); sets APP_RC, APP_OUT, APP_ERR
#   app_ok WHAT WHO SQL       app, asserting success
#   app_eq WHAT WHO EXPECTED SQL   app_ok, asserting the rows
#   app_refused WHAT WHO TEXT SQL  app, asserting failure with TEXT in it
#   ops_backfill_with_writes OLD_FN NEW_FN
#                             advances expanded -> backfilled with a slow
#                             worker in the background while OLD_FN k and
#                             NEW_FN k (k = 1, 2, ...) write as the old and
#                             the new application; asserts writes happened
#                             while the worker ran
#   ops_rollback_exact UPTO   fresh database, plan to UPTO (expanded or
#                             backfilled), zdm rollback: pg_dump /
#                             sqlite_master and the normalised catalog equal
#                             those taken before expand, exactly
#   ops_show_sql DIALECT NEEDLE...  plan show --sql --dialect: exit 0, each
#                             NEEDLE in the output
#   ops_lint                  zdm lint $OPS_PLAN: no errors (skipped when
#                             this zdm has no lint command)
#
# The baseline (portable SQL, so one text serves both dialects):
#   tag  (id integer PRIMARY KEY, label text NOT NULL)          5 rows
#   acct (id integer PRIMARY KEY, name text, amount integer NOT NULL,
#         note text, tag_id integer CONSTRAINT acct_tag_sane
#         CHECK (tag_id > 0), legacy text)                       $OPS_N rows
#   index acct_note_idx ON acct (note)
# Row i of acct: name 'n<i>', amount i, note 'note <i>', tag_id 1 + i % 5,
# legacy 'l<i>'.  The old application writes ids from 100001, the new one
# from 200001.

# shellcheck source=zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"

OPS_N=${OPS_N:-2000}
OPS_PLAN=
APP_RC=0
APP_OUT=
APP_ERR=

OPS_BASE='description = "baseline for the operation tests"
[[expand.steps]]
sql = "CREATE TABLE tag (id integer PRIMARY KEY, label text NOT NULL)"
down = "DROP TABLE tag"
[[expand.steps]]
sql = "CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)"
down = "DROP TABLE acct"
[[expand.steps]]
sql.pg = "CREATE INDEX CONCURRENTLY acct_note_idx ON acct (note)"
sql.sqlite = "CREATE INDEX acct_note_idx ON acct (note)"
down.pg = "DROP INDEX CONCURRENTLY acct_note_idx"
down.sqlite = "DROP INDEX acct_note_idx"'


ops_fresh() {
    db_new "$T_DIALECT" "$1"
    plans_empty
    plan_write 0001_base "$OPS_BASE"
    zdm_complete 0001_base
    if [ "$T_DIALECT" = pg ]; then
        db_sql "INSERT INTO tag SELECT i, 'tag ' || i FROM generate_series(1, 5) i;
                INSERT INTO acct SELECT i, 'n' || i, i, 'note ' || i, 1 + i % 5, 'l' || i
                  FROM generate_series(1, $OPS_N) i;
                ANALYZE" >/dev/null
    else
        db_sql "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5)
                INSERT INTO tag SELECT i, 'tag ' || i FROM s;
                WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $OPS_N)
                INSERT INTO acct SELECT i, 'n' || i, i, 'note ' || i, 1 + i % 5, 'l' || i FROM s" >/dev/null
    fi
    t_eq "rows in acct after the baseline" "$OPS_N" "$(db_sql 'SELECT count(*) FROM acct')"
}

ops_plan() {
    OPS_PLAN=$1
    plan_write "$1" "$2"
}

ops_catalog() {
    if [ "$T_DIALECT" = sqlite ]; then
        sqlite3 -batch -noheader "$T_SQLITE_FILE" \
            "SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || replace(coalesce(sql, ''), char(10), ' ')
               FROM sqlite_master
              WHERE tbl_name NOT LIKE 'zdm\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'" |
            LC_ALL=C sort >"$1"
        return
    fi
    local app="n.nspname NOT IN ('zdm', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'"
    pg_psql -At -d "$T_PG_URL" -c "
        SELECT 'column ' || c.oid::regclass || ' #' || a.attnum || ' ' || a.attname || ' '
               || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE $app AND c.relkind IN ('r', 'p', 'v') AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT 'constraint ' || c.oid::regclass || ' ' || k.conname || ' ' || k.contype::text
               || CASE WHEN k.convalidated THEN ' validated ' ELSE ' NOT VALID ' END
               || pg_get_constraintdef(k.oid)
               || CASE WHEN k.conindid <> 0 THEN ' (index ' || k.conindid::regclass || ')' ELSE '' END
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE $app
        UNION ALL
        SELECT 'index ' || pg_get_indexdef(i.indexrelid)
               || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE $app
        UNION ALL
        SELECT 'view ' || c.oid::regclass || ': '
               || regexp_replace(pg_get_viewdef(c.oid), '\s+', ' ', 'g')
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE $app AND c.relkind = 'v'
        UNION ALL
        SELECT 'trigger ' || t.tgrelid::regclass || ' ' || t.tgname
          FROM pg_trigger t
         WHERE NOT t.tgisinternal
        UNION ALL
        SELECT 'schema ' || n.nspname
          FROM pg_namespace n
         WHERE $app AND n.nspname <> 'public'
        UNION ALL
        SELECT 'function ' || p.oid::regprocedure
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')" | LC_ALL=C sort >"$1"
    local rc=$?
    if [ "$rc" != 0 ]; then
        T_CHECKS=$((T_CHECKS + 1))
        _t_fail "ops_catalog: the catalog query failed (exit $rc)"
    fi
}

ops_changes() {
    LC_ALL=C comm -23 "$1" "$2" | sed 's/^/- /'
    LC_ALL=C comm -13 "$1" "$2" | sed 's/^/+ /'
}

# The phase after each transition: pending/rolled_back -> expanded -> ...
ops_to() {
    local to=$1 from
    case "$to" in
    expanded) from='(pending|rolled_back)' ;;
    backfilled) from=expanded ;;
    cut_over) from=backfilled ;;
    complete) from=cut_over ;;
    esac
    zdm_run advance "$OPS_PLAN"
    t_rc "advance $OPS_PLAN to $to" 0 || return 1
    t_match "advance $OPS_PLAN output" "^$OPS_PLAN: $from -> $to\$" "$ZOUT"
}

# ------------------------------------------------------------ application

app() {
    local who=$1 sql=$2
    if [ "$T_DIALECT" = pg ] && [ "$who" = new ]; then
        sql="SET search_path = zdm_v_$OPS_PLAN, public; $sql"
    fi
    APP_RC=0
    if [ "$T_DIALECT" = pg ]; then
        pg_psql -At -F'|' -d "$T_PG_URL" -c "$sql" >"$T_DIR/app.out" 2>"$T_DIR/app.err" || APP_RC=$?
    else
        sqlite3 -batch -noheader -cmd '.timeout 20000' "$T_SQLITE_FILE" "$sql" \
            >"$T_DIR/app.out" 2>"$T_DIR/app.err" || APP_RC=$?
    fi
    APP_OUT=$(cat "$T_DIR/app.out")
    APP_ERR=$(cat "$T_DIR/app.err")
}

app_ok() {
    app "$2" "$3"
    T_CHECKS=$((T_CHECKS + 1))
    if [ "$APP_RC" != 0 ]; then
        _t_fail "$1: the $2 application's statement failed" "SQL: $3" "error: $APP_ERR"
        return 1
    fi
}

app_eq() {
    app_ok "$1" "$2" "$4" || return 1
    t_eq "$1" "$3" "$APP_OUT"
}

app_refused() {
    app "$2" "$4"
    T_CHECKS=$((T_CHECKS + 1))
    if [ "$APP_RC" = 0 ]; then
        _t_fail "$1: the $2 application's statement should have been refused" "SQL: $4" "output: $APP_OUT"
        return 1
    fi
    t_has "$1: the error" "$3" "$APP_ERR"
}

# ------------------------------------------------------------ backfill

# A worker slow enough (1000 rows/s, batches of 100) that the writes below
# land while it runs, then as many write rounds as fit.
ops_backfill_with_writes() {
    local old_fn=$1 new_fn=$2 k=0 errors=0
    zdm_run set "$OPS_PLAN" batch_size=100 min_batch_size=100 max_batch_size=100 max_rows_per_second=1000
    t_rc "zdm set: a slow worker" 0
    zdm_bg "$T_DIR/bf" advance "$OPS_PLAN"
    local job=$ZBG_JOB pid=$ZBG_PID
    local during=0
    while kill -0 "$pid" 2>/dev/null; do
        k=$((k + 1))
        "$old_fn" "$k" || errors=$((errors + 1))
        "$new_fn" "$k" || errors=$((errors + 1))
        if kill -0 "$pid" 2>/dev/null; then
            during=$k
        fi
        [ "$k" -lt 400 ] || break
    done
    t_wait_exit "$job" 120
    zdm_bg_collect "$T_DIR/bf" "advance $OPS_PLAN (backfill)"
    t_eq "backfill worker exit status" 0 "$WAIT_RC"
    t_match "backfill output" "^$OPS_PLAN: expanded -> backfilled\$" "$ZOUT"
    t_eq "failed application writes during the backfill" 0 "$errors"
    t_cmp "write rounds (old and new application) while the worker ran" "$during" -ge 3
    t_note "$during write rounds of each application while the worker ran ($k in all)"
    OPS_ROUNDS=$k
}

# ------------------------------------------------------------ rollback

# ops_rollback_exact UPTO [SETUP_FN]: on a fresh database (the plan text is
# written again from OPS_PLAN_TEXT), SETUP_FN (if any) runs before the dumps.
ops_rollback_exact() {
    local upto=$1 setup=${2:-}
    t_section "$T_DIALECT: $OPS_PLAN: rollback from $upto restores the catalog exactly"
    ops_fresh "rb_${OPS_PLAN,,}"
    ops_plan "$OPS_PLAN" "$OPS_PLAN_TEXT"
    [ -z "$setup" ] || "$setup"
    db_dump "$T_DIR/rb-before.dump"
    ops_catalog "$T_DIR/rb-before.cat"
    ops_to expanded || return 1
    if [ "$upto" = backfilled ]; then
        ops_to backfilled || return 1
    fi
    db_dump "$T_DIR/rb-mid.dump"
    ops_catalog "$T_DIR/rb-mid.cat"
    if [ "${OPS_EXPAND_CHANGES_NOTHING:-0}" = 1 ]; then
        t_same_file "$OPS_PLAN: this expand changes nothing" "$T_DIR/rb-before.cat" "$T_DIR/rb-mid.cat"
    else
        t_ne "$OPS_PLAN: the catalog changed at $upto (or equal dumps below prove nothing)" \
            "$(cat "$T_DIR/rb-before.cat")" "$(cat "$T_DIR/rb-mid.cat")"
    fi
    zdm_run rollback "$OPS_PLAN"
    t_rc "rollback $OPS_PLAN from $upto" 0
    t_match "rollback output" "^$OPS_PLAN: $upto -> rolled_back\$" "$ZOUT"
    db_dump "$T_DIR/rb-after.dump"
    ops_catalog "$T_DIR/rb-after.cat"
    OPS_RB_DIFF=$(diff "$T_DIR/rb-before.dump" "$T_DIR/rb-after.dump")
    if [ -n "${OPS_RB_EXPECT_DIFF:-}" ]; then
        # A difference the database itself makes and zdm cannot avoid
        # (see the caller); anything else fails.
        t_eq "$OPS_PLAN: dump after rollback vs before expand (diff)" "$OPS_RB_EXPECT_DIFF" "$OPS_RB_DIFF"
    else
        t_same_file "$OPS_PLAN: dump after rollback vs before expand" "$T_DIR/rb-before.dump" "$T_DIR/rb-after.dump"
        t_same_file "$OPS_PLAN: catalog after rollback vs before expand" "$T_DIR/rb-before.cat" "$T_DIR/rb-after.cat"
    fi
    t_eq "$OPS_PLAN: rows after rollback" "$OPS_N" "$(db_sql 'SELECT count(*) FROM acct WHERE id <= '"$OPS_N")"
}

# ------------------------------------------------------------ plan show, lint

ops_show_sql() {
    local dialect=$1 needle
    shift
    zdm_run plan show "$OPS_PLAN" --sql --dialect "$dialect"
    t_rc "plan show $OPS_PLAN --sql --dialect $dialect" 0 || return 1
    t_has "plan show --sql header" "SQL for $([ "$dialect" = pg ] && echo PostgreSQL || echo SQLite)" "$ZOUT"
    for needle in "$@"; do
        t_has "plan show $OPS_PLAN --sql --dialect $dialect" "$needle" "$ZOUT"
    done
}

OPS_HAVE_LINT=
ops_lint() {
    if [ -z "$OPS_HAVE_LINT" ]; then
        OPS_HAVE_LINT=no
        if "$ZDM" help lint >/dev/null 2>&1; then
            OPS_HAVE_LINT=yes
        fi
    fi
    [ "$OPS_HAVE_LINT" = yes ] || return 0
    zdm_run lint "$OPS_PLAN"
    t_rc "zdm lint $OPS_PLAN" 0
    t_has "zdm lint $OPS_PLAN" "0 errors" "$ZOUT$ZERR"
}

# ============================================================ the cases
#
# Each case_* takes its plan through every phase on a fresh database with
# the application writing through the old and the new names, compares the
# catalog after contract with the one before expand plus the changes the
# calling script expects (EXPECT[op], one "- line" / "+ line" each), then
# rolls the plan back on another fresh database (ops_rollback_exact).
# Messages that differ between the dialects come from the calling script:
# MSG[key].

declare -A EXPECT=() MSG=()

# SQL "a differs from b" with NULLs as values.
ops_distinct() {
    if [ "$T_DIALECT" = pg ]; then
        echo "$1 IS DISTINCT FROM $2"
    else
        echo "$1 IS NOT $2"
    fi
}

# Starts a case: fresh database, the plan written, plan show and lint.
ops_case_begin() {
    local op=$1
    t_section "$T_DIALECT: $op: lifecycle"
    ops_fresh "$op"
    ops_plan "0002_$op" "$OPS_PLAN_TEXT"
    ops_lint
    ops_catalog "$T_DIR/before.cat"
}

# Ends a case: cutover, contract, the catalog against EXPECT[op].
ops_case_contract() {
    local op=$1
    ops_to cut_over || return 1
    ops_to complete || return 1
    ops_catalog "$T_DIR/after.cat"
    t_eq "$op: catalog after contract = catalog before + expected changes" \
        "${EXPECT[$op]}" "$(ops_changes "$T_DIR/before.cat" "$T_DIR/after.cat")"
    if [ "$T_DIALECT" = pg ]; then
        t_eq "$op: view schema after contract" 0 \
            "$(db_sql "SELECT count(*) FROM pg_namespace WHERE nspname = 'zdm_v_$OPS_PLAN'")"
        t_eq "$op: dual-write functions after contract" "" \
            "$(db_sql "SELECT proname FROM pg_proc WHERE proname LIKE 'zdm\_dw\_%'")"
    fi
    t_eq "$op: dual-write triggers after contract" "" "$(ops_dw_triggers)"
}

ops_dw_triggers() {
    if [ "$T_DIALECT" = pg ]; then
        db_sql "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'zdm\_dw\_%'"
    else
        db_sql "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm\_dw\_%' ESCAPE '\'"
    fi
}

# ------------------------------------------------------------ create_table

case_create_table() {
    OPS_PLAN_TEXT='description = "a ledger table"
requires = ["0001_base"]
[[expand.steps]]
op = "create_table"
table = "ledger"
columns = [
  {name = "id", type = "integer", nullable = false},
  {name = "acct_id", type = "integer"},
  {name = "memo", type = "text", default = "'"'"'none'"'"'"},
  {name = "qty", type = "integer", default = 0, nullable = false},
]
primary_key = ["id"]'
    ops_case_begin create_table
    ops_show_sql "$T_DIALECT" 'CREATE TABLE "ledger"' '"qty" integer NOT NULL DEFAULT 0' 'DROP TABLE "ledger"'
    ops_to expanded || return
    app_ok "old application, expanded" old "INSERT INTO acct (id, name, amount) VALUES (100001, 'old', 1)"
    app_ok "new application writes the new table" new "INSERT INTO ledger (id, acct_id) VALUES (1, 100001)"
    app_eq "defaults of the new table" new "1|100001|none|0" "SELECT id, acct_id, memo, qty FROM ledger"
    app_refused "NOT NULL of the new table" new "${MSG[ledger_null]}" "INSERT INTO ledger (id, qty) VALUES (2, NULL)"
    ops_to backfilled || return
    app_ok "new application, backfilled" new "INSERT INTO ledger (id, acct_id, memo) VALUES (2, 1, 'two')"
    app_eq "the old application sees the new rows" old "2" "SELECT count(*) FROM ledger"
    ops_case_contract create_table
    app_eq "rows of ledger after contract" old "2 two" \
        "SELECT count(*) || ' ' || (SELECT memo FROM ledger WHERE id = 2) FROM ledger"
    ops_rollback_exact expanded
    t_eq "create_table: ledger after rollback" 0 "$(db_has_table ledger)"
}

# ------------------------------------------------------------ drop_table

case_drop_table() {
    OPS_PLAN_TEXT='description = "tag goes"
requires = ["0001_base"]
[[contract.steps]]
op = "drop_table"
table = "tag"'
    ops_case_begin drop_table
    ops_show_sql "$T_DIALECT" 'DROP TABLE "tag"'
    ops_to expanded || return
    app_ok "old application still writes tag" old "INSERT INTO tag VALUES (6, 'six'); UPDATE tag SET label = 'one' WHERE id = 1"
    app_eq "old application reads tag" old "6" "SELECT count(*) FROM tag"
    ops_to backfilled || return
    app_eq "tag still there after backfilled" old "one" "SELECT label FROM tag WHERE id = 1"
    ops_case_contract drop_table
    app_refused "tag after contract" old "${MSG[no_table]}" "SELECT count(*) FROM tag"
    OPS_EXPAND_CHANGES_NOTHING=1 ops_rollback_exact expanded
}

# ------------------------------------------------------------ rename_table

case_rename_table() {
    OPS_PLAN_TEXT='description = "acct becomes account"
requires = ["0001_base"]
[[expand.steps]]
op = "rename_table"
table = "acct"
to = "account"'
    ops_case_begin rename_table
    ops_show_sql "$T_DIALECT" 'ALTER TABLE "acct" RENAME TO "account"' 'CREATE VIEW "acct" AS SELECT * FROM "account"' \
        'DROP VIEW IF EXISTS "acct"'
    ops_to expanded || return
    app_ok "new application writes the new name" new \
        "INSERT INTO account (id, name, amount) VALUES (200001, 'new', 1); UPDATE account SET name = 'new upd' WHERE id = 2"
    app_eq "the old name shows the new application's writes" old "new|new upd" \
        "SELECT (SELECT name FROM acct WHERE id = 200001) || '|' || (SELECT name FROM acct WHERE id = 2)"
    if [ "$T_DIALECT" = pg ]; then
        # A simple view: PostgreSQL writes through it.
        app_ok "old application writes through the old name (a view)" old \
            "INSERT INTO acct (id, name, amount) VALUES (100001, 'old', 1); UPDATE acct SET name = 'old upd' WHERE id = 1"
        app_eq "the new name shows the old application's writes" new "old|old upd" \
            "SELECT (SELECT name FROM account WHERE id = 100001) || '|' || (SELECT name FROM account WHERE id = 1)"
    else
        # SQLite views are read-only (no INSTEAD OF triggers are made).
        app_refused "the old name is read-only on SQLite" old "cannot modify acct because it is a view" \
            "UPDATE acct SET name = 'old upd' WHERE id = 1"
    fi
    app_eq "rows through the old name = rows through the new" old "ok" \
        "SELECT CASE WHEN (SELECT count(*) FROM acct) = (SELECT count(*) FROM account) THEN 'ok' END"
    ops_to backfilled || return
    app_eq "the old name still reads, backfilled" old "new upd" "SELECT name FROM acct WHERE id = 2"
    ops_case_contract rename_table
    app_refused "the old name after contract" old "${MSG[no_table]}" "SELECT count(*) FROM acct"
    app_eq "the new name after contract" new "$((OPS_N + ($([ "$T_DIALECT" = pg ] && echo 2 || echo 1))))" \
        "SELECT count(*) FROM account"
    ops_rollback_exact expanded
}

# ------------------------------------------------------------ add_column

case_add_column_nullable() {
    OPS_PLAN_TEXT='description = "acct.flag"
requires = ["0001_base"]
[[expand.steps]]
op = "add_column"
table = "acct"
column = "flag"
type = "integer"'
    ops_case_begin add_column_nullable
    ops_show_sql "$T_DIALECT" 'ALTER TABLE "acct" ADD COLUMN "flag" integer;' 'ALTER TABLE "acct" DROP COLUMN "flag"'
    ops_to expanded || return
    app_ok "old application, without the column" old "INSERT INTO acct (id, name, amount) VALUES (100001, 'old', 1)"
    app_ok "new application, with it" new "INSERT INTO acct (id, name, amount, flag) VALUES (200001, 'new', 1, 7);
                                           UPDATE acct SET flag = 8 WHERE id = 1"
    app_eq "the old application's row through the new names" new "" "SELECT flag FROM acct WHERE id = 100001"
    app_eq "the new application's row through the new names" new "7" "SELECT flag FROM acct WHERE id = 200001"
    app_eq "the new application's rows through the old names" old "new" "SELECT name FROM acct WHERE id = 200001"
    ops_to backfilled || return
    app_ok "old application updates a row the new one wrote" old "UPDATE acct SET name = 'old upd' WHERE id = 1"
    app_eq "flag kept" new "8|old upd" "SELECT flag || '|' || name FROM acct WHERE id = 1"
    ops_case_contract add_column_nullable
    ops_rollback_exact expanded
}

case_add_column_default() {
    OPS_PLAN_TEXT='description = "acct.status NOT NULL DEFAULT active"
requires = ["0001_base"]
[[expand.steps]]
op = "add_column"
table = "acct"
column = "status"
type = "text"
default = "'"'"'active'"'"'"
nullable = false'
    ops_case_begin add_column_default
    ops_show_sql "$T_DIALECT" "ALTER TABLE \"acct\" ADD COLUMN \"status\" text DEFAULT 'active' NOT NULL"
    ops_to expanded || return
    app_eq "existing rows get the default" new "$OPS_N" "SELECT count(*) FROM acct WHERE status = 'active'"
    app_ok "old application, without the column" old "INSERT INTO acct (id, name, amount) VALUES (100001, 'old', 1)"
    app_ok "new application, with it" new "INSERT INTO acct (id, name, amount, status) VALUES (200001, 'new', 1, 'closed')"
    app_eq "the old application's row through the new names" new "active" "SELECT status FROM acct WHERE id = 100001"
    app_eq "the new application's row through the new names" new "closed" "SELECT status FROM acct WHERE id = 200001"
    app_refused "NULL status" new "${MSG[status_null]}" "UPDATE acct SET status = NULL WHERE id = 1"
    ops_to backfilled || return
    ops_case_contract add_column_default
    ops_rollback_exact expanded
}

# NOT NULL filled by `up`: a backfill with dual-write, NOT NULL at contract.
ac_old() {
    app old "INSERT INTO acct (id, name, amount) VALUES ($((100000 + $1)), 'old', $1);
             UPDATE acct SET amount = amount + 1 WHERE id = $1" && [ "$APP_RC" = 0 ] || {
        echo "old application: $APP_ERR" >&2
        return 1
    }
}
ac_new() {
    app new "INSERT INTO acct (id, name, amount, cents) VALUES ($((200000 + $1)), 'new', $1, $(($1 * 100)));
             UPDATE acct SET amount = 5, cents = 500 WHERE id = $((1000 + $1))" && [ "$APP_RC" = 0 ] || {
        echo "new application: $APP_ERR" >&2
        return 1
    }
}
case_add_column_up() {
    OPS_PLAN_TEXT='description = "acct.cents NOT NULL, from amount"
requires = ["0001_base"]
[[expand.steps]]
op = "add_column"
table = "acct"
column = "cents"
type = "integer"
nullable = false
up = "amount * 100"'
    ops_case_begin add_column_up
    ops_show_sql "$T_DIALECT" 'ALTER TABLE "acct" ADD COLUMN "cents" integer;' 'SET cents = (amount * 100)' \
        "${MSG[show_not_null_cents]}"
    ops_to expanded || return
    t_ne "dual-write triggers after expand" "" "$(ops_dw_triggers)"
    ops_backfill_with_writes ac_old ac_new
    local bad
    bad="SELECT count(*) FROM acct WHERE $(ops_distinct cents 'amount * 100')"
    app_eq "rows where cents <> amount * 100 (or NULL), after the backfill" old 0 "$bad"
    app_eq "rows" old "$((OPS_N + 2 * OPS_ROUNDS))" "SELECT count(*) FROM acct"
    app_eq "an old-application insert, through the new names" new "100" "SELECT cents FROM acct WHERE id = 100001"
    app_eq "an old-application update, through the new names" new "200" "SELECT cents FROM acct WHERE id = 1"
    app_eq "a new-application update, through the old names" old "5" "SELECT amount FROM acct WHERE id = 1001"
    # backfilled: the old application still writes without the column
    app_ok "old application, backfilled" old "INSERT INTO acct (id, name, amount) VALUES (150001, 'late', 9)"
    app_eq "its cents" new "900" "SELECT cents FROM acct WHERE id = 150001"
    ops_case_contract add_column_up
    app_refused "NULL cents after contract" new "${MSG[cents_null]}" \
        "INSERT INTO acct (id, name, amount, cents) VALUES (300001, 'x', 1, NULL)"
    app_eq "rows where cents <> amount * 100 (or NULL), after contract" old 0 "$bad"
    ops_rollback_exact backfilled
}

# ------------------------------------------------------------ drop_column

case_drop_column() {
    OPS_PLAN_TEXT='description = "acct.legacy goes"
requires = ["0001_base"]
[[contract.steps]]
op = "drop_column"
table = "acct"
column = "legacy"'
    ops_case_begin drop_column
    ops_show_sql "$T_DIALECT" 'ALTER TABLE "acct" DROP COLUMN "legacy"'
    ops_to expanded || return
    app_ok "old application still writes legacy" old \
        "INSERT INTO acct (id, name, amount, legacy) VALUES (100001, 'old', 1, 'L'); UPDATE acct SET legacy = 'x' WHERE id = 1"
    app_ok "new application ignores it" new "INSERT INTO acct (id, name, amount) VALUES (200001, 'new', 1)"
    ops_to backfilled || return
    app_eq "legacy still there" old "L|x" "SELECT (SELECT legacy FROM acct WHERE id = 100001) || '|' || (SELECT legacy FROM acct WHERE id = 1)"
    ops_case_contract drop_column
    app_refused "legacy after contract" old "${MSG[no_legacy]}" "SELECT legacy FROM acct LIMIT 1"
    OPS_EXPAND_CHANGES_NOTHING=1 ops_rollback_exact expanded
}

# ------------------------------------------------------------ rename_column

rc_old() {
    app old "INSERT INTO acct (id, name, amount) VALUES ($((100000 + $1)), 'old $1', $1);
             UPDATE acct SET name = 'old upd $1' WHERE id = $1" && [ "$APP_RC" = 0 ] || {
        echo "old application: $APP_ERR" >&2
        return 1
    }
}
rc_new() {
    app new "INSERT INTO acct (id, title, amount) VALUES ($((200000 + $1)), 'new $1', $1);
             UPDATE acct SET title = 'new upd $1' WHERE id = $((1000 + $1))" && [ "$APP_RC" = 0 ] || {
        echo "new application: $APP_ERR" >&2
        return 1
    }
}
case_rename_column() {
    # PostgreSQL copies the column's type from the catalog; SQLite's step
    # is static SQL, so its plan names the type (RC_TYPE).
    OPS_PLAN_TEXT="description = \"acct.name becomes title\"
requires = [\"0001_base\"]
[[expand.steps]]
op = \"rename_column\"
table = \"acct\"
column = \"name\"
to = \"title\"${RC_TYPE:+
type = \"$RC_TYPE\"}"
    ops_case_begin rename_column
    ops_show_sql "$T_DIALECT" "${MSG[show_rename_column]}" 'SET title = ("name")' 'ALTER TABLE "acct" DROP COLUMN "name"'
    ops_to expanded || return
    if [ "$T_DIALECT" = pg ]; then
        app_refused "the new application does not see the old name" new 'column "name" does not exist' \
            "SELECT name FROM acct LIMIT 1"
    fi
    # before the backfill: each application's writes show through the other's names
    rc_old 0 && rc_new 0
    app_eq "old insert, through the new name" new "old 0" "SELECT title FROM acct WHERE id = 100000"
    app_eq "new insert, through the old name" old "new 0" "SELECT name FROM acct WHERE id = 200000"
    app_eq "new update, through the old name" old "new upd 0" "SELECT name FROM acct WHERE id = 1000"
    ops_backfill_with_writes rc_old rc_new
    local bad
    bad="SELECT count(*) FROM acct WHERE $(ops_distinct name title)"
    app_eq "rows where name <> title, after the backfill" old 0 "$bad"
    app_eq "rows" old "$((OPS_N + 2 * OPS_ROUNDS + 2))" "SELECT count(*) FROM acct"
    app_eq "old update, through the new name" new "old upd 1" "SELECT title FROM acct WHERE id = 1"
    app_eq "new update, through the old name" old "new upd 1" "SELECT name FROM acct WHERE id = 1001"
    app_eq "a backfilled row, through the new name" new "n1999" "SELECT title FROM acct WHERE id = 1999"
    rc_old 900 && rc_new 900
    app_eq "rows where name <> title, backfilled" old 0 "$bad"
    ops_case_contract rename_column
    app_eq "the new name after contract (search_path as the new application)" new "old upd 1" \
        "SELECT title FROM acct WHERE id = 1"
    app_eq "the new name after contract (plain)" old "new upd 900" "SELECT title FROM acct WHERE id = 1900"
    ops_rollback_exact backfilled
}

# ------------------------------------------------------------ change_type (PostgreSQL)

ct_old() {
    app old "INSERT INTO acct (id, name, amount) VALUES ($((100000 + $1)), 'old', $(($1 * 3)));
             UPDATE acct SET amount = amount + 1 WHERE id = $1" && [ "$APP_RC" = 0 ] || {
        echo "old application: $APP_ERR" >&2
        return 1
    }
}
ct_new() {
    app new "INSERT INTO acct (id, name, amount) VALUES ($((200000 + $1)), 'new', $1.25);
             UPDATE acct SET amount = 7.5 WHERE id = $((1000 + $1))" && [ "$APP_RC" = 0 ] || {
        echo "new application: $APP_ERR" >&2
        return 1
    }
}
OPS_CT_PLAN='description = "acct.amount in units, numeric(12,2)"
requires = ["0001_base"]
[[expand.steps]]
op = "change_type"
table = "acct"
column = "amount"
type = "numeric(12,2)"
up = "amount / 100.0"
down = "(amount * 100)::integer"'
case_change_type() {
    OPS_PLAN_TEXT=$OPS_CT_PLAN
    ops_case_begin change_type
    ops_show_sql pg 'ALTER TABLE "acct" ADD COLUMN "_zdm_amount" numeric(12,2)' \
        '("_zdm_amount" * 100)::integer (reverse)' \
        'ALTER TABLE "acct" RENAME COLUMN "_zdm_amount" TO "amount"' 'DROP SCHEMA IF EXISTS "zdm_v_0002_change_type" CASCADE'
    ops_to expanded || return
    app_eq "the new application's type" new "numeric" "SELECT pg_typeof(amount) FROM acct LIMIT 1"
    app_eq "the old application's type" old "integer" "SELECT pg_typeof(amount) FROM acct LIMIT 1"
    ct_old 0 && ct_new 0
    app_eq "old insert, through the new type" new "0.00" "SELECT amount FROM acct WHERE id = 100000"
    app_eq "new insert (0.25), through the old type" old "25" "SELECT amount FROM acct WHERE id = 200000"
    ops_backfill_with_writes ct_old ct_new
    local bad="SELECT count(*) FROM acct WHERE _zdm_amount IS DISTINCT FROM amount / 100.0
                                           OR amount IS DISTINCT FROM (_zdm_amount * 100)::integer"
    app_eq "rows where the two types disagree, after the backfill" old 0 "$bad"
    app_eq "rows" old "$((OPS_N + 2 * OPS_ROUNDS + 2))" "SELECT count(*) FROM acct"
    app_eq "old update (1 + 1), through the new type" new "0.02" "SELECT amount FROM acct WHERE id = 1"
    app_eq "new update (7.5), through the old type" old "750" "SELECT amount FROM acct WHERE id = 1001"
    app_eq "new insert (2.25), through the old type" old "225" "SELECT amount FROM acct WHERE id = 200002"
    app_eq "old insert (6), through the new type" new "0.06" "SELECT amount FROM acct WHERE id = 100002"
    app_eq "a backfilled row, through the new type" new "19.99" "SELECT amount FROM acct WHERE id = 1999"
    ct_old 900 && ct_new 900
    app_eq "rows where the two types disagree, backfilled" old 0 "$bad"
    ops_case_contract change_type
    app_eq "the column after contract" old "numeric(12,2)" \
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'acct'::regclass AND attname = 'amount'"
    app_eq "converted values after contract" old "0.02|7.50|19.99|900.25" \
        "SELECT string_agg(amount::text, '|' ORDER BY id) FROM acct WHERE id IN (1, 1001, 200900, 1999)"
    app_refused "amount is still NOT NULL after contract" old 'null value in column "amount"' \
        "UPDATE acct SET amount = NULL WHERE id = 1"
    ops_rollback_exact backfilled

    # What depends on the old column would go with it at contract: refused
    # by expand's first step, before anything changes.  (A plain index is
    # let through: it serves the old application until contract.)
    t_section "pg: change_type of a column with a CHECK: refused, nothing changed"
    ops_fresh change_type_dep
    ops_plan 0002_change_type 'description = "acct.tag_id as bigint"
requires = ["0001_base"]
[[expand.steps]]
op = "change_type"
table = "acct"
column = "tag_id"
type = "bigint"
up = "tag_id"
down = "tag_id::integer"'
    db_dump "$T_DIR/dep-before.dump"
    zdm_run advance 0002_change_type
    t_rc "expand of change_type on a column with a CHECK" 1
    t_has "the reason names the constraint" \
        "change_type: contract drops the old column acct.tag_id, and with it: constraint acct_tag_sane on table acct" "$ZERR"
    db_dump "$T_DIR/dep-after.dump"
    t_same_file "dump after the refused expand" "$T_DIR/dep-before.dump" "$T_DIR/dep-after.dump"
}

# ------------------------------------------------------------ set_not_null

case_set_not_null() {
    OPS_PLAN_TEXT='description = "acct.note NOT NULL"
requires = ["0001_base"]
[[expand.steps]]
op = "set_not_null"
table = "acct"
column = "note"'
    ops_case_begin set_not_null
    ops_show_sql "$T_DIALECT" "${MSG[show_set_not_null]}" 'acct_note_not_null'
    ops_to expanded || return
    app_refused "old application inserts a NULL note" old "${MSG[note_null]}" \
        "INSERT INTO acct (id, name, amount) VALUES (100001, 'old', 1)"
    app_refused "new application sets a note to NULL" new "${MSG[note_null]}" "UPDATE acct SET note = NULL WHERE id = 1"
    app_ok "a note is fine" old "INSERT INTO acct (id, name, amount, note) VALUES (100001, 'old', 1, 'n')"
    app_eq "nothing refused was written" old "$((OPS_N + 1)) 0" \
        "SELECT count(*) || ' ' || sum(CASE WHEN note IS NULL THEN 1 ELSE 0 END) FROM acct"
    ops_to backfilled || return
    ops_case_contract set_not_null
    app_refused "a NULL note after contract" old "${MSG[note_null_final]}" \
        "INSERT INTO acct (id, name, amount) VALUES (100002, 'old', 1)"
    ops_rollback_exact expanded

    # Existing NULLs are counted before any DDL (issue 11): refused with
    # the count and the row's key, the catalog untouched.
    t_section "$T_DIALECT: set_not_null: existing NULLs refused before any DDL"
    ops_fresh set_not_null_bad
    ops_plan 0002_set_not_null "$OPS_PLAN_TEXT"
    db_sql "UPDATE acct SET note = NULL WHERE id = 7" >/dev/null
    db_dump "$T_DIR/nn-before.dump"
    zdm_run advance 0002_set_not_null
    t_rc "expand with a NULL note in the table" 3
    t_has "the reason" "set_not_null on acct.note: 1 row holds NULL (e.g. 7)" "$ZERR"
    db_dump "$T_DIR/nn-after.dump"
    t_same_file "dump after the refusal vs before expand" "$T_DIR/nn-before.dump" "$T_DIR/nn-after.dump"
    zdm_run rollback 0002_set_not_null
    t_rc "rollback has nothing to do" 0
}

# ------------------------------------------------------------ add_check

case_add_check() {
    OPS_PLAN_TEXT='description = "acct.amount >= 0"
requires = ["0001_base"]
[[expand.steps]]
op = "add_check"
table = "acct"
check = "amount >= 0"
constraint = "acct_amount_nonneg"'
    ops_case_begin add_check
    ops_show_sql "$T_DIALECT" "${MSG[show_add_check]}"
    ops_to expanded || return
    app_refused "old application writes a negative amount" old "${MSG[check]}" \
        "INSERT INTO acct (id, name, amount) VALUES (100001, 'old', -5)"
    app_refused "new application updates to a negative amount" new "${MSG[check]}" "UPDATE acct SET amount = -1 WHERE id = 1"
    app_ok "a positive amount is fine" new "INSERT INTO acct (id, name, amount) VALUES (200001, 'new', 5)"
    app_eq "no negative amount was written" old 0 "SELECT count(*) FROM acct WHERE amount < 0"
    ops_to backfilled || return
    ops_case_contract add_check
    app_refused "negative amount after contract" old "${MSG[check]}" "UPDATE acct SET amount = -1 WHERE id = 2"
    ops_rollback_exact expanded
}

# ------------------------------------------------------------ add_foreign_key (PostgreSQL)

OPS_FK_PLAN='description = "acct.tag_id references tag"
requires = ["0001_base"]
[[expand.steps]]
op = "add_foreign_key"
table = "acct"
columns = ["tag_id"]
references = "tag"
references_columns = ["id"]
on_delete = "SET NULL"'
case_add_foreign_key() {
    OPS_PLAN_TEXT=$OPS_FK_PLAN
    ops_case_begin add_foreign_key
    ops_show_sql pg 'FOREIGN KEY ("tag_id") REFERENCES "tag" ("id") ON DELETE SET NULL NOT VALID' \
        'VALIDATE CONSTRAINT "acct_tag_id_fkey"'
    ops_to expanded || return
    app_refused "old application writes a tag that does not exist" old 'violates foreign key constraint "acct_tag_id_fkey"' \
        "INSERT INTO acct (id, name, amount, tag_id) VALUES (100001, 'old', 1, 99)"
    app_ok "an existing tag is fine" new "INSERT INTO acct (id, name, amount, tag_id) VALUES (200001, 'new', 1, 3)"
    app_ok "ON DELETE SET NULL" old "INSERT INTO tag VALUES (6, 'six'); UPDATE acct SET tag_id = 6 WHERE id = 1; DELETE FROM tag WHERE id = 6"
    app_eq "the referencing row after the delete" new "" "SELECT tag_id FROM acct WHERE id = 1"
    ops_to backfilled || return
    ops_case_contract add_foreign_key
    ops_rollback_exact expanded
}

# ------------------------------------------------------------ add_unique

case_add_unique() {
    OPS_PLAN_TEXT='description = "acct.name unique"
requires = ["0001_base"]
[[expand.steps]]
op = "add_unique"
table = "acct"
columns = ["name"]'
    ops_case_begin add_unique
    ops_show_sql "$T_DIALECT" "${MSG[show_add_unique]}"
    ops_to expanded || return
    app_refused "old application writes a duplicate name" old "${MSG[unique]}" \
        "INSERT INTO acct (id, name, amount) VALUES (100001, 'n5', 1)"
    app_refused "new application updates to a duplicate name" new "${MSG[unique]}" "UPDATE acct SET name = 'n5' WHERE id = 6"
    app_ok "a new name is fine" new "INSERT INTO acct (id, name, amount) VALUES (200001, 'fresh', 1)"
    ops_to backfilled || return
    ops_case_contract add_unique
    ops_rollback_exact expanded
}

# ------------------------------------------------------------ add_index

case_add_index() {
    OPS_PLAN_TEXT='description = "index on acct (tag_id, amount) where amount > 0"
requires = ["0001_base"]
[[expand.steps]]
op = "add_index"
table = "acct"
columns = ["tag_id", "amount"]
where = "amount > 0"'
    ops_case_begin add_index
    ops_show_sql "$T_DIALECT" "${MSG[show_add_index]}"
    ops_to expanded || return
    app_ok "old application writes" old "INSERT INTO acct (id, name, amount, tag_id) VALUES (100001, 'old', 777777, 2)"
    app_ok "new application writes" new "INSERT INTO acct (id, name, amount, tag_id) VALUES (200001, 'new', 777777, 2)"
    app_eq "both rows through the index's columns" new 2 "SELECT count(*) FROM acct WHERE tag_id = 2 AND amount = 777777"
    ops_to backfilled || return
    ops_case_contract add_index
    ops_rollback_exact expanded
}

# ------------------------------------------------------------ drop_index

case_drop_index() {
    OPS_PLAN_TEXT='description = "acct_note_idx goes"
requires = ["0001_base"]
[[contract.steps]]
op = "drop_index"
index = "acct_note_idx"'
    ops_case_begin drop_index
    ops_show_sql "$T_DIALECT" "${MSG[show_drop_index]}"
    ops_to expanded || return
    t_eq "the index is still there, expanded" 1 "$(db_has_index acct_note_idx)"
    ops_to backfilled || return
    ops_case_contract drop_index
    OPS_EXPAND_CHANGES_NOTHING=1 ops_rollback_exact expanded
}

# ------------------------------------------------------------ drop_constraint (PostgreSQL)

OPS_DC_PLAN='description = "acct_tag_sane goes"
requires = ["0001_base"]
[[contract.steps]]
op = "drop_constraint"
table = "acct"
constraint = "acct_tag_sane"'
case_drop_constraint() {
    OPS_PLAN_TEXT=$OPS_DC_PLAN
    ops_case_begin drop_constraint
    ops_show_sql pg 'ALTER TABLE "acct" DROP CONSTRAINT IF EXISTS "acct_tag_sane"'
    ops_to expanded || return
    app_refused "the constraint still holds, expanded" old 'violates check constraint "acct_tag_sane"' \
        "INSERT INTO acct (id, name, amount, tag_id) VALUES (100001, 'old', 1, 0)"
    ops_to backfilled || return
    ops_case_contract drop_constraint
    app_ok "after contract the constraint is gone" old "INSERT INTO acct (id, name, amount, tag_id) VALUES (100001, 'old', 1, 0)"
    OPS_EXPAND_CHANGES_NOTHING=1 ops_rollback_exact expanded
}

# ------------------------------------------------------------ rename_column keeps what it must (PostgreSQL)

# The renamed column keeps the old one's NOT NULL and default; what would
# be dropped with the old column (here a CHECK) refuses the plan before
# anything changes.
case_rename_column_keeps() {
    t_section "pg: rename_column of a NOT NULL column with a default keeps both"
    ops_fresh rename_keeps
    db_sql "ALTER TABLE tag ALTER COLUMN label SET DEFAULT 'unnamed'" >/dev/null
    OPS_PLAN_TEXT='description = "tag.label becomes title"
requires = ["0001_base"]
[[expand.steps]]
op = "rename_column"
table = "tag"
column = "label"
to = "title"'
    ops_plan 0002_rename_keeps "$OPS_PLAN_TEXT"
    ops_catalog "$T_DIR/before.cat"
    ops_to expanded || return
    app_ok "old application, label left to its default" old "INSERT INTO tag (id) VALUES (7)"
    app_ok "old application, a label" old "INSERT INTO tag (id, label) VALUES (8, 'eight')"
    # the view has no label: it takes its default, and the trigger must
    # still derive it from title
    app_ok "new application, title given" new "INSERT INTO tag (id, title) VALUES (9, 'nine')"
    app_ok "new application, title left to the default" new "INSERT INTO tag (id) VALUES (10)"
    app_ok "new application, update" new "UPDATE tag SET title = 'one' WHERE id = 1"
    app_eq "through the new name" new "one|unnamed|eight|nine|unnamed" \
        "SELECT string_agg(title, '|' ORDER BY id) FROM tag WHERE id = 1 OR id >= 7"
    app_eq "through the old name" old "one|unnamed|eight|nine|unnamed" \
        "SELECT string_agg(label, '|' ORDER BY id) FROM tag WHERE id = 1 OR id >= 7"
    ops_to backfilled || return
    ops_to cut_over || return
    ops_to complete || return
    ops_catalog "$T_DIR/after.cat"
    t_eq "rename_column: catalog after contract = catalog before + expected changes" \
        "- column tag #2 label text not null default 'unnamed'::text
+ column tag #3 title text not null default 'unnamed'::text" "$(ops_changes "$T_DIR/before.cat" "$T_DIR/after.cat")"
    app_ok "the default after contract" new "INSERT INTO tag (id) VALUES (11)"
    app_eq "the default after contract" new "unnamed" "SELECT title FROM tag WHERE id = 11"

    t_section "pg: rename_column of a column with a unique index: refused, nothing changed"
    ops_fresh rename_dep
    db_sql "CREATE UNIQUE INDEX acct_legacy_key ON acct (legacy)" >/dev/null
    ops_plan 0002_rename_dep 'description = "acct.legacy becomes old_ref"
requires = ["0001_base"]
[[expand.steps]]
op = "rename_column"
table = "acct"
column = "legacy"
to = "old_ref"'
    db_dump "$T_DIR/dep-before.dump"
    zdm_run advance 0002_rename_dep
    t_rc "expand of rename_column on a column with a unique index" 1
    t_has "the reason names the index" \
        "rename_column: contract drops the old column acct.legacy, and with it: index acct_legacy_key" "$ZERR"
    db_dump "$T_DIR/dep-after.dump"
    t_same_file "dump after the refused expand" "$T_DIR/dep-before.dump" "$T_DIR/dep-after.dump"
}
