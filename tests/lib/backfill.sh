# shellcheck shell=bash
# backfill.sh -- the cases shared by the backfill integration tests
# (tests/integration/test_backfill_sqlite.sh and test_backfill_pg.sh), on
# top of the one harness, tests/lib/zdm.sh (sourced here: t_*, db_*,
# zdm_run, zdm_bg, ...).
#
#   source "$ZDM_SRC/tests/lib/backfill.sh"
#   t_init_dialect NAME DIALECT; then t_run bf_case_... ARGS, one a case
#   bf_rows_done PLAN        sum of rows_done over the plan's ranges
#   bf_rows_done_ge PLAN N   a condition for t_wait_for
#   bf_fill TABLE N          rows 1..N (id, pad)
#   bf_inc_setup ROWS THROTTLE [MORE_BASELINE]  the n = n + 1 baseline:
#                            table t, plan 0002_inc expanded; BF_N = ROWS
#   bf_check_inc_done WHAT   every row converted once, plan backfilled
#   bf_inc_invariant         "converted checkpointed twice" in one snapshot
#
# The cases shared by both dialects are the bf_case_* functions:
# kill9 (exactly once under kill -9), dualwrite (old and new application
# writing during the backfill; triggers gone at contract and rollback),
# pause, pause_query, rate, adaptive, sigterm, bad_key, failing_expr.  The
# sigterm case needs the script's bf_hold_prepare / bf_hold_start /
# bf_hold_release.  No assertion is about speed; the one rate check
# (max_rows_per_second) checks a throttle's own promise with a wide margin.

: "${ZDM:?ZDM must name the zdm binary}"
ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# shellcheck source=zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"

BF_N=0

bf_rows_done() {
    db_sql "SELECT COALESCE(sum(rows_done), 0) FROM $(zdm_tbl ranges) WHERE plan_id = '$1'"
}

# bf_fill TABLE N: rows 1..N (id only; other columns take their defaults,
# pad gets some text).
bf_fill() {
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $2)
                INSERT INTO $1 (id, pad) SELECT i, hex(randomblob(24)) FROM c"
    else
        db_sql "INSERT INTO $1 (id, pad) SELECT i, md5(i::text) || md5((i * 7)::text)
                FROM generate_series(1, $2) i; ANALYZE $1"
    fi
}

