/*
 * ops.c -- structured operations into raw steps (see ops.h).
 *
 * Each operation is written as the sequence a careful DBA would type:
 *  - PostgreSQL constraints go in NOT VALID and are validated in a step of
 *    their own (VALIDATE takes a lock that lets reads and writes through);
 *    SET NOT NULL comes after a validated CHECK, so it does not scan again;
 *    indexes are built and dropped CONCURRENTLY.
 *  - Renames and type changes never change what the old application sees:
 *    expand adds the new column, dual-write keeps both in step, the
 *    backfill copies, and only contract removes the old name.  The new
 *    application reads its names through a view schema (PostgreSQL).
 *  - SQLite cannot add a constraint to an existing table without a
 *    rebuild: NOT NULL and CHECK become triggers that refuse bad writes
 *    (and a check of the existing rows); foreign keys and type changes are
 *    refused there, with the reason.
 *
 * Names in plans are plain identifiers (validated in plan.c); the SQL
 * here quotes them as the dialects do (dialect.h), without a connection:
 * a plan expands to both dialects' SQL before any database is open.
 */
#include "ops.h"
#include "sqlscan.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "lint.h"
#include "util.h"

enum { PG = 0, SQ = 1 };

char *zdm_ops_quote(const char *name, int path)
{
    /* One quoted text serves both dialects' SQL: they quote identifiers
     * alike (standard SQL double quotes; test_dualwrite_sql checks). */
    return path ? zdm_dialect_quote_path(&zdm_dialect_pg, name) : zdm_dialect_pg.quote_ident(name);
}

void zdm_ops_version_schema(const zdm_plan *p, char *out, size_t size)
{
    char h[65];
    if (strlen(p->id) <= 50) {
        snprintf(out, size, "zdm_v_%s", p->id);
        return;
    }
    zdm_sha256_hex(p->id, strlen(p->id), h);
    snprintf(out, size, "zdm_v_%.40s_%.8s", p->id, h);
}

/* ---- a list of generated steps ---- */

typedef struct gen {
    zdm_step *v;
    size_t n, cap;
} gen;

/* Adds a step generated from op step `src`.  pg/sq may be NULL (with a
 * reason in why_sq for SQLite). */
static zdm_step *add(gen *g, const zdm_step *src, const char *name, char *pg, char *pg_down, char *sq,
                     char *sq_down)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 8;
        g->v = zdm_xrealloc(g->v, g->cap * sizeof *g->v);
    }
    zdm_step *s = &g->v[g->n++];
    memset(s, 0, sizeof *s);
    /* the plan's own name for the step leads, so logs and history show it */
    s->name = src->name ? zdm_xasprintf("%s: %s", src->name, name) : zdm_xstrdup(name);
    s->sql_for[PG] = pg;
    s->down_for[PG] = pg_down;
    s->sql_for[SQ] = sq;
    s->down_for[SQ] = sq_down;
    s->from_op = zdm_xstrdup(src->op);
    s->fields = src->fields;
    s->transaction = src->transaction;
    s->lock_timeout_ms = src->lock_timeout_ms;
    s->statement_timeout_ms = src->statement_timeout_ms;
    s->lock_retries = src->lock_retries;
    s->line = src->line;
    s->col = src->col;
    return s;
}

static void no_sqlite(zdm_step *s, const char *why)
{
    s->unsupported_for[SQ] = zdm_xstrdup(why);
}

/* ---- reading op fields (types were checked in plan.c where simple) ---- */

typedef struct opctx {
    zdm_plan *p;
    zdm_diags *d;
    const zdm_step *s;
    const char *phase;
    int errors;
} opctx;

static void bad(opctx *o, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    zdm_diag_add(o->d, o->p->path, o->s->line, o->s->col, "%s step %d (op \"%s\"): %s", o->phase,
                 o->s->index, o->s->op, msg);
    o->errors++;
}

static const char *fstr(opctx *o, const char *key)
{
    const toml_value *v = toml_get(o->s->fields, key);
    if (!v)
        return NULL;
    if (v->type != TOML_STRING) {
        bad(o, "\"%s\" must be a string", key, NULL);
        return NULL;
    }
    return v->u.str.ptr;
}

static int fbool(opctx *o, const char *key, int dflt)
{
    const toml_value *v = toml_get(o->s->fields, key);
    if (!v)
        return dflt;
    if (v->type != TOML_BOOL) {
        bad(o, "\"%s\" must be true or false", key, NULL);
        return dflt;
    }
    return v->u.boolean;
}

static int plain_ident(const char *s)
{
    if (!*s || strlen(s) > 63)
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '$'))
            return 0;
    return 1;
}

/* A list of column names (string or array of strings), quoted and joined. */
static char *fcols(opctx *o, const char *key, zdm_strv *raw)
{
    const toml_value *v = toml_get(o->s->fields, key);
    zdm_strv l = {0};
    if (v && v->type == TOML_STRING) {
        zdm_strv_push(&l, v->u.str.ptr);
    } else if (v && v->type == TOML_ARRAY) {
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (v->u.array.items[i]->type != TOML_STRING) {
                bad(o, "\"%s\" must list column names", key, NULL);
                zdm_strv_free(&l);
                return NULL;
            }
            zdm_strv_push(&l, v->u.array.items[i]->u.str.ptr);
        }
    } else if (v) {
        bad(o, "\"%s\" must be a column name or a list of them", key, NULL);
        return NULL;
    }
    if (v && !l.n) {
        bad(o, "\"%s\" is empty", key, NULL);
        return NULL;
    }
    zdm_buf b = {0};
    for (size_t i = 0; i < l.n; i++) {
        if (!plain_ident(l.v[i])) {
            bad(o, "\"%s\" is not a plain column name", l.v[i], NULL);
            zdm_buf_free(&b);
            zdm_strv_free(&l);
            return NULL;
        }
        char *q = zdm_ops_quote(l.v[i], 0);
        zdm_buf_printf(&b, "%s%s", i ? ", " : "", q);
        free(q);
        if (raw)
            zdm_strv_push(raw, l.v[i]);
    }
    zdm_strv_free(&l);
    return zdm_buf_take(&b);
}

/* A default name within PostgreSQL's 63 bytes: base_suffix, hashed when long. */
static char *auto_name(const char *table, const zdm_strv *cols, const char *suffix)
{
    zdm_buf b = {0};
    const char *t = strrchr(table, '.') ? strrchr(table, '.') + 1 : table;
    zdm_buf_puts(&b, t);
    for (size_t i = 0; cols && i < cols->n; i++)
        zdm_buf_printf(&b, "_%s", cols->v[i]);
    zdm_buf_printf(&b, "_%s", suffix);
    if (b.len <= 63)
        return zdm_buf_take(&b);
    char h[65];
    zdm_sha256_hex(b.data, b.len, h);
    char *s = zdm_xasprintf("%.40s_%.8s_%s", b.data, h, suffix);
    zdm_buf_free(&b);
    return s;
}

/* `expr` with every bare `from` identifier replaced by `to` (quoted). */
static char *rename_ident(const char *expr, const char *from, const char *to)
{
    zdm_buf b = {0};
    const char *p = expr;
    size_t fl = strlen(from);
    char prev = 0;
    while (*p) {
        if (*p == '\'') {
            const char *s = p++;
            while (*p && !(*p == '\'' && p[1] != '\''))
                p += *p == '\'' ? 2 : 1;
            if (*p)
                p++;
            zdm_buf_putn(&b, s, (size_t)(p - s));
            prev = '\'';
            continue;
        }
        if (isalpha((unsigned char)*p) || *p == '_' || *p == '"') {
            int quoted = *p == '"';
            const char *s = p, *name = quoted ? p + 1 : p;
            if (quoted) {
                p++;
                while (*p && *p != '"')
                    p++;
                size_t len = (size_t)(p - name);
                if (*p)
                    p++;
                if (len == fl && strncmp(name, from, fl) == 0 && prev != '.') {
                    char *q = zdm_ops_quote(to, 0);
                    zdm_buf_puts(&b, q);
                    free(q);
                } else {
                    zdm_buf_putn(&b, s, (size_t)(p - s));
                }
            } else {
                while (isalnum((unsigned char)*p) || *p == '_' || *p == '$')
                    p++;
                size_t len = (size_t)(p - s);
                const char *q2 = p;
                while (*q2 == ' ')
                    q2++;
                if (len == fl && strncasecmp(s, from, fl) == 0 && prev != '.' && *q2 != '(' && *q2 != '.') {
                    char *q = zdm_ops_quote(to, 0);
                    zdm_buf_puts(&b, q);
                    free(q);
                } else {
                    zdm_buf_putn(&b, s, len);
                }
            }
            prev = 'a';
            continue;
        }
        if (!isspace((unsigned char)*p))
            prev = *p;
        zdm_buf_putn(&b, p, 1);
        p++;
    }
    return zdm_buf_take(&b);
}

