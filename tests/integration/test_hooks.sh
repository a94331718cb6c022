#!/usr/bin/env bash
# test_hooks.sh -- hooks, with real zdm on real SQLite files (and one
# PostgreSQL part), and the example hooks in hooks/:
#  * every hook gets the documented environment (ZDM_PLAN, ZDM_EVENT,
#    ZDM_PHASE, ZDM_NEXT_PHASE, ZDM_DIALECT, ZDM_DATABASE_URL,
#    ZDM_HISTORY_ID, ZDM_PLAN_FILE), never PGPASSWORD, and runs from the
#    plan's directory, where ZDM_PLAN_FILE and a sqlite: URL still name the
#    right files even when zdm was given relative paths;
#  * zdm.toml's project hooks run before the plan's; inherit = false skips
#    them;
#  * a failing before_expand refuses (exit 3) and changes nothing; a failing
#    cutover hook refuses and records no cutover time; a failing after_expand
#    exits 1 with the phase done, and --hooks-only re-runs it;
#  * a hook past its timeout is killed with everything it started (also
#    when it ignores SIGTERM, or closed its output) and counts as a
#    failure; a hook that exits leaving a daemon that holds its output is
#    done when it exits;
#  * on_failure runs when a step fails, on_rollback after a rollback;
#  * the last 20 output lines of a hook are in `zdm history --json`;
#  * contract before not_before / the scheduled time: exit 3 saying when;
#    run-due contracts only due plans, and two run-due at once contract
#    each plan exactly once;
#  * PostgreSQL: the hook's ZDM_DATABASE_URL has no password (URL and
#    conninfo forms) and works; hooks/backup.sh makes a dump that
#    pg_restore can read;
#  * hooks/backup.sh (SQLite) and hooks/blue-green-switch.sh (against a
#    stand-in nginx: its restore paths; the real nginx is in
#    test_e2e_bluegreen.sh); notify.sh and smoke-check.sh are tested in
#    test_example_hooks.sh, the deploy/ files in test_deploy.sh.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init hooks
HOOKS=$ZDM_SRC/hooks
PY=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
LOG=$T_DIR/hooks.log
: >"$LOG"

# rec.sh TAG [STATUS | @FLAGFILE]: records what it was told, one line per
# run, prints a line, exits STATUS (or 1 while FLAGFILE exists).
cat >"$T_DIR/rec.sh" <<EOF
#!/bin/sh
dbfile=\${ZDM_DATABASE_URL#sqlite:}
file_ok=no; [ -f "\${ZDM_PLAN_FILE:-/nonexistent}" ] && file_ok=yes
db_ok=no; [ -f "\$dbfile" ] && db_ok=yes
printf 'tag=%s|event=%s|phase=%s|next=%s|dialect=%s|url=%s|hid=%s|plan=%s|file=%s|pwd=%s|envpwd=%s|pgpw=%s|file_ok=%s|db_ok=%s\n' \\
    "\$1" "\${ZDM_EVENT-UNSET}" "\${ZDM_PHASE-UNSET}" "\${ZDM_NEXT_PHASE-UNSET}" "\${ZDM_DIALECT-UNSET}" \\
    "\${ZDM_DATABASE_URL-UNSET}" "\${ZDM_HISTORY_ID-UNSET}" "\${ZDM_PLAN-UNSET}" "\${ZDM_PLAN_FILE-UNSET}" \\
    "\$(pwd -P)" "\${PWD-UNSET}" "\${PGPASSWORD-unset}" "\$file_ok" "\$db_ok" >>"$LOG"
echo "rec: \$1 ran for \$ZDM_EVENT"
case \${2:-0} in
@*) [ -e "\${2#@}" ] && exit 1; exit 0 ;;
*) exit "\${2:-0}" ;;
esac
EOF
chmod +x "$T_DIR/rec.sh"
REC=$T_DIR/rec.sh

# hook_field TAG EVENT FIELD: FIELD of the last record of TAG for EVENT.
hook_field() {
    grep -F "tag=$1|event=$2|" "$LOG" | tail -n 1 | tr '|' '\n' | sed -n "s/^$3=//p"
}
hook_count() { grep -cF "tag=$1|" "$LOG"; }
hook_tags() { sed -n 's/^tag=\([^|]*\)|event=\([^|]*\)|.*/\1:\2/p' "$LOG" | tr '\n' ' '; }

# scen NAME: a project dir NAME with plans/ and a fresh SQLite file.
scen() {
    S=$T_DIR/$1
    mkdir -p "$S/plans"
    T_PLANS=$S/plans
    T_DIALECT=sqlite
    T_SQLITE_FILE=$S/app.db
    T_DB=sqlite:$T_SQLITE_FILE
    : >"$LOG"
}

# A plan that creates one table (and drops it on rollback), plus TEXT.
table_plan() {
    plan_write "$1" "[[expand.steps]]
sql  = \"CREATE TABLE t_$1 (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_$1\"
${2:-}"
}

