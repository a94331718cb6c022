#!/usr/bin/env bash
# test_crashpoints.sh -- crash-point injection, on SQLite and PostgreSQL.
# Needs a zdm built with -DZDM_MUTANTS=ON (test builds only: ZDM_CRASH_AT
# does nothing elsewhere, and this test is skipped).
#
# For each command of a plan's life (advance: expand, advance: backfill,
# zdm cutover, advance: contract, rollback from complete, rollback --force
# from cut_over) and each N, the N-th database call of
# that command fails, or the process ends there with _exit(137) (as kill -9
# would).  The same command is run again until it passes, then the rest of
# the life.  Then:
#  * every step ran exactly once per application (marker rows written in
#    each step's own transaction, and undone ones by its down);
#  * the catalog matches the phase: dual-write triggers only from expanded
#    to cut_over;
#  * no history row is left "running" once a run took the plan's lock
#    again (the one that marks a dead run's row "interrupted"), and the
#    transition that recorded the phase has its row "ok" (phase and
#    outcome are one commit).
# T_CRASH_STRIDE (default 5) tries every STRIDE-th N only (1: all of them,
# about 10 minutes).
#
# Then a backfill whose final check converts the rows it finds (the
# "sweep", backfill_finish.c), at every database call (stride 1): 600
# rows the walk could not convert (two of the sweep's transactions),
# their data fixed, and the run that converts them crashed at call N and
# run again until it passes.  Each of
# those rows is written once (zdm's rows_done and an audit of the
# backfill's committed writes), nothing else is written again, and the
# plan is backfilled with no range left open.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init crashpoints

STRIDE=${T_CRASH_STRIDE:-5}
if ! zdm_has_mutants; then
    echo "zdm was built without -DZDM_MUTANTS=ON: no crash points; skipped"
    T_SKIPPED="crash points (a ZDM_MUTANTS build)"
    t_finish
fi

net() { db_sql "SELECT (SELECT count(*) FROM marks WHERE ev = '$1') - (SELECT count(*) FROM marks WHERE ev = 'un$1')"; }
dw_triggers() {
    if [ "$T_DIALECT" = pg ]; then
        db_sql "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm_dw%'"
    else
        db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm_dw%'"
    fi
}

LIFE=("advance p_c" "advance p_c" "cutover p_c" "advance p_c" "rollback p_c" "rollback --force p_c")
PHASES=(expanded backfilled cut_over complete cut_over rolled_back)

fresh_db() {
    local d=$1
    if [ "$d" = sqlite ]; then
        db_new sqlite crash
    else
        pg_psql -d postgres -c "DROP DATABASE IF EXISTS crash" >/dev/null 2>&1
        db_new pg crash
    fi
    db_sql "CREATE TABLE marks (ev text)" >/dev/null
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO t (id, a) VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)" >/dev/null
}

# run CMD... with the crash env (exported by the caller) unset
plain() {
    # shellcheck disable=SC2086
    env -u ZDM_CRASH_AT -u ZDM_CRASH_MODE timeout -k 5 120 "$ZDM" --db "$T_DB" --plans "$T_PLANS" $1 \
        >>"$T_DIR/plain.log" 2>&1
}

check_state() {
    local what=$1 want_phase=$2 ph e c dw
    ph=$(zdm_phase_of p_c)
    e=$(net expand1)
    c=$(net contract1)
    dw=$(dw_triggers)
    local want_e=0 want_c=0 want_dw=0
    case $want_phase in
    expanded | backfilled | cut_over) want_e=1 want_dw=1 ;;
    complete) want_e=1 want_c=1 ;;
    esac
    # the transition that recorded the phase says so in its history row:
    # recorded apart, a crash between left it "running", later
    # "interrupted", for a transition that had finished
    local okrow
    okrow=$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE plan_id = 'p_c' AND to_phase = '$want_phase'
                    AND outcome = 'ok' AND action IN ('advance', 'backfill', 'rollback')")
    local got="$ph e=$e c=$c dw=$([ "$dw" -gt 0 ] && echo yes || echo no) ok_row=$([ "$okrow" -gt 0 ] && echo yes || echo no)"
    local want="$want_phase e=$want_e c=$want_c dw=$([ "$want_dw" = 1 ] && echo yes || echo no) ok_row=yes"
    if [ "${3:-}" = final ]; then
        # A run that died leaves its row "running" until the next run that
        # takes the plan's lock says "interrupted": one more (a rollback of
        # the rolled back plan changes nothing) has done so by now.
        plain "rollback p_c"
        got="$got running=$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE outcome = 'running'")"
        want="$want running=0"
    fi
    if [ "$got" != "$want" ]; then
        t_eq "$what" "$want" "$got"
        return 1
    fi
    return 0
}

