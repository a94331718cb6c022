# backfill.sh -- helpers and shared cases for the backfill integration tests
# (tests/integration/test_backfill_sqlite.sh and test_backfill_pg.sh).
#
#   source "$ZDM_SRC/tests/lib/backfill.sh"
#   bf_init NAME DIALECT     temp dir $BF_DIR (removed on exit); for pg
#                            starts a private server (tests/lib/pg.sh)
#   bf_run CASE ARGS...      runs one case (BF_ONLY=REGEX: only matching)
#   bf_case TEXT             names the part of the test that follows
#   bf_db NAME               a fresh database and an empty plan dir: sets
#                            BF_DB (the --db URL), BF_FILE (sqlite), BF_PLANS
#   bf_plan ID TEXT          writes $BF_PLANS/ID.toml
#   bf_complete PLAN         advances PLAN to complete (a baseline)
#   bf_zdm ARGS...           zdm --db --plans ARGS; sets ZRC, ZOUT, ZERR
#   bf_bg FILE ARGS...       the same in the background (no wrapper: BF_PID
#                            is zdm itself); output in FILE.out, FILE.err
#   bf_wait PID SECS         waits for a background zdm; sets BF_RC
#   bf_sql SQL               rows of a query, fields separated by '|'
#   bf_phase PLAN            the plan's phase as zdm's state table has it
#   bf_rows_done PLAN        sum of rows_done over the plan's ranges
#   bf_eq bf_ne bf_has bf_lacks bf_cmp bf_rc
#                            assertions: print expected and got, count the
#                            failure, carry on
#   bf_until WHAT SECS CMD   polls CMD until it succeeds (bounds a hang; not
#                            a timing assertion)
#   bf_finish                exit 1 when an assertion failed, else 0
#
# The cases shared by both dialects are the bf_case_* functions at the end:
# kill9 (exactly once under kill -9), dualwrite (old and new application
# writing during the backfill; triggers gone at contract and rollback),
# pause, pause_query, rate, adaptive, sigterm, bad_key, failing_expr.  The
# sigterm case needs the script's bf_hold_prepare / bf_hold_start /
# bf_hold_release.  No assertion is about speed; the one rate check
# (max_rows_per_second) checks a throttle's own promise with a wide margin.

: "${ZDM:?ZDM must name the zdm binary}"
ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# shellcheck source=pg.sh
source "$ZDM_SRC/tests/lib/pg.sh"

BF_NAME=
BF_DIALECT=
BF_DIR=
BF_CASE=
BF_FAILS=0
BF_CHECKS=0
BF_PIDS=()
BF_DB=
BF_FILE=
BF_PG_URL=
BF_PLANS=
BF_N=0
BF_PID=
BF_RC=0
ZRC=0
ZOUT=
ZERR=
ZCMD=

_bf_on_exit() {
    local status=$?
    local p
    for p in "${BF_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ "${_PG_RUNNING:-0}" = 1 ]; then
        echo "--- last lines of the PostgreSQL server log:" >&2
        pg_log | tail -n 30 >&2
    fi
    pg_stop
    if [ -n "$BF_DIR" ] && [ -d "$BF_DIR" ]; then
        rm -rf -- "$BF_DIR"
    fi
    exit "$status"
}

bf_init() {
    BF_NAME=$1
    BF_DIALECT=$2
    local tool
    for tool in sqlite3 timeout; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "$BF_NAME: $tool is not installed: skipping" >&2
            exit 77
        fi
    done
    if [ ! -x "$ZDM" ]; then
        echo "$BF_NAME: $ZDM is not an executable" >&2
        exit 1
    fi
    BF_DIR=$(mktemp -d "${TMPDIR:-/tmp}/zdm-bf.XXXXXX") || exit 1
    chmod 0755 "$BF_DIR"
    trap _bf_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    unset ZDM_DATABASE_URL
    if [ "$BF_DIALECT" = pg ]; then
        pg_start # exits 77 when there is no server to start
        trap _bf_on_exit EXIT
    fi
}

bf_case() {
    BF_CASE=$1
    echo "=== $BF_NAME: $1 (at ${SECONDS}s)"
}

bf_note() { echo "    note: $*"; }

# bf_run FUNCTION ARGS...: runs a case; BF_ONLY=REGEX (matched against
# the function's name) runs only some, when working on one.
bf_run() {
    if [ -n "${BF_ONLY:-}" ] && ! [[ $1 =~ $BF_ONLY ]]; then
        return 0
    fi
    "$@"
}

# ---------------------------------------------------------------- assertions