/* SQLite: a statement that fails, with `message` in the error, when
 * `condition` holds -- SQLite has no ASSERT outside triggers, but a named
 * CHECK on a temporary table says exactly what went wrong.  The table is
 * named after the constraint `name` and made only if missing: the step
 * runs outside a transaction (constraint_steps), so one that failed leaves
 * it, empty, in the connection for the next run of the same check. */
static char *sqlite_assert_none(const char *table_q, const char *name, const char *bad_rows, const char *message)
{
    char *msg = zdm_ops_quote(message, 0);
    char *t = zdm_xasprintf("zdm_assert_%s", name);
    char *tq = zdm_ops_quote(t, 0);
    char *s = zdm_xasprintf("CREATE TEMP TABLE IF NOT EXISTS %s (ok integer CONSTRAINT %s CHECK (ok));\n"
                            "INSERT INTO temp.%s SELECT NOT EXISTS (SELECT 1 FROM %s WHERE %s);\n"
                            "DROP TABLE temp.%s",
                            tq, msg, tq, table_q, bad_rows, tq);
    free(msg);
    free(t);
    free(tq);
    return s;
}

/* SQLite: AFTER triggers that refuse rows breaking `rule` (a SQL boolean
 * over the row's columns), as a CHECK constraint would. */
static void sqlite_rule_triggers(const char *table_q, const char *name, const char *rule, char **create,
                                 char **drop)
{
    char *ti = zdm_xasprintf("%s_ins", name), *tu = zdm_xasprintf("%s_upd", name);
    char *qi = zdm_ops_quote(ti, 0), *qu = zdm_ops_quote(tu, 0);
    char *text = zdm_xasprintf("%s violated", name);
    char *msg = zdm_sql_literal(text);
    free(text);
    *create = zdm_xasprintf(
        "CREATE TRIGGER %s AFTER INSERT ON %s BEGIN\n"
        "  SELECT RAISE(ABORT, %s) FROM %s WHERE rowid = NEW.rowid AND NOT (%s);\nEND;\n"
        "CREATE TRIGGER %s AFTER UPDATE ON %s BEGIN\n"
        "  SELECT RAISE(ABORT, %s) FROM %s WHERE rowid = NEW.rowid AND NOT (%s);\nEND",
        qi, table_q, msg, table_q, rule, qu, table_q, msg, table_q, rule);
    *drop = zdm_xasprintf("DROP TRIGGER IF EXISTS %s;\nDROP TRIGGER IF EXISTS %s", qi, qu);
    free(ti);
    free(tu);
    free(qi);
    free(qu);
    free(msg);
}

/* ---- backfill synthesis ---- */

static void set_backfill(opctx *o, const char *table, const char *target, const char *expr, const char *where,
                         const char *source, const char *rev_col, const char *rev_expr)
{
    zdm_plan *p = o->p;
    if (p->backfill) {
        bad(o, "this operation copies data, and the plan already has a backfill; put it in a plan of its own%s%s",
            NULL, NULL);
        return;
    }
    zdm_backfill *b = zdm_xcalloc(1, sizeof *b);
    zdm_throttle_defaults(&b->throttle);
    b->table = zdm_xstrdup(table);
    b->where = where ? zdm_xstrdup(where) : NULL;
    b->set = zdm_xcalloc(2, sizeof *b->set);
    b->set[0].column = zdm_xstrdup(target);
    b->set[0].expr = zdm_xstrdup(expr);
    b->set[0].line = o->s->line;
    b->set[0].col = o->s->col;
    b->nset = 1;
    b->dual_write = 1;
    if (source)
        zdm_strv_push(&b->dw_sources, source);
    if (rev_col) {
        b->reverse = zdm_xcalloc(2, sizeof *b->reverse);
        b->reverse[0].column = zdm_xstrdup(rev_col);
        b->reverse[0].expr = zdm_xstrdup(rev_expr);
        b->nreverse = 1;
        /* The new application inserts through the view schema, which has
         * no old column, so such an insert gives the old column its default;
         * a trigger that kept any non-NULL value would leave that default
         * there and the old application would read it instead of the new
         * value.  On an insert the old column can only hold its default, so
         * it is always derived (the new column has no default until
         * contract, so the old application's inserts still leave it NULL). */
        b->reverse_on_insert = 1;
    }
    b->line = o->s->line;
    b->col = o->s->col;
    p->backfill = b;
}

/* PostgreSQL view schema for the new application: the table's columns
 * without `hide`, with `alias_from` shown as `alias_to`.  Built from the
 * catalog when the step runs, so it lists the columns as they are then. */
static char *pg_version_view(const zdm_plan *p, const char *table, const char *hide, const char *alias_from,
                             const char *alias_to)
{
    char schema[128];
    zdm_ops_version_schema(p, schema, sizeof schema);
    char *qs = zdm_ops_quote(schema, 0), *qt = zdm_ops_quote(table, 1);
    const char *bare = strrchr(table, '.') ? strrchr(table, '.') + 1 : table;
    /* Names go into the block as literals, and the block's tag is one
     * they do not contain: any name is data here, never code. */
    char *l_from = zdm_sql_literal(alias_from ? alias_from : ""), *l_to = zdm_sql_literal(alias_to ? alias_to : "");
    char *l_qt = zdm_sql_literal(qt), *l_hide = zdm_sql_literal(hide ? hide : "");
    char *l_schema = zdm_sql_literal(schema), *l_bare = zdm_sql_literal(bare);
    char *body = zdm_xasprintf(
        " DECLARE cols text; BEGIN\n"
        "  SELECT string_agg(CASE WHEN a.attname = %s THEN format('%%I AS %%I', a.attname, %s)\n"
        "                         ELSE format('%%I', a.attname) END, ', ' ORDER BY a.attnum)\n"
        "    INTO cols FROM pg_attribute a\n"
        "   WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped\n"
        "     AND a.attname <> %s;\n"
        "  EXECUTE format('CREATE OR REPLACE VIEW %%I.%%I AS SELECT %%s FROM %%s', %s, %s, cols, %s::regclass);\n"
        /* how it was built, for a later contract that must rebuild it
         * without a column (zdm_ops_pg_rebuild_views) */
        "  EXECUTE format('COMMENT ON VIEW %%I.%%I IS %%L', %s, %s,\n"
        "                 'zdm version view' || chr(31) || %s || chr(31) || %s || chr(31) || %s);\n"
        "END ",
        l_from, l_to, l_qt, l_hide, l_schema, l_bare, l_qt, l_schema, l_bare, l_hide, l_from, l_to);
    char *block = zdm_sql_dollar_quote(body);
    char *s = zdm_xasprintf("CREATE SCHEMA IF NOT EXISTS %s;\nDO %s", qs, block);
    free(block);
    free(body);
    free(l_from);
    free(l_to);
    free(l_qt);
    free(l_hide);
    free(l_schema);
    free(l_bare);
    free(qs);
    free(qt);
    return s;
}

char *zdm_ops_pg_rebuild_views(const char *table, const char *column)
{
    char *qt = zdm_ops_quote(table, 1);
    char *l_qt = zdm_sql_literal(qt), *l_col = zdm_sql_literal(column);
    char *body = zdm_xasprintf(
        " DECLARE v record; r record; part text[]; cols text; acl aclitem[]; BEGIN\n"
        "  FOR v IN SELECT DISTINCT c.oid, n.nspname, c.relname, obj_description(c.oid, 'pg_class') AS note\n"
        "      FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid\n"
        "      JOIN pg_class c ON c.oid = w.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace\n"
        "      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid\n"
        "     WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %s::regclass AND a.attname = %s\n"
        "       AND starts_with(n.nspname, 'zdm_v_')\n"
        "       AND starts_with(obj_description(c.oid, 'pg_class'), 'zdm version view' || chr(31))\n"
        "  LOOP\n"
        "    part := string_to_array(v.note, chr(31));  -- note, hidden column, alias from, alias to\n"
        "    SELECT string_agg(CASE WHEN a.attname = part[3] THEN format('%%I AS %%I', a.attname, part[4])\n"
        "                           ELSE format('%%I', a.attname) END, ', ' ORDER BY a.attnum)\n"
        "      INTO cols FROM pg_attribute a\n"
        "     WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped\n"
        "       AND a.attname <> part[2] AND a.attname <> %s;\n"
        "    SELECT c.relacl INTO acl FROM pg_class c WHERE c.oid = v.oid;\n"
        "    EXECUTE format('DROP VIEW %%I.%%I', v.nspname, v.relname);\n"
        "    EXECUTE format('CREATE VIEW %%I.%%I AS SELECT %%s FROM %%s', v.nspname, v.relname, cols, %s::regclass);\n"
        "    EXECUTE format('COMMENT ON VIEW %%I.%%I IS %%L', v.nspname, v.relname, v.note);\n"
        "    FOR r IN SELECT * FROM aclexplode(acl) WHERE acl IS NOT NULL LOOP\n"
        "      EXECUTE format('GRANT %%s ON %%I.%%I TO %%s', r.privilege_type, v.nspname, v.relname,\n"
        "        CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);\n"
        "    END LOOP;\n"
        "  END LOOP;\n"
        "END ",
        l_qt, l_col, l_qt, l_col, l_qt);
    char *block = zdm_sql_dollar_quote(body);
    char *s = zdm_xasprintf("DO %s;\n", block);
    free(block);
    free(body);
    free(l_qt);
    free(l_col);
    free(qt);
    return s;
}

