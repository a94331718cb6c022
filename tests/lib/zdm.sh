# shellcheck shell=bash
# zdm.sh -- the one harness of the integration tests (bash): every
# tests/integration/test_*.sh sources it (or ops.sh / backfill.sh, the
# cases two scripts share, which source it); pg.sh runs the server.
#
#   source "$ZDM_SRC/tests/lib/zdm.sh"
#   t_init NAME            temp dir $T_DIR (removed on exit), checks tools
#   t_init_dialect NAME DIALECT  t_init, and for pg a throwaway server (or
#                          exit 77 without server binaries); T_DIALECT
#   t_section TEXT         names the part of the test that follows
#   t_run FN ARGS...       runs one case; T_ONLY=REGEX (matched against FN)
#                          runs only the matching ones, when working on one
#   db_new DIALECT NAME    a fresh database: sqlite file or pg database;
#                          sets T_DIALECT, T_DB (the --db URL), T_SQLITE_FILE
#   plans_copy [PLAN...]   copies plans/ (or only the named ones) to a fresh
#                          dir and makes it T_PLANS
#   plans_empty            a fresh, empty T_PLANS
#   plan_write ID TEXT     writes $T_PLANS/ID.toml
#   T_PLAN_RENAME_EMP      a plan body: rename_column emp.name to full_name
#   zdm_run ARGS...        $ZDM --db $T_DB --plans $T_PLANS ARGS; sets ZRC,
#                          ZOUT, ZERR (never hangs: bounded by `timeout`)
#   zdm_bg FILE ARGS...    the same in the background; ZBG_PID is zdm's own
#                          pid, ZBG_JOB the job to t_wait_exit; output in
#                          FILE.out and FILE.err
#   db_fresh NAME          db_new in T_DIALECT under a name not used yet
#                          (NAME_<n>), and plans_empty
#   db_sql SQL             rows of a query, fields separated by '|'
#   zdm_tbl NAME           zdm's own state table NAME in T_DIALECT
#                          (zdm.NAME on pg, zdm_NAME on sqlite)
#   db_phase PLAN          the plan's phase as the state table has it
#   zdm_phase_of PLAN      the plan's phase as zdm --json status says it
#   zdm_complete PLAN      advances PLAN to complete, asserting each step
#   db_dump FILE           the catalog without zdm's own tables
#   t_eq / t_ne / t_has / t_lacks / t_match / t_rc / t_same_file
#                          assertions: print what was expected and what was
#                          got, count the failure and carry on
#   t_wait_for WHAT SECS CMD...  polls CMD (or one string, eval'd each
#                          time) until it succeeds (a bound on a hang, not a
#                          timing assertion)
#   t_alive PID, t_file_has FILE TEXT, t_random_sleep, t_now_ms
#   zdm_status_field PLAN KEY    .plans[0].KEY of zdm --json status PLAN
#   db_step_status PLAN N  the status of expand step N in zdm's steps table
#   zdm_settled LABEL      no history row left running, no lock row
#   zdm_failing_contract LABEL HOOKS  plan v cut over, its contract refused
#                          by verify until table ok_flag has a row
#   zdm_small_backfill PLAN [MORE]  table t (id, a, b), 4 rows; a plan
#                          whose backfill sets b = a
#   zdm_wait_range_held WHAT PLAN, zdm_wait_first_batch [WHAT]
#   t_pg_available, t_pg_start   PostgreSQL via tests/lib/pg.sh
#   t_with_pg CMD...       CMD with the server (started once), or the part
#                          noted as skipped when there are no server binaries
#   t_finish               exit 1 when an assertion failed, 77 when a part
#                          was skipped, else 0
#
# Every test script gets ZDM (the binary) and ZDM_SRC from ctest.  The EXIT
# trap here cleans up after pg.sh's too: t_pg_start re-installs ours, which
# stops the server.

: "${ZDM:?ZDM must name the zdm binary}"
ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

