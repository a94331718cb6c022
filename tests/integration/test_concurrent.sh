#!/usr/bin/env bash
# test_concurrent.sh -- a second zdm on a plan another run holds, on SQLite
# and PostgreSQL: advance (and stamp, rollback) exit 3 without waiting,
# naming the holder (user@host, pid, since); nothing changes; the refusal
# is in history.  The holder is an `advance` whose step 2 sleeps.
#  * SQLite, holder outside a transaction (no database lock held);
#  * SQLite, holder inside a transaction (it has the write lock: the second
#    run must still say "locked by", not "database is locked");
#  * PostgreSQL (advisory lock); the holder is then cancelled, which
#    releases the lock, and the plan resumes.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init concurrent

ME="$(id -un)@$(hostname)"
FOREVER_CTE="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) SELECT count(*) FROM c"


# The second run while PLAN is held by pid HOLDER; "quick" when the holder
# has no database lock, so nothing may make the refusal wait.
second_runs_refused() {
    local d=$1 plan=$2 holder=$3 quick=${4:-} t0 t1
    db_dump "$T_DIR/$d-$plan-before.sql"
    t0=$(t_now_ms)
    zdm_run advance "$plan"
    t1=$(t_now_ms)
    t_rc "$d: $plan: second advance while held" 3
    t_match "$d: $plan: names the holder (user@host, pid, since)" \
        "plan $plan is locked by $ME pid $holder since [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z" "$ZERR"
    t_has "$d: $plan: says what to do" "zdm unlock $plan" "$ZERR"
    t_lacks "$d: $plan: the error is not a database lock error" "database is locked" "$(grep '^zdm:' <<<"$ZERR")"
    echo "    (refused in $((t1 - t0)) ms)"
    if [ "$quick" = quick ]; then
        # At once: not after waiting out a lock (the SQLite busy timeout is
        # 5 s, lock_timeout 2 s).  A bound far above a normal run's time.
        t_cmp "$d: $plan: refused without waiting (ms)" $((t1 - t0)) -lt 4000
    fi
    zdm_run stamp "$plan" expanded
    t_rc "$d: $plan: stamp while held" 3
    t_has "$d: $plan: stamp names the holder" "pid $holder" "$ZERR"
    zdm_run rollback "$plan"
    t_rc "$d: $plan: rollback while held" 3
    t_eq "$d: $plan: the holder still runs" 0 "$(kill -0 "$holder" 2>/dev/null; echo $?)"
    t_eq "$d: $plan: still pending" pending "$(zdm_phase_of "$plan")"
    db_dump "$T_DIR/$d-$plan-after.sql"
    t_same_file "$d: $plan: the refused runs changed nothing" "$T_DIR/$d-$plan-before.sql" "$T_DIR/$d-$plan-after.sql"
}

# The refusals are in history (once the database is free to write them).
refusals_in_history() {
    local d=$1 plan=$2 holder=$3
    zdm_run --json history "$plan"
    t_eq "$d: $plan: history has the refused advance, stamp, rollback" \
        "advance refused|stamp refused|rollback refused" \
        "$(jq -r '.history[] | select(.outcome == "refused") | "\(.action) \(.outcome)"' <<<"$ZOUT" | paste -sd'|')"
    t_has "$d: $plan: the refusal's detail names the holder" "locked by $ME pid $holder" \
        "$(jq -r '.history[] | select(.outcome == "refused") | .detail' <<<"$ZOUT" | head -n 1)"
}

