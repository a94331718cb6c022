#!/usr/bin/env bash
# test_sqlite_contract.sh -- SQLite: what depends on a column that contract
# or rollback drops is found before anything changes.
#
#  * rename_column emp.name -> full_name with, on the old column, each of:
#    a unique index, a partial index, an expression index, a view, a
#    trigger (also one that only fires on UPDATE OF it), a CHECK of the table, a generated column, a foreign key of
#    another table, a view or trigger naming it in double quotes, an
#    external-content FTS4/FTS5 table over it: expand refuses (exit 3) naming the object, and the
#    schema and state are exactly as before;
#  * the same dependency created after expand (the application did it):
#    contract refuses, names it, and the dual-write triggers are still
#    there and working (a write by the new application to full_name
#    reaches name, while an application process keeps writing);
#  * plain indexes on rename_column's old column (alone or with another
#    column, DESC) move to the new column at contract (expand says so); on
#    a column a raw step drops they go with it, as on PostgreSQL, also for raw SQL steps, in a
#    transaction or not;
#  * rollback of expand with a unique index on the new column refuses with
#    dual-write intact; with a plain one it drops it and completes.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_contract

PLAN=$T_PLAN_RENAME_EMP

base_db() {
    db_new sqlite "$1"
    plans_empty
    plan_write 0001_ren "$PLAN"
    db_sql "CREATE TABLE dept(id INTEGER PRIMARY KEY, title TEXT);
            CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, email TEXT, dept INTEGER);
            INSERT INTO emp(name, email) VALUES ('ada', 'a@x'), ('grace', 'g@x');"
}

# The application's schema (zdm's own tables and their indexes left out).
schema() {
    db_sql "SELECT type, name, sql FROM sqlite_master WHERE tbl_name NOT LIKE 'zdm\_%' ESCAPE '\'
            AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name"
}

