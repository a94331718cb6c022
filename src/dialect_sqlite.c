/*
 * dialect_sqlite.c -- SQLite's dialect table (see dialect.h).
 *
 * Owns: SQLite's answers to every question dialect.h asks: its catalog
 * queries (pragma_table_info, pragma_index_list), its busy timeout, and
 * the dual-write triggers' DDL (AFTER triggers that UPDATE the row; the
 * backfill's own writes are told apart by its row in zdm_guard, which
 * only its uncommitted transaction sees, and a trigger body's UPDATE by
 * the body's own row there).
 */
#include "dialect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dwsql.h"
#include "sqlite_deps.h"
#include "sqlscan.h"

static char *sq_quote(const char *name) { return zdm_dialect_quote_std(name); }

static int sq_columns(zdm_db *db, const char *table, zdm_strv *cols, zdm_err *err)
{
    const char *params[] = {table};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, "SELECT name FROM pragma_table_info($1) ORDER BY cid", 1, params, &r, err);
    for (int i = 0; rc == 0 && i < zdm_rows_count(r); i++)
        zdm_strv_push(cols, zdm_rows_get(r, i, 0));
    zdm_rows_free(r);
    return rc;
}

/* A token's text, unquoted ("a""b" -> a"b, [x] -> x), malloc'd. */
static char *tok_name(const char *sql, const zdm_tok *t)
{
    if (t->kind != ZDM_TOK_QIDENT || t->len < 2)
        return zdm_xstrndup(sql + t->off, t->len);
    zdm_buf b = {0};
    char q = sql[t->off];
    for (size_t i = t->off + 1; i + 1 < t->off + t->len; i++) {
        zdm_buf_putn(&b, sql + i, 1);
        if (q != '[' && sql[i] == q && sql[i + 1] == q)
            i++;
    }
    return b.data ? zdm_buf_take(&b) : zdm_xstrdup("");
}

/* Whether CREATE TRIGGER `sql` fires on UPDATE; its UPDATE OF columns
 * ","-joined into *of (nothing: any column).  Read token by token: the
 * name may hold any word ("audit on t", log_update_count) and the
 * clauses any spacing. */
static int trigger_on_update(const char *sql, zdm_buf *of)
{
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql ? sql : "", ZDM_SQL_SQLITE, &sc);
    size_t i = 0, n = sc.ntoks;
    const zdm_tok *k = sc.toks;
    while (i < n && !(k[i].kind == ZDM_TOK_WORD && zdm_tok_is(sql, &k[i], "TRIGGER")))
        i++;
    i++;
    if (i + 2 < n && zdm_tok_is(sql, &k[i], "IF") && zdm_tok_is(sql, &k[i + 1], "NOT"))
        i += 3;
    i++; /* the name, */
    if (i + 1 < n && k[i].kind == ZDM_TOK_OP && sql[k[i].off] == '.')
        i += 2; /* schema.name */
    if (i < n && (zdm_tok_is(sql, &k[i], "BEFORE") || zdm_tok_is(sql, &k[i], "AFTER")))
        i++;
    else if (i + 1 < n && zdm_tok_is(sql, &k[i], "INSTEAD"))
        i += 2;
    int upd = i < n && k[i].kind == ZDM_TOK_WORD && zdm_tok_is(sql, &k[i], "UPDATE");
    if (upd && i + 1 < n && zdm_tok_is(sql, &k[i + 1], "OF"))
        for (i += 2; i < n && !(k[i].kind == ZDM_TOK_WORD && zdm_tok_is(sql, &k[i], "ON")); i++)
            if (k[i].kind == ZDM_TOK_WORD || k[i].kind == ZDM_TOK_QIDENT) {
                char *c = tok_name(sql, &k[i]);
                zdm_buf_printf(of, "%s%s", of->len ? "," : "", c);
                free(c);
            }
    zdm_sql_scan_free(&sc);
    return upd;
}

/* The columns as sq_columns lists them, with their defaults and unique
 * indexes (one on an expression counts for every column: which it reads
 * is not said), and the application's UPDATE triggers: no partitions nor
 * inheritance, and AFTER triggers read generated columns as stored. */
