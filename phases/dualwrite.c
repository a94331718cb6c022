/*
 * dualwrite.c -- the dual-write triggers that keep old and new columns
 * consistent while both application versions write, and the choice of
 * the backfill key.
 *
 * Direction is decided per row from what the statement changed:
 *  - forward (old app): the targets of set.* were not written, so they are
 *    computed from the old columns (on INSERT: when they are NULL);
 *  - reverse (new app): a target was written but the reverse.* columns
 *    were not, so those are computed from the new columns.
 * PostgreSQL does this in one BEFORE ROW trigger (assigning NEW, so no
 * second write and no recursion).  SQLite cannot assign NEW, so it uses
 * AFTER triggers that UPDATE the row; each WHEN clause also requires the
 * row to be inconsistent, so the UPDATE a trigger makes never re-fires the
 * opposite direction (given reverse undoes set, as it must).
 *
 * The backfill itself must never fire the reverse direction: it marks its
 * own transaction (PostgreSQL: the transaction-local setting zdm.backfill;
 * SQLite: a row in zdm_guard that only its own uncommitted transaction can
 * see), and the triggers step aside for it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "mutant.h"

/* Trigger/function name base, within PostgreSQL's 63-byte names. */
static void name_base(const zdm_plan *plan, char *out, size_t size)
{
    if (strlen(plan->id) <= 40) {
        snprintf(out, size, "zdm_dw_%s", plan->id);
        return;
    }
    char h[65];
    zdm_sha256_hex(plan->id, strlen(plan->id), h);
    snprintf(out, size, "zdm_dw_%.32s_%.8s", plan->id, h);
}

static int in_list(const zdm_strv *l, const char *name, size_t len, int fold)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->v[i]) != len)
            continue;
        if (fold ? strncasecmp(l->v[i], name, len) == 0 : strncmp(l->v[i], name, len) == 0)
            return (int)i + 1;
    }
    return 0;
}

char *zdm_dw_rewrite(zdm_db *db, const char *expr, const zdm_strv *cols, const char *prefix)
{
    zdm_buf out = {0};
    const char *p = expr;
    char prev = 0; /* last non-space character emitted */
    while (*p) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\'') { /* string literal, '' escapes */
            const char *s = p++;
            while (*p && !(*p == '\'' && p[1] != '\''))
                p += (*p == '\'' ? 2 : 1);
            if (*p)
                p++;
            zdm_buf_putn(&out, s, (size_t)(p - s));
            prev = '\'';
            continue;
        }
        if (ch == '-' && p[1] == '-') { /* comment to end of line */
            const char *s = p;
            while (*p && *p != '\n')
                p++;
            zdm_buf_putn(&out, s, (size_t)(p - s));
            continue;
        }
        int quoted = ch == '"';
        if (quoted || isalpha(ch) || ch == '_') {
            const char *s = p, *name = p;
            size_t len;
            zdm_buf unq = {0}; /* a quoted name with its "" undoubled */
            if (quoted) {
                p++;
                while (*p && !(*p == '"' && p[1] != '"')) {
                    zdm_buf_putn(&unq, p, 1);
                    p += *p == '"' ? 2 : 1;
                }
                name = unq.data ? unq.data : "";
                len = unq.len;
                if (*p)
                    p++;
            } else {
                while (isalnum((unsigned char)*p) || *p == '_' || *p == '$')
                    p++;
                len = (size_t)(p - name);
            }
            const char *q = p;
            while (*q == ' ' || *q == '\t' || *q == '\n')
                q++;
            int call = *q == '(' && !quoted;
            int qualified = prev == '.' || *q == '.';
            int cast = prev == ':';
            int idx = (!call && !qualified && !cast) ? in_list(cols, name, len, !quoted) : 0;
            if (idx) {
                char *qi = zdm_db_ident(db, cols->v[idx - 1]);
                zdm_buf_printf(&out, "%s.%s", prefix, qi);
                free(qi);
            } else {
                zdm_buf_putn(&out, s, (size_t)(p - s));
            }
            zdm_buf_free(&unq);
            prev = 'a';
            continue;
        }
        zdm_buf_putn(&out, p, 1);
        if (!isspace(ch))
            prev = (char)ch;
        p++;
    }
    return zdm_buf_take(&out);
}