_bf_fail() {
    BF_FAILS=$((BF_FAILS + 1))
    {
        echo "FAIL [$BF_CASE]: $1"
        shift
        local line
        for line in "$@"; do
            printf '%s\n' "$line" | sed 's/^/    /'
        done
    } >&2
}

_bf_last_cmd() {
    echo "last command: $ZCMD (exit $ZRC)"
    echo "--- stdout:"
    printf '%s\n' "$ZOUT" | sed 's/^/| /' | tail -n 30
    echo "--- stderr:"
    printf '%s\n' "$ZERR" | sed 's/^/| /' | tail -n 30
}

# bf_eq WHAT EXPECTED GOT
bf_eq() {
    BF_CHECKS=$((BF_CHECKS + 1))
    if [ "$2" != "$3" ]; then
        _bf_fail "$1" "expected: '$2'" "got:      '$3'"
        return 1
    fi
}

bf_ne() {
    BF_CHECKS=$((BF_CHECKS + 1))
    if [ "$2" = "$3" ]; then
        _bf_fail "$1" "expected anything but: '$2'" "got:                    '$3'"
        return 1
    fi
}

# bf_has WHAT NEEDLE HAYSTACK (fixed string)
bf_has() {
    BF_CHECKS=$((BF_CHECKS + 1))
    if ! grep -qF -- "$2" <<<"$3"; then
        _bf_fail "$1" "expected to contain: '$2'" "got:" "$(printf '%s\n' "$3" | sed 's/^/| /' | tail -n 30)"
        return 1
    fi
}

bf_lacks() {
    BF_CHECKS=$((BF_CHECKS + 1))
    if grep -qF -- "$2" <<<"$3"; then
        _bf_fail "$1" "expected NOT to contain: '$2'" "got:" \
            "$(printf '%s\n' "$3" | grep -F -- "$2" | sed 's/^/| /' | head -n 20)"
        return 1
    fi
}

# bf_cmp WHAT A OP B, OP one of -eq -ne -lt -le -gt -ge (integers)
bf_cmp() {
    BF_CHECKS=$((BF_CHECKS + 1))
    if ! test "$2" "$3" "$4" 2>/dev/null; then
        _bf_fail "$1" "expected: $2 $3 $4" "got:      $2 (against $4)"
        return 1
    fi
}

# bf_rc WHAT EXPECTED: the exit status of the last bf_zdm
bf_rc() {
    BF_CHECKS=$((BF_CHECKS + 1))
    if [ "$ZRC" != "$2" ]; then
        _bf_fail "$1: exit status" "expected: $2" "got:      $ZRC" "$(_bf_last_cmd)"
        return 1
    fi
}

bf_until() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            BF_CHECKS=$((BF_CHECKS + 1))
            _bf_fail "gave up waiting ${secs}s for: $what"
            return 1
        fi
        sleep 0.05
    done
}

bf_finish() {
    echo "=== $BF_NAME: $BF_CHECKS checks, $BF_FAILS failed"
    if [ "$BF_FAILS" -ne 0 ]; then
        exit 1
    fi
    exit 0
}

# ------------------------------------------------------------------ running

bf_zdm() {
    ZCMD="zdm --db $BF_DB --plans $BF_PLANS $*"
    ZRC=0
    timeout -k 5 120 "$ZDM" --db "$BF_DB" --plans "$BF_PLANS" "$@" \
        >"$BF_DIR/last.out" 2>"$BF_DIR/last.err" || ZRC=$?
    ZOUT=$(cat "$BF_DIR/last.out")
    ZERR=$(cat "$BF_DIR/last.err")
    if [ "$ZRC" = 124 ] || [ "$ZRC" = 137 ]; then
        _bf_fail "zdm ran more than 120s: killed" "$(_bf_last_cmd)"
    fi
    return 0
}

bf_bg() {
    local f=$1
    shift
    "$ZDM" --db "$BF_DB" --plans "$BF_PLANS" "$@" >"$f.out" 2>"$f.err" &
    BF_PID=$!
    BF_PIDS+=("$BF_PID")
}

# bf_wait PID SECS: BF_RC is the exit status (137 when it had to be killed).
bf_wait() {
    local pid=$1 secs=$2
    local deadline=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            BF_CHECKS=$((BF_CHECKS + 1))
            _bf_fail "zdm (pid $pid) still running after ${secs}s: killed"
            kill -9 "$pid" 2>/dev/null
            break
        fi
        sleep 0.05
    done
    BF_RC=0
    { wait "$pid"; } 2>/dev/null || BF_RC=$?
}

bf_alive() { kill -0 "$1" 2>/dev/null; }

# A random sleep of 0.05 .. 0.5 s.
bf_random_sleep() {
    local ms=$((50 + RANDOM % 451))
    sleep "$(printf '0.%03d' "$ms")"
}