crash_case() {
    local d=$1 mode=$2 k n r i bad=0 tries
    t_section "$d: ZDM_CRASH_MODE=$mode at every database call of every command (stride $STRIDE)"
    plans_empty
    plan_write p_c "
[[expand.steps]]
sql  = \"ALTER TABLE t ADD COLUMN b integer\"
down = \"ALTER TABLE t DROP COLUMN b\"
[[expand.steps]]
sql  = \"INSERT INTO marks VALUES ('expand1')\"
down = \"INSERT INTO marks VALUES ('unexpand1')\"
[backfill]
table = \"t\"
set.b = \"a\"
[backfill.throttle]
batch_size = 2
min_batch_size = 1
max_batch_size = 2
[[contract.steps]]
sql  = \"INSERT INTO marks VALUES ('contract1')\"
down = \"INSERT INTO marks VALUES ('uncontract1')\""
    local points=0
    for k in 0 1 2 3 4 5; do
        n=1
        while :; do
            fresh_db "$d"
            for ((i = 0; i < k; i++)); do plain "${LIFE[$i]}"; done
            r=0
            # shellcheck disable=SC2086
            ZDM_CRASH_AT=$n ZDM_CRASH_MODE=$mode timeout -k 5 120 "$ZDM" --db "$T_DB" --plans "$T_PLANS" \
                ${LIFE[$k]} >"$T_DIR/crash.out" 2>&1 || r=$?
            points=$((points + 1))
            if [ "$r" = 0 ] && [ "$(zdm_phase_of p_c)" = "${PHASES[$k]}" ] &&
                ! grep -q "injected failure" "$T_DIR/crash.out"; then
                break # N is past the command's last database call
            fi
            # resume: the same command until it passes (a lock left by the
            # dead process is taken over or gone with its session)
            tries=0
            while [ "$(zdm_phase_of p_c)" != "${PHASES[$k]}" ] && [ "$tries" -lt 3 ]; do
                plain "${LIFE[$k]}"
                tries=$((tries + 1))
            done
            if ! check_state "$d $mode: '${LIFE[$k]}' crashed at call $n, resumed" "${PHASES[$k]}"; then
                bad=1
                break 2
            fi
            for ((i = k + 1; i < 6; i++)); do plain "${LIFE[$i]}"; done
            if ! check_state "$d $mode: '${LIFE[$k]}' crashed at call $n, then the rest of the life" rolled_back final; then
                bad=1
                break 2
            fi
            n=$((n + STRIDE))
            [ "$n" -gt 400 ] && { t_eq "$d: '${LIFE[$k]}' ends within 400 database calls" yes no; bad=1; break 2; }
        done
    done
    echo "    ($points crash points tried)"
    [ "$bad" = 0 ] && t_ok
}

# ---- the final check's conversion (the sweep) ----

SWEEP_ROWS=1200
# the committed writes of backfill transactions (the mark the dual-write
# triggers read): a write rolled back with its crashed batch leaves none
sweep_schema() {
    db_sql "CREATE TABLE s (id integer PRIMARY KEY, v integer, w integer)" >/dev/null
    db_sql "CREATE TABLE audit (k integer NOT NULL)" >/dev/null
    if [ "$1" = pg ]; then
        db_sql "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
                  IF COALESCE(current_setting('zdm.backfill', true), '') <> '' THEN
                    INSERT INTO audit (k) VALUES (NEW.id); END IF;
                  RETURN NULL; END \$\$;
                CREATE TRIGGER audit AFTER UPDATE ON s FOR EACH ROW EXECUTE FUNCTION audit();" >/dev/null
    else
        db_sql "CREATE TRIGGER audit AFTER UPDATE ON s FOR EACH ROW
                  WHEN EXISTS (SELECT 1 FROM zdm_guard WHERE plan_id IS NOT NULL)
                  BEGIN INSERT INTO audit (k) VALUES (NEW.id); END" >/dev/null
    fi
    db_sql "INSERT INTO s (id, v) VALUES $(seq -s, 1 "$SWEEP_ROWS" | sed 's/\([0-9]*\)/(\1, \1)/g')" >/dev/null
    db_sql "UPDATE s SET v = NULL WHERE id % 2 = 0" >/dev/null
}

# The database as it is after the walk, the failed final check and the
# fix, saved once and put back before each crash point.
sweep_save() {
    if [ "$1" = sqlite ]; then
        rm -f "$T_DIR/sweep.snap"
        sqlite3 "$T_SQLITE_FILE" "VACUUM INTO '$T_DIR/sweep.snap'"
    else
        pg_psql -d postgres -c "DROP DATABASE IF EXISTS sweep_snap" >/dev/null 2>&1
        pg_psql -d postgres -c "CREATE DATABASE sweep_snap TEMPLATE sweep" >/dev/null
    fi
}
sweep_restore() {
    if [ "$1" = sqlite ]; then
        rm -f "$T_SQLITE_FILE-wal" "$T_SQLITE_FILE-shm"
        cp "$T_DIR/sweep.snap" "$T_SQLITE_FILE"
    else
        pg_psql -d postgres -c "DROP DATABASE IF EXISTS sweep" >/dev/null 2>&1
        pg_psql -d postgres -c "CREATE DATABASE sweep TEMPLATE sweep_snap" >/dev/null
    fi
}