int zdm_dw_columns(zdm_db *db, const zdm_plan *plan, zdm_strv *cols, zdm_err *err)
{
    const zdm_backfill *b = plan->backfill;
    zdm_rows *r = NULL;
    int rc;
    if (zdm_db_kind_of(db) == ZDM_DB_PG) {
        char *q = zdm_db_ident_path(db, b->table);
        const char *params[] = {q};
        rc = zdm_db_query(db,
                          "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) "
                          "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                          1, params, &r, err);
        free(q);
    } else {
        const char *params[] = {b->table};
        rc = zdm_db_query(db, "SELECT name FROM pragma_table_info($1) ORDER BY cid", 1, params, &r, err);
    }
    if (rc != 0)
        return rc;
    for (int i = 0; i < zdm_rows_count(r); i++)
        zdm_strv_push(cols, zdm_rows_get(r, i, 0));
    zdm_rows_free(r);
    for (size_t i = 0; i < b->nset; i++)
        if (!in_list(cols, b->set[i].column, strlen(b->set[i].column), 1))
            zdm_strv_push(cols, b->set[i].column);
    for (size_t i = 0; i < b->nreverse; i++)
        if (!in_list(cols, b->reverse[i].column, strlen(b->reverse[i].column), 1))
            zdm_strv_push(cols, b->reverse[i].column);
    for (size_t i = 0; i < b->dw_sources.n; i++)
        if (!in_list(cols, b->dw_sources.v[i], strlen(b->dw_sources.v[i]), 1))
            zdm_strv_push(cols, b->dw_sources.v[i]);
    return 0;
}

/* "NEW.a IS NULL AND NEW.b IS NULL" style conjunctions over assignments. */
static void each_col(zdm_buf *b, zdm_db *db, const zdm_assign *a, size_t n, const char *fmt,
                     const char *joiner)
{
    for (size_t i = 0; i < n; i++) {
        char *q = zdm_db_ident(db, a[i].column);
        if (i)
            zdm_buf_puts(b, joiner);
        zdm_buf_printf(b, fmt, q, q);
        free(q);
    }
}

/* "NEW.t1 := (e1); NEW.t2 := (e2);" or "t1 = (e1), t2 = (e2)". */
static void assignments(zdm_buf *b, zdm_db *db, const zdm_assign *a, size_t n,
                        const zdm_strv *cols, int plpgsql)
{
    for (size_t i = 0; i < n; i++) {
        char *q = zdm_db_ident(db, a[i].column);
        if (plpgsql) {
            char *e = zdm_dw_rewrite(db, a[i].expr, cols, "NEW");
            zdm_buf_printf(b, "    NEW.%s := (%s);\n", q, e);
            free(e);
        } else {
            zdm_buf_printf(b, "%s%s = (%s)", i ? ", " : "", q, a[i].expr);
        }
        free(q);
    }
}

/* "NOT (NEW.t1 IS (e1') AND ...)": the row is not yet consistent. */
static void inconsistent(zdm_buf *b, zdm_db *db, const zdm_assign *a, size_t n,
                         const zdm_strv *cols)
{
    zdm_buf_puts(b, "NOT (");
    for (size_t i = 0; i < n; i++) {
        char *q = zdm_db_ident(db, a[i].column);
        char *e = zdm_dw_rewrite(db, a[i].expr, cols, "NEW");
        zdm_buf_printf(b, "%sNEW.%s IS (%s)", i ? " AND " : "", q, e);
        free(e);
        free(q);
    }
    zdm_buf_puts(b, ")");
}

static void key_match(zdm_buf *b, zdm_db *db, const zdm_strv *key)
{
    for (size_t i = 0; i < key->n; i++) {
        char *q = zdm_db_ident(db, key->v[i]);
        zdm_buf_printf(b, "%s%s = NEW.%s", i ? " AND " : "", q, q);
        free(q);
    }
}

/* SQLite: " AND (where)" in the UPDATE a trigger makes.  The AFTER
 * trigger's row is already in the table, so `where` is evaluated on the
 * new row exactly as the backfill's UPDATE evaluates it. */
static void where_match(zdm_buf *b, const zdm_backfill *bf)
{
    if (bf->where && !zdm_mutant("trigger_no_where"))
        zdm_buf_printf(b, " AND (%s)", bf->where);
}

int zdm_dw_in_place(const zdm_backfill *b)
{
    return b->where && !b->nreverse && !b->dw_sources.n;
}

const char *zdm_dw_mode(const zdm_backfill *b)
{
    if (!b->dual_write)
        return "off";
    if (zdm_dw_in_place(b))
        return "in_place";
    return b->nreverse ? "two_way" : "one_way";
}

int zdm_dw_names(const char *where, const char *col)
{
    size_t n = strlen(col);
    for (const char *p = where; *p; p++) {
        if (strncasecmp(p, col, n) != 0)
            continue;
        int before = p == where || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        int after = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (before && after)
            return 1;
    }
    return 0;
}

void zdm_dw_describe(const zdm_backfill *b, zdm_strv *lines)
{
    const char *mode = zdm_dw_mode(b);
    const char *rows = b->where ? "a row whose new values match where" : "a row";
    if (strcmp(mode, "off") == 0) {
        zdm_strv_push(lines, "no triggers: rows the applications write during the backfill are converted "
                             "only if the backfill reaches them after the write");
        return;
    }
    char line[512];
    if (strcmp(mode, "in_place") == 0) {
        zdm_strv_push(lines, "in-place fix: every INSERT and UPDATE whose new row matches where is converted "
                             "by the trigger, whoever wrote it");
    } else {
        snprintf(line, sizeof line, "forward: %s is converted when an INSERT leaves the targets NULL, or an "
                                    "UPDATE%s%s leaves them unchanged",
                 rows, b->dw_sources.n ? " of the sources" : "", b->dw_sources.n ? "" : " of any column");
        zdm_strv_push(lines, line);
        if (!strcmp(mode, "two_way")) {
            snprintf(line, sizeof line, "reverse: when a write gives the targets, %s gets its reverse.* "
                                        "columns derived from them", rows);
            zdm_strv_push(lines, line);
        } else {
            zdm_strv_push(lines, "a write that gives the targets itself keeps them (one-way: no reverse.*)");
        }
    }
    if (b->where) {
        zdm_strv_push(lines, "rows outside where are never written by zdm, whatever the applications do");
        for (size_t i = 0; strcmp(mode, "in_place") != 0 && i < b->nset; i++)
            if (zdm_dw_names(b->where, b->set[i].column)) {
                snprintf(line, sizeof line,
                         "note: where names the target %s: once converted, a row leaves where and later "
                         "writes to it are no longer followed; leave where out to follow every write",
                         b->set[i].column);
                zdm_strv_push(lines, line);
                break;
            }
    }
}

static char *sql_literal(const char *s)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, "'");
    for (; *s; s++)
        zdm_buf_putn(&b, *s == '\'' ? "''" : s, *s == '\'' ? 2 : 1);
    zdm_buf_puts(&b, "'");
    return zdm_buf_take(&b);
}