# The baseline every n = n + 1 case starts from: t(id, n, pad), an index
# on n (so no update is HOT: each batch does real work), and a plan
# 0002_inc whose backfill adds 1 to n once per row.
# bf_inc_setup ROWS THROTTLE_LINES [MORE_BASELINE_SQL]
bf_inc_setup() {
    local rows=$1 throttle=$2 more=${3:-}
    plan_write 0001_base "description = \"baseline\"
[[expand.steps]]
sql = \"CREATE TABLE t (id integer PRIMARY KEY, n integer NOT NULL DEFAULT 0, pad text)\"
down = \"DROP TABLE t\"
[[expand.steps]]
sql = \"CREATE INDEX t_n ON t (n)\"
down = \"DROP INDEX t_n\"
$more"
    plan_write 0002_inc "description = \"n + 1 on every row, once\"
requires = [\"0001_base\"]
[backfill]
table = \"t\"
set.n = \"n + 1\"
dual_write = false
[backfill.throttle]
$throttle"
    zdm_complete 0001_base
    bf_fill t "$rows"
    BF_N=$rows
    zdm_run advance 0002_inc
    t_rc "expand 0002_inc" 0
    t_eq "0002_inc expanded" expanded "$(db_phase 0002_inc)"
}

# Every row converted exactly once, the checkpoints agree, and the plan is
# backfilled.
bf_check_inc_done() {
    local what=$1
    t_eq "$what: rows with n <> 1" 0 "$(db_sql "SELECT count(*) FROM t WHERE n <> 1")"
    t_eq "$what: rows in t" "$BF_N" "$(db_sql "SELECT count(*) FROM t")"
    t_eq "$what: sum(rows_done) of the ranges (each row counted once)" "$BF_N" "$(bf_rows_done 0002_inc)"
    t_eq "$what: phase" backfilled "$(db_phase 0002_inc)"
}

# In one statement (one snapshot): converted rows, the ranges' count of
# converted rows, rows converted more than once.  A batch and its
# checkpoint commit together, so the first two are always equal.
bf_inc_invariant() {
    db_sql "SELECT (SELECT count(*) FROM t WHERE n = 1) || ' ' ||
                   (SELECT COALESCE(sum(rows_done), 0) FROM $(zdm_tbl ranges) WHERE plan_id = '0002_inc') || ' ' ||
                   (SELECT count(*) FROM t WHERE n > 1)"
}

t_file_has() { grep -qF -- "$2" "$1"; }

bf_rows_done_ge() { [ "$(bf_rows_done "$1")" -ge "$2" ]; }

# ================================================================== cases

# 1. Exactly once under kill -9: a worker killed at 20 random moments and
#    restarted each time; then one runs to the end.
#    bf_case_kill9 ROWS EXTRA_THROTTLE EXTRA_BASELINE_STEPS
#    The caller gives each batch a floor of 20 ms (a sleep between batches,
#    or a slow statement trigger inside them): 20 workers live at most
#    20 x 0.5 s = 10 s, so ROWS / 200 x 20 ms > 10 s means the kills always
#    land before the end, however fast the machine.
bf_case_kill9() {
    local rows=$1
    t_section "exactly once under kill -9 ($rows rows)"
    db_fresh kill9
    # latency pacing off: 20 kills must land within the run, and the
    # loaded test host would stretch it (test_latency_pacing covers pacing)
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
max_latency_factor = 0
$2" "$3"
    local kills=0 inv conv chk twice i
    for i in $(seq 1 20); do
        zdm_bg "$T_DIR/kill9.$i" backfill 0002_inc
        t_random_sleep
        if ! t_alive "$ZBG_PID"; then
            t_wait_exit "$ZBG_JOB" 10
            _t_fail "worker $i ended (exit $WAIT_RC) before its kill -9" \
                "$(tail -n 5 "$T_DIR/kill9.$i.err")"
            break
        fi
        kill -9 "$ZBG_PID"
        { t_wait_exit "$ZBG_JOB" 10; } 2>/dev/null
        kills=$((kills + 1))
        # the database as the kill left it: every batch whole or absent
        inv=$(bf_inc_invariant)
        read -r conv chk twice <<<"$inv"
        T_CHECKS=$((T_CHECKS + 1))
        if [ "$conv" != "$chk" ] || [ "$twice" != 0 ]; then
            _t_fail "after kill $i: rows with n = 1, sum(rows_done), rows with n > 1" \
                "expected: N N 0" "got:      $inv"
        fi
    done
    t_eq "workers killed with -9 while running" 20 "$kills"
    local before
    before=$(bf_rows_done 0002_inc)
    t_note "$kills kills; $before of $rows rows converted before the last run"
    t_cmp "the kills left work for the last run" "$before" -lt "$rows"
    zdm_run backfill 0002_inc
    t_rc "the last worker" 0
    t_has "the last worker says" "0002_inc: backfilled" "$ZOUT"
    bf_check_inc_done "after 20 kills"
}

# 3 + 8. Application writes through the old and the new column while the
#    backfill runs; then contract and rollback remove the triggers.
bf_case_dualwrite() {
    local rows=$1
    t_section "dual-write: old and new application write during the backfill ($rows rows)"
    db_fresh dw
    plan_write 0001_base 'description = "baseline"
[[expand.steps]]
sql = "CREATE TABLE acct (id integer PRIMARY KEY, amount integer, pad text)"
down = "DROP TABLE acct"'
    plan_write 0002_cents 'description = "cents = amount * 100, both ways"
requires = ["0001_base"]
[[expand.steps]]
sql = "ALTER TABLE acct ADD COLUMN cents integer"
down = "ALTER TABLE acct DROP COLUMN cents"
[backfill]
table = "acct"
set.cents = "amount * 100"
[backfill.dual_write]
sources = ["amount"]
reverse.amount = "cents / 100"
[backfill.throttle]
batch_size = 100
target_batch_ms = 0
sleep_ms = 10'
    # SQLite: latency pacing off.  With two writers committing, it would
    # leave the write lock free 199x as long as each 100-row batch held it
    # (pacer.h; test_sqlite_lock_share covers that): minutes on a loaded
    # test host, and this case is about the triggers, not the pace.
    if [ "$T_DIALECT" = sqlite ]; then
        printf 'max_latency_factor = 0\n' >>"$T_PLANS/0002_cents.toml"
    fi
    zdm_complete 0001_base
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
                INSERT INTO acct (id, amount) SELECT i, i % 997 FROM c"
    else
        db_sql "INSERT INTO acct (id, amount) SELECT i, i % 997 FROM generate_series(1, $rows) i; ANALYZE acct"
    fi
    zdm_run advance 0002_cents
    t_rc "expand 0002_cents" 0
    if [ "$T_DIALECT" = sqlite ]; then
        t_eq "dual-write triggers after expand" 4 \
            "$(db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm\_dw\_%' ESCAPE '\'")"
    else
        # both directions, insert and update: four triggers, two functions
        t_eq "dual-write triggers after expand" 4 \
            "$(db_sql "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\_dw\_%'")"
        t_eq "dual-write functions after expand" 2 \
            "$(db_sql "SELECT count(*) FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace")"
    fi

    # Two application writers, one statement at a time, until told to stop.
    local stop="$T_DIR/dw.stop"
    rm -f "$stop"
    # Each writer commits a few statements at a time, at an application's
    # pace: on SQLite's single write lock (rollback journal, a sync per
    # commit) a client writing flat out starves every other connection.
    local begin=BEGIN pace=0.02
    if [ "$T_DIALECT" = sqlite ]; then begin="BEGIN IMMEDIATE" pace=0.1; fi
    _bf_writer() { # KIND
        local i=0 id v
        [ "$T_DIALECT" = sqlite ] && echo ".timeout 20000"
        while [ ! -e "$stop" ]; do
            i=$((i + 1))
            id=$((RANDOM % rows + 1))
            v=$((RANDOM % 1000))
            echo "$begin;"
            if [ "$1" = old ]; then
                echo "INSERT INTO acct (id, amount) VALUES ($((1000000 + i)), $v);"
                echo "UPDATE acct SET amount = amount + 1 WHERE id = $id;"
                echo "UPDATE acct SET amount = $v WHERE id = $((1000000 + RANDOM % i + 1));"
            else
                echo "INSERT INTO acct (id, cents) VALUES ($((2000000 + i)), $((v * 100)));"
                echo "UPDATE acct SET cents = $((v * 100)) WHERE id = $id;"
                echo "UPDATE acct SET cents = $((v * 300)) WHERE id = $((2000000 + RANDOM % i + 1));"
            fi
            echo "COMMIT;"
            sleep "$pace"
        done
    }
    local client
    if [ "$T_DIALECT" = sqlite ]; then
        client=(sqlite3 -batch "$T_SQLITE_FILE")
    else
        client=("$_PG_BIN/psql" -X -q -d "$T_PG_URL")
    fi
    _bf_writer old | "${client[@]}" >"$T_DIR/w-old.out" 2>"$T_DIR/w-old.err" &
    local wold=$!
    _bf_writer new | "${client[@]}" >"$T_DIR/w-new.out" 2>"$T_DIR/w-new.err" &
    local wnew=$!
    T_BG_PIDS+=("$wold" "$wnew")
    t_wait_for "both writers have written" 30 bf_writers_started
    local pre_old pre_new post_old post_new worker_rc
    pre_old=$(bf_count_old)
    pre_new=$(bf_count_new)
    zdm_bg "$T_DIR/dw" -v backfill 0002_cents
    local worker=$ZBG_PID job=$ZBG_JOB
    t_wait_exit "$job" 150
    worker_rc=$WAIT_RC
    post_old=$(bf_count_old)
    post_new=$(bf_count_new)
    sleep 0.3 # the writers go on after the backfill: triggers alone
    touch "$stop"
    t_wait_exit "$wold" 60
    t_wait_exit "$wnew" 60
    t_eq "backfill worker exit status" 0 "$worker_rc"
    t_has "backfill worker" "plan is backfilled" "$(cat "$T_DIR/dw.err")"
    t_eq "old writer errors" "" "$(cat "$T_DIR/w-old.err")"
    t_eq "new writer errors" "" "$(cat "$T_DIR/w-new.err")"
    t_cmp "rows the old application inserted while the backfill ran" "$post_old" -gt "$pre_old"
    t_cmp "rows the new application inserted while the backfill ran" "$post_new" -gt "$pre_new"
    t_note "during the backfill the old app inserted $((post_old - pre_old)), the new app $((post_new - pre_new)) rows"
    local inconsistent="SELECT count(*) FROM acct WHERE cents IS NULL OR amount IS NULL
                        OR cents <> amount * 100 OR amount <> cents / 100"
    t_eq "rows where cents <> amount * 100 or amount <> cents / 100 (or NULL)" 0 "$(db_sql "$inconsistent")"
    t_eq "phase" backfilled "$(db_phase 0002_cents)"

    # 8. contract removes the triggers (and the function, on pg)
    zdm_run advance 0002_cents
    t_rc "cutover" 0
    zdm_run advance 0002_cents
    t_rc "contract" 0
    t_eq "phase after contract" complete "$(db_phase 0002_cents)"
    bf_check_no_triggers "after contract"
    db_sql "INSERT INTO acct (id, amount) VALUES (3000001, 5)"
    t_eq "no trigger fills cents after contract" "" "$(db_sql "SELECT cents FROM acct WHERE id = 3000001")"

    # 8. rollback of expand removes them too
    t_section "dual-write triggers are removed by rollback"
    plan_write 0003_rb 'description = "a dual-write plan rolled back"
[[expand.steps]]
sql = "ALTER TABLE acct ADD COLUMN twice integer"
down = "ALTER TABLE acct DROP COLUMN twice"
[backfill]
table = "acct"
set.twice = "amount * 2"
[backfill.throttle]
batch_size = 100'
    zdm_run advance 0003_rb
    t_rc "expand 0003_rb" 0
    if [ "$T_DIALECT" = sqlite ]; then
        t_eq "triggers of 0003_rb after expand" 2 \
            "$(db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm\_dw\_0003%' ESCAPE '\'")"
    else
        # forward only: an insert and an update trigger
        t_eq "triggers of 0003_rb after expand" 2 \
            "$(db_sql "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\_dw\_0003%'")"
    fi
    db_sql "UPDATE acct SET amount = 21 WHERE id = 7"
    t_eq "the trigger works before rollback" 42 "$(db_sql "SELECT twice FROM acct WHERE id = 7")"
    zdm_run backfill 0003_rb # partly or wholly: rollback must not care
    zdm_run rollback 0003_rb
    t_rc "rollback 0003_rb" 0
    t_eq "phase after rollback" rolled_back "$(db_phase 0003_rb)"
    bf_check_no_triggers "after rollback"
    t_eq "ranges of 0003_rb after rollback" 0 \
        "$(db_sql "SELECT count(*) FROM $(zdm_tbl ranges) WHERE plan_id = '0003_rb'")"
}

