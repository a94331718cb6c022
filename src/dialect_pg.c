/*
 * dialect_pg.c -- PostgreSQL's dialect table (see dialect.h).
 *
 * Owns: PostgreSQL's answers to every question dialect.h asks: its
 * catalog queries (pg_attribute, pg_index), its timeouts, and the
 * dual-write triggers' DDL (BEFORE ROW triggers calling PL/pgSQL
 * functions in schema zdm).
 */
#include "dialect.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dwsql.h"
#include "mutant.h"
#include "sqlkind.h"
#include "sqlscan.h"

static char *pg_quote(const char *name) { return zdm_dialect_quote_std(name); }

static int pg_columns(zdm_db *db, const char *table, zdm_strv *cols, zdm_err *err)
{
    char *q = zdm_db_ident_path(db, table);
    const char *params[] = {q};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db,
                          "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) "
                          "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                          1, params, &r, err);
    free(q);
    for (int i = 0; rc == 0 && i < zdm_rows_count(r); i++)
        zdm_strv_push(cols, zdm_rows_get(r, i, 0));
    zdm_rows_free(r);
    return rc;
}

/* The primary key's columns in key order (none: no primary key). */
static const char pk_sql[] = "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                             "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                             "WHERE i.indrelid = to_regclass($1) AND i.indisprimary "
                             "ORDER BY array_position(i.indkey::int2[], a.attnum)";

static int pg_key_of(zdm_db *db, const char *table, const zdm_strv *named, zdm_strv *key, zdm_key_refusal *refused,
                     zdm_err *err)
{
    refused->why = refused->reason = NULL;
    char *q = zdm_db_ident_path(db, table);
    const char *p1[] = {q};
    char *exists = NULL;
    int rc = zdm_db_query_value(db, "SELECT to_regclass($1) IS NOT NULL", 1, p1, &exists, err);
    if (rc == 0 && !(exists && exists[0] == 't'))
        *refused = (zdm_key_refusal){"the table does not exist", ZDM_KEY_NO_TABLE};
    free(exists);
    zdm_rows *r = NULL;
    if (rc == 0 && !refused->why && !named->n) {
        rc = zdm_db_query(db, pk_sql, 1, p1, &r, err);
        if (rc == 0 && zdm_rows_count(r) == 0)
            *refused = (zdm_key_refusal){"it has no primary key and the plan names no key", ZDM_KEY_NO_PRIMARY};
        for (int i = 0; rc == 0 && !refused->why && i < zdm_rows_count(r); i++)
            zdm_strv_push(key, zdm_rows_get(r, i, 0));
    } else if (rc == 0 && !refused->why) {
        zdm_buf sorted = {0};
        zdm_dialect_join_sorted(named, &sorted);
        const char *p2[] = {q, sorted.data};
        char *ok = NULL;
        rc = zdm_db_query_value(db,
                                "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass($1) "
                                "AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
                                "AND (SELECT string_agg(a.attname::text, ',' ORDER BY a.attname::text) "
                                "     FROM pg_attribute a WHERE a.attrelid = i.indrelid "
                                "     AND a.attnum = ANY (i.indkey)) = $2) "
                                "AND (SELECT bool_and(attnotnull) FROM pg_attribute WHERE attrelid = to_regclass($1) "
                                "     AND attname::text = ANY (string_to_array($2, ',')))",
                                2, p2, &ok, err);
        if (rc == 0 && !(ok && ok[0] == 't'))
            *refused = (zdm_key_refusal){"the key columns are not NOT NULL with a unique index on exactly them",
                                         ZDM_KEY_NOT_UNIQUE};
        free(ok);
        zdm_buf_free(&sorted);
        for (size_t i = 0; rc == 0 && !refused->why && i < named->n; i++)
            zdm_strv_push(key, named->v[i]);
    }
    zdm_rows_free(r);
    free(q);
    return rc;
}

/* The primary key's columns as text, else the row's ctid. */
static void pg_row_label(zdm_db *db, const char *table, const char *alias, zdm_buf *b)
{
    size_t len0 = b->len;
    char *q = zdm_db_ident_path(db, table);
    const char *params[] = {q};
    zdm_rows *r = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_db_query(db, pk_sql, 1, params, &r, &e) == 0)
        for (int i = 0; i < zdm_rows_count(r); i++) {
            char *k = zdm_db_ident(db, zdm_rows_get(r, i, 0));
            zdm_buf_printf(b, "%s%s.%s::text", i ? " || ',' || " : "", alias, k);
            free(k);
        }
    zdm_rows_free(r);
    free(q);
    if (b->len == len0)
        zdm_buf_printf(b, "%s.ctid::text", alias);
}

static int pg_invalid_indexes(zdm_db *db, const char *schema, const char *name, zdm_rows **out, zdm_err *err)
{
    const char *params[] = {name, schema};
    return zdm_db_query(db,
                        "SELECT n.nspname, c.relname FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relname = $1 AND NOT i.indisvalid "
                        "AND (n.nspname = $2 OR ($2 IS NULL AND n.nspname = ANY (current_schemas(false))))",
                        2, params, out, err);
}

static int pg_index_built(zdm_db *db, const char *schema, const char *name, int *built, zdm_err *err)
{
    const char *params[] = {name, schema};
    char *v = NULL;
    int rc = zdm_db_query_value(db,
                                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE c.relname = $1 AND i.indisvalid AND i.indisready "
                                "AND (n.nspname = $2 OR ($2 IS NULL AND n.nspname = ANY (current_schemas(false))))",
                                2, params, &v, err);
    *built = rc == 0 && v && atoi(v) > 0;
    free(v);
    return rc;
}

static void pg_dry_timeouts(zdm_buf *out, const char *lock, const char *stmt, int tries)
{
    zdm_buf_printf(out, "SET lock_timeout = '%s';  -- up to %d tries with backoff\n", lock, tries);
    zdm_buf_printf(out, "SET statement_timeout = '%s';\n", stmt);
}

static int pg_set_local_timeouts(zdm_db *db, long long lock_ms, long long stmt_ms, zdm_err *err)
{
    char q[160];
    snprintf(q, sizeof q, "SET LOCAL lock_timeout = %lld; SET LOCAL statement_timeout = %lld", lock_ms, stmt_ms);
    return zdm_db_exec_script(db, q, err);
}

static int pg_table_exists(zdm_db *db, const char *table, int *exists, zdm_err *err)
{
    const char *params[] = {table};
    char *v = NULL;
    int rc = zdm_db_query_value(db, "SELECT (to_regclass($1) IS NOT NULL)::int", 1, params, &v, err);
    *exists = rc == 0 && v && atoi(v) > 0;
    free(v);
    return rc;
}

/* ---- dual-write triggers ---- */

/* The bare table name, quoted: the alias under which `where` sees NEW. */
static char *bare_alias(const zdm_dialect *d, const char *table)
{
    const char *dot = strrchr(table, '.');
    return d->quote_ident(dot ? dot + 1 : table);
}

/* Whether SQL text reads otherwise under standard_conforming_strings =
 * off: a backslash in a string, or a U&'...' string (every write failed,
 * "unsafe use of string constant with Unicode escapes").  A lexical look:
 * a false match keeps a setting that was not needed, never the other way
 * round. */