static int sq_table_facts(zdm_db *db, const char *table, zdm_table_facts *out, zdm_err *err)
{
    const char *p[] = {table};
    zdm_rows *r = NULL;
    *out = (zdm_table_facts){0};
    int rc = zdm_db_query(db,
                          "SELECT c.name, c.dflt_value, EXISTS (SELECT 1 FROM pragma_index_list($1) il, "
                          "pragma_index_info(il.name) ii WHERE il.\"unique\" AND (ii.name = c.name OR ii.name IS NULL)) "
                          "FROM pragma_table_info($1) c ORDER BY c.cid",
                          1, p, &r, err);
    if (rc == 0 && zdm_rows_count(r) > 0) {
        out->ncols = (size_t)zdm_rows_count(r);
        out->cols = zdm_xcalloc(out->ncols, sizeof *out->cols);
        for (int i = 0; i < zdm_rows_count(r); i++) {
            const char *def = zdm_rows_get(r, i, 1);
            out->cols[i] = (zdm_column_fact){.name = zdm_xstrdup(zdm_rows_get(r, i, 0)),
                                             .def = def ? zdm_xstrdup(def) : NULL,
                                             .unique_inherits = strcmp(zdm_rows_get(r, i, 2), "1") == 0};
        }
    }
    zdm_rows_free(r);
    /* the application's UPDATE triggers, read from their CREATE TRIGGER */
    zdm_rows *t = NULL;
    if (rc == 0 && out->ncols)
        rc = zdm_db_query(db, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = $1 "
                              "COLLATE NOCASE AND name NOT LIKE 'zdm\\_dw\\_%' ESCAPE '\\' ORDER BY name",
                          1, p, &t, err);
    for (int i = 0; rc == 0 && i < zdm_rows_count(t); i++) {
        zdm_buf of = {0};
        if (trigger_on_update(zdm_rows_get(t, i, 1), &of)) {
            zdm_strv_push(&out->upd_triggers, zdm_rows_get(t, i, 0));
            zdm_strv_push(&out->upd_triggers_of, of.data ? of.data : "");
        }
        zdm_buf_free(&of);
    }
    zdm_rows_free(t);
    return rc;
}

/* A table the backfill cannot walk: not an error of the query. */
static int refuse(zdm_key_refusal *refused, const char *why, const char *reason)
{
    refused->why = why;
    refused->reason = reason;
    return 0;
}

