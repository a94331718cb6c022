#!/usr/bin/env bash
# test_lint_db.sh -- zdm lint --db URL: what the database holds changes the
# findings (real PostgreSQL and a real SQLite file).
#
#   - table size sets the severity: empty -> info, small -> warning, large
#     -> error with its size (plans and plain SQL files)
#   - pg_proc's volatility: a STABLE function's default passes, a VOLATILE
#     one stays an error
#   - SET NOT NULL covered by a validated CHECK made by hand passes
#   - CREATE INDEX IF NOT EXISTS of an index the database has is a no-op;
#     DROP INDEX is sized by the index's table
#   - ALTER COLUMN TYPE judged against the catalog's current type
#   - a transaction holding a lock on a table the SQL changes, open longer
#     than lock_timeout: long-transaction names its pid; gone once it ends
#   - SQLite: an empty table is harmless; a missing file is refused and not
#     created
set -u -o pipefail
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init test_lint_db

# zdm lint with or without --db (zdm_run always passes it).
lint_db() {
    ZRC=0
    "$ZDM" --db "$T_DB" --plans "$T_PLANS" lint "$@" >"$T_DIR/last.out" 2>"$T_DIR/last.err" || ZRC=$?
    ZOUT=$(cat "$T_DIR/last.out")
    ZERR=$(cat "$T_DIR/last.err")
}
lint_nodb() {
    ZRC=0
    "$ZDM" --plans "$T_PLANS" lint --dialect "$1" "${@:2}" >"$T_DIR/last.out" 2>"$T_DIR/last.err" || ZRC=$?
    ZOUT=$(cat "$T_DIR/last.out")
    ZERR=$(cat "$T_DIR/last.err")
}

if t_pg_available; then
t_pg_start

t_section "pg: the table's size sets the severity"
db_new pg lintdb
plans_copy 0001_baseline
zdm_complete 0001_baseline
plan_write 0002_index 'description = "an index, the blocking way"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "CREATE INDEX events_pn ON events (project_name)"
down = "DROP INDEX events_pn"'
lint_nodb pg 0002_index
t_rc "without --db: an error" 3
lint_db 0002_index
t_rc "--db, events empty" 0
t_has "info, says why" "info[index-not-concurrent]: CREATE INDEX events_pn on events without CONCURRENTLY blocks writes to events until the index is built -- but events is empty in the database (--db): harmless now" "$ZOUT"
db_sql "INSERT INTO events (project_name) SELECT 'p' || g FROM generate_series(1, 100) g" >/dev/null
lint_db 0002_index
t_rc "--db, 100 rows" 0
t_has "a warning with the size" "warning[index-not-concurrent]" "$ZOUT"
t_has "the size" "events is small in the database (--db: about 100 rows" "$ZOUT"
db_sql "INSERT INTO events (project_name) SELECT 'p' || g FROM generate_series(1, 30000) g; ANALYZE events" >/dev/null
lint_db 0002_index
t_rc "--db, 30,100 rows" 3
t_has "an error with the size" "error[index-not-concurrent]" "$ZOUT"
t_has "the size" "(--db: events holds about 30100 rows" "$ZOUT"
lint_db --json 0002_index
t_eq "--json: severity" "error" "$(jq -r -s '.[0] | .findings[0].severity' <<<"$ZOUT")"
printf 'CREATE INDEX e2 ON events (created_at);\nCREATE INDEX z ON nosuch (a);\n' >"$T_DIR/m.sql"
lint_db "$T_DIR/m.sql"
t_rc "a SQL file with --db" 3
t_has "its table sized" "m.sql:1:1: error[index-not-concurrent]" "$ZOUT"
t_has "a table the database lacks stays as it was" "m.sql:2:1: error[index-not-concurrent]: CREATE INDEX z on nosuch without CONCURRENTLY blocks writes to nosuch until the index is built -- CREATE" "$ZOUT"

t_section "pg: existing indexes"
plan_write 0007_ine 'description = "an index that may exist"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "CREATE INDEX IF NOT EXISTS events_pn2 ON events (project_name)"
down = "SELECT 1"
[[contract.steps]]
sql = "DROP INDEX IF EXISTS events_gone"'
lint_db 0007_ine
t_rc "the index does not exist yet: the build blocks" 3
t_has "index-not-concurrent" "error[index-not-concurrent]" "$ZOUT"
t_has "DROP INDEX of an index the database lacks: not sized" "error[drop-index-not-concurrent]: DROP INDEX events_gone without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table: reads and writes wait, and wait behind any long query -- DROP" "$ZOUT"
db_sql "CREATE INDEX events_pn2 ON events (project_name); CREATE INDEX events_gone ON employees (name)" >/dev/null
lint_db 0007_ine
t_lacks "IF NOT EXISTS of an index the database has: a no-op" "[index-not-concurrent]" "$ZOUT"
t_has "DROP INDEX sized by its table (employees, empty)" "info[drop-index-not-concurrent]" "$ZOUT"
t_has "names the table" "but employees is empty in the database" "$ZOUT"

t_section "pg: a type change judged from the catalog's type"
db_sql "CREATE TABLE vc (id bigint PRIMARY KEY, v varchar(20), n numeric(10,2), w varchar(20));
        INSERT INTO vc SELECT g, 'v', g, 'w' FROM generate_series(1, 20000) g; ANALYZE vc" >/dev/null