bf_count_old() { db_sql "SELECT count(*) FROM acct WHERE id > 1000000 AND id < 2000000"; }
bf_count_new() { db_sql "SELECT count(*) FROM acct WHERE id > 2000000"; }
bf_writers_started() { [ "$(bf_count_old)" -gt 0 ] && [ "$(bf_count_new)" -gt 0 ]; }

bf_check_no_triggers() {
    if [ "$T_DIALECT" = sqlite ]; then
        t_eq "$1: triggers named zdm_dw_%" "" \
            "$(db_sql "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm\_dw\_%' ESCAPE '\'")"
    else
        t_eq "$1: triggers named zdm_dw_%" "" \
            "$(db_sql "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'zdm\_dw\_%'")"
        t_eq "$1: functions in schema zdm" "" \
            "$(db_sql "SELECT proname FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace")"
    fi
}

# 5. pause / resume by the operator.
bf_case_pause() {
    local rows=$1
    t_section "pause and resume ($rows rows)"
    db_fresh pause
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
sleep_ms = 20"
    zdm_bg "$T_DIR/pause" -v backfill 0002_inc
    local worker=$ZBG_PID job=$ZBG_JOB
    t_wait_for "the worker converts rows" 30 bf_rows_done_ge 0002_inc 1
    zdm_run pause 0002_inc
    t_rc "zdm pause" 0
    local r0 r1 r2
    r0=$(bf_rows_done 0002_inc)
    t_wait_for "the worker logs the pause" 15 t_file_has "$T_DIR/pause.err" "throttled: paused by operator"
    r1=$(bf_rows_done 0002_inc)
    t_cmp "rows converted after zdm pause returned (at most the batch in flight, 200)" $((r1 - r0)) -le 200
    t_cmp "the pause came before the end" "$r1" -lt "$rows"
    sleep 1.5
    r2=$(bf_rows_done 0002_inc)
    t_eq "rows_done while paused (1.5 s apart)" "$r1" "$r2"
    t_eq "converted rows while paused" "$r1" "$(db_sql "SELECT count(*) FROM t WHERE n = 1")"
    T_CHECKS=$((T_CHECKS + 1))
    t_alive "$worker" || _t_fail "the paused worker exited" "$(tail -n 5 "$T_DIR/pause.err")"
    zdm_run status 0002_inc
    t_rc "status" 0
    t_has "status of a paused backfill" "PAUSED" "$ZOUT"
    t_has "status names the reason" "paused by operator" "$ZOUT"
    zdm_run resume 0002_inc
    t_rc "zdm resume" 0
    t_wait_exit "$job" 120
    t_eq "worker exit status after resume" 0 "$WAIT_RC"
    t_has "worker log" "resuming after" "$(cat "$T_DIR/pause.err")"
    bf_check_inc_done "after pause and resume"
    t_eq "history has the pause and the resume" "pause resume" \
        "$(db_sql "SELECT action FROM $(zdm_tbl history) WHERE plan_id = '0002_inc' AND action IN ('pause', 'resume') ORDER BY id" | tr '\n' ' ' | sed 's/ $//')"
}