static int sq_key_of(zdm_db *db, const char *table, const zdm_strv *named, zdm_strv *key, zdm_key_refusal *refused,
                     zdm_err *err)
{
    refused->why = refused->reason = NULL;
    const char *p1[] = {table};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, "SELECT name, pk, \"notnull\" FROM pragma_table_info($1) ORDER BY pk", 1, p1, &r, err);
    if (rc != 0)
        return rc;
    if (zdm_rows_count(r) == 0) {
        zdm_rows_free(r);
        return refuse(refused, "the table does not exist", ZDM_KEY_NO_TABLE);
    }
    if (!named->n) {
        zdm_buf nulls = {0}; /* "a IS NULL OR b IS NULL" of the key columns that may be NULL */
        for (int i = 0; i < zdm_rows_count(r); i++)
            if (atoi(zdm_rows_get(r, i, 1)) > 0) {
                zdm_strv_push(key, zdm_rows_get(r, i, 0));
                if (atoi(zdm_rows_get(r, i, 2)) == 0) {
                    char *q = sq_quote(zdm_rows_get(r, i, 0));
                    zdm_buf_printf(&nulls, "%s%s IS NULL", nulls.len ? " OR " : "", q);
                    free(q);
                }
            }
        /* SQLite lets a PRIMARY KEY other than an INTEGER one hold NULL:
         * such rows cannot be addressed by key (the batches walked past
         * them, the triggers' UPDATE ... WHERE key = NEW.key matched none,
         * and the final check failed naming keys "[]").  Refused while any
         * is there. */
        if (nulls.len) {
            char *tq = zdm_db_ident_path(db, table);
            char *sql = zdm_xasprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", tq, nulls.data);
            char *any = NULL;
            rc = zdm_db_query_value(db, sql, 0, NULL, &any, err);
            int held = any && any[0] == '1';
            free(any);
            free(sql);
            free(tq);
            zdm_buf_free(&nulls);
            if (rc != 0 || held) {
                zdm_rows_free(r);
                return rc != 0 ? rc
                               : refuse(refused, "rows hold NULL in its primary key (SQLite allows it outside an "
                                                 "INTEGER PRIMARY KEY), and such rows cannot be addressed: give them "
                                                 "keys, or name a NOT NULL unique key in [backfill] key",
                                        ZDM_KEY_NULLABLE);
            }
        }
        /* every table without a primary key has a rowid, under the first
         * of its three names that no column takes (a column named rowid
         * was taken for it: the triggers addressed rows by that column's
         * values, and wrote rows other than the one written) */
        static const char *const rowid_names[] = {"rowid", "_rowid_", "oid"};
        for (int n = 0; !key->n && n < 3; n++) {
            int taken = 0;
            for (int i = 0; i < zdm_rows_count(r); i++)
                taken |= strcasecmp(zdm_rows_get(r, i, 0), rowid_names[n]) == 0;
            if (!taken)
                zdm_strv_push(key, rowid_names[n]);
        }
        zdm_rows_free(r);
        if (!key->n)
            return refuse(refused, "the table has no primary key, and columns named rowid, _rowid_ and oid hide "
                                   "its rowid", ZDM_KEY_NO_PRIMARY);
        return 0;
    }
    for (size_t k = 0; k < named->n; k++) {
        int found = 0;
        for (int i = 0; i < zdm_rows_count(r); i++)
            if (strcasecmp(zdm_rows_get(r, i, 0), named->v[k]) == 0)
                found = atoi(zdm_rows_get(r, i, 1)) > 0 || atoi(zdm_rows_get(r, i, 2)) > 0 ? 2 : 1;
        if (found == 0 && !(named->n == 1 && strcasecmp(named->v[k], "rowid") == 0)) {
            zdm_rows_free(r);
            return refuse(refused, "a key column does not exist", ZDM_KEY_NO_COLUMN);
        }
        if (found == 1) {
            zdm_rows_free(r);
            return refuse(refused, "a key column may be NULL", ZDM_KEY_NULLABLE);
        }
    }
    zdm_rows_free(r);
    if (!(named->n == 1 && strcasecmp(named->v[0], "rowid") == 0)) {
        zdm_buf sorted = {0};
        zdm_dialect_join_sorted(named, &sorted);
        const char *p2[] = {table, sorted.data};
        char *ok = NULL;
        rc = zdm_db_query_value(db,
                                "SELECT EXISTS (SELECT 1 FROM pragma_index_list($1) il WHERE il.\"unique\" "
                                "AND il.partial = 0 AND (SELECT group_concat(name, ',') FROM "
                                "(SELECT name FROM pragma_index_info(il.name) ORDER BY name)) = $2)",
                                2, p2, &ok, err);
        int unique = ok && ok[0] == '1';
        free(ok);
        zdm_buf_free(&sorted);
        if (rc != 0)
            return rc;
        if (!unique) {
            /* An INTEGER PRIMARY KEY is the rowid and has no index entry. */
            if (named->n != 1)
                return refuse(refused, "no unique index covers exactly the key columns", ZDM_KEY_NOT_UNIQUE);
            const char *p3[] = {table, named->v[0]};
            char *pk = NULL;
            rc = zdm_db_query_value(db, "SELECT count(*) FROM pragma_table_info($1) WHERE pk = 1 "
                                        "AND name = $2 COLLATE NOCASE AND (SELECT count(*) FROM pragma_table_info($1) WHERE pk > 0) = 1",
                                    2, p3, &pk, err);
            int is_pk = pk && atoi(pk) == 1;
            free(pk);
            if (rc != 0)
                return rc;
            if (!is_pk)
                return refuse(refused, "no unique index covers exactly the key columns", ZDM_KEY_NOT_UNIQUE);
        }
    }
    for (size_t k = 0; k < named->n; k++)
        zdm_strv_push(key, named->v[k]);
    return 0;
}


/* The rowid names the row (as the backfill's default key does). */
static void sq_row_label(zdm_db *db, const char *table, const char *alias, zdm_buf *b)
{
    (void)db;
    (void)table;
    zdm_buf_printf(b, "%s.rowid", alias);
}

static void sq_dry_timeouts(zdm_buf *out, const char *lock, const char *stmt, int tries)
{
    (void)stmt; /* not enforced on SQLite */
    zdm_buf_printf(out, "-- busy timeout %s, up to %d tries\n", lock, tries);
}