static int text_needs_scs(const char *sql)
{
    if (!sql)
        return 0;
    for (const char *p = sql; *p; p++)
        if (*p == '\\' || ((*p == 'u' || *p == 'U') && p[1] == '&' && p[2] == '\''))
            return 1;
    return 0;
}

/* Whether SQL text compares with NULL by "=" ("x = NULL", "NULL = x",
 * "x = (NULL)", "x = NULL" with a comment between), which transform_null_equals = on
 * reads as IS NULL: the application's session converted such a row
 * otherwise than the backfill.  By tokens (comments and strings are not
 * tokens of their own); a false match keeps a setting that was not
 * needed, never the other way round. */
static int null_equals(const char *sql)
{
    if (!sql)
        return 0;
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql, ZDM_SQL_PG, &sc);
    int found = 0;
    for (size_t i = 0; !found && i < sc.ntoks; i++) {
        const zdm_tok *t = &sc.toks[i];
        if (t->kind != ZDM_TOK_WORD || !zdm_tok_is(sql, t, "null"))
            continue;
        size_t l = i, r = i + 1;
        while (l > 0 && sc.toks[l - 1].kind == ZDM_TOK_LPAREN)
            l--;
        while (r < sc.ntoks && sc.toks[r].kind == ZDM_TOK_RPAREN)
            r++;
        const zdm_tok *before = l > 0 ? &sc.toks[l - 1] : NULL, *after = r < sc.ntoks ? &sc.toks[r] : NULL;
        found = (before && before->kind == ZDM_TOK_OP && before->len == 1 && sql[before->off] == '=') ||
                (after && after->kind == ZDM_TOK_OP && after->len == 1 && sql[after->off] == '=');
    }
    zdm_sql_scan_free(&sc);
    return found;
}

/* One trigger function: assigns `a` to NEW and returns it.  With a
 * `where`, a row that does not match it is returned untouched: the
 * predicate is evaluated on NEW, seen as a one-row table under the
 * table's own name, so the plan's `where` means exactly what it means in
 * the backfill's UPDATE (subqueries over the real table included; a
 * trigger's WHEN clause cannot hold a subquery, hence the function).
 * A `where` that reads the row's own columns only (zdm_dwsql_row_local)
 * is an expression on NEW instead, as the assignments are: that query
 * cost each write it fired on 2 to 3 us more than the rest of the
 * function (EXPLAIN ANALYZE of a 200,000-row UPDATE: trigger time 550 to
 * 930 ms against 190 to 320).  IS NOT TRUE: a NULL `where` matches
 * nothing, as in the query. */
static void pg_function(zdm_buf *c, const zdm_dialect *d, const char *fn, const zdm_assign *a, size_t n,
                        const zdm_strv *cols, const zdm_dw_spec *b)
{
    zdm_buf body = {0};
    /* A query in the function reads names as the backfill's statements
     * do: a table column named like one of PL/pgSQL's variables (found,
     * tg_op) was "ambiguous", and every write of the application failed. */
    zdm_buf_puts(&body, "\n#variable_conflict use_column\nBEGIN\n");
    if (b->where && zdm_dwsql_row_local(b->where, cols)) {
        char *e = zdm_dwsql_rewrite(d, b->where, cols, "NEW");
        /* trigger_where_null, a mutant: NOT (where), which a NULL `where` passes */
        if (zdm_mutant("trigger_where_null"))
            zdm_buf_printf(&body, "  IF NOT (%s) THEN\n", e);
        else
            zdm_buf_printf(&body, "  IF (%s) IS NOT TRUE THEN\n", e);
        zdm_buf_puts(&body, "    RETURN NEW;  -- outside the plan's where: never written by zdm\n"
                            "  END IF;\n");
        free(e);
    } else if (b->where) {
        char *alias = bare_alias(d, b->table);
        zdm_buf_printf(&body, "  IF NOT EXISTS (SELECT 1 FROM (SELECT NEW.*) AS %s WHERE (%s)) THEN\n"
                              "    RETURN NEW;  -- outside the plan's where: never written by zdm\n"
                              "  END IF;\n", alias, b->where);
        free(alias);
    }
    if (zdm_dwsql_assign_row_local(d, a, n, cols, 1)) {
        zdm_dwsql_assignments(&body, d, a, n, cols, 1);
    } else {
        /* A subquery's unqualified names, rewritten to NEW."col", read
         * the row instead of the subquery's own table: "(SELECT name
         * FROM customers WHERE id = customer_id)" became a comparison of
         * NEW's own columns, and every write of the application failed
         * or was silently given another row's value.  As a query on NEW
         * under the table's name, each name resolves as in the
         * backfill's UPDATE; all are evaluated on the row as written. */
        char *alias = bare_alias(d, b->table);
        zdm_buf_puts(&body, "  SELECT ");
        for (size_t i = 0; i < n; i++)
            zdm_buf_printf(&body, "%s(%s)", i ? ", " : "", a[i].expr);
        zdm_buf_puts(&body, "\n    INTO ");
        for (size_t i = 0; i < n; i++) {
            char *q = d->quote_ident(a[i].column);
            zdm_buf_printf(&body, "%sNEW.%s", i ? ", " : "", q);
            free(q);
        }
        zdm_buf_printf(&body, "\n    FROM (SELECT NEW.*) AS %s;\n", alias);
        free(alias);
    }
    zdm_buf_puts(&body, "  RETURN NEW;\nEND\n");
    /* identifiers and expressions are in the body: a tag they lack */
    char *quoted = zdm_sql_dollar_quote(body.data);
    /* The function runs in the application's session, with its
     * settings: under another search_path the plan's functions and
     * tables were not found (every write failed) or were others (another
     * value than the backfill's); under another TimeZone a timestamptz
     * became another date; under another DateStyle '01/02/2024'::date
     * another day, and a date as text another string (IntervalStyle: an
     * interval's; extra_float_digits = 0: a float's, 0.333333333333333;
     * bytea_output: a bytea's).  It keeps those of zdm's session at expand, where the
     * backfill runs too (search_path named schema by schema: see
     * pg_triggers); the five after search_path where the expressions can
     * meet them (pg_value_settings).  Cost, EXPLAIN ANALYZE of 200,000
     * rows' trigger time: about 190 ms bare, 560-680 with search_path and
     * TimeZone, 740-830 with the two date styles too, 880-960 with the six
     * (0.3-0.6 us a setting a call).
     * Backslashes in a string read otherwise under
     * standard_conforming_strings = off (the body did not compile): kept
     * too where one appears. */
    int backslash = text_needs_scs(b->where), null_eq = null_equals(b->where);
    for (size_t i = 0; i < n; i++) {
        backslash |= text_needs_scs(a[i].expr);
        null_eq |= null_equals(a[i].expr);
    }
    /* the locale's and text search's settings: kept by pg_value_settings,
     * by the functions the expressions' parse tree calls (a reading of
     * their text missed the @@ operator, ts_debug and a U&"" spelling) */
    zdm_buf_printf(c, "CREATE OR REPLACE FUNCTION zdm.%s() RETURNS trigger LANGUAGE plpgsql\n"
                      "  " ZDM_PG_DW_SETTINGS "%s%s\n  AS %s;\n",
                   fn, backslash ? " SET standard_conforming_strings FROM CURRENT" : "",
                   null_eq ? " SET transform_null_equals FROM CURRENT" : "", quoted);
    free(quoted);
    zdm_buf_free(&body);
}