T_NAME=
T_DIR=
T_SECTION=
T_FAILS=0
T_CHECKS=0
T_SKIPPED=
T_BG_PIDS=()
T_DIALECT=
T_DB=
T_SQLITE_FILE=
T_PG_URL=
T_PLANS=
T_ZDM_TIMEOUT=${T_ZDM_TIMEOUT:-120}
ZRC=0
ZOUT=
ZERR=
ZCMD=
ZBG_PID=
ZBG_JOB=

# shellcheck source=pg.sh
source "$ZDM_SRC/tests/lib/pg.sh"

# t_at_exit CMD: CMD (evaluated) runs when the test exits, before the
# harness's own cleanup, and the test's exit status is kept.  A test's own
# `trap ... EXIT` replaced the harness's: test_busy_share left its
# PostgreSQL server running after every run, and test_sqlite_disk_full's
# `umount` before _t_on_exit made a failed run exit 0.
T_AT_EXIT=()
t_at_exit() { T_AT_EXIT+=("$1"); }

_t_on_exit() {
    local status=$?
    local p c
    for c in "${T_AT_EXIT[@]}"; do
        eval "$c" || true
    done
    for p in "${T_BG_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ "$_PG_RUNNING" = 1 ]; then
        echo "--- last lines of the PostgreSQL server log:" >&2
        pg_log | tail -n 30 >&2
    fi
    pg_stop
    if [ -n "$T_DIR" ] && [ -d "$T_DIR" ]; then
        rm -rf -- "$T_DIR"
    fi
    exit "$status"
}

t_init() {
    T_NAME=$1
    local tool
    for tool in sqlite3 jq timeout; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "$T_NAME: $tool is not installed: skipping" >&2
            exit 77
        fi
    done
    if [ ! -x "$ZDM" ]; then
        echo "$T_NAME: $ZDM is not an executable" >&2
        exit 1
    fi
    T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/zdm-it.XXXXXX") || exit 1
    chmod 0755 "$T_DIR"
    trap _t_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # The test's own environment must not choose the database.
    unset ZDM_DATABASE_URL
}

# t_init_dialect NAME DIALECT: a test of one dialect (sqlite or pg).
t_init_dialect() {
    t_init "$1"
    T_DIALECT=$2
    if [ "$T_DIALECT" = pg ]; then
        if ! t_pg_available; then
            echo "$1: no PostgreSQL server binaries: skipping" >&2
            exit 77
        fi
        t_pg_start
    fi
}

t_section() {
    T_SECTION=$1
    echo "=== $T_NAME: $1 (at ${SECONDS}s)"
}

# t_run FN ARGS...: T_ONLY=REGEX runs only the cases whose function
# matches (BF_ONLY, its older name, too).
t_run() {
    local only=${T_ONLY:-${BF_ONLY:-}}
    if [ -n "$only" ] && ! [[ $1 =~ $only ]]; then
        return 0
    fi
    "$@"
}

t_note() { echo "    note: $*"; }

# ---------------------------------------------------------------- assertions

_t_fail() {
    T_FAILS=$((T_FAILS + 1))
    {
        echo "FAIL [$T_SECTION]: $1"
        shift
        local line
        for line in "$@"; do
            printf '%s\n' "$line" | sed 's/^/    /'
        done
    } >&2
}

_t_last_cmd() {
    echo "last command: $ZCMD (exit $ZRC)"
    echo "--- stdout:"
    printf '%s\n' "$ZOUT" | sed 's/^/| /' | head -n 60
    echo "--- stderr:"
    printf '%s\n' "$ZERR" | sed 's/^/| /' | head -n 60
}

t_ok() { T_CHECKS=$((T_CHECKS + 1)); }

# t_eq WHAT EXPECTED GOT
t_eq() {
    T_CHECKS=$((T_CHECKS + 1))
    if [ "$2" != "$3" ]; then
        _t_fail "$1" "expected: '$2'" "got:      '$3'"
        return 1
    fi
}