static char *pg_drop_version_schema(const zdm_plan *p)
{
    char schema[128];
    zdm_ops_version_schema(p, schema, sizeof schema);
    char *qs = zdm_ops_quote(schema, 0);
    char *s = zdm_xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", qs);
    free(qs);
    return s;
}

/* Contract: the view schema goes once the table itself has the new names
 * (after the old column is dropped / the new one renamed into place, so
 * the new application never sees the old column through public).
 *
 * The view schema must not outlive contract: its view pins the table's
 * columns, so a later plan dropping or retyping one of them would fail
 * ("other objects depend on it"), and the new application, still on
 * search_path zdm_v_<plan>, would keep reading a column list frozen at
 * expand.  Once the schema is gone that search_path entry is skipped and
 * the application reads the table itself.  No down: the contract of these
 * operations drops a column, which cannot be undone anyway. */
static zdm_step *contract_version_schema(opctx *o, gen *ct, const char *table, int sqlite_ok)
{
    char schema[128], name[256];
    zdm_ops_version_schema(o->p, schema, sizeof schema);
    snprintf(name, sizeof name, "drop the view schema %s (%s has the new names now)", schema, table);
    return add(ct, o->s, name, pg_drop_version_schema(o->p), NULL,
               sqlite_ok ? zdm_xstrdup("SELECT 1 /* SQLite: no view schema */") : NULL, NULL);
}

/* ---- the operations ---- */

static void op_create_table(opctx *o, gen *ex, const char *table, const char *tq)
{
    const toml_value *cols = toml_get(o->s->fields, "columns");
    if (!cols || cols->type != TOML_ARRAY || !cols->u.array.len) {
        bad(o, "\"columns\" must be a list of {name = \"...\", type = \"...\"} tables%s%s", NULL, NULL);
        return;
    }
    zdm_buf b = {0};
    zdm_buf_printf(&b, "CREATE TABLE %s (\n", tq);
    for (size_t i = 0; i < cols->u.array.len; i++) {
        const toml_value *c = cols->u.array.items[i];
        const toml_value *nm = c->type == TOML_TABLE ? toml_get(c, "name") : NULL;
        const toml_value *ty = c->type == TOML_TABLE ? toml_get(c, "type") : NULL;
        if (!nm || nm->type != TOML_STRING || !ty || ty->type != TOML_STRING || !plain_ident(nm->u.str.ptr)) {
            bad(o, "every column needs name = \"...\" (a plain name) and type = \"...\"%s%s", NULL, NULL);
            zdm_buf_free(&b);
            return;
        }
        for (size_t k = 0; k < c->u.table.len; k++) {
            const char *key = c->u.table.items[k].key;
            if (strcmp(key, "name") && strcmp(key, "type") && strcmp(key, "nullable") && strcmp(key, "default") &&
                strcmp(key, "primary_key")) {
                bad(o, "unknown column key \"%s\" (name, type, nullable, default, primary_key)%s", key, NULL);
                zdm_buf_free(&b);
                return;
            }
        }
        const toml_value *nl = toml_get(c, "nullable"), *df = toml_get(c, "default"), *pk = toml_get(c, "primary_key");
        /* Every type a TOML value can have is either used or refused: a
         * `default` that is not a string (default = 0, default = false) or
         * a non-boolean nullable / primary_key skipped in silence would
         * give a table without them.  Numbers and booleans are taken as
         * add_column takes them; any other type is an error. */
        if ((nl && nl->type != TOML_BOOL) || (pk && pk->type != TOML_BOOL) ||
            (df && df->type != TOML_STRING && df->type != TOML_INTEGER && df->type != TOML_BOOL)) {
            bad(o, "column \"%s\": nullable and primary_key must be true or false, default a SQL expression in a "
                   "string, an integer or a boolean%s", nm->u.str.ptr, NULL);
            zdm_buf_free(&b);
            return;
        }
        /* pasted as written: one piece each (sqlscan.h); a new table
         * has no rows, so its column's type may carry its clauses */
        const char *why = zdm_sql_fragment_problem(ty->u.str.ptr, 0, 0);
        const char *which = "type";
        if (!why && df && df->type == TOML_STRING) {
            why = zdm_sql_fragment_problem(df->u.str.ptr, 0, 0);
            which = "default";
        }
        if (why) {
            char msg[400];
            snprintf(msg, sizeof msg, "column \"%s\": its %s %s", nm->u.str.ptr, which, why);
            bad(o, "%s%s", msg, NULL);
            zdm_buf_free(&b);
            return;
        }
        char *q = zdm_ops_quote(nm->u.str.ptr, 0);
        zdm_buf_printf(&b, "    %s %s", q, ty->u.str.ptr);
        free(q);
        if (pk && pk->u.boolean)
            zdm_buf_puts(&b, " PRIMARY KEY");
        else if (nl && !nl->u.boolean)
            zdm_buf_puts(&b, " NOT NULL");
        if (df && df->type == TOML_STRING)
            zdm_buf_printf(&b, " DEFAULT %s", df->u.str.ptr);
        else if (df && df->type == TOML_INTEGER)
            zdm_buf_printf(&b, " DEFAULT %lld", (long long)df->u.integer);
        else if (df)
            zdm_buf_puts(&b, df->u.boolean ? " DEFAULT true" : " DEFAULT false");
        zdm_buf_puts(&b, i + 1 < cols->u.array.len ? ",\n" : "");
    }
    char *pkcols = toml_get(o->s->fields, "primary_key") ? fcols(o, "primary_key", NULL) : NULL;
    if (pkcols)
        zdm_buf_printf(&b, ",\n    PRIMARY KEY (%s)", pkcols);
    free(pkcols);
    zdm_buf_puts(&b, "\n)");
    char *sql = zdm_buf_take(&b);
    char name[160];
    snprintf(name, sizeof name, "create table %s", table);
    add(ex, o->s, name, zdm_xstrdup(sql), zdm_xasprintf("DROP TABLE %s", tq), sql,
        zdm_xasprintf("DROP TABLE %s", tq));
}

static void op_rename_table(opctx *o, gen *ex, gen *ct, const char *table, const char *tq)
{
    const char *to = fstr(o, "to");
    if (!to)
        return;
    if (!plain_ident(to)) {
        bad(o, "\"to\" = \"%s\" must be a plain name (the table stays in its schema)%s", to, NULL);
        return;
    }
    char *toq = zdm_ops_quote(to, 0);
    /* the new name, qualified like the old one */
    const char *dot = strrchr(table, '.');
    char *newq = dot ? zdm_xasprintf("%.*s.%s", (int)(dot - table), table, to) : zdm_xstrdup(to);
    char *nq = zdm_ops_quote(newq, 1);
    char *up = zdm_xasprintf("ALTER TABLE %s RENAME TO %s;\nCREATE VIEW %s AS SELECT * FROM %s", tq, toq, tq, nq);
    char *down = zdm_xasprintf("DROP VIEW IF EXISTS %s;\nALTER TABLE %s RENAME TO %s", tq, nq,
                               dot ? strrchr(tq, '.') + 1 : tq);
    char name[200];
    snprintf(name, sizeof name, "rename table %s to %s (the old name stays as a view until contract)", table, to);
    zdm_step *s = add(ex, o->s, name, up, down, zdm_xstrdup(up), zdm_xstrdup(down));
    (void)s;
    snprintf(name, sizeof name, "drop the view %s kept for the old application", table);
    add(ct, o->s, name, zdm_xasprintf("DROP VIEW IF EXISTS %s", tq),
        zdm_xasprintf("CREATE VIEW %s AS SELECT * FROM %s", tq, nq),
        zdm_xasprintf("DROP VIEW IF EXISTS %s", tq), zdm_xasprintf("CREATE VIEW %s AS SELECT * FROM %s", tq, nq));
    free(toq);
    free(newq);
    free(nq);
}

