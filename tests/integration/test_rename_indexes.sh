#!/usr/bin/env bash
# test_rename_indexes.sh -- what becomes of the indexes on the column
# rename_column replaces.
#
#  * PostgreSQL: they go with the old column at contract (not carried
#    over); expand says so, naming each one (plain, multi-column,
#    expression), and names no unrelated index;
#  * SQLite: plain ones move to the new column (test_sqlite_contract.sh
#    checks the catalog); expand says they move.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init rename_indexes

PLAN=$T_PLAN_RENAME_EMP

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    t_section "$d: expand names the indexes on the old column"
    db_new "$d" ren_idx
    plans_empty
    plan_write 0001_ren "$PLAN"
    db_sql "CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, email TEXT);
            INSERT INTO emp(id, name, email) VALUES (1, 'ada', 'a@x');
            CREATE INDEX emp_name_i ON emp(name);
            CREATE INDEX emp_email_name ON emp(email, name);
            CREATE INDEX emp_email_i ON emp(email);"
    [ "$d" = pg ] && db_sql "CREATE INDEX emp_lower ON emp(lower(name))"
    zdm_run advance 0001_ren
    t_rc "$d: expand" 0
    if [ "$d" = pg ]; then
        for i in emp_name_i emp_email_name emp_lower; do
            t_has "$d: names $i" "index $i on emp.name goes with the column at contract" "$ZERR"
        done
    else
        for i in emp_name_i emp_email_name; do
            t_has "$d: names $i" "index $i on emp.name moves to full_name at contract" "$ZERR"
        done
    fi
    t_lacks "$d: not the index of another column" "emp_email_i" "$ZERR"
done
t_finish
