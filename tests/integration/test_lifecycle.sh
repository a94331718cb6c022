#!/usr/bin/env bash
# test_lifecycle.sh -- the example plans (plans/0001..0005) through every
# phase with real zdm, on a real SQLite file and a real PostgreSQL:
# requires gate (exit 3), every transition, `zdm check`, the final schema,
# status --json and history --json (who, pid, outcome of each transition),
# and "already complete" (exit 0).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init lifecycle

# Every plan in plans/ (0001..0005 are checked in detail below; any later
# one must reach complete too).
PLANS=()
for f in "$ZDM_SRC"/plans/*.toml; do
    PLANS+=("$(basename "$f" .toml)")
done
NPLANS=${#PLANS[@]}

lifecycle() {
    local d=$1
    db_new "$d" lifecycle
    plans_copy
    local me
    me="$(id -un)@$(hostname)"

    t_section "$d: gates before anything is applied"
    zdm_run check
    t_rc "$d: check on a fresh database" 3
    t_has "$d: check lists the incomplete plans" "$NPLANS of $NPLANS plans not complete" "$ZOUT"

    # Every refusal's text, to count the history rows they must leave.
    local refusal_texts=""
    note_refusal() { refusal_texts+="$1: $(grep -o 'requires plans that are not complete: .*' <<<"$ZERR" | head -n 1)"$'\n'; }
    zdm_run advance 0002_event_type
    t_rc "$d: advance 0002 before 0001 is complete (requires)" 3
    note_refusal 0002_event_type
    t_has "$d: the refusal names the missing plan" "0001_baseline (pending)" "$ZERR"
    t_eq "$d: the refused plan is still pending" pending "$(zdm_phase_of 0002_event_type)"
    t_eq "$d: a refused advance creates no table" 0 "$(db_has_table events)"

    t_section "$d: 0001 one phase at a time"
    local -a phases=(pending expanded backfilled cut_over complete)
    local -a pids=()
    local i plan from to pid
    for i in 0 1 2 3; do
        from=${phases[$i]}
        to=${phases[$((i + 1))]}
        zdm_run advance 0001_baseline
        t_rc "$d: advance 0001 $from -> $to" 0
        t_has "$d: advance 0001 says the transition" "0001_baseline: $from -> $to" "$ZOUT"
        # The log lines carry the pid that must appear in history.
        pid=$(sed -nE 's/.* zdm\[([0-9]+)\] 0001_baseline .*starting:.*/\1/p' <<<"$ZERR" | head -n 1)
        t_ne "$d: the log names the pid of advance 0001 -> $to" "" "$pid"
        pids+=("$pid")
        t_eq "$d: status after advance to $to" "$to" "$(zdm_phase_of 0001_baseline)"
        if [ "$to" = expanded ]; then
            t_eq "$d: expand created events" 1 "$(db_has_table events)"
            t_eq "$d: expand created employees" 1 "$(db_has_table employees)"
            # 0003 requires 0002 which is pending: still refused.
            zdm_run advance 0003_event_type_index
            t_rc "$d: advance 0003 while 0002 is pending" 3
            note_refusal 0003_event_type_index
            t_has "$d: 0003 refusal names 0002" "0002_event_type (pending)" "$ZERR"
            # 0002 requires 0001 complete, not just expanded.
            zdm_run advance 0002_event_type
            t_rc "$d: advance 0002 while 0001 is only expanded" 3
            note_refusal 0002_event_type
            t_has "$d: 0002 refusal names 0001's phase" "0001_baseline (expanded)" "$ZERR"
        fi
    done
    zdm_run advance 0001_baseline
    t_rc "$d: advance a complete plan" 0
    t_has "$d: advance a complete plan says so" "plan 0001_baseline is already complete; nothing to do" "$ZOUT"
    t_eq "$d: still complete" complete "$(zdm_phase_of 0001_baseline)"

    # Application data written between the phases must survive them all.
    db_sql "INSERT INTO events (project_name, legacy_flag) VALUES ('alpha', NULL), ('beta', NULL)" >/dev/null
    db_sql "INSERT INTO employees (name, email) VALUES ('ann', 'ann@example.com')" >/dev/null

    t_section "$d: the other plans through every phase, until zdm check passes"
    # Round after round, advance every plan that is not complete; a plan
    # whose requires are not complete yet may be refused (exit 3).
    local round ph
    for ((round = 0; round < 4 * NPLANS + 1; round++)); do
        zdm_run check
        [ "$ZRC" = 0 ] && break
        t_rc "$d: check while plans are incomplete" 3
        for plan in "${PLANS[@]:1}"; do
            ph=$(zdm_phase_of "$plan")
            [ "$ph" = complete ] && continue
            zdm_run advance "$plan"
            if [ "$ZRC" = 3 ] && grep -qF "requires plans that are not complete" <<<"$ZERR"; then
                note_refusal "$plan"
                continue
            fi
            t_rc "$d: advance $plan from $ph" 0
            t_match "$d: advance $plan says the transition" "^$plan: $ph -> " "$ZOUT"
        done
    done
    zdm_run check
    t_rc "$d: check once every plan is complete" 0
    t_has "$d: check output" "all $NPLANS plans complete" "$ZOUT"

    t_section "$d: final schema"
    local cols name_col
    # employees.name, or what a later plan renamed it to (0008: full_name)
    name_col=$(db_columns employees | grep -x -e name -e full_name | tail -n 1)
    cols=$(db_columns events | tr '\n' ' ')
    t_match "$d: events columns: 0001's but legacy_flag, then event_type" \
        "^id project_name created_at event_type " "$cols"
    t_lacks "$d: legacy_flag dropped" "legacy_flag" "$cols"
    t_eq "$d: events_event_type_idx exists" 1 "$(db_has_index events_event_type_idx)"
    t_eq "$d: events rows kept" 2 "$(db_sql 'SELECT count(*) FROM events')"
    if [ -f "$T_PLANS/0006_event_category.toml" ]; then
        t_eq "$d: 0006's backfill filled category" "alpha=other beta=other " \
            "$(db_sql "SELECT project_name || '=' || coalesce(category, 'NULL') FROM events ORDER BY id" | tr '\n' ' ')"
    fi
    if [ "$d" = pg ]; then
        t_eq "$d: employees.email is NOT NULL" "NO" \
            "$(db_sql "SELECT is_nullable FROM information_schema.columns
                        WHERE table_name = 'employees' AND column_name = 'email'")"
        t_eq "$d: the helper CHECK is gone" 0 \
            "$(db_sql "SELECT count(*) FROM pg_constraint WHERE conname = 'employees_email_not_null'")"
        t_eq "$d: the index is valid" t \
            "$(db_sql "SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_event_type_idx'::regclass")"
        t_eq "$d: event_type is varchar(20)" "character varying|20" \
            "$(db_sql "SELECT data_type, character_maximum_length FROM information_schema.columns
                        WHERE table_name = 'events' AND column_name = 'event_type'")"
        local got
        got=$(pg_psql -d "$T_PG_URL" -c "INSERT INTO employees ($name_col) VALUES ('bob')" 2>&1)
        t_has "$d: a NULL email is refused" 'null value in column "email"' "$got"
    else
        t_eq "$d: event_type is varchar(20)" "varchar(20)" \
            "$(db_sql "SELECT type FROM pragma_table_info('events') WHERE name = 'event_type'")"
        t_eq "$d: the NOT NULL triggers exist" 2 \
            "$(db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
                        AND name LIKE 'employees_email_not_null_%'")"
        local got
        got=$(sqlite3 "$T_SQLITE_FILE" "INSERT INTO employees ($name_col) VALUES ('bob')" 2>&1)
        t_has "$d: a NULL email is refused" "employees.email may not be NULL" "$got"
        t_has "$d: legacy_flag gone from the table definition" "CREATE TABLE" \
            "$(db_sql "SELECT sql FROM sqlite_master WHERE name = 'events'")"
        t_lacks "$d: legacy_flag gone from the table definition" "legacy_flag" \
            "$(db_sql "SELECT sql FROM sqlite_master WHERE name = 'events'")"
    fi

    t_section "$d: status --json"
    zdm_run --json status
    t_rc "$d: status --json" 0
    local st
    st=$(jq -r '.plans[] | "\(.id)=\(.phase) checksum_ok=\(.checksum_ok) next=\(.next)"' <<<"$ZOUT")
    for plan in "${PLANS[@]}"; do
        t_has "$d: status --json of $plan" "$plan=complete checksum_ok=true next=none" "$st"
    done
    t_eq "$d: status --json lists every plan" "$NPLANS" "$(jq '.plans | length' <<<"$ZOUT")"
    t_eq "$d: every plan has a since and a cutover time" 0 \
        "$(jq '[.plans[] | select(.since == null or .cutover_at == null)] | length' <<<"$ZOUT")"

    t_section "$d: history --json"
    zdm_run --json history
    t_rc "$d: history --json" 0
    local hist=$ZOUT
    local rows
    for plan in "${PLANS[@]}"; do
        rows=$(jq -r --arg p "$plan" '.history[] | select(.plan == $p and .action == "advance"
                 and .outcome == "ok") | "\(.from)->\(.to)"' <<<"$hist" | tr '\n' ' ')
        t_eq "$d: history of $plan: every transition, in order" \
            "pending->expanded expanded->backfilled backfilled->cut_over cut_over->complete " "$rows"
    done
    t_eq "$d: every history row names who ran it" 0 \
        "$(jq --arg me "$me" '[.history[] | select(.who != $me)] | length' <<<"$hist")"
    t_eq "$d: every history row has a pid and a time" 0 \
        "$(jq '[.history[] | select((.pid | type) != "number" or .pid <= 0 or .at == null)] | length' <<<"$hist")"
    t_eq "$d: no history row is left running" 0 \
        "$(jq '[.history[] | select(.outcome == "running")] | length' <<<"$hist")"
    rows=$(jq -r '.history[] | select(.plan == "0001_baseline" and .action == "advance"
             and .outcome == "ok") | .pid' <<<"$hist" | tr '\n' ' ')
    t_eq "$d: the pids in history are those of the runs" "${pids[*]} " "$rows"
    # The refusals are history too: who tried what and why.
    rows=$(jq -r '.history[] | select(.outcome == "refused") | "\(.plan) \(.action) \(.from)->\(.to): \(.detail)"' <<<"$hist")
    t_has "$d: refused 0002 recorded" "0002_event_type advance pending->expanded: plan 0002_event_type requires plans that are not complete: 0001_baseline (pending)" "$rows"
    t_has "$d: refused 0003 recorded" "0003_event_type_index advance pending->expanded: plan 0003_event_type_index requires plans that are not complete: 0002_event_type (pending)" "$rows"
    # Repeats of one refusal (same plan, transition, reason and text) fold
    # into one row, "[repeated N times ...]"; a refusal whose text changed
    # (0001 pending, then expanded) is a row of its own.
    t_eq "$d: exactly the refusals seen, one row per distinct refusal" \
        "$(sort -u <<<"$refusal_texts" | grep -c .)" "$(grep -c . <<<"$rows")"
    t_has "$d: 0002 refused while 0001 was pending" "0001_baseline (pending)" "$rows"
    # The plain form shows the same rows.
    zdm_run history 0001_baseline
    t_rc "$d: history PLAN" 0
    t_eq "$d: history 0001 has its four transitions" 4 \
        "$(grep -cE "0001_baseline +advance +[a-z_]+ -> [a-z_]+ +ok +$me pid [0-9]+" <<<"$ZOUT")"
    t_lacks "$d: history 0001 shows no other plan" "0002_event_type" "$ZOUT"
    # A name that is no plan (a typo) is an error, not an empty history.
    zdm_run history 0001_baselin
    t_rc "$d: history of a plan that does not exist" 2
    t_has "$d: ... naming it and the known plans" 'no plan "0001_baselin" in' "$ZERR"
    t_has "$d: ... listing them" "known plans: 0001_baseline" "$ZERR"
}

lifecycle sqlite
t_with_pg lifecycle pg
t_finish