bf_now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# ---------------------------------------------------------------- databases

BF_DBSEQ=0
bf_db() {
    BF_DBSEQ=$((BF_DBSEQ + 1))
    local name="$1_$BF_DBSEQ"
    if [ "$BF_DIALECT" = sqlite ]; then
        BF_FILE="$BF_DIR/$name.db"
        BF_DB="sqlite:$BF_FILE"
    else
        pg_psql -d postgres -c "CREATE DATABASE $name" || {
            echo "cannot create database $name" >&2
            exit 1
        }
        BF_PG_URL="postgresql:///$name?host=$PGHOST&user=postgres"
        BF_DB=$BF_PG_URL
    fi
    BF_PLANS="$BF_DIR/plans-$name"
    mkdir -p "$BF_PLANS"
}

bf_sql() {
    if [ "$BF_DIALECT" = sqlite ]; then
        sqlite3 -batch -noheader -cmd '.timeout 10000' "$BF_FILE" "$1"
    else
        pg_psql -At -F'|' -d "$BF_PG_URL" -c "$1"
    fi
}

# zdm's own state tables
bf_t() {
    if [ "$BF_DIALECT" = sqlite ]; then echo "zdm_$1"; else echo "zdm.$1"; fi
}

bf_plan() {
    printf '%s\n' "$2" >"$BF_PLANS/$1.toml"
}

bf_complete() {
    local i
    for i in 1 2 3 4; do
        bf_zdm advance "$1"
    done
    bf_eq "baseline $1 is complete" complete "$(bf_phase "$1")"
}

bf_phase() {
    bf_sql "SELECT phase FROM $(bf_t plans) WHERE id = '$1'"
}

bf_rows_done() {
    bf_sql "SELECT COALESCE(sum(rows_done), 0) FROM $(bf_t ranges) WHERE plan_id = '$1'"
}

# bf_fill TABLE N: rows 1..N (id only; other columns take their defaults,
# pad gets some text).
bf_fill() {
    if [ "$BF_DIALECT" = sqlite ]; then
        bf_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $2)
                INSERT INTO $1 (id, pad) SELECT i, hex(randomblob(24)) FROM c"
    else
        bf_sql "INSERT INTO $1 (id, pad) SELECT i, md5(i::text) || md5((i * 7)::text)
                FROM generate_series(1, $2) i; ANALYZE $1"
    fi
}

# The baseline every n = n + 1 case starts from: t(id, n, pad), an index
# on n (so no update is HOT: each batch does real work), and a plan
# 0002_inc whose backfill adds 1 to n once per row.
# bf_inc_setup ROWS THROTTLE_LINES [MORE_BASELINE_SQL]
bf_inc_setup() {
    local rows=$1 throttle=$2 more=${3:-}
    bf_plan 0001_base "description = \"baseline\"
[[expand.steps]]
sql = \"CREATE TABLE t (id integer PRIMARY KEY, n integer NOT NULL DEFAULT 0, pad text)\"
down = \"DROP TABLE t\"
[[expand.steps]]
sql = \"CREATE INDEX t_n ON t (n)\"
down = \"DROP INDEX t_n\"
$more"
    bf_plan 0002_inc "description = \"n + 1 on every row, once\"
requires = [\"0001_base\"]
[backfill]
table = \"t\"
set.n = \"n + 1\"
dual_write = false
[backfill.throttle]
$throttle"
    bf_complete 0001_base
    bf_fill t "$rows"
    BF_N=$rows
    bf_zdm advance 0002_inc
    bf_rc "expand 0002_inc" 0
    bf_eq "0002_inc expanded" expanded "$(bf_phase 0002_inc)"
}

# Every row converted exactly once, the checkpoints agree, and the plan is
# backfilled.
bf_check_inc_done() {
    local what=$1
    bf_eq "$what: rows with n <> 1" 0 "$(bf_sql "SELECT count(*) FROM t WHERE n <> 1")"
    bf_eq "$what: rows in t" "$BF_N" "$(bf_sql "SELECT count(*) FROM t")"
    bf_eq "$what: sum(rows_done) of the ranges (each row counted once)" "$BF_N" "$(bf_rows_done 0002_inc)"
    bf_eq "$what: phase" backfilled "$(bf_phase 0002_inc)"
}

# In one statement (one snapshot): converted rows, the ranges' count of
# converted rows, rows converted more than once.  A batch and its
# checkpoint commit together, so the first two are always equal.
bf_inc_invariant() {
    bf_sql "SELECT (SELECT count(*) FROM t WHERE n = 1) || ' ' ||
                   (SELECT COALESCE(sum(rows_done), 0) FROM $(bf_t ranges) WHERE plan_id = '0002_inc') || ' ' ||
                   (SELECT count(*) FROM t WHERE n > 1)"
}

bf_log_has() { grep -qF -- "$2" "$1"; }

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
    bf_case "exactly once under kill -9 ($rows rows)"
    bf_db kill9
    # latency pacing off: 20 kills must land within the run, and the
    # loaded test host would stretch it (test_latency_pacing covers pacing)
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
max_latency_factor = 0
$2" "$3"
    local kills=0 inv conv chk twice i
    for i in $(seq 1 20); do
        bf_bg "$BF_DIR/kill9.$i" backfill 0002_inc
        bf_random_sleep
        if ! bf_alive "$BF_PID"; then
            bf_wait "$BF_PID" 10
            _bf_fail "worker $i ended (exit $BF_RC) before its kill -9" \
                "$(tail -n 5 "$BF_DIR/kill9.$i.err")"
            break
        fi
        kill -9 "$BF_PID"
        { bf_wait "$BF_PID" 10; } 2>/dev/null
        kills=$((kills + 1))
        # the database as the kill left it: every batch whole or absent
        inv=$(bf_inc_invariant)
        read -r conv chk twice <<<"$inv"
        BF_CHECKS=$((BF_CHECKS + 1))
        if [ "$conv" != "$chk" ] || [ "$twice" != 0 ]; then
            _bf_fail "after kill $i: rows with n = 1, sum(rows_done), rows with n > 1" \
                "expected: N N 0" "got:      $inv"
        fi
    done
    bf_eq "workers killed with -9 while running" 20 "$kills"
    local before
    before=$(bf_rows_done 0002_inc)
    bf_note "$kills kills; $before of $rows rows converted before the last run"
    bf_cmp "the kills left work for the last run" "$before" -lt "$rows"
    bf_zdm backfill 0002_inc
    bf_rc "the last worker" 0
    bf_has "the last worker says" "0002_inc: backfilled" "$ZOUT"
    bf_check_inc_done "after 20 kills"
}

