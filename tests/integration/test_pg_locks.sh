#!/usr/bin/env bash
# test_pg_locks.sh -- lock safety on PostgreSQL.  A session holds a lock
# that conflicts with the plan's ALTER TABLE (an open transaction that read
# the table: ACCESS SHARE) while an "application" keeps querying the table.
#
#  1. lock_timeout = "200ms": each try of the ALTER gives up after the
#     lock_timeout (the log says "lock not granted within 200ms" and
#     retries), so the application's queries, which queue behind the
#     waiting ALTER, are never held much longer than one lock_timeout
#     (asserted: every query < 5 x lock_timeout, a generous bound); once
#     the blocker commits, advance succeeds.  A control run of the same
#     ALTER without lock_timeout shows the probe does see blocking.
#  2. The blocker never lets go and lock_retries = 3: advance exits 1,
#     the phase and the schema are unchanged, history says failed and why.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init pg_locks
if ! t_pg_available; then
    echo "pg_locks: no PostgreSQL server binaries: skipping" >&2
    exit 77
fi
t_pg_start

LOCK_MS=200
MAX_APP_MS=$((5 * LOCK_MS))

now_ms() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        local t=${EPOCHREALTIME/[.,]/}
        echo $((t / 1000))
    else
        echo $(($(date +%s%N) / 1000000))
    fi
}

# The application: one query after another on events, each in its own
# transaction with a statement_timeout, until $T_DIR/app.stop exists.  The
# server's clock times the query alone (not psql's start or the connection).
# Writes "start_ms latency_ms ok|error" per query to $T_DIR/app.lat.
app_loop() {
    local out t0 t1
    : >"$T_DIR/app.lat"
    while [ ! -e "$T_DIR/app.stop" ]; do
        if out=$(PGAPPNAME=app "$_PG_BIN/psql" -X -qAt -v ON_ERROR_STOP=1 -d "$T_PG_URL" \
                -c "SET statement_timeout = '10s'" \
                -c "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint" \
                -c "SELECT count(*) FROM events" \
                -c "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint" 2>>"$T_DIR/app.err"); then
            t0=$(sed -n 1p <<<"$out")
            t1=$(sed -n 3p <<<"$out")
            echo "$t0 $((t1 - t0)) ok" >>"$T_DIR/app.lat"
        else
            echo "$(now_ms) 10000 error" >>"$T_DIR/app.lat"
        fi
        sleep 0.02
    done
}

app_start() {
    rm -f "$T_DIR/app.stop"
    app_loop &
    APP_PID=$!
    T_BG_PIDS+=("$APP_PID")
    t_wait_for "the application's first query" 30 '[ -s "$T_DIR/app.lat" ]'
}

app_stop() {
    touch "$T_DIR/app.stop"
    t_wait_exit "$APP_PID" 60
}

# Max latency of the queries that started in [from, to] ms, and their count.
app_stats() {
    awk -v from="$1" -v to="$2" '$1 >= from && $1 <= to { n++; if ($2 > max) max = $2; if ($3 != "ok") bad++ }
        END { printf "%d %d %d\n", n, max, bad }' "$T_DIR/app.lat"
}

blocker_start() {
    pg_session_start blocker
    pg_session_send blocker "BEGIN; SELECT count(*) FROM events;"
    t_wait_for "the blocker's lock on events" 30 '[ "$(pg_session_locks blocker events)" -ge 1 ]'
}

lock_not_granted() {
    grep -c "lock not granted within ${LOCK_MS}ms" "$1" 2>/dev/null || true
}

db_new pg locks
plans_copy 0001_baseline
zdm_complete 0001_baseline
db_sql "INSERT INTO events (project_name) SELECT 'p' || g FROM generate_series(1, 1000) g" >/dev/null