static int sq_table_exists(zdm_db *db, const char *table, int *exists, zdm_err *err)
{
    const char *params[] = {table};
    char *v = NULL;
    int rc = zdm_db_query_value(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1", 1, params,
                                &v, err);
    *exists = rc == 0 && v && atoi(v) > 0;
    free(v);
    return rc;
}

/* ---- dual-write triggers ---- */

/* SQLite: " AND (where)" in the UPDATE a trigger makes.  The AFTER
 * trigger's row is already in the table, so `where` is evaluated on the
 * new row exactly as the backfill's UPDATE evaluates it. */
static void where_match(zdm_buf *b, const zdm_dw_spec *bf)
{
    if (bf->where)
        zdm_buf_printf(b, " AND (%s)", bf->where);
}

/* SQLite: " BEGIN <guard row> UPDATE t SET ": a trigger's own UPDATE
 * fires the other direction's AFTER UPDATE trigger (recursive_triggers
 * only stops a trigger re-firing itself), and a reverse that is not an
 * exact inverse of set (text '007' -> 7 -> '7') would then rewrite the
 * value the application just wrote.  The body holds a guard row for the
 * length of its UPDATE, and the plan's UPDATE triggers step aside while
 * it is there, so one application write converts in one direction only,
 * as PostgreSQL's BEFORE triggers do.
 *
 * The row is the body's own: a random rowid, found again by
 * last_insert_rowid(), which SQLite gives the triggers its UPDATE fires
 * and puts back when the body ends (even when it fails).  A statement
 * failing under OR FAIL (or an application RAISE(FAIL)) keeps what it did
 * so far, the guard row too; a row under the plan's own id, as it was,
 * then switched dual-write off for every writer once committed.  A kept
 * row now matches nothing: only a connection whose last insert had that
 * random rowid would see it.  (Comparing the two directions' relations
 * instead, with no row at all, skipped writes where reverse.* loses
 * information, where a collation or a column's type makes a stored value
 * compare equal or unequal to the computed one.)
 *
 * Where no trigger of the plan can fire from a body's UPDATE (guarded ==
 * 0: see body_guarded) the body is the bare UPDATE: the row's INSERT and
 * DELETE made an application write cost about ten times a plain one
 * (0.13 against 0.01 ms). */
static void sqlite_body_open(zdm_buf *c, const char *tbl, const char *lit, int guarded)
{
    if (guarded)
        zdm_buf_printf(c,
                       "\nBEGIN INSERT INTO zdm_guard (rowid, plan_id) SELECT r, %s || '#' || r FROM "
                       "(SELECT random() & 9223372036854775807 AS r); UPDATE %s SET ",
                       lit, tbl);
    else
        zdm_buf_printf(c, "\nBEGIN UPDATE %s SET ", tbl);
}

static void sqlite_body_close(zdm_buf *c, int guarded)
{
    if (guarded)
        zdm_buf_puts(c, "; DELETE FROM zdm_guard WHERE rowid = last_insert_rowid(); END;\n");
    else
        zdm_buf_puts(c, "; END;\n");
}

static int is_target(const zdm_dw_spec *b, const char *col)
{
    for (size_t k = 0; k < b->nset; k++)
        if (strcasecmp(b->set[k].column, col) == 0) /* SQLite's names ignore case */
            return 1;
    return 0;
}

/* The forward UPDATE trigger's " OF a, b": the plan's sources; without
 * them (and not in place) every column but the targets; nothing (any
 * column) in place, or when the targets are every column. */
static void of_list(const zdm_dw_spec *b, zdm_strv *of)
{
    for (size_t i = 0; i < b->sources->n; i++)
        zdm_strv_push(of, b->sources->v[i]);
    for (size_t i = 0; !b->sources->n && !b->in_place && i < b->cols->n; i++)
        if (!is_target(b, b->cols->v[i]))
            zdm_strv_push(of, b->cols->v[i]);
}

/* Whether a trigger body's UPDATE (which SETs the targets, or two-way the
 * reverse columns) can fire a trigger of this plan: the reverse triggers
 * are UPDATE OF the targets; in place, or with an empty OF list, the
 * forward UPDATE trigger fires on any UPDATE; a source that names a
 * target (plan.c compares case-sensitively, SQLite does not) would fire
 * it too.  Otherwise (one-way, OF columns none of which is a target) no
 * body fires another trigger of the plan, nor itself under
 * recursive_triggers (no body INSERTs; the UPDATE trigger is not OF what
 * its body writes), and the body needs no guard row.  Other plans'
 * triggers still fire from it: each looks up its own plan's rows. */