history_json() {
    zdm_run --json history "$1"
    printf '%s' "$ZOUT"
}


# ---------------------------------------------------------------------------
t_section "environment, working directory, project hooks first, inherit = false"
scen env
printf '[hooks]\nbefore_expand = ["%s project-1", "%s project-2"]\nafter_expand = "%s project-after"\n' \
    "$REC" "$REC" "$REC" >"$S/zdm.toml"
table_plan h_env "[hooks]
before_expand = \"$REC plan\"
after_expand = \"$REC plan-after\""
table_plan h_noinh "[hooks]
inherit = false
before_expand = \"$REC noinh\""
table_plan h_plain
# zdm given relative paths: the hooks still find the plan file and the db.
cd "$S" || exit 1
T_DB=sqlite:app.db T_PLANS=plans
export PGPASSWORD=hunter2
zdm_run advance h_env
unset PGPASSWORD
t_rc "advance h_env with hooks" 0
t_eq "order: project hooks, then the plan's; after hooks after" \
    "project-1:before_expand project-2:before_expand plan:before_expand project-after:after_expand plan-after:after_expand " \
    "$(hook_tags)"
t_eq "ZDM_PLAN" h_env "$(hook_field plan before_expand plan)"
t_eq "ZDM_PHASE" pending "$(hook_field plan before_expand phase)"
t_eq "ZDM_NEXT_PHASE" expanded "$(hook_field plan before_expand next)"
t_eq "ZDM_DIALECT" sqlite "$(hook_field plan before_expand dialect)"
t_eq "ZDM_DATABASE_URL: the sqlite file, absolute" "sqlite:$S/app.db" "$(hook_field plan before_expand url)"
t_eq "the hook finds the database file" yes "$(hook_field plan before_expand db_ok)"
t_eq "ZDM_PLAN_FILE: absolute" "$S/plans/h_env.toml" "$(hook_field plan before_expand file)"
t_eq "the hook finds the plan file" yes "$(hook_field plan before_expand file_ok)"
t_eq "runs from the plan's directory" "$(cd "$S/plans" && pwd -P)" "$(hook_field plan before_expand pwd)"
t_eq "PWD says so too" "$(cd "$S/plans" && pwd -P)" "$(hook_field plan before_expand envpwd)"
t_eq "project hooks run from the plan's directory too" "$(cd "$S/plans" && pwd -P)" \
    "$(hook_field project-1 before_expand pwd)"
t_eq "PGPASSWORD is not passed on" unset "$(hook_field plan before_expand pgpw)"
t_eq "after_expand: ZDM_PHASE" expanded "$(hook_field plan-after after_expand phase)"
hist=$(history_json h_env)
hid=$(jq -r '.history[] | select(.action == "advance" and .to == "expanded") | .id' <<<"$hist")
t_ne "the transition has a history row" "" "$hid"
t_eq "ZDM_HISTORY_ID of before_expand: the transition's row" "$hid" "$(hook_field plan before_expand hid)"
t_eq "ZDM_HISTORY_ID of after_expand: the same row" "$hid" "$(hook_field plan-after after_expand hid)"
: >"$LOG"
zdm_run advance h_noinh
t_rc "advance h_noinh" 0
t_eq "inherit = false: only the plan's hook" "noinh:before_expand " "$(hook_tags)"
: >"$LOG"
zdm_run advance h_plain
t_rc "advance h_plain" 0
t_eq "a plan without [hooks] gets the project's" \
    "project-1:before_expand project-2:before_expand project-after:after_expand " "$(hook_tags)"
cd "$T_DIR" || exit 1

# ---------------------------------------------------------------------------
t_section "a failing before_expand refuses and changes nothing"
scen before
table_plan h_before "[hooks]
before_expand = \"$REC before-fail 1\""
zdm_run advance h_before
t_rc "advance with a failing before_expand" 3
t_has "the refusal names the hook" "before_expand hook \"$REC before-fail 1\" failed: exit status 1" "$ZERR"
t_has "the refusal shows the hook's output" "rec: before-fail ran for before_expand" "$ZERR"
t_has "and says nothing changed" "nothing was changed" "$ZERR"
t_eq "the table was not created" 0 "$(db_has_table t_h_before)"
t_eq "the plan is still pending" pending "$(zdm_phase_of h_before)"
hist=$(history_json h_before)
t_eq "history: the advance is refused" refused \
    "$(jq -r '.history[] | select(.action == "advance") | .outcome' <<<"$hist")"
t_eq "history: the hook run failed, with its output" "failed|true" \
    "$(jq -r '.history[] | select(.action == "hook before_expand") | "\(.outcome)|\(.detail | contains("rec: before-fail ran"))"' <<<"$hist")"

