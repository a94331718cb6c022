#!/usr/bin/env bash
# test_layout.sh -- the layout version of zdm's state, on SQLite and
# PostgreSQL:
#  * a fresh state records its layout version and the zdm version that
#    wrote it;
#  * a layout version row that is 0, empty, not a number, missing, or a
#    meta table that is gone: every command (read-only ones included:
#    status, history, check, --dry-run) exits 5 saying the state is
#    damaged, and changes nothing -- a backfilled plan is never shown as
#    pending; a plan row with a phase no zdm writes: the same;
#  * a newer layout: every command exits 5 naming the zdm version that
#    wrote it;
#  * an older layout (1, as zdm 0.1.0 wrote it; 2, before history had a
#    reason column; 3, before ranges had the workers' rates): every command
#    exits 5, plain "zdm init" too, pointing at "zdm init --upgrade"; that
#    upgrades once, keeps every plan's phase, history and backfill ranges,
#    and is recorded in history; run again, it does nothing; two at once on
#    PostgreSQL upgrade once.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init layout
ZVER=$("$ZDM" --version | awk '{print $2}')

meta() { if [ "$T_DIALECT" = pg ]; then echo zdm.meta; else echo zdm_meta; fi; }
plans_t() { if [ "$T_DIALECT" = pg ]; then echo zdm.plans; else echo zdm_plans; fi; }
hist_t() { if [ "$T_DIALECT" = pg ]; then echo zdm.history; else echo zdm_history; fi; }

# every_command_refuses WHAT PATTERN: each command exits 5 with PATTERN in
# its message, and the state (plans and history) is unchanged.
every_command_refuses() {
    local what=$1 pat=$2 before after
    before=$(db_sql "SELECT id, phase, phase_since_ms FROM $(plans_t) ORDER BY id"; db_sql "SELECT count(*) FROM $(hist_t)")
    local -a cmds=("status" "--json status" "status p_bf" "history" "--json history p_bf" "check"
        "advance p_bf --dry-run" "advance p_bf" "advance p_new" "rollback p_bf --dry-run" "run-due"
        "schedule p_bf --after 1h" "stamp p_bf complete" "unlock p_bf" "pause p_bf" "resume p_bf"
        "backfill p_bf" "cutover p_bf" "init" "plan graph" "advance --all" "baseline bl")
    local c
    local plans=$T_PLANS
    for c in "${cmds[@]}"; do
        # baseline only starts an empty plans directory (exit 2 before it
        # opens the database otherwise): give it one, so it meets the layout
        if [ "$c" = "baseline bl" ]; then
            T_PLANS=$T_DIR/plans_baseline_$T_DIALECT
            mkdir -p "$T_PLANS"
        fi
        # shellcheck disable=SC2086
        zdm_run $c
        T_PLANS=$plans
        t_eq "$what: zdm $c exits 5" 5 "$ZRC"
        t_has "$what: zdm $c says why" "$pat" "$ZERR"
    done
    after=$(db_sql "SELECT id, phase, phase_since_ms FROM $(plans_t) ORDER BY id"; db_sql "SELECT count(*) FROM $(hist_t)")
    t_eq "$what: nothing changed" "$before" "$after"
}

ranges_t() { if [ "$T_DIALECT" = pg ]; then echo zdm.ranges; else echo zdm_ranges; fi; }

# The v4 columns dropped: layout 3 (ranges without the workers' rates).
drop_v4() {
    db_sql "ALTER TABLE $(ranges_t) DROP COLUMN rate_rows" >/dev/null
    db_sql "ALTER TABLE $(ranges_t) DROP COLUMN rate_ms" >/dev/null
}
make_v3() {
    drop_v4
    db_sql "UPDATE $(meta) SET value = '3' WHERE key = 'schema_version'" >/dev/null
    db_sql "UPDATE $(meta) SET value = '0.2.0' WHERE key = 'layout_written_by'" >/dev/null
}

# The v3 and v4 columns dropped: layout 2 (history without a reason).
make_v2() {
    drop_v4
    db_sql "ALTER TABLE $(hist_t) DROP COLUMN reason" >/dev/null
    db_sql "UPDATE $(meta) SET value = '2' WHERE key = 'schema_version'" >/dev/null
    db_sql "UPDATE $(meta) SET value = '0.2.0' WHERE key = 'layout_written_by'" >/dev/null
}