static int body_guarded(const zdm_dw_spec *b)
{
    if (b->nreverse || b->in_place)
        return 1;
    zdm_strv of = {0};
    of_list(b, &of);
    int guarded = of.n == 0;
    for (size_t i = 0; i < of.n; i++)
        guarded |= is_target(b, of.v[i]);
    zdm_strv_free(&of);
    return guarded;
}

static void of_columns(zdm_buf *c, const zdm_dialect *d, const zdm_dw_spec *b)
{
    zdm_strv of = {0};
    of_list(b, &of);
    for (size_t i = 0; i < of.n; i++) {
        char *q = d->quote_ident(of.v[i]);
        zdm_buf_printf(c, "%s%s", i ? ", " : " OF ", q);
        free(q);
    }
    zdm_strv_free(&of);
}

static void sqlite_triggers(const zdm_dialect *d, const zdm_dw_spec *b, zdm_buf *c, zdm_buf *drop)
{
    const zdm_strv *cols = b->cols, *key = b->key;
    const char *base = b->base;
    char *tbl = d->quote_ident(b->table);
    char *lit = zdm_dwsql_literal(b->plan_id);
    char guard[256];
    snprintf(guard, sizeof guard, "NOT EXISTS (SELECT 1 FROM zdm_guard WHERE plan_id = %s)", lit);
    const char *sfx[4] = {"_fi", "_fu", "_ri", "_ru"};
    char *names[4];
    for (int i = 0; i < 4; i++) {
        char n[128];
        snprintf(n, sizeof n, "%s%s", base, sfx[i]);
        names[i] = d->quote_ident(n);
    }
    int in_place = b->in_place;
    int guarded = body_guarded(b);
    /* the UPDATE triggers step aside for the plan's body running now */
    char *in_body = zdm_xasprintf(" AND NOT EXISTS (SELECT 1 FROM zdm_guard WHERE rowid = last_insert_rowid() "
                                  "AND plan_id = %s || '#' || last_insert_rowid())",
                                  lit);
    const char *body_guard = guarded ? in_body : "";
    /* forward, insert */
    zdm_buf_printf(c, "CREATE TRIGGER %s AFTER INSERT ON %s\nWHEN %s", names[0], tbl, guard);
    if (!in_place) {
        zdm_buf_puts(c, " AND ");
        zdm_dwsql_each_col(c, d, b->set, b->nset, "NEW.%s IS NULL", " AND ");
    }
    sqlite_body_open(c, tbl, lit, guarded);
    zdm_dwsql_assignments(c, d, b->set, b->nset, cols, 0);
    zdm_buf_puts(c, " WHERE ");
    zdm_dwsql_key_match(c, d, key);
    where_match(c, b);
    sqlite_body_close(c, guarded);
    /* forward, update: OF the sources, or else (not in place) of every
     * column but the targets -- the columns an UPDATE that leaves the
     * targets alone can change.  The backfill writes only targets, so
     * its UPDATE compiles without this trigger: nothing runs for the
     * rows it converts (no WHEN, no guard lookup).  In place, the
     * targets are sources too: every UPDATE fires it. */
    zdm_buf_printf(c, "CREATE TRIGGER %s AFTER UPDATE", names[1]);
    of_columns(c, d, b);
    zdm_buf_printf(c, " ON %s\nWHEN ", tbl);
    if (!in_place) {
        zdm_dwsql_each_col(c, d, b->set, b->nset, "NEW.%s IS OLD.%s", " AND ");
        zdm_buf_puts(c, " AND ");
    }
    zdm_buf_printf(c, "%s%s AND ", guard, body_guard);
    zdm_dwsql_inconsistent(c, d, b->set, b->nset, cols, tbl, key);
    sqlite_body_open(c, tbl, lit, guarded);
    zdm_dwsql_assignments(c, d, b->set, b->nset, cols, 0);
    zdm_buf_puts(c, " WHERE ");
    zdm_dwsql_key_match(c, d, key);
    where_match(c, b);
    sqlite_body_close(c, guarded);
    if (b->nreverse) {
        /* reverse, insert: the new application wrote the targets */
        zdm_buf_printf(c, "CREATE TRIGGER %s AFTER INSERT ON %s\nWHEN %s AND NOT (", names[2], tbl, guard);
        zdm_dwsql_each_col(c, d, b->set, b->nset, "NEW.%s IS NULL", " AND ");
        zdm_buf_puts(c, ")");
        if (!b->reverse_on_insert) { /* (see dialect_pg.c) */
            zdm_buf_puts(c, " AND ");
            zdm_dwsql_each_col(c, d, b->reverse, b->nreverse, "NEW.%s IS NULL", " AND ");
        }
        sqlite_body_open(c, tbl, lit, guarded);
        zdm_dwsql_assignments(c, d, b->reverse, b->nreverse, cols, 0);
        zdm_buf_puts(c, " WHERE ");
        zdm_dwsql_key_match(c, d, key);
        where_match(c, b);
        sqlite_body_close(c, guarded);
        /* reverse, update */
        zdm_buf_printf(c, "CREATE TRIGGER %s AFTER UPDATE OF ", names[3]);
        for (size_t i = 0; i < b->nset; i++) {
            char *q = d->quote_ident(b->set[i].column);
            zdm_buf_printf(c, "%s%s", i ? ", " : "", q);
            free(q);
        }
        /* the backfill's writes fire it (it writes the targets): its
         * guard row is looked up before the reverse expressions run */
        zdm_buf_printf(c, " ON %s\nWHEN (", tbl);
        zdm_dwsql_each_col(c, d, b->set, b->nset, "NEW.%s IS NOT OLD.%s", " OR ");
        zdm_buf_puts(c, ") AND ");
        zdm_dwsql_each_col(c, d, b->reverse, b->nreverse, "NEW.%s IS OLD.%s", " AND ");
        zdm_buf_printf(c, " AND %s%s AND ", guard, body_guard);
        zdm_dwsql_inconsistent(c, d, b->reverse, b->nreverse, cols, tbl, key);
        sqlite_body_open(c, tbl, lit, guarded);
        zdm_dwsql_assignments(c, d, b->reverse, b->nreverse, cols, 0);
        zdm_buf_puts(c, " WHERE ");
        zdm_dwsql_key_match(c, d, key);
        where_match(c, b);
        sqlite_body_close(c, guarded);
    }
    for (int i = 0; i < 4; i++) {
        zdm_buf_printf(drop, "DROP TRIGGER IF EXISTS %s;\n", names[i]);
        free(names[i]);
    }
    /* A statement that fails part-way (OR FAIL, RAISE(FAIL)) keeps the
     * guard row its body inserted: matched by nothing, but nothing else
     * would ever delete it.  Gone with the triggers (a batch's own row is
     * the bare plan id, not touched). */
    if (guarded)
        zdm_buf_printf(drop, "DELETE FROM zdm_guard WHERE substr(plan_id, 1, length(%s) + 1) = %s || '#';\n", lit,
                       lit);
    free(in_body);
    free(tbl);
    free(lit);
}