dw_count() { db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm_dw_%'"; }

declare -A DEP
DEP[unique_index]="CREATE UNIQUE INDEX emp_name_u ON emp(name, email)|index emp_name_u"
DEP[partial_index]="CREATE INDEX emp_email_p ON emp(email) WHERE name IS NOT NULL|index emp_email_p"
DEP[expr_index]="CREATE INDEX emp_lower ON emp(lower(name))|index emp_lower"
DEP[view]="CREATE VIEW v_names AS SELECT id, name FROM emp|view v_names"
DEP[trigger]="CREATE TABLE audit(x); CREATE TRIGGER emp_audit AFTER INSERT ON emp BEGIN INSERT INTO audit VALUES (new.name); END|trigger emp_audit"
DEP[update_of]="CREATE TABLE audit2(x); CREATE TRIGGER emp_upd AFTER UPDATE OF email, name ON emp BEGIN INSERT INTO audit2 VALUES (1); END|trigger emp_upd: fires on UPDATE OF it"
DEP[other_fk]="CREATE TABLE badge(id INTEGER PRIMARY KEY, owner TEXT REFERENCES emp(name))|a FOREIGN KEY of table badge references it"
# Double-quoted: once the column is gone SQLite reads "name" as a string
# and lets DROP COLUMN through (the view then returns 'name' silently).
DEP[view_dq]='CREATE VIEW v_dq AS SELECT id, "name" AS n FROM emp|view v_dq: names it in double quotes'
# External-content full-text tables: SQLite drops the column without a
# word, and the index can then never be rebuilt or read.
DEP[fts5_ext]="CREATE VIRTUAL TABLE emp_fts USING fts5(name, email, content='emp', content_rowid='id')|full-text table emp_fts"
DEP[fts4_ext]="CREATE VIRTUAL TABLE emp_ft4 USING fts4(content='emp', name)|full-text table emp_ft4"
DEP[trigger_dq]='CREATE TABLE log(x); CREATE TRIGGER log_ins AFTER INSERT ON log BEGIN UPDATE emp SET email = 1 WHERE "name" = new.x; END|trigger log_ins: names it in double quotes'

for k in unique_index partial_index expr_index view trigger update_of other_fk view_dq trigger_dq fts5_ext fts4_ext; do
    t_section "expand refused: $k on the old column"
    base_db "dep_$k"
    db_sql "${DEP[$k]%%|*}"
    before=$(schema)
    zdm_run advance 0001_ren
    t_rc "$k: expand refused" 3
    t_has "$k: names it" "emp.name: ${DEP[$k]#*|}" "$ZERR"
    t_has "$k: says nothing changed" "nothing was changed" "$ZERR"
    t_eq "$k: schema unchanged" "$before" "$(schema)"
    t_eq "$k: still pending" pending "$(zdm_phase_of 0001_ren)"
done

t_section "a view with a double-quoted string of its own is no blocker"
base_db dq_legit
# (a view joining emp that reads another table's name column)
db_sql 'CREATE TABLE club(id INTEGER PRIMARY KEY, name TEXT);
        CREATE VIEW v_lit AS SELECT club.name, "hello" AS h FROM emp JOIN club ON club.id = emp.id'
zdm_run advance 0001_ren
t_rc "dq_legit: expand" 0

t_section "a full-text table over the table's other columns is no blocker"
base_db fts_other
db_sql "CREATE VIRTUAL TABLE emp_mail USING fts5(email, content='emp', content_rowid='id');
        INSERT INTO emp_mail(emp_mail) VALUES ('rebuild')"
for ph in expanded backfilled cut_over complete; do
    zdm_run advance 0001_ren --no-backup
    t_rc "fts_other: advance to $ph" 0
done
t_eq "fts_other: the full-text index still reads" 1 "$(db_sql "SELECT count(*) FROM emp_mail WHERE emp_mail MATCH 'g'")"

# Dependencies in the table's own definition.
for k in check generated; do
    t_section "expand refused: $k in the table's definition"
    db_new sqlite "own_$k"
    plans_empty
    plan_write 0001_ren "$PLAN"
    if [ $k = check ]; then
        db_sql "CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, email TEXT, CHECK (length(name) < 50))"
    else
        db_sql "CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, email TEXT, up TEXT GENERATED ALWAYS AS (upper(name)))"
    fi
    zdm_run advance 0001_ren
    t_rc "$k: expand refused" 3
    t_has "$k: names the table's definition" "emp.name: the table's own definition uses it" "$ZERR"
done

t_section "contract refused: a view made after expand; dual-write still works"
base_db late_view
db_sql "CREATE INDEX emp_name_i ON emp(name); CREATE INDEX emp_email_name ON emp(email, name DESC)"
for ph in expanded backfilled cut_over; do
    zdm_run advance 0001_ren
    t_rc "advance to $ph" 0
    if [ $ph = expanded ]; then
        t_has "expand says the plain index moves" "index emp_name_i on emp.name moves to full_name at contract" "$ZERR"
        t_has "expand says the two-column one moves" "index emp_email_name on emp.name moves to full_name" "$ZERR"
    fi
done
# The new application writing all along (after cutover); each insert it
# saw succeed is logged, and must be there at the end.
(
    i=0
    while [ ! -e "$T_DIR/stop" ]; do
        i=$((i + 1))
        sqlite3 -cmd '.timeout 5000' "$T_SQLITE_FILE" "INSERT INTO emp(full_name, email) VALUES ('app$i', 'p$i@x')" \
            2>/dev/null && echo "app$i" >>"$T_DIR/app.ok"
    done
) &
app=$!
T_BG_PIDS+=("$app")
db_sql "CREATE VIEW v_late AS SELECT name FROM emp"
zdm_run advance 0001_ren --no-backup
t_rc "contract refused" 3
t_has "contract names the view" "emp.name: view v_late" "$ZERR"
t_eq "dual-write triggers kept" 4 "$(dw_count)"
t_eq "still cut_over" cut_over "$(zdm_phase_of 0001_ren)"
db_sql "INSERT INTO emp(full_name, email) VALUES ('new-app', 'n@x')"
t_eq "a new-app write reaches the old column" new-app "$(db_sql "SELECT name FROM emp WHERE email = 'n@x'")"
db_sql "DROP VIEW v_late"
zdm_run advance 0001_ren --no-backup
t_rc "contract once the view is gone" 0
touch "$T_DIR/stop"
wait "$app"
t_eq "plain indexes moved to the new column (same name, key order, DESC)" "emp_email_name:email,full_name:0,1
emp_name_i:full_name:0" \
    "$(db_sql "SELECT m.name || ':' || (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_xinfo(m.name)
                WHERE key ORDER BY seqno)) || ':' || (SELECT group_concat(\"desc\", ',') FROM (SELECT \"desc\"
                FROM pragma_index_xinfo(m.name) WHERE key ORDER BY seqno))
               FROM sqlite_master m WHERE m.name IN ('emp_name_i', 'emp_email_name') ORDER BY m.name")"
