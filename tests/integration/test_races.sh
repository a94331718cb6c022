#!/usr/bin/env bash
# test_races.sh -- 8 concurrent cutover / advance / rollback --force / set
# on one plan, many rounds, on SQLite and PostgreSQL.  After every round:
#  * every step ran exactly once per application: the marker rows each
#    step writes in its own transaction match the phase (expand applied
#    exactly in expanded..complete, contract exactly in complete);
#  * a cutover only ever moved backfilled -> cut_over (its own output);
#  * no history row is left "running", no lock row is left.
# In a test build (-DZDM_MUTANTS=ON) the race is forced, not hoped for:
# every round, the odd-numbered runs stop at a barrier just before they
# take the plan's lock (ZDM_BARRIER=before_lock:PATH) until the even ones
# have finished and moved the plan on.  Whatever they read before the lock
# is then stale every time, so a phase read outside the lock is caught
# (the phase_unlocked mutant: checked to fail here).  Other builds run the
# 8 at once, unforced.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init races

ROUNDS=${T_ROUNDS:-20}
FORCED=0
zdm_has_mutants && FORCED=1
net() { db_sql "SELECT (SELECT count(*) FROM marks WHERE ev = '$1') - (SELECT count(*) FROM marks WHERE ev = 'un$1')"; }

race() {
    local d=$1 r i cmd bad=0 ph e c
    t_section "$d: 8 concurrent cutover/advance/rollback/set x $ROUNDS rounds"
    db_new "$d" races
    plans_empty
    db_sql "CREATE TABLE marks (ev text)" >/dev/null
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO t (id, a) VALUES (1, 1), (2, 2), (3, 3)" >/dev/null
    plan_write p_race "
[[expand.steps]]
sql  = \"ALTER TABLE t ADD COLUMN b integer\"
down = \"ALTER TABLE t DROP COLUMN b\"
[[expand.steps]]
sql  = \"INSERT INTO marks VALUES ('expand1')\"
down = \"INSERT INTO marks VALUES ('unexpand1')\"
[backfill]
table = \"t\"
set.b = \"a\"
[[contract.steps]]
sql  = \"INSERT INTO marks VALUES ('contract1')\"
down = \"INSERT INTO marks VALUES ('uncontract1')\""
    local -a cmds=("cutover p_race" "advance p_race" "rollback --force p_race" "set p_race sleep_ms=1"
                   "advance p_race" "cutover p_race" "set p_race batch_size=500" "advance p_race")
    local -a pids
    local bar
    for r in $(seq 1 "$ROUNDS"); do
        pids=()
        bar=$T_DIR/bar.$d.$r
        for i in 0 1 2 3 4 5 6 7; do
            cmd=${cmds[$(((i + r * 3) % 8))]}
            if [ "$FORCED" = 1 ] && [ $((i % 2)) = 1 ]; then
                # shellcheck disable=SC2086
                ZDM_BARRIER=before_lock:$bar "$ZDM" --db "$T_DB" --plans "$T_PLANS" $cmd >"$T_DIR/r$i.out" 2>"$T_DIR/r$i.err" &
                pids+=($!)
            else
                # shellcheck disable=SC2086
                "$ZDM" --db "$T_DB" --plans "$T_PLANS" $cmd >"$T_DIR/r$i.out" 2>"$T_DIR/r$i.err" &
                pids+=($!)
            fi
            echo "$cmd" >"$T_DIR/r$i.cmd"
        done
        if [ "$FORCED" = 1 ]; then
            # zdm set takes no plan lock: only advance, cutover and rollback arrive
            local held=0
            for i in 1 3 5 7; do grep -q '^set' "$T_DIR/r$i.cmd" || held=$((held + 1)); done
            t_wait_for "$d: round $r: $held runs held before the lock" 60 \
                "[ \$(ls '$bar'.arrived.* 2>/dev/null | wc -l) -ge $held ]"
            for i in 0 2 4 6; do
                wait "${pids[$i]}"
                echo $? >"$T_DIR/r$i.rc"
            done
            touch "$bar"
        fi
        # Each run did its transition, found nothing to do, or was refused
        # (locked, wrong phase): a failure (exit 1) means it acted on a
        # phase that was no longer true, e.g. expand again on an expanded
        # plan ("column already exists").
        for i in 0 1 2 3 4 5 6 7; do
            [ "$FORCED" = 1 ] && [ $((i % 2)) = 0 ] && continue
            wait "${pids[$i]}"
            echo $? >"$T_DIR/r$i.rc"
        done
        for i in 0 1 2 3 4 5 6 7; do
            case $(cat "$T_DIR/r$i.rc") in 0 | 3) ;; *)
                t_eq "$d: round $r: $(cat "$T_DIR/r$i.cmd") succeeded or was refused" "0 or 3" \
                    "$(cat "$T_DIR/r$i.rc"): $(tail -3 "$T_DIR/r$i.err")"
                bad=1 ;;
            esac
        done
        ph=$(zdm_phase_of p_race)
        e=$(net expand1)
        c=$(net contract1)
        local want_e=0 want_c=0
        case $ph in expanded | backfilled | cut_over) want_e=1 ;; complete) want_e=1 want_c=1 ;; esac
        if [ "$e" != "$want_e" ] || [ "$c" != "$want_c" ]; then
            t_eq "$d: round $r ($ph): expand and contract applied exactly as the phase says" "$want_e $want_c" "$e $c"
            bad=1
            break
        fi
        for i in 0 1 2 3 4 5 6 7; do
            if grep -q '^cutover' "$T_DIR/r$i.cmd" && grep -q ' -> ' "$T_DIR/r$i.out" &&
                ! grep -qx 'p_race: backfilled -> cut_over' "$T_DIR/r$i.out"; then
                t_eq "$d: round $r: what a cutover did" "p_race: backfilled -> cut_over" "$(cat "$T_DIR/r$i.out")"
                bad=1
            fi
        done
        if [ "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE outcome = 'running'")" != 0 ] ||
            [ "$(db_sql "SELECT count(*) FROM $(zdm_tbl locks)")" != 0 ]; then
            t_eq "$d: round $r: running history rows and lock rows left" "0 0" \
                "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE outcome = 'running'") $(db_sql "SELECT count(*) FROM $(zdm_tbl locks)")"
            bad=1
        fi
        [ "$bad" = 0 ] || break
    done
    [ "$bad" = 0 ] && t_ok
    t_ne "$d: the plan moved at all (ok transitions in history)" 0 \
        "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE action IN ('advance', 'rollback') AND outcome = 'ok'")"
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    race "$d"
done
t_finish