t_ne() {
    T_CHECKS=$((T_CHECKS + 1))
    if [ "$2" = "$3" ]; then
        _t_fail "$1" "expected anything but: '$2'" "got:                    '$3'"
        return 1
    fi
}

# t_has WHAT NEEDLE HAYSTACK (fixed string)
t_has() {
    T_CHECKS=$((T_CHECKS + 1))
    if ! grep -qF -- "$2" <<<"$3"; then
        _t_fail "$1" "expected to contain: '$2'" "got:" "$(printf '%s\n' "$3" | sed 's/^/| /' | head -n 40)"
        return 1
    fi
}

t_lacks() {
    T_CHECKS=$((T_CHECKS + 1))
    if grep -qF -- "$2" <<<"$3"; then
        _t_fail "$1" "expected NOT to contain: '$2'" "got:" \
            "$(printf '%s\n' "$3" | grep -F -- "$2" | sed 's/^/| /' | head -n 20)"
        return 1
    fi
}

# t_match WHAT ERE TEXT
t_match() {
    T_CHECKS=$((T_CHECKS + 1))
    if ! grep -qE -- "$2" <<<"$3"; then
        _t_fail "$1" "expected to match /$2/" "got:" "$(printf '%s\n' "$3" | sed 's/^/| /' | head -n 40)"
        return 1
    fi
}

# t_rc WHAT EXPECTED: the exit status of the last zdm_run
t_rc() {
    T_CHECKS=$((T_CHECKS + 1))
    if [ "$ZRC" != "$2" ]; then
        _t_fail "$1: exit status" "expected: $2" "got:      $ZRC" "$(_t_last_cmd)"
        return 1
    fi
}

# t_same_file WHAT EXPECTED_FILE GOT_FILE: no difference at all
t_same_file() {
    T_CHECKS=$((T_CHECKS + 1))
    local d
    if ! d=$(diff -u "$2" "$3"); then
        _t_fail "$1: differs (- expected, + got)" "$(printf '%s\n' "$d" | head -n 60)"
        return 1
    fi
}

# t_cmp WHAT A OP B with OP one of -lt -le -gt -ge (integers)
t_cmp() {
    T_CHECKS=$((T_CHECKS + 1))
    if ! test "$2" "$3" "$4" 2>/dev/null; then
        _t_fail "$1" "expected: $2 $3 $4" "got:      $2 (limit $4)"
        return 1
    fi
}

# One argument: a shell condition, evaluated anew on every try; more: a
# command and its arguments.
_t_try() {
    if [ "$#" -eq 1 ]; then
        eval "$1"
    else
        "$@"
    fi
}

t_wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    while ! _t_try "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            T_CHECKS=$((T_CHECKS + 1))
            _t_fail "gave up waiting for: $what (${secs}s: something hangs)" "condition: $*"
            return 1
        fi
        sleep 0.1
    done
}

# t_wait_exit PID SECS: waits for a background child, sets WAIT_RC; kills it
# and fails when it runs far beyond reason.
t_wait_exit() {
    local pid=$1 secs=$2
    local deadline=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            T_CHECKS=$((T_CHECKS + 1))
            _t_fail "process $pid still running after ${secs}s: killed"
            kill -9 "$pid" 2>/dev/null
            break
        fi
        sleep 0.1
    done
    WAIT_RC=0
    # (braces: bash reports "Killed" on the shell's stderr, not wait's)
    { wait "$pid"; } 2>/dev/null || WAIT_RC=$?
}

# t_alive PID: the process exists and is not a zombie (a hook's child
# nobody has reaped yet counts as gone).
t_alive() {
    [ -r "/proc/$1/stat" ] || return 1
    local st
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ]
}

# t_file_has FILE TEXT: FILE contains TEXT (a fixed string); a condition
# for t_wait_for, not an assertion.
t_file_has() { grep -qF -- "$2" "$1"; }

# A random sleep of 0.05 .. 0.5 s.
t_random_sleep() {
    local ms=$((50 + RANDOM % 451))
    sleep "$(printf '0.%03d' "$ms")"
}

