#!/usr/bin/env bash
# test_schedule.sh -- soak time and schedule (SQLite; the state logic is
# the same SQL on PostgreSQL):
#  * a cut-over plan with no due time (no not_before, no zdm.toml default,
#    no schedule) is never contracted by run-due; status says it waits for
#    a schedule (--json: waiting_for_schedule, contract_due null); an
#    operator's zdm advance still contracts it;
#  * zdm.toml [contract] not_before is the default soak of plans without
#    one, and fills contract_due;
#  * zdm schedule: --after needs a unit; --at without a zone is local time
#    (TZ) and the UTC time stored is printed; an offset is honoured; a past
#    time is refused unless --force; --cancel removes it; history records
#    the effective due time and the previous one;
#  * a rollback removes the schedule: the next cutover does not inherit it;
#  * status --json carries attempts, last_error, last_attempt_at,
#    failed_at, lock_holder, overdue, and the backfill's last_progress_at;
#  * history filters by plan, event, outcome, time and count.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init schedule

simple() {
    plan_write "$1" "[[expand.steps]]
sql  = \"CREATE TABLE t_$1 (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_$1\"
[[contract.steps]]
sql = \"CREATE TABLE done_$1 (id integer)\"
down = \"DROP TABLE done_$1\"
${2:-}"
}
to_cut_over() { local _; for _ in 1 2 3; do zdm_run advance "$1"; done; }
sjson() { zdm_run --json status "$1"; jq -r ".plans[0].$2" <<<"$ZOUT"; }

# ---------------------------------------------------------------------------
t_section "no due time: run-due waits for a schedule"
mkdir -p "$T_DIR/p1/plans"
T_PLANS=$T_DIR/p1/plans
db_new sqlite s1
simple nosoak
simple nosoak2
simple soaked '[contract]
not_before = "cutover + 1h"'
to_cut_over nosoak
to_cut_over nosoak2
to_cut_over soaked
t_eq "nosoak is cut_over" cut_over "$(zdm_phase_of nosoak)"
zdm_run run-due
t_rc "run-due" 0
t_eq "run-due contracted nothing" "0 plans contracted" "$ZOUT"
t_eq "nosoak still cut_over" cut_over "$(zdm_phase_of nosoak)"
t_has "run-due says why" "nosoak contract: waiting for a schedule" "$ZERR"
t_eq "status --json: waiting_for_schedule" true "$(sjson nosoak waiting_for_schedule)"
t_eq "status --json: contract_due null" null "$(sjson nosoak contract_due)"
zdm_run status nosoak
t_has "status: next says waiting for a schedule" "waiting for a schedule" "$ZOUT"
t_eq "soaked: contract_due is cutover + 1h" \
    "$(zdm_run --json status soaked; jq -r '.plans[0].cutover_at | sub("Z$"; "") | strptime("%Y-%m-%dT%H:%M:%S") | mktime + 3600 | todate' <<<"$ZOUT")" \
    "$(sjson soaked contract_due | sed 's/\.[0-9]*Z$/Z/')"
t_eq "soaked: not waiting" false "$(sjson soaked waiting_for_schedule)"
zdm_run advance nosoak2
t_rc "an operator's advance contracts a plan without a due time" 0
t_eq "nosoak2 complete" complete "$(zdm_phase_of nosoak2)"

# ---------------------------------------------------------------------------
t_section "zdm.toml [contract] not_before is the default"
mkdir -p "$T_DIR/p2/plans"
T_PLANS=$T_DIR/p2/plans
db_new sqlite s2
printf '[contract]\nnot_before = "cutover"\n' >"$T_DIR/p2/zdm.toml"
simple dflt
simple own '[contract]
not_before = "cutover + 2h"'
to_cut_over dflt
to_cut_over own
t_eq "default: contract_due = cutover" "$(sjson dflt cutover_at)" "$(sjson dflt contract_due)"
zdm_run run-due
t_has "run-due contracts the plan with the project default" "1 plan contracted" "$ZOUT"
t_eq "dflt complete" complete "$(zdm_phase_of dflt)"
t_eq "a plan's own not_before wins" cut_over "$(zdm_phase_of own)"
printf '[contract]\nnot_before = "tomorrow"\n' >"$T_DIR/p2/zdm.toml"
zdm_run status
t_eq "a bad default in zdm.toml: exit 2" 2 "$ZRC"
t_has "a bad default: says where" "zdm.toml" "$ZERR"
printf '[contract]\nnot_befor = "1h"\n' >"$T_DIR/p2/zdm.toml"
zdm_run status
t_eq "an unknown key in [contract] of zdm.toml: exit 2" 2 "$ZRC"
rm -f "$T_DIR/p2/zdm.toml"

