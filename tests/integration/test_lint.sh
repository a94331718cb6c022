#!/usr/bin/env bash
# test_lint.sh -- zdm lint, and the lint gate of zdm advance (on SQLite:
# the SQL SQLite runs, sql.sqlite or the generic sql, with the SQLite
# rules: a plain CREATE INDEX advances).
#
#   - the example plans have no error; --json parses
#   - a plan with unsafe SQL: exit 3, FILE:LINE: error[RULE], --json
#   - an invalid plan: exit 2; PLAN ids, files and directories as arguments
#   - advance refuses (exit 3, nothing changed, a refusal in history), and
#     passes with --allow or allow_unsafe; contract is gated too
set -u
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init test_lint

# zdm lint without --db: no target dialect (zdm_run always passes --db).
lint_run() {
    ZRC=0
    "$ZDM" --plans "$T_PLANS" "$@" >"$T_DIR/last.out" 2>"$T_DIR/last.err" || ZRC=$?
    ZOUT=$(cat "$T_DIR/last.out")
    ZERR=$(cat "$T_DIR/last.err")
}

# ---------------------------------------------------------------- zdm lint
t_section "the example plans have no error"
db_new sqlite lint
T_PLANS="$ZDM_SRC/plans"
lint_run lint
t_rc "zdm lint plans/" 0
t_has "summary" " linted: 0 errors, 10 warnings, 0 allowed" "$ZOUT"
# (seven of them have no not_before, and plans/ has no zdm.toml: run-due
# would never contract them)
t_has "no soak time: 0007 warned about" "plans/0007_event_project_slug.toml:54: warning[missing-not-before]: plan 0007_event_project_slug has no soak time" "$ZOUT"
t_lacks "0005 has its not_before" "plan 0005_drop_legacy_flag has no soak time" "$ZOUT"
t_lacks "no error" "error[" "$ZOUT"
lint_run lint --json
t_rc "zdm lint --json" 0
t_eq "--json: errors" 0 "$(jq -r '.errors' <<<"$ZOUT")"
t_eq "--json: findings are warnings" "warning" "$(jq -r '[.findings[].severity] | unique | join(" ")' <<<"$ZOUT")"
t_eq "--json: plans" "$(ls "$ZDM_SRC"/plans/*.toml | wc -l)" "$(jq -r '.plans' <<<"$ZOUT")"
for d in pg sqlite; do
  lint_run lint --dialect $d
  t_rc "zdm lint --dialect $d plans/" 0
done
lint_run help lint
t_rc "zdm help lint" 0
t_has "help names the rules" "index-not-concurrent, add-column-volatile-default" "$ZOUT"

t_section "unsafe SQL: exit 3 with the rule id"
plans_copy 0001_baseline
plan_write 0002_unsafe 'description = "unsafe"
requires = ["0001_baseline"]

[[expand.steps]]
sql = "CREATE INDEX events_pn ON events (project_name)"
down = "DROP INDEX events_pn"

[[expand.steps]]
sql.pg = """
ALTER TABLE employees ADD COLUMN token uuid DEFAULT gen_random_uuid();
UPDATE events SET legacy_flag = false"""
sql.sqlite = "SELECT 1"

[[contract.steps]]
sql = "ALTER TABLE events DROP COLUMN legacy_flag"'
lint_run lint
t_rc "zdm lint with unsafe SQL" 3
t_has "index rule, file:line:col" "$T_PLANS/0002_unsafe.toml:5:8: error[index-not-concurrent]: " "$ZOUT"
t_has "safe alternative" " -- CREATE INDEX CONCURRENTLY" "$ZOUT"
t_has "volatile default, line of the statement" "0002_unsafe.toml:10:1: error[add-column-volatile-default]" "$ZOUT"
t_has "mass update" "0002_unsafe.toml:11:1: error[mass-dml-in-expand]" "$ZOUT"
t_has "missing down" "0002_unsafe.toml:8: warning[missing-down]" "$ZOUT"
t_lacks "DROP COLUMN in contract is fine" "destructive-in-expand" "$ZOUT"
t_has "summary" "2 plans linted: 3 errors, 3 warnings, 0 allowed" "$ZOUT"
t_has "the error" "zdm lint found 3 errors" "$ZERR"

lint_run lint --json
t_rc "zdm lint --json with unsafe SQL" 3
t_eq "--json parses, errors" 3 "$(jq -r -s '.[0] | .errors' <<<"$ZOUT")"
t_eq "--json: rules" "index-not-concurrent add-column-volatile-default mass-dml-in-expand missing-down missing-not-before missing-not-before" \
    "$(jq -r -s '.[0] | [.findings[].rule] | join(" ")' <<<"$ZOUT")"