# 5. pause_query: held while a flag table has a row.
bf_case_pause_query() {
    local rows=$1
    t_section "pause_query ($rows rows)"
    db_fresh pq
    bf_inc_setup "$rows" "batch_size = 500
target_batch_ms = 0
pause_query = \"SELECT EXISTS (SELECT 1 FROM hold)\"" '[[expand.steps]]
sql = "CREATE TABLE hold (why text)"
down = "DROP TABLE hold"'
    db_sql "INSERT INTO hold VALUES ('maintenance')"
    zdm_bg "$T_DIR/pq" -v backfill 0002_inc
    local worker=$ZBG_PID job=$ZBG_JOB
    t_wait_for "the worker logs the pause_query" 15 t_file_has "$T_DIR/pq.err" "throttled: pause_query returned true"
    sleep 1
    t_eq "rows converted while pause_query is true" 0 "$(db_sql "SELECT count(*) FROM t WHERE n <> 0")"
    T_CHECKS=$((T_CHECKS + 1))
    t_alive "$worker" || _t_fail "the held worker exited" "$(tail -n 5 "$T_DIR/pq.err")"
    db_sql "DELETE FROM hold"
    t_wait_exit "$job" 120
    t_eq "worker exit status" 0 "$WAIT_RC"
    t_has "worker log" "resuming after" "$(cat "$T_DIR/pq.err")"
    bf_check_inc_done "after pause_query cleared"
}