# ---------------------------------------------------------------------------
t_section "zdm schedule: units, zones, past times, --cancel, history"
T_PLANS=$T_DIR/p1/plans
db_new sqlite s1b
simple nosoak
to_cut_over nosoak
zdm_run schedule nosoak --after 90
t_eq "--after 90: exit 2" 2 "$ZRC"
t_has "--after 90: asks for a unit" "give a unit" "$ZERR"
t_eq "--after 90: nothing stored" null "$(sjson nosoak contract_due)"
zdm_run schedule nosoak --after 99999999d
t_eq "--after 99999999d (year 275817): exit 2" 2 "$ZRC"
t_has "--after 99999999d: says why" "after the year 9999" "$ZERR"
t_eq "--after 99999999d: nothing stored" null "$(sjson nosoak contract_due)"
export TZ=America/New_York
zdm_run --json schedule nosoak --at 2099-12-01T03:00
unset TZ
t_rc "--at without a zone" 0
t_eq "--at without a zone: TZ applied, UTC stored" "2099-12-01T08:00:00Z" "$(jq -r .contract_after <<<"$ZOUT")"
t_has "--at without a zone: says how it read it" "EST (-0500)" "$(jq -r .read_as_local_time <<<"$ZOUT")"
TZ=America/New_York zdm_run schedule nosoak --at 2099-07-01T03:00
t_has "text output: the UTC time and the local reading" "contract not before 2099-07-01T07:00:00Z (UTC; given as local time 2099-07-01T03:00:00 EDT (-0400))" "$ZOUT"
zdm_run --json schedule nosoak --at 2099-12-01T03:00:00+02:00
t_eq "--at with an offset" "2099-12-01T01:00:00Z" "$(jq -r .contract_after <<<"$ZOUT")"
zdm_run schedule nosoak --at 2020-01-01T00:00:00Z
t_eq "a past --at: exit 2" 2 "$ZRC"
t_has "a past --at: says --force" "add --force" "$ZERR"
t_eq "a past --at: the schedule is unchanged" "2099-12-01T01:00:00Z" "$(sjson nosoak contract_due)"
zdm_run run-due
t_eq "scheduled in the future: not contracted" cut_over "$(zdm_phase_of nosoak)"
zdm_run --json schedule nosoak --cancel
t_rc "--cancel" 0
t_eq "--cancel: no contract_after, no due" "null null true" \
    "$(jq -r '[.contract_after, .contract_due, .cancelled] | map(tostring) | join(" ")' <<<"$ZOUT")"
t_eq "--cancel: waiting for a schedule again" true "$(sjson nosoak waiting_for_schedule)"
zdm_run schedule nosoak --at 2020-01-01T00:00:00Z --force
t_rc "a past --at with --force" 0
hist=$(zdm_run --json history nosoak; jq -r '.history[] | select(.action == "schedule") | .detail' <<<"$ZOUT")
t_has "history: the effective due time and the previous one" \
    "contract not before 2099-12-01T01:00:00Z (was 2099-07-01T07:00:00Z); contract due: 2099-12-01T01:00:00Z" "$hist"
t_has "history: a cancel, with what it removed" \
    "schedule cancelled (was 2099-12-01T01:00:00Z); contract due: none, waiting for a schedule" "$hist"
zdm_run run-due
t_eq "due now: run-due contracts it" complete "$(zdm_phase_of nosoak)"
zdm_run schedule nosoak --at 2099-01-01T00:00:00Z
t_eq "schedule of a complete plan: refused" 3 "$ZRC"
zdm_run schedule nosoak
t_eq "schedule with nothing: exit 2" 2 "$ZRC"

# ---------------------------------------------------------------------------
t_section "a rollback removes the schedule"
db_new sqlite s3
simple rb
zdm_run advance rb
zdm_run schedule rb --after 1h
t_ne "scheduled while expanded" null "$(sjson rb contract_due)"
zdm_run rollback rb
t_rc "rollback" 0
t_eq "after the rollback: no schedule" null "$(sjson rb contract_due)"
to_cut_over rb
t_eq "expanded again, then cut over: not due on an old schedule" "cut_over true" \
    "$(zdm_phase_of rb) $(sjson rb waiting_for_schedule)"

# ---------------------------------------------------------------------------
t_section "status --json: the alertable fields"
zdm_run --json status rb
for k in attempts last_error last_attempt_at failed_at lock_holder overdue waiting_for_schedule contract_due; do
    t_eq "status --json has $k" true "$(jq -r ".plans[0] | has(\"$k\")" <<<"$ZOUT")"