/* " OF a, b" for the given column lists, duplicates skipped. */
static void of_columns(zdm_buf *c, zdm_db *db, const zdm_strv *names, const zdm_assign *a, size_t na)
{
    zdm_strv all = {0};
    for (size_t i = 0; names && i < names->n; i++)
        zdm_strv_push(&all, names->v[i]);
    for (size_t i = 0; i < na; i++)
        zdm_strv_push(&all, a[i].column);
    zdm_buf_puts(c, " OF ");
    int first = 1;
    for (size_t i = 0; i < all.n; i++) {
        if (in_list(&all, all.v[i], strlen(all.v[i]), 1) != (int)i + 1)
            continue; /* duplicate */
        char *q = zdm_db_ident(db, all.v[i]);
        zdm_buf_printf(c, "%s%s", first ? "" : ", ", q);
        first = 0;
        free(q);
    }
    zdm_strv_free(&all);
}

/* The bare table name, quoted: the alias under which `where` sees NEW. */
static char *bare_alias(zdm_db *db, const char *table)
{
    const char *dot = strrchr(table, '.');
    return zdm_db_ident(db, dot ? dot + 1 : table);
}

/* One trigger function: assigns `a` to NEW and returns it.  With a
 * `where`, a row that does not match it is returned untouched: the
 * predicate is evaluated on NEW, seen as a one-row table under the
 * table's own name, so the plan's `where` means exactly what it means in
 * the backfill's UPDATE (subqueries over the real table included; a
 * trigger's WHEN clause cannot hold a subquery, hence the function). */
