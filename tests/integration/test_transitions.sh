#!/usr/bin/env bash
# test_transitions.sh -- the state machine's guarantees (one transition
# function), on SQLite and PostgreSQL:
#  * 8 concurrent `zdm cutover` on a backfilled plan, many rounds: exactly
#    one moves it to cut_over, none ever runs contract (a marker table
#    written by every step counts each step's runs);
#  * rollback is refused (exit 3, naming them) while an applied plan
#    requires the plan; the rows stay;
#  * contract fails at its first step after the dual-write one; rollback
#    --force; fix; advance to complete: the dual-write triggers and
#    functions are gone (the step records of the undone phases were reset);
#  * rollback of a cut_over plan: refused without --force; with --force
#    on_rollback runs first, told cut_over -> rolled_back, and a failing
#    on_rollback leaves everything as it was;
#  * a run that lost the plan's lock stops before its next step with exit 1
#    (SQLite: zdm unlock; PostgreSQL: the session holding the advisory lock
#    is terminated during the backfill and the connection reopened).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init transitions

ROUNDS=${T_ROUNDS:-20}
dw_objects() {
    if [ "$T_DIALECT" = pg ]; then
        db_sql "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm_dw%')
                     + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'zdm_dw%')"
    else
        db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm_dw%'"
    fi
}
marks() { db_sql "SELECT count(*) FROM marks WHERE ev = '$1'"; }

# A plan whose every step writes a marker row.
marker_plan() {
    plan_write "$1" "
[[expand.steps]]
sql  = \"INSERT INTO marks VALUES ('expand1')\"
down = \"INSERT INTO marks VALUES ('unexpand1')\"
[[contract.steps]]
sql  = \"INSERT INTO marks VALUES ('contract1')\"
down = \"INSERT INTO marks VALUES ('uncontract1')\""
}

cutover_race() {
    local d=$1 r i bad=0 oks
    t_section "$d: 8 concurrent cutover x $ROUNDS rounds: one moves it, none contracts"
    db_new "$d" race_cut
    plans_empty
    db_sql "CREATE TABLE marks (ev text)" >/dev/null
    marker_plan p_cut
    zdm_run advance p_cut
    t_rc "$d: expand" 0
    zdm_run advance p_cut
    t_rc "$d: backfilled (no backfill)" 0
    local base
    base=$(db_sql "SELECT max(id) FROM $(zdm_tbl history)")
    for r in $(seq 1 "$ROUNDS"); do
        zdm_run stamp p_cut backfilled
        [ "$ZRC" = 0 ] || { t_rc "$d: round $r: stamp backfilled" 0; break; }
        for i in 1 2 3 4 5 6 7 8; do
            "$ZDM" --db "$T_DB" --plans "$T_PLANS" cutover p_cut >"$T_DIR/c$i.out" 2>"$T_DIR/c$i.err" &
        done
        wait
        if [ "$(marks contract1)" != 0 ]; then
            t_eq "$d: round $r: contract steps run by cutover" 0 "$(marks contract1)"
            bad=1
            break
        fi
        if [ "$(zdm_phase_of p_cut)" != cut_over ]; then
            t_eq "$d: round $r: phase after the cutovers" cut_over "$(zdm_phase_of p_cut)"
            bad=1
            break
        fi
    done
    t_eq "$d: no cutover ever ran contract" 0 "$(marks contract1)"
    t_eq "$d: expand ran once" 1 "$(marks expand1)"
    oks=$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE action = 'advance' AND to_phase = 'cut_over' AND outcome = 'ok'")
    t_eq "$d: one cutover per round moved the plan" "$ROUNDS" "$oks"
    t_eq "$d: no transition but cutover ran (every ok advance went backfilled -> cut_over)" 0 \
        "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE action = 'advance' AND outcome = 'ok'
                    AND (from_phase <> 'backfilled' OR to_phase <> 'cut_over') AND id > $base")"
    t_eq "$d: no history row left running" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE outcome = 'running'")"
    [ "$bad" = 0 ] && t_ok
}