/* CHECK NOT VALID, then VALIDATE; SQLite: triggers plus a check of the
 * rows already there.  `rule` is the SQL the rows must satisfy. */
static void constraint_steps(opctx *o, gen *g, const char *tq, const char *cname, const char *rule,
                             const char *what)
{
    char *cq = zdm_ops_quote(cname, 0);
    char name[200];
    snprintf(name, sizeof name, "%s (not yet validated)", what);
    char *tr_create, *tr_drop;
    sqlite_rule_triggers(tq, cname, rule, &tr_create, &tr_drop);
    char *neg = zdm_xasprintf("NOT (%s)", rule);
    char *msg = zdm_xasprintf("%s: existing rows violate it", cname);
    add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID", tq, cq, rule),
        zdm_xasprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tq, cq), tr_create, tr_drop);
    snprintf(name, sizeof name, "validate %s", what);
    zdm_step *v = add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", tq, cq),
                      zdm_xstrdup("SELECT 1 /* nothing to undo: the previous step's down drops the constraint */"),
                      sqlite_assert_none(tq, cname, neg, msg), zdm_xstrdup("SELECT 1"));
    /* SQLite: the check of the existing rows reads the whole table and
     * writes only a temporary table.  In a transaction (BEGIN IMMEDIATE)
     * it held the write lock through that scan, and every write of the
     * application waited (300,000 rows: ~30 ms; from disk, or gigabytes:
     * seconds and more).  Outside one it is a read: the triggers of the
     * step before already refuse the bad writes that come meanwhile. */
    v->autocommit_for[SQ] = 1;
    free(neg);
    free(msg);
    free(cq);
}

static void op_set_not_null(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    const char *col = fstr(o, "column");
    if (!col)
        return;
    const char *given = fstr(o, "constraint");
    zdm_strv cols = {0};
    zdm_strv_push(&cols, col);
    char *cname = given ? zdm_xstrdup(given) : auto_name(table, &cols, "not_null");
    zdm_strv_free(&cols);
    char *colq = zdm_ops_quote(col, 0), *cq = zdm_ops_quote(cname, 0);
    char *rule = zdm_xasprintf("%s IS NOT NULL", colq);
    char what[200];
    snprintf(what, sizeof what, "%s.%s NOT NULL as a CHECK", table, col);
    gen *first = g;
    constraint_steps(o, first, tq, cname, rule, what);
    /* The real NOT NULL uses the validated CHECK (no scan), then the CHECK
     * goes; on SQLite the triggers stay (SQLite's NOT NULL needs a rebuild). */
    gen *last = in_contract ? g : ct;
    snprintf(what, sizeof what, "%s.%s SET NOT NULL (uses the validated check)", table, col);
    zdm_step *s = add(last, o->s, what, zdm_xasprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", tq, colq),
                      zdm_xasprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", tq, colq),
                      zdm_xstrdup("SELECT 1 /* SQLite keeps the triggers: NOT NULL itself needs a table rebuild */"),
                      zdm_xstrdup("SELECT 1"));
    (void)s;
    snprintf(what, sizeof what, "drop the helper check %s", cname);
    add(last, o->s, what, zdm_xasprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tq, cq),
        zdm_xasprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID", tq, cq, rule),
        zdm_xstrdup("SELECT 1"), zdm_xstrdup("SELECT 1"));
    free(colq);
    free(cq);
    free(rule);
    free(cname);
}

static void op_add_check(opctx *o, gen *g, const char *table, const char *tq)
{
    const char *check = fstr(o, "check");
    if (!check)
        return;
    const char *given = fstr(o, "constraint");
    char *cname = given ? zdm_xstrdup(given) : auto_name(table, NULL, "check");
    if (!given) { /* distinct per check expression */
        char h[65];
        zdm_sha256_hex(check, strlen(check), h);
        free(cname);
        char *base = auto_name(table, NULL, "check");
        cname = zdm_xasprintf("%.50s_%.6s", base, h);
        free(base);
    }
    char what[200];
    snprintf(what, sizeof what, "check %s on %s", cname, table);
    constraint_steps(o, g, tq, cname, check, what);
    free(cname);
}

static void op_add_foreign_key(opctx *o, gen *g, const char *table, const char *tq)
{
    zdm_strv raw = {0};
    char *cols = fcols(o, "columns", &raw);
    char *refcols = fcols(o, "references_columns", NULL);
    const char *ref = fstr(o, "references");
    const char *given = fstr(o, "constraint");
    const char *on_delete = fstr(o, "on_delete"), *on_update = fstr(o, "on_update");
    static const char *const actions[] = {"NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"};
    const char *checks[2] = {on_delete, on_update};
    for (int k = 0; k < 2; k++) {
        int ok = !checks[k];
        for (size_t i = 0; !ok && i < 5; i++)
            ok = strcasecmp(checks[k], actions[i]) == 0;
        if (!ok)
            bad(o, "\"%s\" is not a foreign key action (NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT)%s",
                checks[k], NULL);
    }
    if (cols && refcols && ref && o->errors == 0) {
        char *cname = given ? zdm_xstrdup(given) : auto_name(table, &raw, "fkey");
        char *cq = zdm_ops_quote(cname, 0), *rq = zdm_ops_quote(ref, 1);
        char name[200];
        snprintf(name, sizeof name, "foreign key %s (not yet validated)", cname);
        zdm_step *s = add(g, o->s, name,
                          zdm_xasprintf("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)%s%s%s%s NOT VALID",
                                        tq, cq, cols, rq, refcols, on_delete ? " ON DELETE " : "",
                                        on_delete ? on_delete : "", on_update ? " ON UPDATE " : "",
                                        on_update ? on_update : ""),
                          zdm_xasprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tq, cq), NULL, NULL);
        no_sqlite(s, "SQLite adds a foreign key to an existing table only by rebuilding it");
        snprintf(name, sizeof name, "validate foreign key %s", cname);
        s = add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", tq, cq),
                zdm_xstrdup("SELECT 1 /* the previous step's down drops the constraint */"), NULL, NULL);
        no_sqlite(s, "SQLite adds a foreign key to an existing table only by rebuilding it");
        free(cname);
        free(cq);
        free(rq);
    }
    free(cols);
    free(refcols);
    zdm_strv_free(&raw);
}

static void op_index(opctx *o, gen *g, const char *table, const char *tq, int unique_constraint)
{
    zdm_strv raw = {0};
    char *cols = fcols(o, "columns", &raw);
    if (!cols) {
        zdm_strv_free(&raw);
        return;
    }
    const char *given = fstr(o, "index");
    const char *where = unique_constraint ? NULL : fstr(o, "where");
    const char *method = unique_constraint ? NULL : fstr(o, "method");
    int unique = unique_constraint || fbool(o, "unique", 0);
    if (method && !plain_ident(method))
        bad(o, "\"method\" = \"%s\" is not an index method name%s", method, NULL);
    char *iname = given ? zdm_xstrdup(given) : auto_name(table, &raw, unique ? "key" : "idx");
    /* index names are unqualified; they live in the table's schema */
    const char *dot = strrchr(table, '.');
    char *qualified = dot ? zdm_xasprintf("%.*s.%s", (int)(dot - table), table, iname) : zdm_xstrdup(iname);
    char *iq = zdm_ops_quote(iname, 0), *iqq = zdm_ops_quote(qualified, 1);
    char name[200];
    snprintf(name, sizeof name, "%sindex %s on %s (built concurrently on PostgreSQL)", unique ? "unique " : "", iname, table);
    add(g, o->s, name,
        zdm_xasprintf("CREATE %sINDEX CONCURRENTLY IF NOT EXISTS %s ON %s%s%s (%s)%s%s", unique ? "UNIQUE " : "", iq, tq,
                      method ? " USING " : "", method ? method : "", cols, where ? " WHERE " : "", where ? where : ""),
        zdm_xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", iqq),
        zdm_xasprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s (%s)%s%s", unique ? "UNIQUE " : "", iqq, tq, cols,
                      where ? " WHERE " : "", where ? where : ""),
        zdm_xasprintf("DROP INDEX IF EXISTS %s", iqq));
    if (unique_constraint) {
        const char *cgiven = fstr(o, "constraint");
        char *cq = zdm_ops_quote(cgiven ? cgiven : iname, 0);
        snprintf(name, sizeof name, "unique constraint using index %s", iname);
        add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s", tq, cq, iq),
            zdm_xasprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tq, cq),
            zdm_xstrdup("SELECT 1 /* on SQLite the unique index is the constraint */"), zdm_xstrdup("SELECT 1"));
        free(cq);
    }
    free(iname);
    free(qualified);
    free(iq);
    free(iqq);
    free(cols);
    zdm_strv_free(&raw);
}

