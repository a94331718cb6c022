#!/usr/bin/env bash
# test_crash.sh -- kill -9 of `zdm advance` in the middle of expand, on
# SQLite and PostgreSQL, then `zdm advance` again: it finishes, the schema
# is exactly as expected and no step runs twice (step 1 is a plain CREATE
# TABLE that fails if run again, so success proves it was skipped).
#
#  * during a transactional step (step 2 sleeps: pg_sleep / a long
#    recursive CTE; how long is read from a table "knob" so the resumed run
#    does not sleep): its half is rolled back, it runs again in full;
#  * during a step outside a transaction (transaction = false): it is left
#    "running" and the next run says so and runs it again;
#  * pg: between two steps (in the backoff sleep of a lock retry).
# SQLite: the lock row of the dead pid is taken over by the next run.
# PostgreSQL: the advisory lock goes with the session; while the killed
# run's backend is still busy the plan stays locked (exit 3).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init crash

# How long the slow step takes: forever (we kill it) or at once.
knob() {
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "UPDATE knob SET n = $([ "$1" = long ] && echo 1000000000000 || echo 1)"
    else
        db_sql "UPDATE knob SET s = $([ "$1" = long ] && echo 6 || echo 0)" >/dev/null
    fi
}

write_plans() {
    local cte="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < (SELECT n FROM knob)) SELECT count(*) FROM c"
    plan_write 0200_crash_tx "
description = \"step 2 is slow and runs in a transaction\"

[[expand.steps]]
name = \"a\"
sql  = \"CREATE TABLE a (x integer)\"
down = \"DROP TABLE a\"

[[expand.steps]]
name = \"b-slow\"
sql.pg     = \"CREATE TABLE b (x integer); SELECT pg_sleep((SELECT s FROM knob))\"
sql.sqlite = \"CREATE TABLE b (x integer); $cte\"
down = \"DROP TABLE b\"

[[expand.steps]]
name = \"c\"
sql  = \"CREATE TABLE c (x integer)\"
down = \"DROP TABLE c\"
"
    plan_write 0201_crash_notx "
description = \"step 2 is slow and runs outside a transaction\"

[[expand.steps]]
name = \"d\"
sql  = \"CREATE TABLE d (x integer)\"

[[expand.steps]]
name = \"slow\"
transaction = false
sql.pg     = \"SELECT pg_sleep((SELECT s FROM knob))\"
sql.sqlite = \"$cte\"

[[expand.steps]]
name = \"e\"
sql  = \"CREATE TABLE e (x integer)\"
"
}



sqlite_in_tx() { [ -e "$T_SQLITE_FILE-journal" ]; }
pg_sleeping() {
    [ "$(db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'zdm'
                 AND state = 'active' AND query LIKE '%pg_sleep%'")" = 1 ]
}
pg_no_zdm_backend() {
    [ "$(db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'zdm'")" = 0 ]
}

# After a kill: the killed run's lock row is still there, naming its pid.
check_dead_lock_row() {
    local d=$1 plan=$2 pid=$3
    t_eq "$d: $plan: the lock row of the killed run names its pid" "$pid" \
        "$(db_sql "SELECT pid FROM $(zdm_tbl locks) WHERE plan_id = '$plan'")"
}

