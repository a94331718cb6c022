#!/usr/bin/env bash
# test_e2e_bluegreen.sh -- a whole release under live traffic, end to end:
# PostgreSQL (tests/lib/pg.sh), nginx (Debian's, with a private prefix and
# config, on a loopback port), two versions of a small application
# (tests/e2e/app.py: "blue" reads and writes events.project_name, "green"
# events.project_slug), and clients (tests/e2e/client.py) that create,
# rename and read back events through nginx for the whole run.
#
# The release is plans/0007_event_project_slug.toml, driven the way an
# operator would, with the example hooks in hooks/ from a zdm.toml:
#   expand        zdm advance (notify.sh before)
#   backfill      two `zdm backfill` workers, throttled; one is killed with
#                 kill -9 midway and restarted, the other stopped with
#                 SIGTERM (exit 4) and restarted; the finishing worker runs
#                 after_backfill, then it is re-run with --hooks-only
#   cutover       first refused (exit 3) because green is not up yet: the
#                 smoke-check.sh hook fails before nginx is touched; then
#                 green starts and `zdm cutover` runs smoke-check.sh and
#                 blue-green-switch.sh green, which switches nginx
#   contract      `zdm schedule --after 5s`; `zdm run-due` before that
#                 contracts nothing, after it contracts (backup.sh before)
# Before the release, blue-green-switch.sh is shown refusing a config nginx
# rejects, with traffic unharmed.
#
# Checks: no request failed (HTTP, connection, or a read that did not
# answer the value last written, whichever version served it); every row
# consistent at every phase (project_slug = f(project_name) wherever both
# are set, and no row left unconverted after the backfill); green served
# nothing that began before the cutover began and blue nothing that began
# after the recorded cutover time; contract only after the scheduled time.
# Prints requests, failures and latency p50/p95/p99 per phase.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init e2e_bluegreen
HOOKS=$ZDM_SRC/hooks
E2E=$ZDM_SRC/tests/e2e
PLAN=0007_event_project_slug
SEED_ROWS=${ZDM_E2E_ROWS:-150000}

# ------------------------------------------------------------ prerequisites
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    echo "e2e: nginx is not installed (apt-get install nginx-light): skipping" >&2
    exit 77
fi
PY=
for p in /usr/bin/python3 "$(command -v python3 || true)"; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import psycopg2' 2>/dev/null; then
        PY=$p
        break
    fi
done
if [ -z "$PY" ]; then
    echo "e2e: no python3 with psycopg2 (apt-get install python3-psycopg2): skipping" >&2
    exit 77
fi
if ! t_pg_available; then
    echo "e2e: no PostgreSQL server: skipping" >&2
    exit 77
fi

E=$T_DIR/e2e
mkdir -p "$E/plans" "$E/nginx" "$E/backups"
chmod 0755 "$E" "$E/nginx"
MARKS=$E/markers
: >"$MARKS"
mark() { echo "$(date +%s%3N) $1" >>"$MARKS"; echo "--- phase: $1"; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ngx() { "$NGINX" -p "$E/nginx" -c "$E/nginx/nginx.conf" -e "$E/nginx/error.log" "$@"; }
NGINX_UP=0
stop_nginx() {
    [ "$NGINX_UP" = 1 ] || return 0
    local pid
    pid=$(cat "$E/nginx/nginx.pid" 2>/dev/null)
    ngx -s stop 2>/dev/null
    for _ in $(seq 50); do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        pkill -9 -P "$pid" 2>/dev/null
        kill -9 "$pid" 2>/dev/null
    fi
    NGINX_UP=0
}
_e2e_exit() {
    local status=$?
    [ -f "$E/stop" ] || touch "$E/stop" 2>/dev/null
    stop_nginx
    if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ -f "$E/nginx/error.log" ]; then
        echo "--- last lines of the nginx error log:" >&2
        tail -n 20 "$E/nginx/error.log" >&2
    fi
    (exit "$status")
    _t_on_exit
}

# start_bg NAME CMD...: a helper process in the background, killed at exit.
start_bg() {
    local name=$1
    shift
    "$@" >"$E/$name.log" 2>&1 &
    T_BG_PIDS+=("$!")
    disown
    eval "PID_$name=$!"
}

