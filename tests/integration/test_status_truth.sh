#!/usr/bin/env bash
# test_status_truth.sh -- status and check tell the truth, on SQLite and
# PostgreSQL:
#  * a backfill worker killed with kill -9 is not listed as live; while a
#    live worker runs, NEXT says to wait for it instead of "zdm advance";
#  * an expand whose step failed says which step failed (not "stopped
#    after 1 of 2 steps" for a step that never finished);
#  * check exits 3 on an applied plan whose file changed;
#  * an invalid plan file is reported while the other plans are listed.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init status_truth

dead_worker() {
    local d=$1
    t_section "$d: a worker killed with kill -9 is gone from status; NEXT waits for live ones"
    db_new "$d" st_dead
    plans_empty
    zdm_small_backfill p_dw '[backfill.throttle]
batch_size = 1
min_batch_size = 1
max_batch_size = 1
sleep_ms = 120000'
    zdm_run advance p_dw
    t_rc "$d: expand" 0
    zdm_bg "$T_DIR/w" backfill p_dw
    zdm_wait_first_batch
    zdm_run --json status p_dw
    t_eq "$d: one live worker" 1 "$(jq -r '.plans[0].backfill.workers' <<<"$ZOUT")"
    t_has "$d: NEXT waits for it" "wait: 1 live backfill worker is on it" "$(jq -r '.plans[0].next' <<<"$ZOUT")"
    # a rollback under it dropped what it wrote and its ranges: the worker
    # then exited 0 ("other workers hold the remaining ranges") or blamed
    # the plan's set expressions
    zdm_run rollback p_dw
    t_rc "$d: rollback while a worker converts: refused" 3
    t_has "$d: ... naming it" "1 backfill worker still converts its rows" "$ZERR"
    t_eq "$d: ... still expanded" expanded "$(db_phase p_dw)"
    kill -9 "$ZBG_PID"
    t_wait_exit "$ZBG_JOB" 30
    t_wait_for "the killed worker's session is gone" 30 \
        "[ \"\$(T_DIALECT=$d zdm_run --json status p_dw; jq -r '.plans[0].backfill.workers' <<<\"\$ZOUT\")\" = 0 ]"
    zdm_run --json status p_dw
    t_eq "$d: no live worker after kill -9" 0 "$(jq -r '.plans[0].backfill.workers' <<<"$ZOUT")"
    t_eq "$d: none in the list" 0 "$(jq -r '.plans[0].backfill.worker_list | length' <<<"$ZOUT")"
    t_has "$d: NEXT is advance again" "zdm advance p_dw" "$(jq -r '.plans[0].next' <<<"$ZOUT")"
    zdm_run rollback p_dw
    t_rc "$d: rollback once no worker is live" 0
}

failed_step() {
    local d=$1
    t_section "$d: a failed expand step is shown failed"
    db_new "$d" st_fail
    plans_empty
    # on_failure = "stop" keeps what a failed expand applied (the default
    # undoes it): that half-done state is what status must describe.
    plan_write p_fs '
on_failure = "stop"
[[expand.steps]]
sql  = "INSERT INTO no_such_table VALUES (1)"
transaction = false
down = "SELECT 1"
[[expand.steps]]
sql  = "SELECT 1"
down = "SELECT 1"'
    zdm_run advance p_fs
    t_rc "$d: the step fails" 1
    zdm_run --json status p_fs
    t_has "$d: NEXT names the failed step" "expand step 1 failed (0 of 2 done)" "$(jq -r '.plans[0].next' <<<"$ZOUT")"
    t_has "$d: and why" "no_such_table" "$(jq -r '.plans[0].next' <<<"$ZOUT")"
}

check_changed() {
    local d=$1
    t_section "$d: check exits 3 on an applied plan whose file changed"
    db_new "$d" st_check
    plans_empty
    plan_write p_ck '
[[expand.steps]]
sql  = "CREATE TABLE tck (id integer)"
down = "DROP TABLE tck"'
    zdm_complete p_ck
    zdm_run check
    t_rc "$d: all complete" 0
    printf '\n[[expand.steps]]\nsql = "SELECT 2"\ndown = "SELECT 2"\n' >>"$T_PLANS/p_ck.toml"
    zdm_run status
    t_has "$d: status says changed" "plan file changed since complete" "$ZOUT"
    zdm_run check
    t_rc "$d: check on the changed plan" 3
    t_has "$d: check says so" "plan file changed since it was applied" "$ZOUT"
    zdm_run --json check
    t_eq "$d: --json too" "false false" "$(jq -r '"\(.ok) \(.incomplete[0].checksum_ok)"' <<<"$ZOUT")"
}

# A plan applied in the database whose file is gone (a branch switched, a
# bad merge): its triggers are live, and status and check said nothing --
# check passed ("all 1 plans complete").
missing_file() {
    local d=$1
    t_section "$d: a plan in flight whose file is gone: status names it, check fails"
    db_new "$d" st_gone
    plans_empty
    db_sql "CREATE TABLE tg (id integer PRIMARY KEY, a integer)" >/dev/null
    plan_write p_gone '
[[expand.steps]]
sql  = "ALTER TABLE tg ADD COLUMN b integer"
down = "ALTER TABLE tg DROP COLUMN b"
[backfill]
table = "tg"
set.b = "a * 2"'
    plan_write p_done '
[[expand.steps]]
sql  = "CREATE TABLE td (id integer)"
down = "DROP TABLE td"'
    zdm_complete p_done
    zdm_run advance p_gone
    t_rc "$d: expand" 0
    rm -f "$T_PLANS/p_gone.toml"
    zdm_run check
    t_rc "$d: check fails" 3
    t_has "$d: ... naming the plan without a file" "p_gone                       expanded (no plan file in" "$ZOUT"
    zdm_run --json check
    t_eq "$d: --json: not ok, the plan under missing_files" "false p_gone expanded" \
        "$(jq -r '"\(.ok) \(.missing_files[0].id) \(.missing_files[0].phase)"' <<<"$ZOUT")"
    zdm_run status
    t_rc "$d: status" 0
    t_has "$d: status names it" "NO FILE p_gone: expanded in the database, no plan file in" "$ZOUT"
    zdm_run --json status
    t_eq "$d: status --json too" "p_gone" "$(jq -r '.missing_files[0].id' <<<"$ZOUT")"
    rm -f "$T_PLANS/p_done.toml"
    zdm_run check
    t_lacks "$d: a complete plan's file may go (old history squashed)" "p_done" "$ZOUT"
}

invalid_file() {
    local d=$1
    t_section "$d: an invalid plan file is reported beside the others"
    db_new "$d" st_inv
    plans_empty
    plan_write p_ok '
[[expand.steps]]
sql  = "CREATE TABLE tok (id integer)"
down = "DROP TABLE tok"'
    printf 'this is = = not toml\n' >"$T_PLANS/p_bad.toml"
    zdm_run status
    t_rc "$d: status exits 2 (a plan file is invalid)" 2
    t_has "$d: the valid plan is listed" "p_ok" "$ZOUT"
    t_has "$d: the invalid file is named" "p_bad.toml:1" "$ZOUT"
    zdm_run --json status
    t_eq "$d: --json: one plan, one invalid entry" "1 1" "$(jq -rs '.[0] | "\(.plans | length) \(.invalid | length)"' <<<"$ZOUT")"
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    dead_worker "$d"
    failed_step "$d"
    check_changed "$d"
    missing_file "$d"
    invalid_file "$d"
done
t_finish
