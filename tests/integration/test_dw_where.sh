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

# A column whose name is not ASCII, unquoted in set and where: the trigger
# function reads it as NEW."größe".  Its bytes were read as punctuation,
# the name stayed bare in the function, and every write of the
# application failed once expand had installed it (column "größe" does
# not exist); the preflight, which compiled the expression against the
# table under the name new, resolved the bare name and let it pass.
case_names() {
    t_section "a non-ASCII column name in set and where"
    db_new pg dw_names
    plans_empty
    plan_write pc "[[expand.steps]]
sql = \"CREATE TABLE tc (id bigint PRIMARY KEY, größe text NOT NULL, dst text)\"
down = \"DROP TABLE tc\"
[backfill]
table = \"tc\"
where = \"größe <> 'skip'\"
set.dst = \"upper(größe)\"
[backfill.dual_write]
sources = [\"größe\"]"
    zdm_run advance pc
    t_rc "expand pc" 0
    t_has "the function reads NEW.\"größe\"" 'upper(NEW."größe")' "$(body pc)"
    t_has "... and the where is an expression on NEW" 'IF (NEW."größe" <> '"'skip'" "$(body pc)"
    db_sql "INSERT INTO tc (id, größe) VALUES (1, 'a'), (2, 'skip'), (3, 'c')" >/dev/null
    t_eq "the application's inserts work" 3 "$(db_sql "SELECT count(*) FROM tc")"
    db_sql "UPDATE tc SET größe = größe || 'x' WHERE id = 1" >/dev/null
    t_eq "... and its updates" "ax" "$(db_sql "SELECT größe FROM tc WHERE id = 1")"
    t_eq "converted where it matches, untouched where not" "1:AX 2: 3:C" \
        "$(db_sql "SELECT string_agg(id || ':' || coalesce(dst, ''), ' ' ORDER BY id) FROM tc")"
}

t_with_pg t_run case_same
t_with_pg t_run case_names
t_finish
