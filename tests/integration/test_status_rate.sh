#!/usr/bin/env bash
# test_status_rate.sh -- zdm status shows the backfill's rate (every live
# worker's together) and the ETA at it, on PostgreSQL and SQLite.
#
# Table t: 200,000 rows in 16 ranges; max_rows_per_second = 400 for the
# plan, which --workers 2 share (200 each), 40-row batches: a range lasts
# about a minute (a worker between two ranges is not listed, so none ends
# while the test reads), the backfill much longer; the test reads status
# while it runs and stops it.
#   * both workers live: rows_per_second is above one worker's share and
#     below 3 x the plan's limit (a wide bound: never a timing failure),
#     equals the sum of the listed workers' rates, and eta_seconds is
#     rows_left_estimate / rows_per_second rounded up; the text says it;
#   * zdm pause: once the workers are held, no rate and no ETA (null; the
#     text says "-" and "unknown"), no worker's rate either; after zdm
#     resume a rate again;
#   * a worker killed with kill -9 stops counting: the rate is the
#     survivor's alone;
#   * a worker whose heartbeat is stale (over 60 s, ZDM_RANGE_STALE_MS:
#     a remote worker's row, faked in the state) does not count; with a
#     fresh heartbeat the same row counts, and one silent for longer than
#     its rate's window counts its window's rows over the time since it
#     ended;
#   * no live worker (the backfill stopped): no rate, no ETA.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init status_rate

ROWS=200000
LIMIT=400        # max_rows_per_second of the plan
SHARE=200        # one worker's share of it with two live

setup() {
    local d=$1
    db_new "$d" "rate_$d"
    plans_empty
    plan_write p "[[expand.steps]]
sql = \"SELECT 1\"
down = \"SELECT 1\"
[backfill]
table = \"t\"
set.dst = \"src + 1\"
dual_write = false
[backfill.throttle]
batch_size = 40
max_batch_size = 40
max_latency_factor = 0
max_rows_per_second = $LIMIT"
    if [ "$d" = pg ]; then
        db_sql "CREATE TABLE t (id bigint PRIMARY KEY, src integer NOT NULL, dst integer);
                INSERT INTO t (id, src) SELECT g, g % 1000 FROM generate_series(1, $ROWS) g; ANALYZE t;" >/dev/null
    else
        db_sql "CREATE TABLE t (id integer PRIMARY KEY, src integer NOT NULL, dst integer);
                WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $ROWS)
                INSERT INTO t (id, src) SELECT x, x % 1000 FROM g;" >/dev/null
    fi
    zdm_run advance p
    t_rc "$d: expand p" 0
}

# The backfill object of zdm --json status p (compact), or {} on failure.
bf_json() {
    zdm_run --json status p
    if [ "$ZRC" = 0 ]; then jq -c '.plans[0].backfill' <<<"$ZOUT"; else echo '{}'; fi
}

# A live worker count N whose rates are all known (the condition polled).
rates_known() {
    bf_json | jq -e --argjson n "$1" \
        '.workers == $n and (.worker_list | length) == $n and ([.worker_list[].rows_per_second | numbers] | length) == $n
         and (.rows_per_second | type) == "number"' >/dev/null
}