# consistency PHASE [strict|stale] [names]: every row with both columns
# has slug = f(name); strict: also no row without a slug; stale (after
# contract): only that, project_name is not kept any more; names: no row
# without a name (while the reverse trigger is there).
consistency() {
    local row bad unconverted noname total
    row=$(db_sql "SELECT count(*) FILTER (WHERE project_slug IS NOT NULL AND project_name IS NOT NULL
                                           AND project_slug IS DISTINCT FROM lower(replace(project_name, ' ', '-'))),
                         count(*) FILTER (WHERE project_slug IS NULL),
                         count(*) FILTER (WHERE project_name IS NULL),
                         count(*)
                    FROM events")
    IFS='|' read -r bad unconverted noname total <<<"$row"
    echo "    rows at $1: $total total, $bad inconsistent, $unconverted without slug, $noname without name"
    if [ "${2:-}" != stale ]; then
        t_eq "$1: every row has project_slug = f(project_name)" 0 "$bad"
    fi
    if [ "${2:-}" = strict ] || [ "${2:-}" = stale ]; then
        t_eq "$1: no row without a slug" 0 "$unconverted"
    fi
    if [ "${3:-}" = names ]; then
        t_eq "$1: no row without a name (the reverse trigger fills it)" 0 "$noname"
    fi
    if [ "$bad" != 0 ] && [ "${2:-}" != stale ]; then
        db_sql "SELECT id, project_name, project_slug FROM events
                 WHERE project_slug IS DISTINCT FROM lower(replace(project_name, ' ', '-'))
                   AND project_slug IS NOT NULL AND project_name IS NOT NULL LIMIT 5" | sed 's/^/      /'
    fi
}

# ------------------------------------------------------------------- setup
t_pg_start
trap _e2e_exit EXIT
t_section "setup: PostgreSQL, the schema before the release, $SEED_ROWS rows"
db_new pg app
T_PLANS=$E/plans
cp "$ZDM_SRC/plans/0001_baseline.toml" "$ZDM_SRC/plans/0006_event_category.toml" \
    "$ZDM_SRC/plans/$PLAN.toml" "$T_PLANS/"
zdm_complete 0001_baseline
zdm_complete 0006_event_category
db_sql "INSERT INTO events (project_name)
        SELECT (ARRAY['Core Billing', 'Search', 'Edge API', 'mail jobs', 'Data Lake'])[1 + g % 5] || ' ' || g
          FROM generate_series(1, $SEED_ROWS) g" >/dev/null
db_sql "ANALYZE events" >/dev/null
t_eq "seeded" "$SEED_ROWS" "$(db_sql 'SELECT count(*) FROM events')"

t_section "setup: blue, nginx, clients"
start_bg blue "$PY" "$E2E/app.py" --color blue --dsn "$T_PG_URL" --port-file "$E/blue.port"
t_wait_for "blue listens" 20 "[ -s '$E/blue.port' ]" || exit 1
BLUE_PORT=$(cat "$E/blue.port")
GREEN_PORT=$(free_port)
NGINX_PORT=$(free_port)
export NGINX_BIN=$NGINX NGINX_CONF=$E/nginx/nginx.conf NGINX_PREFIX=$E/nginx \
    NGINX_OPTS="-e $E/nginx/error.log" NGINX_UPSTREAM_FILE=$E/nginx/upstream.inc \
    NGINX_BLUE=127.0.0.1:$BLUE_PORT NGINX_GREEN=127.0.0.1:$GREEN_PORT \
    NGINX_HEALTH_URL=http://127.0.0.1:$NGINX_PORT/health NGINX_HEALTH_DELAY=0.2 \
    NOTIFY_LOG=$E/notify.log BACKUP_DIR=$E/backups
cat >"$NGINX_UPSTREAM_FILE" <<EOF
# zdm-active-pool: blue
upstream zdm_app {
    server 127.0.0.1:$BLUE_PORT;
}
EOF
cat >"$E/nginx/nginx.conf" <<EOF
# Private nginx for test_e2e_bluegreen.sh.  As root, the workers run as
# nobody: they only need the temp dirs, which nginx creates for them.
worker_processes 1;
pid $E/nginx/nginx.pid;
error_log $E/nginx/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $E/nginx/tmp-body;
    proxy_temp_path $E/nginx/tmp-proxy;
    fastcgi_temp_path $E/nginx/tmp-fastcgi;
    uwsgi_temp_path $E/nginx/tmp-uwsgi;
    scgi_temp_path $E/nginx/tmp-scgi;
    include $NGINX_UPSTREAM_FILE;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://zdm_app;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }
    }
}
EOF
if ! out=$(ngx 2>&1); then
    echo "e2e: nginx does not start: $out" >&2
    exit 1
fi
NGINX_UP=1
t_wait_for "nginx serves blue" 20 \
    "curl -sf -H 'Connection: close' http://127.0.0.1:$NGINX_PORT/health | grep -qx blue" || exit 1
