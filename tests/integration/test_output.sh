#!/usr/bin/env bash
# The output layer: --json puts only JSON on stdout, one object per line
# for every command that changes state, errors included; --log-format kv
# and json give one line per event with time, level, plan, phase and
# message; under systemd (stderr = $JOURNAL_STREAM) each line carries its
# syslog priority; on a terminal the progress bar owns its line (log lines
# above it, cleared at the end).
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init output

# Every line of stdout is a JSON value (jq reads each line alone).
all_json() {   # WHAT TEXT
    local bad=0 line
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        jq -e . >/dev/null 2>&1 <<<"$line" || { bad=1; break; }
    done <<<"$2"
    t_eq "$1: stdout is JSON lines only: $(head -c 300 <<<"$2")" 0 "$bad"
}

T_PLANS=$T_DIR/plans; mkdir -p "$T_PLANS"
db_new sqlite out
plan_write 0001_t 'description = "a table"
[[expand.steps]]
sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, a text)"
down = "DROP TABLE t"'
plan_write 0002_b 'requires = ["0001_t"]
[[expand.steps]]
sql = "ALTER TABLE t ADD COLUMN b text"
down = "ALTER TABLE t DROP COLUMN b"
[backfill]
table = "t"
where = "b IS NULL"
set.b = "upper(a)"
[backfill.throttle]
batch_size = 100
target_batch_ms = 0
[contract]
not_before = "cutover + 0s"'

t_section "--json on every command that changes state"
zdm_run --json init;                       all_json init "$ZOUT"
zdm_run --json advance 0001_t;             all_json advance "$ZOUT"; t_rc advance 0
t_eq "advance streams log events with plan and phase" '"0001_t expand"' \
    "$(jq -c 'select(.event == "log") | .plan + " " + .phase' <<<"$ZOUT" | head -n1)"
zdm_run --json advance 0002_b
t_rc "refused: required plan not complete" 3
all_json "refusal" "$ZOUT"
t_eq "the error is the last JSON line" '"error" 3' "$(tail -n1 <<<"$ZOUT" | jq -r '"\"" + .event + "\" " + (.exit_code|tostring)')"
zdm_run --json stamp 0001_t complete;      all_json stamp "$ZOUT"; t_rc stamp 0
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000) INSERT INTO t (a) SELECT 'x' || i FROM c" >/dev/null
zdm_run --json advance 0002_b;             all_json "advance (expand)" "$ZOUT"; t_rc "expand 0002" 0
zdm_run --json set 0002_b batch_size=100;  all_json set "$ZOUT"; t_rc set 0
zdm_run --json pause 0002_b;               all_json pause "$ZOUT"
zdm_run --json resume 0002_b;              all_json resume "$ZOUT"
zdm_run --json backfill 0002_b;            all_json backfill "$ZOUT"; t_rc backfill 0
zdm_run --json cutover 0002_b;             all_json cutover "$ZOUT"; t_rc cutover 0
zdm_run --json schedule 0002_b --after 1s; all_json schedule "$ZOUT"; t_rc schedule 0
sleep 1.1
zdm_run --json run-due;                    all_json run-due "$ZOUT"; t_rc run-due 0
zdm_run --json unlock 0002_b;              all_json unlock "$ZOUT"
zdm_run --json rollback 0002_b;            all_json rollback "$ZOUT"
zdm_run --json new third;                  all_json new "$ZOUT"
rm -f "$T_PLANS"/0003_third.toml
zdm_run --json status
t_eq "status stays one JSON document" 0 "$(jq -e . >/dev/null 2>&1 <<<"$ZOUT"; echo $?)"
t_eq "status document" "0001_t" "$(jq -r '.plans[0].id' <<<"$ZOUT")"
ZRC=0; out=$("$ZDM" --json --plans "$T_PLANS" status 2>/dev/null) || ZRC=$?
t_rc "no database" 2
all_json "usage error" "$out"
t_eq "usage error as JSON" "no database given" "$(jq -r .message <<<"$out")"

# A plan file that does not load: the problems are in the JSON, not on
# stderr alone ("1 problem found" said nothing a script could act on), and
# status stays one document (the error event after it was a second one).
printf 'description = 5\n' >"$T_PLANS/0009_bad.toml"
zdm_run --json plan validate
t_rc "validate an invalid plan" 2
all_json "validate: error" "$ZOUT"
t_eq "the problem, with its file, line and column" "$T_PLANS/0009_bad.toml 1 15 the plan.description must be a string, not an integer" \
    "$(jq -r '.problems[0] | "\(.file) \(.line) \(.col) \(.message)"' <<<"$ZOUT")"