# On PostgreSQL the killed run's backend goes on with its statement until
# it next talks to the client; it holds the advisory lock until then.
pg_wait_orphan() {
    local d=$1 plan=$2
    [ "$d" = pg ] || return 0
    # Only with seconds of its sleep left, so that it still holds the lock
    # when the advance below asks for it.
    local young
    young=$(db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'zdm'
                     AND state = 'active' AND query LIKE '%pg_sleep%'
                     AND clock_timestamp() - query_start < interval '3 s'")
    if [ "$young" = 1 ]; then
        zdm_run advance "$plan"
        t_rc "$d: $plan: advance while the killed run's backend still runs" 3
        t_has "$d: $plan: refused because of the lock" "plan $plan is locked by" "$ZERR"
    else
        t_note "the killed run's backend had slept 3 s already; lock refusal not checked"
    fi
    t_wait_for "the killed run's backend to end" 60 pg_no_zdm_backend
}

crash_in_tx_step() {
    local d=$1 plan=0200_crash_tx
    t_section "$d: kill -9 during a transactional step"
    knob long
    zdm_bg "$T_DIR/$d-tx1" advance "$plan"
    local pid=$ZBG_PID job=$ZBG_JOB
    t_wait_for "step 1 to be applied" 60 t_file_has "$T_DIR/$d-tx1.err" "step 1 a applied"
    if [ "$d" = sqlite ]; then
        t_wait_for "step 2's transaction to write" 60 sqlite_in_tx
    else
        t_wait_for "step 2 to sleep in pg_sleep" 60 pg_sleeping
    fi
    kill -9 "$pid"
    t_wait_exit "$job" 30
    t_eq "$d: the first run died of SIGKILL" 137 "$WAIT_RC"
    zdm_bg_collect "$T_DIR/$d-tx1" "advance $plan (killed)"
    check_dead_lock_row "$d" "$plan" "$pid"
    pg_wait_orphan "$d" "$plan"
    t_eq "$d: step 1 recorded done" "done" "$(db_step_status $plan 1)"
    t_eq "$d: step 2 not recorded" "" "$(db_step_status $plan 2)"
    t_eq "$d: step 2's half (table b) rolled back" 0 "$(db_has_table b)"
    t_eq "$d: plan still pending" pending "$(zdm_phase_of $plan)"

    knob short
    zdm_run advance "$plan"
    t_rc "$d: advance after the kill" 0
    t_has "$d: resumed to expanded" "$plan: pending -> expanded" "$ZOUT"
    t_has "$d: step 1 skipped" "step 1 already applied, skipping" "$ZERR"
    t_lacks "$d: step 1 not applied again" "step 1 a applied" "$ZERR"
    t_has "$d: step 2 applied" "step 2 b-slow applied" "$ZERR"
    t_has "$d: step 3 applied" "step 3 c applied" "$ZERR"
    zdm_run --json history "$plan"
    t_eq "$d: the killed run's history row says interrupted" "interrupted" \
        "$(jq -r '[.history[] | select(.action == "advance")][0].outcome' <<<"$ZOUT")"
    t_eq "$d: no history row left running" 0 \
        "$(jq '[.history[] | select(.outcome == "running")] | length' <<<"$ZOUT")"
    local t
    for t in a b c; do
        t_eq "$d: table $t exists" 1 "$(db_has_table $t)"
    done
    t_eq "$d: all three steps done" "1 done|2 done|3 done" \
        "$(db_sql "SELECT step_index || ' ' || status FROM $(zdm_tbl steps) WHERE plan_id = '$plan' ORDER BY step_index" | paste -sd'|')"
    t_eq "$d: the lock row is gone" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl locks) WHERE plan_id = '$plan'")"
    zdm_run --json history "$plan"
    t_eq "$d: the resumed run is in history as ok" "advance pending->expanded ok" \
        "$(jq -r '.history[-1] | "\(.action) \(.from)->\(.to) \(.outcome)"' <<<"$ZOUT")"
    t_eq "$d: the killed run's row names its pid" "$pid" \
        "$(jq -r '.history[] | select(.outcome != "ok" and .outcome != "refused") | .pid' <<<"$ZOUT" | head -n 1)"
}

crash_in_notx_step() {
    local d=$1 plan=0201_crash_notx
    t_section "$d: kill -9 during a step outside a transaction"
    knob long
    zdm_bg "$T_DIR/$d-ntx1" advance "$plan"
    local pid=$ZBG_PID job=$ZBG_JOB
    t_wait_for "step 1 to be applied" 60 t_file_has "$T_DIR/$d-ntx1.err" "step 1 d applied"
    if [ "$d" = sqlite ]; then
        t_wait_for "step 2 to be marked running" 60 '[ "$(db_step_status $plan 2)" = running ]'
    else
        t_wait_for "step 2 to sleep in pg_sleep" 60 pg_sleeping
    fi
    kill -9 "$pid"
    t_wait_exit "$job" 30
    t_eq "$d: the first run died of SIGKILL" 137 "$WAIT_RC"
    zdm_bg_collect "$T_DIR/$d-ntx1" "advance $plan (killed)"
    check_dead_lock_row "$d" "$plan" "$pid"
    pg_wait_orphan "$d" "$plan"
    t_eq "$d: step 2 left running" running "$(db_step_status $plan 2)"

    knob short
    zdm_run advance "$plan"
    t_rc "$d: advance after the kill" 0
    t_has "$d: resumed to expanded" "$plan: pending -> expanded" "$ZOUT"
    t_has "$d: says step 2 was interrupted" "step 2 was interrupted during a previous run; running it again" "$ZERR"
    t_has "$d: step 1 skipped" "step 1 already applied, skipping" "$ZERR"
    t_eq "$d: table d exists" 1 "$(db_has_table d)"
    t_eq "$d: table e exists" 1 "$(db_has_table e)"
    t_eq "$d: all three steps done" "1 done|2 done|3 done" \
        "$(db_sql "SELECT step_index || ' ' || status FROM $(zdm_tbl steps) WHERE plan_id = '$plan' ORDER BY step_index" | paste -sd'|')"
}

