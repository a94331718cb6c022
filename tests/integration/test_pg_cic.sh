#!/usr/bin/env bash
# test_pg_cic.sh -- CREATE INDEX CONCURRENTLY that fails half-way leaves an
# INVALID index behind (PostgreSQL does not remove it); zdm drops it.
#  1. A UNIQUE index built CONCURRENTLY on a column with duplicates: advance
#     exits 1, no INVALID index remains (pg_index.indisvalid), the step is
#     left to be retried; once the data is fixed, advance succeeds.
#  2. The run dies while the build waits (kill -9 of zdm, then its backend
#     is terminated, as when the connection is lost): the INVALID index
#     stays; the next advance says the step was interrupted, drops the
#     INVALID index and builds it again (IF NOT EXISTS would otherwise
#     skip it and leave the INVALID one in place).
# A control run by hand first shows that the failure does leave an INVALID
# index, so "none remains" is zdm's doing.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init pg_cic
if ! t_pg_available; then
    echo "pg_cic: no PostgreSQL server binaries: skipping" >&2
    exit 77
fi
t_pg_start

invalid_indexes() {
    db_sql "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE NOT i.indisvalid AND c.relname NOT LIKE 'pg_%'"
}
index_state() {
    db_sql "SELECT CASE WHEN i.indisvalid THEN 'valid' ELSE 'INVALID' END
                   || CASE WHEN i.indisunique THEN ' unique' ELSE '' END
              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = '$1'"
}

db_new pg cic
plans_copy 0001_baseline
zdm_complete 0001_baseline
db_sql "INSERT INTO events (project_name) VALUES ('dup'), ('dup'), ('solo')" >/dev/null

t_section "control: a failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index"
out=$(pg_psql -d "$T_PG_URL" -c "CREATE UNIQUE INDEX CONCURRENTLY ctl_idx ON events (project_name)" 2>&1)
t_has "control: the build fails" "could not create unique index" "$out"
t_eq "control: an INVALID index is left" "INVALID unique" "$(index_state ctl_idx)"
db_sql "DROP INDEX ctl_idx" >/dev/null

t_section "unique index on duplicates: fails, no INVALID index left, retried once fixed"
plan_write 0500_unique_name '
requires = ["0001_baseline"]

[[expand.steps]]
sql  = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_project_name_key ON events (project_name)"
down = "DROP INDEX CONCURRENTLY IF EXISTS events_project_name_key"
'
zdm_run advance 0500_unique_name
t_rc "advance with duplicates" 1
t_has "the error is PostgreSQL's" "could not create unique index \"events_project_name_key\"" "$ZERR"
t_has "the error shows the duplicate" "Key (project_name)=(dup) is duplicated" "$ZERR"
t_has "zdm says it drops the INVALID index" \
    "dropping INVALID index public.events_project_name_key left by an interrupted CREATE INDEX CONCURRENTLY" "$ZERR"
t_eq "no INVALID index remains" 0 "$(invalid_indexes)"
t_eq "the index is gone altogether" "" "$(index_state events_project_name_key)"
t_eq "still pending" pending "$(zdm_phase_of 0500_unique_name)"
zdm_run --json history 0500_unique_name
t_eq "history: failed" "advance failed" "$(jq -r '.history[-1] | "\(.action) \(.outcome)"' <<<"$ZOUT")"
t_has "history: the reason" "could not create unique index" "$(jq -r '.history[-1].detail' <<<"$ZOUT")"

db_sql "UPDATE events SET project_name = project_name || '-' || id WHERE project_name = 'dup'" >/dev/null
zdm_run advance 0500_unique_name
t_rc "advance once the duplicates are fixed" 0
t_has "expanded" "0500_unique_name: pending -> expanded" "$ZOUT"
t_eq "the index is valid and unique" "valid unique" "$(index_state events_project_name_key)"
t_eq "no INVALID index" 0 "$(invalid_indexes)"

t_section "the run dies during the build: the next run drops the INVALID index and builds again"
plan_write 0501_created_at_idx '
requires = ["0001_baseline"]

[[expand.steps]]
sql  = "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_created_at_idx ON events (created_at)"
down = "DROP INDEX CONCURRENTLY IF EXISTS events_created_at_idx"
'
# A writer's open transaction: the concurrent build waits for it after it
# has created the (still INVALID) index.
pg_session_start writer
pg_session_send writer "BEGIN; INSERT INTO events (project_name) VALUES ('in flight');"
t_wait_for "the writer's lock" 30 '[ "$(pg_session_locks writer events)" -ge 1 ]'
zdm_bg "$T_DIR/cic" advance 0501_created_at_idx
cic_pid=$ZBG_PID
cic_job=$ZBG_JOB
t_wait_for "the build to wait with its INVALID index" 60 '[ "$(index_state events_created_at_idx)" = INVALID ]'
kill -9 "$cic_pid"
t_wait_exit "$cic_job" 30
zdm_bg_collect "$T_DIR/cic" "advance 0501_created_at_idx (killed)"
# The backend would go on once the writer ends; a lost connection ends it.
t_eq "zdm's backend terminated" t \
    "$(db_sql "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'zdm'")"
t_wait_for "zdm's backend to end" 30 \
    '[ "$(db_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = '\''zdm'\''")" = 0 ]'
pg_session_end writer
t_eq "an INVALID index is left behind" INVALID "$(index_state events_created_at_idx)"
t_eq "the step is recorded running" running \
    "$(db_sql "SELECT status FROM zdm.steps WHERE plan_id = '0501_created_at_idx'")"

zdm_run advance 0501_created_at_idx
t_rc "advance after the interrupted build" 0
t_has "says the step was interrupted" "step 1 was interrupted during a previous run; running it again" "$ZERR"
t_has "drops the INVALID index" "dropping INVALID index public.events_created_at_idx" "$ZERR"
t_eq "the index is valid now" valid "$(index_state events_created_at_idx)"
t_eq "no INVALID index" 0 "$(invalid_indexes)"
t_eq "exactly one such index" 1 "$(db_has_index events_created_at_idx)"

t_finish
