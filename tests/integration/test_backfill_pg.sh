#!/usr/bin/env bash
# test_backfill_pg.sh -- the backfill engine on a private PostgreSQL server
# (tests/lib/pg.sh): the cases shared with SQLite (tests/lib/backfill.sh)
# plus 4 workers on one table, a server restart mid-backfill, a second
# signal cancelling a waiting batch, and a table without a usable key.
# ctest passes ZDM and ZDM_SRC; exits 77 (skip) without server binaries.
set -uo pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=tests/lib/backfill.sh
source "$ZDM_SRC/tests/lib/backfill.sh"
t_init_dialect test_backfill_pg pg

# Another session holds a lock on row 5100 of t, in the middle of range 0
# (1..10000): the worker's UPDATE of the batch 5001..5200 waits for it.
bf_hold_prepare() {
    rm -f "$T_DIR/held" "$T_DIR/release"
    {
        echo "BEGIN;"
        echo "SELECT 1 FROM t WHERE id = 5100 FOR UPDATE;"
        echo "\\! touch $T_DIR/held"
        while [ ! -e "$T_DIR/release" ]; do sleep 0.05; done
        echo "COMMIT;"
    } | "$_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$T_PG_URL" >/dev/null 2>"$T_DIR/hold.err" &
    BF_HOLDER=$!
    T_BG_PIDS+=("$BF_HOLDER")
    t_wait_for "the holder has the row lock" 30 test -e "$T_DIR/held"
}
bf_pg_worker_waits() {
    [ "$(db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'zdm'
                 AND wait_event_type = 'Lock' AND query LIKE '%UPDATE%'")" -ge 1 ]
}
bf_hold_start() {
    t_wait_for "the worker's batch waits for the row lock" 30 bf_pg_worker_waits
}
bf_hold_release() {
    touch "$T_DIR/release"
    t_wait_exit "$BF_HOLDER" 30
    t_eq "the lock holder" "" "$(cat "$T_DIR/hold.err")"
}
# shellcheck disable=SC2034 # read by bf_case_sigterm
BF_HOLD_ROWS_AFTER=5200 # the batch 5001..5200 of range 0, finished
# shellcheck disable=SC2034 # read by bf_case_sigterm
BF_SIGTERM_CANCELS=1    # the hold blocks the batch's UPDATE: the first SIGTERM cancels it

# ------------------------------------------------------------------ cases

# 2. Four workers at once on one table.
pg_case_parallel() {
    t_section "4 workers in parallel (200000 rows)"
    db_fresh par
    # sleep_ms: one worker alone would need 1000 x 5 ms; the 4 all start
    bf_inc_setup 200000 "batch_size = 200
target_batch_ms = 0
sleep_ms = 5"
    local pids=() w mine ranges workers_with_rows=0 sum_all=0
    for w in 1 2 3 4; do
        zdm_bg "$T_DIR/par.$w" -v backfill 0002_inc
        pids+=("$ZBG_JOB")
    done
    for w in 1 2 3 4; do
        t_wait_exit "${pids[$((w - 1))]}" 120
        t_eq "worker $w exit status" 0 "$WAIT_RC"
        # each committed batch logs "range R: K keys, N rows converted"
        mine=$(grep -oE 'range [0-9]+: [0-9]+ keys, [0-9]+ rows converted' "$T_DIR/par.$w.err" |
            awk '{s += $5} END {print s + 0}')
        ranges=$(grep -oE 'claimed range [0-9]+' "$T_DIR/par.$w.err" | sort -u | wc -l)
        t_note "worker $w converted $mine rows in $ranges ranges"
        sum_all=$((sum_all + mine))
        if [ "$mine" -gt 0 ]; then workers_with_rows=$((workers_with_rows + 1)); fi
    done
    t_eq "rows converted, summed over the 4 workers' logs" 200000 "$sum_all"
    t_cmp "workers that converted rows" "$workers_with_rows" -ge 2
    # about 10,000 rows a range (from the planner's estimate): ~20
    local nranges
    nranges=$(db_sql "SELECT count(*) FROM zdm.ranges WHERE plan_id = '0002_inc'")
    t_cmp "ranges the table was cut into" "$nranges" -ge 4
    t_eq "ranges done" "$nranges" "$(db_sql "SELECT sum(done) FROM zdm.ranges WHERE plan_id = '0002_inc'")"
    bf_check_inc_done "4 workers"
    t_eq "workers saying the plan is backfilled (exactly one moves it)" 1 \
        "$(cat "$T_DIR"/par.*.err | grep -c 'plan is backfilled')"
    t_eq "history rows of the backfill transition" 1 \
        "$(db_sql "SELECT count(*) FROM zdm.history WHERE plan_id = '0002_inc' AND action = 'backfill' AND to_phase = 'backfilled'")"
}