t_eq "--json: every field" "plan file line step phase rule severity message hint allowed column dialect" \
    "$(jq -r -s '.[0] | .findings[0] | keys_unsorted | join(" ")' <<<"$ZOUT")"
t_eq "--json: first finding" "0002_unsafe 5 1 expand error false" \
    "$(jq -r -s '.[0] | .findings[0] | "\(.plan) \(.line) \(.step) \(.phase) \(.severity) \(.allowed)"' <<<"$ZOUT")"

lint_run lint --allow index-not-concurrent,mass-dml-in-expand
t_rc "zdm lint --allow two rules" 3
t_has "allowed, said so" "error[index-not-concurrent]: CREATE INDEX events_pn" "$ZOUT"
t_has "allowed, said so" "(allowed: --allow)" "$ZOUT"
t_has "one error left" "1 error, 3 warnings, 2 allowed" "$ZOUT"
lint_run lint --allow index-not-concurent
t_rc "zdm lint --allow with a misspelt rule" 2
t_has "did you mean" 'did you mean "index-not-concurrent"' "$ZERR"

t_section "arguments: plan ids, files, directories; invalid plans"
lint_run lint 0001_baseline
t_rc "zdm lint PLAN (clean)" 0
t_has "one plan" "1 plan linted: 0 errors" "$ZOUT"
lint_run lint "$T_PLANS/0002_unsafe.toml"
t_rc "zdm lint FILE (requires not beside it is fine)" 3
lint_run lint "$ZDM_SRC/plans"
t_rc "zdm lint DIR" 0
lint_run lint 0003_nope
t_rc "zdm lint unknown PLAN" 2
printf 'description = 1\n' >"$T_DIR/bad.toml"
lint_run lint "$T_DIR/bad.toml"
t_rc "zdm lint of an invalid plan" 2
printf '[[expand.steps]]\nsql = """\nSELECT 1;\nSELEC 2"""\ndown = "SELECT 1"\n' >"$T_DIR/0009_syntax.toml"
lint_run lint "$T_DIR/0009_syntax.toml"
t_rc "zdm lint of SQL that does not parse" 3
t_has "parse error at its line" "0009_syntax.toml:4:1: error[parse-error]: not valid PostgreSQL: syntax error at or near \"SELEC\"" "$ZOUT"

t_section "plain SQL files and stdin: FILE:LINE:COL, zdm:allow, formats"
cat >"$T_DIR/mig.sql" <<'SQL'
BEGIN;
CREATE TABLE audit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz);
  ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();
-- zdm:allow index-not-concurrent users has 40 rows
CREATE INDEX users_a ON users (a);
CREATE INDEX users_b ON users (b); -- zdm:allow index-not-concurrent
COMMIT;
SQL
lint_run lint "$T_DIR/mig.sql"
t_rc "zdm lint FILE.sql" 3
t_has "line and column" "$T_DIR/mig.sql:3:3: error[add-column-volatile-default]" "$ZOUT"
t_has "allowed with its reason" "$T_DIR/mig.sql:5:1: error[index-not-concurrent]: CREATE INDEX users_a" "$ZOUT"
t_has "the reason" "(allowed: users has 40 rows)" "$ZOUT"
t_has "an allow without a reason allows nothing" "$T_DIR/mig.sql:6:36: error[allow-no-reason]" "$ZOUT"
t_lacks "the file's own BEGIN/COMMIT are fine" "transaction-control" "$ZOUT"
t_has "summary" "0 plans and 1 SQL file linted: 3 errors, 1 warning, 1 allowed" "$ZOUT"
t_has "no lock_timeout before the DDL" "$T_DIR/mig.sql:3:3: warning[missing-lock-timeout]" "$ZOUT"
ZRC=0
printf 'SELECT 1;\nDROP INDEX users_a;\n' | "$ZDM" lint - >"$T_DIR/last.out" 2>&1 || ZRC=$?
ZOUT=$(cat "$T_DIR/last.out")
t_rc "zdm lint - (stdin)" 3
t_has "stdin positions" "<stdin>:2:1: error[drop-index-not-concurrent]" "$ZOUT"
ZRC=0
printf 'CREATE INDEX i ON t (a);\nVACUUM;\n' | "$ZDM" lint --dialect sqlite - >"$T_DIR/last.out" 2>&1 || ZRC=$?
ZOUT=$(cat "$T_DIR/last.out")
t_rc "zdm lint --dialect sqlite -" 3
t_lacks "CREATE INDEX is fine on SQLite" "index-not-concurrent" "$ZOUT"
t_has "VACUUM is not" "<stdin>:2:1: error[sqlite-vacuum]" "$ZOUT"
lint_run lint --format github "$T_DIR/mig.sql"
t_rc "--format github" 3
t_has "a workflow annotation" "::error file=$T_DIR/mig.sql,line=3,col=3,title=zdm lint add-column-volatile-default::ADD COLUMN users.token" "$ZOUT"
t_lacks "allowed findings are not annotated" "users_a" "$ZOUT"
lint_run lint --format sarif "$T_DIR/mig.sql"
t_rc "--format sarif" 3
t_eq "sarif: version" "2.1.0" "$(jq -r '.version' <<<"$ZOUT")"
t_eq "sarif: results" 5 "$(jq -r '.runs[0].results | length' <<<"$ZOUT")"
t_eq "sarif: the results" "missing-lock-timeout warning 3 3,add-column-volatile-default error 3 3" \
    "$(jq -r '[.runs[0].results[0,1] | "\(.ruleId) \(.level) \(.locations[0].physicalLocation.region.startLine) \(.locations[0].physicalLocation.region.startColumn)"] | join(",")' <<<"$ZOUT")"