# 3 + 8. Application writes through the old and the new column while the
#    backfill runs; then contract and rollback remove the triggers.
bf_case_dualwrite() {
    local rows=$1
    bf_case "dual-write: old and new application write during the backfill ($rows rows)"
    bf_db dw
    bf_plan 0001_base 'description = "baseline"
[[expand.steps]]
sql = "CREATE TABLE acct (id integer PRIMARY KEY, amount integer, pad text)"
down = "DROP TABLE acct"'
    bf_plan 0002_cents 'description = "cents = amount * 100, both ways"
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
    bf_complete 0001_base
    if [ "$BF_DIALECT" = sqlite ]; then
        bf_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
                INSERT INTO acct (id, amount) SELECT i, i % 997 FROM c"
    else
        bf_sql "INSERT INTO acct (id, amount) SELECT i, i % 997 FROM generate_series(1, $rows) i; ANALYZE acct"
    fi
    bf_zdm advance 0002_cents
    bf_rc "expand 0002_cents" 0
    if [ "$BF_DIALECT" = sqlite ]; then
        bf_eq "dual-write triggers after expand" 4 \
            "$(bf_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm\_dw\_%' ESCAPE '\'")"
    else
        # both directions, insert and update: four triggers, two functions
        bf_eq "dual-write triggers after expand" 4 \
            "$(bf_sql "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\_dw\_%'")"
        bf_eq "dual-write functions after expand" 2 \
            "$(bf_sql "SELECT count(*) FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace")"
    fi

    # Two application writers, one statement at a time, until told to stop.
    local stop="$BF_DIR/dw.stop"
    rm -f "$stop"
    # Each writer commits a few statements at a time, at an application's
    # pace: on SQLite's single write lock (rollback journal, a sync per
    # commit) a client writing flat out starves every other connection.
    local begin=BEGIN pace=0.02
    if [ "$BF_DIALECT" = sqlite ]; then begin="BEGIN IMMEDIATE" pace=0.1; fi
    _bf_writer() { # KIND
        local i=0 id v
        [ "$BF_DIALECT" = sqlite ] && echo ".timeout 20000"
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
    if [ "$BF_DIALECT" = sqlite ]; then
        client=(sqlite3 -batch "$BF_FILE")
    else
        client=("$_PG_BIN/psql" -X -q -d "$BF_PG_URL")
    fi
    _bf_writer old | "${client[@]}" >"$BF_DIR/w-old.out" 2>"$BF_DIR/w-old.err" &
    local wold=$!
    _bf_writer new | "${client[@]}" >"$BF_DIR/w-new.out" 2>"$BF_DIR/w-new.err" &
    local wnew=$!
    BF_PIDS+=("$wold" "$wnew")
    bf_until "both writers have written" 30 bf_writers_started
    local pre_old pre_new post_old post_new worker_rc
    pre_old=$(bf_count_old)
    pre_new=$(bf_count_new)
    bf_bg "$BF_DIR/dw" -v backfill 0002_cents
    local worker=$BF_PID
    bf_wait "$worker" 150
    worker_rc=$BF_RC
    post_old=$(bf_count_old)
    post_new=$(bf_count_new)
    sleep 0.3 # the writers go on after the backfill: triggers alone
    touch "$stop"
    bf_wait "$wold" 60
    bf_wait "$wnew" 60
    bf_eq "backfill worker exit status" 0 "$worker_rc"
    bf_has "backfill worker" "plan is backfilled" "$(cat "$BF_DIR/dw.err")"
    bf_eq "old writer errors" "" "$(cat "$BF_DIR/w-old.err")"
    bf_eq "new writer errors" "" "$(cat "$BF_DIR/w-new.err")"
    bf_cmp "rows the old application inserted while the backfill ran" "$post_old" -gt "$pre_old"
    bf_cmp "rows the new application inserted while the backfill ran" "$post_new" -gt "$pre_new"
    bf_note "during the backfill the old app inserted $((post_old - pre_old)), the new app $((post_new - pre_new)) rows"
    local inconsistent="SELECT count(*) FROM acct WHERE cents IS NULL OR amount IS NULL
                        OR cents <> amount * 100 OR amount <> cents / 100"
    bf_eq "rows where cents <> amount * 100 or amount <> cents / 100 (or NULL)" 0 "$(bf_sql "$inconsistent")"
    bf_eq "phase" backfilled "$(bf_phase 0002_cents)"

    # 8. contract removes the triggers (and the function, on pg)
    bf_zdm advance 0002_cents
    bf_rc "cutover" 0
    bf_zdm advance 0002_cents
    bf_rc "contract" 0
    bf_eq "phase after contract" complete "$(bf_phase 0002_cents)"
    bf_check_no_triggers "after contract"
    bf_sql "INSERT INTO acct (id, amount) VALUES (3000001, 5)"
    bf_eq "no trigger fills cents after contract" "" "$(bf_sql "SELECT cents FROM acct WHERE id = 3000001")"

    # 8. rollback of expand removes them too
    bf_case "dual-write triggers are removed by rollback"
    bf_plan 0003_rb 'description = "a dual-write plan rolled back"
[[expand.steps]]
sql = "ALTER TABLE acct ADD COLUMN twice integer"
down = "ALTER TABLE acct DROP COLUMN twice"
[backfill]
table = "acct"
set.twice = "amount * 2"
[backfill.throttle]
batch_size = 100'
    bf_zdm advance 0003_rb
    bf_rc "expand 0003_rb" 0
    if [ "$BF_DIALECT" = sqlite ]; then
        bf_eq "triggers of 0003_rb after expand" 2 \
            "$(bf_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm\_dw\_0003%' ESCAPE '\'")"
    else
        # forward only: an insert and an update trigger
        bf_eq "triggers of 0003_rb after expand" 2 \
            "$(bf_sql "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\_dw\_0003%'")"
    fi
    bf_sql "UPDATE acct SET amount = 21 WHERE id = 7"
    bf_eq "the trigger works before rollback" 42 "$(bf_sql "SELECT twice FROM acct WHERE id = 7")"
    bf_zdm backfill 0003_rb # partly or wholly: rollback must not care
    bf_zdm rollback 0003_rb
    bf_rc "rollback 0003_rb" 0
    bf_eq "phase after rollback" rolled_back "$(bf_phase 0003_rb)"
    bf_check_no_triggers "after rollback"
    bf_eq "ranges of 0003_rb after rollback" 0 \
        "$(bf_sql "SELECT count(*) FROM $(bf_t ranges) WHERE plan_id = '0003_rb'")"
}

