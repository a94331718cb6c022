#!/usr/bin/env bash
# test_latency_probe_pg.sh -- PostgreSQL: the latency probe runs on a
# connection of its own DURING the batches, so what a batch does to the
# application makes the worker back off.  A probe timed between batches
# (as before) never sees a batch: here the plan's probe_query waits for a
# row the running batch holds (FOR SHARE on the next unconverted row), so
# it is slow exactly while a batch runs and quick between batches; the
# batches are made long with a trigger that sleeps 1 ms a row.  The worker
# must report the back-off (pacer "latency" with a gap between batches)
# and still convert every row.  Nothing is timed: the assertions are on
# what the worker decided, never on how long anything took.
#  * the default probe (a commit, on its own connection) is logged with
#    the bound, and the backfill converts every row;
#  * max_latency_factor = 0: no probe, no probe connection.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init latency_probe_pg

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    exit 77
fi
t_pg_start

plan_body() { # $1: extra throttle lines
    printf '%s\n%s\n' '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
batch_size = 50
min_batch_size = 50
target_batch_ms = 0' "$1"
}

new_table() { # $1: rows
    db_sql "CREATE TABLE t (id bigint PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO t SELECT i, i FROM generate_series(1, $1) i" >/dev/null
    db_sql "ANALYZE t" >/dev/null
}

t_section "a probe slow during the batches makes the worker back off"
db_new pg lat_probe
plans_empty
new_table 600
# 1 ms a row: a 50-row batch holds its rows for at least 50 ms
db_sql "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END \$\$" >/dev/null
db_sql "CREATE TRIGGER slow_row BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION slow_row()" >/dev/null
plan_write p_probe "$(plan_body 'probe_query = "SELECT 1 FROM t WHERE id = (SELECT min(id) FROM t WHERE b IS NULL) FOR SHARE"')"
zdm_run advance p_probe
t_rc "expand" 0
zdm_run -v advance p_probe
t_rc "backfilled" 0
t_match "the probe runs on its own connection during the batches" "latency probe idle: [0-9.]+ ms; batches keep its p99 under [0-9.]+ ms \\(max_latency_factor 1.5\\); the probe: probe_query on a connection of its own, every [0-9]+ ms during the batches too" "$ZERR"
t_match "the worker backed off: pacer latency, a gap between batches" "pacer latency \\(latency gap [1-9][0-9]* ms" "$ZERR"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"

t_section "the default probe: a commit on its own connection"
db_new pg lat_commit
plans_empty
new_table 3000
plan_write p_commit "$(plan_body '')"
zdm_run advance p_commit
t_rc "expand" 0
zdm_run -v advance p_commit
t_rc "backfilled" 0
t_match "logs the commit probe and the bound" "latency probe idle: [0-9.]+ ms; batches keep its p99 under [0-9.]+ ms \\(max_latency_factor 1.5\\); the probe: a commit on a connection of its own" "$ZERR"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"

t_section "unthrottled: no probe"
db_new pg lat_off
plans_empty
new_table 1000
plan_write p_off "$(plan_body 'max_latency_factor = 0')"
zdm_run advance p_off
t_rc "expand" 0
zdm_run -v advance p_off
t_rc "backfilled" 0
t_lacks "no probe logged" "latency probe idle" "$ZERR"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"
t_finish