dependents() {
    local d=$1
    t_section "$d: rollback refused while an applied plan requires it"
    db_new "$d" deps
    plans_empty
    plan_write a_tbl '
[[expand.steps]]
sql  = "CREATE TABLE ta (id integer PRIMARY KEY, v integer)"
down = "DROP TABLE ta"'
    plan_write b_col '
requires = ["a_tbl"]
[[expand.steps]]
sql  = "ALTER TABLE ta ADD COLUMN w integer"
down = "ALTER TABLE ta DROP COLUMN w"'
    zdm_complete a_tbl
    zdm_complete b_col
    db_sql "INSERT INTO ta (id, v) VALUES (1, 1), (2, 2), (3, 3)" >/dev/null
    zdm_run rollback a_tbl
    t_rc "$d: rollback of a plan an applied plan requires" 3
    t_has "$d: the refusal names the dependent" "applied plans require it: b_col (complete)" "$ZERR"
    t_eq "$d: a_tbl still complete" complete "$(zdm_phase_of a_tbl)"
    zdm_run rollback a_tbl --force
    t_rc "$d: --force does not override a dependent" 3
    t_eq "$d: rows kept" 3 "$(db_sql 'SELECT count(*) FROM ta')"
    # Both refusals say the same: one row, folded ("[repeated 2 times ...]").
    t_eq "$d: the refusal is in history" 1 \
        "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE plan_id = 'a_tbl' AND action = 'rollback' AND outcome = 'refused'")"
    t_has "$d: both refusals are in it" "[repeated 2 times" \
        "$(db_sql "SELECT detail FROM $(zdm_tbl history) WHERE plan_id = 'a_tbl' AND action = 'rollback' AND outcome = 'refused'")"
    # Once the dependent is rolled back, the plan may follow.
    zdm_run rollback b_col
    t_rc "$d: rollback b_col (complete -> cut_over)" 0
    zdm_run rollback b_col --force
    t_rc "$d: rollback b_col (cut_over -> rolled_back)" 0
    zdm_run rollback a_tbl
    t_rc "$d: then a_tbl's contract undo" 0
    t_eq "$d: a_tbl cut_over" cut_over "$(zdm_phase_of a_tbl)"
}

contract_fail_rollback() {
    local d=$1
    t_section "$d: contract fails after removing the triggers; rollback; the re-run removes them again"
    db_new "$d" cfail
    plans_empty
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO t (id, a) VALUES (1, 10), (2, 20), (3, 30)" >/dev/null
    plan_write p_dw '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a + 1"
[backfill.dual_write]
sources = ["a"]
[[contract.steps]]
sql  = "INSERT INTO must_exist VALUES (1)"
down = "DELETE FROM must_exist"'
    zdm_run advance p_dw
    t_rc "$d: expand" 0
    t_ne "$d: dual-write objects after expand" 0 "$(dw_objects)"
    zdm_run advance p_dw
    t_rc "$d: backfill" 0
    zdm_run advance p_dw
    t_rc "$d: cutover" 0
    zdm_run advance p_dw
    t_rc "$d: contract fails at its step 1" 1
    # (the triggers go in the same transaction as contract's first
    # destructive step, so a failed contract leaves them in place)
    t_ne "$d: the failed contract left the triggers" 0 "$(dw_objects)"
    zdm_run rollback p_dw
    t_rc "$d: rollback of cut_over without --force" 3
    zdm_run rollback p_dw --force
    t_rc "$d: rollback --force" 0
    t_has "$d: rollback output" "p_dw: cut_over -> rolled_back" "$ZOUT"
    t_eq "$d: no dual-write objects after rollback" 0 "$(dw_objects)"
    t_lacks "$d: column b dropped" b "$(db_columns t)"
    db_sql "CREATE TABLE must_exist (x integer)" >/dev/null
    local i
    for i in 1 2 3 4; do
        zdm_run advance p_dw
        t_rc "$d: advance $i after the fix" 0
    done
    t_eq "$d: complete" complete "$(zdm_phase_of p_dw)"
    t_lacks "$d: contract skipped no step as already applied" "already applied" "$ZERR"
    t_eq "$d: no dual-write triggers or functions once complete" 0 "$(dw_objects)"
    t_eq "$d: the contract step ran" 1 "$(db_sql 'SELECT count(*) FROM must_exist')"
    db_sql "UPDATE t SET a = 99 WHERE id = 1" >/dev/null
    t_eq "$d: b no longer follows a" 11 "$(db_sql 'SELECT b FROM t WHERE id = 1')"
}