t_eq "sarif: the allowed one is suppressed" "users has 40 rows" \
    "$(jq -r '[.runs[0].results[] | select(.suppressions) | .suppressions[0].justification] | join(",")' <<<"$ZOUT")"
t_eq "sarif: ruleIndex points at the rule" "missing-lock-timeout add-column-volatile-default" \
    "$(jq -r '. as $d | [.runs[0].results[0,1].ruleIndex | $d.runs[0].tool.driver.rules[.].id] | join(" ")' <<<"$ZOUT")"
lint_run lint --format nope "$T_DIR/mig.sql"
t_rc "--format nope" 2
lint_run lint "$T_DIR/nonexistent.sql"
t_rc "a SQL file that is not there" 2
t_has "... said so, not as a plan missing from --plans" "$T_DIR/nonexistent.sql: no such file" "$ZERR"
# a plan that does not load is a finding CI sees: the SARIF file was left
# empty (its upload failed instead of showing the error), GitHub got none
printf 'description = 5\n' >"$T_DIR/0098_bad.toml"
lint_run lint --format sarif "$T_DIR/0098_bad.toml"
t_rc "sarif: an invalid plan" 2
t_eq "sarif: its problem as a result" "plan-invalid error $T_DIR/0098_bad.toml 1 15" \
    "$(jq -r '.runs[0].results[0] | "\(.ruleId) \(.level) \(.locations[0].physicalLocation.artifactLocation.uri) \(.locations[0].physicalLocation.region.startLine) \(.locations[0].physicalLocation.region.startColumn)"' <<<"$ZOUT")"
lint_run lint --format github "$T_DIR/0098_bad.toml"
t_has "github: an annotation" "::error file=$T_DIR/0098_bad.toml,line=1,col=15,title=zdm lint plan-invalid::the plan.description must be a string" "$ZOUT"
rm -f "$T_DIR/0098_bad.toml"

t_section "a statement over the depth bound: exit 2 at validate, lint and advance, no crash"
python3 -c "print('[[expand.steps]]\nsql = \"\"\"SELECT ' + ' + '.join(['1'] * 200000) + '\"\"\"\ndown = \"SELECT 1\"')" \
    >"$T_DIR/0099_deep.toml"
python3 -c "print('SELECT 1;\n  SELECT ' + ' + '.join(['1'] * 200000) + ';')" >"$T_DIR/deep.sql"
lint_run plan validate "$T_DIR/0099_deep.toml"
t_rc "plan validate" 2
t_has "says why, where" "0099_deep.toml:2:7: expand step 1.sql: line 1 of the SQL: a statement nesting deeper than 1000 levels" "$ZERR"
lint_run lint "$T_DIR/0099_deep.toml"
t_rc "zdm lint of the plan" 2
lint_run lint "$T_DIR/deep.sql"
t_rc "zdm lint of the SQL file" 2
t_has "file:line:col" "deep.sql:2:3: a statement nesting deeper than 1000 levels" "$ZERR"
ZRC=0
"$ZDM" lint - <"$T_DIR/deep.sql" >"$T_DIR/last.out" 2>&1 || ZRC=$?
t_rc "zdm lint - of it" 2
python3 -c "print('description = \"deep check\"\n[[expand.steps]]\nop = \"add_check\"\ntable = \"t\"\ncheck = \"' + ' + '.join(['a'] * 5000) + ' > 0\"')" \
    >"$T_DIR/0098_deep_op.toml"
