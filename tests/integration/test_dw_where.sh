#!/usr/bin/env bash
# test_dw_where.sh -- the dual-write trigger's `where` and `set` mean
# what they mean in the backfill's UPDATE, whichever way the trigger
# evaluates them.
#
# A `where` that reads the row's own columns only is an expression on NEW
# in the trigger function; any other (a subquery, say) a query on NEW seen
# as a one-row table.  Two identical tables, two plans whose wheres select
# the same rows, one of each kind:
#   ta  where = "score > 10 AND dst IS NULL"                      (expression)
#   tb  where = "score > 10 AND dst IS NULL AND EXISTS (SELECT 1)" (query)
# The rows' scores are NULL, 5 and 20: a NULL `where` matches nothing.
# After expand, the application writes every row's source and inserts new
# rows; then, in both tables alike, dst = upper(src) exactly where score >
# 10, and NULL elsewhere.  The functions are read back to show that each
# table had the kind of evaluation it was meant to have.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init test_dw_where

# plan NAME TABLE WHERE
plan() {
    plan_write "$1" "[[expand.steps]]
sql = \"CREATE TABLE $2 (id bigint PRIMARY KEY, src text NOT NULL, score integer, dst text)\"
down = \"DROP TABLE $2\"
[backfill]
table = \"$2\"
where = \"$3\"
set.dst = \"upper(src)\"
[backfill.dual_write]
sources = [\"src\"]"
}

# dw_plan NAME TABLE "COLUMN DEFINITION; ..." "LINES": a plan with one
# expand step per column (ALTER TABLE TABLE ADD COLUMN, its down the DROP:
# SQLite adds one column a statement) and a [backfill] of TABLE with the
# LINES that follow "table = ...".
dw_plan() {
    local steps="" c defs
    IFS=';' read -ra defs <<<"$3"
    for c in "${defs[@]}"; do
        c=${c# }
        steps+="[[expand.steps]]
sql = \"ALTER TABLE $2 ADD COLUMN $c\"
down = \"ALTER TABLE $2 DROP COLUMN ${c%% *}\"
"
    done
    plan_write "$1" "${steps}[backfill]
table = \"$2\"
$4"
}

# expand_backfill NAME [WHAT]: plan NAME's expand, then its backfill, each
# expected to succeed.
expand_backfill() {
    zdm_run advance "$1"
    t_rc "expand${2:+ ($2)}" 0 || echo "$ZERR" >&2
    zdm_run backfill "$1"
    t_rc "backfill${2:+ ($2)}" 0 || echo "$ZERR" >&2
}

# refused NAME WHY TABLE COLUMN (PostgreSQL): plan NAME's expand exits 3
# saying WHY, and TABLE has no COLUMN after it (nothing changed).
refused() {
    zdm_run advance "$1"
    t_rc "expand refused" 3
    t_has "... saying why" "$2" "$ZERR"
    t_eq "... nothing changed" 0 "$(db_sql "SELECT count(*) FROM information_schema.columns
                                          WHERE table_name = '$3' AND column_name = '$4'")"
}

# the function body of plan $1's forward trigger
body() {
    db_sql "SELECT prosrc FROM pg_proc WHERE proname = 'zdm_dw_$1_fwd'"
}

# rows of table $1 whose dst is not what the where says
wrong() {
    db_sql "SELECT count(*) FROM $1 WHERE dst IS DISTINCT FROM
              (CASE WHEN score > 10 THEN upper(src) END)"
}

case_same() {
    t_section "an expression on NEW and a query on NEW select the same rows"
    db_new pg dw_where
    plans_empty
    plan pa ta "score > 10 AND dst IS NULL"
    plan pb tb "score > 10 AND dst IS NULL AND EXISTS (SELECT 1)"
    zdm_run advance pa
    t_rc "expand pa" 0 || echo "$ZERR" >&2
    zdm_run advance pb
    t_rc "expand pb" 0
    t_has "pa: the where is an expression on NEW" "IS NOT TRUE" "$(body pa)"
    t_lacks "pa: ... not a query" "NOT EXISTS" "$(body pa)"
    t_has "pb: the where is a query on NEW" "NOT EXISTS" "$(body pb)"
    local t
    for t in ta tb; do
        # the application: rows inserted (the INSERT trigger), then every
        # source written (the UPDATE trigger)
        db_sql "INSERT INTO $t (id, src, score)
                SELECT g, 'r' || g, (ARRAY[NULL, 5, 20])[g % 3 + 1] FROM generate_series(1, 30) g" >/dev/null
        db_sql "UPDATE $t SET dst = NULL" >/dev/null
        db_sql "UPDATE $t SET src = src || 'x'" >/dev/null
        db_sql "INSERT INTO $t (id, src, score)
                SELECT g, 'n' || g, (ARRAY[NULL, 5, 20])[g % 3 + 1] FROM generate_series(31, 60) g" >/dev/null
    done
    t_eq "ta: dst is upper(src) exactly where score > 10" 0 "$(wrong ta)"
    t_eq "tb: the same" 0 "$(wrong tb)"
    t_eq "ta: rows converted (score 20)" 20 "$(db_sql "SELECT count(dst) FROM ta")"
    t_eq "the two tables agree row by row" 0 \
        "$(db_sql "SELECT count(*) FROM ta FULL JOIN tb USING (id) WHERE ta.dst IS DISTINCT FROM tb.dst")"
    t_eq "rows with a NULL score are untouched" 0 "$(db_sql "SELECT count(dst) FROM ta WHERE score IS NULL")"
}

# A column whose name is not ASCII, unquoted in set and where: the trigger
# function reads it as NEW."größe".  Its bytes were read as punctuation,
# the name stayed bare in the function, and every write of the
# application failed once expand had installed it (column "größe" does
# not exist); the preflight, which compiled the expression against the
# table under the name new, resolved the bare name and let it pass.
case_names() {
    t_section "a non-ASCII column name in set and where"
    db_new pg dw_names
    plans_empty
    plan_write pc "[[expand.steps]]
sql = \"CREATE TABLE tc (id bigint PRIMARY KEY, größe text NOT NULL, dst text)\"
down = \"DROP TABLE tc\"
[backfill]
table = \"tc\"
where = \"größe <> 'skip'\"
set.dst = \"upper(größe)\"
[backfill.dual_write]
sources = [\"größe\"]"
    zdm_run advance pc
    t_rc "expand pc" 0
    t_has "the function reads NEW.\"größe\"" 'upper(NEW."größe")' "$(body pc)"
    t_has "... and the where is an expression on NEW" 'IF (NEW."größe" <> '"'skip'" "$(body pc)"
    db_sql "INSERT INTO tc (id, größe) VALUES (1, 'a'), (2, 'skip'), (3, 'c')" >/dev/null
    t_eq "the application's inserts work" 3 "$(db_sql "SELECT count(*) FROM tc")"
    db_sql "UPDATE tc SET größe = größe || 'x' WHERE id = 1" >/dev/null
    t_eq "... and its updates" "ax" "$(db_sql "SELECT größe FROM tc WHERE id = 1")"
    t_eq "converted where it matches, untouched where not" "1:AX 2: 3:C" \
        "$(db_sql "SELECT string_agg(id || ':' || coalesce(dst, ''), ' ' ORDER BY id) FROM tc")"
}

# A `set` whose subquery names columns of its own table unqualified:
#   set.cust_name = "(SELECT name FROM customers WHERE id = customer_id)"
# where orders has id and name too.  The rewrite to NEW."col" took those
# for the row's: on PostgreSQL the function compared NEW.id with
# NEW.customer_id (an insert with id = customer_id failed: "more than one
# row returned by a subquery"; any other got NULL); on SQLite the UPDATE
# trigger's WHEN ("the row is not yet consistent") computed the same
# wrong value and, where it equalled the one stored (NULL: a customer that
# does not exist), skipped the row.  Invariant: after the application's
# inserts and updates, before and after the backfill, every row holds
# what the subquery gives, and every write of the application worked.
case_subquery() {
    local dialect=$1
    t_section "$dialect: a set whose subquery names its own table's columns unqualified"
    db_new "$dialect" dw_subquery
    plans_empty
    db_sql "CREATE TABLE customers (id integer PRIMARY KEY, name text);
            CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, name text)" >/dev/null
    db_sql "INSERT INTO customers (id, name) VALUES (1, 'c1'), (2, 'c2'), (3, 'c3'), (4, 'c4'), (5, 'c5');
            INSERT INTO orders (id, customer_id, name) VALUES
              (10, 1, 'o10'), (11, 2, 'o11'), (12, 3, 'o12'), (13, 99, 'o13'), (14, 4, 'o14')" >/dev/null
    dw_plan ps orders "cust_name text" "set.cust_name = \"(SELECT name FROM customers WHERE id = customer_id)\"
[backfill.dual_write]
sources = [\"customer_id\"]"
    zdm_run advance ps
    t_rc "expand" 0 || echo "$ZERR" >&2
    local wrong="SELECT count(*) FROM orders o
                 WHERE o.cust_name IS NOT (SELECT c.name FROM customers c WHERE c.id = o.customer_id)"
    [ "$dialect" = pg ] && wrong=${wrong//IS NOT/IS DISTINCT FROM}
    # before the backfill: the INSERT trigger (id = customer_id too)
    t_eq "an insert with id = customer_id works" 0 \
        "$(db_sql "INSERT INTO orders (id, customer_id, name) VALUES (3, 3, 'o3'), (20, 2, 'o20')" 2>&1 | wc -l)"
    t_eq "inserted rows hold the subquery's value" "c3 c2" \
        "$(db_sql "SELECT cust_name FROM orders WHERE id IN (3, 20) ORDER BY id" | tr '\n' ' ' | sed 's/ $//')"
    zdm_run backfill ps
    t_rc "backfill" 0
    t_eq "after the backfill: every row right" 0 "$(db_sql "$wrong")"
    # after it: the UPDATE trigger; order 13 (customer 99, none: NULL)
    # moves to customer 4, orders 1..5 to a customer whose id is theirs
    t_eq "the application's updates work" 0 \
        "$(db_sql "UPDATE orders SET customer_id = 4 WHERE id = 13;
                   UPDATE orders SET customer_id = 5 WHERE id = 14;
                   UPDATE orders SET customer_id = id WHERE id = 3;
                   INSERT INTO orders (id, customer_id, name) VALUES (5, 5, 'o5'), (30, 7, 'o30');
                   UPDATE orders SET customer_id = 1 WHERE id = 30" 2>&1 | wc -l)"
    t_eq "every row holds the subquery's value" 0 "$(db_sql "$wrong")"
    t_eq "order 13 follows its new customer" "c4" "$(db_sql "SELECT cust_name FROM orders WHERE id = 13")"
    t_eq "rows written" 9 "$(db_sql "SELECT count(*) FROM orders")"
}

# Columns named like PL/pgSQL's own variables (found, tg_op), read by
# the where and the set in their query forms: inside the trigger function
# the name was "ambiguous" and every write of the application failed.
# The function now reads a column where the backfill's UPDATE does.
case_plpgsql_names() {
    t_section "columns named found and tg_op, read in the trigger's queries"
    db_new pg dw_plpgsql
    plans_empty
    db_sql "CREATE TABLE tv (id integer PRIMARY KEY, src text, found boolean, tg_op text)" >/dev/null
    dw_plan pv tv "dst text" "where = \"found AND dst IS NULL AND EXISTS (SELECT 1)\"
set.dst = \"(SELECT upper(src) || coalesce(tg_op, '-'))\"
[backfill.dual_write]
sources = [\"src\"]"
    zdm_run advance pv
    t_rc "expand" 0 || echo "$ZERR" >&2
    t_eq "the application's inserts work" 0 \
        "$(db_sql "INSERT INTO tv (id, src, found, tg_op) VALUES (1, 'a', true, 'x'), (2, 'b', false, 'y'),
                   (3, 'c', true, NULL)" 2>&1 | wc -l)"
    t_eq "converted as the backfill would, where found" "1:Ax 2: 3:C-" \
        "$(db_sql "SELECT string_agg(id || ':' || coalesce(dst, ''), ' ' ORDER BY id) FROM tv")"
}

# The application's session settings: the trigger function runs in it.
# Under the application's search_path the plan's function slug() was
# another one (or none: every write failed), under its TimeZone a
# timestamptz another date, under its DateStyle a date another string;
# under its role, "$user" in zdm's own search_path named the role's schema
# (its slug()).  The function keeps zdm's settings, its search_path schema
# by schema: what the application's writes get is what a session like the
# backfill's computes.
case_session() {
    t_section "the application's search_path, role, TimeZone and DateStyle do not change what the trigger computes"
    db_new pg dw_session
    plans_empty
    db_sql "CREATE SCHEMA app;
            CREATE FUNCTION public.slug(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower(\$1)';
            CREATE FUNCTION app.slug(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT ''APP:'' || upper(\$1)';
            CREATE TABLE app.customers (id integer PRIMARY KEY, name text);
            INSERT INTO app.customers VALUES (1, 'Bob');
            CREATE TABLE app.orders (id integer PRIMARY KEY, customer_id integer, created_at timestamptz);
            CREATE TABLE public.regions (id integer PRIMARY KEY, name text); INSERT INTO public.regions VALUES (1, 'North');
            SET client_min_messages = warning; DROP ROLE IF EXISTS zdm_dw_app; CREATE ROLE zdm_dw_app;
            CREATE SCHEMA zdm_dw_app AUTHORIZATION zdm_dw_app;
            CREATE FUNCTION zdm_dw_app.slug(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT ''ROLE:'' || \$1';
            GRANT USAGE ON SCHEMA app TO zdm_dw_app; GRANT ALL ON ALL TABLES IN SCHEMA app TO zdm_dw_app;
            GRANT SELECT ON public.regions TO zdm_dw_app" >/dev/null
    dw_plan pn app.orders "cust_slug text; created_on date; created_day text; region text" "set.cust_slug = \"(SELECT slug(name) FROM app.customers c WHERE c.id = customer_id)\"
set.created_on = \"created_at::date\"
set.created_day = \"created_at::date::text\"
set.region = \"(SELECT name FROM regions r WHERE r.id = customer_id)\"
[backfill.dual_write]
sources = [\"customer_id\", \"created_at\"]"
    zdm_run advance pn
    t_rc "expand" 0 || echo "$ZERR" >&2
    t_eq "the application's insert works under its own search_path, TimeZone and DateStyle" 0 \
        "$(db_sql "SET search_path = app, public; SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'German';
                   INSERT INTO orders (id, customer_id, created_at) VALUES (2, 1, '2024-05-01 23:30+00')" 2>&1 | wc -l)"
    local want
    want=$(db_sql "SELECT slug('Bob') || ' ' || '2024-05-01 23:30+00'::timestamptz::date || ' ' ||
                          '2024-05-01 23:30+00'::timestamptz::date::text")
    t_eq "... and gets the value the backfill's session computes" "$want" \
        "$(db_sql "SELECT cust_slug || ' ' || created_on || ' ' || created_day FROM app.orders WHERE id = 2")"
    t_eq "a temporary table of the application's does not stand for the plan's" "North" \
        "$(db_sql "CREATE TEMP TABLE regions (id integer, name text); INSERT INTO regions VALUES (1, 'Evil');
                   INSERT INTO app.orders (id, customer_id, created_at) VALUES (4, 1, '2024-05-01 23:30+00');
                   SELECT region FROM app.orders WHERE id = 4")"
    t_eq "under a role with a schema of its name, a write works" 0 \
        "$(db_sql "SET ROLE zdm_dw_app; INSERT INTO app.orders (id, customer_id, created_at)
                   VALUES (3, 1, '2024-05-01 23:30+00')" 2>&1 | wc -l)"
    t_eq "... and reads zdm's slug(), not the role's" "$want" \
        "$(db_sql "SELECT cust_slug || ' ' || created_on || ' ' || created_day FROM app.orders WHERE id = 3")"
}

# The settings that change a value's text (DateStyle, TimeZone,
# IntervalStyle, extra_float_digits, bytea_output) are kept by a trigger
# function only where the server finds the plan's expressions can meet
# such a value (each kept setting costs every call).  The invariant: under
# an application session with other values of all five, every expression
# converts a write to exactly what zdm's own session computes; and the
# expressions that meet none keep search_path alone.  One table and plan
# per expression: what one plan keeps is decided for all of its own.
# a TOML basic string's text: backslashes and quotes escaped
toml_str() {
    local v=${1//\\/\\\\}
    printf '%s' "${v//\"/\\\"}"
}
SETTLED_EXPRS=(
    "upper(n) || id::text"
    "n || E'\\''"
    "(id * 1.5)::text"
    "md5(n)"
    "CASE WHEN n LIKE 'a%' THEN 'x' ELSE current_user END"
)
UNSETTLED_EXPRS=(
    "d::text"
    "ts::date::text"
    "date_trunc('day', ts)::text"
    "f::text"
    "(f * 2)::text"
    "bt::text"
    "iv::text"
    "(d + iv)::text"
    "CURRENT_DATE::text"
    "row(id, d)::text"
    "concat(n, ' ', d)"
    "format('%s', ts)"
    "(SELECT max(o.od) FROM dw_other o)::text"
    "(SELECT o.od FROM dw_other o WHERE o.id = 1)::text"
    "CASE WHEN d > '05/02/2024' THEN 'late' ELSE 'early' END"
    "coalesce(NULL, d)::text"
    "greatest(d, d)::text"
    "(ARRAY[d])::text"
    "(ts AT TIME ZONE 'UTC')::text"
    "extract(hour FROM ts)::text"
    # found by a hostile helper: each was converted otherwise under the
    # application's settings while the function kept search_path alone
    "(SELECT c FROM dw_other_v WHERE dw_other_v.id = 1)"
    "dw_norm_date('2024-03-04')"
    "(SELECT x::text FROM dw_other2 WHERE dw_other2.id = 1)"
    "coalesce((('{' || n || '}')::text[])[1], 'was null')"
    # the second hostile helper's: "= (NULL)" under transform_null_equals,
    # a time zone abbreviation read at run time, XML under xmlbinary, text
    # search by its operator under another default_text_search_config
    "CASE WHEN nullif(n, n) = (NULL) THEN 'isnull' ELSE 'other' END"
    "CASE WHEN nullif(n, n) = /* c */ NULL THEN 'isnull' ELSE 'other' END"
    "(substr(n, 1, 0) || '2024-01-01 12:00 IST')::timestamptz::text"
    "xmlelement(name a, decode('deadbeef', 'hex'))::text"
    "CASE WHEN 'running dogs' || substr(n, 1, 0) @@ 'run' THEN 'y' ELSE 'n' END"
)
# target types: PL/pgSQL converts the value to the target's type in the
# application's session ('2024-01-01 00:00' into a timestamptz target)
TARGET_EXPRS=(
    "timestamptz|'2024-01-01 00:00'"
    "date|'01/02/2024'"
    "interval|'-1 2:03:04'"
    "text[]|'{a,NULL}'"
)
case_settings() {
    t_section "pg: the application's DateStyle, TimeZone, IntervalStyle, float digits and bytea output do not change what the trigger computes"
    db_new pg dw_settings
    plans_empty
    db_sql "CREATE TABLE dw_other (id int PRIMARY KEY, od date); INSERT INTO dw_other VALUES (1, '2024-03-04');
            CREATE VIEW dw_other_v AS SELECT id, od::text AS c FROM dw_other;
            CREATE FUNCTION dw_norm_date(text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT \$1::date::text';
            CREATE DOMAIN dw_d1 AS date[]; CREATE DOMAIN dw_d2 AS dw_d1;
            CREATE TABLE dw_other2 (id int PRIMARY KEY, x dw_d2); INSERT INTO dw_other2 VALUES (1, '{2024-03-04}')" >/dev/null
    local hostile="SET DateStyle = 'German'; SET TimeZone = 'Asia/Tokyo'; SET IntervalStyle = 'sql_standard';
                   SET extra_float_digits = 0; SET bytea_output = 'escape'; SET array_nulls = off;
                   SET transform_null_equals = on; SET timezone_abbreviations = 'India'; SET xmlbinary = 'hex';
                   SET default_text_search_config = 'simple';"
    local i=0 e kind wrong=0 kept bad_keep=0 bad_settled=0 ttype
    for kind in settled unsettled target; do
        local -n list=${kind^^}_EXPRS
        for e in "${list[@]}"; do
            i=$((i + 1))
            ttype=text
            if [ "$kind" = target ]; then
                ttype=${e%%|*}
                e=${e#*|}
            fi
            db_sql "CREATE TABLE s$i (id int PRIMARY KEY, n text, d date, ts timestamptz, f float8, bt bytea,
                                     iv interval, tgt $ttype);
                    INSERT INTO s$i VALUES (1, 'abc', '2024-05-01', '2024-05-01 23:30+00', 1.0 / 3, 'A',
                                           '1 day 2 hours', NULL)" >/dev/null
            # no where on a target of another type: reading it keeps the
            # settings anyway, and hid that the target was not read
            local where='where = "tgt IS NULL"'
            [ "$kind" = target ] && where=
            plan_write "p$i" "[backfill]
table = \"s$i\"
$where
set.tgt = \"$(toml_str "$e")\"
[backfill.dual_write]
sources = [\"n\", \"d\", \"ts\", \"f\", \"bt\", \"iv\"]"
            zdm_run advance "p$i"
            if [ "$ZRC" != 0 ]; then
                t_eq "expand of the plan of $e" 0 "$ZRC"
                echo "$ZERR" >&2
                continue
            fi
            # an insert and an update of a source, each under the hostile settings
            db_sql "$hostile INSERT INTO s$i VALUES (2, 'abd', '2024-05-01', '2024-05-01 23:30+00', 1.0 / 3, 'A',
                                                     '1 day 2 hours', NULL);
                    UPDATE s$i SET n = 'abe' WHERE id = 1" >/dev/null
            local n
            n=$(db_sql "SELECT count(*) FROM s$i WHERE tgt IS DISTINCT FROM ($e)::$ttype")
            if [ "$n" != 0 ]; then
                wrong=$((wrong + 1))
                t_note "$e: $n of 2 rows converted otherwise than zdm's session: $(db_sql "SELECT tgt || ' / ' || ($e) FROM s$i LIMIT 1")"
            fi
            # settled: none of the value settings; the others: some setting
            # beyond search_path (which one is what the rows above check)
            kept=$(db_sql "SELECT ('DateStyle=ISO, MDY' = ANY (proconfig))::text || ' ' ||
                                  (array_length(proconfig, 1) > 1)::text
                           FROM pg_proc WHERE proname = 'zdm_dw_p${i}_fwd'")
            [ "$kind" = settled ] && [ "${kept% *}" = true ] && bad_keep=$((bad_keep + 1)) &&
                t_note "$e keeps the value settings"
            [ "$kind" != settled ] && [ "${kept#* }" != true ] && bad_settled=$((bad_settled + 1)) &&
                t_note "$e keeps search_path alone"
        done
    done
    t_eq "every expression converts the application's writes as zdm's session does (${#SETTLED_EXPRS[@]} + ${#UNSETTLED_EXPRS[@]} + ${#TARGET_EXPRS[@]})" 0 "$wrong"
    t_eq "the expressions that meet no such value keep search_path alone" 0 "$bad_keep"
    t_eq "the others keep settings beyond search_path" 0 "$bad_settled"
    t_eq "a money value keeps lc_monetary" 1 \
        "$(db_sql "CREATE TABLE sm (id int PRIMARY KEY, m money, tgt text)" >/dev/null
           plan_write pm2 '[backfill]
table = "sm"
set.tgt = "m::text"
[backfill.dual_write]
sources = ["m"]'
           zdm_run advance pm2
           db_sql "SELECT count(*) FROM pg_proc WHERE proname = 'zdm_dw_pm2_fwd'
                     AND EXISTS (SELECT 1 FROM unnest(proconfig) c WHERE c LIKE 'lc_monetary=%')")"
}

# A backfill worker converts as the triggers do, whatever its own host's
# environment says: it takes the settings the plan's function keeps.  A
# worker started with PGTZ and PGDATESTYLE of its own wrote another text
# than the triggers, into rows they had converted too.
case_worker_settings() {
    t_section "pg: a worker whose environment sets another TimeZone and DateStyle converts as the triggers do"
    db_new pg dw_wset
    plans_empty
    db_sql "CREATE TABLE wt (id int PRIMARY KEY, src text, tgt text);
            INSERT INTO wt SELECT i, '2024-01-01 12:00+00' FROM generate_series(1, 50) i" >/dev/null
    plan_write pw '[backfill]
table = "wt"
set.tgt = "src::timestamptz::text"
[backfill.dual_write]
sources = ["src"]'
    zdm_run advance pw
    t_rc "expand" 0
    db_sql "SET TimeZone = 'Asia/Tokyo'; INSERT INTO wt VALUES (100, '2024-01-01 12:00+00')" >/dev/null
    PGTZ=Asia/Tokyo PGDATESTYLE=German zdm_run backfill pw
    t_rc "backfill" 0
    t_eq "every row holds what zdm's session computes" "51 0" \
        "$(db_sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE tgt IS DISTINCT FROM src::timestamptz::text) FROM wt")"
}

# The application's role is not zdm's: without SELECT on a table a set.*
# reads, every write of the application failed after an expand that
# passed; current_user (or row-level security) made the trigger compute
# another value than the backfill.  The function computes as the role that
# ran expand (SECURITY DEFINER).
case_app_role() {
    t_section "pg: an application role without zdm's privileges writes, and the trigger computes as the backfill"
    db_new pg dw_role
    plans_empty
    db_sql "SET client_min_messages = warning; DROP ROLE IF EXISTS zdm_dw_writer; CREATE ROLE zdm_dw_writer LOGIN;
            CREATE TABLE lk (k text PRIMARY KEY, v text); INSERT INTO lk VALUES ('a', 'A'), ('b', 'B');
            CREATE TABLE rt (id int PRIMARY KEY, src text, tgt text); INSERT INTO rt VALUES (1, 'a');
            GRANT SELECT, INSERT, UPDATE ON rt TO zdm_dw_writer" >/dev/null
    plan_write pr '[backfill]
table = "rt"
set.tgt = "(SELECT v FROM lk WHERE lk.k = src) || '"'"'/'"'"' || current_user"
[backfill.dual_write]
sources = ["src"]'
    expand_backfill pr
    t_eq "the application's role, without SELECT on lk, writes" 0 \
        "$(db_sql "SET ROLE zdm_dw_writer; INSERT INTO rt VALUES (2, 'b'); UPDATE rt SET src = 'b' WHERE id = 1" 2>&1 |
           grep -c ERROR)"
    t_eq "... and every row holds what the backfill computes" "2 0" \
        "$(db_sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE tgt IS DISTINCT FROM
                     (SELECT v FROM lk WHERE lk.k = src) || '/' || current_user) FROM rt")"
    t_eq "the function computes as its owner" t "$(db_sql "SELECT prosecdef FROM pg_proc WHERE proname = 'zdm_dw_pr_fwd'")"
    # where the application's role may create in a schema of the kept
    # search_path, its lower(varchar) beside lower(text) would run as the
    # owner on every write: the function stays the caller's
    db_sql "GRANT CREATE ON SCHEMA public TO zdm_dw_writer;
            CREATE TABLE rv (id int PRIMARY KEY, src varchar, tgt text);
            GRANT SELECT, INSERT, UPDATE ON rv TO zdm_dw_writer" >/dev/null
    plan_write pv '[backfill]
table = "rv"
set.tgt = "lower(src)"
[backfill.dual_write]
sources = ["src"]'
    zdm_run advance pv
    t_rc "expand with public writable by the application's role" 0
    t_eq "... the function computes as the caller" f "$(db_sql "SELECT prosecdef FROM pg_proc WHERE proname = 'zdm_dw_pv_fwd'")"
    t_eq "... so the application's overload runs with its own privileges only" "writer" \
        "$(db_sql "SET ROLE zdm_dw_writer;
                   CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql AS 'SELECT current_user::text';
                   INSERT INTO rv VALUES (1, 'X'); RESET ROLE; SELECT replace(tgt, 'zdm_dw_', '') FROM rv" | tail -1)"
}

# A table with a column of a domain over a domain over an array (no
# matter which): the catalog read of its columns found no row for the
# type's element and zdm crashed (helper's finding).  A source of a
# nondeterministic (case-insensitive) collation: its change of case was
# no change to the WHEN, even compared as text (the collation follows the
# cast), and the target kept the old case.
case_odd_types() {
    t_section "pg: a domain over a domain over an array, a case-insensitive source"
    db_new pg dw_odd
    plans_empty
    db_sql "CREATE DOMAIN dd1 AS date[]; CREATE DOMAIN dd2 AS dd1;
            CREATE TABLE od (id int PRIMARY KEY, s dd2, n text, tgt text);
            INSERT INTO od VALUES (1, '{2024-01-01}', 'a')" >/dev/null
    plan_write po '[backfill]
table = "od"
set.tgt = "upper(n)"
[backfill.dual_write]
sources = ["n"]'
    expand_backfill po "a domain over a domain over an array in the table"
    db_sql "INSERT INTO od VALUES (2, '{2024-01-02}', 'b')" >/dev/null
    t_eq "... and the triggers convert" "A B" "$(db_sql "SELECT string_agg(tgt, ' ' ORDER BY id) FROM od")"
    if [ "$(db_sql "SELECT count(*) FROM pg_collation WHERE collprovider = 'i'")" = 0 ]; then
        t_note "no ICU collations on this server: the case-insensitive source is not tried"
        return 0
    fi
    db_sql "CREATE COLLATION dw_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
            CREATE TABLE ci (id int PRIMARY KEY, s text COLLATE dw_ci, tgt text);
            INSERT INTO ci VALUES (1, 'x')" >/dev/null
    plan_write pc '[backfill]
table = "ci"
set.tgt = "s || '"'"'!'"'"'"
[backfill.dual_write]
sources = ["s"]'
    expand_backfill pc "a case-insensitive source"
    db_sql "UPDATE ci SET s = 'X' WHERE id = 1" >/dev/null
    t_eq "a change of case of the source converts" "X!" "$(db_sql "SELECT tgt FROM ci WHERE id = 1")"
}

# The text search configuration and the locale's settings change what
# to_tsvector and to_char make; under the application's own, its writes
# converted to other values than the backfill's.  Kept where an
# expression names such a function, and only there (each costs a call).
case_locale() {
    t_section "pg: the application's text search configuration and locale do not change what the trigger computes"
    db_new pg dw_locale
    plans_empty
    db_sql "CREATE TABLE docs (id integer PRIMARY KEY, body text, price numeric);
            INSERT INTO docs VALUES (1, 'The Cats', 1.5)" >/dev/null
    dw_plan pl docs "tsv text; price_txt text" "set.tsv = \"to_tsvector(body)::text\"
set.price_txt = \"to_char(price, 'FM990D00')\"
[backfill.dual_write]
sources = [\"body\", \"price\"]"
    expand_backfill pl
    local want
    want=$(db_sql "SELECT tsv FROM docs WHERE id = 1")
    t_eq "the application's insert under another configuration converts as the backfill did" "$want" \
        "$(db_sql "SET default_text_search_config = 'simple'; INSERT INTO docs VALUES (2, 'The Cats', 1.5);
                   SELECT tsv FROM docs WHERE id = 2")"
    t_has "the function keeps the locale's settings (to_char)" "lc_numeric=" \
        "$(db_sql "SELECT proconfig FROM pg_proc WHERE proname = 'zdm_dw_pl_fwd'")"
    dw_plan pm docs "up text" "set.up = \"upper(body)\"
[backfill.dual_write]
sources = [\"body\"]"
    zdm_run advance pm
    t_rc "expand of a plan that calls neither" 0
    t_lacks "... whose function keeps neither" "lc_numeric" \
        "$(db_sql "SELECT proconfig FROM pg_proc WHERE proname = 'zdm_dw_pm_fwd'")"
    t_lacks "... (text search)" "default_text_search_config" \
        "$(db_sql "SELECT proconfig FROM pg_proc WHERE proname = 'zdm_dw_pm_fwd'")"
}

# Names the rewrite to NEW."col" must leave alone: a column named user
# (bare, user is current_user), a column u before a U&'..' string.
case_keywords() {
    t_section "columns named like keywords and string prefixes"
    db_new pg dw_keywords
    plans_empty
    db_sql "CREATE TABLE tk (id integer PRIMARY KEY, \"user\" text, u integer, src text)" >/dev/null
    dw_plan pk tk "by_whom text; dst text" "set.by_whom = \"src || ':' || user\"
set.dst = \"U&'5' || src\"
[backfill.dual_write]
sources = [\"src\"]"
    zdm_run advance pk
    t_rc "expand" 0 || echo "$ZERR" >&2
    db_sql "INSERT INTO tk (id, \"user\", u, src) VALUES (1, 'bob', 3, 'x')" >/dev/null
    t_eq "user is current_user, U&'5' a string" "x:$(db_sql "SELECT current_user") 5x" \
        "$(db_sql "SELECT by_whom || ' ' || dst FROM tk WHERE id = 1")"
}

# SQLite quotes names in [..] and `..`: the UPDATE trigger's test read
# "[src]" rewritten to "[NEW."src"]", a column that does not exist, and
# every UPDATE of the application failed.
case_brackets() {
    t_section "sqlite: set names a column in [..] and \`..\`"
    db_new sqlite dw_brackets
    plans_empty
    db_sql "CREATE TABLE tq (id integer PRIMARY KEY, src text)" >/dev/null
    dw_plan pq tq "dst text" "set.dst = \"upper([src]) || lower(\`src\`)\"
[backfill.dual_write]
sources = [\"src\"]"
    zdm_run advance pq
    t_rc "expand" 0 || echo "$ZERR" >&2
    t_eq "the application's insert and update work" 0 \
        "$(db_sql "INSERT INTO tq (id, src) VALUES (1, 'a'); UPDATE tq SET src = 'b' WHERE id = 1" 2>&1 | wc -l)"
    t_eq "... and the row is converted" "Bb" "$(db_sql "SELECT dst FROM tq WHERE id = 1")"
}

# A stored generated column read by set or where: PostgreSQL's BEFORE
# trigger runs before it is computed and sees NULL (the trigger wrote
# NULL over backfilled values; a where on it matched rows outside it).
# Refused before anything changes, naming the expression.
case_generated() {
    t_section "pg: set or where reading a generated column is refused"
    db_new pg dw_generated
    plans_empty
    db_sql "CREATE TABLE tg (id integer PRIMARY KEY, price numeric, qty integer,
            total numeric GENERATED ALWAYS AS (price * qty) STORED)" >/dev/null
    dw_plan pg1 tg "total2 numeric" "set.total2 = \"total * 2\"
[backfill.dual_write]
sources = [\"price\", \"qty\"]"
    zdm_run advance pg1
    t_rc "set reading total" 3
    t_has "... named, with what to do" 'set.total2 = "total * 2" reads a generated column of tg' "$ZERR"
    t_eq "... and nothing changed" 0 "$(db_sql "SELECT count(*) FROM information_schema.columns
                                                WHERE table_name = 'tg' AND column_name = 'total2'")"
    plan_write pg2 "[backfill]
table = \"tg\"
where = \"total < 10\"
set.qty = \"1\""
    zdm_run advance pg2
    t_rc "where reading total" 3
    t_has "... named" 'where = "total < 10" reads a generated column of tg' "$ZERR"
}

# A target with a default: the old application's inserts get it, and the
# INSERT trigger converts rows whose target is NULL: dst NOT NULL DEFAULT
# '' stayed '' for every row inserted after expand.  Refused, nothing
# changed; the same target without a default expands.
case_default() {
    local dialect=$1
    t_section "$dialect: a target with a default is refused"
    db_new "$dialect" dw_default
    plans_empty
    db_sql "CREATE TABLE td (id integer PRIMARY KEY, src text)" >/dev/null
    local lines="set.dst = \"upper(src)\"
[backfill.dual_write]
sources = [\"src\"]"
    dw_plan pd1 td "dst text NOT NULL DEFAULT ''" "$lines"
    zdm_run advance pd1
    t_rc "expand refused" 3
    t_has "... saying why" "set.dst: column dst has the default ''" "$ZERR"
    t_eq "... nothing changed" "id src" "$(db_dump_cols)"
    if [ "$dialect" = pg ]; then
        # the default of the column's domain: an INSERT gets it just the same
        db_sql "CREATE DOMAIN dtext AS text DEFAULT 'pending'" >/dev/null
        plans_empty
        dw_plan pd3 td "dst dtext" "$lines"
        zdm_run advance pd3
        t_rc "a domain's default: refused" 3
        t_has "... saying why" "set.dst: column dst has the default 'pending'" "$ZERR"
    fi
    plans_empty
    dw_plan pd2 td "dst text" "$lines"
    zdm_run advance pd2
    t_rc "without the default: expanded" 0
    db_sql "INSERT INTO td (id, src) VALUES (1, 'a')" >/dev/null
    t_eq "... and the application's insert converted" "A" "$(db_sql "SELECT dst FROM td WHERE id = 1")"
}

# the columns of td, in order
db_dump_cols() {
    if [ "$T_DIALECT" = sqlite ]; then
        db_sql "SELECT name FROM pragma_table_info('td') ORDER BY cid" | tr '\n' ' ' | sed 's/ $//'
    else
        db_sql "SELECT column_name FROM information_schema.columns WHERE table_name = 'td' ORDER BY ordinal_position" |
            tr '\n' ' ' | sed 's/ $//'
    fi
}

# A dual-write target in the partition key: PostgreSQL refuses a BEFORE
# trigger that moves a row to another partition, and every insert of the
# new application failed after expand.  Refused before anything changes.
case_partition_key() {
    t_section "pg: a target in the partition key is refused"
    db_new pg dw_partkey
    plans_empty
    db_sql "CREATE TABLE tp (id integer, region text, src text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE tp_eu PARTITION OF tp FOR VALUES IN ('eu');
            CREATE TABLE tp_other PARTITION OF tp DEFAULT" >/dev/null
    dw_plan pp tp "region_code text" "set.region_code = \"upper(region)\"
[backfill.dual_write]
sources = [\"region\"]
reverse.region = \"lower(region_code)\""
    refused pp "reverse.region writes a column of tp's partition key" tp region_code
    # the key of a partition below it, and, on a leaf, its parent's
    db_sql "CREATE TABLE tm (id integer, region integer, sub integer, v text, PRIMARY KEY (id, region, sub))
              PARTITION BY LIST (region);
            CREATE TABLE tm1 PARTITION OF tm FOR VALUES IN (1) PARTITION BY LIST (sub);
            CREATE TABLE tm1a PARTITION OF tm1 FOR VALUES IN (0)" >/dev/null
    dw_plan pm tm "w text" "where = \"v = 'zz'\"
set.w = \"v\"
[backfill.dual_write]
sources = [\"v\"]
reverse.sub = \"length(w)\""
    refused pm "reverse.sub writes a column of tm's partition key" tm w
    rm -f "$T_PLANS/pm.toml"
    dw_plan pl tm1a "w text" "set.w = \"v\"
[backfill.dual_write]
sources = [\"v\"]
reverse.region = \"length(w)\""
    refused pl "reverse.region writes a column of tm1a's partition key" tm1a w
}

# PostgreSQL: a table others inherit from (INHERITS, not partitions).
# The backfill's UPDATE of the parent reaches the children's rows, but the
# children's writes fire none of the parent's triggers: the application's
# writes there were never converted.  Refused, and a partitioned table
# (whose triggers do reach every partition) is not.
case_inherited() {
    t_section "pg: a table with inheritance children is refused for dual-write"
    db_new pg dw_inherit
    plans_empty
    db_sql "CREATE TABLE ti (id integer PRIMARY KEY, src text);
            CREATE TABLE ti_child (extra int) INHERITS (ti);
            INSERT INTO ti VALUES (1, 'a'); INSERT INTO ti_child VALUES (2, 'b', 0)" >/dev/null
    dw_plan pi ti "dst text" "set.dst = \"upper(src)\"
[backfill.dual_write]
sources = [\"src\"]"
    refused pi "has tables that inherit from it" ti dst
}

# PostgreSQL: an application BEFORE trigger that maintains a source from
# other columns.  UPDATE OF sees only the statement's SET list, so an
# UPDATE of first (which the application's trigger turns into a new
# full_name) did not fire zdm's trigger OF full_name: the target kept the
# old name.  With such triggers on the table zdm's fires on every UPDATE
# and its WHEN compares the sources.  One named after zdm's fires after
# them: expand says so.
case_app_trigger() {
    t_section "pg: a source the application's own BEFORE trigger changes is followed"
    db_new pg dw_apptrg
    plans_empty
    db_sql "CREATE TABLE people (id integer PRIMARY KEY, first text, last text, full_name text);
            CREATE FUNCTION people_full() RETURNS trigger LANGUAGE plpgsql AS
              'BEGIN NEW.full_name := NEW.first || '' '' || NEW.last; RETURN NEW; END';
            CREATE TRIGGER a_full_name BEFORE INSERT OR UPDATE ON people FOR EACH ROW EXECUTE FUNCTION people_full();
            CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
            CREATE TRIGGER zz_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch();
            INSERT INTO people (id, first, last) VALUES (1, 'Ann', 'Lee'), (2, 'Bob', 'Ray')" >/dev/null
    dw_plan pa people "shout text" "set.shout = \"upper(full_name)\"
[backfill.dual_write]
sources = [\"full_name\"]"
    zdm_run advance pa
    t_rc "expand" 0
    t_has "... says which application trigger fires after zdm's" "zz_touch" "$ZERR"
    zdm_run backfill pa
    t_rc "backfill" 0
    db_sql "UPDATE people SET first = 'Zed' WHERE id = 1; INSERT INTO people (id, first, last) VALUES (3, 'Cy', 'Oz')" >/dev/null
    t_eq "a write the application's trigger turns into a new source converts" "ZED LEE BOB RAY CY OZ" \
        "$(db_sql "SELECT string_agg(shout, ' ' ORDER BY id) FROM people")"
    # the application's trigger on one partition only
    db_sql "CREATE TABLE pp (id integer, region integer, first text, last text, full_name text,
                             PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE pp1 PARTITION OF pp FOR VALUES IN (1);
            CREATE TRIGGER a_full_name BEFORE UPDATE ON pp1 FOR EACH ROW EXECUTE FUNCTION people_full();
            INSERT INTO pp VALUES (1, 1, 'Ann', 'Lee', 'Ann Lee')" >/dev/null
    dw_plan pq pp "shout text" "set.shout = \"upper(full_name)\"
[backfill.dual_write]
sources = [\"full_name\"]"
    expand_backfill pq "partitioned"
    db_sql "UPDATE pp SET first = 'Zed' WHERE id = 1" >/dev/null
    t_eq "... also when the application's trigger is on a partition" "ZED LEE" \
        "$(db_sql "SELECT shout FROM pp WHERE id = 1")"
}

# Two-way plans whose reverse.* is not an exact inverse of set.*, and
# values that store otherwise than they compute: one write converts in
# one direction only, from what the application wrote.  (Triggers that
# compared the two relations instead of holding a guard row skipped the
# old application's write of qty, since total / qty still gave price; on
# SQLite a case change under COLLATE NOCASE, and a REAL stored as TEXT,
# converted back over the application's value.)
case_inexact() {
    local d=$1
    t_section "$d: two-way with a reverse that is not an exact inverse"
    db_new "$d" "dw_inexact_$d"
    plans_empty
    db_sql "CREATE TABLE li (id integer PRIMARY KEY, price integer, qty integer);
            INSERT INTO li VALUES (1, 1, 3), (2, 5, 2)" >/dev/null
    dw_plan pl li "total integer" "set.total = \"price * qty\"
[backfill.dual_write]
sources = [\"price\", \"qty\"]
reverse.price = \"total / qty\""
    expand_backfill pl
    db_sql "UPDATE li SET qty = 2 WHERE id = 1; UPDATE li SET total = 7 WHERE id = 2" >/dev/null
    t_eq "the old application's write converts forward, the new one's backward" "1|1|2|2 2|3|2|7" \
        "$(db_sql "SELECT id || '|' || price || '|' || qty || '|' || total FROM li ORDER BY id" | tr '\n' ' ' | sed 's/ $//')"
    # without sources, and an application trigger created after expand
    # that touches the row: it ran between the new version's write and
    # the reverse trigger (SQLite: newest first; PostgreSQL: an AFTER
    # trigger), and the forward trigger converted the row back from the
    # old column (the new name lost on SQLite, lower-cased on PostgreSQL)
    db_sql "CREATE TABLE pn (id integer PRIMARY KEY, name text, touched integer DEFAULT 0);
            INSERT INTO pn (id, name) VALUES (1, 'Alice')" >/dev/null
    dw_plan pt pn "name_lc text" "set.name_lc = \"lower(name)\"
[backfill.dual_write]
reverse.name = \"name_lc\""
    expand_backfill pt "no sources"
    if [ "$d" = sqlite ]; then
        db_sql "CREATE TRIGGER pn_touch AFTER UPDATE ON pn BEGIN
                UPDATE pn SET touched = touched + 1 WHERE id = NEW.id; END" >/dev/null
    else
        db_sql "CREATE FUNCTION pn_touch() RETURNS trigger LANGUAGE plpgsql AS
                  'BEGIN UPDATE pn SET touched = touched + 1 WHERE id = NEW.id; RETURN NULL; END';
                CREATE TRIGGER pn_touch AFTER UPDATE ON pn FOR EACH ROW WHEN (pg_trigger_depth() < 1)
                  EXECUTE FUNCTION pn_touch()" >/dev/null
    fi
    db_sql "UPDATE pn SET name_lc = 'Alicia Smith' WHERE id = 1" >/dev/null
    t_eq "the new version's write stands, and reaches the old column" "Alicia Smith|Alicia Smith" \
        "$(db_sql "SELECT name || '|' || name_lc FROM pn")"
    db_sql "UPDATE pn SET name = 'Bob' WHERE id = 1" >/dev/null
    t_eq "... and the old version's write still converts" "Bob|bob" "$(db_sql "SELECT name || '|' || name_lc FROM pn")"
    [ "$d" = sqlite ] || return 0
    # SQLite: a column named with capitals, read without them
    db_sql "CREATE TABLE pm (id integer PRIMARY KEY, Name text, touched integer DEFAULT 0);
            INSERT INTO pm (id, Name) VALUES (1, 'Alice')" >/dev/null
    dw_plan pmc pm "name_lc text" "set.name_lc = \"lower(name)\"
[backfill.dual_write]
reverse.Name = \"name_lc\""
    expand_backfill pmc "a column named with capitals"
    db_sql "CREATE TRIGGER pm_touch AFTER UPDATE ON pm BEGIN
            UPDATE pm SET touched = touched + 1 WHERE id = NEW.id; END;
            UPDATE pm SET name_lc = 'Alicia Smith' WHERE id = 1" >/dev/null
    t_eq "... its new version's write stands too" "Alicia Smith|Alicia Smith" \
        "$(db_sql "SELECT Name || '|' || name_lc FROM pm")"
    db_sql "CREATE TABLE u (id integer PRIMARY KEY, email text COLLATE NOCASE, s real);
            INSERT INTO u VALUES (1, 'bob@x.com', 1.5)" >/dev/null
    plan_write pu "[[expand.steps]]
sql = \"ALTER TABLE u ADD COLUMN mail text\"
down = \"ALTER TABLE u DROP COLUMN mail\"
[[expand.steps]]
sql = \"ALTER TABLE u ADD COLUMN n text\"
down = \"ALTER TABLE u DROP COLUMN n\"
[backfill]
table = \"u\"
set.mail = \"email\"
set.n = \"s\"
[backfill.dual_write]
sources = [\"email\", \"s\"]
reverse.email = \"mail\"
reverse.s = \"n\""
    expand_backfill pu "NOCASE, REAL into TEXT"
    db_sql "UPDATE u SET email = 'Bob@X.com' WHERE id = 1" >/dev/null
    t_eq "a case change under NOCASE converts forward" "Bob@X.com|Bob@X.com" \
        "$(db_sql "SELECT email || '|' || mail FROM u")"
    db_sql "UPDATE u SET s = 0.1 + 0.2 WHERE id = 1" >/dev/null
    t_eq "a REAL stored as TEXT converts forward, the application's value kept" \
        1 "$(db_sql "SELECT s = 0.1 + 0.2 FROM u")"
    db_sql "CREATE TABLE u2 (id integer PRIMARY KEY, email text COLLATE NOCASE);
            INSERT INTO u2 VALUES (1, 'bob@x.com')" >/dev/null
    plan_write pr "[[expand.steps]]
op = \"rename_column\"
table = \"u2\"
column = \"email\"
to = \"mail\""
    expand_backfill pr "rename_column of a NOCASE column"
    db_sql "UPDATE u2 SET email = 'Bob@X.com' WHERE id = 1" >/dev/null
    t_eq "the old name's case change reaches the new name" "Bob@X.com" "$(db_sql "SELECT mail FROM u2")"
}

# PostgreSQL: json has no "=".  A json source was refused ("operator
# does not exist: json = json", naming no column): the trigger's WHEN now
# compares it as text.  A json target is refused, by name: the backfill
# finds the rows left by comparing targets with their expressions.
case_json() {
    t_section "pg: a json source is followed, a json target refused by name"
    db_new pg dw_json
    plans_empty
    db_sql "CREATE TABLE d (id integer PRIMARY KEY, doc json); INSERT INTO d VALUES (1, '{\"a\": 1}')" >/dev/null
    dw_plan pj d "a integer" "set.a = \"(doc->>'a')::int\"
[backfill.dual_write]
sources = [\"doc\"]"
    expand_backfill pj
    db_sql "UPDATE d SET doc = '{\"a\": 5}' WHERE id = 1; INSERT INTO d (id, doc) VALUES (2, '{\"a\": 7}')" >/dev/null
    t_eq "writes of the json source convert" "1:5 2:7" "$(db_sql "SELECT string_agg(id || ':' || a, ' ' ORDER BY id) FROM d")"
    dw_plan pk d "doc2 json" "set.doc2 = \"doc\""
    zdm_run advance pk
    t_rc "a json target: refused" 3
    t_has "... by name" "set.doc2: column doc2 is of a type zdm cannot compare" "$ZERR"
    # an array of json: its "=" fails only when it runs (every UPDATE of
    # the application failed); a numeric whose text changes but not its
    # value: 1.5 -> 1.50 is no change to "=", and price::text kept '1.5'
    rm -f "$T_PLANS/pk.toml"
    db_sql "CREATE TABLE e (id integer PRIMARY KEY, tags json[], price numeric, f float8);
            INSERT INTO e VALUES (1, ARRAY['{\"a\": 1}'::json], 1.5, 0.5)" >/dev/null
    dw_plan pe e "tags_b jsonb[]; price_txt text; f_txt text" "set.tags_b = \"tags::jsonb[]\"
set.price_txt = \"price::text\"
set.f_txt = \"f::text\"
[backfill.dual_write]
sources = [\"tags\", \"price\", \"f\"]"
    expand_backfill pe "json[], numeric"
    t_eq "the application's UPDATE of a json[] source works" "" \
        "$(db_sql "UPDATE e SET tags = ARRAY['{\"a\": 2}'::json], price = 1.50 WHERE id = 1" 2>&1 >/dev/null)"
    t_eq "... and converts, a numeric's new scale too" '{"{\"a\": 2}"} 1.50' \
        "$(db_sql "SELECT tags_b::text || ' ' || price_txt FROM e")"
    # point has no "=", an array of points one that fails when it runs:
    # a two-way plan on a point was refused ("point = point"), an UPDATE
    # of a point[] source failed
    db_sql "CREATE TABLE g (id integer PRIMARY KEY, p point, pts point[]);
            INSERT INTO g VALUES (1, point(1, 0), ARRAY[point(1, 1)])" >/dev/null
    dw_plan pg1 g "px float8; n integer" "set.px = \"p[0]\"
set.n = \"cardinality(pts)\"
[backfill.dual_write]
reverse.p = \"point(px, 0)\""
    expand_backfill pg1 "point, point[]"
    t_eq "an UPDATE of a point[] and a point works" "" \
        "$(db_sql "UPDATE g SET pts = ARRAY[point(5, 5), point(6, 6)], p = point(3, 0) WHERE id = 1" 2>&1 >/dev/null)"
    t_eq "... and converts" "3 2" "$(db_sql "SELECT px || ' ' || n FROM g")"
    db_sql "UPDATE g SET px = 7 WHERE id = 1" >/dev/null
    t_eq "... and the new version's write reaches the point" "(7,0)" "$(db_sql "SELECT p FROM g")"
    db_sql "SET extra_float_digits = 0; UPDATE e SET f = 1.0 / 3 WHERE id = 1" >/dev/null
    t_eq "a float as text is zdm's, not the application session's extra_float_digits" \
        "$(db_sql "SELECT (1.0 / 3)::float8::text")" "$(db_sql "SELECT f_txt FROM e")"
}

# SQLite lets a PRIMARY KEY other than an INTEGER one hold NULL.  Such
# rows cannot be addressed by key: the batches walked past them, the
# triggers' UPDATE ... WHERE code = NEW.code matched none (a write of the
# row stayed unconverted), and the final check failed naming keys "[]".
# Refused while any is there; once they have keys, the plan runs.
case_null_pk() {
    t_section "sqlite: NULL in a TEXT PRIMARY KEY is refused until the rows have keys"
    db_new sqlite dw_nullpk
    plans_empty
    db_sql "CREATE TABLE tn (code text PRIMARY KEY, name text);
            INSERT INTO tn VALUES ('a', 'x'), (NULL, 'y')" >/dev/null
    dw_plan pn tn "up text" "set.up = \"upper(name)\"
[backfill.dual_write]
sources = [\"name\"]"
    zdm_run advance pn
    t_rc "expand refused" 3
    t_has "... saying why" "rows hold NULL in its primary key" "$ZERR"
    t_eq "... nothing changed" "" "$(db_sql "SELECT name FROM pragma_table_info('tn') WHERE name = 'up'")"
    db_sql "UPDATE tn SET code = 'b' WHERE code IS NULL" >/dev/null
    expand_backfill pn "once every row has a key"
    db_sql "UPDATE tn SET name = 'z' WHERE code = 'b'" >/dev/null
    t_eq "every row converted, and a write after" "X Z" "$(db_sql "SELECT group_concat(up, ' ') FROM (SELECT up FROM tn ORDER BY code)")"
}

# SQLite, a table without a primary key whose column is named rowid: the
# rowid is reached as _rowid_.  Taken for the key, the column (1 in both
# rows) made the trigger of one row's write convert both rows, and the
# other row's own value was overwritten.
case_rowid_column() {
    t_section "sqlite: a column named rowid does not stand for the rowid"
    db_new sqlite dw_rowid
    plans_empty
    db_sql "CREATE TABLE tr (rowid integer, src text); INSERT INTO tr VALUES (1, 'a'), (1, 'b')" >/dev/null
    dw_plan pr tr "dst text" "set.dst = \"upper(src)\"
[backfill.dual_write]
sources = [\"src\"]"
    expand_backfill pr
    t_eq "both rows converted" "A B" "$(db_sql "SELECT dst FROM tr ORDER BY _rowid_" | tr '\n' ' ' | sed 's/ $//')"
    db_sql "UPDATE tr SET dst = 'manual' WHERE _rowid_ = 1; UPDATE tr SET src = 'bb' WHERE _rowid_ = 2" >/dev/null
    t_eq "the write converts its own row only" "manual BB" \
        "$(db_sql "SELECT dst FROM tr ORDER BY _rowid_" | tr '\n' ' ' | sed 's/ $//')"
}

# SQLite: a statement the application's own rules fail part-way (OR
# FAIL, a RAISE(FAIL) in its trigger) keeps what it did so far.  A body
# that held a guard row for its UPDATE kept that row, committed it, and
# dual-write was off for every writer after: their writes no longer
# converted, and nothing said so.
case_failed_write() {
    t_section "sqlite: a write the application's rules fail part-way leaves dual-write on"
    db_new sqlite dw_fail
    plans_empty
    db_sql "CREATE TABLE tf (id integer PRIMARY KEY, name text UNIQUE);
            INSERT INTO tf VALUES (1, 'a'), (2, 'b');
            CREATE TRIGGER tf_count AFTER UPDATE ON tf BEGIN SELECT 1; END;
            CREATE TRIGGER tf_ins AFTER INSERT ON tf BEGIN SELECT 1; END;
            CREATE TRIGGER log_update_count AFTER INSERT ON tf BEGIN SELECT 1; END;
            CREATE TRIGGER \"nl on tf\" AFTER UPDATE
            ON	tf BEGIN SELECT 1; END;
            CREATE TRIGGER upd_id AFTER UPDATE OF id ON tf BEGIN SELECT 1; END;
            CREATE TRIGGER upd_name BEFORE UPDATE OF \"id\", [NAME] ON tf BEGIN SELECT 1; END" >/dev/null
    dw_plan pf tf "cat text CHECK (cat IS NULL OR length(cat) < 5)" "set.cat = \"upper(name)\"
[backfill.dual_write]
sources = [\"name\"]
reverse.name = \"lower(cat)\""
    # the application's rule on cat, once cat exists
    zdm_run advance pf
    t_rc "expand" 0
    # the reverse trigger's UPDATE takes the application statement's OR REPLACE
    t_has "expand warns about the unique target" "tf.name is in a unique index" "$ZERR"
    # and about the application's UPDATE triggers, which zdm's fire
    t_has "expand names the application's UPDATE triggers zdm's fire, and only those" \
        "UPDATE triggers of the application's that zdm's triggers fire: nl on tf, tf_count, upd_name;" "$ZERR"
    db_sql "CREATE TRIGGER app_rule BEFORE UPDATE OF cat ON tf WHEN NEW.cat = 'ZZZ'
            BEGIN SELECT RAISE(FAIL, 'rejected by the application'); END" >/dev/null
    zdm_run backfill pf
    t_rc "backfill" 0
    db_sql "UPDATE OR FAIL tf SET name = 'much too long' WHERE id = 1" >/dev/null 2>&1
    t_ne "the CHECK on cat fails the old application's write" 0 "$?"
    db_sql "UPDATE tf SET name = 'zzz' WHERE id = 2" >/dev/null 2>&1
    t_ne "the application's own trigger fails its write" 0 "$?"
    t_eq "no guard row under the plan's own id left behind" 0 \
        "$(db_sql "SELECT count(*) FROM zdm_guard WHERE plan_id = 'pf'")"
    db_sql "INSERT INTO tf (id, name) VALUES (3, 'c'); UPDATE tf SET cat = 'QQ' WHERE id = 2" >/dev/null
    t_eq "later writes still convert, both ways" "3|c|C 2|qq|QQ" \
        "$(db_sql "SELECT id || '|' || name || '|' || cat FROM tf WHERE id IN (3, 2) ORDER BY id DESC" | tr '\n' ' ' | sed 's/ $//')"
    # the failed statements' bodies left their own guard rows (matched
    # by nothing); they go with the triggers
    db_sql "INSERT INTO zdm_guard (plan_id) VALUES ('pfx#1'), ('pf')" >/dev/null
    t_ne "the failed writes left guard rows" 0 "$(db_sql "SELECT count(*) FROM zdm_guard WHERE plan_id LIKE 'pf#%'")"
    db_sql "DROP TRIGGER app_rule" >/dev/null
    zdm_run rollback pf
    t_rc "rollback" 0
    t_eq "rolled back, the plan's leftover guard rows are gone, no other row" "pf pfx#1" \
        "$(db_sql "SELECT plan_id FROM zdm_guard ORDER BY plan_id" | tr '\n' ' ' | sed 's/ $//')"
}

# SQLite: an expression the backfill's query takes but a trigger body
# may not hold (an object of the temp schema) fails where expand creates
# the triggers.  Refused first, naming the triggers and the table; the
# message read "[backfill] dual-write trigger of = "t" does not work".
case_trigger_refused() {
    t_section "sqlite: triggers that do not compile are refused by name, nothing changed"
    db_new sqlite dw_trig
    plans_empty
    db_sql "CREATE TABLE tt (id integer PRIMARY KEY, src text); INSERT INTO tt VALUES (1, 'a')" >/dev/null
    dw_plan pt tt "dst text" "set.dst = \"src || (SELECT count(*) FROM temp.sqlite_master)\"
[backfill.dual_write]
sources = [\"src\"]"
    zdm_run advance pt
    t_rc "expand refused" 3
    t_match "... naming the triggers, the table and the database's reason" \
        'pt.toml:[0-9]+: \[backfill\] the dual-write triggers zdm would create on "tt" fail on this database: .*temp' "$ZERR"
    t_has "... and what to do" "fix what the error names, then run \"zdm advance pt\" again" "$ZERR"
    t_eq "... nothing changed" 0 "$(db_sql "SELECT count(*) FROM pragma_table_info('tt') WHERE name = 'dst'")"
}

# PostgreSQL: a table named with capitals the catalog does not have
# ("PUBLIC.USERS" for public.users) was refused as the first set.X that
# read it ("fix set.nick"), without a word about case.
case_table_case() {
    t_section "pg: a table that does not exist is refused as the table, case named"
    db_new pg dw_case
    plans_empty
    db_sql "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')" >/dev/null
    plan_write pu "[[expand.steps]]
sql = \"ALTER TABLE users ADD COLUMN nick text\"
down = \"ALTER TABLE users DROP COLUMN nick\"
[backfill]
table = \"PUBLIC.USERS\"
set.nick = \"upper(name)\""
    refused pu 'pu.toml:5: [backfill] table = "PUBLIC.USERS" does not work on this database' users nick
    t_has "... saying that case matters" '"PUBLIC.USERS" is matched with its case' "$ZERR"
    t_lacks "... not blaming the set" "set.nick" "$ZERR"
}

t_with_pg t_run case_same
t_run case_failed_write
t_run case_trigger_refused
t_with_pg t_run case_table_case
t_with_pg t_run case_inexact pg
t_run case_inexact sqlite
t_run case_rowid_column
t_run case_null_pk
t_with_pg t_run case_partition_key
t_with_pg t_run case_inherited
t_with_pg t_run case_app_trigger
t_with_pg t_run case_json
t_with_pg t_run case_default pg
t_run case_default sqlite
t_with_pg t_run case_generated
t_with_pg t_run case_session
t_with_pg t_run case_settings
t_with_pg t_run case_odd_types
t_with_pg t_run case_worker_settings
t_with_pg t_run case_app_role
t_with_pg t_run case_locale
t_with_pg t_run case_keywords
t_run case_brackets
t_with_pg t_run case_plpgsql_names
t_with_pg t_run case_names
t_with_pg t_run case_subquery pg
t_run case_subquery sqlite
t_finish