static void pg_function(zdm_buf *c, zdm_db *db, const char *fn, const zdm_assign *a, size_t n,
                        const zdm_strv *cols, const zdm_backfill *b)
{
    zdm_buf body = {0};
    zdm_buf_puts(&body, "\nBEGIN\n");
    if (b->where && !zdm_mutant("trigger_no_where")) {
        char *alias = bare_alias(db, b->table);
        zdm_buf_printf(&body, "  IF NOT EXISTS (SELECT 1 FROM (SELECT NEW.*) AS %s WHERE (%s)) THEN\n"
                              "    RETURN NEW;  -- outside the plan's where: never written by zdm\n"
                              "  END IF;\n", alias, b->where);
        free(alias);
    }
    assignments(&body, db, a, n, cols, 1);
    zdm_buf_puts(&body, "  RETURN NEW;\nEND\n");
    /* identifiers and expressions are in the body: a tag they lack */
    char *quoted = zdm_sql_dollar_quote(body.data);
    zdm_buf_printf(c, "CREATE OR REPLACE FUNCTION zdm.%s() RETURNS trigger LANGUAGE plpgsql AS %s;\n", fn, quoted);
    free(quoted);
    zdm_buf_free(&body);
}

/* PostgreSQL: BEFORE ROW triggers whose WHEN clauses decide the direction,
 * so PL/pgSQL runs only to compute a value, never to decide whether to:
 * the conditions are evaluated in the executor, and a row that needs
 * nothing costs no function call.  The reverse triggers are named to fire
 * first (PostgreSQL fires them in name order), which keeps the two
 * directions exclusive: a new application's write sets the old columns
 * and no longer looks like an old application's write. */
