#!/usr/bin/env bash
# test_where_estimate.sh -- the rows a backfill's `where` matches, as the
# worker estimates them at the start (PostgreSQL; the "started: about N
# rows" line, which progress and its ETA begin from).
#
# The usual `where` names the column the expand step just added, which has
# no statistics yet: the planner's default selectivity guessed 139 rows of
# 30,000 (test_fencing's table).  The worker counts a sample of pages
# instead where that is cheap:
#   * a table of a few hundred pages: counted whole, exactly;
#   * a larger one (250,000 rows): within 5 % of the truth;
#   * a `where` whose subquery reads the whole table is not counted (the
#     planner's estimate stands): the backfill is still right;
#   * a table never analyzed (reltuples -1: it said "about -1 rows" in one
#     range), no `where`: its rows are sampled too, and it gets ranges.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init where_estimate
if ! t_pg_available; then
    T_SKIPPED="PostgreSQL (no server binaries)"
    t_section "a table never analyzed (reltuples -1), no where: its rows sampled"
run_case fresh 250000 "" fresh
t_eq "fresh: every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE dst IS DISTINCT FROM src * 2 + 1")"
t_eq "fresh: the estimate within 5 % of 250,000" 1 \
    "$(awk -v e="${EST:-0}" 'BEGIN { print (e >= 237500 && e <= 262500) ? 1 : 0 }')"
t_match "fresh: cut into several ranges" "to convert in ([2-9]|1[0-9]) ranges" "$ZERR"
t_finish
fi
t_pg_start

run_case() { # $1 name, $2 rows, $3 where ("": none), $4 "fresh": never analyzed
    db_new pg "est_$1"
    plans_empty
    plan_write p "[[expand.steps]]
sql = \"ALTER TABLE t ADD COLUMN dst bigint\"
down = \"ALTER TABLE t DROP COLUMN dst\"
[backfill]
table = \"t\"
${3:+where = \"$3\"}
set.dst = \"src * 2 + 1\"
[backfill.throttle]
max_latency_factor = 0"
    db_sql "CREATE TABLE t (id bigint PRIMARY KEY, src integer NOT NULL);
            INSERT INTO t SELECT g, CASE WHEN g % 50 = 0 THEN 7 ELSE g END FROM generate_series(1, $2) g" >/dev/null
    [ "${4:-}" = fresh ] || db_sql "ANALYZE t" >/dev/null
    zdm_run advance p
    t_rc "$1: expand" 0
    zdm_run advance p
    t_rc "$1: backfill" 0
    EST=$(sed -n 's/.*started: about \([0-9]*\) rows of t.*/\1/p' <<<"$ZERR" | head -1)
    t_ne "$1: the start's estimate logged" "" "$EST"
    t_note "$1: estimate $EST"
}

t_section "a small table: counted"
run_case small 30000 "dst IS NULL AND id % 4 = 0"
t_eq "small: the estimate is the count" 7500 "$EST"

t_section "a larger table: a sample of its pages"
run_case large 250000 "dst IS NULL AND id % 4 = 0"
t_eq "large: every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE id % 4 = 0 AND dst IS DISTINCT FROM src * 2 + 1")"
t_eq "large: the estimate within 5 % of 62,500" 1 \
    "$(awk -v e="${EST:-0}" 'BEGIN { print (e >= 59375 && e <= 65625) ? 1 : 0 }')"

t_section "a where that scans the table: not counted, the planner's estimate"
run_case costly 250000 "dst IS NULL AND src IN (SELECT src FROM t GROUP BY src HAVING count(*) > 1)"
t_eq "costly: every row converted" 0 \
    "$(db_sql "SELECT count(*) FROM t WHERE src = 7 AND dst IS DISTINCT FROM src * 2 + 1")"
t_section "a table never analyzed (reltuples -1), no where: its rows sampled"
run_case fresh 250000 "" fresh
t_eq "fresh: every row converted" 0 "$(db_sql "SELECT count(*) FROM t WHERE dst IS DISTINCT FROM src * 2 + 1")"
t_eq "fresh: the estimate within 5 % of 250,000" 1 \
    "$(awk -v e="${EST:-0}" 'BEGIN { print (e >= 237500 && e <= 262500) ? 1 : 0 }')"
t_match "fresh: cut into several ranges" "to convert in ([2-9]|1[0-9]) ranges" "$ZERR"
t_finish