/* Contract: NOT NULL the safe way, once every row is filled: a CHECK
 * NOT VALID, validated, SET NOT NULL (which uses it), the CHECK dropped. */
static void contract_not_null(opctx *o, gen *ct, const char *table, const char *tq, const char *col,
                              const char *cq)
{
    zdm_strv cols = {0};
    zdm_strv_push(&cols, col);
    char *cname = auto_name(table, &cols, "not_null");
    zdm_strv_free(&cols);
    char *rule = zdm_xasprintf("%s IS NOT NULL", cq);
    char what[200];
    snprintf(what, sizeof what, "%s.%s NOT NULL as a CHECK", table, col);
    constraint_steps(o, ct, tq, cname, rule, what);
    char *ccq = zdm_ops_quote(cname, 0);
    snprintf(what, sizeof what, "%s.%s SET NOT NULL (uses the validated check)", table, col);
    add(ct, o->s, what, zdm_xasprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", tq, cq),
        zdm_xasprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", tq, cq),
        zdm_xstrdup("SELECT 1 /* SQLite keeps the triggers: NOT NULL itself needs a table rebuild */"),
        zdm_xstrdup("SELECT 1"));
    snprintf(what, sizeof what, "drop the helper check %s", cname);
    add(ct, o->s, what, zdm_xasprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tq, ccq),
        zdm_xasprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID", tq, ccq, rule),
        zdm_xstrdup("SELECT 1"), zdm_xstrdup("SELECT 1"));
    free(ccq);
    free(rule);
    free(cname);
}

/* Would PostgreSQL compute this default per row (and so rewrite the
 * table)?  Asked of the linter, whose add-column-volatile-default rule
 * knows the volatile functions. */
static int volatile_default(const char *tq, const char *cq, const char *type, const char *dflt)
{
    char *sql = zdm_xasprintf("ALTER TABLE %s ADD COLUMN %s %s DEFAULT %s", tq, cq, type, dflt);
    zdm_lint_ctx *ctx = zdm_lint_ctx_new();
    zdm_lint_result r;
    memset(&r, 0, sizeof r);
    (void)zdm_lint_sql(ctx, sql, ZDM_PHASE_EXPAND, 1, &r);
    int v = 0;
    for (size_t i = 0; i < r.n; i++)
        v |= strcmp(r.v[i].rule, "add-column-volatile-default") == 0;
    zdm_lint_result_free(&r);
    zdm_lint_ctx_free(ctx);
    free(sql);
    return v;
}

static void op_add_column(opctx *o, gen *g, gen *ct, const char *table, const char *tq)
{
    const char *col = fstr(o, "column"), *type = fstr(o, "type"), *up = fstr(o, "up");
    int nullable = fbool(o, "nullable", 1);
    const toml_value *dv = toml_get(o->s->fields, "default");
    char *dflt = NULL;
    if (dv && dv->type == TOML_STRING)
        dflt = zdm_xstrdup(dv->u.str.ptr);
    else if (dv && dv->type == TOML_INTEGER)
        dflt = zdm_xasprintf("%lld", (long long)dv->u.integer);
    else if (dv && dv->type == TOML_BOOL)
        dflt = zdm_xstrdup(dv->u.boolean ? "true" : "false");
    else if (dv)
        bad(o, "\"default\" must be a SQL expression in a string, a number or a boolean%s%s", NULL, NULL);
    if (!col || !type) {
        free(dflt);
        return;
    }
    if (!nullable && !dflt && !up) {
        bad(o, "a NOT NULL column without a default needs up = \"SQL expression\" to fill the existing rows%s%s",
            NULL, NULL);
        free(dflt);
        return;
    }
    /* A default fills the old application's inserts, which the dual-write
     * trigger then leaves alone (it converts a NULL): a constant one was
     * refused at expand, by the preflight, after validate and lint had
     * passed. */
    if (dflt && up) {
        bad(o, "give either default or up, not both: while the backfill runs, the old application's inserts "
               "would get the default instead of up's value; use up alone (every row gets up's value until "
               "contract), and set the default in a contract step of your own (raw sql)%s%s", NULL, NULL);
        free(dflt);
        return;
    }
    char *cq = zdm_ops_quote(col, 0);
    if (dflt && volatile_default(tq, cq, type, dflt)) {
        /* A default computed per row (random(), clock_timestamp(), ...)
         * makes ADD COLUMN rewrite the whole table under an exclusive
         * lock.  Instead: a nullable column, the default for new rows
         * (no rewrite), a backfill of the existing rows, and NOT NULL at
         * contract through a validated CHECK. */
        char name[200];
        snprintf(name, sizeof name, "add column %s.%s (nullable; its volatile default is filled in by the backfill)",
                 table, col);
        zdm_step *st = add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s ADD COLUMN %s %s", tq, cq, type),
                           zdm_xasprintf("ALTER TABLE %s DROP COLUMN %s", tq, cq), NULL, NULL);
        /* SQLite has no ALTER COLUMN ... SET DEFAULT: new rows would get
         * no value once contract removes the triggers */
        no_sqlite(st, "SQLite gives an existing table a column with a non-constant default only by rebuilding it");
        snprintf(name, sizeof name, "default of %s.%s for new rows", table, col);
        st = add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", tq, cq, dflt),
                 zdm_xstrdup("SELECT 1 /* the previous step's down drops the column */"), NULL, NULL);
        no_sqlite(st, "SQLite gives an existing table a column with a non-constant default only by rebuilding it");
        /* where col IS NULL: a row keeps the value it got (an in-place
         * fill: every write leaving the column NULL gets one) */
        char *where = zdm_xasprintf("%s IS NULL", cq);
        if (!up)
            set_backfill(o, table, col, dflt, where, NULL, NULL, NULL);
        free(where);
        if (!nullable)
            contract_not_null(o, ct, table, tq, col, cq);
        free(cq);
        free(dflt);
        return;
    }
    /* NOT NULL with a default is one instant statement (PostgreSQL 11+, SQLite);
     * NOT NULL filled by `up` is added nullable, backfilled, then
     * constrained the safe way in contract. */
    int direct_not_null = !nullable && dflt;
    char name[200];
    snprintf(name, sizeof name, "add column %s.%s", table, col);
    char *sql = zdm_xasprintf("ALTER TABLE %s ADD COLUMN %s %s%s%s%s", tq, cq, type, dflt ? " DEFAULT " : "",
                              dflt ? dflt : "", direct_not_null ? " NOT NULL" : "");
    char *down = zdm_xasprintf("ALTER TABLE %s DROP COLUMN %s", tq, cq);
    add(g, o->s, name, zdm_xstrdup(sql), zdm_xstrdup(down), sql, down);
    if (up) {
        /* No where: under the row rule a `where = "col IS NULL"` would stop
         * the triggers from following a converted row when the old
         * application later changes what `up` reads. */
        set_backfill(o, table, col, up, NULL, NULL, NULL, NULL);
    }
    if (!nullable && !dflt)
        contract_not_null(o, ct, table, tq, col, cq);
    free(cq);
    free(dflt);
}

/* ---- rename_column and change_type: the old column goes at contract ----
 *
 * Both add a new column in expand and drop the old one at contract.
 * PostgreSQL drops with a column everything that depends on it, so:
 *
 * left alone, the contract of these operations would lose, without a
 * word, the old column's NOT NULL, its CHECK / UNIQUE / foreign key
 * constraints (also the foreign keys of other tables pointing at it), its
 * unique indexes and its default -- the plan would complete and they would
 * be gone.  Therefore:
 *  - expand's first step refuses, before it changes anything, when a
 *    constraint, a unique index, a view or rule, an owned sequence or a
 *    trigger depends on the old column, and names them: drop them in an
 *    earlier plan and create them for the new column in a later one.
 *    A plain index is let through: it serves the old application until
 *    contract, and the plan adds the new column's own (add_index);
 *  - rename_column gives the new column the old one's default at
 *    contract (not before: the dual-write trigger copies into the new
 *    column when an insert leaves it NULL); change_type cannot (the
 *    default is of the old type), so a default is refused there;
 *  - a NOT NULL is carried over at contract the safe way: a CHECK added
 *    NOT VALID, validated in its own step, then SET NOT NULL (no scan).
 *    Those steps read the catalog when they run: a nullable column costs
 *    nothing.  (SQLite: NOT NULL needs a table rebuild; it is not carried
 *    over there.) */