static void pg_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *cols, const char *base,
                   zdm_buf *c, zdm_buf *d)
{
    const zdm_backfill *b = plan->backfill;
    char *tbl = zdm_db_ident_path(db, b->table);
    char *lit = sql_literal(plan->id);
    char name[128];
    snprintf(name, sizeof name, "%s_fwd", base);
    char *fwd = zdm_db_ident(db, name);
    snprintf(name, sizeof name, "%s_rev", base);
    char *rev = zdm_db_ident(db, name);
    const char *suffix[4] = {"_1rev_ins", "_1rev_upd", "_2fwd_ins", "_2fwd_upd"};
    char *trg[4];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s%s", base, suffix[i]);
        trg[i] = zdm_db_ident(db, name);
    }
    /* the backfill of this plan converts rows itself: the triggers step aside */
    char guard[200];
    snprintf(guard, sizeof guard, "current_setting('zdm.backfill', true) IS DISTINCT FROM %s", lit);

    pg_function(c, db, fwd, b->set, b->nset, cols, b);
    if (b->nreverse)
        pg_function(c, db, rev, b->reverse, b->nreverse, cols, b);
    for (int i = 0; i < 4; i++)
        zdm_buf_printf(c, "DROP TRIGGER IF EXISTS %s ON %s;\n", trg[i], tbl);

    if (b->nreverse) {
        /* new application inserts: it wrote the targets */
        zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW\n  WHEN (%s AND NOT (", trg[0], tbl,
                       guard);
        each_col(c, db, b->set, b->nset, "NEW.%s IS NULL", " AND ");
        zdm_buf_puts(c, ")");
        if (!b->reverse_on_insert) {
            /* rename_column / change_type set reverse_on_insert: the new
             * application cannot write the old columns at all, so what
             * they hold is a default; otherwise only empty ones are filled */
            zdm_buf_puts(c, " AND ");
            each_col(c, db, b->reverse, b->nreverse, "NEW.%s IS NULL", " AND ");
        }
        zdm_buf_printf(c, ")\n  EXECUTE FUNCTION zdm.%s();\n", rev);
        /* new application updates: targets written, old columns not */
        zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE UPDATE", trg[1]);
        of_columns(c, db, NULL, b->set, b->nset);
        zdm_buf_printf(c, " ON %s FOR EACH ROW\n  WHEN (%s AND (", tbl, guard);
        each_col(c, db, b->set, b->nset, "NEW.%s IS DISTINCT FROM OLD.%s", " OR ");
        zdm_buf_puts(c, ") AND ");
        each_col(c, db, b->reverse, b->nreverse, "NEW.%s IS NOT DISTINCT FROM OLD.%s", " AND ");
        zdm_buf_printf(c, ")\n  EXECUTE FUNCTION zdm.%s();\n", rev);
    }
    /* An in-place fix converts whatever row ends up matching `where`,
     * whoever wrote it: every insert and update goes to the function,
     * which tests `where` on NEW. */
    int in_place = zdm_dw_in_place(b);
    /* old application inserts: targets empty */
    zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW\n  WHEN (%s", trg[2], tbl, guard);
    if (!in_place) {
        zdm_buf_puts(c, " AND ");
        each_col(c, db, b->set, b->nset, "NEW.%s IS NULL", " AND ");
    }
    zdm_buf_printf(c, ")\n  EXECUTE FUNCTION zdm.%s();\n", fwd);
    /* old application updates: targets untouched, sources written.
     * Only statements that write a source column fire it at all. */
    zdm_buf_printf(c, "CREATE TRIGGER %s BEFORE UPDATE", trg[3]);
    if (b->dw_sources.n)
        of_columns(c, db, &b->dw_sources, NULL, 0);
    zdm_buf_printf(c, " ON %s FOR EACH ROW\n  WHEN (%s", tbl, guard);
    if (!in_place) {
        zdm_buf_puts(c, " AND ");
        each_col(c, db, b->set, b->nset, "NEW.%s IS NOT DISTINCT FROM OLD.%s", " AND ");
    }
    if (b->dw_sources.n) {
        zdm_buf_puts(c, " AND (");
        for (size_t i = 0; i < b->dw_sources.n; i++) {
            char *q = zdm_db_ident(db, b->dw_sources.v[i]);
            zdm_buf_printf(c, "%sNEW.%s IS DISTINCT FROM OLD.%s", i ? " OR " : "", q, q);
            free(q);
        }
        zdm_buf_puts(c, ")");
    }
    zdm_buf_printf(c, ")\n  EXECUTE FUNCTION zdm.%s();\n", fwd);

    for (int i = 0; i < 4; i++)
        zdm_buf_printf(d, "DROP TRIGGER IF EXISTS %s ON %s;\n", trg[i], tbl);
    zdm_buf_printf(d, "DROP FUNCTION IF EXISTS zdm.%s();\nDROP FUNCTION IF EXISTS zdm.%s();\n", fwd, rev);
    for (int i = 0; i < 4; i++)
        free(trg[i]);
    free(fwd);
    free(rev);
    free(tbl);
    free(lit);
}

/* SQLite: " BEGIN <guard row> UPDATE t SET ": a trigger's own UPDATE
 * fires the other direction's AFTER UPDATE trigger (recursive_triggers
 * only stops a trigger re-firing itself), and a reverse that is not an
 * exact inverse of set (text '007' -> 7 -> '7') would then rewrite the
 * value the application just wrote.  The body holds the plan's guard row
 * (the backfill's mark, seen only by this transaction) for the length of
 * its UPDATE, so one application write converts in one direction only, as
 * PostgreSQL's BEFORE triggers do. */
static void sqlite_body_open(zdm_buf *c, const char *tbl, const char *lit)
{
    zdm_buf_printf(c, "\nBEGIN INSERT INTO zdm_guard (plan_id) VALUES (%s); UPDATE %s SET ", lit, tbl);
}

static void sqlite_body_close(zdm_buf *c, const char *lit)
{
    zdm_buf_printf(c, "; DELETE FROM zdm_guard WHERE plan_id = %s; END;\n", lit);
}

static void sqlite_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *cols,
                       const zdm_strv *key, const char *base, zdm_buf *c, zdm_buf *d)
{
    const zdm_backfill *b = plan->backfill;
    char *tbl = zdm_db_ident(db, b->table);
    char *lit = sql_literal(plan->id);
    char guard[256];
    snprintf(guard, sizeof guard, "NOT EXISTS (SELECT 1 FROM zdm_guard WHERE plan_id = %s)", lit);
    const char *sfx[4] = {"_fi", "_fu", "_ri", "_ru"};
    char *names[4];
    for (int i = 0; i < 4; i++) {
        char n[128];
        snprintf(n, sizeof n, "%s%s", base, sfx[i]);
        names[i] = zdm_db_ident(db, n);
    }
    int in_place = zdm_dw_in_place(b);
    /* forward, insert */
    zdm_buf_printf(c, "CREATE TRIGGER %s AFTER INSERT ON %s\nWHEN %s", names[0], tbl, guard);
    if (!in_place) {
        zdm_buf_puts(c, " AND ");
        each_col(c, db, b->set, b->nset, "NEW.%s IS NULL", " AND ");
    }
    sqlite_body_open(c, tbl, lit);
    assignments(c, db, b->set, b->nset, cols, 0);
    zdm_buf_puts(c, " WHERE ");
    key_match(c, db, key);
    where_match(c, b);
    sqlite_body_close(c, lit);
    /* forward, update */
    zdm_buf_printf(c, "CREATE TRIGGER %s AFTER UPDATE", names[1]);
    if (b->dw_sources.n) {
        zdm_buf_puts(c, " OF ");
        for (size_t i = 0; i < b->dw_sources.n; i++) {
            char *q = zdm_db_ident(db, b->dw_sources.v[i]);
            zdm_buf_printf(c, "%s%s", i ? ", " : "", q);
            free(q);
        }
    }
    zdm_buf_printf(c, " ON %s\nWHEN %s AND ", tbl, guard);
    if (!in_place) {
        each_col(c, db, b->set, b->nset, "NEW.%s IS OLD.%s", " AND ");
        zdm_buf_puts(c, " AND ");
    }
    inconsistent(c, db, b->set, b->nset, cols);
    sqlite_body_open(c, tbl, lit);
    assignments(c, db, b->set, b->nset, cols, 0);
    zdm_buf_puts(c, " WHERE ");
    key_match(c, db, key);
    where_match(c, b);
    sqlite_body_close(c, lit);
    if (b->nreverse) {
        /* reverse, insert: the new application wrote the targets */
        zdm_buf_printf(c, "CREATE TRIGGER %s AFTER INSERT ON %s\nWHEN %s AND NOT (", names[2], tbl, guard);
        each_col(c, db, b->set, b->nset, "NEW.%s IS NULL", " AND ");
        zdm_buf_puts(c, ")");
        if (!b->reverse_on_insert) { /* (see pg_sql) */
            zdm_buf_puts(c, " AND ");
            each_col(c, db, b->reverse, b->nreverse, "NEW.%s IS NULL", " AND ");
        }
        sqlite_body_open(c, tbl, lit);
        assignments(c, db, b->reverse, b->nreverse, cols, 0);
        zdm_buf_puts(c, " WHERE ");
        key_match(c, db, key);
        where_match(c, b);
        sqlite_body_close(c, lit);
        /* reverse, update */
        zdm_buf_printf(c, "CREATE TRIGGER %s AFTER UPDATE OF ", names[3]);
        for (size_t i = 0; i < b->nset; i++) {
            char *q = zdm_db_ident(db, b->set[i].column);
            zdm_buf_printf(c, "%s%s", i ? ", " : "", q);
            free(q);
        }
        zdm_buf_printf(c, " ON %s\nWHEN %s AND (", tbl, guard);
        each_col(c, db, b->set, b->nset, "NEW.%s IS NOT OLD.%s", " OR ");
        zdm_buf_puts(c, ") AND ");
        each_col(c, db, b->reverse, b->nreverse, "NEW.%s IS OLD.%s", " AND ");
        zdm_buf_puts(c, " AND ");
        inconsistent(c, db, b->reverse, b->nreverse, cols);
        sqlite_body_open(c, tbl, lit);
        assignments(c, db, b->reverse, b->nreverse, cols, 0);
        zdm_buf_puts(c, " WHERE ");
        key_match(c, db, key);
        where_match(c, b);
        sqlite_body_close(c, lit);
    }
    for (int i = 0; i < 4; i++) {
        zdm_buf_printf(d, "DROP TRIGGER IF EXISTS %s;\n", names[i]);
        free(names[i]);
    }
    free(tbl);
    free(lit);
}