/* Types whose text and whose functions' results no setting changes
 * (json's text is kept as written, jsonb's numbers are numeric; money's
 * text follows lc_monetary, kept apart below). */
#define PG_SETTLED_TYPES                                                                                       \
    "'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype, '\"char\"'::regtype, "          \
    "'bool'::regtype, 'int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype, "                \
    "'uuid'::regtype, 'oid'::regtype, 'json'::regtype, 'jsonb'::regtype"

/* The settings after search_path (ZDM_PG_DW_VALUE_SETTINGS) cost each
 * call of a function that keeps them about 8,000 instructions (on a
 * pgbench write, a quarter of what the triggers add), and matter only to
 * an expression that meets a date, time, interval, float or bytea value,
 * reads an array from text (array_nulls), or calls a function that is not
 * immutable (PostgreSQL marks those that read TimeZone or DateStyle
 * stable).  What the expressions meet is the server's to say, not a
 * reading of their text: a temporary view of them and of the targets
 * (PL/pgSQL converts a value to its target's type in the application's
 * session) stores their parse tree (pg_rewrite), whose every type field
 * (a column's, a constant's, a cast's, a function's result, the same in a
 * subquery over another table) and every function called (directly, by
 * an operator, by an aggregate) is read, with each function's argument
 * and result types; domains are followed to their base at any depth,
 * arrays to their element.  Not pg_depend: it records no built-in object.
 * Kept all the same: a function of the database's own (its body is not
 * read, and an IMMUTABLE label is not checked by PostgreSQL), a view or
 * foreign table read (its query is not in the tree), a whole-row
 * reference, XML, and any failure of the view (no TEMP privilege): the
 * functions are created with search_path alone, and altered here to keep
 * the rest unless the tree shows nothing that needs them.  A money value
 * keeps lc_monetary.  Text the tree holds (a column's name) can only add
 * to what is read: more is kept.  (A hostile helper found each of the
 * "kept all the same" cases, and the targets, wrong under the
 * application's settings before they were kept.)
 *
 * SECURITY DEFINER: the function then computes as its owner, the role
 * that ran expand and whose session the backfill's is: under an
 * application role without SELECT on a table a set.* reads, every write of
 * the application failed after an expand that passed; with row-level
 * security on it, or current_user in an expression, the trigger computed
 * another value than the backfill.  Only where no role that lacks the
 * owner's privileges may create objects in a schema of the kept
 * search_path: there an overload of a function the expressions call
 * (lower(varchar) beside lower(text)) would run with the owner's
 * privileges, on any write of the table (PostgreSQL 14 and older let
 * every role create in public).  Elsewhere it stays as the caller. */