# 5. max_rows_per_second: the throttle's own promise, with a wide margin.
#    Measured from the first committed batch to the worker's exit, so the
#    start-up of the process (slow under sanitizers and load) is not in it.
bf_case_rate() {
    local rows=10000 limit=2000
    t_section "max_rows_per_second = $limit on $rows rows"
    db_fresh rate
    # latency pacing off: the loaded test host would hold the worker below
    # the limit (test_latency_pacing covers it)
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
max_latency_factor = 0
max_rows_per_second = $limit"
    zdm_bg "$T_DIR/rate" backfill 0002_inc
    local worker=$ZBG_PID job=$ZBG_JOB t0=0 t1 r0=0
    while t_alive "$worker"; do
        r0=$(bf_rows_done 0002_inc)
        if [ "${r0:-0}" -gt 0 ]; then
            t0=$(t_now_ms)
            break
        fi
        sleep 0.01
    done
    t_wait_exit "$job" 60
    t1=$(t_now_ms)
    t_eq "rate-limited worker exit status" 0 "$WAIT_RC"
    T_CHECKS=$((T_CHECKS + 1))
    if [ "$t0" = 0 ] || [ "$r0" -ge "$rows" ]; then
        _t_fail "no batch seen before the end (first rows_done $r0)"
        return
    fi
    local ms=$((t1 - t0)) rate
    rate=$(((rows - r0) * 1000 / (ms > 0 ? ms : 1)))
    t_note "$((rows - r0)) rows after the first batch in $ms ms: $rate rows/s (limit $limit)"
    t_cmp "rows/s is at least the limit - 20%" "$rate" -ge $((limit * 8 / 10))
    t_cmp "rows/s is at most the limit + 20%" "$rate" -le $((limit * 12 / 10))
    bf_check_inc_done "rate-limited"
}