t_now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
}

t_finish() {
    echo "=== $T_NAME: $T_CHECKS checks, $T_FAILS failed${T_SKIPPED:+, skipped: $T_SKIPPED}"
    if [ "$T_FAILS" -ne 0 ]; then
        exit 1
    fi
    if [ -n "$T_SKIPPED" ]; then
        exit 77
    fi
    exit 0
}

# ------------------------------------------------------------------ running

zdm_run() {
    ZCMD="zdm --db $T_DB --plans $T_PLANS $*"
    ZRC=0
    timeout -k 5 "$T_ZDM_TIMEOUT" "$ZDM" --db "$T_DB" --plans "$T_PLANS" "$@" \
        >"$T_DIR/last.out" 2>"$T_DIR/last.err" || ZRC=$?
    ZOUT=$(cat "$T_DIR/last.out")
    ZERR=$(cat "$T_DIR/last.err")
    # Every output, without the command lines (test_pg_secrets.sh greps
    # it for a password that is in the command line).
    echo "\$ $ZCMD  -> exit $ZRC" >>"$T_DIR/commands.log"
    cat "$T_DIR/last.out" "$T_DIR/last.err" >>"$T_DIR/all-output.log"
    if [ "$ZRC" = 124 ] || [ "$ZRC" = 137 ]; then
        T_CHECKS=$((T_CHECKS + 1))
        _t_fail "zdm ran more than ${T_ZDM_TIMEOUT}s: killed" "$(_t_last_cmd)"
    fi
    return 0
}

# zdm_bg FILE ARGS...: ZBG_PID is zdm itself (kill -9 must hit zdm, not a
# wrapper); ZBG_JOB is the subshell that waits for it, whose exit status is
# zdm's (for t_wait_exit).  The subshell keeps bash's "Killed" job notice
# out of the test's output.
zdm_bg() {
    local f=$1
    shift
    rm -f "$f.pid"
    (
        "$ZDM" --db "$T_DB" --plans "$T_PLANS" "$@" >"$f.out" 2>"$f.err" &
        echo "$!" >"$f.pid.tmp" && mv "$f.pid.tmp" "$f.pid"
        wait "$!"
    ) 2>/dev/null &
    ZBG_JOB=$!
    T_BG_PIDS+=("$ZBG_JOB")
    local n=0
    while [ ! -s "$f.pid" ] && [ "$n" -lt 300 ]; do
        sleep 0.05
        n=$((n + 1))
    done
    ZBG_PID=$(cat "$f.pid" 2>/dev/null)
    T_BG_PIDS+=("$ZBG_PID")
}

# zdm_has_mutants: true when $ZDM was built with -DZDM_MUTANTS=ON, so
# ZDM_CRASH_AT, ZDM_MUTANT and ZDM_BARRIER work (a crash point at the first
# database call exits 137).
zdm_has_mutants() {
    local rc=0
    ZDM_CRASH_AT=1 ZDM_CRASH_MODE=exit "$ZDM" --db "sqlite:$T_DIR/probe.db" init >/dev/null 2>&1 || rc=$?
    [ "$rc" = 137 ]
}

# zdm_held BARRIER FILE ARGS...: runs zdm ARGS in the background, stopped
# at zdm_barrier(BARRIER) (a mutants build) until zdm_release; waits until
# it is there.  HELD_PID is the run; its output goes to FILE.out/.err.
zdm_held() {
    local name=$1 f=$2
    shift 2
    HELD_BAR=$T_DIR/bar.$name.$RANDOM
    ZDM_BARRIER=$name:$HELD_BAR "$ZDM" --db "$T_DB" --plans "$T_PLANS" "$@" >"$f.out" 2>"$f.err" &
    HELD_PID=$!
    t_wait_for "zdm $* stops at $name" 60 "ls '$HELD_BAR'.arrived.* >/dev/null 2>&1"
}