bf_count_old() { bf_sql "SELECT count(*) FROM acct WHERE id > 1000000 AND id < 2000000"; }
bf_count_new() { bf_sql "SELECT count(*) FROM acct WHERE id > 2000000"; }
bf_writers_started() { [ "$(bf_count_old)" -gt 0 ] && [ "$(bf_count_new)" -gt 0 ]; }

bf_check_no_triggers() {
    if [ "$BF_DIALECT" = sqlite ]; then
        bf_eq "$1: triggers named zdm_dw_%" "" \
            "$(bf_sql "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm\_dw\_%' ESCAPE '\'")"
    else
        bf_eq "$1: triggers named zdm_dw_%" "" \
            "$(bf_sql "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'zdm\_dw\_%'")"
        bf_eq "$1: functions in schema zdm" "" \
            "$(bf_sql "SELECT proname FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace")"
    fi
}

# 5. pause / resume by the operator.
bf_case_pause() {
    local rows=$1
    bf_case "pause and resume ($rows rows)"
    bf_db pause
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
sleep_ms = 20"
    bf_bg "$BF_DIR/pause" -v backfill 0002_inc
    local worker=$BF_PID
    bf_until "the worker converts rows" 30 bf_rows_done_ge 0002_inc 1
    bf_zdm pause 0002_inc
    bf_rc "zdm pause" 0
    local r0 r1 r2
    r0=$(bf_rows_done 0002_inc)
    bf_until "the worker logs the pause" 15 bf_log_has "$BF_DIR/pause.err" "throttled: paused by operator"
    r1=$(bf_rows_done 0002_inc)
    bf_cmp "rows converted after zdm pause returned (at most the batch in flight, 200)" $((r1 - r0)) -le 200
    bf_cmp "the pause came before the end" "$r1" -lt "$rows"
    sleep 1.5
    r2=$(bf_rows_done 0002_inc)
    bf_eq "rows_done while paused (1.5 s apart)" "$r1" "$r2"
    bf_eq "converted rows while paused" "$r1" "$(bf_sql "SELECT count(*) FROM t WHERE n = 1")"
    BF_CHECKS=$((BF_CHECKS + 1))
    bf_alive "$worker" || _bf_fail "the paused worker exited" "$(tail -n 5 "$BF_DIR/pause.err")"
    bf_zdm status 0002_inc
    bf_rc "status" 0
    bf_has "status of a paused backfill" "PAUSED" "$ZOUT"
    bf_has "status names the reason" "paused by operator" "$ZOUT"
    bf_zdm resume 0002_inc
    bf_rc "zdm resume" 0
    bf_wait "$worker" 120
    bf_eq "worker exit status after resume" 0 "$BF_RC"
    bf_has "worker log" "resuming after" "$(cat "$BF_DIR/pause.err")"
    bf_check_inc_done "after pause and resume"
    bf_eq "history has the pause and the resume" "pause resume" \
        "$(bf_sql "SELECT action FROM $(bf_t history) WHERE plan_id = '0002_inc' AND action IN ('pause', 'resume') ORDER BY id" | tr '\n' ' ' | sed 's/ $//')"
}

