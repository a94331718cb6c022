#!/usr/bin/env bash
# test_run_due_race.sh -- several hosts run "zdm run-due" at once against a
# contract that fails (its verify is false): one backoff window sees one
# attempt, however the runs interleave.  run-due decides from state read
# before the plan's lock; the decision is taken again under the lock, and
# the attempt is counted before the lock is released, so a run that read
# "0 attempts" before another's failure does not try again after it.
#  * SQLite: a transaction of another session holds the write lock while
#    the runs start, so each reads the state, then waits for the plan's
#    lock; released, they take it one after the other (before the fix:
#    2 to 6 attempts in the window, each running on_failure);
#  * PostgreSQL: 6 runs at once, several rounds.
# Every round: exactly one attempt counted, one on_failure run.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init run_due_race

ROUNDS=${T_ROUNDS:-5}
N=6
LOG=$T_DIR/hooks.log
: >"$LOG"
cat >"$T_DIR/rec.sh" <<EOS
#!/bin/sh
echo "\$ZDM_EVENT" >>"$LOG"
EOS
chmod +x "$T_DIR/rec.sh"

setup() {
    local d=$1
    db_new "$d" rdrace
    P=$T_DIR/$d
    mkdir -p "$P/plans"
    T_PLANS=$P/plans
    zdm_failing_contract "$d: " "on_failure = \"$T_DIR/rec.sh\""
}

# N run-due at once; $1: a command run after they started (may be empty)
burst() {
    local i jobs=()
    for i in $(seq "$N"); do
        zdm_bg "$T_DIR/rd$i" run-due
        jobs+=("$ZBG_JOB")
    done
    [ -n "${1:-}" ] && eval "$1"
    for i in "${jobs[@]}"; do t_wait_exit "$i" 120; done
}

round() {
    local d=$1 r=$2 hold=${3:-} before
    zdm_run retry v
    before=$(wc -l <"$LOG")
    burst "$hold"
    t_eq "$d round $r: one attempt in the window" 1 "$(zdm_status_field v attempts)"
    t_eq "$d round $r: on_failure ran once" 1 "$(($(wc -l <"$LOG") - before))"
    t_eq "$d round $r: not failed" null "$(zdm_status_field v failed_at)"
}

t_section "sqlite: runs that read the state before another's failure"
setup sqlite
for r in $(seq "$ROUNDS"); do
    # the other session: holds the write lock while the runs start and
    # read the state, then lets them go
    python3 - "$T_SQLITE_FILE" "$T_DIR/held" <<'PY' &
import sqlite3, sys, time, os
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(1.5)
c.execute("COMMIT")
PY
    holder=$!
    t_wait_for "the other session holds the write lock" 30 "[ -e '$T_DIR/held' ]"
    round sqlite "$r" "wait $holder"
    rm -f "$T_DIR/held"
done

if t_pg_available; then
    t_section "pg: 6 run-due at once"
    t_pg_start
    setup pg
    for r in $(seq "$ROUNDS"); do round pg "$r"; done
fi

t_finish