zdm_run --json status
t_rc "status with an invalid plan" 2
t_eq "... one JSON document" 0 "$(jq -se 'length == 1' >/dev/null 2>&1 <<<"$ZOUT"; echo $?)"
t_eq "... naming it under invalid" 1 "$(jq -r '.invalid | length' <<<"$ZOUT")"
rm -f "$T_PLANS/0009_bad.toml"

out=$("$ZDM" --json --version); t_eq "--json --version" '"0.1.0"' "$(jq .version <<<"$out" | sed 's/[0-9][0-9.]*/0.1.0/')"
out=$("$ZDM" --json 2>/dev/null); all_json "no command" "$out"
t_eq "no command: an error event" error "$(jq -r .event <<<"$out")"

# A large document passes through whole, in time linear in its size (a
# parse at every line end took hours for this; zdm_run bounds it).
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
        INSERT INTO zdm_history (plan_id, at_ms, who, pid, action, outcome) SELECT 'p' || i, 1, 'x@y', 1, 'advance', 'ok' FROM c" >/dev/null
zdm_run --json history
t_rc "a large --json history" 0
t_eq "every row in one document" 1 "$(jq '[.history[] | select(.plan | startswith("p"))] | length >= 20000' <<<"$ZOUT" | grep -c true)"

t_section "--log-format kv and json"
db_new sqlite fmt
zdm_run --log-format kv advance 0001_t
t_rc "kv advance" 0
bad=$(grep -cvE '^time=[0-9T:.Z-]+ level=(debug|info|warn|error) pid=[0-9]+ plan=0001_t phase=expand msg=' <<<"$ZERR")
t_eq "every kv line has time, level, pid, plan, phase, msg: $ZERR" 0 "$bad"
zdm_run --log-format json advance 0001_t
bad=0
while IFS= read -r l; do
    jq -e 'has("time") and has("level") and has("plan") and has("phase") and has("message")' >/dev/null 2>&1 <<<"$l" || bad=1
done <<<"$ZERR"
t_eq "every json log line has the keys: $ZERR" 0 "$bad"
ZDM_LOG_FORMAT=kv zdm_run advance nosuch
t_match "a final error in kv is one line, level error" '^time=[^ ]+ level=error pid=[0-9]+ msg="no plan \\"nosuch\\"' "$ZERR"
t_eq "one line" 1 "$(wc -l <<<"$ZERR")"
zdm_run --log-format yaml status
t_rc "unknown log format" 2

t_section "journald priorities"
db_new sqlite jr
errf=$T_DIR/journal.err
: >"$errf"
js=$(stat -c '%d:%i' "$errf")
JOURNAL_STREAM=$js "$ZDM" --db "$T_DB" --plans "$T_PLANS" advance 0001_t >/dev/null 2>"$errf"
t_match "info lines carry <6>" '^<6>[0-9]{4}-' "$(cat "$errf")"
JOURNAL_STREAM=$js "$ZDM" --db "$T_DB" --plans "$T_PLANS" advance 0002_b >/dev/null 2>"$errf"
t_match "the final error carries <3>" '^<3>zdm: plan 0002_b requires' "$(cat "$errf")"
JOURNAL_STREAM=$js "$ZDM" --db "$T_DB" --plans "$T_PLANS" --log-format kv advance 0001_t >/dev/null 2>"$errf"
t_match "kv too" '^<6>time=' "$(cat "$errf")"
JOURNAL_STREAM=1:1 "$ZDM" --db "$T_DB" --plans "$T_PLANS" advance 0001_t >/dev/null 2>"$errf"
t_lacks "stderr that is not the journal gets no prefix" "<6>" "$(cat "$errf")"

t_section "the progress bar owns its line on a terminal"
if command -v script >/dev/null 2>&1; then
    db_new sqlite tty
    zdm_run advance 0001_t; zdm_run advance 0001_t; zdm_run advance 0001_t; zdm_run advance 0001_t
    db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000) INSERT INTO t (a) SELECT 'x' || i FROM c" >/dev/null
    zdm_run advance 0002_b
    t_rc "expand" 0
    script -qec "$ZDM -v --db $T_DB --plans $T_PLANS backfill 0002_b" "$T_DIR/typescript" >/dev/null 2>&1
    ts=$(cat "$T_DIR/typescript")
    t_has "a bar was drawn" "rows/s ETA" "$ts"
    t_has "debug lines interleave" "rows converted in" "$ts"
    # What stays on screen of each line is what follows its last carriage
    # return: never a bar (glued to a log line, or left after the end).
    visible=$(tr -d '\033' <"$T_DIR/typescript" | sed 's/\r$//' | awk -F'\r' '{print $NF}')
    t_lacks "no line shows the bar once the work ended" "rows/s ETA" "$visible"
    t_eq "backfilled" "backfilled" "$(db_sql "SELECT phase FROM zdm_plans WHERE id = '0002_b'")"
fi
t_finish