static void pg_value_settings(zdm_buf *c, const zdm_dialect *d, const zdm_dw_spec *b, const char *fwd,
                              const char *rev)
{
    char *tbl = zdm_dialect_quote_path(d, b->table);
    char *alias = bare_alias(d, b->table);
    zdm_buf view = {0};
    zdm_buf_puts(&view, "CREATE TEMP VIEW zdm_dw_probe AS SELECT ");
    /* named: two columns "?column?" made the view fail */
    size_t k = 0;
    for (size_t i = 0; i < b->nset; i++, k++)
        zdm_buf_printf(&view, "%s(%s) AS e%zu", k ? ", " : "", b->set[i].expr, k);
    for (size_t i = 0; i < b->nreverse; i++, k++)
        zdm_buf_printf(&view, "%s(%s) AS e%zu", k ? ", " : "", b->reverse[i].expr, k);
    if (b->where) {
        zdm_buf_printf(&view, "%s(%s) AS e%zu", k ? ", " : "", b->where, k);
        k++;
    }
    /* the targets too: PL/pgSQL converts a value to its target's type in
     * the application's session ('2024-01-01 00:00' into a timestamptz
     * target became another instant under its TimeZone) */
    for (size_t i = 0; i < b->nset; i++, k++) {
        char *q = d->quote_ident(b->set[i].column);
        zdm_buf_printf(&view, ", %s.%s AS e%zu", alias, q, k);
        free(q);
    }
    for (size_t i = 0; i < b->nreverse; i++, k++) {
        char *q = d->quote_ident(b->reverse[i].column);
        zdm_buf_printf(&view, ", %s.%s AS e%zu", alias, q, k);
        free(q);
    }
    zdm_buf_printf(&view, " FROM %s AS %s", tbl, alias);
    char *vq = zdm_sql_dollar_quote(view.data);
    int settled = zdm_mutant("dw_settings_settled");
    zdm_buf blk = {0};
    zdm_buf_printf(&blk,
                   "\nDECLARE\n  tree text;\n  keep boolean := true;\n  money boolean := true;\n"
                   "  locale boolean := true;\n  ts boolean := true;\n  xml boolean := true;\n"
                   "  definer boolean := false;\nBEGIN\n  BEGIN\n"
                   "    EXECUTE %s;\n"
                   "    SELECT r.ev_action::text INTO STRICT tree FROM pg_rewrite r\n"
                   "      WHERE r.ev_class = 'pg_temp.zdm_dw_probe'::regclass;\n"
                   /* every ":field OID" and ":field (o OID ...)" of the tree */
                   "    WITH RECURSIVE ids AS (SELECT m[1] AS k, m[2]::oid AS id\n"
                   "      FROM regexp_matches(tree, ':([A-Za-z_]+) ([0-9]+)', 'g') m\n"
                   "      UNION SELECT m[1], unnest(string_to_array(m[2], ' '))::oid\n"
                   "      FROM regexp_matches(tree, ':([A-Za-z_]+) \\(o ([0-9 ]+)\\)', 'g') m),\n"
                   /* the functions called: directly, by an operator, by an aggregate */
                   "    fns AS (SELECT id AS f FROM ids\n"
                   "      WHERE k IN ('funcid', 'opfuncid', 'aggfnoid', 'winfnoid', 'hashfuncid', 'negfuncid')\n"
                   "      UNION SELECT o.oprcode::oid FROM ids JOIN pg_operator o ON o.oid = ids.id\n"
                   "      WHERE ids.k IN ('opno', 'opnos', 'eqop', 'sortop')\n"
                   "      UNION SELECT unnest(ARRAY[a.aggtransfn::oid, a.aggfinalfn::oid, a.aggcombinefn::oid])\n"
                   "      FROM ids JOIN pg_aggregate a ON a.aggfnoid = ids.id WHERE ids.k = 'aggfnoid'),\n"
                   /* every type field of the tree (vartype, consttype, resulttype...), and the
                    * functions' argument and result types */
                   "    types AS (SELECT k, id AS t FROM ids WHERE k ~* 'typ' AND k !~* 'typmod'\n"
                   "      UNION SELECT 'fn', p.prorettype FROM fns JOIN pg_proc p ON p.oid = fns.f\n"
                   "      UNION SELECT 'fn', unnest(p.proargtypes::oid[] || coalesce(p.proallargtypes, '{}'))\n"
                   "      FROM fns JOIN pg_proc p ON p.oid = fns.f),\n"
                   /* domains to their base, at any depth; arrays to their element */
                   "    res(k, t) AS (SELECT k, t FROM types\n"
                   "      UNION SELECT r.k, CASE WHEN ty.typbasetype <> 0 THEN ty.typbasetype ELSE ty.typelem END\n"
                   "      FROM res r JOIN pg_type ty ON ty.oid = r.t\n"
                   "      WHERE ty.typbasetype <> 0 OR (ty.typcategory = 'A' AND ty.typelem <> 0)),\n"
                   "    leaf AS (SELECT res.k, res.t, ty.typcategory = 'A' AND ty.typelem <> 0 AS arr\n"
                   "      FROM res JOIN pg_type ty ON ty.oid = res.t WHERE ty.typbasetype = 0)\n"
                   "    SELECT %s (\n"
                   /* a function that is not immutable, or one of the database's own (its body
                    * is not read: an IMMUTABLE one may still read DateStyle) */
                   "        EXISTS (SELECT 1 FROM fns JOIN pg_proc p ON p.oid = fns.f\n"
                   "                WHERE p.provolatile <> 'i' OR p.oid >= 16384)\n"
                   "        OR EXISTS (SELECT 1 FROM leaf WHERE NOT leaf.arr AND leaf.t NOT IN (" PG_SETTLED_TYPES "))\n"
                   /* an array read from text (a constant, a cast, a value given to an
                    * array target or column): array_nulls */
                   "        OR EXISTS (SELECT 1 FROM leaf WHERE leaf.arr AND leaf.k IN ('consttype', 'resulttype', "
                   "'vartype'))\n"
                   /* a view's query is not in the tree (nor a foreign table's); the probe's
                    * own range table names the probe (PostgreSQL 15's OLD and NEW) */
                   "        OR EXISTS (SELECT 1 FROM ids JOIN pg_class c ON c.oid = ids.id\n"
                   "                   WHERE ids.k = 'relid' AND c.relkind IN ('v', 'f')\n"
                   "                   AND c.oid <> 'pg_temp.zdm_dw_probe'::regclass)\n"
                   "        OR tree ~ '\\{XML|:varattno 0 '),\n"
                   "        EXISTS (SELECT 1 FROM leaf WHERE leaf.t = 'money'::regtype),\n"
                   /* the locale's: what to_char and its kin make */
                   "        EXISTS (SELECT 1 FROM fns JOIN pg_proc p ON p.oid = fns.f\n"
                   "                WHERE p.proname IN ('to_char', 'to_number', 'to_date', 'to_timestamp', 'cash_words')),\n"
                   /* text search: its functions (the @@ operator's among them) and types */
                   "        EXISTS (SELECT 1 FROM fns JOIN pg_proc p ON p.oid = fns.f\n"
                   "                WHERE p.proname ~ '^(ts_|to_ts)|ts(query|vector)')\n"
                   "        OR EXISTS (SELECT 1 FROM leaf WHERE leaf.t IN ('tsvector'::regtype, 'tsquery'::regtype,\n"
                   "                   'regconfig'::regtype, 'regdictionary'::regtype)),\n"
                   /* XML: xmlbinary, xmloption */
                   "        tree ~ '\\{XML' OR EXISTS (SELECT 1 FROM leaf WHERE leaf.t = 'xml'::regtype)\n"
                   "        OR EXISTS (SELECT 1 FROM fns JOIN pg_proc p ON p.oid = fns.f WHERE p.proname ~ '^xml')\n"
                   "      INTO keep, money, locale, ts, xml;\n"
                   "    DROP VIEW pg_temp.zdm_dw_probe;\n"
                   "  EXCEPTION WHEN OTHERS THEN\n    keep := true;\n    money := true;\n    locale := true;\n"
                   "    ts := true;\n    xml := true;\n  END;\n"
                   /* SECURITY DEFINER where it gives no one more than they have (below) */
                   "  BEGIN\n"
                   "    SELECT NOT EXISTS (SELECT 1 FROM pg_namespace n, pg_roles r\n"
                   "      WHERE n.nspname = ANY (current_schemas(false)) AND n.nspname !~ '^pg_(toast_)?temp_'\n"
                   "      AND has_schema_privilege(r.oid, n.oid, 'CREATE') AND r.rolcanlogin AND NOT r.rolsuper\n"
                   "      AND NOT pg_has_role(r.oid, current_user, 'USAGE')) INTO definer;\n"
                   "  EXCEPTION WHEN OTHERS THEN\n    definer := false;\n  END;\n",
                   vq, settled ? "false AND" : "");
    const char *fns[2] = {fwd, rev};
    for (int i = 0; i < 2 && fns[i]; i++)
        zdm_buf_printf(&blk,
                       "  IF keep THEN\n    ALTER FUNCTION zdm.%s() " ZDM_PG_DW_VALUE_SETTINGS ";\n  END IF;\n"
                       "  IF money OR locale THEN\n    ALTER FUNCTION zdm.%s() SET lc_monetary FROM CURRENT;\n  END IF;\n"
                       "  IF locale THEN\n    ALTER FUNCTION zdm.%s() SET lc_numeric FROM CURRENT SET lc_time FROM "
                       "CURRENT;\n  END IF;\n"
                       "  IF ts THEN\n    ALTER FUNCTION zdm.%s() SET default_text_search_config FROM CURRENT;\n"
                       "  END IF;\n"
                       "  IF xml THEN\n    ALTER FUNCTION zdm.%s() SET xmlbinary FROM CURRENT SET xmloption FROM "
                       "CURRENT;\n  END IF;\n"
                       "  IF definer THEN\n    ALTER FUNCTION zdm.%s() SECURITY DEFINER;\n  END IF;\n",
                       fns[i], fns[i], fns[i], fns[i], fns[i], fns[i]);
    zdm_buf_puts(&blk, "END\n");
    char *bq = zdm_sql_dollar_quote(blk.data);
    zdm_buf_printf(c, "DO %s;\n", bq);
    free(bq);
    zdm_buf_free(&blk);
    free(vq);
    zdm_buf_free(&view);
    free(alias);
    free(tbl);
}

/* "NEW.c IS [NOT] DISTINCT FROM OLD.c" for each of the columns (the
 * assignments' targets, or names), joined; a column of a type without
 * "=" (json: the WHEN did not compile, and a json source was refused)
 * compared as text, which json keeps as written.  as_text: a change of
 * the value's text counts too (sources: 1.5 -> 1.50 is no change to
 * numeric's "=", nor {"a":1.0} -> {"a":1.00} to jsonb's, and a set.* of
 * price::text then kept the old text), except for the types whose "="
 * holds only for the same text (b->exact_cmp: text, integers...), where
 * the second comparison repeated the first: PostgreSQL parses and plans a
 * trigger's WHEN again in every statement that fires it, a cost each
 * application write pays in proportion to the WHEN's size. */