# The v2, v3 and v4 columns, dropped: the layout zdm 0.1.0 (layout 1) wrote.
make_v1() {
    local c
    drop_v4
    db_sql "ALTER TABLE $(hist_t) DROP COLUMN reason" >/dev/null
    for c in attempts last_error last_attempt_ms failed_ms; do
        db_sql "ALTER TABLE $(plans_t) DROP COLUMN $c" >/dev/null
    done
    if [ "$T_DIALECT" = pg ]; then
        db_sql "ALTER TABLE zdm.ranges DROP COLUMN last_batch_ms" >/dev/null
    else
        db_sql "ALTER TABLE zdm_ranges DROP COLUMN last_batch_ms" >/dev/null
    fi
    db_sql "UPDATE $(meta) SET value = '1' WHERE key = 'schema_version'" >/dev/null
    db_sql "DELETE FROM $(meta) WHERE key = 'layout_written_by'" >/dev/null
}

run_dialect() {
    local d=$1
    t_section "$d: a fresh state records its layout and zdm's version"
    db_new "$d" layout_$d
    plans_empty
    plan_write p_bf '[[expand.steps]]
sql  = "CREATE TABLE t_bf (id integer PRIMARY KEY, v integer)"
down = "DROP TABLE t_bf"
[backfill]
table = "t_bf"
set.v = "id"'
    plan_write p_new '[[expand.steps]]
sql  = "CREATE TABLE t_new (id integer PRIMARY KEY)"
down = "DROP TABLE t_new"'
    zdm_run init
    t_rc "init" 0
    t_eq "meta: layout version 4, written by this zdm" "layout_written_by|$ZVER schema_version|4" \
        "$(db_sql "SELECT key, value FROM $(meta) ORDER BY key" | tr '\n' ' ' | sed 's/ $//')"
    zdm_run advance p_bf
    # rows for the backfill, so that its ranges have cursors and counts
    db_sql "INSERT INTO t_bf (id) VALUES (1), (2), (3), (5), (8), (13)" >/dev/null
    zdm_run advance p_bf
    t_eq "p_bf is backfilled" backfilled "$(zdm_phase_of p_bf)"
    local good
    good=$(db_sql "SELECT value FROM $(meta) WHERE key = 'schema_version'")

    t_section "$d: a damaged layout version is refused by every command"
    local v
    for v in 0 "" abc 2x -1; do
        db_sql "UPDATE $(meta) SET value = '$v' WHERE key = 'schema_version'" >/dev/null
        every_command_refuses "version '$v'" "is damaged"
    done
    db_sql "DELETE FROM $(meta) WHERE key = 'schema_version'" >/dev/null
    every_command_refuses "version row missing" "layout version ($(meta)) is missing"
    db_sql "INSERT INTO $(meta) (key, value) VALUES ('schema_version', '$good')" >/dev/null
    zdm_run status p_bf
    t_rc "version restored: status works" 0
    t_has "version restored: p_bf is backfilled" backfilled "$ZOUT"
    db_sql "DROP TABLE $(meta)" >/dev/null
    every_command_refuses "meta table gone" "is damaged"
    db_sql "CREATE TABLE $(meta) (key text PRIMARY KEY, value text NOT NULL)" >/dev/null
    db_sql "INSERT INTO $(meta) (key, value) VALUES ('schema_version', '$good'), ('layout_written_by', '$ZVER')" >/dev/null
    db_sql "UPDATE $(plans_t) SET phase = 'backfiled' WHERE id = 'p_bf'" >/dev/null
    zdm_run status p_bf
    t_eq "a garbled phase: status exits 5" 5 "$ZRC"
    t_lacks "a garbled phase: not shown as pending" pending "$ZOUT"
    t_has "a garbled phase: says which" 'phase "backfiled"' "$ZERR"
    zdm_run advance p_bf
    t_eq "a garbled phase: advance exits 5" 5 "$ZRC"
    db_sql "UPDATE $(plans_t) SET phase = 'backfilled' WHERE id = 'p_bf'" >/dev/null

    t_section "$d: a newer layout is refused by every command, naming who wrote it"
    db_sql "UPDATE $(meta) SET value = '5' WHERE key = 'schema_version'" >/dev/null
    db_sql "UPDATE $(meta) SET value = '9.9.9' WHERE key = 'layout_written_by'" >/dev/null
    every_command_refuses "layout 5" "at layout 5, written by zdm 9.9.9"
    zdm_run init --upgrade
    t_eq "layout 5: init --upgrade refuses too" 5 "$ZRC"
    t_has "layout 5: says which zdm to run" "run zdm 9.9.9 or newer" "$ZERR"

    t_section "$d: layout 3 (ranges without the workers' rates): refused until zdm init --upgrade"
    db_sql "UPDATE $(meta) SET value = '$good' WHERE key = 'schema_version'" >/dev/null
    db_sql "UPDATE $(meta) SET value = '$ZVER' WHERE key = 'layout_written_by'" >/dev/null
    # a backfill's ranges as a worker left them: their cursors and counts
    # must survive the upgrade
    local ranges_before hist3
    ranges_before=$(db_sql "SELECT plan_id, range_id, lo, hi, cursor, done, rows_done, batches FROM $(ranges_t) ORDER BY plan_id, range_id")
    t_ne "layout 3: p_bf has ranges to keep" "" "$ranges_before"
    make_v3
    every_command_refuses "layout 3" "zdm init --upgrade"
    hist3=$(db_sql "SELECT id, action, outcome FROM $(hist_t) ORDER BY id")
    zdm_run init --upgrade
    t_rc "init --upgrade from 3" 0
    t_has "init --upgrade from 3 says so" "upgraded from layout 3 to 4" "$ZOUT"
    t_eq "from 3: meta" "layout_written_by|$ZVER schema_version|4" \
        "$(db_sql "SELECT key, value FROM $(meta) ORDER BY key" | tr '\n' ' ' | sed 's/ $//')"
    t_eq "from 3: the upgrade row" "(state)|upgrade|ok|state layout 3 (written by zdm 0.2.0) -> 4 by zdm $ZVER" \
        "$(db_sql "SELECT plan_id, action, outcome, detail FROM $(hist_t) WHERE action = 'upgrade'")"
    t_eq "from 3: the old history kept" "$hist3" \
        "$(db_sql "SELECT id, action, outcome FROM $(hist_t) WHERE action <> 'upgrade' ORDER BY id")"
    t_eq "from 3: the ranges kept" "$ranges_before" \
        "$(db_sql "SELECT plan_id, range_id, lo, hi, cursor, done, rows_done, batches FROM $(ranges_t) ORDER BY plan_id, range_id")"
    t_eq "from 3: the rates are there, not known" "0" \
        "$(db_sql "SELECT count(*) FROM $(ranges_t) WHERE rate_rows IS NOT NULL OR rate_ms IS NOT NULL")"
    t_eq "from 3: p_bf is still backfilled" backfilled "$(zdm_phase_of p_bf)"
    zdm_run --json status p_bf
    t_rc "from 3: status works" 0
    t_eq "from 3: status: no rate, no ETA" "null null" \
        "$(jq -r '.plans[0].backfill | "\(.rows_per_second) \(.eta_seconds)"' <<<"$ZOUT")"
    db_sql "DELETE FROM $(hist_t) WHERE action = 'upgrade'" >/dev/null

    t_section "$d: layout 2 (history without reasons): refused until zdm init --upgrade"
    db_sql "UPDATE $(meta) SET value = '$good' WHERE key = 'schema_version'" >/dev/null
    db_sql "UPDATE $(meta) SET value = '$ZVER' WHERE key = 'layout_written_by'" >/dev/null
    make_v2
    every_command_refuses "layout 2" "zdm init --upgrade"
    local rows_before
    rows_before=$(db_sql "SELECT id, action, outcome FROM $(hist_t) ORDER BY id")
    zdm_run init --upgrade
    t_rc "init --upgrade from 2" 0
    t_has "init --upgrade from 2 says so" "upgraded from layout 2 to 4" "$ZOUT"
    t_eq "from 2: meta" "layout_written_by|$ZVER schema_version|4" \
        "$(db_sql "SELECT key, value FROM $(meta) ORDER BY key" | tr '\n' ' ' | sed 's/ $//')"
    t_eq "from 2: the upgrade row" "(state)|upgrade|ok|state layout 2 (written by zdm 0.2.0) -> 4 by zdm $ZVER|" \
        "$(db_sql "SELECT plan_id, action, outcome, detail, reason FROM $(hist_t) WHERE action = 'upgrade'")"
    t_eq "from 2: the old rows kept" "$rows_before" \
        "$(db_sql "SELECT id, action, outcome FROM $(hist_t) WHERE action <> 'upgrade' ORDER BY id")"
    t_eq "from 2: p_bf is still backfilled" backfilled "$(zdm_phase_of p_bf)"
    # a refusal now records its reason (the column is there and written)
    zdm_run cutover p_new
    t_rc "from 2: a refused cutover" 3
    t_eq "from 2: the refusal's reason" "wrong_phase" \
        "$(db_sql "SELECT reason FROM $(hist_t) WHERE plan_id = 'p_new' AND outcome = 'refused'")"
    # (the section below counts one upgrade row: its own)
    db_sql "DELETE FROM $(hist_t) WHERE action = 'upgrade'" >/dev/null

    t_section "$d: an older layout: refused until zdm init --upgrade"
    db_sql "UPDATE $(meta) SET value = '$good' WHERE key = 'schema_version'" >/dev/null
    make_v1
    every_command_refuses "layout 1" "zdm init --upgrade"
    local hist_before
    hist_before=$(db_sql "SELECT count(*) FROM $(hist_t)")
    zdm_run init --upgrade
    t_rc "init --upgrade" 0
    t_has "init --upgrade says so" "upgraded from layout 1 to 4" "$ZOUT"
    t_eq "meta after the upgrade" "layout_written_by|$ZVER schema_version|4" \
        "$(db_sql "SELECT key, value FROM $(meta) ORDER BY key" | tr '\n' ' ' | sed 's/ $//')"
    t_eq "history: one upgrade row" "(state)|upgrade|ok|state layout 1 (written by zdm 0.1.0 or older) -> 4 by zdm $ZVER" \
        "$(db_sql "SELECT plan_id, action, outcome, detail FROM $(hist_t) WHERE action = 'upgrade'")"
    t_eq "history: nothing else written" "$((hist_before + 1))" "$(db_sql "SELECT count(*) FROM $(hist_t)")"
    t_eq "p_bf is still backfilled" backfilled "$(zdm_phase_of p_bf)"
    zdm_run --json init --upgrade
    t_rc "init --upgrade again" 0
    t_eq "init --upgrade again: nothing to do" '{"ok": true, "database": "'"$( [ "$d" = pg ] && echo postgresql || echo sqlite)"'", "state_version": 4}' "$ZOUT"
    t_eq "init --upgrade again: no second history row" 1 \
        "$(db_sql "SELECT count(*) FROM $(hist_t) WHERE action = 'upgrade'")"
    zdm_run advance p_bf
    t_rc "after the upgrade, the plan goes on" 0
    t_eq "after the upgrade: cut_over" cut_over "$(zdm_phase_of p_bf)"
}

run_dialect sqlite
if t_pg_available; then
    t_pg_start
    run_dialect pg
    t_section "pg: two init --upgrade at once upgrade once"
    make_v1
    zdm_bg "$T_DIR/up1" init --upgrade
    j1=$ZBG_JOB
    zdm_bg "$T_DIR/up2" init --upgrade
    j2=$ZBG_JOB
    t_wait_exit "$j1" 60
    r1=$WAIT_RC
    t_wait_exit "$j2" 60
    r2=$WAIT_RC
    t_eq "both exit 0" "0 0" "$r1 $r2"
    t_eq "one upgrade row per upgrade" 2 "$(db_sql "SELECT count(*) FROM zdm.history WHERE action = 'upgrade'")"
    t_eq "the layout is 4" 4 "$(db_sql "SELECT value FROM zdm.meta WHERE key = 'schema_version'")"
else
    T_SKIPPED="$T_SKIPPED postgresql"
fi

t_finish
