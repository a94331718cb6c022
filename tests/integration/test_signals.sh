#!/usr/bin/env bash
# test_signals.sh -- SIGINT/SIGTERM in every command, on SQLite and
# PostgreSQL: exit 4, history row closed "interrupted", lock released,
# nothing half-recorded.
#  * SIGTERM to `zdm cutover` while its hook runs: the hook's process group
#    gets SIGTERM (a child of the hook too), the plan stays backfilled, a
#    second cutover goes through;
#  * SIGTERM / SIGINT to `zdm advance` during an expand step: the step
#    finishes, the next one never starts; advance again resumes;
#  * a hook that ignores SIGTERM is killed (SIGKILL) after the grace;
#  * a backfill worker sleeping sleep_ms = 120000 between batches stops at
#    once on SIGTERM.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init signals


# hook.sh LOG [ignore]: records "start" and its child's pid, then waits on
# a child sleep; on SIGTERM records "term" (unless told to ignore it).
write_hook() {
    cat >"$T_DIR/hook.sh" <<'EOF'
#!/bin/sh
log=$1
[ -e "$log.quick" ] && exit 0
if [ "${2:-}" = ignore ]; then trap '' TERM; else trap 'echo term >>"$log"; exit 143' TERM; fi
sleep 300 &
echo "start $! $$" >>"$log"
wait
wait
EOF
    chmod +x "$T_DIR/hook.sh"
}

cutover_signal() {
    local d=$1 mode=${2:-} child
    t_section "$d: SIGTERM during the cutover hook${mode:+ (hook ignores SIGTERM)}"
    db_new "$d" sig_cut$mode
    plans_empty
    write_hook
    local log=$T_DIR/cut$d$mode.log
    rm -f "$log" "$log.quick"
    plan_write p_sc "
[[expand.steps]]
sql  = \"CREATE TABLE tsc (id integer)\"
down = \"DROP TABLE tsc\"
[hooks]
cutover = [[\"$T_DIR/hook.sh\", \"$log\", \"$mode\"]]"
    zdm_run advance p_sc && zdm_run advance p_sc
    t_eq "$d: backfilled" backfilled "$(zdm_phase_of p_sc)"
    zdm_bg "$T_DIR/sc" cutover p_sc
    t_wait_for "the hook started" 30 "grep -q start '$log'"
    child=$(awk '/^start/ {print $2}' "$log")
    # killed on exit whatever happens (an old zdm left them running)
    T_BG_PIDS+=("$child" "$(awk '/^start/ {print $3}' "$log")")
    kill -TERM "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 30
    zdm_bg_collect "$T_DIR/sc" cutover
    t_eq "$d: exit 4" 4 "$WAIT_RC"
    t_has "$d: says it stopped the hook" "stopped: zdm got signal 15" "$ZERR"
    if [ -z "$mode" ]; then
        t_has "$d: the hook got SIGTERM" term "$(cat "$log")"
    else
        t_has "$d: the hook was killed after the grace" "then SIGKILL" "$ZERR"
    fi
    t_wait_for "the hook's child is gone" 10 "! kill -0 $child"
    t_eq "$d: still backfilled" backfilled "$(zdm_phase_of p_sc)"
    t_eq "$d: the cutover's history row is interrupted" interrupted \
        "$(db_sql "SELECT outcome FROM $(zdm_tbl history) WHERE action = 'advance' AND to_phase = 'cut_over' ORDER BY id DESC LIMIT 1")"
    zdm_settled "$d"
    touch "$log.quick"
    zdm_run cutover p_sc
    t_rc "$d: the next cutover goes through" 0
    t_eq "$d: cut_over" cut_over "$(zdm_phase_of p_sc)"
}

advance_signal() {
    local d=$1 sig=$2 slow
    t_section "$d: SIG$sig during an expand step: the step finishes, the next never starts"
    db_new "$d" "sig_adv_${sig,,}"
    plans_empty
    db_sql "CREATE TABLE marks (ev text)" >/dev/null
    if [ "$d" = pg ]; then
        slow="SELECT pg_sleep(2)"
    else
        slow="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) SELECT count(*) FROM c"
    fi
    plan_write p_sa "
[[expand.steps]]
sql  = \"INSERT INTO marks VALUES ('expand1')\"
down = \"SELECT 1\"
[[expand.steps]]
sql  = \"$slow\"
transaction = false
down = \"SELECT 1\"
[[expand.steps]]
sql  = \"INSERT INTO marks VALUES ('expand3')\"
down = \"SELECT 1\""
    zdm_bg "$T_DIR/sa" advance p_sa
    t_wait_for "step 2 running" 30 "[ \"\$(db_sql \"SELECT status FROM $( [ "$d" = pg ] && echo zdm.steps || echo zdm_steps) WHERE plan_id = 'p_sa' AND step_index = 2\")\" = running ]"
    kill -"$sig" "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 60
    zdm_bg_collect "$T_DIR/sa" advance
    t_eq "$d: exit 4" 4 "$WAIT_RC"
    t_eq "$d: step 1 ran once" 1 "$(db_sql "SELECT count(*) FROM marks WHERE ev = 'expand1'")"
    t_eq "$d: step 3 never started" 0 "$(db_sql "SELECT count(*) FROM marks WHERE ev = 'expand3'")"
    t_eq "$d: history row interrupted" interrupted \
        "$(db_sql "SELECT outcome FROM $(zdm_tbl history) WHERE action = 'advance' ORDER BY id DESC LIMIT 1")"
    t_eq "$d: the lock row is gone" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl locks)")"
    zdm_run advance p_sa
    t_rc "$d: advance again resumes" 0
    t_eq "$d: step 1 still ran once" 1 "$(db_sql "SELECT count(*) FROM marks WHERE ev = 'expand1'")"
    t_eq "$d: step 3 ran once" 1 "$(db_sql "SELECT count(*) FROM marks WHERE ev = 'expand3'")"
}

worker_sleep_signal() {
    local d=$1
    t_section "$d: a worker sleeping sleep_ms = 120000 stops at once on SIGTERM"
    db_new "$d" sig_sleep
    plans_empty
    zdm_small_backfill p_ws '[backfill.throttle]
batch_size = 1
min_batch_size = 1
max_batch_size = 1
sleep_ms = 120000'
    zdm_run advance p_ws
    t_rc "$d: expand" 0
    zdm_bg "$T_DIR/ws" backfill p_ws
    zdm_wait_first_batch
    sleep 0.5
    local t0=$SECONDS
    kill -TERM "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 60
    zdm_bg_collect "$T_DIR/ws" backfill
    t_eq "$d: exit 4" 4 "$WAIT_RC"
    t_cmp "$d: stopped well before the 120 s sleep ended (s)" $((SECONDS - t0)) -lt 60
    t_has "$d: safe to resume" "safe to resume" "$ZERR"
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    cutover_signal "$d"
    advance_signal "$d" TERM
    worker_sleep_signal "$d"
done
cutover_signal sqlite ignore
advance_signal sqlite INT
t_finish