lint_run plan validate "$T_DIR/0098_deep_op.toml"
t_rc "plan validate of an operation whose SQL would be too deep" 2
t_has "one message, at the op" "0098_deep_op.toml:2:1: expand step (op \"add_check\"): the SQL it becomes holds a statement nesting deeper than 1000 levels" "$ZERR"
t_has "once" "1 problem found" "$ZERR"

# ------------------------------------------------------------ zdm advance
t_section "advance on SQLite: SQLite's rules; a plain CREATE INDEX advances"
db_new sqlite adv
plans_copy 0001_baseline
plan_write 0002_index 'description = "a plain index: fine on SQLite"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "CREATE INDEX events_pn ON events (project_name)"
down = "DROP INDEX events_pn"'
zdm_complete 0001_baseline
zdm_run advance 0002_index
t_rc "advance of a plain CREATE INDEX on SQLite" 0
t_has "expanded" "0002_index: pending -> expanded" "$ZOUT"
t_eq "the index exists" 1 "$(db_sql "SELECT count(*) FROM sqlite_master WHERE name = 'events_pn'")"

plan_write 0003_rebuild 'description = "a whole-table copy holds the write lock"
requires = ["0001_baseline"]
[[expand.steps]]
sql = """
CREATE TABLE events_copy (id integer PRIMARY KEY, project_name text);
INSERT INTO events_copy SELECT id, project_name FROM events"""
down = "DROP TABLE events_copy"'
zdm_run advance 0003_rebuild
t_rc "advance with a SQLite lint error" 3
t_has "names the rule, line and column" "0003_rebuild.toml:6:1: error[sqlite-table-rebuild]" "$ZERR"
t_has "says how to allow it" "--allow sqlite-table-rebuild" "$ZERR"
t_eq "nothing changed: no table" 0 "$(db_sql "SELECT count(*) FROM sqlite_master WHERE name = 'events_copy'")"
t_eq "still pending" 0 "$(db_sql "SELECT count(*) FROM zdm_plans WHERE id = '0003_rebuild' AND phase <> 'pending'")"
zdm_run history 0003_rebuild
t_has "the refusal is in history" "refused" "$ZOUT"
t_has "with the rule" "sqlite-table-rebuild" "$ZOUT"
zdm_run advance 0003_rebuild --dry-run
t_rc "advance --dry-run with a lint error" 3
zdm_run advance 0003_rebuild --allow heavy-lock
t_rc "advance --allow of another rule" 3
zdm_run advance 0003_rebuild --allow nope
t_rc "advance --allow of an unknown rule" 2
zdm_run advance 0003_rebuild --allow sqlite-table-rebuild
t_rc "advance --allow sqlite-table-rebuild" 0
t_eq "the copy exists" 1 "$(db_sql "SELECT count(*) FROM sqlite_master WHERE name = 'events_copy'")"

t_section "allow_unsafe and zdm:allow; the SQL SQLite runs is what is linted"
plan_write 0004_allowed 'description = "allowed in the plan"
requires = ["0001_baseline"]
allow_unsafe = [{rule = "mass-dml-in-expand", reason = "events is tiny"}]
[[expand.steps]]
sql = "UPDATE events SET legacy_flag = legacy_flag"
down = "SELECT 1"'
zdm_run advance 0004_allowed
t_rc "advance with allow_unsafe" 0
t_has "the allowed finding is logged" "(allowed: events is tiny)" "$ZERR"
plan_write 0005_inline 'description = "allowed in the SQL"
requires = ["0001_baseline"]
[[expand.steps]]
sql = """
-- zdm:allow mass-dml-in-expand a few rows only
UPDATE events SET legacy_flag = legacy_flag"""
down = "SELECT 1"'
zdm_run advance 0005_inline
t_rc "advance with -- zdm:allow RULE reason" 0
t_has "the reason is logged" "(allowed: a few rows only)" "$ZERR"
plan_write 0006_noreason 'description = "an allow without a reason"
requires = ["0001_baseline"]
[[expand.steps]]
sql = """
UPDATE events SET legacy_flag = legacy_flag -- zdm:allow mass-dml-in-expand
"""
down = "SELECT 1"'
zdm_run advance 0006_noreason
t_rc "advance with a zdm:allow without a reason" 3
t_has "allow-no-reason" "error[allow-no-reason]" "$ZERR"
plan_write 0007_pg_variant 'description = "the pg variant is unsafe, the sqlite one fine"
requires = ["0001_baseline"]
[[expand.steps]]
sql.pg = "ALTER TABLE employees ALTER COLUMN name TYPE varchar(10)"
sql.sqlite = "SELECT 1"
down = "SELECT 1"'
zdm_run advance 0007_pg_variant
t_rc "advance on SQLite of a plan whose sql.pg only is unsafe" 0
lint_run lint 0007_pg_variant
t_rc "zdm lint (no target) still flags sql.pg" 3
t_has "alter-type-rewrite" "error[alter-type-rewrite]" "$ZOUT"
lint_run lint --dialect sqlite 0007_pg_variant
t_rc "zdm lint --dialect sqlite lints what SQLite runs" 0
ZRC=0
ZDM_DATABASE_URL="sqlite:$T_DIR/x.db" "$ZDM" --plans "$T_PLANS" lint 0007_pg_variant >/dev/null 2>&1 || ZRC=$?
t_rc "\$ZDM_DATABASE_URL=sqlite:... picks the dialect" 0
t_eq "and does not create a file" "no" "$([ -e "$T_DIR/x.db" ] && echo yes || echo no)"

