#!/usr/bin/env bash
# test_hostile_idents.sh -- generated SQL is injection-proof by
# construction.  Op fields allow letters, digits, _, $ and UTF-8 in names,
# so the table and the renamed columns carry "$zdm$" and "$zdm_1$"; a
# column created by raw SQL, which zdm reads back from the catalog into
# the dual-write trigger bodies, carries the other quoting characters
# (" ' $zdm$ % \); the `up` expression holds "$zdm$" too.  They go through
# rename_column (view DO block, dependency guard, NOT NULL carry-over,
# default move) and add_column with `up` (dual-write trigger functions and
# a backfill) to complete, on SQLite and PostgreSQL.  Before the tags were
# chosen per body, the first "$zdm$" in a name ended the DO block early
# (syntax error in the middle of expand).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init hostile_idents

T_SQL='"t$zdm$é"'
C_OLD='a$zdm$b'
C_NEW='c$zdm_1$d'
C_RAW='"q""'"'"'$zdm$%\"' # q"'$zdm$%\  quoted for SQL

write_plans() {
    local d=$1 notnull=""
    [ "$d" = pg ] && notnull="NOT NULL DEFAULT 'dflt'"
    # printf keeps every character as written ('%s' only).
    printf '%s\n' '[[expand.steps]]' \
        "sql = '''CREATE TABLE \"t\$zdm\$é\" (id integer PRIMARY KEY, \"a\$zdm\$b\" text $notnull, $C_RAW text)'''" \
        "down = '''DROP TABLE \"t\$zdm\$é\"'''" >"$T_PLANS/0001_base.toml"
    printf '%s\n' 'requires = ["0001_base"]' '[[expand.steps]]' 'op = "rename_column"' \
        'table = "t$zdm$é"' 'column = "a$zdm$b"' 'to = "c$zdm_1$d"' >"$T_PLANS/0002_rename.toml"
    [ "$d" = sqlite ] && printf 'type = "text"\n' >>"$T_PLANS/0002_rename.toml"
    printf '%s\n' 'requires = ["0002_rename"]' '[[expand.steps]]' 'op = "add_column"' \
        'table = "t$zdm$é"' 'column = "e$zdm$f"' 'type = "text"' \
        "up = '''"\''$zdm$'\'' || "c$zdm_1$d" || coalesce('"$C_RAW"', '\'\'')'\'\'\' >"$T_PLANS/0003_up.toml"
}

run_case() {
    local d=$1
    t_section "$d: hostile identifiers through the whole lifecycle"
    db_new "$d" hostile
    plans_empty
    write_plans "$d"
    zdm_run plan validate
    t_rc "$d: plans valid" 0
    zdm_complete 0001_base || return
    db_sql "INSERT INTO $T_SQL (id, \"$C_OLD\", $C_RAW) VALUES (1, 'one', '%'), (2, 'two', NULL)"
    zdm_complete 0002_rename || return
    t_eq "$d: the renamed column has the data" "one|two" \
        "$(db_sql "SELECT \"$C_NEW\" FROM $T_SQL ORDER BY id" | paste -sd'|')"
    if [ "$d" = pg ]; then
        t_eq "$d: the default moved to the new column" "dflt" \
            "$(db_sql "INSERT INTO $T_SQL (id) VALUES (3) RETURNING \"$C_NEW\"")"
        t_eq "$d: NOT NULL carried over" "t" \
            "$(db_sql "SELECT attnotnull FROM pg_attribute WHERE attrelid = '$T_SQL'::regclass AND attname = '$C_NEW'")"
    else
        db_sql "INSERT INTO $T_SQL (id, \"$C_NEW\") VALUES (3, 'dflt')"
    fi
    zdm_run advance 0003_up
    t_rc "$d: expand of add_column with up" 0
    db_sql "INSERT INTO $T_SQL (id, \"$C_NEW\") VALUES (4, 'four')"
    t_eq "$d: the dual-write trigger fills the new column" '$zdm$four' \
        "$(db_sql "SELECT \"e\$zdm\$f\" FROM $T_SQL WHERE id = 4")"
    zdm_run advance 0003_up
    t_rc "$d: backfill" 0
    t_eq "$d: every row backfilled" '$zdm$one%|$zdm$two|$zdm$dflt|$zdm$four' \
        "$(db_sql "SELECT \"e\$zdm\$f\" FROM $T_SQL ORDER BY id" | paste -sd'|')"
    zdm_run advance 0003_up
    t_rc "$d: cutover" 0
    zdm_run advance 0003_up
    t_rc "$d: contract" 0
    t_eq "$d: complete" complete "$(zdm_phase_of 0003_up)"
}

run_case sqlite
if t_pg_available; then
    t_pg_start
    run_case pg
else
    t_note "no PostgreSQL server binaries: SQLite only"
fi

t_finish
