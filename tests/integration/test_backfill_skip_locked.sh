#!/usr/bin/env bash
# test_backfill_skip_locked.sh -- a backfill passes over the rows the
# application holds locked and converts them once they are free
# (PostgreSQL; SQLite has one writer and no row locks).
#
# Table t (20,000 rows, one integer key); an audit trigger records each
# write of a backfill transaction.  The "application" (a psql session) holds rows
# 5001..5010 with SELECT ... FOR UPDATE in an open transaction while the
# backfill runs:
#   pass     set dst = COALESCE(dst, 0) + 1 and no `where` (a converted row
#            still needs "converting": only the cursor and the revisit's
#            exact runs keep it from being written twice); the backfill
#            converts every other row and never waits on a
#            lock (no zdm backend has an ungranted lock in pg_locks, read
#            over and over while the locked rows are left); the rows it
#            passed over are a range of their own in zdm's ranges table,
#            and the plan is not backfilled while they are left; once the
#            application commits, the worker converts them and finishes:
#            every row exactly once
#   kill9    the same with `where = "dst IS NULL"`, and the worker killed
#            with kill -9 after the pass, before the revisit: the revisit
#            range is on record; the application commits; a new worker
#            converts the rows left: every row exactly once
# Nothing is timed: each wait is for a state, bounded only so that a
# broken build fails rather than hangs.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init test_backfill_skip_locked

ROWS=20000

# setup NAME SET [WHERE]
setup() {
    db_new pg "$1"
    plans_empty
    plan_write p "[[expand.steps]]
sql = \"SELECT 1\"
down = \"SELECT 1\"
[backfill]
table = \"t\"
set.dst = \"$2\"${3:+
where = \"$3\"}
dual_write = false
[backfill.throttle]
batch_size = 500
# the application's open transaction counts as a session at work: the
# busy share (5 % by default) would make 20,000 rows minutes under ASan
max_duty_percent = 100"
    db_sql "CREATE TABLE t (id bigint PRIMARY KEY, src integer NOT NULL, dst bigint);
            INSERT INTO t (id, src) SELECT g, g % 1000 FROM generate_series(1, $ROWS) g; ANALYZE t;
            CREATE TABLE audit (k bigint NOT NULL);
            CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
              IF COALESCE(current_setting('zdm.backfill', true), '') <> '' THEN
                INSERT INTO audit (k) VALUES (NEW.id); END IF;
              RETURN NULL; END \$\$;
            CREATE TRIGGER audit AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION audit();" >/dev/null
    zdm_run advance p
    t_rc "expand p" 0
}

# The application holds rows 5001..5010 locked until pg_session_end app.
app_lock() {
    pg_session_start app
    pg_session_send app "BEGIN; SELECT id FROM t WHERE id BETWEEN 5001 AND 5010 FOR UPDATE;"
    t_wait_for "the application holds its row locks" 30 "[ \"\$(pg_session_locks app t)\" -gt 0 ]"
}

zdm_waiting() {
    db_sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'zdm' AND a.datname = current_database() AND NOT l.granted"
}

# The rows left (dst IS NULL) that some open range of p covers: a range
# converts (cursor, hi].  (Passed over by batches the pacer made small,
# they may be split over several ranges.)
covered() {
    db_sql "SELECT count(*) FROM t WHERE dst IS NULL AND EXISTS (SELECT 1 FROM $(zdm_tbl ranges) r
             WHERE r.plan_id = 'p' AND r.done = 0 AND (r.cursor::jsonb->>0)::bigint < t.id
               AND t.id <= (r.hi::jsonb->>0)::bigint)"
}