done
t_eq "no failures yet" "0 null null" "$(jq -r '.plans[0] | [.attempts, .last_error, .failed_at] | map(tostring) | join(" ")' <<<"$ZOUT")"
db_sql "INSERT INTO zdm_locks (plan_id, holder, host, pid, since_ms) VALUES ('rb', 'ops@other-host', 'other-host', 4242, 1700000000000)"
t_eq "lock_holder names the holder" "ops@other-host pid 4242 since 2023-11-14T22:13:20Z" "$(sjson rb lock_holder)"
db_sql "DELETE FROM zdm_locks"
zdm_run schedule rb --at 2020-01-01T00:00:00Z --force
t_eq "due long ago and not contracted: overdue" true "$(sjson rb overdue)"
plan_write bf '[[expand.steps]]
sql  = "CREATE TABLE t_bf (id integer PRIMARY KEY, v integer)"
down = "DROP TABLE t_bf"
[backfill]
table = "t_bf"
set.v = "id"'
zdm_run advance bf
db_sql "INSERT INTO t_bf (id) VALUES (1), (2), (3)"
zdm_run backfill bf
t_rc "backfill bf" 0
t_match "backfill.last_progress_at is set" '^20[0-9]{2}-' "$(sjson bf backfill.last_progress_at)"

# ---------------------------------------------------------------------------
t_section "history filters: plan, event, outcome, time, limit"
hj() { zdm_run --json history "$@"; printf '%s' "$ZOUT"; }
zdm_run schedule bf --after 1h
zdm_run advance bf
zdm_run advance bf
t_eq "a contract before its time: refused" 3 "$ZRC"
all=$(hj)
t_ne "history has rows of several plans" 1 "$(jq '[.history[].plan] | unique | length' <<<"$all")"
t_eq "PLAN: only its rows" '["rb"]' "$(hj rb | jq -c '[.history[].plan] | unique')"
t_eq "--event schedule: only schedule rows" '["schedule"]' "$(hj --event schedule | jq -c '[.history[].action] | unique')"
t_eq "--event schedule: every one of them" "$(jq '[.history[] | select(.action == "schedule")] | length' <<<"$all")" \
    "$(hj --event schedule | jq '.history | length')"
t_eq "--event advance --outcome ok: rb's successful advances" \
    "$(jq '[.history[] | select(.plan == "rb" and .action == "advance" and .outcome == "ok")] | length' <<<"$all")" \
    "$(hj rb --event advance --outcome ok | jq '.history | length')"
t_eq "--outcome refused: only refusals" '["refused"]' "$(hj --outcome refused | jq -c '[.history[].outcome] | unique')"
t_eq "--since 1h: every row" "$(jq '.history | length' <<<"$all")" "$(hj --since 1h | jq '.history | length')"
t_eq "--until a past time: none" 0 "$(hj --until 2020-01-01T00:00:00Z | jq '.history | length')"
t_eq "--limit 2: the newest two, oldest first" "$(jq -c '[.history[-2:][].id]' <<<"$all")" \
    "$(hj --limit 2 | jq -c '[.history[].id]')"
zdm_run history --until 2020-01-01T00:00:00Z
t_eq "nothing matches: says so" "no history rows match" "$ZOUT"
for bad in "--outcome okay" "--since 5" "--limit 0" "--since yesterday"; do
    # shellcheck disable=SC2086
    zdm_run history $bad
    t_eq "history $bad: exit 2" 2 "$ZRC"
done

if t_pg_available; then
    t_pg_start
    t_section "PostgreSQL: schedule, rollback, status fields and history filters"
    db_new pg sched
    simple pgp
    to_cut_over pgp
    zdm_run run-due
    t_eq "pg: no due time: not contracted" "cut_over true" "$(zdm_phase_of pgp) $(sjson pgp waiting_for_schedule)"
    zdm_run schedule pgp --after 1h
    t_ne "pg: scheduled" null "$(sjson pgp contract_due)"
    zdm_run rollback pgp --force
    zdm_run rollback pgp --force
    zdm_run rollback pgp
    t_eq "pg: rolled back, schedule gone" "rolled_back null" "$(zdm_phase_of pgp) $(sjson pgp contract_due)"
    t_eq "pg: history, every filter at once" 1 \
        "$(hj pgp --event advance --outcome ok --since 1h --until 2099-01-01T00:00:00Z --limit 1 | jq '.history | length')"
    t_eq "pg: --event schedule" '["schedule"]' "$(hj --event schedule | jq -c '[.history[].action] | unique')"
else
    T_SKIPPED="$T_SKIPPED postgresql"
fi

t_finish