sqlite_cases() {
    local d=sqlite
    t_section "$d: the holder runs a step outside a transaction"
    db_new sqlite concurrent
    plans_empty
    plan_write 0400_hold "
[[expand.steps]]
sql = \"CREATE TABLE h1 (x integer)\"

[[expand.steps]]
transaction = false
sql = \"$FOREVER_CTE\"
"
    plan_write 0401_hold_tx "
[[expand.steps]]
sql = \"CREATE TABLE h2 (x integer); $FOREVER_CTE\"
"
    zdm_bg "$T_DIR/hold" advance 0400_hold
    local holder=$ZBG_PID job=$ZBG_JOB
    t_wait_for "the holder to be in step 2" 60 '[ "$(db_step_status 0400_hold 2)" = running ]'
    second_runs_refused "$d" 0400_hold "$holder" quick
    refusals_in_history "$d" 0400_hold "$holder"
    kill -9 "$holder"
    t_wait_exit "$job" 30

    t_section "$d: the holder runs a step inside a transaction (write lock held)"
    zdm_bg "$T_DIR/holdtx" advance 0401_hold_tx
    holder=$ZBG_PID
    job=$ZBG_JOB
    t_wait_for "the holder to be in its step" 60 \
        't_file_has "$T_DIR/holdtx.err" "starting:" && [ -e "$T_SQLITE_FILE-journal" ]'
    # The holder has the database's write lock: the refusals still come at
    # once (no busy wait), and are recorded once the lock is free.
    second_runs_refused "$d" 0401_hold_tx "$holder" quick
    zdm_run --json history 0401_hold_tx
    t_eq "$d: no refusal could be recorded while the holder had the write lock" 0 \
        "$(jq '[.history[] | select(.outcome == "refused")] | length' <<<"$ZOUT")"
    kill -9 "$holder"
    t_wait_exit "$job" 30
    t_wait_for "the refusals recorded once the write lock is free" 30 \
        "[ \"\$(zdm_run --json history 0401_hold_tx; jq '[.history[] | select(.outcome == \"refused\")] | length' <<<\"\$ZOUT\")\" = 3 ]"
    # (written by three waiting processes: in any order)
    zdm_run --json history 0401_hold_tx
    t_eq "$d: 0401_hold_tx: history has the refused advance, stamp, rollback" \
        "advance refused|rollback refused|stamp refused" \
        "$(jq -r '.history[] | select(.outcome == "refused") | "\(.action) \(.outcome)"' <<<"$ZOUT" | sort | paste -sd'|')"
    t_eq "$d: 0401_hold_tx: each naming the holder" 3 \
        "$(jq -r --arg h "locked by $ME pid $holder" '[.history[] | select(.outcome == "refused" and .pid != '"$holder"' and (.detail | contains($h)))] | length' <<<"$ZOUT")"
}

pg_cases() {
    local d=pg
    t_section "$d: the holder sleeps in step 2 (advisory lock)"
    db_new pg concurrent
    db_sql "CREATE TABLE knob (s float8); INSERT INTO knob VALUES (600)" >/dev/null
    plans_empty
    plan_write 0400_hold '
[[expand.steps]]
sql = "CREATE TABLE h1 (x integer)"

[[expand.steps]]
sql = "CREATE TABLE h2 (x integer); SELECT pg_sleep((SELECT s FROM knob))"
'
    zdm_bg "$T_DIR/hold" advance 0400_hold
    local holder=$ZBG_PID job=$ZBG_JOB
    t_wait_for "the holder to sleep in step 2" 60 \
        '[ "$(db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = '\''zdm'\'' AND state = '\''active'\'' AND query LIKE '\''%pg_sleep%'\''")" = 1 ]'
    second_runs_refused "$d" 0400_hold "$holder" quick
    refusals_in_history "$d" 0400_hold "$holder"

    t_section "$d: the holder is cancelled: the lock goes with it, the plan resumes"
    db_sql "UPDATE knob SET s = 0" >/dev/null
    db_sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'zdm'
             AND query LIKE '%pg_sleep%'" >/dev/null
    t_wait_exit "$job" 30
    t_eq "$d: the cancelled holder exits 1" 1 "$WAIT_RC"
    zdm_bg_collect "$T_DIR/hold" "advance 0400_hold (cancelled)"
    t_has "$d: the holder says why" "canceling statement due to user request" "$ZERR"
    t_eq "$d: its lock row is gone" 0 "$(db_sql "SELECT count(*) FROM zdm.locks")"
    zdm_run advance 0400_hold
    t_rc "$d: advance after the holder is gone" 0
    t_has "$d: resumes at step 2" "step 1 already applied, skipping" "$ZERR"
    t_eq "$d: h2 created" 1 "$(db_has_table h2)"
}

sqlite_cases
t_with_pg pg_cases
t_finish
