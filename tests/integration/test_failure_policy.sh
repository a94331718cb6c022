#!/usr/bin/env bash
# test_failure_policy.sh -- run-due's failure policy for contract (SQLite):
#  * a refused contract (verify false) counts an attempt: status shows
#    attempts, last_error, last_attempt_at; on_failure runs with ZDM_ERROR,
#    ZDM_EXIT_CODE and ZDM_HISTORY_ID naming the closed (refused) row;
#  * within the backoff window (zdm.toml [contract] retry_after, doubling)
#    run-due does not try again: no second before_contract backup, no
#    second on_failure;
#  * after max_attempts the plan is failed: one "failed" history row, exit
#    3 on every later run-due with no new hook run and no new row;
#    status --json failed_at and zdm_plan_failed 1; "zdm retry" clears it
#    (history row "retry") and a contract that now passes resets the
#    count;
#  * a contract step that fails and a before_contract hook that fails both
#    run on_failure, told why, pointed at a history row that is closed;
#  * a rollback clears the failed state.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init failure_policy

P=$T_DIR/proj
mkdir -p "$P/plans"
T_PLANS=$P/plans
db_new sqlite fp
LOG=$T_DIR/hooks.log
: >"$LOG"
# rec.sh TAG: one line per run with what the hook was told, and the
# outcome of the history row it was pointed at, read while it runs.
cat >"$T_DIR/rec.sh" <<EOF
#!/bin/sh
row=\$(sqlite3 -batch -noheader -cmd '.timeout 5000' "$T_SQLITE_FILE" "SELECT outcome FROM zdm_history WHERE id = \${ZDM_HISTORY_ID:-0}")
printf '%s|%s|code=%s|hid=%s|row=%s|err=%s\n' "\$1" "\$ZDM_EVENT" "\${ZDM_EXIT_CODE-unset}" "\${ZDM_HISTORY_ID-unset}" "\$row" "\${ZDM_ERROR-unset}" >>"$LOG"
EOF
chmod +x "$T_DIR/rec.sh"
count() { grep -c "^$1|$2|" "$LOG"; }

# A window of an hour first (a slow machine cannot outrun it), then 1 s.
zdm_failing_contract "" "before_contract = \"$T_DIR/rec.sh backup\"
on_failure = \"$T_DIR/rec.sh fail\""

# ---------------------------------------------------------------------------
t_section "a refused contract counts an attempt and runs on_failure"
zdm_run run-due
t_eq "run-due: refused, exit 3" 3 "$ZRC"
t_eq "attempts 1" 1 "$(zdm_status_field v attempts)"
t_has "last_error says why" "verify query returned 0" "$(zdm_status_field v last_error)"
t_match "last_attempt_at" '^20[0-9]{2}-' "$(zdm_status_field v last_attempt_at)"
t_eq "on_failure ran once" 1 "$(count fail on_failure)"
line=$(grep '^fail|' "$LOG" | tail -n 1)
t_has "on_failure: ZDM_EXIT_CODE" "code=3" "$line"
t_has "on_failure: ZDM_ERROR" "err=contract of v refused: the verify query returned 0" "$line"
t_has "on_failure: its history row is closed" "row=refused" "$line"

t_section "within the backoff window: no new try, no new backup"
zdm_run run-due
t_eq "run-due in the window: exit 0" 0 "$ZRC"
t_has "run-due says when it tries next" "next try after" "$ZERR"
t_eq "still 1 attempt" 1 "$(zdm_status_field v attempts)"
t_eq "no second on_failure" 1 "$(count fail on_failure)"
t_eq "verify refused before the backup hook: none ran" 0 "$(count backup before_contract)"

t_section "after max_attempts: failed, until zdm retry"
printf '[contract]\nretry_after = "1s"\nmax_attempts = 3\n' >"$P/zdm.toml"
sleep 1.1
zdm_run run-due
t_eq "attempt 2" 2 "$(zdm_status_field v attempts)"
sleep 2.1
zdm_run run-due
t_eq "attempt 3: exit 3" 3 "$ZRC"
t_match "failed_at is set" '^20[0-9]{2}-' "$(zdm_status_field v failed_at)"
t_eq "one failed history row" 1 "$(db_sql "SELECT count(*) FROM zdm_history WHERE plan_id = 'v' AND action = 'failed'")"
zdm_run status v --format prometheus
t_has "zdm_plan_failed 1" 'zdm_plan_failed{plan="v"} 1' "$ZOUT"
rows=$(db_sql "SELECT count(*) FROM zdm_history")
fails=$(count fail on_failure)
sleep 4.1
zdm_run run-due
t_eq "failed: run-due exits 3" 3 "$ZRC"
t_has "failed: says zdm retry" "zdm retry v" "$ZERR"
t_eq "failed: not tried (still 3 attempts)" 3 "$(zdm_status_field v attempts)"
t_eq "failed: no new history row" "$rows" "$(db_sql "SELECT count(*) FROM zdm_history")"
t_eq "failed: no new on_failure" "$fails" "$(count fail on_failure)"
zdm_run retry v
t_rc "zdm retry" 0
t_eq "retry: not failed, 0 attempts" "null 0" "$(zdm_status_field v failed_at) $(zdm_status_field v attempts)"
t_has "retry: a history row" "failed state cleared after 3 contract attempts" \
    "$(db_sql "SELECT detail FROM zdm_history WHERE plan_id = 'v' AND action = 'retry'")"