cutover_rollback() {
    local d=$1
    t_section "$d: rollback of a cut_over plan: --force, on_rollback first"
    db_new "$d" cutrb
    plans_empty
    printf '#!/bin/sh\necho "$ZDM_EVENT $ZDM_PHASE $ZDM_NEXT_PHASE" >>"%s/switch.log"\n[ -e "%s/switch.fail" ] && exit 1\nexit 0\n' \
        "$T_DIR" "$T_DIR" >"$T_DIR/switch.sh"
    chmod +x "$T_DIR/switch.sh"
    : >"$T_DIR/switch.log"
    plan_write p_cr "
[[expand.steps]]
sql  = \"CREATE TABLE tcr (id integer)\"
down = \"DROP TABLE tcr\"
[hooks]
on_rollback = \"$T_DIR/switch.sh\""
    zdm_run advance p_cr && zdm_run advance p_cr && zdm_run advance p_cr
    t_eq "$d: cut_over" cut_over "$(zdm_phase_of p_cr)"
    zdm_run rollback p_cr
    t_rc "$d: refused without --force" 3
    t_has "$d: says --force" "zdm rollback p_cr --force" "$ZERR"
    t_eq "$d: on_rollback did not run" "" "$(cat "$T_DIR/switch.log")"
    touch "$T_DIR/switch.fail"
    zdm_run rollback p_cr --force
    t_rc "$d: a failing switch back stops the rollback" 1
    t_has "$d: and says nothing was undone" "nothing was undone" "$ZERR"
    t_eq "$d: table kept" 1 "$(db_has_table tcr)"
    t_eq "$d: still cut_over" cut_over "$(zdm_phase_of p_cr)"
    rm -f "$T_DIR/switch.fail"
    : >"$T_DIR/switch.log"
    zdm_run rollback p_cr --force
    t_rc "$d: rollback --force" 0
    t_eq "$d: on_rollback ran once, told cut_over -> rolled_back" "on_rollback cut_over rolled_back" \
        "$(cat "$T_DIR/switch.log")"
    t_eq "$d: table dropped" 0 "$(db_has_table tcr)"
    t_eq "$d: rolled_back" rolled_back "$(zdm_phase_of p_cr)"
}

lock_lost_sqlite() {
    t_section "sqlite: zdm unlock of a live run is refused; --force: it stops before its next step, exit 1"
    db_new sqlite lost
    plans_empty
    db_sql "CREATE TABLE marks (ev text)" >/dev/null
    plan_write p_lost "
[[expand.steps]]
sql = \"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c\"
transaction = false
down = \"SELECT 1\"
[[expand.steps]]
sql  = \"INSERT INTO marks VALUES ('expand2')\"
down = \"SELECT 1\""
    zdm_bg "$T_DIR/lost" advance p_lost
    t_wait_for "step 1 running" 30 "[ \"\$(db_sql \"SELECT status FROM zdm_steps WHERE plan_id = 'p_lost' AND step_index = 1\")\" = running ]"
    # the run is alive on this host: unlock refuses (taking its lock let a
    # second cutover run its hook beside the first); --force takes it
    zdm_run unlock p_lost
    t_rc "unlock of a live run: refused" 3
    t_has "... naming it and what to do" "whose process $ZBG_PID runs on this host" "$ZERR"
    t_eq "... its lock still there" 1 "$(db_sql "SELECT count(*) FROM $(zdm_tbl locks) WHERE plan_id = 'p_lost'")"
    zdm_run unlock --force p_lost
    t_rc "unlock --force" 0
    t_wait_exit "$ZBG_JOB" 60
    local rc=$WAIT_RC
    zdm_bg_collect "$T_DIR/lost" advance
    t_eq "the run stopped with exit 1" 1 "$rc"
    t_has "it says it lost the lock" "no longer holds the plan's lock" "$ZERR"
    t_eq "step 2 never ran" 0 "$(marks expand2)"
    t_eq "still pending" pending "$(zdm_phase_of p_lost)"
}

# pg: zdm killed with -9 during a long statement: the server session goes
# on and keeps the plan's advisory lock.  unlock said "removed the lock"
# and changed nothing; it now names the session and how to end it.
lock_live_pg() {
    t_section "pg: unlock while a dead zdm's server session still holds the lock names that session"
    db_new pg live
    plans_empty
    plan_write p_live "
[[expand.steps]]
sql  = \"SELECT pg_sleep(30)\"
down = \"SELECT 1\""
    zdm_bg "$T_DIR/live" advance p_live
    t_wait_for "the step runs" 30 "[ \"\$(db_sql \"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()\")\" = 1 ]"
    kill -9 "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 30
    zdm_run advance p_live
    t_rc "advance: refused" 3
    t_match "... naming the session that still runs" "the lock is held by server session [0-9]+ \\(active for [0-9]+ s; pg_stat_activity shows what it runs\\), still running" "$ZERR"
    zdm_run unlock p_live
    t_rc "unlock: refused" 3
    t_match "... naming the server session and its query" "held by server session [0-9]+ \\(active for [0-9]+ s" "$ZERR"
    t_has "... and how to end it" "pg_terminate_backend" "$ZERR"
    db_sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
    t_wait_for "the session is gone" 30 "[ \"\$(db_sql \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 4242\")\" = 0 ]"
    zdm_run unlock p_live
    t_rc "unlock once it is gone" 0
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    cutover_race "$d"
    dependents "$d"
    contract_fail_rollback "$d"
    cutover_rollback "$d"
    # pg: a lost lock during the backfill is test_lock_lost.sh
    [ "$d" = sqlite ] && lock_lost_sqlite
    [ "$d" = pg ] && lock_live_pg
done
t_finish