static void pg_compare(zdm_buf *c, const zdm_dialect *d, const zdm_dw_spec *b, const zdm_assign *a,
                       const zdm_strv *names, size_t n, const char *op, const char *joiner, int as_text)
{
    for (size_t i = 0; i < n; i++) {
        const char *col = a ? a[i].column : names->v[i];
        char *q = d->quote_ident(col);
        int text = b->text_cmp && zdm_dwsql_in_list(b->text_cmp, col, strlen(col), 0);
        int exact = b->exact_cmp && zdm_dwsql_in_list(b->exact_cmp, col, strlen(col), 0);
        /* as text, byte for byte: a column's nondeterministic collation
         * (case-insensitive) follows it into ::text, and a change of case
         * of a source was no change */
        if (as_text && !text && !exact)
            zdm_buf_printf(c, "%s(NEW.%s %s OLD.%s OR NEW.%s::text COLLATE \"C\" %s OLD.%s::text COLLATE \"C\")",
                           i ? joiner : "", q, op, q, q, op, q);
        else
            zdm_buf_printf(c, "%sNEW.%s%s %s OLD.%s%s", i ? joiner : "", q, text ? "::text COLLATE \"C\"" : "", op,
                           q, text ? "::text COLLATE \"C\"" : "");
        free(q);
    }
}

/* PostgreSQL: BEFORE ROW triggers whose WHEN clauses decide the direction,
 * so PL/pgSQL runs only to compute a value, never to decide whether to:
 * the conditions are evaluated in the executor, and a row that needs
 * nothing costs no function call.  The reverse triggers are named to fire
 * first (PostgreSQL fires them in name order), which keeps the two
 * directions exclusive: a new application's write sets the old columns
 * and no longer looks like an old application's write. */