# 5. Adaptive batch size: with target_batch_ms the size moves off the start.
#    max_latency_factor = 0: this case tests the batch cost model, and on a
#    loaded host the latency probe alone would hold batches at the minimum.
bf_case_adaptive() {
    local rows=$1
    t_section "adaptive batch size ($rows rows)"
    db_fresh adapt
    bf_inc_setup "$rows" "batch_size = 10
min_batch_size = 10
target_batch_ms = 100
max_latency_factor = 0"
    zdm_run -v backfill 0002_inc
    t_rc "adaptive worker" 0
    local sizes
    sizes=$(grep -oE 'next batch [0-9]+' <<<"$ZERR" | awk '{print $3}' | sort -n | uniq | tr '\n' ' ')
    t_note "batch sizes seen: $sizes"
    local max
    max=$(grep -oE 'next batch [0-9]+' <<<"$ZERR" | awk '{print $3}' | sort -n | tail -n 1)
    t_cmp "largest batch size (10-row batches are far below 100 ms)" "${max:-0}" -gt 10
    bf_check_inc_done "adaptive"
}

# 6. SIGTERM: finishes the batch it is in, exits 4, safe to resume.  The
#    script's bf_hold_prepare (before the worker starts) / bf_hold_start
#    WORKER / bf_hold_release (dialect-specific) make the worker wait inside
#    a batch, so "finishes its batch" is observable: the
#    worker outlives the signal until the hold is released, then commits
#    that batch.  BF_HOLD_ROWS_AFTER (if set) is rows_done expected then.
#    BF_SIGTERM_CANCELS=1 (PostgreSQL, where the hold blocks a statement
#    of the batch itself): the first signal cancels that batch instead --
#    the worker exits 4 while the hold is still on, and the batch is
#    rolled back (rows_done stays where it was).
bf_case_sigterm() {
    local rows=$1
    t_section "SIGTERM during a batch ($rows rows)"
    db_fresh term
    # sleep_ms: gaps between batches, where SQLite's lock holder gets in;
    # unthrottled: with latency pacing a PostgreSQL batch passes over the
    # held row (SKIP LOCKED) instead of waiting for it
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
max_latency_factor = 0
sleep_ms = 20"
    bf_hold_prepare
    zdm_bg "$T_DIR/term" -v backfill 0002_inc
    local worker=$ZBG_PID job=$ZBG_JOB
    bf_hold_start "$worker"
    local held
    held=$(bf_rows_done 0002_inc)
    T_CHECKS=$((T_CHECKS + 1))
    t_alive "$worker" || _t_fail "the worker ended before the hold took effect (exit status below)" \
        "$(tail -n 3 "$T_DIR/term.err")"
    kill -TERM "$worker"
    if [ "${BF_SIGTERM_CANCELS:-0}" = 1 ]; then
        t_wait_exit "$job" 60
        t_eq "exit status after SIGTERM (the blocked batch cancelled, the hold still on)" 4 "$WAIT_RC"
        t_eq "rows_done: the cancelled batch was rolled back" "$held" "$(bf_rows_done 0002_inc)"
        bf_hold_release
    else
        sleep 1
        T_CHECKS=$((T_CHECKS + 1))
        t_alive "$worker" || _t_fail "the worker exited on SIGTERM before finishing its batch" \
            "$(tail -n 5 "$T_DIR/term.err")"
        t_eq "rows_done while the batch waits" "$held" "$(bf_rows_done 0002_inc)"
        bf_hold_release
        t_wait_exit "$job" 60
        t_eq "exit status after SIGTERM" 4 "$WAIT_RC"
    fi
    t_has "the worker's message" "safe to resume" "$(cat "$T_DIR/term.err")"
    local done_rows
    done_rows=$(bf_rows_done 0002_inc)
    t_eq "converted, checkpointed, converted twice" "$done_rows $done_rows 0" "$(bf_inc_invariant)"
    t_cmp "the interrupted run left work" "$done_rows" -lt "$rows"
    t_eq "whole batches only (rows_done mod 200)" 0 $((done_rows % 200))
    t_cmp "after the signal: at most the one batch it was in" $((done_rows - held)) -le 200
    if [ -n "${BF_HOLD_ROWS_AFTER:-}" ] && [ "${BF_SIGTERM_CANCELS:-0}" != 1 ]; then
        t_eq "rows_done: the held batch was finished and committed" "$BF_HOLD_ROWS_AFTER" "$done_rows"
    fi
    t_eq "phase after SIGTERM" expanded "$(db_phase 0002_inc)"
    zdm_run backfill 0002_inc
    t_rc "rerun after SIGTERM" 0
    bf_check_inc_done "after SIGTERM and rerun"
}