plan_write 0008_widen 'description = "widen"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "ALTER TABLE vc ALTER COLUMN v TYPE varchar(40), ALTER COLUMN n TYPE numeric(12,2)"
down = "SELECT 1"'
plan_write 0009_narrow 'description = "narrow"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "ALTER TABLE vc ALTER COLUMN w TYPE varchar(10)"
down = "SELECT 1"'
lint_nodb pg 0008_widen
t_rc "without --db: the current types are unknown" 3
t_has "says so" "zdm cannot tell the column's current type from the plans" "$ZOUT"
lint_db 0008_widen
t_rc "--db: varchar(20) -> varchar(40) and numeric(10,2) -> numeric(12,2) are in place" 0
t_lacks "no finding" "alter-type-rewrite" "$ZOUT"
lint_db 0009_narrow
t_rc "--db: varchar(20) -> varchar(10) rewrites" 3
t_has "with the catalog's type" "(--db: the column is character varying(20) now)" "$ZOUT"

t_section "pg: volatility from pg_proc"
db_sql "CREATE FUNCTION stable_code() RETURNS text LANGUAGE sql STABLE AS \$\$ SELECT 'x' \$\$;
        CREATE FUNCTION volatile_code() RETURNS text LANGUAGE sql VOLATILE AS \$\$ SELECT md5(random()::text) \$\$" >/dev/null
plan_write 0003_stable 'description = "a default from a function"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "ALTER TABLE events ADD COLUMN code text DEFAULT stable_code()"
down = "ALTER TABLE events DROP COLUMN code"'
plan_write 0004_volatile 'description = "a default from a volatile function"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "ALTER TABLE events ADD COLUMN code text DEFAULT volatile_code()"
down = "ALTER TABLE events DROP COLUMN code"'
lint_nodb pg 0003_stable
t_rc "without --db: an unknown function counts as volatile" 3
t_has "says so" "which zdm does not know to be immutable or stable" "$ZOUT"
lint_db 0003_stable
t_rc "--db: pg_proc says STABLE" 0
t_lacks "no finding" "add-column-volatile-default" "$ZOUT"
lint_db 0004_volatile
t_rc "--db: pg_proc says VOLATILE" 3
t_has "still an error, with the catalog's word" "(pg_proc: volatile_code() is volatile or unknown)" "$ZOUT"

t_section "pg: SET NOT NULL covered by a CHECK the database already has"
plan_write 0005_not_null 'description = "email required"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "ALTER TABLE employees ALTER COLUMN email SET NOT NULL"
down = "ALTER TABLE employees ALTER COLUMN email DROP NOT NULL"'
lint_db 0005_not_null
t_rc "--db, no check yet" 0
t_has "employees is empty: info" "info[set-not-null]" "$ZOUT"
db_sql "INSERT INTO employees (name, email) SELECT 'n' || g, 'e' || g FROM generate_series(1, 20000) g; ANALYZE employees" >/dev/null
lint_db 0005_not_null
t_rc "--db, 20,000 rows, no check" 3
db_sql "ALTER TABLE employees ADD CONSTRAINT employees_email_nn CHECK (email IS NOT NULL) NOT VALID" >/dev/null
lint_db 0005_not_null
t_rc "--db, the check is NOT VALID: still an error" 3
db_sql "ALTER TABLE employees VALIDATE CONSTRAINT employees_email_nn" >/dev/null
lint_db 0005_not_null
t_rc "--db, a validated check" 0
t_lacks "no finding" "set-not-null" "$ZOUT"

t_section "pg: a long transaction holding a lock on a table the plan changes"
plan_write 0006_add 'description = "a plain ADD COLUMN"
requires = ["0001_baseline"]
lock_timeout = "300ms"
[[expand.steps]]
sql = "ALTER TABLE events ADD COLUMN note text"
down = "ALTER TABLE events DROP COLUMN note"'
lint_db 0006_add
t_rc "no other transaction: clean" 0
t_lacks "no long-transaction" "long-transaction" "$ZOUT"
pg_session_start blocker
pg_session_send blocker "BEGIN; SELECT count(*) FROM events;"
t_wait_for "the blocker's lock on events" 30 '[ "$(pg_session_locks blocker events)" -ge 1 ]'
sleep 1   # older than the plan's lock_timeout (300ms) from here on
lint_db 0006_add
t_rc "a warning does not fail lint" 0
t_has "long-transaction, at the statement" "0006_add.toml:5:8: warning[long-transaction]: right now pid" "$ZOUT"
t_has "names the session" "blocker" "$ZOUT"
t_has "and the table" "holding a lock on events" "$ZOUT"
pg_session_end blocker
lint_db 0006_add
t_lacks "gone once it ended" "long-transaction" "$ZOUT"
else
    echo "test_lint_db: no PostgreSQL server binaries: the pg sections are skipped" >&2
fi

t_section "sqlite: sizes; a missing file is refused, not created"
db_new sqlite lintdb
plans_copy 0001_baseline
zdm_complete 0001_baseline
plan_write 0002_copy 'description = "a whole-table copy"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "CREATE TABLE events_copy AS SELECT * FROM events"
down = "DROP TABLE events_copy"'
lint_db 0002_copy
t_rc "--db sqlite, events empty" 0
t_has "info" "info[sqlite-table-rebuild]" "$ZOUT"
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
        INSERT INTO events (project_name) SELECT 'p' || i FROM c" >/dev/null
lint_db 0002_copy
t_rc "--db sqlite, 20,000 rows" 3
t_has "error" "error[sqlite-table-rebuild]" "$ZOUT"
ZRC=0
"$ZDM" --db "sqlite:$T_DIR/nope.db" --plans "$T_PLANS" lint 0002_copy >"$T_DIR/last.out" 2>"$T_DIR/last.err" || ZRC=$?
ZERR=$(cat "$T_DIR/last.err")
t_rc "--db of a missing SQLite file" 2
t_has "says so" "no SQLite database at" "$ZERR"
t_eq "no file created" "no" "$([ -e "$T_DIR/nope.db" ] && echo yes || echo no)"

t_finish
