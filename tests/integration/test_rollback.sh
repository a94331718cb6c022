#!/usr/bin/env bash
# test_rollback.sh -- zdm rollback on SQLite and PostgreSQL:
#  * rolling back 0003 and 0002 (applied on top of 0001) restores the
#    catalog exactly (pg_dump --schema-only / sqlite_master + table_info);
#  * an applied expand step without a down: refused (exit 3) and nothing
#    changes;
#  * a complete plan whose contract steps have downs goes back to cut_over
#    (and can be advanced again); one without downs is refused.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init rollback

rollback_exact() {
    local d=$1
    t_section "$d: rollback restores the catalog exactly"
    db_new "$d" rb_exact
    plans_copy 0001_baseline 0002_event_type 0003_event_type_index
    zdm_complete 0001_baseline
    db_sql "INSERT INTO events (project_name) VALUES ('kept')" >/dev/null
    db_dump "$T_DIR/$d-before.sql"

    zdm_run rollback 0002_event_type
    t_rc "$d: rollback of a pending plan" 0
    t_has "$d: rollback of a pending plan says so" "plan 0002_event_type is pending; nothing to roll back" "$ZOUT"

    zdm_complete 0002_event_type
    zdm_run advance 0003_event_type_index
    t_rc "$d: advance 0003 to expanded" 0
    db_dump "$T_DIR/$d-expanded.sql"
    # The dumps must see the change, or an empty diff below proves nothing.
    t_has "$d: the dump shows event_type" "event_type" "$(cat "$T_DIR/$d-expanded.sql")"
    t_has "$d: the dump shows the index" "events_event_type_idx" "$(cat "$T_DIR/$d-expanded.sql")"

    zdm_run rollback 0003_event_type_index
    t_rc "$d: rollback 0003" 0
    t_has "$d: rollback 0003 output" "0003_event_type_index: expanded -> rolled_back" "$ZOUT"
    t_eq "$d: index dropped" 0 "$(db_has_index events_event_type_idx)"
    t_eq "$d: 0003 rolled_back" rolled_back "$(zdm_phase_of 0003_event_type_index)"

    # 0002 is complete: the first rollback undoes contract (none), the
    # second undoes expand.
    zdm_run rollback 0002_event_type
    t_rc "$d: rollback 0002 from complete" 0
    t_has "$d: rollback 0002 from complete goes to cut_over" "0002_event_type: complete -> cut_over" "$ZOUT"
    t_has "$d: and says how to go on" 'run "zdm rollback 0002_event_type" again to undo expand' "$ZOUT"
    t_has "$d: contract undo changes no column" "event_type" "$(db_columns events)"
    # cut_over: traffic is on the new version; only --force undoes expand.
    zdm_run rollback 0002_event_type
    t_rc "$d: rollback 0002 from cut_over without --force" 3
    t_has "$d: the refusal says why" "it is cut_over, so traffic already runs on the new version" "$ZERR"
    t_eq "$d: still cut_over" cut_over "$(zdm_phase_of 0002_event_type)"
    zdm_run rollback 0002_event_type --force
    t_rc "$d: rollback 0002 from cut_over" 0
    t_has "$d: rollback 0002 output" "0002_event_type: cut_over -> rolled_back" "$ZOUT"

    db_dump "$T_DIR/$d-after.sql"
    t_same_file "$d: catalog after rollback vs before expand" "$T_DIR/$d-before.sql" "$T_DIR/$d-after.sql"
    t_eq "$d: rows kept through expand and rollback" kept "$(db_sql 'SELECT project_name FROM events')"

    zdm_run --json history
    t_eq "$d: history has the three rollbacks, ok" \
        "0003_event_type_index expanded->rolled_back 0002_event_type complete->cut_over 0002_event_type cut_over->rolled_back " \
        "$(jq -r '.history[] | select(.action == "rollback" and .outcome == "ok") | "\(.plan) \(.from)->\(.to)"' <<<"$ZOUT" | tr '\n' ' ')"

    # A rolled back plan can be applied again: its steps are not "done".
    zdm_run advance 0002_event_type
    t_rc "$d: advance 0002 again after rollback" 0
    t_has "$d: advance after rollback output" "0002_event_type: rolled_back -> expanded" "$ZOUT"
    t_has "$d: event_type back" "event_type" "$(db_columns events)"
}

