#!/usr/bin/env bash
# test_backfill_workers.sh -- zdm backfill PLAN --workers N: N worker
# processes from one command (PostgreSQL and SQLite).
#
#   three    --workers 3 (under --json): three processes hold ranges at
#            once, every row is converted exactly once (an audit trigger
#            counts conversions per key; on PostgreSQL it also records the
#            converting backend: three of them), each line names its worker
#            and every stdout line is JSON
#   sigterm  SIGTERM to the parent: it passes it on, every worker stops
#            (exit 4 each, the plan not backfilled), the parent exits 4, no
#            running history row or lock is left, and a second run
#            finishes exactly once
#   kill9    kill -9 of one worker: the parent does not hang and exits
#            non-zero naming it; a rerun converts what is left, exactly once
#   parent9  kill -9 of the parent: the workers get SIGTERM (Linux) and
#            stop; a rerun finishes exactly once
#   usage    --workers 0, -1, x, 100000, 65 exit 2; --workers on another
#            command does not apply; --listen ports past 65535 exit 2
#
# The plan's max_rows_per_second keeps the work going for seconds (so the
# signal and the kill land while workers run); nothing asserts a speed.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/backfill.sh
source "$ZDM_SRC/tests/lib/backfill.sh"
t_init test_backfill_workers

ROWS=40000 # about 10,000 rows a range: 4 ranges, enough for 3 workers

# setup DIALECT NAME RATE: table t (40,000 rows), an audit trigger that
# records each row a backfill batch converts, plan p expanded.
setup() {
    local d=$1 name=$2 rate=$3
    db_new "$d" "$name"
    plans_empty
    plan_write p "description = \"dst = src * 2 + 1, by several workers\"
[[expand.steps]]
sql = \"SELECT 1\"
down = \"SELECT 1\"
[backfill]
table = \"t\"
set.dst = \"src * 2 + 1\"
dual_write = false
[backfill.throttle]
batch_size = 200
max_latency_factor = 0
max_rows_per_second = $rate"
    if [ "$d" = pg ]; then
        db_sql "CREATE TABLE t (id bigint PRIMARY KEY, src integer NOT NULL, dst bigint);
                INSERT INTO t (id, src) SELECT g, g % 1000 FROM generate_series(1, $ROWS) g; ANALYZE t;
                CREATE TABLE audit (k bigint NOT NULL, backend integer NOT NULL);
                CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
                  IF OLD.dst IS NULL AND NEW.dst IS NOT NULL THEN
                    INSERT INTO audit (k, backend) VALUES (NEW.id, pg_backend_pid()); END IF;
                  RETURN NULL; END \$\$;
                CREATE TRIGGER audit AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION audit();" >/dev/null
    else
        db_sql "CREATE TABLE t (id integer PRIMARY KEY, src integer NOT NULL, dst integer);
                WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $ROWS)
                INSERT INTO t (id, src) SELECT x, x % 1000 FROM g;
                CREATE TABLE audit (k integer NOT NULL);
                CREATE TRIGGER audit AFTER UPDATE OF dst ON t WHEN OLD.dst IS NULL AND NEW.dst IS NOT NULL
                BEGIN INSERT INTO audit VALUES (NEW.id); END;" >/dev/null
    fi
    zdm_run advance p
    t_rc "$d: expand p" 0
}

# Every row converted, none twice, the plan backfilled.
check_exactly_once() {
    local what=$1
    t_eq "$what: rows converted twice" "" "$(db_sql "SELECT k FROM audit GROUP BY k HAVING count(*) > 1 LIMIT 3")"
    t_eq "$what: rows converted" "$ROWS" "$(db_sql "SELECT count(DISTINCT k) FROM audit")"
    t_eq "$what: rows not (correctly) converted" 0 \
        "$(db_sql "SELECT count(*) FROM t WHERE dst IS NULL OR dst <> src * 2 + 1")"
    t_eq "$what: phase" backfilled "$(db_phase p)"
}

# The pids of the parent's workers, from its "worker i/N started (pid P)"
# lines: WPIDS[i].
worker_pids() {
    local f=$1 n=$2 i
    WPIDS=()
    t_wait_for "the parent started $n workers" 30 \
        "[ \"\$(grep -c 'backfill worker [0-9]*/$n started (pid' '$f')\" = $n ]"
    for i in $(seq 1 "$n"); do
        WPIDS[i]=$(sed -n "s/.*backfill worker $i\/$n started (pid \([0-9]*\)).*/\1/p" "$f")
    done
}