# 5. pause_query: held while a flag table has a row.
bf_case_pause_query() {
    local rows=$1
    bf_case "pause_query ($rows rows)"
    bf_db pq
    bf_inc_setup "$rows" "batch_size = 500
target_batch_ms = 0
pause_query = \"SELECT EXISTS (SELECT 1 FROM hold)\"" '[[expand.steps]]
sql = "CREATE TABLE hold (why text)"
down = "DROP TABLE hold"'
    bf_sql "INSERT INTO hold VALUES ('maintenance')"
    bf_bg "$BF_DIR/pq" -v backfill 0002_inc
    local worker=$BF_PID
    bf_until "the worker logs the pause_query" 15 bf_log_has "$BF_DIR/pq.err" "throttled: pause_query returned true"
    sleep 1
    bf_eq "rows converted while pause_query is true" 0 "$(bf_sql "SELECT count(*) FROM t WHERE n <> 0")"
    BF_CHECKS=$((BF_CHECKS + 1))
    bf_alive "$worker" || _bf_fail "the held worker exited" "$(tail -n 5 "$BF_DIR/pq.err")"
    bf_sql "DELETE FROM hold"
    bf_wait "$worker" 120
    bf_eq "worker exit status" 0 "$BF_RC"
    bf_has "worker log" "resuming after" "$(cat "$BF_DIR/pq.err")"
    bf_check_inc_done "after pause_query cleared"
}