static void pg_triggers(const zdm_dialect *d, const zdm_dw_spec *b, zdm_buf *c, zdm_buf *drop)
{
    const zdm_strv *cols = b->cols;
    const char *base = b->base;
    char *tbl = zdm_dialect_quote_path(d, b->table);
    char *lit = zdm_dwsql_literal(b->plan_id);
    char name[128];
    snprintf(name, sizeof name, "%s_fwd", base);
    char *fwd = d->quote_ident(name);
    snprintf(name, sizeof name, "%s_rev", base);
    char *rev = d->quote_ident(name);
    const char *suffix[4] = {"_1rev_ins", "_1rev_upd", "_2fwd_ins", "_2fwd_upd"};
    char *trg[4];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s%s", base, suffix[i]);
        trg[i] = d->quote_ident(name);
    }
    /* the backfill of this plan converts rows itself: the triggers its
     * UPDATEs of the targets can fire step aside (the others have no
     * guard: PostgreSQL parses a trigger's WHEN again in each statement
     * that fires it, pg_compare) */
    char guard[200];
    snprintf(guard, sizeof guard, "current_setting('zdm.backfill', true) IS DISTINCT FROM %s", lit);

    /* "$user" in zdm's search_path (the default) resolves per caller:
     * under an application role with a schema of its name, the function
     * read that schema's tables and functions.  For the length of this
     * transaction the path is the schemas it resolves to in zdm's session,
     * by name, then pg_temp (left out, the caller's temporary tables come
     * first: a temporary "customers" was read instead of the table; zdm's
     * own temporary schema, named when its search_path did, left out
     * too: another session's would be read), and
     * SET search_path FROM CURRENT keeps those. */
    zdm_buf_puts(c, "SELECT set_config('search_path', concat_ws(', ', (SELECT string_agg(quote_ident(s), ', ') "
                    "FROM unnest(current_schemas(false)) AS s WHERE s !~ '^pg_(toast_)?temp_'), 'pg_temp'), true);\n");
    pg_function(c, d, fwd, b->set, b->nset, cols, b);
    if (b->nreverse)
        pg_function(c, d, rev, b->reverse, b->nreverse, cols, b);
    pg_value_settings(c, d, b, fwd, b->nreverse ? rev : NULL);
    for (int i = 0; i < 4; i++)
        zdm_buf_printf(c, "DROP TRIGGER IF EXISTS %s ON %s;\n", trg[i], tbl);

    if (b->nreverse) {
        /* new application inserts: it wrote the targets (no guard: the
         * backfill never inserts) */
        zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW\n  WHEN (NOT (", trg[0], tbl);
        zdm_dwsql_each_col(c, d, b->set, b->nset, "NEW.%s IS NULL", " AND ");
        zdm_buf_puts(c, ")");
        if (!b->reverse_on_insert) {
            /* rename_column / change_type set reverse_on_insert: the new
             * application cannot write the old columns at all, so what
             * they hold is a default; otherwise only empty ones are filled */
            zdm_buf_puts(c, " AND ");
            zdm_dwsql_each_col(c, d, b->reverse, b->nreverse, "NEW.%s IS NULL", " AND ");
        }
        zdm_buf_printf(c, ")\n  EXECUTE FUNCTION zdm.%s();\n", rev);
        /* new application updates: targets written, old columns not */
        zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE UPDATE", trg[1]);
        zdm_dwsql_of_columns(c, d, NULL, b->set, b->nset);
        zdm_buf_printf(c, " ON %s FOR EACH ROW\n  WHEN (%s AND (", tbl, guard);
        pg_compare(c, d, b, b->set, NULL, b->nset, "IS DISTINCT FROM", " OR ", 0);
        zdm_buf_puts(c, ") AND ");
        pg_compare(c, d, b, b->reverse, NULL, b->nreverse, "IS NOT DISTINCT FROM", " AND ", 0);
        zdm_buf_printf(c, ")\n  EXECUTE FUNCTION zdm.%s();\n", rev);
    }
    /* An in-place fix converts whatever row ends up matching `where`,
     * whoever wrote it: every insert and update goes to the function,
     * which tests `where` on NEW. */
    int in_place = b->in_place;
    /* old application inserts: targets empty.  No guard: the backfill
     * never inserts (its statements UPDATE the targets alone), and every
     * application INSERT pays for each word of the WHEN (pg_compare) */
    zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW\n", trg[2], tbl);
    if (!in_place) {
        zdm_buf_puts(c, "  WHEN (");
        zdm_dwsql_each_col(c, d, b->set, b->nset, "NEW.%s IS NULL", " AND ");
        zdm_buf_puts(c, ")\n");
    }
    zdm_buf_printf(c, "  EXECUTE FUNCTION zdm.%s();\n", fwd);
    /* old application updates: targets untouched, sources written.
     * Only statements that write a source column fire it at all, unless
     * an application BEFORE trigger may change one the statement does
     * not name (UPDATE OF sees the statement's SET list only): then every
     * UPDATE, and the WHEN compares the sources. */
    zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE UPDATE", trg[3]);
    int of_sources = b->sources->n && !b->any_update;
    if (of_sources)
        zdm_dwsql_of_columns(c, d, b->sources, NULL, 0);
    /* The backfill's UPDATEs name the targets alone: a trigger OF
     * sources none of which is a target never fires for them, and needs
     * no guard (each word of the WHEN costs every write: pg_compare) */
    int guarded = !of_sources;
    for (size_t i = 0; !guarded && i < b->nset; i++)
        guarded = zdm_dwsql_in_list(b->sources, b->set[i].column, strlen(b->set[i].column), 0);
    /* (of_sources without a guard has sources: never an empty WHEN) */
    zdm_buf_printf(c, " ON %s FOR EACH ROW\n  WHEN (%s", tbl, guarded ? guard : "");
    const char *and = guarded ? " AND " : "";
    if (!in_place) {
        zdm_buf_puts(c, and);
        pg_compare(c, d, b, b->set, NULL, b->nset, "IS NOT DISTINCT FROM", " AND ", 0);
        and = " AND ";
    }
    if (b->sources->n) {
        zdm_buf_printf(c, "%s(", and);
        pg_compare(c, d, b, NULL, b->sources, b->sources->n, "IS DISTINCT FROM", " OR ", 1);
        zdm_buf_puts(c, ")");
    }
    zdm_buf_printf(c, ")\n  EXECUTE FUNCTION zdm.%s();\n", fwd);

    for (int i = 0; i < 4; i++)
        zdm_buf_printf(drop, "DROP TRIGGER IF EXISTS %s ON %s;\n", trg[i], tbl);
    zdm_buf_printf(drop, "DROP FUNCTION IF EXISTS zdm.%s();\nDROP FUNCTION IF EXISTS zdm.%s();\n", fwd, rev);
    for (int i = 0; i < 4; i++)
        free(trg[i]);
    free(fwd);
    free(rev);
    free(tbl);
    free(lit);
}

/* ---- backfill ---- */

/* Value of a one-value query about `table` (quoted here) as text. */
static int table_value(zdm_db *db, const char *sql, const char *table, char **v, zdm_err *err)
{
    char *q = zdm_db_ident_path(db, table);
    const char *p[] = {q};
    int rc = zdm_db_query_value(db, sql, 1, p, v, err);
    free(q);
    return rc;
}

/* A table never vacuumed nor analyzed has reltuples -1 (PostgreSQL 14+,
 * 0 before): unknown, not empty.  Its rows are counted then: the whole
 * table up to 2,000 pages, else a sample of 500 of its pages scaled by its
 * size on disk: a backfill of a table made in the same release used to
 * start "about -1 rows" in one range. */
static int pg_row_estimate(zdm_db *db, const char *table, int64_t *rows, zdm_err *err)
{
    char *v = NULL;
    int rc = table_value(db, "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)", table, &v, err);
    *rows = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    if (rc != 0 || *rows > 0)
        return rc;
    v = NULL;
    rc = table_value(db, "SELECT pg_relation_size(to_regclass($1)) / current_setting('block_size')::bigint", table,
                     &v, err);
    long long pages = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    if (rc != 0 || pages <= 0) {
        *rows = 0;
        return rc;
    }
    /* up to 2,000 pages (16 MB) counted whole; beyond, the pages a
     * SYSTEM sample picks vary by a few percent around 500 */
    double pct = pages > 2000 ? 100.0 * 500.0 / (double)pages : 100.0;
    char *q = zdm_db_ident_path(db, table);
    zdm_buf b = {0};
    /* the comment names zdm: pg_stat_statements' reading leaves it out */
    zdm_buf_printf(&b, "SELECT /* zdm estimate */ count(*) FROM %s TABLESAMPLE SYSTEM (%.6f) REPEATABLE (0)", q, pct);
    free(q);
    v = NULL;
    rc = zdm_db_query_value(db, b.data, 0, NULL, &v, err);
    zdm_buf_free(&b);
    *rows = v ? (int64_t)((double)strtoll(v, NULL, 10) * 100.0 / pct) : 0;
    free(v);
    return rc;
}

static double pg_plan_cost(zdm_db *db, const char *sql, int np, const char *const *p);

/* The planner's row estimate of `where` (nothing runs). */
static int planner_where_rows(zdm_db *db, const char *tbl, const char *where, int64_t *rows)
{
    zdm_buf b = {0};
    zdm_buf_printf(&b, "EXPLAIN (FORMAT JSON) SELECT 1 FROM %s WHERE (%s)", tbl, where);
    char *v = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    int rc = -1;
    if (zdm_db_query_value(db, b.data, 0, NULL, &v, &e) == 0 && v) {
        json_error_t je;
        json_t *j = json_loads(v, 0, &je);
        json_t *pr = json_object_get(json_object_get(json_array_get(j, 0), "Plan"), "Plan Rows");
        if (json_is_number(pr)) {
            *rows = (int64_t)json_number_value(pr);
            rc = 0;
        }
        json_decref(j);
    }
    free(v);
    zdm_buf_free(&b);
    return rc;
}

/* Pages a sampled estimate reads at most (4 MB of 8 kB pages; a sample of some 90,000 rows). */
#define WHERE_SAMPLE_PAGES 500

/* Rows `where` matches, counted in a sample of the table's pages
 * (TABLESAMPLE SYSTEM, all of them for a table of up to
 * WHERE_SAMPLE_PAGES pages) and scaled by the table's row estimate.
 * Why not the planner's figure alone: the usual `where` names a column
 * the expand step just added, which has no statistics yet, so the
 * planner falls back to a default selectivity (0.5 % for IS NULL) and
 * progress began at "about 139 rows" for 30,000.  Only where the
 * sample's planned cost with the `where` is of the order of its cost
 * without (a `where` whose subquery scans the whole table is left to the
 * planner: the estimate must not cost what the backfill costs).  -1 when
 * not sampled. */
static int sampled_where_rows(zdm_db *db, const char *tbl, const char *where, int64_t *rows)
{
    char *v = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    const char *tp[] = {tbl};
    if (zdm_db_query_value(db, "SELECT relpages::bigint FROM pg_class WHERE oid = to_regclass($1)", 1, tp, &v,
                           &e) != 0 || !v) {
        free(v);
        return -1;
    }
    long long pages = strtoll(v, NULL, 10);
    free(v);
    double pct = pages > WHERE_SAMPLE_PAGES ? 100.0 * WHERE_SAMPLE_PAGES / (double)pages : 100.0;
    zdm_buf with = {0}, without = {0};
    /* the comment names zdm: the latency probe's pg_stat_statements
     * reading leaves zdm's statements out */
    zdm_buf_printf(&without, "SELECT /* zdm estimate */ count(*) FROM %s TABLESAMPLE SYSTEM (%.6f) REPEATABLE (0)",
                   tbl, pct);
    zdm_buf_printf(&with,
                   "SELECT /* zdm estimate */ count(*) FILTER (WHERE (%s)), count(*) FROM %s TABLESAMPLE SYSTEM "
                   "(%.6f) REPEATABLE (0)",
                   where, tbl, pct);
    double c_with = pg_plan_cost(db, with.data, 0, NULL), c_without = pg_plan_cost(db, without.data, 0, NULL);
    int rc = -1;
    zdm_rows *r = NULL;
    /* inside the split's transaction, a `where` that fails on some row
     * must not abort it: the planner's estimate is then used */
    int cheap = c_with >= 0 && c_without >= 0 && c_with <= 4 * c_without + 1000;
    int sp = cheap && db->in_tx && zdm_db_query(db, "SAVEPOINT zdm_estimate", 0, NULL, NULL, &e) == 0;
    int ok = cheap && (!db->in_tx || sp) && zdm_db_query(db, with.data, 0, NULL, &r, &e) == 0;
    if (sp && zdm_db_query(db, ok ? "RELEASE SAVEPOINT zdm_estimate" : "ROLLBACK TO SAVEPOINT zdm_estimate", 0,
                           NULL, NULL, &e) != 0)
        ok = 0; /* the transaction's next statement says what went wrong */
    if (ok && zdm_rows_count(r) == 1) {
        int64_t matched = strtoll(zdm_rows_get(r, 0, 0), NULL, 10), seen = strtoll(zdm_rows_get(r, 0, 1), NULL, 10);
        int64_t est = 0;
        const char *tp2[] = {tbl};
        char *t = NULL;
        if (pct >= 100.0) {
            *rows = matched;
            rc = 0;
        } else if (seen > 0 && zdm_db_query_value(db, "SELECT reltuples::bigint FROM pg_class WHERE oid = "
                                                      "to_regclass($1)", 1, tp2, &t, &e) == 0 && t &&
                   (est = strtoll(t, NULL, 10)) > 0) {
            *rows = (int64_t)((double)matched / (double)seen * (double)est);
            rc = 0;
        }
        free(t);
    }
    zdm_rows_free(r);
    zdm_buf_free(&with);
    zdm_buf_free(&without);
    return rc;
}

/* Rows `where` matches: counted in a sample where that is cheap, else the
 * planner's estimate. */
static int pg_where_estimate(zdm_db *db, const char *tbl, const char *where, int64_t *rows)
{
    if (sampled_where_rows(db, tbl, where, rows) == 0)
        return 0;
    return planner_where_rows(db, tbl, where, rows);
}

static double pg_plan_cost(zdm_db *db, const char *sql, int np, const char *const *p)
{
    zdm_buf b = {0};
    zdm_buf_printf(&b, "EXPLAIN (FORMAT JSON) %s", sql);
    char *v = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    double cost = -1;
    if (zdm_db_query_value(db, b.data, np, p, &v, &e) == 0 && v) {
        json_error_t je;
        json_t *j = json_loads(v, 0, &je);
        json_t *top = json_object_get(json_object_get(json_array_get(j, 0), "Plan"), "Total Cost");
        if (json_is_number(top))
            cost = json_number_value(top);
        json_decref(j);
    }
    free(v);
    zdm_buf_free(&b);
    return cost;
}

static char *pg_column_type(zdm_db *db, const char *table, const char *column)
{
    char *qt = zdm_db_ident_path(db, table);
    const char *tp[] = {qt, column};
    char *type = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    /* with its modifier (numeric(5,2), character varying(10)), and its
     * schema where the search_path does not show it */
    if (zdm_db_query_value(db, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                               "to_regclass($1) AND attname = $2 AND NOT attisdropped", 2, tp, &type, &e) != 0) {
        free(type);
        type = NULL;
    }
    free(qt);
    return type;
}

/* A boolean column's value; NULL (a subquery that found no row) is false. */
static int is_true(const char *v)
{
    return v && strcmp(v, "t") == 0;
}

/* One catalog read for all of the preflight's questions (zdm_table_facts). */
static int pg_table_facts(zdm_db *db, const char *table, zdm_table_facts *out, zdm_err *err)
{
    char *qt = zdm_db_ident_path(db, table);
    const char *tp[] = {qt};
    zdm_rows *r = NULL;
    *out = (zdm_table_facts){0};
    int rc = zdm_db_query(db,
                          /* the default: the column's, or its domain's (an INSERT gets either) */
                          "SELECT a.attname, CASE WHEN a.attgenerated = '' THEN coalesce(pg_get_expr(d.adbin, "
                          "d.adrelid), (SELECT dt.typdefault FROM pg_type dt WHERE dt.oid = a.atttypid AND "
                          "dt.typtype = 'd')) END, "
                          "a.attgenerated <> '', "
                          /* a partition key anywhere above or below the table (a BEFORE trigger
                           * cannot move the row out of its leaf) */
                          "a.attname IN (SELECT pa.attname FROM pg_partitioned_table pt JOIN pg_attribute pa ON "
                          "pa.attrelid = pt.partrelid AND pa.attnum = ANY (pt.partattrs::int2[]) WHERE pt.partrelid IN "
                          "(SELECT relid FROM pg_partition_tree(to_regclass($1)) UNION "
                          "SELECT relid FROM pg_partition_ancestors(to_regclass($1)))), "
                          "EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
                          "AND c.relkind = 'r' WHERE i.inhparent = a.attrelid), "
                          /* the application's BEFORE ROW (tgtype 1|2) triggers, on the table or
                           * any of its partitions, disabled ones too (they may be enabled while
                           * zdm's are in place): on UPDATE (16), and those named after zdm's,
                           * which fire after them */
                          "EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid IN (SELECT to_regclass($1) UNION "
                          "SELECT relid FROM pg_partition_tree(to_regclass($1))) AND NOT t.tgisinternal "
                          "AND t.tgname NOT LIKE 'zdm\\_dw\\_%' AND t.tgtype & 19 = 19), "
                          "(SELECT string_agg(DISTINCT t.tgname, ', ' ORDER BY t.tgname) FROM pg_trigger t WHERE t.tgrelid IN "
                          "(SELECT to_regclass($1) UNION SELECT relid FROM pg_partition_tree(to_regclass($1))) AND "
                          "NOT t.tgisinternal AND t.tgname NOT LIKE 'zdm\\_dw\\_%' AND "
                          "t.tgtype & 3 = 3 AND t.tgname COLLATE \"C\" > 'zdm_dw'), "
                          /* types whose "=" is missing or fails when it runs: json, xml,
                           * composites (their "=" needs every field's), geometric types (point
                           * has none), followed through domains (at any depth: a domain over a
                           * domain over date[] gave no row, and zdm crashed) and arrays:
                           * compared as text */
                          "EXISTS (WITH RECURSIVE c(t) AS (SELECT a.atttypid UNION SELECT CASE WHEN p.typbasetype "
                          "<> 0 THEN p.typbasetype ELSE p.typelem END FROM c JOIN pg_type p ON p.oid = c.t WHERE "
                          "p.typbasetype <> 0 OR (p.typcategory = 'A' AND p.typelem <> 0)) "
                          "SELECT 1 FROM c JOIN pg_type p ON p.oid = c.t WHERE p.typtype = 'c' OR p.typcategory = 'G' "
                          "OR p.oid IN ('json'::regtype, 'xml'::regtype)), "
                          /* types whose "=" holds only between values of the same text (under a
                           * deterministic collation): a change of a source's text is a change to
                           * "=", and the WHEN compares it once, not once more as text */
                          "coalesce(nullif(ty.typbasetype, 0), ty.oid) IN ('text'::regtype, 'varchar'::regtype, "
                          "'int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'bool'::regtype, 'uuid'::regtype, "
                          "'date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype, 'bytea'::regtype, "
                          "'oid'::regtype) AND coalesce((SELECT co.collisdeterministic FROM pg_collation co "
                          "WHERE co.oid = a.attcollation), true) "
                          "FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                          "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                          1, tp, &r, err);
    free(qt);
    if (rc == 0 && zdm_rows_count(r) > 0) {
        out->ncols = (size_t)zdm_rows_count(r);
        out->cols = zdm_xcalloc(out->ncols, sizeof *out->cols);
        out->inherited = is_true(zdm_rows_get(r, 0, 4));
        out->before_update = is_true(zdm_rows_get(r, 0, 5));
        out->after_ours = zdm_rows_get(r, 0, 6) ? zdm_xstrdup(zdm_rows_get(r, 0, 6)) : NULL;
        for (int i = 0; i < zdm_rows_count(r); i++) {
            const char *def = zdm_rows_get(r, i, 1);
            /* unique_inherits stays 0: a unique violation fails the write */
            out->cols[i] = (zdm_column_fact){.name = zdm_xstrdup(zdm_rows_get(r, i, 0)),
                                             .def = def ? zdm_xstrdup(def) : NULL,
                                             .unreadable_generated = is_true(zdm_rows_get(r, i, 2)),
                                             .partition_key = is_true(zdm_rows_get(r, i, 3)),
                                             .no_equality = is_true(zdm_rows_get(r, i, 7)),
                                             .exact_equality = is_true(zdm_rows_get(r, i, 8))};
        }
    }
    zdm_rows_free(r);
    return rc;
}

/* A column of an integer type: its batches may be spans of key values.  A
 * text key whose values read as integers ('1'..'40000') compares as text
 * ('10000' < '9000'): spans of numbers walked it out of order and left
 * 38,667 of 40,000 rows to the final check. */
static int pg_integer_key(zdm_db *db, const char *table, const char *column)
{
    char *type = pg_column_type(db, table, column);
    int yes = type && (strcmp(type, "bigint") == 0 || strcmp(type, "integer") == 0 || strcmp(type, "smallint") == 0);
    free(type);
    return yes;
}

static int pg_autovacuum_running(zdm_db *db, const char *table, int *running, zdm_err *err)
{
    char *v = NULL;
    int rc = table_value(db,
                         "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum v JOIN pg_stat_activity a "
                         "USING (pid) WHERE v.relid = to_regclass($1) AND a.backend_type = 'autovacuum worker')",
                         table, &v, err);
    *running = v && (strcmp(v, "t") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
    free(v);
    return rc;
}

static int pg_replica_lag_ms(zdm_db *db, int64_t *ms, zdm_err *err)
{
    char *v = NULL;
    int rc = zdm_db_query_value(db,
                                "SELECT COALESCE(max(extract(epoch FROM replay_lag) * 1000), 0)::bigint "
                                "FROM pg_stat_replication",
                                0, NULL, &v, err);
    *ms = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return rc;
}

static int pg_wal_archive_ready(zdm_db *db, int64_t *files, zdm_err *err)
{
    char *v = NULL;
    int rc = zdm_db_query_value(db,
                                "SELECT CASE WHEN current_setting('archive_mode') = 'off' THEN 0 ELSE "
                                "(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') END",
                                0, NULL, &v, err);
    *files = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return rc;
}

/* ---- phases ---- */

static int pg_step_drops_columns(const char *sql)
{
    zdm_strv t = {0}, c = {0};
    int drops = zdm_sql_dropped_columns(sql, &t, &c);
    zdm_strv_free(&t);
    zdm_strv_free(&c);
    return drops;
}

const zdm_dialect zdm_dialect_pg = {
    .kind = ZDM_DB_PG,
    .name = "postgresql",
    .plan_key = "pg",
    .slot = 0,
    .quote_ident = pg_quote,
    .table_columns = pg_columns,
    .key_of = pg_key_of,
    .row_label = pg_row_label,
    .invalid_indexes = pg_invalid_indexes,
    .index_built = pg_index_built,
    .dry_timeouts = pg_dry_timeouts,
    .idle_busy_wait = 0,
    .set_local_timeouts = pg_set_local_timeouts,
    .lock_holder_hint = "in pg_stat_activity / pg_locks",
    .quoted_names_case_sensitive = 1,
    .preflight_warm = "DO $zdm$BEGIN NULL; END$zdm$",
    .pg_grammar = 1,
    .file_backup = 0,
    .step_drops_columns = pg_step_drops_columns,
    .drop_rebuilds_views = 1,
    .lost_indexes_sql =
        "SELECT DISTINCT i.indexrelid::regclass::text FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid "
        " AND (a.attnum = ANY (i.indkey) OR pg_get_indexdef(i.indexrelid) ~ ('\\m' || a.attname || '\\M')) "
        "WHERE i.indrelid = to_regclass($1) AND a.attname = $2 AND NOT i.indisunique ORDER BY 1",
    .state_prefix = "zdm.",
    .state_bigint = "bigint",
    .state_serial_pk = "bigserial PRIMARY KEY",
    .state_ddl_head = "CREATE SCHEMA IF NOT EXISTS zdm;\n",
    .state_ddl_tail = "",
    .state_add_column = "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s;\n",
    .state_init_lock = "SELECT pg_advisory_xact_lock(4242, 0)",
    .table_exists = pg_table_exists,
    .dw_needs_key = 0,
    .dw_body_in_function = 1,
    .dw_compiled_on_write = 0,
    .dw_triggers = pg_triggers,
    /* ---- backfill ---- */
    .lock_row = " FOR UPDATE",
    .lock_row_skip_locked = " FOR UPDATE SKIP LOCKED",
    .distinct = "IS DISTINCT FROM",
    .session_id = "pg_backend_pid()",
    .session_alive = "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.owner_backend)",
    /* the triggers read zdm.backfill (dualwrite.c); both settings end
     * with the transaction */
    .step_begin = "SET LOCAL synchronous_commit = off",
    /* synchronous_commit off: a batch's commit does not wait for its WAL
     * to reach the disk (the rows and the range's cursor are one commit,
     * so a crash that loses it loses both: the batch is converted again,
     * never twice); the commit that makes the plan backfilled waits as
     * usual, and flushes every batch before it.  Waiting, a batch held its
     * row locks through a disk sync at every commit. */
    /* name=value entries of proconfig; values hold '=' and ',' (DateStyle=ISO, MDY) */
    .dw_session_settings = "SELECT count(set_config(split_part(c, '=', 1), substr(c, strpos(c, '=') + 1), false)) "
                           "FROM pg_proc p, unnest(p.proconfig) AS c WHERE p.oid = to_regprocedure($1)",
    .batch_begin = "SELECT set_config('lock_timeout', '5s', true), set_config('zdm.backfill', $1, true), "
                   "set_config('synchronous_commit', 'off', true)",
    .batch_end = NULL,
    .batch_one_statement = 1,
    .paced_session = "SET max_parallel_workers_per_gather = 0",
    .unpaced_session = "RESET max_parallel_workers_per_gather",
    .probe_session = "SET synchronous_commit = off",
    .one_writer = 0,
    .row_estimate = pg_row_estimate,
    .where_estimate = pg_where_estimate,
    .plan_cost = pg_plan_cost,
    .column_type = pg_column_type,
    .table_facts = pg_table_facts,
    .integer_key = pg_integer_key,
    .autovacuum_running = pg_autovacuum_running,
    .replica_lag_ms = pg_replica_lag_ms,
    .wal_archive_ready = pg_wal_archive_ready,
};