# Waits until N distinct processes hold a range at once; they must be the
# parent's workers.
wait_owners() {
    local d=$1 n=$2
    t_wait_for "$d: $n workers hold a range at once" 60 \
        "[ \"\$(db_sql \"SELECT count(DISTINCT owner_pid) FROM $(zdm_tbl ranges) WHERE plan_id = 'p' AND owner_pid IS NOT NULL\")\" = $n ]"
    local owners pid ok=1
    owners=$(db_sql "SELECT DISTINCT owner_pid FROM $(zdm_tbl ranges) WHERE plan_id = 'p' AND owner_pid IS NOT NULL")
    for pid in $owners; do
        [[ " ${WPIDS[*]} " == *" $pid "* ]] || ok=0
    done
    t_eq "$d: the owners of the ranges are the parent's workers ($(echo $owners))" 1 "$ok"
}

# Three free ports in a row: P, P+1, P+2.
free_ports3() {
    python3 -c '
import socket
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p + 2 > 65535: continue
    try:
        for q in (p, p + 1, p + 2):
            t = socket.socket(); t.bind(("127.0.0.1", q)); t.close()
    except OSError:
        continue
    print(p); break'
}

# GET /status on 127.0.0.1:PORT: "PLAN WORKER" (WORKER: "HOST pid PID").
status_of() {
    python3 -c "import json, urllib.request; o = json.load(urllib.request.urlopen('http://127.0.0.1:$1/status', timeout=10)); print(o.get('plan'), o.get('worker'))" 2>/dev/null
}

case_three() {
    local d=$1
    t_section "$d: --workers 3 converts every row exactly once"
    setup "$d" "three_$d" 4000
    local port
    port=$(free_ports3)
    zdm_bg "$T_DIR/three-$d" --json backfill p --workers 3 --listen "$port"
    local job=$ZBG_JOB
    worker_pids "$T_DIR/three-$d.err" 3
    wait_owners "$d" 3
    # --listen PORT: worker i on PORT+i-1, each its own
    local i
    for i in 0 1 2; do
        t_wait_for "$d: worker $((i + 1))/3 serves /status on port $((port + i))" 30 \
            "[[ \"\$(status_of $((port + i)))\" == 'p '*' pid ${WPIDS[i + 1]}' ]]"
    done
    t_wait_exit "$job" 120
    zdm_bg_collect "$T_DIR/three-$d"
    t_eq "$d: --workers 3 exit" 0 "$WAIT_RC"
    check_exactly_once "$d: --workers 3"
    if [ "$d" = pg ]; then
        t_eq "$d: backends that converted rows" 3 "$(db_sql "SELECT count(DISTINCT backend) FROM audit")"
    fi
    # --json: stdout is JSON lines, the workers' events name them
    local bad=0 line
    while IFS= read -r line; do
        jq -e . >/dev/null 2>&1 <<<"$line" || bad=$((bad + 1))
    done <"$T_DIR/three-$d.out"
    t_eq "$d: stdout lines that are not JSON" 0 "$bad"
    t_eq "$d: workers named in the JSON events" "1/3 2/3 3/3" \
        "$(jq -r 'select(.worker != null) | .worker' "$T_DIR/three-$d.out" | sort -u | tr '\n' ' ' | sed 's/ $//')"
    t_has "$d: the parent's result" "p: all 3 backfill workers done" \
        "$(jq -r 'select(.event == "output") | .message' "$T_DIR/three-$d.out")"
    t_has "$d: a worker's log line names it (text log on stderr)" "p backfill: worker 2/3: " "$ZERR"
}

case_sigterm() {
    local d=$1
    t_section "$d: SIGTERM to the parent stops every worker"
    setup "$d" "term_$d" 2000
    zdm_bg "$T_DIR/term-$d" backfill p --workers 3
    local parent=$ZBG_PID job=$ZBG_JOB
    worker_pids "$T_DIR/term-$d.err" 3
    wait_owners "$d" 3
    kill -TERM "$parent"
    t_wait_exit "$job" 120
    zdm_bg_collect "$T_DIR/term-$d"
    t_eq "$d: the parent's exit after SIGTERM" 4 "$WAIT_RC"
    local i gone=0
    for i in 1 2 3; do
        t_alive "${WPIDS[i]}" || gone=$((gone + 1))
        t_has "$d: worker $i/3 was interrupted" "backfill worker $i/3 (pid ${WPIDS[i]}) exited 4" "$ZERR"
    done
    t_eq "$d: workers gone when the parent exits" 3 "$gone"
    t_eq "$d: the workers stopped (plan not backfilled)" expanded "$(db_phase p)"
    t_eq "$d: running history rows" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl history) WHERE outcome = 'running'")"
    t_eq "$d: locks" 0 "$(db_sql "SELECT count(*) FROM $(zdm_tbl locks)")"
    t_eq "$d: rows converted twice (interrupted)" "" \
        "$(db_sql "SELECT k FROM audit GROUP BY k HAVING count(*) > 1 LIMIT 3")"
    zdm_run set p max_rows_per_second=0
    t_rc "$d: set max_rows_per_second=0" 0
    zdm_run backfill p --workers 3
    t_rc "$d: the resumed --workers 3" 0
    check_exactly_once "$d: after SIGTERM and a resumed run"
}