t_eq "the moved index is used" 1 "$(db_sql "EXPLAIN QUERY PLAN SELECT id FROM emp WHERE full_name = 'x'" | grep -c 'USING.*INDEX emp_name_i')"
t_eq "name is gone" 0 "$(db_sql "SELECT count(*) FROM pragma_table_info('emp') WHERE name = 'name'")"
t_eq "every write the application saw succeed is there" "$(sort "$T_DIR/app.ok")" \
    "$(db_sql "SELECT full_name FROM emp WHERE full_name LIKE 'app%'" | sort)"
t_cmp "the application wrote during the test" "$(wc -l <"$T_DIR/app.ok")" -gt 0
t_eq "no row without full_name" "" "$(db_sql "SELECT * FROM emp WHERE full_name IS NULL")"
t_has "history: complete" complete "$(zdm_phase_of 0001_ren)"

t_section "raw SQL contract steps: plain indexes go with the column (in a transaction or not)"
db_new sqlite raw
plans_empty
plan_write 0002_raw '
[[contract.steps]]
sql = "ALTER TABLE emp DROP COLUMN legacy"

[[contract.steps]]
sql = "ALTER TABLE emp DROP COLUMN old_code"
transaction = false'
db_sql "CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, legacy TEXT, old_code INT);
        CREATE INDEX emp_legacy ON emp(name, legacy); CREATE INDEX emp_code ON emp(old_code);"
for ph in expanded backfilled cut_over complete; do
    zdm_run advance 0002_raw --no-backup
    t_rc "raw: advance to $ph" 0
done
t_eq "raw: both columns gone" "id name" "$(db_sql "SELECT name FROM pragma_table_info('emp')" | paste -sd' ')"
t_eq "raw: their plain indexes too" 0 "$(db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'emp'")"

t_section "rollback of expand: a unique index on the new column"
base_db rb
zdm_run advance 0001_ren
t_rc "expand" 0
db_sql "CREATE UNIQUE INDEX fn_u ON emp(full_name); CREATE INDEX fn_i ON emp(full_name)"
zdm_run rollback 0001_ren
t_rc "rollback refused" 3
t_has "names the index" "emp.full_name: index fn_u" "$ZERR"
t_eq "dual-write kept" 4 "$(dw_count)"
t_eq "still expanded" expanded "$(zdm_phase_of 0001_ren)"
db_sql "INSERT INTO emp(name, email) VALUES ('old-app', 'o@x')"
t_eq "an old-app write reaches the new column" old-app "$(db_sql "SELECT full_name FROM emp WHERE email = 'o@x'")"
db_sql "DROP INDEX fn_u"
zdm_run rollback 0001_ren
t_rc "rollback with only a plain index" 0
t_eq "full_name is gone" 0 "$(db_sql "SELECT count(*) FROM pragma_table_info('emp') WHERE name = 'full_name'")"
t_eq "its plain index too" 0 "$(db_sql "SELECT count(*) FROM sqlite_master WHERE name = 'fn_i'")"

t_finish
