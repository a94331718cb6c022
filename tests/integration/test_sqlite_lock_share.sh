#!/usr/bin/env bash
# test_sqlite_lock_share.sh -- on SQLite the backfill holds the one write
# lock a bounded share of the time while another connection writes
# (pacer.h).  Nothing here is timed: the checks are on what the worker
# logs per batch (-v), the lock time it measured and the pause it chose,
# whatever they are on this host:
#  * while an application commits, every batch after the probe saw it is
#    followed by a pause of at least 199x its hold on the lock (the lock
#    held at most 0.5 % of the time), up to the 30 s cap, and the data are
#    right;
#  * with nobody else writing the worker says so (the pause is then one
#    busy-handler retry, not 199x);
#  * two workers: a worker warns that they pace each other;
#  * unthrottled (max_latency_factor = 0, max_lock_ms = 0) no pause at all.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_lock_share

plan_body() { # $1: extra throttle lines
    printf '%s\n%s\n' '
[[expand.steps]]
sql  = "ALTER TABLE t ADD COLUMN b integer"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
set.b = "a"
[backfill.throttle]
batch_size = 1000' "$1"
}

setup() { # $1: db name, $2: rows, $3: extra throttle lines
    db_new sqlite "$1"
    plans_empty
    plan_write p "$(plan_body "$3")"
    db_sql "PRAGMA journal_mode = WAL; CREATE TABLE t (id integer PRIMARY KEY, a integer);
            CREATE TABLE app (id integer PRIMARY KEY, n integer);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
            INSERT INTO t SELECT i, i FROM n" >/dev/null
    zdm_run advance p
    t_rc "expand" 0
}

# The batches' debug lines: "held_us pause_ms mode" per batch.
batches() {
    sed -n 's/.*rows converted in .*; next in \([0-9]*\) ms (write lock held \([0-9]*\) us; \(.*\))$/\2 \1 \3/p' \
        <<<"$ZERR"
}

t_section "an application writes: the lock is held at most 0.5 % of the time"
setup share 4000 ""
# An application committing every few ms for as long as the test lasts.
(
    i=0
    while [ ! -e "$T_DIR/app.stop" ]; do
        i=$((i + 1))
        echo "INSERT INTO app (n) VALUES ($i);"
        sleep 0.01
    done
) | sqlite3 -batch -cmd '.timeout 10000' "$T_SQLITE_FILE" >"$T_DIR/app.out" 2>&1 &
APP=$!
T_BG_PIDS+=("$APP")
app_committed() { [ "$(db_sql 'SELECT count(*) FROM app')" -ge 3 ]; }
t_wait_for "the application commits" 30 app_committed
zdm_run -v advance p
t_rc "backfilled" 0
touch "$T_DIR/app.stop"
t_wait_exit "$APP" 30
t_eq "the application's writes went through" "" "$(cat "$T_DIR/app.out")"
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a")"
t_ne "batches logged" "" "$(batches)"
t_has "the probe saw the application" "another writer seen" "$(batches)"
# A batch's pause: the lock held at most 5 per mille of batch + pause
# (the pause is rounded up to a millisecond), or the 30 s cap.
bad=$(batches | awk '$3 == "another" && !($2 >= 30000 || $1 * 1000 <= 5 * ($1 + $2 * 1000)) { print }')
t_eq "every batch after the application was seen: paused >= 199x its lock" "" "$bad"

t_section "nobody else writes: no share to keep, the backfill takes turns only"
setup alone 4000 ""
zdm_run -v advance p
t_rc "backfilled" 0
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a")"
t_ne "batches logged" "" "$(batches)"
t_lacks "no other writer seen" "another writer seen" "$(batches)"

t_section "two workers: they cannot tell each other from an application, and say so"
setup two 20000 ""
zdm_run backfill p --workers 2
t_rc "backfilled by two workers" 0
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a")"
t_has "a worker warns: one writer, several workers" "2 workers on a database with one writer" "$ZERR"

t_section "unthrottled: no pause, no lock accounting"
setup unthrottled 4000 "max_latency_factor = 0
max_lock_ms = 0"
zdm_run -v advance p
t_rc "backfilled" 0
t_eq "every row converted" "0" "$(db_sql "SELECT count(*) FROM t WHERE b IS NOT a")"
t_match "batches logged" "rows converted in [0-9]+ ms; .*; next in 0 ms$" "$ZERR"
t_eq "never a pause" "" "$(grep -E 'rows converted in' <<<"$ZERR" | grep -vE '; next in 0 ms$')"
t_lacks "no lock accounting" "write lock held" "$ZERR"
t_finish