t_section "advance of a plan over the depth bound: exit 2, nothing changed"
cp "$T_DIR/0099_deep.toml" "$T_PLANS/0099_deep.toml"
zdm_run advance 0099_deep
t_rc "advance" 2
t_eq "no state row" 0 "$(db_sql "SELECT count(*) FROM zdm_plans WHERE id = '0099_deep'")"
rm "$T_PLANS/0099_deep.toml"

t_section "contract is gated too"
plan_write 0008_contract 'description = "contract with a whole-table copy"
requires = ["0001_baseline"]
[[expand.steps]]
sql = "SELECT 1"
down = "SELECT 1"
[[contract.steps]]
sql.pg = "SELECT 1"
sql.sqlite = "CREATE TABLE employees_copy AS SELECT * FROM employees"'
zdm_run advance 0008_contract
t_rc "expand: the contract error counts already" 3
t_has "sqlite-table-rebuild" "error[sqlite-table-rebuild]" "$ZERR"
zdm_run advance 0008_contract --allow sqlite-table-rebuild
t_rc "expand with --allow" 0
zdm_run advance 0008_contract
t_rc "backfill: no lint" 0
zdm_run advance 0008_contract
t_rc "cutover: no lint" 0
zdm_run advance 0008_contract
t_rc "contract refused" 3
t_has "in contract" "zdm lint found 1 error in contract" "$ZERR"
zdm_run advance 0008_contract --allow sqlite-table-rebuild
t_rc "contract with --allow" 0
t_has "complete" "0008_contract: cut_over -> complete" "$ZOUT"

t_section "missing-not-before: a plan without soak time, unless zdm.toml gives one"
plans_empty
plan_write 0001_soak '[[expand.steps]]
sql = "CREATE TABLE soak (id bigint PRIMARY KEY)"
down = "DROP TABLE soak"
[contract]
verify = "SELECT 1"'
plan_write 0002_own '[[expand.steps]]
sql = "CREATE TABLE own (id bigint PRIMARY KEY)"
down = "DROP TABLE own"
[contract]
not_before = "cutover + 2h"'
lint_run lint
t_rc "a warning only: exit 0" 0
t_has "the plan without, at its [contract]" "0001_soak.toml:4: warning[missing-not-before]: plan 0001_soak has no soak time" "$ZOUT"
t_has "what to do" "-- not_before = \"cutover + 24h\" under [contract]" "$ZOUT"
t_lacks "the plan with its own not_before" "plan 0002_own has no soak" "$ZOUT"
t_has "summary" "2 plans linted: 0 errors, 1 warning, 0 allowed" "$ZOUT"
lint_run lint --json 0001_soak
t_eq "--json: rule, severity, phase" "missing-not-before warning contract" \
    "$(jq -r -s '.[0] | .findings[0] | "\(.rule) \(.severity) \(.phase)"' <<<"$ZOUT")"
# the project's default (zdm.toml, in the plans directory's parent)
printf '[contract]\nnot_before = "cutover + 24h"\n' >"$(dirname "$T_PLANS")/zdm.toml"
lint_run lint
t_rc "with zdm.toml's default" 0
t_lacks "with zdm.toml's default: no warning" "missing-not-before" "$ZOUT"
lint_run lint "$T_PLANS/0001_soak.toml"
t_lacks "a plan file named: zdm.toml beside its directory counts" "missing-not-before" "$ZOUT"
printf '[contract]\nnot_befor = "cutover + 24h"\n' >"$(dirname "$T_PLANS")/zdm.toml"
lint_run lint
t_rc "a broken zdm.toml: exit 2" 2
t_has "a broken zdm.toml: says so" "the project file zdm.toml is invalid" "$ZERR"
rm -f "$(dirname "$T_PLANS")/zdm.toml"

t_finish