# PostgreSQL: step 2 waits for a lock another session holds; zdm is killed
# in the backoff sleep after a lock timeout, i.e. between two steps, with
# no transaction open.  Its session ends at once, and so does the lock.
crash_between_steps_pg() {
    local d=pg plan=0202_crash_between
    t_section "$d: kill -9 between two steps (in a lock-retry backoff)"
    db_sql "CREATE TABLE blk (x integer)" >/dev/null
    plan_write "$plan" '
[[expand.steps]]
name = "f"
sql  = "CREATE TABLE f (x integer)"

[[expand.steps]]
name = "blk-column"
sql  = "ALTER TABLE blk ADD COLUMN y integer"
lock_timeout = "100ms"
lock_retries = 50
'
    pg_session_start blocker
    pg_session_send blocker "BEGIN; SELECT count(*) FROM blk;"
    t_wait_for "the blocker to hold its lock" 30 '[ "$(pg_session_locks blocker blk)" -ge 1 ]'
    zdm_bg "$T_DIR/$d-btw" advance "$plan"
    local pid=$ZBG_PID job=$ZBG_JOB
    # The third retry sleeps at least 1 s: the kill lands in that sleep.
    t_wait_for "the third lock timeout" 60 t_file_has "$T_DIR/$d-btw.err" "(try 3 of 50"
    kill -9 "$pid"
    t_wait_exit "$job" 30
    t_eq "$d: the run died of SIGKILL" 137 "$WAIT_RC"
    zdm_bg_collect "$T_DIR/$d-btw" "advance $plan (killed)"
    # The idle session notices the dead client at once.
    t_wait_for "the killed run's session to end" 30 pg_no_zdm_backend
    t_eq "$d: step 1 done" "done" "$(db_step_status $plan 1)"
    t_eq "$d: step 2 not done" "" "$(db_step_status $plan 2)"
    pg_session_end blocker
    zdm_run advance "$plan"
    t_rc "$d: advance after the kill (lock free, blocker gone)" 0
    t_has "$d: step 1 skipped" "step 1 already applied, skipping" "$ZERR"
    t_eq "$d: blk.y added once" "x y " "$(db_columns blk | tr '\n' ' ')"
}

# Killed after the dual-write triggers' step committed and before the
# phase was recorded: the steps are done, the triggers in place, the plan
# still pending.  The next advance finishes expand.  (Before: its preflight
# created the triggers again, SQLite said "already exists", and every
# advance was refused, exit 3.)  The state is made by hand: the phase set
# back to pending after a whole expand is exactly what the kill leaves.
crash_after_triggers() {
    local d=$1 plan=0203_crash_dw
    t_section "$d: killed after the triggers' step, before the phase's record"
    db_sql "CREATE TABLE dw (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO dw VALUES (1, 1), (2, 2)" >/dev/null
    plan_write "$plan" '
[[expand.steps]]
sql  = "ALTER TABLE dw ADD COLUMN b integer"
down = "ALTER TABLE dw DROP COLUMN b"

[backfill]
table = "dw"
set.b = "a * 2"
[backfill.dual_write]
sources = ["a"]
'
    zdm_run advance "$plan"
    t_rc "$d: expand" 0
    db_sql "UPDATE $(zdm_tbl plans) SET phase = 'pending' WHERE id = '$plan'" >/dev/null
    t_eq "$d: the triggers' step is done" "done" "$(db_step_status $plan 2)"
    zdm_run advance "$plan"
    t_rc "$d: advance again" 0
    t_lacks "$d: no refusal" "already exists" "$ZERR"
    t_eq "$d: expanded" "expanded" "$(db_phase $plan)"
    zdm_run advance "$plan"
    t_rc "$d: backfill" 0
    db_sql "UPDATE dw SET a = 10 WHERE id = 1" >/dev/null
    t_eq "$d: the triggers convert the application's write" "20" "$(db_sql "SELECT b FROM dw WHERE id = 1")"
}

for_dialect() {
    local d=$1
    db_new "$d" crash
    plans_empty
    write_plans
    if [ "$d" = sqlite ]; then
        db_sql "CREATE TABLE knob (n integer); INSERT INTO knob VALUES (1)"
    else
        db_sql "CREATE TABLE knob (s float8); INSERT INTO knob VALUES (0)" >/dev/null
    fi
    crash_in_tx_step "$d"
    crash_in_notx_step "$d"
    crash_after_triggers "$d"
    if [ "$d" = pg ]; then
        crash_between_steps_pg
    fi
}

for_dialect sqlite
t_with_pg for_dialect pg
t_finish