# zdm_release: lets the zdm_held run go on and waits for it; HELD_RC.
zdm_release() {
    touch "$HELD_BAR"
    HELD_RC=0
    wait "$HELD_PID" || HELD_RC=$?
}

# Output of a finished background run, for the record and for assertions.
zdm_bg_collect() {
    local f=$1
    ZOUT=$(cat "$f.out")
    ZERR=$(cat "$f.err")
    echo "\$ (background) $*" >>"$T_DIR/commands.log"
    cat "$f.out" "$f.err" >>"$T_DIR/all-output.log"
}

# ---------------------------------------------------------------- databases

t_pg_available() {
    _pg_find_bindir >/dev/null 2>&1 || return 1
    if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
        return 1
    fi
    return 0
}

t_pg_start() {
    pg_start
    trap _t_on_exit EXIT
}

# t_with_pg CMD...: runs CMD with the throwaway PostgreSQL server (started
# once); without server binaries, notes the part skipped (t_finish: 77).
t_with_pg() {
    if ! t_pg_available; then
        T_SKIPPED="PostgreSQL (no server binaries)"
        return 0
    fi
    if [ "$_PG_RUNNING" != 1 ]; then
        t_pg_start
    fi
    "$@"
}

# db_new DIALECT NAME
db_new() {
    T_DIALECT=$1
    case "$1" in
    sqlite)
        T_SQLITE_FILE="$T_DIR/$2.db"
        rm -f -- "$T_SQLITE_FILE"
        # A fresh, empty database exists, as on pg: zdm creates a file
        # only on init and advance.
        : >"$T_SQLITE_FILE"
        T_DB="sqlite:$T_SQLITE_FILE"
        ;;
    pg)
        pg_psql -d postgres -c "CREATE DATABASE $2" || {
            echo "cannot create database $2" >&2
            exit 1
        }
        T_PG_URL="postgresql:///$2?host=$PGHOST&user=postgres"
        T_DB=$T_PG_URL
        ;;
    *)
        echo "db_new: unknown dialect $1" >&2
        exit 1
        ;;
    esac
}

# db_fresh NAME: a fresh database in T_DIALECT and an empty plans dir.
T_DBSEQ=0
db_fresh() {
    T_DBSEQ=$((T_DBSEQ + 1))
    db_new "$T_DIALECT" "$1_$T_DBSEQ"
    plans_empty
}

db_sql() {
    if [ "$T_DIALECT" = sqlite ]; then
        sqlite3 -batch -noheader -cmd '.timeout 10000' "$T_SQLITE_FILE" "$1"
    else
        pg_psql -At -F'|' -d "$T_PG_URL" -c "$1"
    fi
}

# The catalog of the application's schema, without zdm's own state.
db_dump() {
    if [ "$T_DIALECT" = sqlite ]; then
        {
            sqlite3 -batch -noheader "$T_SQLITE_FILE" \
                "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || coalesce(sql, '')
                   FROM sqlite_master
                  WHERE tbl_name NOT LIKE 'zdm\_%' ESCAPE '\' AND name <> 'sqlite_sequence'
                  ORDER BY type, name"
            sqlite3 -batch -noheader "$T_SQLITE_FILE" \
                "SELECT m.name, p.cid, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk
                   FROM sqlite_master m JOIN pragma_table_info(m.name) p
                  WHERE m.type = 'table' AND m.name NOT LIKE 'zdm\_%' ESCAPE '\'
                    AND m.name <> 'sqlite_sequence'
                  ORDER BY m.name, p.cid"
        } >"$1"
    else
        # \restrict and \unrestrict carry a random key per dump (pg_dump
        # 13.22, 14.19, 15.14, ...): not part of the catalog.
        "$_PG_BIN/pg_dump" --schema-only --exclude-schema=zdm -d "$T_PG_URL" |
            grep -vE '^\\(un)?restrict ' >"$1"
    fi
}