# ---------------------------------------------------------------------------
t_section "a failing cutover hook refuses: still backfilled, no cutover time"
scen cut
table_plan h_cut "[hooks]
cutover = \"$REC cut @$T_DIR/cut.flag\""
touch "$T_DIR/cut.flag"
zdm_run advance h_cut
zdm_run advance h_cut
t_eq "h_cut is backfilled" backfilled "$(zdm_phase_of h_cut)"
zdm_run cutover h_cut
t_rc "cutover with a failing hook" 3
t_has "the refusal names the cutover hook" "cutover hook \"$REC cut @$T_DIR/cut.flag\" failed" "$ZERR"
t_eq "the hook was told backfilled -> cut_over" "backfilled>cut_over" \
    "$(hook_field cut cutover phase)>$(hook_field cut cutover next)"
zdm_run --json status h_cut
t_eq "still backfilled, no cutover time" "backfilled null" "$(jq -r '.plans[0] | "\(.phase) \(.cutover_at)"' <<<"$ZOUT")"
rm -f "$T_DIR/cut.flag"
zdm_run cutover h_cut
t_rc "cutover once the hook passes" 0
zdm_run --json status h_cut
t_eq "cut_over, with a cutover time" "cut_over true" \
    "$(jq -r '.plans[0] | "\(.phase) \(.cutover_at != null)"' <<<"$ZOUT")"

# ---------------------------------------------------------------------------
t_section "a failing after_expand: exit 1, phase done, --hooks-only re-runs it; on_rollback"
scen after
table_plan h_after "[hooks]
after_expand = \"$REC after @$T_DIR/after.flag\"
on_rollback = \"$REC rolled\""
touch "$T_DIR/after.flag"
zdm_run advance h_after
t_rc "advance with a failing after_expand" 1
t_has "the error names the hook" "after_expand hook \"$REC after @$T_DIR/after.flag\" failed: exit status 1" "$ZERR"
t_has "and says how to re-run it" "zdm advance h_after --hooks-only" "$ZERR"
t_eq "the phase is done all the same" expanded "$(zdm_phase_of h_after)"
t_eq "the table exists" 1 "$(db_has_table t_h_after)"
zdm_run advance --hooks-only h_after
t_rc "--hooks-only while the hook still fails" 1
t_eq "still expanded" expanded "$(zdm_phase_of h_after)"
rm -f "$T_DIR/after.flag"
zdm_run advance --hooks-only h_after
t_rc "--hooks-only once the hook passes" 0
t_has "--hooks-only says what ran" "1 after_expand hook ran" "$ZOUT"
t_eq "the hook ran three times" 3 "$(hook_count after)"
t_eq "--hooks-only does not advance" expanded "$(zdm_phase_of h_after)"
zdm_run rollback h_after
t_rc "rollback h_after" 0
t_eq "on_rollback ran once" 1 "$(hook_count rolled)"
t_eq "on_rollback is told the phase reached" "on_rollback rolled_back" \
    "$(hook_field rolled on_rollback event) $(hook_field rolled on_rollback phase)"
t_ne "on_rollback gets the rollback's history row" 0 "$(hook_field rolled on_rollback hid)"
t_eq "the rollback dropped the table" 0 "$(db_has_table t_h_after)"