/* ---- backfill ---- */

/* Estimates without a scan.  SQLite keeps no statistics (sqlite_stat1
 * only after ANALYZE, and not of a `where`), and counting reads the whole
 * table: on 1,000,000 rows two counts cost a fifth of the backfill
 * itself.  A rowid table is sampled instead: SAMPLE rowids drawn at random
 * between the first and the last are looked up (SAMPLE index seeks); the
 * share that exist times the span estimates the rows, and the share of
 * those that `where` matches the rows to convert.  Dense keys (every rowid
 * in the span exists) give the exact row count.  The rows are counted
 * when a count is cheap (a span of at most EXACT_SPAN rowids), when the
 * table has no rowid, or when too few draws hit a row (sparse or skewed
 * keys: ids 1..1e6 and a few near 1e12) for the share to mean much. */
#define SAMPLE 2000
#define SAMPLE_MIN_HITS 500
#define EXACT_SPAN 100000

/* rows and matching (when where) estimated by the sample; nonzero when
 * the sample cannot tell (count instead).  The table keeps its own name
 * in the sample's join, so a `where` that names it (t.col) reads as in
 * the backfill. */
static int sampled(zdm_db *db, const char *tbl, const char *where, int64_t *rows, int64_t *matching)
{
    zdm_err e;
    zdm_err_clear(&e);
    zdm_rows *r = NULL;
    /* one min() or max() per SELECT: SQLite reads each from one end of
     * the b-tree only then (both in one SELECT scan the table) */
    char *sql = zdm_xasprintf("SELECT (SELECT min(rowid) FROM %s), (SELECT max(rowid) FROM %s)", tbl, tbl);
    int rc = zdm_db_query(db, sql, 0, NULL, &r, &e);
    free(sql);
    const char *lo = rc == 0 && zdm_rows_count(r) == 1 ? zdm_rows_get(r, 0, 0) : NULL;
    const char *hi = rc == 0 && zdm_rows_count(r) == 1 ? zdm_rows_get(r, 0, 1) : NULL;
    long long l = lo ? strtoll(lo, NULL, 10) : 0, h = hi ? strtoll(hi, NULL, 10) : 0;
    /* unsigned: the span of rowids at both ends of int64 overflows */
    unsigned long long span = (unsigned long long)h - (unsigned long long)l;
    zdm_rows_free(r);
    if (!lo || !hi || span < EXACT_SPAN || span >= (1ULL << 62))
        return -1;
    char los[32], spans[32];
    snprintf(los, sizeof los, "%lld", l);
    snprintf(spans, sizeof spans, "%llu", span + 1);
    /* random() & max: abs(random()) fails on the one value without one */
    sql = zdm_xasprintf("WITH RECURSIVE zdm_draw(i, r) AS (SELECT 0, NULL UNION ALL SELECT i + 1, "
                        "$1 + (random() & 9223372036854775807) %% $2 FROM zdm_draw WHERE i < %d) "
                        "SELECT count(%s.rowid), count(CASE WHEN %s%s%s THEN 1 END) FROM zdm_draw "
                        "JOIN %s ON %s.rowid = zdm_draw.r",
                        SAMPLE, tbl, where ? "(" : "", where ? where : "1", where ? ")" : "", tbl, tbl);
    const char *p[] = {los, spans};
    rc = zdm_db_query(db, sql, 2, p, &r, &e);
    free(sql);
    long long hits = rc == 0 && zdm_rows_count(r) == 1 ? strtoll(zdm_rows_get(r, 0, 0), NULL, 10) : 0;
    long long match = rc == 0 && zdm_rows_count(r) == 1 ? strtoll(zdm_rows_get(r, 0, 1), NULL, 10) : 0;
    zdm_rows_free(r);
    if (hits < SAMPLE_MIN_HITS)
        return -1;
    double est = (double)hits / SAMPLE * (double)(span + 1);
    *rows = (int64_t)(est + 0.5);
    if (matching)
        *matching = (int64_t)(est * (double)match / (double)hits + 0.5);
    return 0;
}