# zdm's own tables exist?  (prints a count: 0 when none)
db_zdm_tables() {
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "SELECT count(*) FROM sqlite_master WHERE name LIKE 'zdm\_%' ESCAPE '\'"
    else
        db_sql "SELECT count(*) FROM pg_namespace WHERE nspname = 'zdm'"
    fi
}

# Names of the columns of TABLE, one per line, in order.
db_columns() {
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "SELECT name FROM pragma_table_info('$1') ORDER BY cid"
    else
        db_sql "SELECT attname FROM pg_attribute WHERE attrelid = 'public.$1'::regclass
                AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    fi
}

db_has_index() {
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '$1'"
    else
        db_sql "SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relname = '$1'"
    fi
}

db_has_table() {
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '$1'"
    else
        db_sql "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname = '$1'
                AND relnamespace = 'public'::regnamespace"
    fi
}

# zdm's own state table NAME (history, locks, plans, ranges, steps, ...).
zdm_tbl() {
    if [ "$T_DIALECT" = pg ]; then echo "zdm.$1"; else echo "zdm_$1"; fi
}

# The phase of PLAN as zdm's state table has it (empty: no row).
db_phase() {
    db_sql "SELECT phase FROM $(zdm_tbl plans) WHERE id = '$1'"
}

# zdm_settled LABEL: after a crash, a kill or a signal, the next command
# left no history row running and no lock row.
zdm_settled() {
    t_eq "$1: no history row left running" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE outcome = 'running'")"
    t_eq "$1: no lock row left" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl locks)")"
}

# The status of expand step INDEX of PLAN in zdm's steps table.
db_step_status() {
    db_sql "SELECT status FROM $(zdm_tbl steps) WHERE plan_id = '$1' AND phase = 'expand' AND step_index = $2"
}

# zdm_small_backfill PLAN [MORE]: a table t (id, a, b) of 4 rows and a plan
# PLAN whose expand does nothing (SELECT 1) and whose backfill sets b = a;
# MORE (plan lines: a [backfill.throttle], [hooks], ...) goes at the end.
zdm_small_backfill() {
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer, b integer)" >/dev/null
    db_sql "INSERT INTO t (id, a) VALUES (1, 1), (2, 2), (3, 3), (4, 4)" >/dev/null
    plan_write "$1" "
[[expand.steps]]
sql  = \"SELECT 1\"
down = \"SELECT 1\"
[backfill]
table = \"t\"
set.b = \"a\"${2:+
$2}"
}

# Waits until a worker holds a range of PLAN (a paused one holds it).
zdm_wait_range_held() {
    t_wait_for "$1" 30 \
        "[ \"\$(db_sql \"SELECT count(*) FROM $(zdm_tbl ranges) WHERE plan_id = '$2' AND owner_pid IS NOT NULL\")\" -gt 0 ]"
}

# Waits until the backfill of zdm_small_backfill converted a row.
zdm_wait_first_batch() {
    t_wait_for "${1:-the first batch}" 30 "[ \"\$(db_sql 'SELECT count(*) FROM t WHERE b IS NOT NULL')\" -gt 0 ]"
}

# zdm_failing_contract LABEL HOOK_LINES: the project file beside T_PLANS
# says [contract] retry_after = "1h" (no slow machine outruns it),
# max_attempts = 3; plan v, advanced to cut_over, has a contract that
# verify refuses while table ok_flag is empty; HOOK_LINES go under [hooks].
zdm_failing_contract() {
    printf '[contract]\nretry_after = "1h"\nmax_attempts = 3\n' >"$(dirname "$T_PLANS")/zdm.toml"
    plan_write v "[[expand.steps]]
sql  = \"CREATE TABLE t_v (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_v\"
[contract]
not_before = \"cutover\"
verify = \"SELECT count(*) > 0 FROM ok_flag\"
[[contract.steps]]
sql = \"CREATE TABLE v_done (id integer)\"
[hooks]
$2"
    db_sql "CREATE TABLE ok_flag (id integer)" >/dev/null
    for _ in 1 2 3; do zdm_run advance v; done
    t_eq "${1}v is cut over" cut_over "$(zdm_phase_of v)"
}

