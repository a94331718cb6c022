#!/usr/bin/env bash
# test_kill9.sh -- kill -9 of zdm in the middle of things, on SQLite and
# PostgreSQL, then the dust settles (the next command):
#  * during the cutover hook: the hook is told (SIGTERM, as zdm can no
#    longer stop it itself: before, it ran on, possibly finishing its
#    switch while the plan stayed backfilled); the next cutover goes
#    through; no history row left running, no lock row;
#  * during advance's backfill (paused, so it is mid-way every time): the
#    next advance resumes; every row converted, exactly one "backfilled".
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init kill9

kill_in_hook() {
    local d=$1 log
    t_section "$d: kill -9 during the cutover hook"
    db_new "$d" k9hook
    plans_empty
    log=$T_DIR/hook$d.log
    rm -f "$log" "$log.quick"
    cat >"$T_DIR/hook.sh" <<'HOOK'
#!/bin/sh
log=$1
[ -e "$log.quick" ] && exit 0
trap 'echo term >>"$log"; exit 143' TERM
echo "start $$" >>"$log"
while :; do sleep 1; done
HOOK
    chmod +x "$T_DIR/hook.sh"
    plan_write p_k "
[[expand.steps]]
sql  = \"CREATE TABLE tk (id integer)\"
down = \"DROP TABLE tk\"
[hooks]
cutover = [[\"$T_DIR/hook.sh\", \"$log\"]]"
    zdm_run advance p_k && zdm_run advance p_k
    t_eq "$d: backfilled" backfilled "$(zdm_phase_of p_k)"
    zdm_bg "$T_DIR/k$d" cutover p_k
    t_wait_for "$d: the hook started" 30 "grep -q start '$log'"
    T_BG_PIDS+=("$(awk '/^start/ {print $2}' "$log")")
    kill -KILL "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 30
    t_wait_for "$d: the hook got SIGTERM once zdm was gone" 30 "grep -q term '$log'"
    t_eq "$d: still backfilled" backfilled "$(zdm_phase_of p_k)"
    touch "$log.quick"
    zdm_run cutover p_k
    t_rc "$d: the next cutover goes through" 0
    t_eq "$d: cut_over" cut_over "$(zdm_phase_of p_k)"
    zdm_settled "$d"
}

kill_in_backfill() {
    local d=$1
    t_section "$d: kill -9 during advance's backfill"
    db_new "$d" k9bf
    plans_empty
    zdm_small_backfill p_b
    zdm_run advance p_b
    zdm_run pause p_b
    zdm_bg "$T_DIR/b$d" advance p_b
    zdm_wait_range_held "$d: the worker holds a range (paused)" p_b
    kill -KILL "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 30
    zdm_run resume p_b
    zdm_run advance p_b
    t_rc "$d: the next advance resumes the backfill" 0
    t_eq "$d: backfilled" backfilled "$(zdm_phase_of p_b)"
    t_eq "$d: every row converted" 0 "$(db_sql 'SELECT count(*) FROM t WHERE b IS NULL')"
    t_eq "$d: backfilled recorded once (the worker's row, then advance's)" "1 1" \
        "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE plan_id = 'p_b' AND to_phase = 'backfilled' AND outcome = 'ok' AND action = 'backfill'") $(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE plan_id = 'p_b' AND to_phase = 'backfilled' AND outcome = 'ok' AND action = 'advance'")"
    zdm_settled "$d"
}

term_in_switch_back() {
    local d=$1 log
    t_section "$d: SIGTERM during on_rollback of rollback --force: nothing undone, and it says so"
    db_new "$d" k9rb
    plans_empty
    log=$T_DIR/rb$d.log
    rm -f "$log" "$log.quick"
    plan_write p_s "
[[expand.steps]]
sql  = \"CREATE TABLE ts (id integer)\"
down = \"DROP TABLE ts\"
[hooks]
on_rollback = [[\"$T_DIR/hook.sh\", \"$log\"]]"
    zdm_run advance p_s && zdm_run advance p_s && zdm_run advance p_s
    t_eq "$d: cut_over" cut_over "$(zdm_phase_of p_s)"
    zdm_bg "$T_DIR/s$d" rollback --force p_s
    t_wait_for "$d: the switch back started" 30 "grep -q start '$log'"
    T_BG_PIDS+=("$(awk '/^start/ {print $2}' "$log")")
    kill -TERM "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 30
    local rc=$WAIT_RC
    zdm_bg_collect "$T_DIR/s$d" rollback
    t_eq "$d: exit 4" 4 "$rc"
    t_has "$d: the hook got SIGTERM" term "$(cat "$log")"
    t_has "$d: says nothing was undone" "nothing was undone" "$ZERR"
    t_lacks "$d: does not claim steps were undone" "steps undone so far" "$ZERR"
    t_eq "$d: still cut_over" cut_over "$(zdm_phase_of p_s)"
    t_eq "$d: table kept" 1 "$(db_has_table ts)"
    zdm_settled "$d"
    touch "$log.quick"
    zdm_run rollback --force p_s
    t_rc "$d: the next rollback --force goes through" 0
    t_eq "$d: rolled_back" rolled_back "$(zdm_phase_of p_s)"
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    kill_in_hook "$d"
    kill_in_backfill "$d"
    term_in_switch_back "$d"
done
t_finish