int zdm_dw_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *key, char **create, char **drop,
               zdm_err *err)
{
    *create = *drop = NULL;
    if (!plan->backfill || !plan->backfill->nset)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s has no backfill to dual-write", plan->id);
    zdm_strv cols = {0};
    int rc = zdm_dw_columns(db, plan, &cols, err);
    if (rc != 0) {
        zdm_strv_free(&cols);
        return rc;
    }
    char base[80];
    name_base(plan, base, sizeof base);
    zdm_buf c = {0}, d = {0};
    if (zdm_db_kind_of(db) == ZDM_DB_PG)
        pg_sql(db, plan, &cols, base, &c, &d);
    else
        sqlite_sql(db, plan, &cols, key, base, &c, &d);
    zdm_strv_free(&cols);
    *create = zdm_buf_take(&c);
    *drop = zdm_buf_take(&d);
    return 0;
}

int zdm_dw_step(zdm_db *db, const zdm_plan *plan, int for_contract, zdm_step *step, zdm_err *err)
{
    memset(step, 0, sizeof *step);
    zdm_strv key = {0};
    int rc = 0;
    /* SQLite's triggers address rows by key; PostgreSQL's do not need it,
     * and the table may not exist yet when a dry run prints the SQL. */
    if (zdm_db_kind_of(db) == ZDM_DB_SQLITE)
        rc = zdm_backfill_key(db, plan, &key, err);
    char *create = NULL, *drop = NULL;
    if (rc == 0)
        rc = zdm_dw_sql(db, plan, &key, &create, &drop, err);
    zdm_strv_free(&key);
    if (rc != 0)
        return rc;
    step->index = for_contract ? 0 : (int)plan->nexpand + 1;
    step->name = zdm_xstrdup(for_contract ? "remove dual-write triggers" : "install dual-write triggers");
    step->sql = for_contract ? drop : create;
    step->down = for_contract ? create : drop;
    step->transaction = 1;
    step->lock_timeout_ms = -1;
    step->statement_timeout_ms = -1;
    step->lock_retries = -1;
    step->line = plan->backfill->line;
    step->col = plan->backfill->col;
    return 0;
}