plan_write 0300_alter_waits "
description = \"ALTER TABLE behind a long transaction\"
requires = [\"0001_baseline\"]
lock_timeout = \"${LOCK_MS}ms\"
lock_retries = 20

[[expand.steps]]
sql  = \"ALTER TABLE events ADD COLUMN event_type varchar(20)\"
down = \"ALTER TABLE events DROP COLUMN event_type\"
"
plan_write 0301_alter_gives_up "
description = \"ALTER TABLE behind a transaction that never ends\"
requires = [\"0001_baseline\"]
lock_timeout = \"${LOCK_MS}ms\"
lock_retries = 3

[[expand.steps]]
sql  = \"ALTER TABLE events ADD COLUMN other integer\"
down = \"ALTER TABLE events DROP COLUMN other\"
"

t_section "control: an ALTER without lock_timeout blocks the application"
blocker_start
app_start
ctl_from=$(now_ms)
PGAPPNAME=control "$_PG_BIN/psql" -X -q -d "$T_PG_URL" -c "ALTER TABLE events ADD COLUMN ctl integer" \
    >"$T_DIR/control.log" 2>&1 &
ctl_pid=$!
T_BG_PIDS+=("$ctl_pid")
t_wait_for "the control ALTER to wait for its lock" 30 \
    '[ "$(db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = '\''control'\'' AND wait_event_type = '\''Lock'\''")" = 1 ]'
# Hold the blocker long enough for the application to stall behind it.
sleep 2
pg_session_end blocker
t_wait_exit "$ctl_pid" 30
t_eq "control ALTER succeeded once the blocker committed" 0 "$WAIT_RC"
sleep 0.3
app_stop
read -r n max bad <<<"$(app_stats "$ctl_from" "$(now_ms)")"
t_cmp "control: the probe saw the application blocked (max latency ms)" "$max" -gt "$MAX_APP_MS"
echo "    (control: $n queries, max latency ${max}ms)"
db_sql "ALTER TABLE events DROP COLUMN ctl" >/dev/null

t_section "lock_timeout ${LOCK_MS}ms: retries, the application keeps going, then success"
blocker_start
app_start
zdm_from=$(now_ms)
zdm_bg "$T_DIR/adv1" -v advance 0300_alter_waits
adv_job=$ZBG_JOB
# Let it time out and retry a few times before the blocker commits.
t_wait_for "three lock timeouts in the log" 60 '[ "$(lock_not_granted "$T_DIR/adv1.err")" -ge 3 ]'
pg_session_end blocker
t_eq "the blocker committed" 0 "$WAIT_RC"
t_wait_exit "$adv_job" 60
zdm_to=$(now_ms)
adv_rc=$WAIT_RC
sleep 0.3
app_stop
zdm_bg_collect "$T_DIR/adv1" "advance 0300_alter_waits"
ZRC=$adv_rc
ZCMD="zdm advance 0300_alter_waits (background)"
t_rc "advance after the blocker committed" 0
t_has "advance reached expanded" "0300_alter_waits: pending -> expanded" "$ZOUT"
t_match "the log shows the lock timeout and the retry" \
    "step 1: lock not granted within ${LOCK_MS}ms \\(try 1 of 20: .*lock timeout.*\\); retrying in [0-9]+ ms" "$ZERR"
t_cmp "retries seen in the log" "$(lock_not_granted "$T_DIR/adv1.err")" -ge 3
t_match "the step was applied after retries" "step 1 applied in [0-9]+ ms \\(after retries\\)" "$ZERR"
t_has "event_type added" "event_type" "$(db_columns events)"
read -r n max bad <<<"$(app_stats "$zdm_from" "$zdm_to")"
t_cmp "application queries while zdm retried" "$n" -ge 5
t_eq "application queries that failed" 0 "$bad"
t_cmp "max application latency (ms) while zdm waited for its lock" "$max" -lt "$MAX_APP_MS"
echo "    (application: $n queries during advance, max latency ${max}ms, limit ${MAX_APP_MS}ms)"
# The server saw each try cancelled by lock_timeout, none by anything else.
t_cmp "lock timeouts in the server log" "$(pg_log | grep -c 'canceling statement due to lock timeout')" -ge 3

t_section "the blocker never commits, lock_retries = 3: exit 1, nothing changed"
blocker_start
db_dump "$T_DIR/before.sql"
zdm_run advance 0301_alter_gives_up
t_rc "advance that cannot get its lock" 1
t_has "the error says why" "gave up after 3 tries of ${LOCK_MS}ms lock_timeout" "$ZERR"
t_has "the error names the step" "expand step 1" "$ZERR"
t_eq "tries logged" 2 "$(grep -c "lock not granted within ${LOCK_MS}ms" <<<"$ZERR")"
pg_session_end blocker ROLLBACK\;
db_dump "$T_DIR/after.sql"
t_same_file "schema unchanged by the failed advance" "$T_DIR/before.sql" "$T_DIR/after.sql"
t_eq "still pending" pending "$(zdm_phase_of 0301_alter_gives_up)"
t_eq "no step recorded" 0 "$(db_sql "SELECT count(*) FROM zdm.steps WHERE plan_id = '0301_alter_gives_up'")"
zdm_run --json history 0301_alter_gives_up
t_eq "history: failed advance" "advance pending->expanded failed" \
    "$(jq -r '.history[-1] | "\(.action) \(.from)->\(.to) \(.outcome)"' <<<"$ZOUT")"
t_has "history: the reason" "gave up after 3 tries of ${LOCK_MS}ms lock_timeout" \
    "$(jq -r '.history[-1].detail' <<<"$ZOUT")"
t_eq "the lock row is released" 0 "$(db_sql "SELECT count(*) FROM zdm.locks")"
# And with the blocker gone, the same plan goes through.
zdm_run advance 0301_alter_gives_up
t_rc "advance once the blocker is gone" 0
t_has "other added" "other" "$(db_columns events)"

t_finish
