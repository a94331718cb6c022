#!/usr/bin/env bash
# test_latency_pacing.sh -- the latency pacing knobs (SQLite; the
# mechanism's arithmetic is in tests/unit/test_pacer.c, its effect on an
# application in tests/bench/zero-downtime.sh, never timed here):
#  * max_latency_factor is checked (0 or 1..100, a number) with file:line:col,
#    plan show --json shows the knobs with their defaults;
#  * zdm set takes max_latency_factor and max_lock_ms live, refuses bad ones;
#  * the probe runs before the first batch: a failing probe_query stops the
#    worker before it converts a row, and says what to do; with
#    max_latency_factor=0 (zdm set) no probe runs and the backfill finishes.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init latency_pacing

plan_body() { # $1: extra throttle lines
    printf '%s\n%s\n' '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
batch_size = 100
target_batch_ms = 0' "$1"
}

t_section "plan keys: checked, shown"
db_new sqlite lat_db
plans_empty
plan_write p_bad "$(plan_body 'max_latency_factor = 0.5')"
zdm_run plan validate "$T_PLANS/p_bad.toml"
t_rc "factor 0.5 refused" 2
t_match "names file:line:col and the range" "p_bad.toml:[0-9]+:[0-9]+: .*max_latency_factor = 0.5 is out of range" "$ZERR$ZOUT"
plan_write p_bad "$(plan_body 'max_latency_factor = "fast"')"
zdm_run plan validate "$T_PLANS/p_bad.toml"
t_rc "a string refused" 2
t_has "says a number" "max_latency_factor must be a number" "$ZERR$ZOUT"
rm -f "$T_PLANS/p_bad.toml"
plan_write p_lat "$(plan_body 'max_latency_factor = 2
max_lock_ms = 40')"
zdm_run plan validate "$T_PLANS/p_lat.toml"
t_rc "2 and max_lock_ms accepted" 0
zdm_run --json plan show p_lat
t_eq "plan show: factor" "2" "$(jq -r '.backfill.throttle.max_latency_factor' <<<"$ZOUT")"
t_eq "plan show: max_lock_ms" "40" "$(jq -r '.backfill.throttle.max_lock_ms' <<<"$ZOUT")"
plan_write p_lat "$(plan_body 'probe_query = "SELECT no_such_column FROM t"')"
zdm_run --json plan show p_lat
t_eq "default factor 1.5" "1.5" "$(jq -r '.backfill.throttle.max_latency_factor' <<<"$ZOUT")"
t_eq "default max_lock_ms 100" "100" "$(jq -r '.backfill.throttle.max_lock_ms' <<<"$ZOUT")"

t_section "a failing probe stops the worker before its first batch"
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
db_sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t SELECT i, i FROM n" >/dev/null
zdm_run advance p_lat
t_rc "expand" 0
zdm_run backfill p_lat
t_rc "backfill fails" 1
t_has "names probe_query" "probe_query" "$ZERR"
t_has "says how to run without it" "max_latency_factor = 0" "$ZERR"
t_eq "no row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT NULL")"

t_section "zdm set: live knobs"
zdm_run set p_lat max_latency_factor=0.9
t_rc "0.9 refused" 2
zdm_run set p_lat max_lock_ms=-1
t_rc "negative max_lock_ms refused" 2
zdm_run set p_lat max_latency_factor=2.5 max_lock_ms=50
t_rc "accepted" 0
zdm_run --json status p_lat
t_eq "overrides" '{"max_latency_factor":2.5,"max_lock_ms":50}' "$(jq -c '.plans[0].backfill.overrides' <<<"$ZOUT")"
t_eq "effective settings: factor" "2.5" "$(jq -r '.plans[0].backfill.settings.max_latency_factor' <<<"$ZOUT")"
t_eq "effective settings: max_lock_ms" "50" "$(jq -r '.plans[0].backfill.settings.max_lock_ms' <<<"$ZOUT")"
zdm_run status p_lat
t_has "status text: the factor as set (not 0)" "max_latency_factor=2.5 max_lock_ms=50" "$ZOUT"
zdm_run plan show p_lat
t_has "plan show --db text: the factor as set" "max_latency_factor=2.5 max_lock_ms=50" "$ZOUT"
zdm_run backfill p_lat
t_rc "the probe still fails with a factor of 2.5" 1
zdm_run set p_lat max_latency_factor=0
t_rc "0 (unthrottled) accepted" 0
zdm_run backfill p_lat
t_rc "without latency pacing no probe runs: the backfill finishes" 0
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"
t_lacks "no probe logged" "latency probe idle" "$ZERR"

t_section "the default probe (the write lock) measures a baseline"
db_new sqlite lat_db2
plans_empty
plan_write p_ok "$(plan_body '')"
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
db_sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO t SELECT i, i FROM n" >/dev/null
zdm_run advance p_ok
t_rc "expand" 0
zdm_run advance p_ok
t_rc "backfilled" 0
t_match "logs the idle probe and the bound" "latency probe idle: [0-9.]+ ms; batches keep its p99 under [0-9.]+ ms \\(max_latency_factor 1.5\\), the write lock left free" "$ZERR"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"

t_section "PostgreSQL: the round-trip probe, and the blocked-session count in every batch"
if t_pg_available; then
    t_pg_start
    db_new pg lat_pg
    plans_empty
    plan_write p_pg "$(plan_body '')"
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO t SELECT i, i FROM generate_series(1, 3000) i" >/dev/null
    zdm_run advance p_pg
    t_rc "expand" 0
    zdm_run -v advance p_pg
    t_rc "backfilled" 0
    t_match "logs the idle probe and the bound" "latency probe idle: [0-9.]+ ms; batches keep its p99 under [0-9.]+ ms \\(max_latency_factor 1.5\\)" "$ZERR"
    t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"
else
    t_note "no PostgreSQL server binaries: PostgreSQL part skipped"
fi
t_finish
