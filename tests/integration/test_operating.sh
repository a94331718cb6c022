#!/usr/bin/env bash
# test_operating.sh -- README's "Operating zdm" section, run as written:
#  * every "zdm ..." command line of the section runs, in order, against a
#    real SQLite database (ZDM_DATABASE_URL) from a project directory, and
#    exits 0; its zdm.toml example is a valid project file;
#  * the example alert rules pass "promtool check rules", and "promtool
#    test rules" shows each alert firing on the series it is for (skipped
#    without promtool); every metric they name is one zdm exports;
#  * "zdm status --format prometheus" passes "promtool check metrics";
#  * a backfill worker's /metrics has the last-progress time and the
#    stalled flag.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init operating
PY=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
PROMTOOL=$(command -v promtool || true)

# The section, its command lines, its TOML and YAML blocks.
sect=$(awk '/^## Operating zdm/ {on=1; next} on && /^## / {exit} on' "$ZDM_SRC/README.md")
t_ne "README has an Operating zdm section" "" "$sect"
cmds=$(sed -n 's/^    \(\(TZ=[^ ]* \)\{0,1\}zdm .*\)$/\1/p' <<<"$sect")
# block LANG: the first ```LANG block of the section.
block() { awk -v lang="$1" '$0 == "```" lang {on=1; next} on && /^```/ {exit} on' <<<"$sect"; }
# blocks LANG: every ```LANG block of the section, one after the other.
blocks() { awk -v lang="$1" '$0 == "```" lang {on=1; next} on && /^```/ {on=0; print "#--"; next} on' <<<"$sect"; }
t_match "the section has commands" '^[5-9]|[1-9][0-9]+$' "$(wc -l <<<"$cmds")"

# ---------------------------------------------------------------------------
t_section "README commands, in order"
P=$T_DIR/project
mkdir -p "$P/plans" "$T_DIR/bin"
ln -s "$ZDM" "$T_DIR/bin/zdm"
block toml >"$P/zdm.toml"
t_has "the zdm.toml example sets a default soak" "not_before" "$(cat "$P/zdm.toml")"
# every TOML example of the section is a valid zdm.toml
i=0
while IFS= read -r -d '@' doc; do
    [ -n "$(tr -d '[:space:]' <<<"$doc")" ] || continue
    i=$((i + 1))
    mkdir -p "$T_DIR/toml$i/plans"
    printf '%s\n' "$doc" >"$T_DIR/toml$i/zdm.toml"
    out=$("$ZDM" --plans "$T_DIR/toml$i/plans" plan validate 2>&1)
    t_eq "README zdm.toml example $i is valid" 0 "$?"
done < <(blocks toml | sed 's/^#--$/@/'; printf '@')
t_ne "README has zdm.toml examples" 0 "$i"
cat >"$P/plans/0007_event_project_slug.toml" <<'EOF'
[[expand.steps]]
sql  = "CREATE TABLE events (id integer PRIMARY KEY, project_name text)"
down = "DROP TABLE events"
[[contract.steps]]
sql  = "CREATE INDEX events_done ON events (id)"
down = "DROP INDEX events_done"
EOF
export ZDM_DATABASE_URL=sqlite:$P/app.db
cd "$P" || exit 1
for _ in 1 2 3; do "$ZDM" advance 0007_event_project_slug >/dev/null 2>&1; done
t_eq "the plan is cut over" cut_over "$("$ZDM" --json status 0007_event_project_slug | jq -r '.plans[0].phase')"
n=0
while IFS= read -r c; do
    [ -n "$c" ] || continue
    n=$((n + 1))
    out=$(PATH=$T_DIR/bin:$PATH bash -c "$c" 2>&1)
    rc=$?
    echo "\$ $c  -> exit $rc" >>"$T_DIR/commands.log"
    printf '%s\n' "$out" >>"$T_DIR/all-output.log"
    t_eq "README: $c" 0 "$rc"
    case $c in
    *"--at 2030-12-01T03:00") t_has "README: local time read with TZ, UTC printed" "2030-12-01T02:00:00Z" "$out" ;;
    *"--event schedule") t_has "README: history shows the cancel" "schedule cancelled" "$out" ;;
    "zdm status") t_has "README: the zdm.toml default gives a due time" "(contract) after" "$out" ;;
    esac
done <<<"$cmds"
t_eq "every command ran" "$(grep -c . <<<"$cmds")" "$n"
t_ne "the textfile was written" "" "$(cat "$P/zdm.prom" 2>/dev/null)"
cd "$T_DIR" || exit 1

# ---------------------------------------------------------------------------
t_section "alert rules"
block yaml >"$T_DIR/rules.yml"
t_has "the rules are there" "ZdmContractOverdue" "$(cat "$T_DIR/rules.yml")"
# Every metric a rule names is exported by zdm: status --format prometheus
# or a worker's /metrics (phases/metrics.c).
exported=$(cat "$P/zdm.prom"; grep -o 'zdm_backfill_[a-z_]*' "$ZDM_SRC/phases/metrics.c")
for m in $(grep -o 'zdm_[a-z_]*' "$T_DIR/rules.yml" | sort -u); do
    t_has "the rules' metric $m is exported" "$m" "$exported"
