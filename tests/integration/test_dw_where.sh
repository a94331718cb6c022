#!/usr/bin/env bash
# test_dw_where.sh -- the dual-write trigger's `where` means the same
# whichever way the function evaluates it (PostgreSQL).
#
# A `where` that reads the row's own columns only is an expression on NEW
# in the trigger function; any other (a subquery, say) a query on NEW seen
# as a one-row table.  Two identical tables, two plans whose wheres select
# the same rows, one of each kind:
#   ta  where = "score > 10 AND dst IS NULL"                      (expression)
#   tb  where = "score > 10 AND dst IS NULL AND EXISTS (SELECT 1)" (query)
# The rows' scores are NULL, 5 and 20: a NULL `where` matches nothing.
# After expand, the application writes every row's source and inserts new
# rows; then, in both tables alike, dst = upper(src) exactly where score >
# 10, and NULL elsewhere.  The functions are read back to show that each
# table had the kind of evaluation it was meant to have.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init test_dw_where

# plan NAME TABLE WHERE
plan() {
    plan_write "$1" "[[expand.steps]]
sql = \"CREATE TABLE $2 (id bigint PRIMARY KEY, src text NOT NULL, score integer, dst text)\"
down = \"DROP TABLE $2\"
[backfill]
table = \"$2\"
where = \"$3\"
set.dst = \"upper(src)\"
[backfill.dual_write]
sources = [\"src\"]"
}

# the function body of plan $1's forward trigger
body() {
    db_sql "SELECT prosrc FROM pg_proc WHERE proname = 'zdm_dw_$1_fwd'"
}

# rows of table $1 whose dst is not what the where says
wrong() {
    db_sql "SELECT count(*) FROM $1 WHERE dst IS DISTINCT FROM
              (CASE WHEN score > 10 THEN upper(src) END)"
}

case_same() {
    t_section "an expression on NEW and a query on NEW select the same rows"
    db_new pg dw_where
    plans_empty
    plan pa ta "score > 10 AND dst IS NULL"
    plan pb tb "score > 10 AND dst IS NULL AND EXISTS (SELECT 1)"
    zdm_run advance pa
    t_rc "expand pa" 0 || echo "$ZERR" >&2
    zdm_run advance pb
    t_rc "expand pb" 0
    t_has "pa: the where is an expression on NEW" "IS NOT TRUE" "$(body pa)"
    t_lacks "pa: ... not a query" "NOT EXISTS" "$(body pa)"
    t_has "pb: the where is a query on NEW" "NOT EXISTS" "$(body pb)"
    local t
    for t in ta tb; do
        # the application: rows inserted (the INSERT trigger), then every
        # source written (the UPDATE trigger)
        db_sql "INSERT INTO $t (id, src, score)
                SELECT g, 'r' || g, (ARRAY[NULL, 5, 20])[g % 3 + 1] FROM generate_series(1, 30) g" >/dev/null
        db_sql "UPDATE $t SET dst = NULL" >/dev/null
        db_sql "UPDATE $t SET src = src || 'x'" >/dev/null
        db_sql "INSERT INTO $t (id, src, score)
                SELECT g, 'n' || g, (ARRAY[NULL, 5, 20])[g % 3 + 1] FROM generate_series(31, 60) g" >/dev/null
    done
    t_eq "ta: dst is upper(src) exactly where score > 10" 0 "$(wrong ta)"
    t_eq "tb: the same" 0 "$(wrong tb)"
    t_eq "ta: rows converted (score 20)" 20 "$(db_sql "SELECT count(dst) FROM ta")"
    t_eq "the two tables agree row by row" 0 \
        "$(db_sql "SELECT count(*) FROM ta FULL JOIN tb USING (id) WHERE ta.dst IS DISTINCT FROM tb.dst")"
    t_eq "rows with a NULL score are untouched" 0 "$(db_sql "SELECT count(dst) FROM ta WHERE score IS NULL")"
}

t_with_pg t_run case_same
t_finish