rollback_refused() {
    local d=$1
    t_section "$d: rollback refused when an applied expand step has no down"
    db_new "$d" rb_refused
    plans_copy 0001_baseline
    plan_write 0100_no_down '
description = "two tables, the second without a down"
requires = ["0001_baseline"]

[[expand.steps]]
sql  = "CREATE TABLE t1 (x integer)"
down = "DROP TABLE t1"

[[expand.steps]]
sql  = "CREATE TABLE t2 (x integer)"
'
    zdm_complete 0001_baseline
    zdm_run advance 0100_no_down
    t_rc "$d: advance 0100 to expanded" 0
    db_dump "$T_DIR/$d-nodown-before.sql"
    local hist_before
    hist_before=$(db_sql "SELECT count(*) FROM $( [ "$d" = pg ] && echo zdm.steps || echo zdm_steps ) WHERE status = 'done'")

    zdm_run rollback 0100_no_down
    t_rc "$d: rollback with a step without down" 3
    t_match "$d: the refusal names the step" 'expand step 2 \(.*0100_no_down\.toml:[0-9]+\) has no "down": rollback refused, nothing was changed' "$ZERR"
    db_dump "$T_DIR/$d-nodown-after.sql"
    t_same_file "$d: nothing changed by the refused rollback" "$T_DIR/$d-nodown-before.sql" "$T_DIR/$d-nodown-after.sql"
    t_eq "$d: t1 (which has a down) still there" 1 "$(db_has_table t1)"
    t_eq "$d: still expanded" expanded "$(zdm_phase_of 0100_no_down)"
    t_eq "$d: steps still recorded done" "$hist_before" \
        "$(db_sql "SELECT count(*) FROM $( [ "$d" = pg ] && echo zdm.steps || echo zdm_steps ) WHERE status = 'done'")"
    zdm_run --json history 0100_no_down
    t_eq "$d: history records the refused rollback" "rollback expanded->rolled_back refused" \
        "$(jq -r '.history[-1] | "\(.action) \(.from)->\(.to) \(.outcome)"' <<<"$ZOUT")"
    t_has "$d: refusal detail" 'has no "down"' "$(jq -r '.history[-1].detail' <<<"$ZOUT")"
    zdm_run rollback --dry-run 0100_no_down
    t_rc "$d: rollback --dry-run is refused too" 3
}

rollback_contract() {
    local d=$1
    t_section "$d: rollback of a complete plan with contract downs"
    db_new "$d" rb_contract
    plans_copy 0001_baseline 0004_employee_email_required 0005_drop_legacy_flag
    zdm_complete 0001_baseline
    zdm_complete 0005_drop_legacy_flag
    t_lacks "$d: legacy_flag dropped by contract" legacy_flag "$(db_columns events)"

    zdm_run rollback 0005_drop_legacy_flag
    t_rc "$d: rollback of complete 0005" 0
    t_has "$d: back to cut_over" "0005_drop_legacy_flag: complete -> cut_over" "$ZOUT"
    t_eq "$d: 0005 is cut_over" cut_over "$(zdm_phase_of 0005_drop_legacy_flag)"
    if [ "$d" = pg ]; then
        t_eq "$d: legacy_flag restored as boolean" boolean \
            "$(db_sql "SELECT data_type FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'legacy_flag'")"
    else
        t_eq "$d: legacy_flag restored as integer" integer \
            "$(db_sql "SELECT lower(type) FROM pragma_table_info('events') WHERE name = 'legacy_flag'")"
    fi
    # The contract runs again (its steps were undone, not skipped).
    zdm_run advance 0005_drop_legacy_flag
    t_rc "$d: contract again" 0
    t_has "$d: contract again output" "0005_drop_legacy_flag: cut_over -> complete" "$ZOUT"
    t_lacks "$d: legacy_flag dropped again" legacy_flag "$(db_columns events)"

    if [ "$d" = pg ]; then
        zdm_complete 0004_employee_email_required
        t_eq "$d: email NOT NULL after 0004" NO \
            "$(db_sql "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'employees' AND column_name = 'email'")"
        zdm_run rollback 0004_employee_email_required
        t_rc "$d: rollback of complete 0004" 0
        t_eq "$d: email nullable again" YES \
            "$(db_sql "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'employees' AND column_name = 'email'")"
        t_eq "$d: the helper CHECK is back, NOT VALID" f \
            "$(db_sql "SELECT convalidated FROM pg_constraint WHERE conname = 'employees_email_not_null'")"
    fi

    t_section "$d: rollback of a complete plan whose contract has no down"
    plan_write 0101_contract_no_down '
requires = ["0001_baseline"]

[[contract.steps]]
sql = "ALTER TABLE employees DROP COLUMN email"
'
    zdm_complete 0101_contract_no_down
    db_dump "$T_DIR/$d-cnd-before.sql"
    zdm_run rollback 0101_contract_no_down
    t_rc "$d: rollback of a contract without down" 3
    t_match "$d: refusal names the contract step" 'contract step 1 \(.*0101_contract_no_down\.toml:[0-9]+\) has no "down"' "$ZERR"
    t_eq "$d: still complete" complete "$(zdm_phase_of 0101_contract_no_down)"
    db_dump "$T_DIR/$d-cnd-after.sql"
    t_same_file "$d: nothing changed" "$T_DIR/$d-cnd-before.sql" "$T_DIR/$d-cnd-after.sql"
}

for_dialect() {
    rollback_exact "$1"
    rollback_refused "$1"
    rollback_contract "$1"
}

for_dialect sqlite
t_with_pg for_dialect pg
t_finish