/* "DO $tag$ body $tag$" with a tag that is not in the body; takes body. */
static char *do_block(char *body)
{
    char *block = zdm_sql_dollar_quote(body);
    char *s = zdm_xasprintf("DO %s", block);
    free(block);
    free(body);
    return s;
}

static char *pg_guard_dependents(const char *tq, const char *table, const char *col, const char *op,
                                 int default_ok)
{
    /* The names reach RAISE as a parameter, not in its format string, so
     * a '%' in a name is text. */
    char *what = zdm_xasprintf("%s: contract drops the old column %s.%s", op, table, col);
    char *l_tq = zdm_sql_literal(tq), *l_col = zdm_sql_literal(col), *l_what = zdm_sql_literal(what);
    char *body = zdm_xasprintf(
        " DECLARE lost text; BEGIN\n"
        "  SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), ', ')\n"
        "    INTO lost FROM pg_depend d\n"
        "    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid\n"
        "   WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = %s::regclass\n"
        "     AND a.attname = %s AND d.deptype IN ('n', 'a')%s\n"
        "     AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE d.classid = 'pg_class'::regclass\n"
        "                        AND i.indexrelid = d.objid AND NOT i.indisunique);\n"
        "  IF lost IS NOT NULL THEN\n"
        "    RAISE EXCEPTION '%%, and with it: %%', %s, lost\n"
        "      USING HINT = 'drop these in an earlier plan and create them for the new column in a later one';\n"
        "  END IF;\n"
        "END ",
        l_tq, l_col, default_ok ? "\n     AND d.classid <> 'pg_attrdef'::regclass" : "", l_what);
    char *s = do_block(body);
    free(l_tq);
    free(l_col);
    free(l_what);
    free(what);
    return s;
}

/* Adds the contract steps that give `newcol` the NOT NULL of `col` (when
 * it has one) up to the validated CHECK, and returns the SQL that turns
 * it into NOT NULL, for the step that drops `col`. */
static char *pg_carry_not_null(opctx *o, gen *ct, const char *table, const char *tq, const char *col,
                               const char *newcol, const char *why_sqlite)
{
    zdm_strv cols = {0};
    zdm_strv_push(&cols, newcol);
    char *cname = auto_name(table, &cols, "not_null");
    zdm_strv_free(&cols);
    char *ccq = zdm_ops_quote(cname, 0), *nq = zdm_ops_quote(newcol, 0);
    char *l_tq = zdm_sql_literal(tq), *l_cname = zdm_sql_literal(cname), *l_col = zdm_sql_literal(col);
    char *has_check = zdm_xasprintf("EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass "
                                    "AND conname = %s)", l_tq, l_cname);
    char name[200];
    snprintf(name, sizeof name, "%s.%s NOT NULL (when %s is) as a CHECK (not yet validated)", table, newcol, col);
    zdm_step *s = add(ct, o->s, name,
                      do_block(zdm_xasprintf(" BEGIN\n"
                                    "  IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s)\n"
                                    "     AND NOT %s THEN\n"
                                    "    ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;\n"
                                    "  END IF;\n"
                                    "END ",
                                    l_tq, l_col, has_check, tq, ccq, nq)),
                      zdm_xasprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tq, ccq),
                      why_sqlite ? NULL : zdm_xstrdup("SELECT 1 /* SQLite: NOT NULL needs a table rebuild */"),
                      why_sqlite ? NULL : zdm_xstrdup("SELECT 1"));
    if (why_sqlite)
        no_sqlite(s, why_sqlite);
    snprintf(name, sizeof name, "validate %s.%s NOT NULL as a CHECK (when added)", table, newcol);
    s = add(ct, o->s, name,
            do_block(zdm_xasprintf(" BEGIN\n"
                          "  IF %s THEN\n"
                          "    ALTER TABLE %s VALIDATE CONSTRAINT %s;\n"
                          "  END IF;\n"
                          "END ",
                          has_check, tq, ccq)),
            zdm_xstrdup("SELECT 1 /* the previous step's down drops the constraint */"),
            why_sqlite ? NULL : zdm_xstrdup("SELECT 1"), why_sqlite ? NULL : zdm_xstrdup("SELECT 1"));
    if (why_sqlite)
        no_sqlite(s, why_sqlite);
    char *set_block = do_block(zdm_xasprintf(" BEGIN\n"
                              "  IF %s THEN\n"
                              "    ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;\n"
                              "    ALTER TABLE %s DROP CONSTRAINT %s;\n"
                              "  END IF;\n"
                              "END ",
                              has_check, tq, nq, tq, ccq));
    char *set = zdm_xasprintf("%s;\n", set_block);
    free(set_block);
    free(has_check);
    free(l_tq);
    free(l_cname);
    free(l_col);
    free(ccq);
    free(nq);
    free(cname);
    return set;
}

/* PostgreSQL: what hangs on the old column and is not part of its type
 * goes to the new one at expand, read from the catalog when the step runs:
 * its comment, its statistics target and its column privileges (GRANT
 * ... (col)).  The column is dropped at contract, and with it all three. */
static char *pg_carry_attributes(const char *l_tq, const char *l_old, const char *l_new)
{
    return do_block(zdm_xasprintf(
        " DECLARE cmt text; st int; r record; BEGIN\n"
        "  SELECT col_description(a.attrelid, a.attnum), a.attstattarget INTO cmt, st FROM pg_attribute a\n"
        "   WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped;\n"
        "  IF cmt IS NOT NULL THEN\n"
        "    EXECUTE format('COMMENT ON COLUMN %%s.%%I IS %%L', %s::regclass, %s, cmt);\n"
        "  END IF;\n"
        "  IF st IS NOT NULL AND st >= 0 THEN\n"
        "    EXECUTE format('ALTER TABLE %%s ALTER COLUMN %%I SET STATISTICS %%s', %s::regclass, %s, st);\n"
        "  END IF;\n"
        "  FOR r IN SELECT (aclexplode(a.attacl)).* FROM pg_attribute a\n"
        "            WHERE a.attrelid = %s::regclass AND a.attname = %s AND a.attacl IS NOT NULL LOOP\n"
        "    EXECUTE format('GRANT %%s (%%I) ON %%s TO %%s', r.privilege_type, %s, %s::regclass,\n"
        "      CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);\n"
        "  END LOOP;\n"
        "END ",
        l_tq, l_old, l_tq, l_new, l_tq, l_new, l_tq, l_old, l_new, l_tq));
}