# 5. max_rows_per_second: the throttle's own promise, with a wide margin.
#    Measured from the first committed batch to the worker's exit, so the
#    start-up of the process (slow under sanitizers and load) is not in it.
bf_case_rate() {
    local rows=10000 limit=2000
    bf_case "max_rows_per_second = $limit on $rows rows"
    bf_db rate
    # latency pacing off: the loaded test host would hold the worker below
    # the limit (test_latency_pacing covers it)
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
max_latency_factor = 0
max_rows_per_second = $limit"
    bf_bg "$BF_DIR/rate" backfill 0002_inc
    local worker=$BF_PID t0=0 t1 r0=0
    while bf_alive "$worker"; do
        r0=$(bf_rows_done 0002_inc)
        if [ "${r0:-0}" -gt 0 ]; then
            t0=$(bf_now_ms)
            break
        fi
        sleep 0.01
    done
    bf_wait "$worker" 60
    t1=$(bf_now_ms)
    bf_eq "rate-limited worker exit status" 0 "$BF_RC"
    BF_CHECKS=$((BF_CHECKS + 1))
    if [ "$t0" = 0 ] || [ "$r0" -ge "$rows" ]; then
        _bf_fail "no batch seen before the end (first rows_done $r0)"
        return
    fi
    local ms=$((t1 - t0)) rate
    rate=$(((rows - r0) * 1000 / (ms > 0 ? ms : 1)))
    bf_note "$((rows - r0)) rows after the first batch in $ms ms: $rate rows/s (limit $limit)"
    bf_cmp "rows/s is at least the limit - 20%" "$rate" -ge $((limit * 8 / 10))
    bf_cmp "rows/s is at most the limit + 20%" "$rate" -le $((limit * 12 / 10))
    bf_check_inc_done "rate-limited"
}

# 5. Adaptive batch size: with target_batch_ms the size moves off the start.
bf_case_adaptive() {
    local rows=$1
    bf_case "adaptive batch size ($rows rows)"
    bf_db adapt
    bf_inc_setup "$rows" "batch_size = 10
min_batch_size = 10
target_batch_ms = 100"
    bf_zdm -v backfill 0002_inc
    bf_rc "adaptive worker" 0
    local sizes
    sizes=$(grep -oE 'next batch [0-9]+' <<<"$ZERR" | awk '{print $3}' | sort -n | uniq | tr '\n' ' ')
    bf_note "batch sizes seen: $sizes"
    local max
    max=$(grep -oE 'next batch [0-9]+' <<<"$ZERR" | awk '{print $3}' | sort -n | tail -n 1)
    bf_cmp "largest batch size (10-row batches are far below 100 ms)" "${max:-0}" -gt 10
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
    bf_case "SIGTERM during a batch ($rows rows)"
    bf_db term
    # sleep_ms: gaps between batches, where SQLite's lock holder gets in
    bf_inc_setup "$rows" "batch_size = 200
target_batch_ms = 0
sleep_ms = 20"
    bf_hold_prepare
    bf_bg "$BF_DIR/term" -v backfill 0002_inc
    local worker=$BF_PID
    bf_hold_start "$worker"
    local held
    held=$(bf_rows_done 0002_inc)
    BF_CHECKS=$((BF_CHECKS + 1))
    bf_alive "$worker" || _bf_fail "the worker ended before the hold took effect (exit status below)" \
        "$(tail -n 3 "$BF_DIR/term.err")"
    kill -TERM "$worker"
    if [ "${BF_SIGTERM_CANCELS:-0}" = 1 ]; then
        bf_wait "$worker" 60
        bf_eq "exit status after SIGTERM (the blocked batch cancelled, the hold still on)" 4 "$BF_RC"
        bf_eq "rows_done: the cancelled batch was rolled back" "$held" "$(bf_rows_done 0002_inc)"
        bf_hold_release
    else
        sleep 1
        BF_CHECKS=$((BF_CHECKS + 1))
        bf_alive "$worker" || _bf_fail "the worker exited on SIGTERM before finishing its batch" \
            "$(tail -n 5 "$BF_DIR/term.err")"
        bf_eq "rows_done while the batch waits" "$held" "$(bf_rows_done 0002_inc)"
        bf_hold_release
        bf_wait "$worker" 60
        bf_eq "exit status after SIGTERM" 4 "$BF_RC"
    fi
    bf_has "the worker's message" "safe to resume" "$(cat "$BF_DIR/term.err")"
    local done_rows
    done_rows=$(bf_rows_done 0002_inc)
    bf_eq "converted, checkpointed, converted twice" "$done_rows $done_rows 0" "$(bf_inc_invariant)"
    bf_cmp "the interrupted run left work" "$done_rows" -lt "$rows"
    bf_eq "whole batches only (rows_done mod 200)" 0 $((done_rows % 200))
    bf_cmp "after the signal: at most the one batch it was in" $((done_rows - held)) -le 200
    if [ -n "${BF_HOLD_ROWS_AFTER:-}" ] && [ "${BF_SIGTERM_CANCELS:-0}" != 1 ]; then
        bf_eq "rows_done: the held batch was finished and committed" "$BF_HOLD_ROWS_AFTER" "$done_rows"
    fi
    bf_eq "phase after SIGTERM" expanded "$(bf_phase 0002_inc)"
    bf_zdm backfill 0002_inc
    bf_rc "rerun after SIGTERM" 0
    bf_check_inc_done "after SIGTERM and rerun"
}

