#!/usr/bin/env bash
# test_set.sh -- zdm set on SQLite and PostgreSQL:
#  * 7 concurrent zdm set, one key each, x rounds: no change is lost;
#  * contradictory values (min_batch_size above max_batch_size, here or
#    with the plan's) are refused (exit 2) and change nothing;
#  * the overrides show in status (text and --json) and plan show --db;
#  * zdm set PLAN --reset drops them; rollback drops them too.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init set

ROUNDS=${T_ROUNDS:-20}
overrides() {
    zdm_run --json status p_set
    jq -c '.plans[0].backfill.overrides' <<<"$ZOUT"
}

set_case() {
    local d=$1 r k want got bad=0
    t_section "$d: 7 concurrent zdm set x $ROUNDS rounds, contradictions, --reset, rollback"
    db_new "$d" set_db
    rm -f "$T_DIR/set.fail" "$T_DIR/set.err"
    plans_empty
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    plan_write p_set '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"'
    zdm_run advance p_set
    t_rc "$d: expand" 0
    for r in $(seq 1 "$ROUNDS"); do
        local -a kv=("batch_size=$((200 + r))" "target_batch_ms=$((100 + r))" "min_batch_size=$((10 + r))"
            "max_batch_size=$((50000 + r))" "max_rows_per_second=$((1000 + r))" "sleep_ms=$r"
            "max_replication_lag_ms=$((500 + r))")
        for k in "${kv[@]}"; do
            { "$ZDM" --db "$T_DB" --plans "$T_PLANS" set p_set "$k" >"$T_DIR/set.out" 2>>"$T_DIR/set.err" ||
                echo "round $r: zdm set $k: exit $?" >>"$T_DIR/set.fail"; } &
        done
        wait
        want=$(printf '%s\n' "${kv[@]}" | sort | tr '\n' ' ')
        got=$(overrides | jq -r 'to_entries | map("\(.key)=\(.value)") | .[]' | sort | tr '\n' ' ')
        if [ -s "$T_DIR/set.fail" ]; then
            # a busy database is waited out, never a failed zdm set
            t_eq "$d: round $r: every concurrent zdm set succeeded" "" "$(cat "$T_DIR/set.fail" "$T_DIR/set.err")"
            bad=1
            break
        fi
        if [ "$want" != "$got" ]; then
            t_eq "$d: round $r: every concurrent change kept" "$want" "$got"
            bad=1
            break
        fi
    done
    [ "$bad" = 0 ] && t_ok
    t_eq "$d: one history row per zdm set" $((ROUNDS * 7)) \
        "$(db_sql "SELECT count(*) FROM $([ "$d" = pg ] && echo zdm.history || echo zdm_history) WHERE action = 'set'")"

    local before
    before=$(overrides)
    zdm_run set p_set min_batch_size=100 max_batch_size=50
    t_rc "$d: min above max in one command" 2
    t_has "$d: says which" "min_batch_size (100) would be larger than max_batch_size (50)" "$ZERR"
    zdm_run set p_set min_batch_size=70000
    t_rc "$d: min above the max in force" 2
    zdm_run set p_set batch_size=5 sleep_ms=7
    t_rc "$d: batch_size below the min in force" 2
    t_eq "$d: the refused commands changed nothing (not even sleep_ms)" "$before" "$(overrides)"

    zdm_run status p_set
    t_has "$d: status shows the overrides" "zdm set overrides: " "$ZOUT"
    t_has "$d: and how to drop them" "zdm set p_set --reset drops them" "$ZOUT"
    zdm_run --json status p_set
    t_eq "$d: --json effective settings" "$((200 + ROUNDS))" "$(jq -r '.plans[0].backfill.settings.batch_size' <<<"$ZOUT")"
    zdm_run --json plan show p_set
    t_eq "$d: plan show --db --json shows the overrides" "$ROUNDS" "$(jq -r '.backfill.overrides.sleep_ms' <<<"$ZOUT")"
    t_eq "$d: next to the plan's own throttle" 0 "$(jq -r '.backfill.throttle.sleep_ms' <<<"$ZOUT")"
    zdm_run plan show p_set
    t_has "$d: plan show --db (text)" "zdm set overrides in the database:" "$ZOUT"

    zdm_run set p_set --reset
    t_rc "$d: --reset" 0
    t_eq "$d: no overrides after --reset" "{}" "$(overrides)"
    zdm_run set p_set --reset sleep_ms=3
    t_rc "$d: --reset with a new value" 0
    t_eq "$d: only the new value" '{"sleep_ms":3}' "$(overrides)"
    zdm_run set p_set sleep_ms=010 max_latency_factor=1.50
    t_rc "$d: values written with leading and trailing zeros" 0
    t_has "$d: echoed as stored (010 is 10)" "p_set: sleep_ms = 10 (workers apply" "$ZOUT"
    t_has "$d: a factor as status shows it" "p_set: max_latency_factor = 1.5 (workers apply" "$ZOUT"
    zdm_run set p_set --reset sleep_ms=3
    zdm_run set p_set
    t_rc "$d: zdm set PLAN alone is a usage error" 2
    # the plan file's bounds hold live too (31 years of sleep_ms was taken)
    zdm_run set p_set sleep_ms=3600001
    t_rc "$d: sleep_ms above the plan file's bound" 2
    t_has "$d: ... saying the bound" "sleep_ms=3600001: at most 3600000, as in the plan file" "$ZERR"

    # a long pause set by mistake is undone by --reset at once: the worker
    # reads the settings again while it waits (it slept the whole hour)
    zdm_run set p_set --reset sleep_ms=3600000 batch_size=1
    db_sql "INSERT INTO t (id, a) VALUES (1, 1), (2, 2), (3, 3)" >/dev/null
    zdm_bg "$T_DIR/slp" backfill p_set
    t_wait_for "$d: the first batch" 30 "[ \"\$(db_sql 'SELECT count(*) FROM t WHERE b IS NOT NULL')\" -ge 1 ]"
    zdm_run set p_set --reset
    t_wait_exit "$ZBG_JOB" 60
    zdm_bg_collect "$T_DIR/slp"
    t_eq "$d: after --reset the worker went on and finished" "0 3" \
        "$WAIT_RC $(db_sql 'SELECT count(*) FROM t WHERE b IS NOT NULL')"

    zdm_run rollback p_set
    t_rc "$d: rollback" 0
    zdm_run advance p_set
    t_rc "$d: expand again" 0
    t_eq "$d: rollback dropped the overrides" "{}" "$(overrides)"
}

for d in sqlite pg; do
    if [ "$d" = pg ]; then
        t_pg_available || { T_SKIPPED="pg"; continue; }
        t_pg_start
    fi
    set_case "$d"
done
t_finish