static void op_rename_column(opctx *o, gen *g, gen *ct, const char *table, const char *tq)
{
    const char *col = fstr(o, "column"), *to = fstr(o, "to"), *type = fstr(o, "type");
    if (!col || !to)
        return;
    if (!plain_ident(to) || !plain_ident(col)) {
        bad(o, "\"column\" and \"to\" must be plain column names%s%s", NULL, NULL);
        return;
    }
    char *cq = zdm_ops_quote(col, 0), *toq = zdm_ops_quote(to, 0);
    char name[200];
    snprintf(name, sizeof name, "add column %s.%s, the new name of %s", table, to, col);
    /* PostgreSQL: the guard, then the new column with the old one's exact
     * type (from the catalog, unless the plan names one).  The default
     * follows at contract: until then a default on the new column would
     * hide the old application's inserts from the dual-write trigger,
     * which copies into the new column when it is NULL. */
    char *guard = pg_guard_dependents(tq, table, col, "rename_column", 1);
    char *l_tq = zdm_sql_literal(tq), *l_col = zdm_sql_literal(col), *l_to = zdm_sql_literal(to);
    /* the old column's type, and its collation when not the type's own */
    char *typesql = type ? zdm_sql_literal(type) /* a plain type name: no quote in it (checked below) */
                         : zdm_xasprintf("(SELECT format_type(a.atttypid, a.atttypmod) ||\n"
                                         "        CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation\n"
                                         "             THEN format(' COLLATE %%I.%%I', cn.nspname, c.collname) ELSE '' END\n"
                                         "   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid\n"
                                         "   LEFT JOIN pg_collation c ON c.oid = a.attcollation\n"
                                         "   LEFT JOIN pg_namespace cn ON cn.oid = c.collnamespace\n"
                                         "  WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped)",
                                         l_tq, l_col);
    char *add_block = do_block(zdm_xasprintf(" BEGIN\n"
                             "  EXECUTE format('ALTER TABLE %%s ADD COLUMN %%I %%s', %s::regclass, %s,\n"
                             "    %s);\n"
                             "END ",
                             l_tq, l_to, typesql));
    char *carry = pg_carry_attributes(l_tq, l_col, l_to);
    char *pg = zdm_xasprintf("%s;\n%s;\n%s", guard, add_block, carry);
    free(carry);
    free(add_block);
    free(guard);
    free(typesql);
    if (type && strchr(type, '\''))
        bad(o, "\"type\" = \"%s\" is not a type name%s", type, NULL);
    char *sq = zdm_xasprintf("ALTER TABLE %s ADD COLUMN %s%s%s", tq, toq, type ? " " : "", type ? type : "");
    char *down = zdm_xasprintf("ALTER TABLE %s DROP COLUMN %s", tq, toq);
    add(g, o->s, name, pg, zdm_xstrdup(down), sq, down);
    /* Both names stay right whoever writes: old app -> new, new app -> old. */
    set_backfill(o, table, to, cq, NULL, col, col, toq);
    o->p->version_schema = 1;
    snprintf(name, sizeof name, "view schema for the new application (%s without %s)", table, col);
    add(g, o->s, name, pg_version_view(o->p, table, col, NULL, NULL), pg_drop_version_schema(o->p),
        zdm_xstrdup("SELECT 1 /* SQLite: the new application uses the new column directly */"), zdm_xstrdup("SELECT 1"));
    char *set_nn = pg_carry_not_null(o, ct, table, tq, col, to, NULL);
    snprintf(name, sizeof name, "drop the old column %s.%s (its default and NOT NULL go to %s)", table, col, to);
    char *dflt_block = do_block(zdm_xasprintf(" DECLARE dflt text; BEGIN\n"
                      "  SELECT pg_get_expr(d.adbin, d.adrelid) INTO dflt FROM pg_attrdef d\n"
                      "    JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum\n"
                      "   WHERE d.adrelid = %s::regclass AND a.attname = %s;\n"
                      "  IF dflt IS NOT NULL THEN\n"
                      "    EXECUTE format('ALTER TABLE %%s ALTER COLUMN %%I SET DEFAULT %%s', %s::regclass, %s, dflt);\n"
                      "  END IF;\n"
                      "END ",
                      l_tq, l_col, l_tq, l_to));
    add(ct, o->s, name,
        zdm_xasprintf("%s;\n%sALTER TABLE %s DROP COLUMN %s", dflt_block, set_nn, tq, cq),
        NULL, zdm_xasprintf("ALTER TABLE %s DROP COLUMN %s", tq, cq), NULL);
    free(dflt_block);
    free(set_nn);
    free(l_tq);
    free(l_col);
    free(l_to);
    contract_version_schema(o, ct, table, 1);
    free(cq);
    free(toq);
}

static void op_change_type(opctx *o, gen *g, gen *ct, const char *table, const char *tq)
{
    const char *col = fstr(o, "column"), *type = fstr(o, "type"), *up = fstr(o, "up"), *down = fstr(o, "down");
    if (!col || !type || !up || !down)
        return;
    if (!plain_ident(col)) {
        bad(o, "\"column\" must be a plain column name%s%s", NULL, NULL);
        return;
    }
    char tmp[80];
    snprintf(tmp, sizeof tmp, "_zdm_%.50s", col);
    char *cq = zdm_ops_quote(col, 0), *tmpq = zdm_ops_quote(tmp, 0);
    const char *why = "SQLite changes a column's declared type only by rebuilding the table (and stores any "
                      "value in any column: no change is needed for the data)";
    char name[200];
    snprintf(name, sizeof name, "add column %s.%s of type %s (becomes %s at contract)", table, tmp, type, col);
    char *guard = pg_guard_dependents(tq, table, col, "change_type", 0);
    char *l_tq = zdm_sql_literal(tq), *l_col = zdm_sql_literal(col), *l_tmp = zdm_sql_literal(tmp);
    char *carry = pg_carry_attributes(l_tq, l_col, l_tmp);
    zdm_step *s = add(g, o->s, name,
                      zdm_xasprintf("%s;\nALTER TABLE %s ADD COLUMN %s %s;\n%s", guard, tq, tmpq, type, carry),
                      zdm_xasprintf("ALTER TABLE %s DROP COLUMN %s", tq, tmpq), NULL, NULL);
    free(carry);
    free(l_tq);
    free(l_col);
    free(l_tmp);
    free(guard);
    no_sqlite(s, why);
    /* `down` is written with the column's name for the new value. */
    char *rev = rename_ident(down, col, tmp);
    set_backfill(o, table, tmp, up, NULL, col, col, rev);
    free(rev);
    o->p->version_schema = 1;
    snprintf(name, sizeof name, "view schema for the new application (%s.%s as %s)", table, col, type);
    s = add(g, o->s, name, pg_version_view(o->p, table, col, tmp, col), pg_drop_version_schema(o->p), NULL, NULL);
    no_sqlite(s, why);
    char *set_nn = pg_carry_not_null(o, ct, table, tq, col, tmp, why);
    snprintf(name, sizeof name, "swap: drop the old %s.%s, rename %s to %s", table, col, tmp, col);
    s = add(ct, o->s, name,
            zdm_xasprintf("%sALTER TABLE %s DROP COLUMN %s;\nALTER TABLE %s RENAME COLUMN %s TO %s", set_nn, tq, cq,
                          tq, tmpq, cq),
            NULL, NULL, NULL);
    free(set_nn);
    no_sqlite(s, why);
    s = contract_version_schema(o, ct, table, 0);
    no_sqlite(s, why);
    free(cq);
    free(tmpq);
}

/* ---- the operations: one table ---- */

/* Expands one op step of `table` (quoted: tq; NULL when the op has none)
 * into g, and what it implies for contract into ct. */
typedef void op_expand_fn(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract);

static void x_create_table(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    op_create_table(o, g, table, tq);
}

static void x_drop_table(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    char name[200];
    snprintf(name, sizeof name, "drop table %s", table);
    add(g, o->s, name, zdm_xasprintf("DROP TABLE %s", tq), NULL, zdm_xasprintf("DROP TABLE %s", tq), NULL);
}

static void x_rename_table(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)in_contract;
    op_rename_table(o, g, ct, table, tq);
}

static void x_add_column(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)in_contract;
    op_add_column(o, g, ct, table, tq);
}

static void x_drop_column(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    char name[200];
    const char *col = fstr(o, "column");
    if (col) {
        char *cq = zdm_ops_quote(col, 0);
        snprintf(name, sizeof name, "drop column %s.%s", table, col);
        add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s DROP COLUMN %s", tq, cq), NULL,
            zdm_xasprintf("ALTER TABLE %s DROP COLUMN %s", tq, cq), NULL);
        free(cq);
    }
}

static void x_rename_column(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)in_contract;
    op_rename_column(o, g, ct, table, tq);
}

static void x_change_type(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)in_contract;
    op_change_type(o, g, ct, table, tq);
}

static void x_add_check(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    op_add_check(o, g, table, tq);
}

static void x_add_foreign_key(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    op_add_foreign_key(o, g, table, tq);
}

static void x_add_unique(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    op_index(o, g, table, tq, 1);
}

static void x_add_index(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    op_index(o, g, table, tq, 0);
}

static void x_drop_index(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)tq, (void)in_contract;
    char name[200];
    const char *idx = fstr(o, "index");
    if (idx) {
        const char *dot = table ? strrchr(table, '.') : NULL;
        char *qual = dot ? zdm_xasprintf("%.*s.%s", (int)(dot - table), table, idx) : zdm_xstrdup(idx);
        char *iq = zdm_ops_quote(qual, 1);
        snprintf(name, sizeof name, "drop index %s (concurrently on PostgreSQL)", idx);
        add(g, o->s, name, zdm_xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", iq), NULL,
            zdm_xasprintf("DROP INDEX IF EXISTS %s", iq), NULL);
        free(iq);
        free(qual);
    }
}

static void x_drop_constraint(opctx *o, gen *g, gen *ct, const char *table, const char *tq, int in_contract)
{
    (void)ct, (void)in_contract;
    char name[200];
    const char *c = fstr(o, "constraint");
    if (c) {
        char *qc = zdm_ops_quote(c, 0);
        snprintf(name, sizeof name, "drop constraint %s on %s", c, table);
        zdm_step *s = add(g, o->s, name, zdm_xasprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tq, qc), NULL,
                          NULL, NULL);
        no_sqlite(s, "SQLite drops a table constraint only by rebuilding the table");
        free(qc);
    }
}

#define FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})
static const char *const no_fields[] = {NULL};

/* Every operation: its name and fields, where it may stand (expand,
 * contract), and its expansion.  "sql" is a raw step written as an op:
 * plan.c turns it into one, so it has no expansion.  The README's table
 * of operations lists the same names (test_readme_ops.sh). */
