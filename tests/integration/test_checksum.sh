#!/usr/bin/env bash
# test_checksum.sh -- a plan file edited after it was applied, on SQLite and
# PostgreSQL: advance and rollback exit 3 naming the plan and "zdm stamp",
# nothing changes, status flags it; `zdm stamp PLAN expanded` accepts the
# new file and advance goes on.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init checksum

checksum_case() {
    local d=$1 plan=0002_event_type
    t_section "$d: plan file edited after expand"
    db_new "$d" checksum
    plans_copy 0001_baseline 0002_event_type
    zdm_complete 0001_baseline
    zdm_run advance "$plan"
    t_rc "$d: expand 0002" 0
    local old_sum new_sum
    old_sum=$(sha256sum "$T_PLANS/$plan.toml" | cut -c1-12)
    printf '# an innocent-looking comment\n' >>"$T_PLANS/$plan.toml"
    new_sum=$(sha256sum "$T_PLANS/$plan.toml" | cut -c1-12)
    db_dump "$T_DIR/$d-before.sql"

    zdm_run advance "$plan"
    t_rc "$d: advance with the file changed" 3
    t_has "$d: names the plan and both checksums" \
        "plan $plan changed after it was applied: $T_PLANS/$plan.toml has checksum $new_sum, the database recorded $old_sum when it entered expanded" \
        "$ZERR"
    t_has "$d: says how to accept it" "zdm stamp $plan expanded" "$ZERR"
    zdm_run rollback "$plan"
    t_rc "$d: rollback with the file changed" 3
    t_has "$d: rollback refusal names the plan" "plan $plan changed after it was applied" "$ZERR"
    t_eq "$d: still expanded" expanded "$(zdm_phase_of "$plan")"
    db_dump "$T_DIR/$d-after.sql"
    t_same_file "$d: the refused commands changed nothing" "$T_DIR/$d-before.sql" "$T_DIR/$d-after.sql"

    zdm_run --json status "$plan"
    t_eq "$d: status --json flags the checksum" false "$(jq -r '.plans[0].checksum_ok' <<<"$ZOUT")"
    t_has "$d: status --json says what to do" "zdm stamp $plan expanded" "$(jq -r '.plans[0].next' <<<"$ZOUT")"
    zdm_run --json history "$plan"
    t_eq "$d: history has both refusals, each with the move it refused" \
        "advance expanded->backfilled refused|rollback expanded->rolled_back refused" \
        "$(jq -r '.history[] | select(.outcome == "refused") | "\(.action) \(.from)->\(.to) \(.outcome)"' <<<"$ZOUT" |
            paste -sd'|')"

    t_section "$d: zdm stamp accepts the edited file"
    zdm_run stamp "$plan" expanded
    t_rc "$d: stamp expanded" 0
    t_has "$d: stamp output" "$plan: stamped expanded" "$ZOUT"
    zdm_run --json status "$plan"
    t_eq "$d: checksum accepted" true "$(jq -r '.plans[0].checksum_ok' <<<"$ZOUT")"
    zdm_run advance "$plan"
    t_rc "$d: advance after stamp" 0
    t_has "$d: advance after stamp output" "$plan: expanded -> backfilled" "$ZOUT"

    t_section "$d: a pending plan may change freely"
    plans_copy 0001_baseline
    plan_write 0010_fresh '
requires = ["0001_baseline"]
[[expand.steps]]
sql  = "CREATE TABLE fresh (x integer)"
down = "DROP TABLE fresh"
'
    printf '# edited\n' >>"$T_PLANS/0010_fresh.toml"
    zdm_run advance 0010_fresh
    t_rc "$d: advance of a never-applied plan after an edit" 0
    # Rolled back: the file may change before it is applied again.
    zdm_run rollback 0010_fresh
    t_rc "$d: rollback 0010" 0
    printf '# edited again\n' >>"$T_PLANS/0010_fresh.toml"
    zdm_run advance 0010_fresh
    t_rc "$d: advance of a rolled back plan after an edit" 0
    t_has "$d: from rolled_back" "0010_fresh: rolled_back -> expanded" "$ZOUT"

    t_section "$d: a file edited while expand is half-done"
    # on_failure = "stop": an atomic expand (the default) would undo step 1
    plan_write 0011_half '
requires = ["0001_baseline"]
on_failure = "stop"
[[expand.steps]]
sql  = "CREATE TABLE half_a (x integer)"
down = "DROP TABLE half_a"
[[expand.steps]]
sql  = "SELECT * FROM no_such_table"
down = "SELECT 1"
'
    zdm_run advance 0011_half
    t_rc "$d: step 2 fails" 1
    t_eq "$d: still pending" pending "$(zdm_phase_of 0011_half)"
    # step 1 was applied: changing it now would silently skip the change
    sed -i 's/half_a (x integer)/half_a (x integer, y integer)/' "$T_PLANS/0011_half.toml"
    zdm_run advance 0011_half
    t_rc "$d: advance after editing an applied step" 3
    t_has "$d: names the plan" "plan 0011_half changed after it was applied" "$ZERR"
}

checksum_case sqlite
t_with_pg checksum_case pg
t_finish
