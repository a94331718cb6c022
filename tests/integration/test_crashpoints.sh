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
#    again (the one that marks a dead run's row "interrupted").
# T_CRASH_STRIDE (default 5) tries every STRIDE-th N only (1: all of them,
# about 10 minutes).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init crashpoints

STRIDE=${T_CRASH_STRIDE:-5}
rc=0
ZDM_CRASH_AT=1 ZDM_CRASH_MODE=exit "$ZDM" --db "sqlite:$T_DIR/probe.db" init >/dev/null 2>&1 || rc=$?
if [ "$rc" != 137 ]; then
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
    local got="$ph e=$e c=$c dw=$([ "$dw" -gt 0 ] && echo yes || echo no)"
    local want="$want_phase e=$want_e c=$want_c dw=$([ "$want_dw" = 1 ] && echo yes || echo no)"
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

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    crash_case "$d" exit
    crash_case "$d" fail
done
t_finish