void zdm_dw_step_free(zdm_step *step)
{
    free(step->name);
    free(step->sql);
    free(step->down);
    memset(step, 0, sizeof *step);
}

/* ---- the backfill key ---- */

static int refuse_key(const zdm_plan *plan, const char *why, zdm_err *err)
{
    const zdm_backfill *b = plan->backfill;
    zdm_err_set(err, ZDM_EXIT_REFUSED, "backfill of %s cannot walk table %s: %s", plan->id, b->table, why);
    zdm_err_detail(err, "add a primary key (ALTER TABLE %s ADD PRIMARY KEY (id)), or a unique index on "
                        "NOT NULL columns and name them in [backfill] key = [\"...\"]; nothing was changed",
                   b->table);
    return ZDM_EXIT_REFUSED;
}

static void join_sorted(const zdm_strv *l, zdm_buf *out)
{
    zdm_strv s = {0};
    for (size_t i = 0; i < l->n; i++)
        zdm_strv_push(&s, l->v[i]);
    for (size_t i = 1; i < s.n; i++)
        for (size_t j = i; j > 0 && strcmp(s.v[j - 1], s.v[j]) > 0; j--) {
            char *t = s.v[j];
            s.v[j] = s.v[j - 1];
            s.v[j - 1] = t;
        }
    for (size_t i = 0; i < s.n; i++)
        zdm_buf_printf(out, "%s%s", i ? "," : "", s.v[i]);
    zdm_strv_free(&s);
}