# 7. A key the backfill cannot walk: refused before anything changes.
#    bf_case_bad_key ID BASELINE_STEPS BACKFILL_LINES EXPECTED_MESSAGE
#    (the baseline creates table k (id, v, ...))
bf_case_bad_key() {
    local id=$1 steps=$2 bflines=$3 expect=$4
    t_section "bad key: $id"
    db_fresh badkey
    plan_write 0001_base "description = \"baseline\"
$steps"
    plan_write "$id" "description = \"a backfill on a table it cannot walk\"
requires = [\"0001_base\"]
[[expand.steps]]
sql = \"ALTER TABLE k ADD COLUMN w integer\"
down = \"ALTER TABLE k DROP COLUMN w\"
[backfill]
table = \"k\"
$bflines
set.w = \"v + 1\""
    zdm_complete 0001_base
    db_sql "INSERT INTO k (id, v) VALUES (1, 1), (2, 1), (3, 2)"
    local phase
    db_dump "$T_DIR/$id.before"
    zdm_run advance "$id"
    t_rc "advance $id (expand)" 3
    t_has "refusal message" "$expect" "$ZERR"
    t_has "refusal message" "nothing was changed" "$ZERR"
    db_dump "$T_DIR/$id.after"
    t_same_file "schema after the refused expand" "$T_DIR/$id.before" "$T_DIR/$id.after"
    phase=$(db_phase "$id")
    t_eq "phase after the refusal" pending "${phase:-pending}"
    t_has "history records the refusal" "refused" \
        "$(db_sql "SELECT outcome FROM $(zdm_tbl history) WHERE plan_id = '$id'")"
}


# 7. A set expression that fails on one row: exit 1 naming the batch's
#    keys, complete batches only, then fix the data and resume.
#    bf_case_failing_expr SET_EXPR COLUMN_DDL BAD_SQL FIX_SQL [PLAN_TOP_LINES]
bf_case_failing_expr() {
    local expr=$1 coldef=$2 bad=$3 fix=$4 top=${5:-} rows=20000
    t_section "a set expression that fails on row 5000"
    db_fresh fail
    plan_write 0001_base 'description = "baseline"
[[expand.steps]]
sql = "CREATE TABLE f (id integer PRIMARY KEY, d integer NOT NULL DEFAULT 1, pad text)"
down = "DROP TABLE f"'
    plan_write 0002_fail "description = \"x from d\"
requires = [\"0001_base\"]
$top
[[expand.steps]]
sql = \"ALTER TABLE f ADD COLUMN $coldef\"
down = \"ALTER TABLE f DROP COLUMN x\"
[backfill]
table = \"f\"
set.x = \"$expr\"
dual_write = false
[backfill.throttle]
batch_size = 200
target_batch_ms = 0"
    zdm_complete 0001_base
    bf_fill f "$rows"
    db_sql "$bad"
    zdm_run advance 0002_fail
    t_rc "expand 0002_fail" 0
    zdm_run backfill 0002_fail
    t_rc "backfill with a failing row" 1
    t_has "the error names the failed batch's keys" 'keys after ["4800"] up to ["5000"]' "$ZERR"
    t_has "the error says what is kept" "every earlier batch is kept" "$ZERR"
    t_eq "converted rows: the complete batches before the failing one" "4800 4800" \
        "$(db_sql "SELECT (SELECT count(*) FROM f WHERE x IS NOT NULL) || ' ' || (SELECT max(id) FROM f WHERE x IS NOT NULL)")"
    t_eq "rows of the failed batch (4801..5000) converted" 0 \
        "$(db_sql "SELECT count(*) FROM f WHERE id > 4800 AND id <= 5000 AND x IS NOT NULL")"
    t_eq "sum(rows_done)" 4800 "$(db_sql "SELECT COALESCE(sum(rows_done), 0) FROM $(zdm_tbl ranges) WHERE plan_id = '0002_fail'")"
    t_eq "phase after the failure" expanded "$(db_phase 0002_fail)"
    db_sql "$fix"
    zdm_run backfill 0002_fail
    t_rc "backfill after fixing the data" 0
    t_eq "rows without x" 0 "$(db_sql "SELECT count(*) FROM f WHERE x IS NULL")"
    t_eq "rows where x is not the expression" 0 "$(db_sql "SELECT count(*) FROM f WHERE x <> ($expr)")"
    t_eq "sum(rows_done)" "$rows" "$(db_sql "SELECT COALESCE(sum(rows_done), 0) FROM $(zdm_tbl ranges) WHERE plan_id = '0002_fail'")"
    t_eq "phase" backfilled "$(db_phase 0002_fail)"
}
