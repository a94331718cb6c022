#!/usr/bin/env bash
# Day one for a team coming from Alembic: zdm new (numbering, heads,
# templates, refusals), advance --all [--to], plan graph, the verb
# pointers for Alembic commands, and zdm baseline on PostgreSQL and
# SQLite with an alembic_version table (the baseline recreates the schema
# on an empty database, and an empty baseline is legal).
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init day_one

t_section "verb pointers and did-you-mean"
for pair in "upgrade:advance --all" "downgrade:zdm rollback" "current:zdm status" \
            "revision:zdm new" "migrate:zdm new" "heads:zdm plan graph"; do
    verb=${pair%%:*}; want=${pair#*:}
    out=$("$ZDM" "$verb" 2>&1); rc=$?
    t_eq "zdm $verb exit" 2 "$rc"
    t_has "zdm $verb points at $want" "$want" "$out"
done
# As typed from Alembic and Flask-Migrate habit: with their options, and
# with Flask's "db" group in front.
for line in "upgrade head:advance --all" "downgrade -1:zdm rollback" "revision --autogenerate -m add_x:zdm new" \
            "migrate -m add_x:zdm new" "db upgrade:advance --all" "db migrate -m add_x:zdm new" "db init:zdm init"; do
    args=${line%%:*}; want=${line#*:}
    # shellcheck disable=SC2086 # the words of the command line
    out=$("$ZDM" $args 2>&1); rc=$?
    t_eq "zdm $args exit" 2 "$rc"
    t_has "zdm $args points at $want" "$want" "$out"
done
out=$("$ZDM" stauts --bogus 2>&1)
t_has "misspelt command before an unknown option" 'did you mean "status"' "$out"
out=$("$ZDM" stauts 2>&1)
t_has "misspelt command" 'did you mean "status"' "$out"
out=$("$ZDM" plan new x 2>&1)
t_has "zdm plan new points at zdm new" "zdm new" "$out"

t_section "zdm new"
T_PLANS=$T_DIR/plans
db_new sqlite new
zdm_run new first
t_rc "new in a missing directory" 0
t_eq "first plan path" "$T_PLANS/0001_first.toml" "$ZOUT"
t_has "template tours every section" "[backfill.dual_write]" "$(cat "$T_PLANS/0001_first.toml")"
t_has "no requires for the first plan" "requires = []" "$(cat "$T_PLANS/0001_first.toml")"
zdm_run new first
t_rc "an existing name" 2
zdm_run new second
t_rc "new while 0001 is still an empty template" 0
t_has "requires the head" 'requires = ["0001_first"]' "$(cat "$T_PLANS/0002_second.toml")"
zdm_run new --op add_column --op drop_column third
t_rc "new --op" 0
f=$(cat "$T_PLANS/0003_third.toml")
t_has "add_column skeleton in expand" $'[[expand.steps]]\nop = "add_column"' "$f"
t_has "drop_column skeleton in contract" $'[[contract.steps]]\nop = "drop_column"' "$f"
zdm_run plan validate
t_rc "skeletons do not validate until filled" 2
t_has "validate names the empty field" "0003_third.toml:" "$ZERR"
zdm_run new --op no_such_op fourth
t_rc "unknown op" 2
zdm_run new 'bad name'
t_rc "bad name" 2

t_section "advance --all --to, plan graph (sqlite)"
plans_copy
db_new sqlite all
zdm_run plan graph --json
t_eq "heads of the sample plans" '["0003_event_type_index","0004_employee_email_required","0005_drop_legacy_flag","0007_event_project_slug","0008_employee_full_name"]' "$(jq -c .heads <<<"$ZOUT")"
zdm_run advance --all --to expanded
t_rc "--to expanded stops dependents at the requires gate" 3
t_has "summary names why" "waits for 0001_baseline" "$ZOUT"
t_eq "baseline expanded" "expanded" "$(db_sql "SELECT phase FROM zdm_plans WHERE id = '0001_baseline'")"
t_eq "no refusal written for a plan that waits" "0" "$(db_sql "SELECT count(*) FROM zdm_history WHERE outcome = 'refused'")"
zdm_run advance --all
t_rc "advance --all" 0
t_eq "every plan complete" "8" "$(db_sql "SELECT count(*) FROM zdm_plans WHERE phase = 'complete'")"
t_eq "no refusals in a successful run" "0" "$(db_sql "SELECT count(*) FROM zdm_history WHERE outcome = 'refused'")"
zdm_run check
t_rc "check after advance --all" 0
zdm_run plan graph
t_has "graph shows phases" "0007_event_project_slug" "$ZOUT"
t_match "graph marks heads" '^\* 0008_employee_full_name +complete' "$ZOUT"
zdm_run plan graph --dot
t_has "dot edge" '"0007_event_project_slug" -> "0006_event_category";' "$ZOUT"
zdm_run advance --all --json
t_rc "advance --all again" 0
t_eq "json summary is the last line" "true" "$(tail -n1 <<<"$ZOUT" | jq .ok)"
zdm_run advance --all --to pending
t_rc "--to pending" 2

t_section "advance --all stops at a gate (exit 3)"
plans_copy
db_new sqlite gate
plan_write 0009_gated_with_an_identifier_longer_than_the_old_column 'requires = ["0008_employee_full_name"]
[[expand.steps]]
sql = "CREATE TABLE gated (id integer)"
down = "DROP TABLE gated"
[contract]
not_before = "cutover + 1h"
[[contract.steps]]
sql = "DROP TABLE gated"'
zdm_run advance --all
t_rc "a contract not yet due" 3
t_match "the summary lists the gated plan" '0009_gated_with_an_identifier_longer_than_the_old_column +pending -> cut_over +stopped: ' "$ZOUT"
t_eq "the others complete" "8" "$(db_sql "SELECT count(*) FROM zdm_plans WHERE phase = 'complete'")"
zdm_run history
# every row's outcome column starts at the same place, long ids or not
t_eq "history columns line up" 1 "$(grep -E '^[0-9]{4}-' <<<"$ZOUT" | awk '{ print index($0, "@") }' | sort -u | wc -l)"

t_section "validate and show read zdm.toml; -q is quiet; hook output set apart"
mkdir -p "$T_DIR/proj/plans"
T_PLANS=$T_DIR/proj/plans
cp "$ZDM_SRC/plans/0001_baseline.toml" "$T_PLANS/"
printf '[hooks]\ncutovr = ["true"]\n' >"$T_DIR/proj/zdm.toml"
zdm_run plan validate
t_rc "a misspelt key in zdm.toml" 2
t_has "named with file:line and a suggestion" 'zdm.toml:2:1: unknown key "cutovr" in [hooks] (did you mean "cutover"?)' "$ZERR"
printf '[hooks]\ncutover = ["echo switched to green"]\n' >"$T_DIR/proj/zdm.toml"
zdm_run plan show 0001_baseline
t_lacks "plan show does not say there is no cutover hook" "no cutover hooks" "$ZOUT"
t_has "it shows zdm.toml's" "run echo switched to green  (zdm.toml)" "$ZOUT"
zdm_run -q plan validate
t_rc "validate -q" 0
t_eq "validate -q prints nothing" "" "$ZOUT$ZERR"
# one file alone, as a pre-commit hook names the changed ones: what it
# requires is in --plans (every plan with requires failed so)
printf 'requires = ["0001_baseline"]\n[[expand.steps]]\nsql = "SELECT 1"\ndown = "SELECT 1"\n' >"$T_PLANS/0003_one.toml"
zdm_run plan validate "$T_PLANS/0003_one.toml"
t_rc "validate one file that requires a plan of --plans" 0
printf 'requires = ["0001_baselin"]\n[[expand.steps]]\nsql = "SELECT 1"\ndown = "SELECT 1"\n' >"$T_PLANS/0003_one.toml"
zdm_run plan validate "$T_PLANS/0003_one.toml"
t_rc "... one that requires a plan nowhere" 2
t_has "... named, with the plan it may mean" 'requires "0001_baselin", which is not among the loaded plans (did you mean "0001_baseline"?)' "$ZERR"
rm -f "$T_PLANS/0003_one.toml"
db_new sqlite hooks
zdm_run advance --all
t_rc "advance --all with a cutover hook" 0
t_match "hook output is set apart" 'hook cutover\[echo\]:   \| switched to green' "$ZERR"
plan_write 0002_later 'requires = ["0001_baseline"]
[[expand.steps]]
sql = "CREATE TABLE later (id integer)"
down = "DROP TABLE later"'
zdm_run schedule 0002_later --after 1h
t_rc "scheduling ahead" 0
t_has "scheduling a plan that is not cut over says so" "the plan is pending, not cut over" "$ZERR"
zdm_run help schedule
t_lacks "help does not show a [contract] argument" "schedule PLAN [contract]" "$ZOUT"
rm -f "$T_DIR/proj/zdm.toml"

baseline_checks() {   # DIALECT
    local d=$1
    t_section "baseline on $d with alembic_version"
    db_new "$d" "adopt_$d"
    if [ "$d" = sqlite ]; then
        db_sql "CREATE TABLE users (id INTEGER PRIMARY KEY, email text NOT NULL UNIQUE, name text DEFAULT 'x');
                CREATE INDEX users_name ON users (name);
                CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id integer REFERENCES users (id), body text CHECK (length(body) < 500));
                CREATE VIEW user_emails AS SELECT id, email FROM users;
                -- A full-text index: its shadow tables come with it.
                CREATE VIRTUAL TABLE post_search USING fts5(body);
                CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
                INSERT INTO alembic_version VALUES ('ae1027a6acf');" >/dev/null
    else
        db_sql "CREATE EXTENSION citext;
                CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
                CREATE TABLE users (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, email citext NOT NULL UNIQUE, name text DEFAULT 'x', mood mood NOT NULL DEFAULT 'ok');
                CREATE INDEX users_name ON users (name);
                CREATE SEQUENCE legacy_seq;
                CREATE TABLE posts (id serial PRIMARY KEY, user_id bigint REFERENCES users (id), body text CHECK (length(body) < 500), n int DEFAULT nextval('legacy_seq'));
                CREATE SCHEMA reports;
                CREATE TABLE reports.daily (day date PRIMARY KEY, total numeric(12,2) NOT NULL);
                CREATE VIEW user_emails AS SELECT id, email FROM users;
                -- A view redefined on a view made after it (its oid is older
                -- than what it needs), and an index on a materialized view.
                CREATE VIEW user_ids AS SELECT id FROM users;
                CREATE VIEW base_ids AS SELECT id FROM users;
                CREATE OR REPLACE VIEW user_ids AS SELECT id FROM base_ids;
                CREATE MATERIALIZED VIEW user_count AS SELECT count(*) AS n FROM users;
                CREATE UNIQUE INDEX user_count_n ON user_count (n);
                -- A partitioned table, a partition, an index on the parent
                -- (each partition gets its own), and a sequence of another type.
                CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
                CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
                CREATE INDEX events_at ON events (at);
                CREATE SEQUENCE small_seq AS smallint INCREMENT BY 5 START WITH 10 CYCLE;
                -- An unlogged table, a column with its own collation.
                CREATE UNLOGGED TABLE cache (k text COLLATE \"C\" PRIMARY KEY, v text);
                -- Table inheritance, the child named before its parent.
                CREATE TABLE log_base (at timestamptz NOT NULL DEFAULT now(), CHECK (at > '2000-01-01'));
                CREATE TABLE audit_log (who text) INHERITS (log_base);
                CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
                INSERT INTO alembic_version VALUES ('ae1027a6acf');" >/dev/null
    fi
    T_PLANS=$T_DIR/adopt_$d; mkdir -p "$T_PLANS"
    zdm_run baseline
    t_rc "baseline" 0
    t_eq "baseline path" "$T_PLANS/0001_baseline.toml" "$ZOUT"
    f=$(cat "$T_PLANS/0001_baseline.toml")
    t_has "alembic revision in the description" "Alembic revision ae1027a6acf" "$f"
    t_lacks "alembic_version itself left out" "CREATE TABLE alembic_version" "$f"
    zdm_run status --json
    t_eq "stamped complete" "complete" "$(jq -r '.plans[0].phase' <<<"$ZOUT")"
    zdm_run history --json
    t_has "revision in history" "Alembic revision ae1027a6acf" "$ZOUT"
    zdm_run plan validate
    t_rc "the baseline validates" 0
    zdm_run lint
    t_rc "the baseline lints clean" 0
    zdm_run baseline
    t_rc "a second baseline of the same name" 2
    # A baseline describes the whole schema: written on top of plans, it
    # would recreate their tables on a fresh database, after them, and fail.
    zdm_run baseline again
    t_rc "a baseline on top of existing plans" 2
    t_has "the refusal names the plans" "0001_baseline" "$ZERR"
    t_eq "no second baseline file" "" "$(ls "$T_PLANS" | grep again || true)"
    # The baseline recreates the schema on an empty database.
    local adopted=$T_DB adopted_file=$T_SQLITE_FILE adopted_url=$T_PG_URL
    db_new "$d" "fresh_$d"
    zdm_run advance --all
    t_rc "advance --all on an empty database" 0
    local q
    if [ "$d" = sqlite ]; then
        q="SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'zdm%' AND name NOT LIKE 'sqlite%' AND name <> 'alembic_version' ORDER BY name"
    else
        q="SELECT typname, string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum JOIN pg_type ON pg_type.oid = enumtypid GROUP BY 1;
           SELECT extname FROM pg_extension ORDER BY 1;
           SELECT table_schema, table_name, column_name, data_type, udt_name, is_nullable, coalesce(column_default, '') FROM information_schema.columns WHERE table_schema IN ('public', 'reports') AND table_name <> 'alembic_version' ORDER BY 1, 2, 3;
           SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace IN ('public'::regnamespace, 'reports'::regnamespace) AND conname <> 'alembic_version_pkey' ORDER BY 1;
           SELECT indexdef FROM pg_indexes WHERE schemaname IN ('public', 'reports') AND tablename <> 'alembic_version' ORDER BY 1;
           SELECT c.relname, c.relkind, pg_get_viewdef(c.oid) FROM pg_class c WHERE c.relkind IN ('v', 'm') AND c.relnamespace = 'public'::regnamespace ORDER BY 1;
           SELECT c.relname, c.relkind, coalesce(pg_get_expr(c.relpartbound, c.oid), ''), coalesce(pg_get_partkeydef(c.oid), ''), c.relispartition FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE 'zdm%' AND c.relname NOT LIKE 'alembic%' ORDER BY 1;
           SELECT seqrelid::regclass, seqtypid::regtype, seqstart, seqincrement, seqmax, seqmin, seqcycle FROM pg_sequence WHERE seqrelid::regclass::text NOT LIKE 'zdm%' ORDER BY seqrelid::regclass::text;
           SELECT d.objid::regclass, d.refobjid::regclass, d.refobjsubid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' WHERE d.deptype = 'a' AND d.classid = 'pg_class'::regclass AND d.objid::regclass::text NOT LIKE 'zdm%' ORDER BY d.objid::regclass::text;
           SELECT c.relname, c.relpersistence, a.attname, co.collname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 JOIN pg_collation co ON co.oid = a.attcollation WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname <> 'alembic_version' ORDER BY 1, 3;
           SELECT inhrelid::regclass, inhparent::regclass, inhseqno FROM pg_inherits ORDER BY inhrelid::regclass::text, inhseqno"
    fi
    local fresh
    fresh=$(db_sql "$q")
    T_SQLITE_FILE=$adopted_file; T_PG_URL=$adopted_url; T_DB=$adopted
    t_eq "the recreated schema equals the adopted one" "$(db_sql "$q")" "$fresh"

    t_section "empty baseline on $d"
    db_new "$d" "empty_$d"
    T_PLANS=$T_DIR/empty_$d; mkdir -p "$T_PLANS"
    zdm_run baseline start
    t_rc "an empty database" 0
    t_has "empty baseline file" "baseline = true" "$(cat "$T_PLANS/0001_start.toml")"
    zdm_run check
    t_rc "the empty baseline counts as complete" 0
}

baseline_checks sqlite
if t_pg_available; then
    t_pg_start
    baseline_checks pg
    t_section "baseline with alembic_version in another schema (version_table_schema)"
    db_new pg alembic_schema
    db_sql "CREATE SCHEMA app; CREATE TABLE app.alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
            INSERT INTO app.alembic_version VALUES ('5f0c1d2e3a4b'); CREATE TABLE app.items (id int);" >/dev/null
    T_PLANS=$T_DIR/alembic_schema; mkdir -p "$T_PLANS"
    zdm_run baseline
    t_rc "baseline" 0
    f=$(cat "$T_PLANS/0001_baseline.toml")
    t_has "its revision in the description" "Alembic revision 5f0c1d2e3a4b" "$f"
    t_lacks "the table itself left out" "alembic_version (" "$f"
else
    T_SKIPPED="no PostgreSQL"
fi
t_finish