# ---------------------------------------------------------------------------
t_section "a hook past its timeout is killed with its whole process group"
scen timeout
# The hook starts a background sleep and sleeps itself; both pids recorded.
plan_write h_timeout "[[expand.steps]]
sql = \"CREATE TABLE t_timeout (id integer)\"
down = \"DROP TABLE t_timeout\"
[hooks]
timeout = \"1s\"
before_expand = [[\"sh\", \"-c\", \"sleep 1000 & echo \$! > $T_DIR/bg.pid; echo \$\$ > $T_DIR/fg.pid; echo started; sleep 1000\"]]"
t0=$SECONDS
zdm_run advance h_timeout
t_rc "a timed-out before_expand refuses" 3
t_cmp "killed soon after the 1s timeout (seconds)" $((SECONDS - t0)) -le 8
t_has "the refusal says it timed out" "timed out after 1" "$ZERR"
bg=$(cat "$T_DIR/bg.pid" 2>/dev/null) fg=$(cat "$T_DIR/fg.pid" 2>/dev/null)
t_ne "the hook recorded its pids" "" "$bg$fg"
sleep 0.3
t_alive "$fg" && _t_fail "the hook's shell ($fg) still runs after the timeout"
t_ok
t_alive "$bg" && { _t_fail "the hook's background child ($bg) still runs after the timeout"; kill -9 "$bg"; }
t_ok
t_eq "nothing changed" "0 pending" "$(db_has_table t_timeout) $(zdm_phase_of h_timeout)"
t_has "history keeps the output before the kill" "started" \
    "$(jq -r '.history[] | select(.action == "hook before_expand") | .detail' <<<"$(history_json h_timeout)")"
# A hook that ignores SIGTERM (its children inherit that): SIGKILL after
# the grace period.
plan_write h_stubborn "[[expand.steps]]
sql = \"CREATE TABLE t_stubborn (id integer)\"
[hooks]
timeout = \"1s\"
after_expand = [[\"sh\", \"-c\", \"trap '' TERM; sleep 1000 & echo \$! > $T_DIR/bg2.pid; echo \$\$ > $T_DIR/fg2.pid; sleep 1000\"]]"
t0=$SECONDS
zdm_run advance h_stubborn
t_rc "a timed-out after_expand fails" 1
t_cmp "SIGKILLed after the grace period (seconds)" $((SECONDS - t0)) -le 15
t_has "it says it timed out" "timed out after 1" "$ZERR"
bg=$(cat "$T_DIR/bg2.pid" 2>/dev/null) fg=$(cat "$T_DIR/fg2.pid" 2>/dev/null)
t_ne "the stubborn hook recorded its pids" "" "$bg$fg"
sleep 0.3
t_alive "$fg" && { _t_fail "the stubborn hook ($fg) survived"; kill -9 "$fg"; }
t_ok
t_alive "$bg" && { _t_fail "the stubborn hook's child ($bg) survived"; kill -9 "$bg"; }
t_ok
t_eq "after_expand failing leaves the phase done" expanded "$(zdm_phase_of h_stubborn)"
# A hook that exits 0 but leaves a daemon holding its output (in a session
# of its own, out of reach of the group): done when the hook is, not when
# the daemon is; the daemon is left alone.
plan_write h_daemon "[[expand.steps]]
sql = \"CREATE TABLE t_daemon (id integer)\"
[hooks]
timeout = \"20s\"
after_expand = [[\"sh\", \"-c\", \"setsid sh -c 'echo \$\$ > $T_DIR/daemon.pid; exec sleep 1000' & echo daemon started\"]]"
t0=$SECONDS
zdm_run advance h_daemon
t_rc "a hook that leaves a daemon behind succeeds" 0
t_cmp "and zdm does not wait for the daemon (seconds)" $((SECONDS - t0)) -le 5
t_has "its output is kept" "daemon started" \
    "$(jq -r '.history[] | select(.action == "hook after_expand") | .detail' <<<"$(history_json h_daemon)")"
d=$(cat "$T_DIR/daemon.pid" 2>/dev/null)
t_ne "the daemon recorded its pid" "" "$d"
[ -n "$d" ] && { t_alive "$d" || _t_fail "the daemon of a successful hook was killed"; kill -9 "$d" 2>/dev/null; }
t_ok
# A hook that closes its output and goes on: the timeout still holds.
plan_write h_silent "[[expand.steps]]
sql = \"CREATE TABLE t_silent (id integer)\"
[hooks]
timeout = \"1s\"
after_expand = [[\"sh\", \"-c\", \"echo going quiet; exec >/dev/null 2>&1; echo \$\$ > $T_DIR/silent.pid; sleep 1000\"]]"
t0=$SECONDS
zdm_run advance h_silent
t_rc "a hook that closed its output and hangs fails" 1
t_cmp "killed at its timeout (seconds)" $((SECONDS - t0)) -le 8
t_has "it says it timed out" "timed out after 1" "$ZERR"
t_has "the output before is kept" "going quiet" "$ZERR"
s_pid=$(cat "$T_DIR/silent.pid" 2>/dev/null)
t_ne "the silent hook recorded its pid" "" "$s_pid"
sleep 0.3
t_alive "$s_pid" && { _t_fail "the silent hook ($s_pid) survived its timeout"; kill -9 "$s_pid"; }
t_ok

# ---------------------------------------------------------------------------
t_section "on_failure runs when a step fails"
scen fail
plan_write h_fail "[[expand.steps]]
sql = \"CREATE TABLE t_fail (id integer)\"
down = \"DROP TABLE t_fail\"
[[expand.steps]]
sql = \"INSERT INTO no_such_table VALUES (1)\"
down = \"SELECT 1\"
[hooks]
on_failure = \"$REC onfail\"
on_rollback = \"$REC onrb\""
zdm_run advance h_fail
t_rc "a failing step" 1
t_has "the error is the step's" "no_such_table" "$ZERR"
t_eq "on_failure ran once" 1 "$(hook_count onfail)"
t_eq "on_failure is told pending -> expanded" "on_failure pending expanded" \
    "$(hook_field onfail on_failure event) $(hook_field onfail on_failure phase) $(hook_field onfail on_failure next)"
hid=$(jq -r '.history[] | select(.action == "advance") | .id' <<<"$(history_json h_fail)")
t_eq "on_failure gets the failed transition's history row" "$hid" "$(hook_field onfail on_failure hid)"
t_eq "on_rollback did not run" 0 "$(hook_count onrb)"

# ---------------------------------------------------------------------------
t_section "the last 20 output lines are kept in history"
scen tail
plan_write h_tail "[[expand.steps]]
sql = \"CREATE TABLE t_tail (id integer)\"
[hooks]
after_expand = [[\"sh\", \"-c\", \"i=1; while [ \$i -le 30 ]; do echo line-\$i; i=\$((i + 1)); done\"]]"
zdm_run advance h_tail
t_rc "advance h_tail" 0
detail=$(jq -r '.history[] | select(.action == "hook after_expand") | .detail' <<<"$(history_json h_tail)")
t_has "the detail names the command and its status" '$ sh -c' "$detail"
t_has "the detail says exit status 0" "(exit status 0)" "$detail"
t_eq "lines 11..30 kept, in order" "$(seq -f 'line-%g' 11 30 | tr '\n' ' ')" \
    "$(grep '^line-' <<<"$detail" | tr '\n' ' ')"


t_section "a hook's control characters reach neither the terminal nor history raw"
scen ctl
# ESC [2J (clear the screen), a NUL in a line, CRLF, and the C1 CSI (U+009B)
plan_write h_ctl "[[expand.steps]]
sql = \"CREATE TABLE t_ctl (id integer)\"
[hooks]
after_expand = [[\"sh\", \"-c\", \"printf 'a\\\\033[2Jb\\\\nc\\\\000d\\\\r\\\\ne\\\\302\\\\233f'\"]]"
zdm_run advance h_ctl
t_rc "advance h_ctl" 0
detail=$(jq -r '.history[] | select(.action == "hook after_expand") | .detail' <<<"$(history_json h_ctl)")
t_has "the escape shown as \\x1b" 'a\x1b[2Jb' "$detail"
t_has "the text after a NUL kept, the NUL shown" 'c\x00d' "$detail"
t_has "a C1 control shown" 'e\x9bf' "$detail"
t_lacks "no raw ESC in history" $'\033' "$detail"
t_lacks "no raw ESC on stderr" $'\033' "$ZERR"
t_lacks "no carriage return" $'\r' "$detail"
t_has "stderr's log line shows it too" '| a\x1b[2Jb' "$ZERR"

# ---------------------------------------------------------------------------
t_section "contract before it is due: exit 3 saying when"
scen soak
table_plan h_soak "[contract]
not_before = \"cutover + 1h\""
table_plan h_sched
for p in h_soak h_sched; do
    for _ in 1 2 3; do zdm_run advance "$p"; done
    t_eq "$p is cut_over" cut_over "$(zdm_phase_of "$p")"
done
zdm_run advance h_soak
t_rc "contract before not_before" 3
t_match "the refusal says when it is due" \
    "contract of h_soak is not due until [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \(in (59m|1h)" "$ZERR"
refusal=$ZERR
zdm_run --json status h_soak
due=$(jq -r '.plans[0].contract_due' <<<"$ZOUT")
t_has "the refusal names the same time as status" "not due until $due" "$refusal"
t_eq "still cut_over" cut_over "$(zdm_phase_of h_soak)"
zdm_run schedule h_sched --after 3s
t_rc "schedule h_sched --after 3s" 0
t_has "schedule says when" "h_sched: contract not before" "$ZOUT"
sched_ms=$(db_sql "SELECT contract_after_ms FROM zdm_plans WHERE id = 'h_sched'")
zdm_run advance h_sched
t_rc "contract before the scheduled time" 3
t_has "the refusal says when" "contract of h_sched is not due until" "$ZERR"
while [ "$(($(date +%s%3N) - sched_ms))" -lt 0 ]; do sleep 0.2; done
zdm_run advance h_sched
t_rc "contract after the scheduled time" 0
t_eq "h_sched complete" complete "$(zdm_phase_of h_sched)"
done_ms=$(db_sql "SELECT max(at_ms) FROM zdm_history WHERE plan_id = 'h_sched' AND action = 'advance'
                   AND to_phase = 'complete' AND outcome = 'ok'")
t_cmp "the contract ran after the scheduled time" "$done_ms" -ge "$sched_ms"

# ---------------------------------------------------------------------------
t_section "run-due contracts only the due plans"
scen due
# Each with an explicit soak ("cutover": due at once): run-due never
# contracts a plan that has no due time (test_schedule.sh).
for p in r_due r_later r_back; do
    table_plan "$p" "[contract]
not_before = \"cutover\"
[hooks]
after_contract = \"$REC contract-$p\""
done
for _ in 1 2 3; do zdm_run advance r_due; zdm_run advance r_later; done
zdm_run advance r_back
zdm_run advance r_back
zdm_run schedule r_later --after 1h
zdm_run run-due
t_rc "run-due" 0
t_has "run-due counts one" "1 plan contracted" "$ZOUT"
t_eq "phases after run-due" "complete cut_over backfilled" \
    "$(zdm_phase_of r_due) $(zdm_phase_of r_later) $(zdm_phase_of r_back)"
t_eq "only r_due's contract hook ran" "contract-r_due:after_contract " "$(hook_tags)"
zdm_run run-due
t_rc "run-due again" 0
t_has "nothing more is due" "0 plans contracted" "$ZOUT"

t_section "two run-due at once contract each plan once"
scen due2
CPLANS=(c1 c2 c3 c4)
for p in "${CPLANS[@]}"; do
    table_plan "$p" "[contract]
not_before = \"cutover\"
[hooks]
before_contract = [[\"sh\", \"-c\", \"sleep 0.3\"]]
after_contract = \"$REC contract-$p\""
    for _ in 1 2 3; do zdm_run advance "$p"; done
done
zdm_bg "$T_DIR/due-a" run-due
job_a=$ZBG_JOB
zdm_bg "$T_DIR/due-b" run-due
job_b=$ZBG_JOB
t_wait_exit "$job_a" 60
rc_a=$WAIT_RC
t_wait_exit "$job_b" 60
rc_b=$WAIT_RC
zdm_bg_collect "$T_DIR/due-a" run-due a
zdm_bg_collect "$T_DIR/due-b" run-due b
t_eq "both run-due exit 0" "0 0" "$rc_a $rc_b"
for p in "${CPLANS[@]}"; do
    t_eq "$p complete" complete "$(zdm_phase_of "$p")"
    t_eq "$p: its contract hook ran once" 1 "$(hook_count "contract-$p")"
    t_eq "$p: one contract in history" 1 \
        "$(db_sql "SELECT count(*) FROM zdm_history WHERE plan_id = '$p' AND action = 'advance'
                    AND to_phase = 'complete' AND outcome = 'ok'")"
done

# hooks/notify.sh and hooks/smoke-check.sh: test_example_hooks.sh.  The
# blue-green switch below checks its health URL against this stub.
if [ -n "$PY" ]; then
    "$PY" "$ZDM_SRC/tests/e2e/stub_http.py" --port-file "$T_DIR/ok.port" --say green &
    T_BG_PIDS+=("$!")
    disown
    t_wait_for "the health stub" 10 "[ -s '$T_DIR/ok.port' ]"
    ok_url="http://127.0.0.1:$(cat "$T_DIR/ok.port")/health"
fi

# ---------------------------------------------------------------------------
t_section "hooks/backup.sh on SQLite, as a before_contract hook"
scen backup
table_plan h_bk "[hooks]
before_contract = \"$HOOKS/backup.sh\""
for _ in 1 2 3; do zdm_run advance h_bk; done
db_sql "INSERT INTO t_h_bk VALUES (7)" >/dev/null
zdm_run advance h_bk
t_rc "contract with backup.sh (no SQLITE_BACKUP_DIR)" 0
t_has "backup.sh says zdm backs SQLite up itself" "zdm takes its own online backup before contract" "$ZERR"
scen backup2
table_plan h_bk2 "[hooks]
before_contract = \"$HOOKS/backup.sh\""
for _ in 1 2 3; do zdm_run advance h_bk2; done
db_sql "INSERT INTO t_h_bk2 VALUES (7)" >/dev/null
export SQLITE_BACKUP_DIR=$T_DIR/sqlite-backups
zdm_run advance h_bk2
unset SQLITE_BACKUP_DIR
t_rc "contract with backup.sh and SQLITE_BACKUP_DIR" 0
copy=$(ls "$T_DIR"/sqlite-backups/h_bk2-before_contract-*.db 2>/dev/null | head -n 1)
t_ne "backup.sh made a copy" "" "$copy"
[ -n "$copy" ] && t_eq "the copy has the row" 7 "$(sqlite3 "$copy" 'SELECT id FROM t_h_bk2')"
t_has "history says where" "SQLite backup $copy" \
    "$(jq -r '.history[] | select(.action == "hook before_contract") | .detail' <<<"$(history_json h_bk2)")"

# ---------------------------------------------------------------------------
t_section "hooks/blue-green-switch.sh against a stand-in nginx"
SW=$HOOKS/blue-green-switch.sh
mkdir -p "$T_DIR/ngx"
cat >"$T_DIR/ngx/nginx" <<EOF
#!/bin/sh
# stand-in nginx: logs its arguments; -t fails on an upstream named
# fail.invalid; -s reload fails while reload.fail exists
echo "\$*" >>"$T_DIR/ngx/calls"
case " \$* " in
*" -t "*) if grep -q fail.invalid "\$NGINX_UPSTREAM_FILE"; then echo 'nginx: [emerg] host not found in upstream "fail.invalid:80"' >&2; exit 1; fi
    echo 'nginx: configuration file test is successful' >&2 ;;
*" -s reload "*) [ -e "$T_DIR/ngx/reload.fail" ] && { echo 'nginx: [error] kill failed' >&2; exit 1; } ;;
esac
exit 0
EOF
chmod +x "$T_DIR/ngx/nginx"
export NGINX_BIN=$T_DIR/ngx/nginx NGINX_CONF=$T_DIR/ngx/nginx.conf NGINX_PREFIX=$T_DIR/ngx \
    NGINX_UPSTREAM_FILE=$T_DIR/ngx/upstream.inc NGINX_BLUE=127.0.0.1:8001 \
    NGINX_GREEN="127.0.0.1:8002, 127.0.0.1:8003"
"$SW" >/dev/null 2>&1
t_eq "switch: no argument is a usage error" 2 $?
"$SW" purple >/dev/null 2>&1
t_eq "switch: an unknown pool is a usage error" 2 $?
NGINX_BLUE='' "$SW" blue >/dev/null 2>&1
t_eq "switch: an unset pool is a usage error" 2 $?
NGINX_BLUE="127.0.0.1" "$SW" blue >/dev/null 2>&1
t_eq "switch: host without port is a usage error" 2 $?
NGINX_BLUE="127.0.0.1:80;evil" "$SW" blue >/dev/null 2>&1
t_eq "switch: no nginx syntax in a pool" 2 $?
t_eq "switch: usage errors touch nothing" "no no" \
    "$([ -e "$NGINX_UPSTREAM_FILE" ] && echo yes || echo no) $([ -e "$T_DIR/ngx/calls" ] && echo yes || echo no)"
out=$("$SW" blue 2>&1)
t_eq "switch to blue" 0 $?
t_has "switch: the include names the pool" "# zdm-active-pool: blue" "$(cat "$NGINX_UPSTREAM_FILE")"
t_has "switch: an upstream block with blue's server" "upstream zdm_app {
    server 127.0.0.1:8001;
}" "$(cat "$NGINX_UPSTREAM_FILE")"
t_eq "switch: nginx -t then reload, with -p and -c" \
    "-p $T_DIR/ngx -c $T_DIR/ngx/nginx.conf -t|-p $T_DIR/ngx -c $T_DIR/ngx/nginx.conf -s reload|" \
    "$(tr '\n' '|' <"$T_DIR/ngx/calls")"
t_eq "switch status" blue "$("$SW" status)"
: >"$T_DIR/ngx/calls"
ZDM_PLAN=0007_x ZDM_EVENT=cutover "$SW" green >/dev/null 2>&1
t_eq "switch to green (two servers)" 0 $?
t_eq "switch: both green servers" "    server 127.0.0.1:8002;|    server 127.0.0.1:8003;|" \
    "$(grep 'server ' "$NGINX_UPSTREAM_FILE" | tr '\n' '|')"
t_has "switch: the include says which plan switched it" "for 0007_x (cutover)" "$(cat "$NGINX_UPSTREAM_FILE")"
t_eq "switch status: green" green "$("$SW" status)"
cp "$NGINX_UPSTREAM_FILE" "$T_DIR/ngx/green.inc"
: >"$T_DIR/ngx/calls"
out=$(NGINX_BLUE=fail.invalid:80 "$SW" blue 2>&1)
t_eq "switch: nginx -t failing -> exit 1" 1 $?
t_has "switch: says why" "nginx -t rejected the configuration" "$out"
t_has "switch: shows nginx's message" "host not found in upstream" "$out"
t_same_file "switch: the previous include is back" "$T_DIR/ngx/green.inc" "$NGINX_UPSTREAM_FILE"
t_eq "switch: no reload after a failed test" "-t|" "$(sed 's/.* -t$/-t/' "$T_DIR/ngx/calls" | tr '\n' '|')"
: >"$T_DIR/ngx/calls"
touch "$T_DIR/ngx/reload.fail"
out=$("$SW" blue 2>&1)
t_eq "switch: reload failing -> exit 1" 1 $?
t_same_file "switch: the previous include is back after a failed reload" "$T_DIR/ngx/green.inc" "$NGINX_UPSTREAM_FILE"
rm -f "$T_DIR/ngx/reload.fail"
if [ -n "$PY" ] && [ -s "$T_DIR/ok.port" ]; then
    # The health URL answers "green": a switch to blue does not verify.
    : >"$T_DIR/ngx/calls"
    out=$(NGINX_HEALTH_URL=$ok_url NGINX_HEALTH_TRIES=3 NGINX_HEALTH_DELAY=0.1 "$SW" blue 2>&1)
    t_eq "switch: unverified switch -> exit 1" 1 $?
    t_has "switch: says the health URL disagreed" "did not answer with \"blue\" 3 times in a row" "$out"
    t_same_file "switch: the previous include is back after a failed check" "$T_DIR/ngx/green.inc" "$NGINX_UPSTREAM_FILE"
    t_eq "switch: reloaded, then reloaded back" 2 "$(grep -c 'reload' "$T_DIR/ngx/calls")"
    out=$(NGINX_HEALTH_URL=$ok_url NGINX_HEALTH_DELAY=0.1 "$SW" green 2>&1)
    t_eq "switch: verified switch" 0 $?
    t_has "switch: says it verified" "answered with \"green\" 3 times in a row" "$out"
fi
t_eq "switch: no temporary files left" "upstream.inc upstream.inc.lock" \
    "$(cd "$T_DIR/ngx" && ls upstream.inc* | tr '\n' ' ' | sed 's/ $//')"
unset NGINX_BIN NGINX_CONF NGINX_PREFIX NGINX_UPSTREAM_FILE NGINX_BLUE NGINX_GREEN

# The example hooks and deploy/ files are checked by test_deploy.sh.

# ---------------------------------------------------------------------------
if t_pg_available; then
    t_pg_start
    t_section "PostgreSQL: ZDM_DATABASE_URL without the password; backup.sh"
    db_new pg hookpg
    mkdir -p "$T_DIR/pg/plans"
    T_PLANS=$T_DIR/pg/plans
    : >"$LOG"
    cat >"$T_DIR/pgrec.sh" <<EOF
#!/bin/sh
got=\$(psql -X -qAt -d "\$ZDM_DATABASE_URL" -c 'SELECT current_database()' 2>&1)
printf 'tag=%s|event=%s|url=%s|dialect=%s|pgpw=%s|db=%s\n' "\$1" "\$ZDM_EVENT" "\$ZDM_DATABASE_URL" \\
    "\$ZDM_DIALECT" "\${PGPASSWORD-unset}" "\$got" >>"$LOG"
EOF
    chmod +x "$T_DIR/pgrec.sh"
    table_plan h_pg "[hooks]
before_expand = \"$T_DIR/pgrec.sh url\"
before_contract = \"$HOOKS/backup.sh\""
    table_plan h_pg2 "[hooks]
before_expand = \"$T_DIR/pgrec.sh conninfo\""
    # The server trusts every local connection: the password is only there
    # to be removed.
    T_DB="postgresql://postgres:s3cretpw@/hookpg?host=$PGHOST"
    export PGPASSWORD=envsecret
    zdm_run advance h_pg
    t_rc "PG: advance h_pg" 0
    t_eq "PG: the URL without its password" "postgresql://postgres@/hookpg?host=$PGHOST" \
        "$(hook_field url before_expand url)"
    t_eq "PG: ZDM_DIALECT" postgresql "$(hook_field url before_expand dialect)"
    t_eq "PG: the hook connects with it" hookpg "$(hook_field url before_expand db)"
    t_eq "PG: PGPASSWORD is not passed on" unset "$(hook_field url before_expand pgpw)"
    T_DB="host=$PGHOST dbname=hookpg user=postgres password=s3cretpw"
    zdm_run advance h_pg2
    t_rc "PG: advance h_pg2 (conninfo)" 0
    t_eq "PG: the conninfo without its password" "host=$PGHOST dbname=hookpg user=postgres" \
        "$(hook_field conninfo before_expand url)"
    t_eq "PG: the hook connects with the conninfo" hookpg "$(hook_field conninfo before_expand db)"
    unset PGPASSWORD
    t_lacks "PG: no password in any hook record" "s3cretpw" "$(cat "$LOG")"
    T_DB=$T_PG_URL
    zdm_run advance h_pg
    zdm_run advance h_pg
    db_sql "INSERT INTO t_h_pg VALUES (42)" >/dev/null
    export BACKUP_DIR=$T_DIR/pg-backups
    zdm_run advance h_pg
    unset BACKUP_DIR
    t_rc "PG: contract with backup.sh" 0
    dump=$(ls "$T_DIR"/pg-backups/h_pg-before_contract-*.dump 2>/dev/null | head -n 1)
    t_ne "PG: backup.sh wrote a dump" "" "$dump"
    if [ -n "$dump" ]; then
        t_has "PG: the dump holds the table's data" "TABLE DATA public t_h_pg" "$("$_PG_BIN/pg_restore" --list "$dump")"
        db_new pg hookrestore
        "$_PG_BIN/pg_restore" -d "$T_PG_URL" "$dump" 2>/dev/null
        t_eq "PG: the dump restores, row included" 42 "$(db_sql 'SELECT id FROM t_h_pg')"
    fi
    t_has "PG: history says the dump was verified" "verified with pg_restore --list" \
        "$(T_DB="postgresql:///hookpg?host=$PGHOST&user=postgres"; history_json h_pg | jq -r '.history[] | select(.action == "hook before_contract") | .detail')"
    ls "$T_DIR"/pg-backups/*.part >/dev/null 2>&1 && _t_fail "PG: a .part file was left behind"
    t_ok
else
    T_SKIPPED="$T_SKIPPED postgresql"
fi

t_finish