# .plans[0].KEY of zdm --json status PLAN (KEY may be a jq path: a.b).
zdm_status_field() {
    zdm_run --json status "$1"
    jq -r ".plans[0].$2" <<<"$ZOUT"
}

# The current phase of PLAN as zdm status --json reports it.
zdm_phase_of() {
    zdm_run --json status "$1"
    jq -r '.plans[0].phase' <<<"$ZOUT" 2>/dev/null || echo "(status failed: exit $ZRC)"
}

# ------------------------------------------------------------------- plans

# A plan body: rename_column emp.name to full_name (text).
T_PLAN_RENAME_EMP='[[expand.steps]]
op = "rename_column"
table = "emp"
column = "name"
to = "full_name"
type = "text"'

plans_copy() {
    T_PLANS=$(mktemp -d "$T_DIR/plans.XXXXXX")
    if [ "$#" -eq 0 ]; then
        cp "$ZDM_SRC"/plans/*.toml "$T_PLANS/"
    else
        local p
        for p in "$@"; do
            cp "$ZDM_SRC/plans/$p.toml" "$T_PLANS/"
        done
    fi
}

plans_empty() {
    T_PLANS=$(mktemp -d "$T_DIR/plans.XXXXXX")
}

plan_write() {
    printf '%s\n' "$2" >"$T_PLANS/$1.toml"
}

# Advances PLAN through every phase to complete, asserting each step.
zdm_complete() {
    local plan=$1 from to
    local -a phases=(pending expanded backfilled cut_over complete)
    local i
    for i in 0 1 2 3; do
        from=${phases[$i]}
        to=${phases[$((i + 1))]}
        zdm_run advance "$plan"
        t_rc "advance $plan ($from -> $to)" 0 || return 1
        t_has "advance $plan output" "$plan: $from -> $to" "$ZOUT" || return 1
    done
    t_eq "$plan is complete in zdm's state table" complete "$(db_phase "$plan")"
}

# ------------------------------------------------- psql sessions on the side

# pg_session_start NAME: a psql session (application_name NAME) fed one
# statement at a time by pg_session_send, e.g. a transaction that holds a
# lock until pg_session_end commits it.
declare -A T_SESSION_FD=() T_SESSION_PID=()
pg_session_start() {
    local name=$1 fd
    rm -f "$T_DIR/$name.fifo"
    mkfifo "$T_DIR/$name.fifo"
    PGAPPNAME=$name "$_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$T_PG_URL" \
        <"$T_DIR/$name.fifo" >"$T_DIR/$name.log" 2>&1 &
    T_SESSION_PID[$name]=$!
    T_BG_PIDS+=("$!")
    exec {fd}>"$T_DIR/$name.fifo"
    T_SESSION_FD[$name]=$fd
}

pg_session_send() {
    printf '%s\n' "$2" >&"${T_SESSION_FD[$1]}"
}

# Ends the session: COMMIT (or the SQL given), \q, wait for psql.  (\q, not
# end of input: processes started meanwhile inherit the fifo's write end.)
pg_session_end() {
    local name=$1 sql=${2:-COMMIT;} fd
    pg_session_send "$name" "$sql" 2>/dev/null
    pg_session_send "$name" '\q' 2>/dev/null
    fd=${T_SESSION_FD[$name]}
    exec {fd}>&-
    t_wait_exit "${T_SESSION_PID[$name]}" 30
}

# Rows of pg_locks granted to session NAME on TABLE (a count).
pg_session_locks() {
    db_sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = '$1' AND l.relation = '$2'::regclass AND l.granted"
}

# Backends of zdm (application_name zdm) in this database, or those running
# a query that contains TEXT.
pg_zdm_backends() {
    db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'zdm'
             AND datname = current_database() AND query LIKE '%${1:-}%'
             AND pid <> pg_backend_pid()"
}