done
if [ -n "$PROMTOOL" ]; then
    out=$("$PROMTOOL" check rules "$T_DIR/rules.yml" 2>&1)
    t_eq "promtool check rules" 0 $?
    t_has "promtool found every rule" "SUCCESS: 5 rules found" "$out"
    out=$("$PROMTOOL" check metrics <"$P/zdm.prom" 2>&1)
    t_eq "promtool check metrics: zdm status --format prometheus" "0 " "$? $out"
    cat >"$T_DIR/rules-test.yml" <<'EOF'
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'zdm_backfill_stalled{plan="p_stuck",instance="w1"}'
        values: '0 0 1x20'
      - series: 'zdm_backfill_stalled{plan="p_fine",instance="w2"}'
        values: '0x22'
      - series: 'zdm_plan_contract_overdue{plan="p_late"}'
        values: '1x10'
      - series: 'zdm_plan_failed{plan="p_broken"}'
        values: '1x10'
      - series: 'zdm_plan_failed{plan="p_fine"}'
        values: '0x10'
      - series: 'zdm_plan_phase{plan="p_idle",phase="expanded"}'
        values: '1x60'
      - series: 'zdm_backfill_last_progress_timestamp_seconds{plan="p_idle"}'
        values: '60x60'
    alert_rule_test:
      - eval_time: 15m
        alertname: ZdmBackfillStalled
        exp_alerts:
          - exp_labels: {plan: p_stuck, severity: page}
            exp_annotations:
              summary: "zdm backfill of p_stuck has made no progress for 15 min"
              runbook: "zdm status p_stuck: the workers, their last batch, the lock holder"
      - eval_time: 6m
        alertname: ZdmContractOverdue
        exp_alerts:
          - exp_labels: {plan: p_late, severity: page}
            exp_annotations:
              summary: "contract of p_late is overdue: run-due is not running or keeps failing"
              runbook: "zdm status --json p_late (last_error); journalctl -u zdm-run-due"
      - eval_time: 1m
        alertname: ZdmPlanFailed
        exp_alerts:
          - exp_labels: {plan: p_broken, severity: page}
            exp_annotations:
              summary: "run-due gave up on contract of p_broken"
              runbook: "zdm status --json p_broken; fix the cause, then zdm retry p_broken"
      - eval_time: 20m
        alertname: ZdmBackfillNoProgress
        exp_alerts: []
      - eval_time: 40m
        alertname: ZdmBackfillNoProgress
        exp_alerts:
          - exp_labels: {plan: p_idle, severity: page}
            exp_annotations:
              summary: "no batch of p_idle committed for 30 min (are the workers running?)"
EOF
    out=$(cd "$T_DIR" && "$PROMTOOL" test rules rules-test.yml 2>&1)
    t_eq "promtool test rules: each alert fires on its series, and only there" 0 $?
    [ "$T_FAILS" -gt 0 ] && printf '%s\n' "$out" | head -40
else
    T_SKIPPED="$T_SKIPPED promtool"
fi

# ---------------------------------------------------------------------------
t_section "a worker's /metrics: last progress and the stalled flag"
if [ -n "$PY" ]; then
    plans_empty
    db_new sqlite worker
    plan_write bf '[[expand.steps]]
sql  = "CREATE TABLE t_bf (id integer PRIMARY KEY, v integer)"
down = "DROP TABLE t_bf"
[backfill]
table = "t_bf"
set.v = "id"
[backfill.throttle]
batch_size = 50
min_batch_size = 50
max_batch_size = 50
max_rows_per_second = 200'
    zdm_run advance bf
    db_sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) INSERT INTO t_bf (id) SELECT i FROM n"
    port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    zdm_bg "$T_DIR/w" backfill bf --listen "127.0.0.1:$port"
    job=$ZBG_JOB
    fetch() { "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1" 2>/dev/null; }
    t_wait_for "a committed batch shows in /metrics" 30 \
        "fetch http://127.0.0.1:$port/metrics | grep -q '^zdm_backfill_last_progress_timestamp_seconds{plan=\"bf\"} [1-9]'"
    m=$(fetch "http://127.0.0.1:$port/metrics")
    last=$(sed -n 's/^zdm_backfill_last_progress_timestamp_seconds{plan="bf"} \([0-9.]*\)$/\1/p' <<<"$m")
    now=$(date +%s)
    t_eq "last progress is recent" yes "$(awk -v l="$last" -v n="$now" 'BEGIN { print (l > n - 60 && l <= n + 1) ? "yes" : "no" }')"
    t_has "progressing: not stalled" 'zdm_backfill_stalled{plan="bf"} 0' "$m"
    if [ -n "$PROMTOOL" ]; then
        # (the older names are another matter: only these two are judged here)
        out=$(printf '%s\n' "$m" | "$PROMTOOL" check metrics 2>&1)
        t_lacks "promtool check metrics: nothing about last progress" "last_progress" "$out"
        t_lacks "promtool check metrics: nothing about stalled" "stalled" "$out"
    fi
    kill -TERM "$ZBG_PID" 2>/dev/null
    t_wait_exit "$job" 30
else
    T_SKIPPED="$T_SKIPPED worker-metrics(no python3)"
fi

t_finish