t_eq "switch status before the release" blue "$("$HOOKS/blue-green-switch.sh" status)"
start_bg client "$PY" "$E2E/client.py" --url "http://127.0.0.1:$NGINX_PORT" --out "$E/requests.jsonl" \
    --stop-file "$E/stop" --threads 3 --pause 0.01 --seed-ids "$SEED_ROWS"
mark baseline
sleep 2

t_section "blue-green-switch.sh refuses a configuration nginx rejects; traffic unharmed"
cp "$NGINX_UPSTREAM_FILE" "$E/blue.inc"
out=$(NGINX_GREEN=127.0.0.1:99999 "$HOOKS/blue-green-switch.sh" green 2>&1)
t_eq "switch to an invalid port: exit 1" 1 $?
t_has "nginx said why" "invalid port" "$out"
t_same_file "the blue include is back" "$E/blue.inc" "$NGINX_UPSTREAM_FILE"
t_eq "nginx still serves blue" blue "$(curl -s -H 'Connection: close' "http://127.0.0.1:$NGINX_PORT/health")"

# The release's hooks (zdm.toml beside the plans: every plan of this
# release gets them).
cat >"$E/zdm.toml" <<EOF
[hooks]
timeout = "2m"
before_expand = "$HOOKS/notify.sh release 7"
after_backfill = "$HOOKS/notify.sh release 7"
cutover = [
    ["$HOOKS/smoke-check.sh", "http://127.0.0.1:$GREEN_PORT/health", "3", "0.2"],
    "$HOOKS/blue-green-switch.sh green",
]
before_contract = "$HOOKS/backup.sh"
after_contract = "$HOOKS/notify.sh release 7"
on_failure = "$HOOKS/notify.sh release 7"
EOF

# ------------------------------------------------------------------ expand
t_section "expand"
mark expand
zdm_run advance "$PLAN"
t_rc "expand" 0
t_eq "expanded" expanded "$(zdm_phase_of "$PLAN")"
t_has "before_expand notified" "zdm: $PLAN before_expand (pending -> expanded)" "$(cat "$E/notify.log")"
mark expanded
sleep 1
consistency expanded "" names
sleep 1

# ---------------------------------------------------------------- backfill
t_section "backfill: two workers, one killed with kill -9, one stopped with SIGTERM"
zdm_run set "$PLAN" max_rows_per_second=6000 batch_size=500 max_batch_size=1000
t_rc "zdm set the throttle" 0
mark backfill
rows_done() {
    zdm_run --json status "$PLAN"
    jq -r '.plans[0].backfill.rows_done // 0' <<<"$ZOUT"
}
zdm_bg "$E/worker-a" backfill "$PLAN"
A_PID=$ZBG_PID A_JOB=$ZBG_JOB
zdm_bg "$E/worker-b" backfill "$PLAN"
B_PID=$ZBG_PID B_JOB=$ZBG_JOB
t_wait_for "a quarter of the rows converted" 120 "[ \"\$(rows_done)\" -ge $((SEED_ROWS / 4)) ]"
killed_at=$(rows_done)
kill -9 "$A_PID"
t_wait_exit "$A_JOB" 10
t_eq "worker A died of SIGKILL" 137 "$WAIT_RC"
echo "    worker A killed at $killed_at of $SEED_ROWS rows"
t_cmp "killed midway (rows done)" "$killed_at" -lt "$((SEED_ROWS * 3 / 4))"
consistency "backfill, worker A just killed"
zdm_bg "$E/worker-a2" backfill "$PLAN"
A_JOB=$ZBG_JOB
t_wait_for "half of the rows converted" 120 "[ \"\$(rows_done)\" -ge $((SEED_ROWS / 2)) ]"
kill -TERM "$B_PID"
t_wait_exit "$B_JOB" 30
t_eq "worker B: SIGTERM finishes the batch and exits 4" 4 "$WAIT_RC"
consistency "backfill, worker B stopped"
zdm_bg "$E/worker-b2" backfill "$PLAN"
B_JOB=$ZBG_JOB
t_wait_exit "$A_JOB" 180
t_eq "restarted worker A ends well" 0 "$WAIT_RC"
t_wait_exit "$B_JOB" 180
t_eq "restarted worker B ends well" 0 "$WAIT_RC"
t_eq "backfilled" backfilled "$(zdm_phase_of "$PLAN")"
mark backfilled
consistency backfilled strict names
# the worker that finished the backfill ran after_backfill, once
t_eq "after_backfill run once, by the finishing worker" 1 \
    "$(grep -cF "zdm: $PLAN after_backfill (backfilled)" "$E/notify.log")"
zdm_run advance --hooks-only "$PLAN"
t_rc "after_backfill re-run by hand" 0
t_eq "after_backfill notified again" 2 "$(grep -cF "zdm: $PLAN after_backfill (backfilled)" "$E/notify.log")"