# 7. A key the backfill cannot walk: refused before anything changes.
#    bf_case_bad_key ID BASELINE_STEPS BACKFILL_LINES EXPECTED_MESSAGE
#    (the baseline creates table k (id, v, ...))
bf_case_bad_key() {
    local id=$1 steps=$2 bflines=$3 expect=$4
    bf_case "bad key: $id"
    bf_db badkey
    bf_plan 0001_base "description = \"baseline\"
$steps"
    bf_plan "$id" "description = \"a backfill on a table it cannot walk\"
requires = [\"0001_base\"]
[[expand.steps]]
sql = \"ALTER TABLE k ADD COLUMN w integer\"
down = \"ALTER TABLE k DROP COLUMN w\"
[backfill]
table = \"k\"
$bflines
set.w = \"v + 1\""
    bf_complete 0001_base
    bf_sql "INSERT INTO k (id, v) VALUES (1, 1), (2, 1), (3, 2)"
    local before after phase
    before=$(bf_schema)
    bf_zdm advance "$id"
    bf_rc "advance $id (expand)" 3
    bf_has "refusal message" "$expect" "$ZERR"
    bf_has "refusal message" "nothing was changed" "$ZERR"
    after=$(bf_schema)
    bf_eq "schema after the refused expand" "$before" "$after"
    phase=$(bf_phase "$id")
    bf_eq "phase after the refusal" pending "${phase:-pending}"
    bf_has "history records the refusal" "refused" \
        "$(bf_sql "SELECT outcome FROM $(bf_t history) WHERE plan_id = '$id'")"
}

bf_schema() {
    if [ "$BF_DIALECT" = sqlite ]; then
        bf_sql "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'zdm\_%' ESCAPE '\' ORDER BY name"
    else
        "$_PG_BIN/pg_dump" --schema-only --exclude-schema=zdm -d "$BF_PG_URL" | grep -vE '^\\(un)?restrict '
    fi
}

# 7. A set expression that fails on one row: exit 1 naming the batch's
#    keys, complete batches only, then fix the data and resume.
#    bf_case_failing_expr SET_EXPR COLUMN_DDL BAD_SQL FIX_SQL [PLAN_TOP_LINES]
bf_case_failing_expr() {
    local expr=$1 coldef=$2 bad=$3 fix=$4 top=${5:-} rows=20000
    bf_case "a set expression that fails on row 5000"
    bf_db fail
    bf_plan 0001_base 'description = "baseline"
[[expand.steps]]
sql = "CREATE TABLE f (id integer PRIMARY KEY, d integer NOT NULL DEFAULT 1, pad text)"
down = "DROP TABLE f"'
    bf_plan 0002_fail "description = \"x from d\"
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
    bf_complete 0001_base
    bf_fill f "$rows"
    bf_sql "$bad"
    bf_zdm advance 0002_fail
    bf_rc "expand 0002_fail" 0
    bf_zdm backfill 0002_fail
    bf_rc "backfill with a failing row" 1
    bf_has "the error names the failed batch's keys" 'keys after ["4800"] up to ["5000"]' "$ZERR"
    bf_has "the error says what is kept" "every earlier batch is kept" "$ZERR"
    bf_eq "converted rows: the complete batches before the failing one" "4800 4800" \
        "$(bf_sql "SELECT (SELECT count(*) FROM f WHERE x IS NOT NULL) || ' ' || (SELECT max(id) FROM f WHERE x IS NOT NULL)")"
    bf_eq "rows of the failed batch (4801..5000) converted" 0 \
        "$(bf_sql "SELECT count(*) FROM f WHERE id > 4800 AND id <= 5000 AND x IS NOT NULL")"
    bf_eq "sum(rows_done)" 4800 "$(bf_sql "SELECT COALESCE(sum(rows_done), 0) FROM $(bf_t ranges) WHERE plan_id = '0002_fail'")"
    bf_eq "phase after the failure" expanded "$(bf_phase 0002_fail)"
    bf_sql "$fix"
    bf_zdm backfill 0002_fail
    bf_rc "backfill after fixing the data" 0
    bf_eq "rows without x" 0 "$(bf_sql "SELECT count(*) FROM f WHERE x IS NULL")"
    bf_eq "rows where x is not the expression" 0 "$(bf_sql "SELECT count(*) FROM f WHERE x <> ($expr)")"
    bf_eq "sum(rows_done)" "$rows" "$(bf_sql "SELECT COALESCE(sum(rows_done), 0) FROM $(bf_t ranges) WHERE plan_id = '0002_fail'")"
    bf_eq "phase" backfilled "$(bf_phase 0002_fail)"
}