static int sq_row_estimate(zdm_db *db, const char *table, int64_t *rows, zdm_err *err)
{
    char *q = zdm_db_ident_path(db, table);
    int rc = 0;
    if (sampled(db, q, NULL, rows, NULL) != 0) {
        char *sql = zdm_xasprintf("SELECT count(*) FROM %s", q);
        char *v = NULL;
        rc = zdm_db_query_value(db, sql, 0, NULL, &v, err);
        *rows = v ? strtoll(v, NULL, 10) : 0;
        free(v);
        free(sql);
    }
    free(q);
    return rc;
}

/* The rows `where` matches, sampled or counted. */
static int sq_where_estimate(zdm_db *db, const char *tbl, const char *where, int64_t *rows)
{
    int64_t all = 0;
    if (sampled(db, tbl, where, &all, rows) == 0)
        return 0;
    char *sql = zdm_xasprintf("SELECT count(*) FROM %s WHERE (%s)", tbl, where);
    char *v = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    int rc = zdm_db_query_value(db, sql, 0, NULL, &v, &e) == 0 && v ? 0 : -1;
    if (rc == 0)
        *rows = strtoll(v, NULL, 10);
    free(v);
    free(sql);
    return rc;
}

/* The rowid, or the one column that names it: an INTEGER PRIMARY KEY,
 * which has no index of its own (any other primary key -- INT, BIGINT,
 * INTEGER PRIMARY KEY DESC, WITHOUT ROWID -- has one, origin 'pk').  Only
 * these hold nothing but integers: another column stores text the
 * application wrote into it ('12a') whatever its declared type, and a span
 * of key values would pass over it.  "rowid" counts unless a column of
 * that name hides it (a WITHOUT ROWID table has none: its batch
 * statements fail the preflight). */