# sweep_case D MODE [CALLS]: MODE exit finds how many database calls the
# run makes (the first N it outlives: it ran to the end); MODE fail then
# fails each of those CALLS (a failed call the run survives ends nothing).
SWEEP_CALLS=0
sweep_case() {
    local d=$1 mode=$2 calls=${3:-0} n=1 r tries points=0 bad=0 last
    t_section "$d: ZDM_CRASH_MODE=$mode at every database call of a run whose final check converts rows"
    plans_empty
    plan_write p_s '
[backfill]
table = "s"
where = "w IS NULL"
set.w = "v * 10"
dual_write = false
[backfill.throttle]
max_latency_factor = 0
batch_size = 100'
    if [ "$d" = sqlite ]; then
        db_new sqlite sweep
    else
        pg_psql -d postgres -c "DROP DATABASE IF EXISTS sweep" >/dev/null 2>&1
        db_new pg sweep
    fi
    zdm_run init
    sweep_schema "$d"
    plain "advance p_s"
    plain "advance p_s" # the walk; the final check finds the rows left and converts none
    t_eq "$d: the walk leaves the rows its expression cannot convert" "expanded $((SWEEP_ROWS / 2))" \
        "$(db_phase p_s) $(db_sql "SELECT count(*) FROM s WHERE w IS NULL")"
    db_sql "UPDATE s SET v = id WHERE v IS NULL; DELETE FROM audit" >/dev/null
    sweep_save "$d"
    # the rows left written once more (the walk wrote them, with nothing
    # to show for it), every other row once
    local left=$((SWEEP_ROWS / 2)) got
    local want="backfilled 0 $((SWEEP_ROWS + left)) $left 0 0"
    while :; do
        sweep_restore "$d"
        r=0
        ZDM_CRASH_AT=$n ZDM_CRASH_MODE=$mode timeout -k 5 120 "$ZDM" --db "$T_DB" --plans "$T_PLANS" \
            backfill p_s >"$T_DIR/crash.out" 2>&1 || r=$?
        points=$((points + 1))
        last=0
        if [ "$mode" = exit ]; then
            [ "$r" != 137 ] && last=1
        else
            [ "$n" -ge "$calls" ] && last=1
        fi
        tries=0
        while [ "$(db_phase p_s)" != backfilled ] && [ "$tries" -lt 3 ]; do
            plain "backfill p_s"
            tries=$((tries + 1))
        done
        got="$(db_phase p_s) $(db_sql "SELECT count(*) FROM s WHERE w IS DISTINCT FROM v * 10")"
        got="$got $(db_sql "SELECT sum(rows_done) FROM $(zdm_tbl ranges) WHERE plan_id = 'p_s'")"
        got="$got $(db_sql "SELECT count(*) FROM audit") $(db_sql "SELECT count(*) FROM audit WHERE k % 2 = 1")"
        got="$got $(db_sql "SELECT count(*) FROM $(zdm_tbl ranges) WHERE plan_id = 'p_s' AND done = 0")"
        if [ "$got" != "$want" ]; then
            t_eq "$d $mode: the sweeping run crashed at call $n, resumed (phase, rows wrong, rows_done, audited writes, of other rows, open ranges)" "$want" "$got"
            sed 's/^/    | /' "$T_DIR/crash.out" | tail -n 8
            bad=1
            break
        fi
        [ "$last" = 1 ] && break
        n=$((n + 1))
        [ "$n" -gt 200 ] && { t_eq "$d: the sweeping run ends within 200 database calls" yes no; bad=1; break; }
    done
    if [ "$mode" = exit ] && [ "$bad" = 0 ]; then
        SWEEP_CALLS=$((n - 1))
        t_eq "$d: the run that outlived its crash point converted the rows left at the end, exit 0" "0 1" \
            "$r $(grep -c "final check: converted $left rows" "$T_DIR/crash.out")"
        t_eq "$d: a sweeping run makes more than 20 database calls" 1 "$([ "$SWEEP_CALLS" -gt 20 ] && echo 1)"
    fi
    echo "    ($points crash points tried)"
    [ "$bad" = 0 ] && t_ok
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    crash_case "$d" exit
    crash_case "$d" fail
    sweep_case "$d" exit
    sweep_case "$d" fail "$SWEEP_CALLS"
done
t_finish
