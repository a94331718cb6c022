#!/usr/bin/env bash
# test_requires_race.sh -- a plan that requires another is expanded while
# that other plan is rolled back.  B requires A; B's before_expand hook
# (it runs after B's gate found A complete, before B's steps) runs
# "zdm rollback A".  The rollback must be refused (A is held by B's
# expand, exit 3): before, it went through (B was not applied yet), and B
# then expanded on top of a plan that was no longer complete.
# Invariant checked: an applied plan's requirements are complete.
# Deterministic: the hook is the interleaving; no timing.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init requires_race

requires_race() {
    local d=$1 i
    t_section "$d: rollback of A from inside B's expand (B requires A)"
    db_new "$d" reqrace
    plans_empty
    cat >"$T_DIR/rb-a.sh" <<HOOK
#!/bin/sh
"$ZDM" --db "$T_DB" --plans "$T_PLANS" rollback a_req >"$T_DIR/rb-a.out" 2>&1
echo \$? >"$T_DIR/rb-a.rc"
exit 0
HOOK
    chmod +x "$T_DIR/rb-a.sh"
    plan_write a_req "
[[expand.steps]]
sql  = \"CREATE TABLE ta (id integer)\"
down = \"DROP TABLE ta\"
[[contract.steps]]
sql  = \"CREATE TABLE ta_c (id integer)\"
down = \"DROP TABLE ta_c\""
    plan_write b_req "
requires = [\"a_req\"]
[[expand.steps]]
sql  = \"CREATE TABLE tb (id integer)\"
down = \"DROP TABLE tb\"
[hooks]
before_expand = \"$T_DIR/rb-a.sh\""
    for i in 1 2 3 4; do zdm_run advance a_req; done
    t_eq "$d: A complete" complete "$(zdm_phase_of a_req)"
    zdm_run advance b_req
    t_rc "$d: B's expand" 0
    t_eq "$d: the rollback of A from B's hook was refused" 3 "$(cat "$T_DIR/rb-a.rc")"
    t_has "$d: it says B's run holds A" "locked by" "$(cat "$T_DIR/rb-a.out")"
    t_eq "$d: A still complete" complete "$(zdm_phase_of a_req)"
    t_eq "$d: B expanded" expanded "$(zdm_phase_of b_req)"
    t_eq "$d: no lock row left" 0 "$(db_sql "SELECT count(*) FROM $([ "$d" = pg ] && echo zdm.locks || echo zdm_locks)")"
    zdm_run rollback a_req
    t_rc "$d: now A's rollback is refused for B" 3
    t_has "$d: naming B" "b_req" "$ZERR"
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    requires_race "$d"
done
t_finish