static int key_pg(zdm_db *db, const zdm_plan *plan, zdm_strv *key, zdm_err *err)
{
    const zdm_backfill *b = plan->backfill;
    char *q = zdm_db_ident_path(db, b->table);
    const char *p1[] = {q};
    char *exists = NULL;
    int rc = zdm_db_query_value(db, "SELECT to_regclass($1) IS NOT NULL", 1, p1, &exists, err);
    if (rc == 0 && !(exists && exists[0] == 't'))
        rc = refuse_key(plan, "the table does not exist", err);
    free(exists);
    zdm_rows *r = NULL;
    if (rc == 0 && !b->key.n) {
        rc = zdm_db_query(db,
                          "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                          "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                          "WHERE i.indrelid = to_regclass($1) AND i.indisprimary "
                          "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                          1, p1, &r, err);
        if (rc == 0 && zdm_rows_count(r) == 0)
            rc = refuse_key(plan, "it has no primary key and the plan names no key", err);
        for (int i = 0; rc == 0 && i < zdm_rows_count(r); i++)
            zdm_strv_push(key, zdm_rows_get(r, i, 0));
    } else if (rc == 0) {
        zdm_buf sorted = {0};
        join_sorted(&b->key, &sorted);
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
            rc = refuse_key(plan, "the key columns are not NOT NULL with a unique index on exactly them", err);
        free(ok);
        zdm_buf_free(&sorted);
        for (size_t i = 0; rc == 0 && i < b->key.n; i++)
            zdm_strv_push(key, b->key.v[i]);
    }
    zdm_rows_free(r);
    free(q);
    return rc;
}

static int key_sqlite(zdm_db *db, const zdm_plan *plan, zdm_strv *key, zdm_err *err)
{
    const zdm_backfill *b = plan->backfill;
    const char *p1[] = {b->table};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, "SELECT name, pk, \"notnull\" FROM pragma_table_info($1) ORDER BY pk", 1, p1, &r, err);
    if (rc != 0)
        return rc;
    if (zdm_rows_count(r) == 0) {
        zdm_rows_free(r);
        return refuse_key(plan, "the table does not exist", err);
    }
    if (!b->key.n) {
        for (int i = 0; i < zdm_rows_count(r); i++)
            if (atoi(zdm_rows_get(r, i, 1)) > 0)
                zdm_strv_push(key, zdm_rows_get(r, i, 0));
        if (!key->n)
            zdm_strv_push(key, "rowid"); /* every table without a primary key has one */
        zdm_rows_free(r);
        return 0;
    }
    for (size_t k = 0; k < b->key.n; k++) {
        int found = 0;
        for (int i = 0; i < zdm_rows_count(r); i++)
            if (strcasecmp(zdm_rows_get(r, i, 0), b->key.v[k]) == 0)
                found = atoi(zdm_rows_get(r, i, 1)) > 0 || atoi(zdm_rows_get(r, i, 2)) > 0 ? 2 : 1;
        if (found == 0 && !(b->key.n == 1 && strcasecmp(b->key.v[k], "rowid") == 0)) {
            zdm_rows_free(r);
            return refuse_key(plan, "a key column does not exist", err);
        }
        if (found == 1) {
            zdm_rows_free(r);
            return refuse_key(plan, "a key column may be NULL", err);
        }
    }
    zdm_rows_free(r);
    if (!(b->key.n == 1 && strcasecmp(b->key.v[0], "rowid") == 0)) {
        zdm_buf sorted = {0};
        join_sorted(&b->key, &sorted);
        const char *p2[] = {b->table, sorted.data};
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
            if (!(b->key.n == 1))
                return refuse_key(plan, "no unique index covers exactly the key columns", err);
            const char *p3[] = {b->table, b->key.v[0]};
            char *pk = NULL;
            rc = zdm_db_query_value(db, "SELECT count(*) FROM pragma_table_info($1) WHERE pk = 1 "
                                        "AND name = $2 COLLATE NOCASE AND (SELECT count(*) FROM pragma_table_info($1) WHERE pk > 0) = 1",
                                    2, p3, &pk, err);
            int is_pk = pk && atoi(pk) == 1;
            free(pk);
            if (rc != 0)
                return rc;
            if (!is_pk)
                return refuse_key(plan, "no unique index covers exactly the key columns", err);
        }
    }
    for (size_t k = 0; k < b->key.n; k++)
        zdm_strv_push(key, b->key.v[k]);
    return 0;
}

int zdm_backfill_key(zdm_db *db, const zdm_plan *plan, zdm_strv *key, zdm_err *err)
{
    if (!plan->backfill)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s has no [backfill]", plan->id);
    return zdm_db_kind_of(db) == ZDM_DB_PG ? key_pg(db, plan, key, err) : key_sqlite(db, plan, key, err);
}