case_kill9() {
    local d=$1
    t_section "$d: kill -9 of one worker"
    setup "$d" "kill_$d" 2000
    zdm_bg "$T_DIR/kill-$d" backfill p --workers 3
    local job=$ZBG_JOB
    worker_pids "$T_DIR/kill-$d.err" 3
    wait_owners "$d" 3
    kill -9 "${WPIDS[2]}"
    # the others finish the table (the killed one's range too, once its
    # owner is seen gone); faster from here
    zdm_run set p max_rows_per_second=0
    t_wait_exit "$job" 120
    zdm_bg_collect "$T_DIR/kill-$d"
    t_ne "$d: the parent's exit with a worker killed" 0 "$WAIT_RC"
    t_eq "$d: the parent's exit with a worker killed" 1 "$WAIT_RC"
    t_has "$d: the parent names the killed worker" "worker 2/3 killed by signal 9" "$ZERR"
    t_eq "$d: rows converted twice (after kill -9)" "" \
        "$(db_sql "SELECT k FROM audit GROUP BY k HAVING count(*) > 1 LIMIT 3")"
    zdm_run backfill p
    t_rc "$d: the rerun" 0
    check_exactly_once "$d: after kill -9 and a rerun"
}

case_parent9() {
    local d=$1
    t_section "$d: kill -9 of the parent"
    setup "$d" "parent9_$d" 2000
    zdm_bg "$T_DIR/parent9-$d" backfill p --workers 3
    local parent=$ZBG_PID job=$ZBG_JOB
    worker_pids "$T_DIR/parent9-$d.err" 3
    wait_owners "$d" 3
    kill -9 "$parent"
    t_wait_exit "$job" 30
    # Linux: the kernel sends each worker SIGTERM when the parent dies;
    # they finish their batch and stop, none goes on unsupervised
    local i
    for i in 1 2 3; do
        t_wait_for "$d: worker $i/3 stops after its parent's kill -9" 60 "! t_alive ${WPIDS[i]}"
    done
    t_eq "$d: the workers stopped (plan not backfilled)" expanded "$(db_phase p)"
    zdm_run set p max_rows_per_second=0
    zdm_run backfill p --workers 2
    t_rc "$d: the rerun" 0
    check_exactly_once "$d: after the parent's kill -9 and a rerun"
}

case_usage() {
    t_section "bad --workers values"
    db_new sqlite usage
    plans_empty
    zdm_small_backfill p
    local v
    for v in 0 -1 x 1x 65 100000 99999999999999999999 ""; do
        zdm_run backfill p --workers "$v"
        t_rc "--workers '$v'" 2
        t_has "--workers '$v' says" "expected a number of workers from 1 to 64" "$ZERR"
    done
    t_eq "nothing was created by a refused --workers" "" "$(db_sql "SELECT name FROM sqlite_master WHERE name LIKE 'zdm%'")"
    zdm_run status --workers 2
    t_rc "status --workers 2" 2
    t_has "status --workers 2 says" "option --workers does not apply to \"status\"" "$ZERR"
    zdm_run backfill p --workers 3 --listen 65534
    t_rc "--workers 3 --listen 65534 (worker 3 would be 65536)" 2
    t_has "--listen past 65535 says" "port 65536 is past 65535" "$ZERR"
    zdm_run help backfill
    t_has "help backfill lists --workers" "--workers N" "$ZOUT"
}

case_usage
for d in pg sqlite; do
    if [ "$d" = pg ]; then
        if ! t_pg_available; then
            T_SKIPPED="$T_SKIPPED pg"
            continue
        fi
        [ "${_PG_RUNNING:-0}" = 1 ] || t_pg_start
    fi
    t_run case_three "$d"
    t_run case_sigterm "$d"
    t_run case_kill9 "$d"
    t_run case_parent9 "$d"
done
t_finish
