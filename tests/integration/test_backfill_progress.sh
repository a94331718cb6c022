#!/usr/bin/env bash
# test_backfill_progress.sh -- honest progress of a backfill whose `where`
# matches a known fraction of the table, by several workers (PostgreSQL
# and SQLite).
#
# Table t: 80,000 rows, `where = "dst IS NULL AND id % 4 = 0"`: 20,000
# rows to convert.  PostgreSQL's planner guesses that `where` far off (the
# default selectivity of an expression), SQLite counts it.  While
# --workers 3 run (max_rows_per_second keeps them at it for seconds),
# zdm --json status is read over and over; every reading must hold:
#   * rows_left_estimate >= 0, percent_done in [0, 100);
#   * once a range is done: rows_done + rows_left_estimate within 25 % of
#     the truth (the estimate refined by the finished ranges: the start's
#     guess is replaced);
# and at the end: percent_done 100, rows_left_estimate 0, the last
# progress line of the workers 100.0 % of the rows converted, no line
# over 100 % or with more rows done than its total.  Nothing is timed.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init test_backfill_progress

ROWS=80000
TRUTH=20000

setup() {
    local d=$1
    db_new "$d" "progress_$d"
    plans_empty
    plan_write p "[[expand.steps]]
sql = \"SELECT 1\"
down = \"SELECT 1\"
[backfill]
table = \"t\"
set.dst = \"src * 2 + 1\"
where = \"dst IS NULL AND id % 4 = 0\"
dual_write = false
[backfill.throttle]
batch_size = 500
max_latency_factor = 0
max_rows_per_second = 3000"
    if [ "$d" = pg ]; then
        db_sql "CREATE TABLE t (id bigint PRIMARY KEY, src integer NOT NULL, dst bigint);
                INSERT INTO t (id, src) SELECT g, g % 1000 FROM generate_series(1, $ROWS) g; ANALYZE t;" >/dev/null
    else
        db_sql "CREATE TABLE t (id integer PRIMARY KEY, src integer NOT NULL, dst integer);
                WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $ROWS)
                INSERT INTO t (id, src) SELECT x, x % 1000 FROM g;" >/dev/null
    fi
    zdm_run advance p
    t_rc "$d: expand p" 0
}

case_progress() {
    local d=$1
    t_section "$d: --workers 3, a where matching 1 row in 4"
    setup "$d"
    zdm_bg "$T_DIR/bf-$d" backfill p --workers 3
    local job=$ZBG_JOB
    : >"$T_DIR/samples-$d"
    local n=0
    while t_alive "$ZBG_PID" && [ "$n" -lt 2000 ]; do
        zdm_run --json status p
        [ "$ZRC" = 0 ] && jq -c '.plans[0] | {phase, b: .backfill}' <<<"$ZOUT" >>"$T_DIR/samples-$d"
        n=$((n + 1))
    done
    t_wait_exit "$job" 300
    zdm_bg_collect "$T_DIR/bf-$d"
    t_eq "$d: backfill exit" 0 "$WAIT_RC"
    t_eq "$d: rows left unconverted" 0 "$(db_sql "SELECT count(*) FROM t WHERE id % 4 = 0 AND dst IS NULL")"
    t_eq "$d: rows converted outside the where" 0 "$(db_sql "SELECT count(*) FROM t WHERE id % 4 <> 0 AND dst IS NOT NULL")"
    local mid
    mid=$(jq -s '[.[] | select(.phase == "expanded" and .b.started)] | length' "$T_DIR/samples-$d")
    t_note "$d: $mid readings while it ran; the start's estimate: $(jq -s 'map(.b.rows_total_estimate) | max' "$T_DIR/samples-$d")"
    t_eq "$d: readings while it ran (some)" 1 "$([ "$mid" -gt 3 ] && echo 1 || echo 0)"
    t_eq "$d: readings with a negative rows left" 0 \
        "$(jq -s '[.[] | select(.b.rows_left_estimate < 0)] | length' "$T_DIR/samples-$d")"
    t_eq "$d: readings at 100 % (or more) before every range was done" 0 \
        "$(jq -s '[.[] | select(.b.ranges_done < .b.ranges and .b.percent_done >= 100)] | length' "$T_DIR/samples-$d")"
    local refined off
    refined=$(jq -s '[.[] | select(.phase == "expanded" and .b.ranges_done >= 1 and .b.ranges_done < .b.ranges)] | length' \
        "$T_DIR/samples-$d")
    off=$(jq -s --argjson t "$TRUTH" '[.[] | select(.phase == "expanded" and .b.ranges_done >= 1)
          | (.b.rows_done + .b.rows_left_estimate) as $e
          | select($e > $t * 1.25 or $e < $t * 0.75) | $e] | .[0:5]' "$T_DIR/samples-$d")
    t_note "$d: $refined readings after a range was done"
    t_eq "$d: readings after a range finished whose total is off the truth ($TRUTH) by over 25 %" "[]" "$(jq -c . <<<"$off")"
    # after the end
    zdm_run --json status p
    t_eq "$d: at the end: phase" backfilled "$(jq -r '.plans[0].phase' <<<"$ZOUT")"
    t_eq "$d: at the end: rows done, left, percent" "$TRUTH 0 100" \
        "$(jq -r '.plans[0].backfill | "\(.rows_done) \(.rows_left_estimate) \(.percent_done)"' <<<"$ZOUT")"
    # the workers' progress lines: "N of ~T rows (P%)"
    local lines bad last
    lines=$(grep -o '[0-9]* of ~[0-9]* rows ([0-9.]*%)' "$T_DIR/bf-$d.err")
    bad=$(awk '{ n = $1 + 0; t = substr($3, 2) + 0; p = substr($5, 2) + 0; if (n > t || p > 100) print }' <<<"$lines" | head -3)
    t_eq "$d: progress lines over 100 % or more rows than their total" "" "$bad"
    last=$(grep -o '[0-9]* of ~[0-9]* rows ([0-9.]*%)' "$T_DIR/bf-$d.err" | tail -1)
    t_eq "$d: the last progress line" "$TRUTH of ~$TRUTH rows (100.0%)" "$last"
}

# An empty table: the backfill has no range to walk and is done at once,
# and both its last line and status say 100 % (they said 0.0 %).
case_empty() {
    local d=$1
    t_section "$d: an empty table is 100 % done"
    db_new "$d" "empty_$d"
    plans_empty
    db_sql "CREATE TABLE e (id integer PRIMARY KEY, src integer, dst integer)" >/dev/null
    plan_write pe '[[expand.steps]]
sql = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "e"
set.dst = "src * 2"'
    zdm_run advance pe
    zdm_run advance pe
    t_rc "$d: backfilled" 0
    t_has "$d: the last line says 100 %" "0 of ~0 rows (100.0%)" "$ZERR"
    zdm_run --json status pe
    t_eq "$d: status too" "backfilled 100" "$(jq -r '.plans[0] | "\(.phase) \(.backfill.percent_done)"' <<<"$ZOUT")"
}

t_with_pg t_run case_progress pg
t_run case_progress sqlite
t_run case_empty sqlite
t_with_pg t_run case_empty pg
t_finish