# 4. The server restarts in the middle of a backfill, run by `zdm backfill`
#    (reconnects and goes on) and by `zdm advance` (whose plan lock went
#    with the restart: it stops with exit 1 rather than go on unlocked, and
#    the next advance resumes and finishes it).
#    Both a clean (fast) restart and an immediate one (a crash as the
#    worker sees it: libpq's "server closed the connection unexpectedly",
#    whose result came while the connection still read as OK, so the
#    worker took it for an error of its own and exited 1).
pg_case_restart() {
    local how=$1 mode=${2:-fast}
    t_section "PostgreSQL restarted ($mode) during zdm $how (100000 rows)"
    db_fresh restart
    bf_inc_setup 100000 "batch_size = 200
target_batch_ms = 0
sleep_ms = 5"
    zdm_bg "$T_DIR/restart" -v "$how" 0002_inc
    local worker=$ZBG_PID job=$ZBG_JOB before after
    t_wait_for "the worker converts rows" 30 bf_rows_done_ge 0002_inc 2000
    before=$(db_sql "SELECT pg_postmaster_start_time()")
    if ! _pg_as_owner "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -l "$_PG_DIR/server.log" -m "$mode" -w -t 60 restart \
            >"$T_DIR/pg_ctl.log" 2>&1; then
        _t_fail "pg_ctl restart failed" "$(cat "$T_DIR/pg_ctl.log")"
    fi
    after=$(db_sql "SELECT pg_postmaster_start_time()")
    t_ne "postmaster start time (the server did restart)" "$before" "$after"
    t_cmp "rows converted at the restart (it came mid-backfill)" "$(bf_rows_done 0002_inc)" -lt 100000
    t_wait_exit "$job" 120
    local log
    log=$(cat "$T_DIR/restart.err")
    if [ "$how" = advance ]; then
        # The restart took advance's advisory lock with its session: its
        # worker stops before the next batch (exit 1) instead of going on
        # unlocked, records nothing, and the next advance resumes the
        # backfill where the committed checkpoints say.
        t_eq "zdm $how exit status after the restart" 1 "$WAIT_RC"
        t_has "worker log" "no longer holds the plan's lock" "$log"
        t_eq "phase after the lost lock (nothing recorded unlocked)" expanded "$(db_phase 0002_inc)"
        zdm_run advance 0002_inc
        t_rc "the next advance resumes the backfill" 0
        t_eq "phase after the resumed backfill" backfilled "$(db_phase 0002_inc)"
    else
        t_eq "zdm $how exit status after the restart" 0 "$WAIT_RC"
        t_lacks "worker log" "zdm: " "$log"
        t_has "worker log" "lost the connection" "$log"
        t_has "worker log" "reconnected" "$log"
        # the server's WARNING as a log line of zdm's, not raw on stderr
        t_eq "worker log: no line outside zdm's log format" 0 "$(grep -c '^WARNING:' <<<"$log")"
    fi
    bf_check_inc_done "after the restart"
    zdm_run advance 0002_inc
    t_rc "cutover after the restarted run (the plan is not left locked)" 0
    t_eq "phase" cut_over "$(db_phase 0002_inc)"
}

# 6. A second signal cancels the batch that waits: exit 4 at once, that
#    batch rolled back.
pg_case_two_signals() {
    t_section "a second SIGTERM cancels the waiting batch"
    db_fresh term2
    # unthrottled: with latency pacing the batch passes over the held row
    bf_inc_setup 30000 "batch_size = 200
target_batch_ms = 0
max_latency_factor = 0"
    bf_hold_prepare
    zdm_bg "$T_DIR/term2" -v backfill 0002_inc
    local worker=$ZBG_PID job=$ZBG_JOB
    bf_hold_start "$worker"
    kill -TERM "$worker"
    sleep 0.3
    kill -TERM "$worker"
    t_wait_exit "$job" 15 # the lock is still held: only the cancel ends it
    t_eq "exit status after two signals" 4 "$WAIT_RC"
    t_has "the worker's message" "safe to resume" "$(cat "$T_DIR/term2.err")"
    t_eq "rows_done: the cancelled batch is not counted" 5000 "$(bf_rows_done 0002_inc)"
    t_eq "converted, checkpointed, converted twice" "5000 5000 0" "$(bf_inc_invariant)"
    t_eq "the cancelled batch's rows (5001..5200) converted" 0 \
        "$(db_sql "SELECT count(*) FROM t WHERE id > 5000 AND id <= 5200 AND n <> 0")"
    bf_hold_release
    zdm_run backfill 0002_inc
    t_rc "rerun after the cancel" 0
    bf_check_inc_done "after two signals and a rerun"
}

# Each batch sleeps 20 ms inside its transaction (a statement trigger), so
# most kills land with a batch's rows updated but not committed.
t_run bf_case_kill9 120000 "" '[[expand.steps]]
sql = """
CREATE FUNCTION slow_batch() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$;
CREATE TRIGGER slow_batch AFTER UPDATE ON t FOR EACH STATEMENT EXECUTE FUNCTION slow_batch();
"""
down = "DROP FUNCTION slow_batch() CASCADE"'
t_run pg_case_parallel
t_run pg_case_restart backfill
t_run pg_case_restart backfill immediate
t_run pg_case_restart advance
t_run bf_case_dualwrite 30000
t_run bf_case_pause 30000
t_run bf_case_pause_query 5000
t_run bf_case_rate
t_run bf_case_adaptive 20000
t_run bf_case_sigterm 30000
t_run pg_case_two_signals

# 7. Keys it cannot walk, and a set expression that fails on one row.
t_run bf_case_bad_key 0002_nopk '[[expand.steps]]
sql = "CREATE TABLE k (id integer, v integer)"
down = "DROP TABLE k"' '' "it has no primary key and the plan names no key"
t_run bf_case_bad_key 0002_nonunique '[[expand.steps]]
sql = "CREATE TABLE k (id integer PRIMARY KEY, v integer NOT NULL)"
down = "DROP TABLE k"
[[expand.steps]]
sql = "CREATE INDEX k_v ON k (v)"
down = "DROP INDEX k_v"' 'key = ["v"]' "the key columns are not NOT NULL with a unique index on exactly them"
t_run bf_case_failing_expr "100 / d" "x integer" \
    "UPDATE f SET d = 0 WHERE id = 5000" "UPDATE f SET d = 4 WHERE id = 5000"

t_finish
