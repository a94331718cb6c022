#!/usr/bin/env bash
# test_lock_lost.sh -- advance's own backfill loses the plan's lock (the
# PostgreSQL session holding the advisory lock dies; zdm unlock --force
# removes an SQLite lock row whose holder is alive, which zdm unlock alone
# refuses) while its worker waits, paused: once resumed, the worker
# records nothing -- the plan stays expanded, no "backfilled" history row,
# no after_backfill hook -- advance exits 1, and the next advance finishes.
# Also: the on_rollback hook of a plain rollback (complete -> cut_over) is
# told the real transition (ZDM_FROM_PHASE, ZDM_TO_PHASE), not only
# "cut_over -> cut_over" (ZDM_PHASE, ZDM_NEXT_PHASE: the phase reached).
# Deterministic: the lock goes while the worker is paused (zdm pause).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init lock_lost


backfill_lock_lost() {
    local d=$1 rc
    t_section "$d: advance's backfill loses the plan's lock while paused: it records nothing"
    db_new "$d" lost
    plans_empty
    printf '#!/bin/sh\necho "$ZDM_EVENT" >>"%s/hook.log"\n' "$T_DIR" >"$T_DIR/hook.sh"
    chmod +x "$T_DIR/hook.sh"
    : >"$T_DIR/hook.log"
    zdm_small_backfill p_l "[hooks]
after_backfill = \"$T_DIR/hook.sh\""
    zdm_run advance p_l
    t_rc "$d: expand" 0
    zdm_run pause p_l
    t_rc "$d: pause" 0
    zdm_bg "$T_DIR/l$d" advance p_l
    zdm_wait_range_held "$d: the worker holds a range (paused)" p_l
    if [ "$d" = pg ]; then
        db_sql "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = 4242" >/dev/null
    else
        # the holder is alive, on this host: refused (a second run would
        # go on beside it); --force, as for a pid another program took
        zdm_run unlock p_l
        t_rc "$d: unlock of a live holder: refused" 3
        t_has "$d: ... naming it" "whose process $ZBG_PID runs on this host" "$ZERR"
        zdm_run unlock --force p_l
        t_rc "$d: unlock --force" 0
    fi
    zdm_run resume p_l
    t_rc "$d: resume" 0
    t_wait_exit "$ZBG_JOB" 60
    rc=$WAIT_RC
    zdm_bg_collect "$T_DIR/l$d" advance
    t_eq "$d: the run stopped with exit 1" 1 "$rc"
    t_has "$d: it says it lost the lock" "no longer holds the plan's lock" "$ZERR"
    t_eq "$d: still expanded" expanded "$(zdm_phase_of p_l)"
    t_eq "$d: no backfilled row in history" 0 \
        "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE plan_id = 'p_l' AND to_phase = 'backfilled' AND outcome = 'ok'")"
    t_eq "$d: no after_backfill hook ran" "" "$(cat "$T_DIR/hook.log")"
    t_eq "$d: no history row left running" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE outcome = 'running'")"
    zdm_run advance p_l
    t_rc "$d: the next advance finishes the backfill" 0
    t_eq "$d: backfilled" backfilled "$(zdm_phase_of p_l)"
    t_eq "$d: every row converted" 0 "$(db_sql 'SELECT count(*) FROM t WHERE b IS NULL')"
    t_eq "$d: after_backfill ran once" after_backfill "$(cat "$T_DIR/hook.log")"
}

# pg: an immediate restart of the server (not only the lock's session)
# while advance's worker waits, paused: the worker reconnects, but the
# run no longer holds the plan's lock, so it records nothing.
restart_in_backfill() {
    local how=$1 rc
    t_section "pg: $how restart during advance's backfill: it records nothing, the next advance finishes"
    db_new pg rst$how
    plans_empty
    zdm_small_backfill p_r
    zdm_run advance p_r
    zdm_run pause p_r
    zdm_bg "$T_DIR/r$how" advance p_r
    zdm_wait_range_held "$how: the worker holds a range (paused)" p_r
    _pg_as_owner "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -l "$_PG_DIR/server.log" -m "$how" -w -t 60 restart \
        >"$T_DIR/pg_ctl.log" 2>&1
    t_eq "$how: pg_ctl restart" 0 "$?"
    zdm_run resume p_r
    t_wait_exit "$ZBG_JOB" 90
    rc=$WAIT_RC
    zdm_bg_collect "$T_DIR/r$how" advance
    t_eq "$how: the run stopped with exit 1" 1 "$rc"
    t_eq "$how: still expanded" expanded "$(zdm_phase_of p_r)"
    zdm_run advance p_r
    t_rc "$how: the next advance finishes the backfill" 0
    t_eq "$how: backfilled" backfilled "$(zdm_phase_of p_r)"
    t_eq "$how: every row converted" 0 "$(db_sql 'SELECT count(*) FROM t WHERE b IS NULL')"
    zdm_settled "$how"
}

rollback_hook_env() {
    local d=$1
    t_section "$d: on_rollback of complete -> cut_over is told ZDM_FROM_PHASE=complete"
    db_new "$d" rbenv
    plans_empty
    printf '#!/bin/sh\necho "$ZDM_EVENT $ZDM_PHASE $ZDM_NEXT_PHASE $ZDM_FROM_PHASE $ZDM_TO_PHASE" >>"%s/rb.log"\n' \
        "$T_DIR" >"$T_DIR/rb.sh"
    chmod +x "$T_DIR/rb.sh"
    : >"$T_DIR/rb.log"
    plan_write p_rb "
[[expand.steps]]
sql  = \"CREATE TABLE trb (id integer)\"
down = \"DROP TABLE trb\"
[[contract.steps]]
sql  = \"CREATE TABLE trb2 (id integer)\"
down = \"DROP TABLE trb2\"
[hooks]
on_rollback = \"$T_DIR/rb.sh\"
after_contract = \"$T_DIR/rb.sh\""
    local i
    for i in 1 2 3 4; do zdm_run advance p_rb; done
    t_eq "$d: complete" complete "$(zdm_phase_of p_rb)"
    zdm_run rollback p_rb
    t_rc "$d: rollback of contract" 0
    t_eq "$d: after_contract then on_rollback, each with its real transition" \
        "after_contract complete complete cut_over complete
on_rollback cut_over cut_over complete cut_over" "$(cat "$T_DIR/rb.log")"
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    backfill_lock_lost "$d"
    rollback_hook_env "$d"
    if [ "$d" = pg ]; then
        restart_in_backfill fast
        restart_in_backfill immediate
    fi
done
t_finish