db_sql "INSERT INTO ok_flag VALUES (1)"
zdm_run run-due
t_rc "run-due after the fix" 0
t_eq "v complete" complete "$(zdm_phase_of v)"
t_eq "the backup ran once, for the contract that passed" 1 "$(count backup before_contract)"
t_eq "attempts back to 0, no last_error" "0 null" "$(zdm_status_field v attempts) $(zdm_status_field v last_error)"

# ---------------------------------------------------------------------------
t_section "a failing contract step and a failing before_contract hook run on_failure"
plan_write s "[[expand.steps]]
sql  = \"CREATE TABLE t_s (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_s\"
[contract]
not_before = \"cutover\"
[[contract.steps]]
sql = \"DROP TABLE no_such_table\"
[hooks]
on_failure = \"$T_DIR/rec.sh stepfail\""
for _ in 1 2 3; do zdm_run advance s; done
zdm_run run-due
t_eq "a failing step: exit 1" 1 "$ZRC"
line=$(grep '^stepfail|' "$LOG" | tail -n 1)
t_has "step failure: ZDM_EXIT_CODE 1" "code=1" "$line"
t_has "step failure: ZDM_ERROR names the table" "no_such_table" "$line"
t_has "step failure: the history row is closed (failed)" "row=failed" "$line"
t_eq "step failure: on_failure ran once" 1 "$(count stepfail on_failure)"
plan_write h "[[expand.steps]]
sql  = \"CREATE TABLE t_h (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_h\"
[contract]
not_before = \"cutover\"
[hooks]
before_contract = [[\"sh\", \"-c\", \"exit 7\"]]
on_failure = \"$T_DIR/rec.sh hookfail\""
for _ in 1 2 3; do zdm_run advance h; done
zdm_run advance h
t_eq "a failing before_contract: refused" 3 "$ZRC"
line=$(grep '^hookfail|' "$LOG" | tail -n 1)
t_has "hook refusal: on_failure told exit 3" "code=3" "$line"
t_has "hook refusal: its row is closed (refused)" "row=refused" "$line"

# ---------------------------------------------------------------------------
t_section "a rollback clears the failed state"
printf '[contract]\nretry_after = "1s"\nmax_attempts = 1\n' >"$P/zdm.toml"
sleep 1.2
zdm_run run-due
t_match "s failed after one attempt (max_attempts = 1)" '^20[0-9]{2}-' "$(zdm_status_field s failed_at)"
zdm_run rollback s --force
[ "$ZRC" = 2 ] && zdm_run rollback s
t_rc "rollback s" 0
t_eq "after the rollback: not failed, 0 attempts" "null 0" "$(zdm_status_field s failed_at) $(zdm_status_field s attempts)"

# ---------------------------------------------------------------------------
t_section "one history row per distinct refusal"
plan_write q "[[expand.steps]]
sql  = \"CREATE TABLE t_q (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_q\"
[contract]
verify = \"SELECT count(*) > 0 FROM q_flag\""
db_sql "CREATE TABLE q_flag (id integer)"
for _ in 1 2 3; do zdm_run advance q; done
for _ in 1 2 3 4; do zdm_run advance q; done
t_eq "four refusals of the same kind: exit 3" 3 "$ZRC"
t_eq "one refused row" 1 "$(db_sql "SELECT count(*) FROM zdm_history WHERE plan_id = 'q' AND outcome = 'refused'")"
t_match "it says how often and when last" "\\[repeated 4 times, last at 20[0-9-]+T[0-9:]+Z by [^ ]+ pid [0-9]+\\]$" \
    "$(db_sql "SELECT detail FROM zdm_history WHERE plan_id = 'q' AND outcome = 'refused'")"
zdm_run schedule q --after 1h
zdm_run advance q
t_eq "a different refusal gets its own row" 2 \
    "$(db_sql "SELECT count(*) FROM zdm_history WHERE plan_id = 'q' AND outcome = 'refused'")"
# Lock collisions fold by their reason code, not their text: two holders
# (different text), with the holder's hook row written between them.
plan_write k "[[expand.steps]]
sql  = \"CREATE TABLE t_k (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_k\"
[contract]
not_before = \"cutover\""
for _ in 1 2 3; do zdm_run advance k; done
now_ms=$(($(date +%s) * 1000))
db_sql "INSERT INTO zdm_locks (plan_id, holder, host, pid, since_ms) VALUES ('k', 'alice@host-a', 'host-a', 4242, $now_ms)"
zdm_run advance k
t_eq "k locked by alice: refused" 3 "$ZRC"
db_sql "UPDATE zdm_locks SET holder = 'bob@host-b', host = 'host-b', pid = 77 WHERE plan_id = 'k'"
zdm_run run-due
t_has "run-due met bob's lock" "locked by bob@host-b pid 77" "$ZERR"
db_sql "INSERT INTO zdm_history (plan_id, at_ms, who, pid, action, from_phase, to_phase, outcome, detail)
        VALUES ('k', $now_ms, 'bob@host-b', 77, 'hook before_contract', 'cut_over', 'complete', 'ok', '')"
zdm_run advance k
t_eq "k locked by bob: refused" 3 "$ZRC"
t_eq "three collisions, two holders: one refused row" 1 \
    "$(db_sql "SELECT count(*) FROM zdm_history WHERE plan_id = 'k' AND outcome = 'refused'")"
t_eq "its reason code" lock_held \
    "$(db_sql "SELECT reason FROM zdm_history WHERE plan_id = 'k' AND outcome = 'refused'")"
t_match "the first holder's text, then the count" "^plan k is locked by alice@host-a pid 4242 since .* \\[repeated 3 times, last at [^]]* pid [0-9]+\\]$" \
    "$(db_sql "SELECT detail FROM zdm_history WHERE plan_id = 'k' AND outcome = 'refused'")"
zdm_run --json history k --outcome refused
t_eq "history --json: the reason" "lock_held" "$(jq -r '.history[0].reason' <<<"$ZOUT")"
db_sql "DELETE FROM zdm_locks WHERE plan_id = 'k'"
zdm_run cutover k
t_eq "another reason (the cutover is done): its own row" "lock_held wrong_phase" \
    "$(db_sql "SELECT reason FROM zdm_history WHERE plan_id = 'k' AND outcome = 'refused' ORDER BY id" | tr '\n' ' ' | sed 's/ $//')"
zdm_run run-due
t_eq "once the lock is gone, k is contracted" complete "$(zdm_phase_of k)"

# Three run-due at once on plans whose contract holds the lock for a while:
# the hosts that find a plan locked leave at most one row for it.
for c in c1 c2 c3; do
    plan_write "$c" "[[expand.steps]]
sql  = \"CREATE TABLE t_$c (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_$c\"
[contract]
not_before = \"cutover\"
[hooks]
before_contract = [[\"sh\", \"-c\", \"sleep 1\"]]"
    for _ in 1 2 3; do zdm_run advance "$c"; done
done
zdm_bg "$T_DIR/d1" run-due
j1=$ZBG_JOB
zdm_bg "$T_DIR/d2" run-due
j2=$ZBG_JOB
zdm_bg "$T_DIR/d3" run-due
j3=$ZBG_JOB
for j in $j1 $j2 $j3; do t_wait_exit "$j" 120; done
# (a refusal met while the holder writes is recorded by a detached
# process once the lock is free: let those finish first)
t_wait_for "no zdm process left on these plans" 30 "! pgrep -f -- '$T_PLANS' >/dev/null"
for c in c1 c2 c3; do
    t_eq "$c complete" complete "$(zdm_phase_of "$c")"
    # (sqlite3 may come back empty-handed while a writer holds the file:
    # ask again, a bounded number of times)
    n=
    for _ in $(seq 50); do
        n=$(db_sql "SELECT count(*) FROM zdm_history WHERE plan_id = '$c' AND outcome = 'refused'" 2>>"$T_DIR/sqlite3.err")
        [[ $n =~ ^[0-9]+$ ]] && break
        sleep 0.2
    done
    t_match "$c: at most one refused row" '^[01]$' "$n"
done

# ---------------------------------------------------------------------------
t_section "one broken plan file does not hold back the others"
mkdir -p "$T_DIR/p2/plans"
T_PLANS=$T_DIR/p2/plans
db_new sqlite fp2
plan_write okp "[[expand.steps]]
sql  = \"CREATE TABLE t_okp (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_okp\"
[contract]
not_before = \"cutover\""
for _ in 1 2 3; do zdm_run advance okp; done
printf '[[expand.steps]]\nsql = "CREATE TABLE x (id integer)"\nnot_a_key = 1\n' >"$T_PLANS/broken.toml"
zdm_run run-due
t_eq "run-due: exit 2 (a broken plan file)" 2 "$ZRC"
t_has "run-due names the file, line and column" "broken.toml:3:1" "$ZERR"
t_has "run-due says the valid plans were handled" "the valid plans were handled" "$ZERR"
rm -f "$T_PLANS/broken.toml"
t_eq "the valid due plan was contracted all the same" complete "$(zdm_phase_of okp)"

# ---------------------------------------------------------------------------
t_section "ZDM_ERROR is one line, even when it quotes a hook's output"
printf '#!/bin/sh\necho line-one\necho line-two\nexit 1\n' >"$T_DIR/two.sh"
chmod +x "$T_DIR/two.sh"
plan_write twol "[[expand.steps]]
sql  = \"CREATE TABLE t_twol (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_twol\"
[hooks]
before_expand = \"$T_DIR/two.sh\"
on_failure = \"$T_DIR/rec.sh twol\""
zdm_run advance twol
t_rc "the hook refuses expand" 3
t_eq "on_failure wrote one line" 1 "$(grep -c '^twol|' "$LOG")"
t_has "... with the hook's output, its lines joined" "line-one | line-two" "$(grep '^twol|' "$LOG")"

t_finish