# ----------------------------------------------------------------- cutover
t_section "cutover refused while green is down: nothing changes"
zdm_run cutover "$PLAN"
t_rc "cutover before green is up" 3
t_has "the smoke check said no" "NOT healthy after 3 tries" "$ZERR"
zdm_run --json status "$PLAN"
t_eq "still backfilled, no cutover time" "backfilled null" "$(jq -r '.plans[0] | "\(.phase) \(.cutover_at)"' <<<"$ZOUT")"
t_eq "nginx untouched: still blue" blue "$("$HOOKS/blue-green-switch.sh" status)"

t_section "cutover: green up, nginx switched by the hook"
start_bg green "$PY" "$E2E/app.py" --color green --dsn "$T_PG_URL" --port-file "$E/green.port" --port "$GREEN_PORT"
t_wait_for "green listens" 20 "[ -s '$E/green.port' ]" || exit 1
sleep 1
mark cutover
zdm_run cutover "$PLAN"
t_rc "cutover" 0
mark cut_over
t_has "the switch hook verified green" "answered with \"green\" 3 times in a row" "$ZERR"
t_eq "the include points at green" green "$("$HOOKS/blue-green-switch.sh" status)"
CUT_BEGIN=$(db_sql "SELECT at_ms FROM zdm.history WHERE plan_id = '$PLAN' AND action = 'advance'
                     AND to_phase = 'cut_over' AND outcome = 'ok'")
CUT_AT=$(db_sql "SELECT cutover_at_ms FROM zdm.plans WHERE id = '$PLAN'")
t_ne "cutover time recorded" "" "$CUT_AT"
consistency cut_over strict names
sleep 1

# ---------------------------------------------------------------- contract
t_section "contract: scheduled 5s ahead, by run-due"
zdm_run schedule "$PLAN" --after 5s
t_rc "schedule --after 5s" 0
DUE=$(db_sql "SELECT contract_after_ms FROM zdm.plans WHERE id = '$PLAN'")
zdm_run run-due
t_rc "run-due before it is due" 0
t_has "run-due before it is due contracts nothing" "0 plans contracted" "$ZOUT"
t_eq "still cut_over" cut_over "$(zdm_phase_of "$PLAN")"
consistency "cut_over (soak)" strict names
while [ "$(($(date +%s%3N) - DUE))" -lt 0 ]; do sleep 0.2; done
mark contract
zdm_run run-due
t_rc "run-due once due" 0
t_has "run-due contracts the plan" "1 plan contracted" "$ZOUT"
mark complete
t_eq "complete" complete "$(zdm_phase_of "$PLAN")"
CONTRACT_AT=$(db_sql "SELECT at_ms FROM zdm.history WHERE plan_id = '$PLAN' AND action = 'advance'
                       AND to_phase = 'complete' AND outcome = 'ok'")
t_cmp "contract began after the scheduled time" "$CONTRACT_AT" -ge "$DUE"
t_eq "the triggers are gone" 0 "$(db_sql "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm_dw_%'")"
t_eq "project_slug is NOT NULL now" NO \
    "$(db_sql "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'project_slug'")"
dump=$(ls "$E"/backups/"$PLAN"-before_contract-*.dump 2>/dev/null | head -n 1)
t_ne "backup.sh dumped the database before contract" "" "$dump"
t_has "after_contract notified" "zdm: $PLAN after_contract (complete)" "$(cat "$E/notify.log")"
sleep 2
# Contract removed the triggers: project_name is not kept any more (a later
# plan drops it).  Every row still has a slug; the rows whose name is stale
# or missing must all be rows green wrote since contract (report.py checks).
consistency complete stale
db_sql "SELECT id FROM events WHERE project_name IS NULL
           OR project_slug IS DISTINCT FROM lower(replace(project_name, ' ', '-'))" >"$E/stale.ids"

# ------------------------------------------------------------------ report
t_section "traffic"
touch "$E/stop"
t_wait_for "the clients stop" 30 "[ -s '$E/requests.jsonl' ]"
"$PY" "$E2E/report.py" --requests "$E/requests.jsonl" --markers "$MARKS" \
    --cutover-begin "$CUT_BEGIN" --cutover-at "$CUT_AT" --contract-begin "$CONTRACT_AT" --stale-ids "$E/stale.ids"
t_eq "report: no failed request, the switch exactly at cutover" 0 $?
echo "    green answered $(grep -c '"backend": "green"' "$E/requests.jsonl") requests," \
    "blue $(grep -c '"backend": "blue"' "$E/requests.jsonl")"
t_finish