static int sq_integer_key(zdm_db *db, const char *table, const char *column)
{
    const char *p[] = {table, column};
    char *v = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    int rc = zdm_db_query_value(
        db,
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pragma_table_info($1) WHERE name = $2 COLLATE NOCASE) THEN "
        "(SELECT count(*) FROM pragma_table_info($1) WHERE pk > 0) = 1 "
        "AND EXISTS (SELECT 1 FROM pragma_table_info($1) WHERE pk = 1 AND name = $2 COLLATE NOCASE) "
        "AND NOT EXISTS (SELECT 1 FROM pragma_index_list($1) WHERE origin = 'pk') "
        "ELSE lower($2) IN ('rowid', '_rowid_', 'oid') END",
        2, p, &v, &e);
    int yes = rc == 0 && v && strcmp(v, "1") == 0;
    free(v);
    return yes;
}

/* ---- phases ---- */

static int sqlite_step_drops_columns(const char *sql)
{
    zdm_strv t = {0};
    zdm_sqdeps_drops(sql, &t);
    int drops = t.n > 0;
    zdm_strv_free(&t);
    return drops;
}

const zdm_dialect zdm_dialect_sqlite = {
    .kind = ZDM_DB_SQLITE,
    .name = "sqlite",
    .plan_key = "sqlite",
    .slot = 1,
    .quote_ident = sq_quote,
    .table_columns = sq_columns,
    .key_of = sq_key_of,
    .row_label = sq_row_label,
    .invalid_indexes = NULL, /* no CREATE INDEX CONCURRENTLY */
    .index_built = NULL,
    .dry_timeouts = sq_dry_timeouts,
    .idle_busy_wait = 1,
    .set_local_timeouts = NULL,
    .lock_holder_hint = "that holds the database file's write lock",
    .quoted_names_case_sensitive = 0,
    .pg_grammar = 0,
    .file_backup = 1,
    .step_drops_columns = sqlite_step_drops_columns,
    .drop_rebuilds_views = 0,
    .lost_indexes_sql = NULL,
    .state_prefix = "zdm_",
    .state_bigint = "integer",
    .state_serial_pk = "integer PRIMARY KEY AUTOINCREMENT",
    .state_ddl_head = "",
    /* the backfill's own-transaction mark the triggers step aside for */
    .state_ddl_tail = "CREATE TABLE IF NOT EXISTS zdm_guard (plan_id text PRIMARY KEY);\n",
    .state_add_column = "ALTER TABLE %s ADD COLUMN %s;\n",
    .state_init_lock = NULL,
    .table_exists = sq_table_exists,
    .dw_needs_key = 1,
    .dw_body_in_function = 0,
    .dw_compiled_on_write = 1,
    .dw_triggers = sqlite_triggers,
    /* ---- backfill ---- */
    .lock_row = "", /* BEGIN IMMEDIATE holds the write lock */
    .lock_row_skip_locked = "",
    .distinct = "IS NOT",
    .session_id = NULL,
    .session_alive = NULL,
    /* a zdm_guard row only this uncommitted transaction sees: the
     * triggers (dualwrite.c) step aside while it exists */
    .batch_begin = "INSERT INTO zdm_guard (plan_id) VALUES ($1)",
    .batch_end = "DELETE FROM zdm_guard WHERE plan_id = $1",
    .batch_one_statement = 0, /* no data-modifying WITH */
    .integer_key = sq_integer_key,
    /* a text bound is converted to a number again for every row the
     * batch compares with it (3 % of a 1M-row backfill, sqlite3AtoF);
     * cast once, the cast of a parameter is computed once per statement */
    .span_param = "CAST($%d AS INTEGER)",
    .one_writer = 1,
    .worker_session = "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -1000;",
    .after_batch = "PRAGMA wal_checkpoint(PASSIVE)",
    .row_estimate = sq_row_estimate,
    .where_estimate = sq_where_estimate,
    .plan_cost = NULL, /* no work list */
    .column_type = NULL,
    .table_facts = sq_table_facts,
    .autovacuum_running = NULL,
    .replica_lag_ms = NULL,
    .wal_archive_ready = NULL,
};