case_rate() {
    local d=$1
    t_section "$d: --workers 2 throttled to $LIMIT rows/s together"
    setup "$d"
    zdm_bg "$T_DIR/bf-$d" backfill p --workers 2
    local job=$ZBG_JOB parent=$ZBG_PID
    t_wait_for "$d: two live workers with a rate" 120 "rates_known 2"

    : >"$T_DIR/readings-$d"
    local k
    for k in 1 2 3 4 5 6; do
        bf_json >>"$T_DIR/readings-$d"
        sleep 0.4
    done
    t_note "$d: rates read: $(jq -s -c 'map(.rows_per_second)' "$T_DIR/readings-$d")"
    t_eq "$d: readings with two live workers" 6 \
        "$(jq -s '[.[] | select(.workers == 2)] | length' "$T_DIR/readings-$d")"
    t_eq "$d: the rate is above one worker's share ($SHARE) at least once" true \
        "$(jq -s --argjson s "$SHARE" 'map(.rows_per_second // 0) | max > $s' "$T_DIR/readings-$d")"
    t_eq "$d: readings with no rate, or one over 3 x the limit" "[]" \
        "$(jq -s -c --argjson l "$LIMIT" '[.[] | .rows_per_second | select(. == null or . >= 3 * $l)]' "$T_DIR/readings-$d")"
    t_eq "$d: readings whose rate is not the sum of the workers' (within rounding)" "[]" \
        "$(jq -s -c '[.[] | select(.rows_per_second != null)
              | ([.worker_list[].rows_per_second] | add) as $sum
              | select((.rows_per_second - $sum) | fabs > 0.25) | [.rows_per_second, $sum]]' "$T_DIR/readings-$d")"
    t_eq "$d: readings whose ETA is not rows_left_estimate / rate" "[]" \
        "$(jq -s -c '[.[] | select(.rows_per_second != null)
              | (.rows_left_estimate / .rows_per_second) as $e
              | select(.eta_seconds == null or ((.eta_seconds - $e) | fabs) > 1.5)
              | [.eta_seconds, .rows_left_estimate, .rows_per_second]]' "$T_DIR/readings-$d")"
    zdm_run status p
    t_match "$d: text: the rate and the ETA" \
        '    rate [0-9]+ rows/s \(2 live workers together\), ETA [0-9][0-9a-z.]* for ~[0-9]+ rows left' "$ZOUT"
    t_match "$d: text: each worker's rate" 'worker .*: range [0-9]+, [0-9]+ rows in it so far, [0-9]+ rows/s, heartbeat' "$ZOUT"
    zdm_run status --format prometheus p
    t_match "$d: prometheus: the rate" 'zdm_backfill_plan_rows_per_second\{plan="p"\} [0-9.]+' "$ZOUT"
    t_match "$d: prometheus: the ETA" 'zdm_backfill_eta_seconds\{plan="p"\} [0-9]+' "$ZOUT"
    t_match "$d: prometheus: rows left" 'zdm_backfill_rows_left_estimate\{plan="p"\} [0-9]+' "$ZOUT"

    t_section "$d: zdm pause: no rate, no ETA; zdm resume: a rate again"
    zdm_run pause p
    t_rc "$d: pause" 0
    t_wait_for "$d: both workers held by the pause" 60 \
        "bf_json | jq -e '[.worker_list[].throttle // \"\" | select(test(\"paused by operator\"))] | length == 2' >/dev/null"
    sleep 1.5
    local j
    j=$(bf_json)
    t_eq "$d: paused: rate, ETA" "null null" "$(jq -r '"\(.rows_per_second) \(.eta_seconds)"' <<<"$j")"
    t_eq "$d: paused: the workers' rates" "[null,null]" "$(jq -c '[.worker_list[].rows_per_second]' <<<"$j")"
    t_eq "$d: paused: still two live workers" 2 "$(jq -r '.workers' <<<"$j")"
    zdm_run status p
    t_has "$d: paused: text" "    rate - (paused), ETA unknown" "$ZOUT"
    zdm_run status --format prometheus p
    t_lacks "$d: paused: prometheus has no rate" "zdm_backfill_plan_rows_per_second{" "$ZOUT"
    t_lacks "$d: paused: prometheus has no ETA" "zdm_backfill_eta_seconds{" "$ZOUT"
    t_has "$d: paused: prometheus still has rows left" 'zdm_backfill_rows_left_estimate{plan="p"}' "$ZOUT"
    zdm_run resume p
    t_rc "$d: resume" 0
    t_wait_for "$d: a rate again after resume" 60 "rates_known 2"

    t_section "$d: a worker killed with kill -9 stops counting"
    local victim survivor
    victim=$(bf_json | jq -r '.worker_list[1].worker' | sed 's/.* pid //')
    t_match "$d: a worker pid" '^[0-9]+$' "$victim"
    kill -9 "$victim"
    t_wait_for "$d: one live worker with a rate" 60 "rates_known 1"
    j=$(bf_json)
    survivor=$(jq -r '.worker_list[0].worker' <<<"$j")
    t_lacks "$d: the killed worker is not listed" "pid $victim" "$survivor"
    t_eq "$d: the rate is the survivor's alone" true \
        "$(jq '(.rows_per_second - .worker_list[0].rows_per_second) | fabs <= 0.05' <<<"$j")"

    t_section "$d: a worker whose heartbeat is stale does not count"
    # a worker on another host (its pid and session cannot be checked
    # from here): only its heartbeat tells it is alive
    local rt rid now
    rt=$(zdm_tbl ranges)
    rid=$(db_sql "SELECT max(range_id) FROM $rt WHERE plan_id = 'p' AND done = 0 AND (owner IS NULL OR owner <> '$survivor')")
    t_match "$d: a range for the remote worker" '^[0-9]+$' "$rid"
    now=$(t_now_ms)
    db_sql "UPDATE $rt SET owner = 'ops@elsewhere pid 4242', owner_host = 'elsewhere.invalid', owner_pid = 4242,
            owner_backend = NULL, heartbeat_ms = $now, throttle = NULL, rate_rows = 3000000, rate_ms = 60000
            WHERE plan_id = 'p' AND range_id = $rid" >/dev/null
    j=$(bf_json)
    t_eq "$d: fresh heartbeat: listed" 1 \
        "$(jq '[.worker_list[] | select(.worker == "ops@elsewhere pid 4242")] | length' <<<"$j")"
    t_eq "$d: fresh heartbeat: its 50000 rows/s count" true "$(jq '.rows_per_second >= 50000' <<<"$j")"
    # silent for longer than its window lasted (1 s of 50,000 rows, then
    # 10 s without a batch): its rows over the time since the window ended
    now=$(t_now_ms)
    db_sql "UPDATE $rt SET heartbeat_ms = $((now - 10000)), rate_rows = 50000, rate_ms = 1000
            WHERE plan_id = 'p' AND range_id = $rid" >/dev/null
    j=$(bf_json)
    t_eq "$d: silent past its window: still listed" 1 \
        "$(jq '[.worker_list[] | select(.worker == "ops@elsewhere pid 4242")] | length' <<<"$j")"
    t_eq "$d: silent past its window: 50000 rows in 1 s count as at most 50000 / 10 s" true \
        "$(jq '[.worker_list[] | select(.worker == "ops@elsewhere pid 4242") | .rows_per_second] | .[0] <= 5000.05' <<<"$j")"
    db_sql "UPDATE $rt SET heartbeat_ms = $((now - 61000)) WHERE plan_id = 'p' AND range_id = $rid" >/dev/null
    j=$(bf_json)
    t_eq "$d: stale heartbeat: not listed" 0 \
        "$(jq '[.worker_list[] | select(.worker == "ops@elsewhere pid 4242")] | length' <<<"$j")"
    t_eq "$d: stale heartbeat: its rate does not count (below 3 x the limit)" true \
        "$(jq --argjson l "$LIMIT" '.rows_per_second != null and .rows_per_second < 3 * $l' <<<"$j")"
    t_eq "$d: stale heartbeat: one live worker" 1 "$(jq '.workers' <<<"$j")"

    t_section "$d: no live worker: no rate, no ETA"
    kill -TERM "$parent"
    t_wait_exit "$job" 60
    zdm_bg_collect "$T_DIR/bf-$d"
    j=$(bf_json)
    t_eq "$d: stopped: workers, rate, ETA" "0 null null" "$(jq -r '"\(.workers) \(.rows_per_second) \(.eta_seconds)"' <<<"$j")"
    zdm_run status p
    t_has "$d: stopped: text" "    rate - (no live worker), ETA unknown" "$ZOUT"
}

t_with_pg t_run case_rate pg
t_run case_rate sqlite
t_finish