static const struct op_def {
    zdm_op_spec spec;
    op_expand_fn *expand;
} op_defs[] = {
    {{"sql", FIELDS("sql"), FIELDS("down"), 1, 1}, NULL},
    {{"create_table", FIELDS("table", "columns"), FIELDS("primary_key"), 1, 0}, x_create_table},
    {{"drop_table", FIELDS("table"), no_fields, 0, 1}, x_drop_table},
    {{"rename_table", FIELDS("table", "to"), no_fields, 1, 0}, x_rename_table},
    {{"add_column", FIELDS("table", "column", "type"), FIELDS("default", "nullable", "up"), 1, 0}, x_add_column},
    {{"drop_constraint", FIELDS("table", "constraint"), no_fields, 0, 1}, x_drop_constraint},
    {{"drop_column", FIELDS("table", "column"), no_fields, 0, 1}, x_drop_column},
    {{"rename_column", FIELDS("table", "column", "to"), FIELDS("type"), 1, 0}, x_rename_column},
    {{"change_type", FIELDS("table", "column", "type", "up", "down"), no_fields, 1, 0}, x_change_type},
    {{"set_not_null", FIELDS("table", "column"), FIELDS("constraint"), 1, 1}, op_set_not_null},
    {{"add_check", FIELDS("table", "check"), FIELDS("constraint"), 1, 1}, x_add_check},
    {{"add_foreign_key", FIELDS("table", "columns", "references", "references_columns"),
      FIELDS("constraint", "on_delete", "on_update"), 1, 1},
     x_add_foreign_key},
    {{"add_unique", FIELDS("table", "columns"), FIELDS("constraint", "index"), 1, 1}, x_add_unique},
    {{"add_index", FIELDS("table", "columns"), FIELDS("index", "unique", "where", "method"), 1, 1}, x_add_index},
    {{"drop_index", FIELDS("index"), FIELDS("table"), 0, 1}, x_drop_index},
};

static const struct op_def *op_def_find(const char *name)
{
    for (size_t i = 0; i < sizeof op_defs / sizeof op_defs[0]; i++)
        if (strcmp(op_defs[i].spec.name, name) == 0)
            return &op_defs[i];
    return NULL;
}

const zdm_op_spec *zdm_op_find(const char *name)
{
    const struct op_def *d = op_def_find(name);
    return d ? &d->spec : NULL;
}

const zdm_op_spec *zdm_op_at(size_t i)
{
    return i < sizeof op_defs / sizeof op_defs[0] ? &op_defs[i].spec : NULL;
}

char *zdm_op_names(void)
{
    zdm_buf b = {0};
    for (size_t i = 0; i < sizeof op_defs / sizeof op_defs[0]; i++)
        zdm_buf_printf(&b, "%s%s", i ? ", " : "", op_defs[i].spec.name);
    return zdm_buf_take(&b);
}

/* Expands one op step into g (and contract additions into ct). */
static void expand_op(opctx *o, gen *g, gen *ct, int in_contract)
{
    const char *op = o->s->op;
    /* drop_index: table is optional, it only qualifies the index */
    const char *table = fstr(o, "table");
    char *tq = table ? zdm_ops_quote(table, 1) : NULL;
    const struct op_def *d = op_def_find(op);
    if (d && d->expand)
        d->expand(o, g, ct, table, tq, in_contract);
    else
        bad(o, "operation \"%s\" has no implementation%s", op, NULL);
    free(tq);
}

static void move_steps(gen *g, zdm_step *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 8;
            g->v = zdm_xrealloc(g->v, g->cap * sizeof *g->v);
        }
        g->v[g->n++] = src[i];
    }
}

static void free_op_step(zdm_step *s)
{
    free(s->name);
    free(s->sql);
    free(s->down);
    free(s->op);
    for (int k = 0; k < 2; k++) {
        free(s->sql_for[k]);
        free(s->down_for[k]);
        free(s->unsupported_for[k]);
    }
    free(s->from_op);
}

/* rename_table leaves a view under the old name from the moment its
 * expand step runs.  Any other operation of the plan that names the old
 * table after that works on the view: later expand steps, contract
 * operations, the implied contract steps of an earlier op (SET NOT NULL,
 * ...) and the dual-write trigger of a backfill (PostgreSQL refuses row
 * triggers on a view) would fail halfway through a phase.  So such a plan
 * is refused at load, with what to do. */
static int later_work(const zdm_step *s)
{
    if (strcmp(s->op, "set_not_null") == 0 || strcmp(s->op, "rename_column") == 0 ||
        strcmp(s->op, "change_type") == 0)
        return 1;
    if (strcmp(s->op, "add_column") != 0)
        return 0;
    const toml_value *nl = toml_get(s->fields, "nullable");
    return toml_get(s->fields, "up") ||
           (nl && nl->type == TOML_BOOL && !nl->u.boolean && !toml_get(s->fields, "default"));
}

static int check_rename_table(zdm_plan *p, zdm_diags *diags)
{
    int errors = 0;
    for (size_t i = 0; i < p->nexpand; i++) {
        const zdm_step *r = &p->expand[i];
        if (!r->op || strcmp(r->op, "rename_table") != 0)
            continue;
        const toml_value *tv = toml_get(r->fields, "table"), *to = toml_get(r->fields, "to");
        if (!tv || tv->type != TOML_STRING || !to || to->type != TOML_STRING)
            continue;
        const char *old = tv->u.str.ptr;
        for (int ph = 0; ph < 2; ph++) {
            zdm_step *v = ph ? p->contract : p->expand;
            size_t n = ph ? p->ncontract : p->nexpand;
            for (size_t j = 0; j < n; j++) {
                const zdm_step *s = &v[j];
                if (s == r || !s->op)
                    continue;
                const toml_value *t = toml_get(s->fields, "table");
                if (!t || t->type != TOML_STRING || strcmp(t->u.str.ptr, old) != 0)
                    continue;
                /* Before the rename in expand, on the table itself, is
                 * fine -- unless the op leaves work for later phases. */
                if (!ph && j < i && !later_work(s))
                    continue;
                zdm_diag_add(diags, p->path, s->line, s->col,
                             "%s step %d (op \"%s\"): table \"%s\" is renamed to \"%s\" by expand step %d, and "
                             "from then on the old name is a view; put the rename in a plan of its own",
                             ph ? "contract" : "expand", s->index, s->op, old, to->u.str.ptr, r->index);
                errors++;
            }
        }
        if (p->backfill && p->backfill->table && strcmp(p->backfill->table, old) == 0) {
            zdm_diag_add(diags, p->path, p->backfill->line, p->backfill->col,
                         "[backfill] table \"%s\" is renamed to \"%s\" by expand step %d: its dual-write "
                         "triggers cannot go on the view left under the old name; put the rename in a plan of its own",
                         old, to->u.str.ptr, r->index);
            errors++;
        }
    }
    return errors;
}

int zdm_ops_expand(zdm_plan *p, zdm_diags *diags)
{
    int any = 0;
    for (size_t i = 0; i < p->nexpand; i++)
        any |= p->expand[i].op != NULL;
    for (size_t i = 0; i < p->ncontract; i++)
        any |= p->contract[i].op != NULL;
    if (!any)
        return 0;
    int errors = check_rename_table(p, diags);
    if (errors)
        return errors;
    gen ex = {0}, implied = {0}, ct = {0};
    for (size_t i = 0; i < p->nexpand; i++) {
        zdm_step *s = &p->expand[i];
        if (!s->op) {
            move_steps(&ex, s, 1);
            continue;
        }
        opctx o = {p, diags, s, "expand", 0};
        expand_op(&o, &ex, &implied, 0);
        errors += o.errors;
        free_op_step(s);
    }
    /* contract: what expand's operations imply comes first, then the
     * plan's own contract steps */
    move_steps(&ct, implied.v, implied.n);
    free(implied.v);
    for (size_t i = 0; i < p->ncontract; i++) {
        zdm_step *s = &p->contract[i];
        if (!s->op) {
            move_steps(&ct, s, 1);
            continue;
        }
        opctx o = {p, diags, s, "contract", 0};
        expand_op(&o, &ct, &ct, 1);
        errors += o.errors;
        free_op_step(s);
    }
    free(p->expand);
    free(p->contract);
    p->expand = ex.v;
    p->nexpand = ex.n;
    p->contract = ct.v;
    p->ncontract = ct.n;
    for (size_t i = 0; i < p->nexpand; i++)
        p->expand[i].index = (int)i + 1;
    for (size_t i = 0; i < p->ncontract; i++)
        p->contract[i].index = (int)i + 1;
    return errors;
}
