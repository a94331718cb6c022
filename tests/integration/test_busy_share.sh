#!/usr/bin/env bash
# test_busy_share.sh -- the busy share of latency pacing (PostgreSQL;
# pacer.h "Busy share"; its effect on an application's p99 is measured by
# tests/bench/zero-downtime.sh, never timed here):
#  * max_duty_percent is checked (1..100) with file:line:col, plan show
#    --json shows the default, zdm set takes it live and refuses 0 and 101;
#  * with no other session at work the share is lifted once the readings
#    of the first seconds (none yet counts as busy) saw nobody: the last
#    batches of -v say nothing of it;
#  * while another session works (a psql loop, application_name "app"),
#    every batch line says so, and the pause it announces is at least
#    the batch's time x (100 - pct) / pct -- the invariant, batch by batch;
#  * with max_latency_factor = 0 (unthrottled) the share is off whatever
#    works beside it;
#  * every row converted in each case.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init busy_share

if ! t_pg_available; then
    t_note "no PostgreSQL server binaries: skipped"
    t_finish
    exit $?
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
[backfill.throttle]' "$1"
}

# fresh NAME ROWS EXTRA: a database, table t of ROWS rows, plan NAME expanded
fresh() {
    db_new pg "$1"
    plans_empty
    plan_write "$1" "$(plan_body "$3")"
    db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
    db_sql "INSERT INTO t SELECT i, i FROM generate_series(1, $2) i" >/dev/null
    zdm_run advance "$1"
    t_rc "$1: expand" 0
}

# The application: a session that never stops running short statements
# (the pg_sleep makes it visible to every activity reading).
APP_PID=
app_start() {
    (
        export PGAPPNAME=app
        while :; do
            pg_psql -d "$T_PG_URL" -c "SELECT pg_sleep(0.05)" >/dev/null 2>&1 || sleep 0.05
        done
    ) &
    APP_PID=$!
}
app_stop() {
    [ -n "$APP_PID" ] || return 0
    kill "$APP_PID" 2>/dev/null
    wait "$APP_PID" 2>/dev/null
    APP_PID=
}
t_at_exit app_stop

# batch_lines LOG: the -v lines of the batches (LOG: the text)
batch_lines() { grep -E 'range [0-9]+: [0-9]+ keys, [0-9]+ rows converted in [0-9]+ ms' <<<"$1"; }

# share_violations LOG PCT: batch lines that name the share but announce a
# pause shorter than ms x (100 - PCT) / PCT
share_violations() {
    batch_lines "$1" | grep 'another session works' |
        sed -nE 's/.* converted in ([0-9]+) ms;.* next in ([0-9]+) ms.*/\1 \2/p' |
        awk -v p="$2" '{ want = int($1 * (100 - p) / p); if ($2 < want) bad++ } END { print bad + 0 }'
}

t_section "plan key: checked, shown, live"
db_new pg bs_keys
plans_empty
plan_write p_bad "$(plan_body 'max_duty_percent = 0')"
zdm_run plan validate "$T_PLANS/p_bad.toml"
t_rc "0 refused" 2
t_match "names file:line:col" "p_bad.toml:[0-9]+:[0-9]+: .*max_duty_percent" "$ZERR$ZOUT"
plan_write p_bad "$(plan_body 'max_duty_percent = 101')"
zdm_run plan validate "$T_PLANS/p_bad.toml"
t_rc "101 refused" 2
rm -f "$T_PLANS/p_bad.toml"
plan_write p_keys "$(plan_body '')"
zdm_run --json plan show p_keys
t_eq "default 5" "5" "$(jq -r '.backfill.throttle.max_duty_percent' <<<"$ZOUT")"
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer)" >/dev/null
zdm_run advance p_keys
t_rc "expand" 0
zdm_run set p_keys max_duty_percent=0
t_rc "zdm set 0 refused" 2
zdm_run set p_keys max_duty_percent=101
t_rc "zdm set 101 refused" 2
zdm_run set p_keys max_duty_percent=40
t_rc "zdm set 40 accepted" 0
zdm_run --json status p_keys
t_eq "effective setting" "40" "$(jq -r '.plans[0].backfill.settings.max_duty_percent' <<<"$ZOUT")"

t_section "nobody else works: the share is lifted"
fresh p_idle 40000 'batch_size = 200
target_batch_ms = 0
max_duty_percent = 10'
zdm_run -v backfill p_idle
t_rc "backfill" 0
t_cmp "batches logged" "$(batch_lines "$ZERR" | wc -l)" -gt 10
t_eq "none of the last 30 batch lines names the share" "0" \
    "$(batch_lines "$ZERR" | tail -n 30 | grep -c 'another session works')"
t_has "the start line names the share" "batches run at most 10% of the time" "$ZERR"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"

t_section "another session works: every batch leaves the rest of the time to it"
fresh p_app 20000 'batch_size = 200
target_batch_ms = 0
max_duty_percent = 20'
app_start
sleep 0.5
zdm_run -v backfill p_app
t_rc "backfill" 0
app_stop
n=$(batch_lines "$ZERR" | wc -l)
shared=$(batch_lines "$ZERR" | grep -c 'another session works: batches at most 20% of the time')
t_cmp "batches logged" "$n" -gt 10
# the first readings arrive with the first batches; from then on the share holds
t_cmp "(almost) every batch line names the share ($shared of $n)" "$shared" -ge $((n - 3))
t_eq "each announced pause >= ms x 80 / 20" "0" "$(share_violations "$ZERR" 20)"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"

t_section "unthrottled: the share is off while another session works"
fresh p_un 5000 'batch_size = 200
target_batch_ms = 0
max_latency_factor = 0
max_duty_percent = 10'
app_start
sleep 0.5
zdm_run -v backfill p_un
t_rc "backfill" 0
app_stop
t_eq "no batch line names the share" "0" "$(batch_lines "$ZERR" | grep -c 'another session works')"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS DISTINCT FROM a")"

t_finish