# check_pass WHAT LOG: every row but the application's converted; zdm never
# waited meanwhile (LOG: the worker's stderr, shown if the wait gives up).
check_pass() {
    local what=$1 log=$2
    # (a fresh-check on a fresh machine once saw the worker stop at a
    # cursor for the whole 120 s; 3 runs side by side here did not: the
    # worker's last lines say what it waited for if it comes back)
    t_wait_for "$what: every row but the 10 locked ones converted" 120 \
        "[ \"\$(db_sql 'SELECT count(*) FROM t WHERE dst IS NULL')\" = 10 ]" ||
        tail -n 30 "$log"
    t_eq "$what: the rows left are the application's" "5001-5010" \
        "$(db_sql "SELECT min(id) || '-' || max(id) FROM t WHERE dst IS NULL")"
    local i waits=0
    for i in $(seq 1 20); do
        [ "$(zdm_waiting)" = 0 ] || waits=$((waits + 1))
        sleep 0.1
    done
    t_eq "$what: readings of pg_locks with a zdm backend waiting for a lock" 0 "$waits"
    t_eq "$what: rows left that an open range covers" 10 "$(covered)"
    t_note "$what: open ranges: $(db_sql "SELECT range_id || ' ' || COALESCE(cursor, '-') || '..' || hi FROM $(zdm_tbl ranges)
                                    WHERE plan_id = 'p' AND done = 0" | tr '\n' ';')"
    t_eq "$what: the plan is not backfilled while rows are left" expanded "$(db_phase p)"
    zdm_run --json status p
    t_eq "$what: status while rows are left: under 100 %, rows left no more than the open ranges' keys" "true true" \
        "$(jq -r --argjson keys "$(db_sql "SELECT COALESCE(sum((hi::jsonb->>0)::bigint - (cursor::jsonb->>0)::bigint), 0)
                                           FROM $(zdm_tbl ranges) WHERE plan_id = 'p' AND done = 0")" \
            '.plans[0].backfill | "\(.percent_done < 100) \(.rows_left_estimate <= $keys)"' <<<"$ZOUT")"
}

# check_exactly_once WHAT EXPECTED: every row written by the backfill once
# (the audit counts every write of a backfill transaction), dst = EXPECTED.
check_exactly_once() {
    local what=$1
    t_eq "$what: rows written twice by the backfill" "" "$(db_sql "SELECT k FROM audit GROUP BY k HAVING count(*) > 1 LIMIT 3")"
    t_eq "$what: rows converted" "$ROWS" "$(db_sql "SELECT count(DISTINCT k) FROM audit")"
    t_eq "$what: rows not (correctly) converted" 0 \
        "$(db_sql "SELECT count(*) FROM t WHERE dst IS DISTINCT FROM $2")"
    t_eq "$what: phase" backfilled "$(db_phase p)"
}

case_pass() {
    t_section "rows held by the application are passed over, then converted"
    setup skip_pass "COALESCE(dst, 0) + 1"
    app_lock
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    zdm_bg "$T_DIR/pass" backfill p --listen "$port"
    local job=$ZBG_JOB
    check_pass pass "$T_DIR/pass.err"
    t_wait_for "pass: /status counts the rows passed over (at least the 10 held)" 30 \
        "[ \"\$(python3 -c \"import json, urllib.request; o = json.load(urllib.request.urlopen('http://127.0.0.1:$port/status', timeout=10)); print(1 if o['rows_passed_over'] >= 10 else 0)\" 2>&1)\" = 1 ]"
    t_file_has "$T_DIR/pass.err" "held locked by another session passed over"
    t_eq "pass: the worker says it waits for them (status)" 1 \
        "$(zdm_status_field p 'backfill.worker_list[0].throttle' | grep -c 'rows held locked by another session')"
    pg_session_end app
    t_wait_exit "$job" 120
    zdm_bg_collect "$T_DIR/pass"
    t_eq "pass: backfill exit" 0 "$WAIT_RC"
    check_exactly_once pass 1
}

case_kill9() {
    t_section "kill -9 between the pass and the revisit"
    setup skip_kill "src * 2 + 1" "dst IS NULL"
    app_lock
    zdm_bg "$T_DIR/kill" backfill p
    local job=$ZBG_JOB pid=$ZBG_PID
    check_pass kill9 "$T_DIR/kill.err"
    kill -9 "$pid"
    t_wait_exit "$job" 30
    t_eq "kill9: the rows left are still covered by open ranges after the kill" 10 "$(covered)"
    pg_session_end app
    zdm_run backfill p
    t_rc "kill9: the rerun" 0
    check_exactly_once kill9 "src * 2 + 1"
}

t_with_pg t_run case_pass
t_with_pg t_run case_kill9
t_finish
