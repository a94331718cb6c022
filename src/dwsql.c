/*
 * dwsql.c -- the dialect-neutral pieces of the dual-write trigger SQL
 * (see dwsql.h), shared by the dialects' trigger builders.
 *
 * Owns: rewriting an expression to read NEW.col, and the small clauses
 * (column conjunctions, assignments, key matches, OF lists) both
 * dialects' triggers are made of.  Identifiers are quoted by the
 * dialect; the only value written in (the plan id) goes through
 * zdm_dwsql_literal.
 */
#include "dwsql.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int zdm_dwsql_in_list(const zdm_strv *l, const char *name, size_t len, int fold)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->v[i]) != len)
            continue;
        if (fold ? strncasecmp(l->v[i], name, len) == 0 : strncmp(l->v[i], name, len) == 0)
            return (int)i + 1;
    }
    return 0;
}

/* PostgreSQL's identifier characters (scan.l: ident_start, ident_cont):
 * any byte with the high bit set is a letter, so "größe" is one name.
 * Read as punctuation, its bytes left the name out of the rewrite: the
 * trigger function then read a bare größe and failed on every write of
 * the application. */
static int ident_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static int ident_cont(unsigned char c)
{
    return ident_start(c) || isdigit(c) || c == '$';
}

/* The end of a dollar-quoted string starting at p ("$$" or "$tag$"), or
 * NULL when p starts none (a parameter $1, a lone $). */
static const char *dollar_end(const char *p)
{
    const char *t = p + 1;
    if (*t != '$' && !(isalpha((unsigned char)*t) || *t == '_' || (unsigned char)*t >= 0x80))
        return NULL;
    while (*t != '$') {
        if (!*t || !ident_cont((unsigned char)*t) || *t == '$')
            return NULL;
        t++;
    }
    size_t taglen = (size_t)(t - p) + 1; /* "$tag$" */
    for (const char *q = t + 1; *q; q++)
        if (*q == '$' && strncmp(q, p, taglen) == 0)
            return q + taglen;
    return p + strlen(p); /* unterminated: the rest is the string */
}

/* The end of a quoted string at p (p[0] == '\''), '' escapes, and
 * backslash escapes when `esc` (E'...'); NULL when it does not end. */
static const char *string_end(const char *p, int esc)
{
    p++;
    while (*p) {
        if (esc && *p == '\\' && p[1]) {
            p += 2;
            continue;
        }
        if (*p == '\'') {
            if (p[1] != '\'')
                return p + 1;
            p += 2;
            continue;
        }
        p++;
    }
    return NULL;
}

/* The end of a quoted name at p (p[0] == '"'), its text with "" undoubled
 * appended to *name; NULL when it does not end. */
static const char *quoted_end(const char *p, zdm_buf *name)
{
    p++;
    while (*p && !(*p == '"' && p[1] != '"')) {
        zdm_buf_putn(name, p, 1);
        p += *p == '"' ? 2 : 1;
    }
    return *p ? p + 1 : NULL;
}

/* The end of a number at p (isdigit(*p)): digits, a point, an exponent;
 * 1e5 holds no name. */
static const char *number_end(const char *p)
{
    while (isalnum((unsigned char)*p) || *p == '.')
        p++;
    return p;
}

/* The rewrite; d NULL: only counts in *hits the names it would rewrite. */
static char *rewrite(const zdm_dialect *d, const char *expr, const zdm_strv *cols, const char *prefix, int *hits)
{
    zdm_buf out = {0};
    const char *p = expr;
    char prev = 0; /* last non-space character emitted; 'C' after "::" */
    while (*p) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\'') { /* string literal, '' escapes */
            const char *s = p, *e = string_end(p, 0);
            p = e ? e : p + strlen(p);
            zdm_buf_putn(&out, s, (size_t)(p - s));
            prev = '\'';
            continue;
        }
        const char *de = ch == '$' ? dollar_end(p) : NULL;
        if (de) { /* $$...$$, $tag$...$tag$: a string, as is */
            zdm_buf_putn(&out, p, (size_t)(de - p));
            p = de;
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
        if (isdigit(ch)) {
            const char *s = p;
            p = number_end(p);
            zdm_buf_putn(&out, s, (size_t)(p - s));
            prev = '0';
            continue;
        }
        int quoted = ch == '"';
        if (quoted || ident_start(ch)) {
            const char *s = p, *name = p;
            size_t len;
            zdm_buf unq = {0}; /* a quoted name with its "" undoubled */
            if (quoted) {
                const char *e = quoted_end(p, &unq);
                p = e ? e : p + strlen(p);
                name = unq.data ? unq.data : "";
                len = unq.len;
            } else {
                while (ident_cont((unsigned char)*p))
                    p++;
                len = (size_t)(p - name);
                if (*p == '\'') { /* E'..', B'..', X'..', U&'..'s prefix: the string follows */
                    const char *e = string_end(p, len == 1 && (*name == 'E' || *name == 'e'));
                    p = e ? e : p + strlen(p);
                    zdm_buf_putn(&out, s, (size_t)(p - s));
                    prev = '\'';
                    continue;
                }
            }
            const char *q = p;
            while (isspace((unsigned char)*q))
                q++;
            int call = *q == '(' && !quoted;
            int qualified = prev == '.' || *q == '.';
            int cast = prev == 'C';
            int typed = *q == '\''; /* date '2020-01-01': a type's name, never a column */
            int idx = (!call && !qualified && !cast && !typed) ? zdm_dwsql_in_list(cols, name, len, !quoted) : 0;
            if (idx && !d) {
                (*hits)++;
            } else if (idx) {
                char *qi = d->quote_ident(cols->v[idx - 1]);
                zdm_buf_printf(&out, "%s.%s", prefix, qi);
                free(qi);
            } else {
                zdm_buf_putn(&out, s, (size_t)(p - s));
            }
            zdm_buf_free(&unq);
            prev = 'a';
            continue;
        }
        if (ch == ':' && p[1] == ':') { /* a cast: the name after it is a type's */
            zdm_buf_puts(&out, "::");
            p += 2;
            prev = 'C';
            continue;
        }
        zdm_buf_putn(&out, p, 1);
        if (!isspace(ch))
            prev = (char)ch;
        p++;
    }
    return zdm_buf_take(&out);
}

char *zdm_dwsql_rewrite(const zdm_dialect *d, const char *expr, const zdm_strv *cols, const char *prefix)
{
    return rewrite(d, expr, cols, prefix, NULL);
}

int zdm_dwsql_has_word(const char *expr, const char *const *words)
{
    for (const char *p = expr; p && *p; p++) {
        if (p != expr && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '$'))
            continue;
        size_t n = 0;
        while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '$')
            n++;
        for (int i = 0; n && words[i]; i++)
            if (strlen(words[i]) == n && strncasecmp(words[i], p, n) == 0)
                return 1;
    }
    return 0;
}

int zdm_dwsql_reads(const char *expr, const zdm_strv *cols)
{
    int hits = 0;
    free(rewrite(NULL, expr, cols, "", &hits));
    return hits > 0;
}

/* Words a row-local `where` may hold besides its columns, function names
 * and type names after "::": operators spelt as keywords.  Anything else
 * (SELECT, a table name, a typed literal like date '...', E'...') is not
 * known to read the row alone. */
static const char *const row_words[] = {"and", "or", "not", "is", "null", "true", "false", "in", "like", "ilike",
                                        "similar", "to", "between", "symmetric", "distinct", "from", "case",
                                        "when", "then", "else", "end", "escape", "any", "all", "some", "unknown",
                                        "collate", NULL};

static int in_words(const char *const *words, const char *name, size_t len)
{
    for (int i = 0; words[i]; i++)
        if (strlen(words[i]) == len && strncasecmp(words[i], name, len) == 0)
            return 1;
    return 0;
}

static int row_word(const char *name, size_t len)
{
    return in_words(row_words, name, len);
}

/* Words PostgreSQL reads as keywords where an expression names a column
 * (its reserved, type-or-function and column-name keywords), and the
 * unreserved ones that are parts of longer syntax (AT TIME ZONE, double
 * precision, interval '1' day).  A column so named is reached only
 * quoted; bare, the word is the keyword: "user" is current_user, not
 * NEW."user" (the rewrite made it the row's column, and the trigger wrote
 * another value than the backfill). */
static const char *const keywords[] = {
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "at", "authorization",
    "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character", "check",
    "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create", "cross",
    "current_catalog", "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
    "current_user", "day", "dec", "decimal", "default", "deferrable", "desc", "distinct", "do", "double",
    "else", "end", "except", "exists", "extract", "false", "fetch", "float", "for", "foreign", "freeze",
    "from", "full", "grant", "greatest", "group", "grouping", "having", "hour", "ilike", "in", "initially",
    "inner", "inout", "int", "integer", "intersect", "interval", "into", "is", "isnull", "join", "json",
    "lateral", "leading", "least", "left", "like", "limit", "local", "localtime", "localtimestamp", "minute",
    "month", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null", "nullif",
    "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay", "placing",
    "position", "precision", "primary", "real", "references", "returning", "right", "row", "second",
    "select", "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric",
    "system_user", "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim",
    "true", "union", "unique", "user", "using", "values", "varchar", "variadic", "varying", "verbose",
    "when", "where", "window", "with", "without", "year", "zone", NULL};

/* Columns named name[0..len) as PostgreSQL resolves it: an unquoted name
 * folded to lower case, a quoted one as is.  1 when exactly one column
 * is so named and no other column differs from it in case only (the
 * rewrite matches unquoted names regardless of case). */
static int one_column(const zdm_strv *cols, const char *name, size_t len, int quoted)
{
    int exact = 0, folded = 0;
    for (size_t i = 0; i < cols->n; i++) {
        const char *c = cols->v[i];
        if (strlen(c) != len)
            continue;
        folded += strncasecmp(c, name, len) == 0;
        int same = 1;
        for (size_t k = 0; k < len && same; k++)
            same = quoted ? c[k] == name[k] : c[k] == (char)tolower((unsigned char)name[k]);
        exact += same;
    }
    return exact == 1 && folded == 1;
}

int zdm_dwsql_row_local(const char *expr, const zdm_strv *cols)
{
    const char *p = expr;
    char prev = 0; /* last non-space character */
    while (*p) {
        unsigned char ch = (unsigned char)*p;
        if (isspace(ch)) {
            p++;
            continue;
        }
        if (ch == '\'') { /* a plain string literal */
            if (!(p = string_end(p, 0)))
                return 0;
            prev = '\'';
            continue;
        }
        if (isdigit(ch)) {
            p = number_end(p);
            prev = '0';
            continue;
        }
        if (ch == '"' || ident_start(ch)) {
            const char *name = p;
            size_t len;
            int quoted = ch == '"';
            zdm_buf unq = {0};
            if (quoted) {
                p = quoted_end(p, &unq);
                name = unq.data ? unq.data : "";
                len = unq.len;
                if (!p) {
                    zdm_buf_free(&unq);
                    return 0;
                }
            } else {
                while (ident_start((unsigned char)*p) || isdigit((unsigned char)*p))
                    p++;
                len = (size_t)(p - name);
                if (*p == '$' || *p == '\'')
                    return 0; /* E'..', a typed literal, name$1 */
                if (*p == '&' && (p[1] == '\'' || p[1] == '"'))
                    return 0; /* U&'..', U&"..": not a column u */
            }
            const char *q = p;
            while (isspace((unsigned char)*q))
                q++;
            /* a function's or a type's name: the rewrite leaves it, as is */
            int call = *q == '(' && !quoted, cast = prev == ':';
            int col = zdm_dwsql_in_list(cols, name, len, !quoted) > 0;
            int word = !quoted && row_word(name, len);
            int ok = !(prev == '.' || *q == '.'); /* qualified: another table's, or the row's under an alias */
            if (ok && !call && !cast) {
                if (col)
                    /* a column named as a type before its literal (date
                     * '2020-01-01'), as an operator word, or one of
                     * several alike */
                    ok = *q != '\'' && (quoted || (!word && !in_words(keywords, name, len))) &&
                         one_column(cols, name, len, quoted);
                else
                    ok = word;
            }
            zdm_buf_free(&unq);
            if (!ok)
                return 0;
            prev = 'a';
            continue;
        }
        /* operators and punctuation; no statement ends, comments,
         * parameters, and ':' only as the cast "::" (the rewrite reads
         * any name after ':' as a type: a slice's a[1:n] would keep n) */
        if (ch == ';' || ch == '$' || ch == '\\' || (ch == '-' && p[1] == '-') || (ch == '/' && p[1] == '*'))
            return 0;
        if (ch == ':') {
            if (p[1] != ':')
                return 0;
            p++;
        }
        prev = (char)ch;
        p++;
    }
    return 1;
}

/* "NEW.a IS NULL AND NEW.b IS NULL" style conjunctions over assignments. */
void zdm_dwsql_each_col(zdm_buf *b, const zdm_dialect *d, const zdm_assign *a, size_t n, const char *fmt,
                        const char *joiner)
{
    for (size_t i = 0; i < n; i++) {
        char *q = d->quote_ident(a[i].column);
        if (i)
            zdm_buf_puts(b, joiner);
        zdm_buf_printf(b, fmt, q, q);
        free(q);
    }
}

/* "NEW.t1 := (e1); NEW.t2 := (e2);" or "t1 = (e1), t2 = (e2)". */
void zdm_dwsql_assignments(zdm_buf *b, const zdm_dialect *d, const zdm_assign *a, size_t n,
                           const zdm_strv *cols, int plpgsql)
{
    for (size_t i = 0; i < n; i++) {
        char *q = d->quote_ident(a[i].column);
        if (plpgsql) {
            char *e = zdm_dwsql_rewrite(d, a[i].expr, cols, "NEW");
            zdm_buf_printf(b, "    NEW.%s := (%s);\n", q, e);
            free(e);
        } else {
            zdm_buf_printf(b, "%s%s = (%s)", i ? ", " : "", q, a[i].expr);
        }
        free(q);
    }
}

int zdm_dwsql_assign_row_local(const zdm_dialect *d, const zdm_assign *a, size_t n, const zdm_strv *cols,
                               int sequential)
{
    zdm_strv earlier = {0};
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        /* SQLite quotes names in [..] and `..` too, which the rewrite
         * does not know: "[src]" became "[NEW."src"]", a name that does
         * not exist, in the UPDATE trigger's WHEN (every application
         * UPDATE failed).  PostgreSQL has no such quotes. */
        ok = zdm_dwsql_row_local(a[i].expr, cols) &&
             (d->pg_grammar || (!strchr(a[i].expr, '[') && !strchr(a[i].expr, '`')));
        if (ok && sequential && earlier.n)
            ok = !zdm_dwsql_reads(a[i].expr, &earlier);
        zdm_strv_push(&earlier, a[i].column);
    }
    zdm_strv_free(&earlier);
    return ok;
}

void zdm_dwsql_inconsistent(zdm_buf *b, const zdm_dialect *d, const zdm_assign *a, size_t n,
                            const zdm_strv *cols, const char *tbl, const zdm_strv *key)
{
    int local = zdm_dwsql_assign_row_local(d, a, n, cols, 0);
    if (local) {
        zdm_buf_puts(b, "NOT (");
    } else {
        zdm_buf_printf(b, "NOT EXISTS (SELECT 1 FROM %s WHERE ", tbl);
        zdm_dwsql_key_match(b, d, key);
        zdm_buf_puts(b, " AND ");
    }
    for (size_t i = 0; i < n; i++) {
        char *q = d->quote_ident(a[i].column);
        char *e = local ? zdm_dwsql_rewrite(d, a[i].expr, cols, "NEW") : zdm_xstrdup(a[i].expr);
        zdm_buf_printf(b, "%s%s%s IS (%s)", i ? " AND " : "", local ? "NEW." : "", q, e);
        free(e);
        free(q);
    }
    zdm_buf_puts(b, ")");
}

void zdm_dwsql_key_match(zdm_buf *b, const zdm_dialect *d, const zdm_strv *key)
{
    for (size_t i = 0; i < key->n; i++) {
        char *q = d->quote_ident(key->v[i]);
        zdm_buf_printf(b, "%s%s = NEW.%s", i ? " AND " : "", q, q);
        free(q);
    }
}

char *zdm_dwsql_literal(const char *s)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, "'");
    for (; *s; s++)
        zdm_buf_putn(&b, *s == '\'' ? "''" : s, *s == '\'' ? 2 : 1);
    zdm_buf_puts(&b, "'");
    return zdm_buf_take(&b);
}

/* " OF a, b" for the given column lists, duplicates skipped. */
void zdm_dwsql_of_columns(zdm_buf *c, const zdm_dialect *d, const zdm_strv *names, const zdm_assign *a, size_t na)
{
    zdm_strv all = {0};
    for (size_t i = 0; names && i < names->n; i++)
        zdm_strv_push(&all, names->v[i]);
    for (size_t i = 0; i < na; i++)
        zdm_strv_push(&all, a[i].column);
    zdm_buf_puts(c, " OF ");
    int first = 1;
    for (size_t i = 0; i < all.n; i++) {
        if (zdm_dwsql_in_list(&all, all.v[i], strlen(all.v[i]), 1) != (int)i + 1)
            continue; /* duplicate */
        char *q = d->quote_ident(all.v[i]);
        zdm_buf_printf(c, "%s%s", first ? "" : ", ", q);
        first = 0;
        free(q);
    }
    zdm_strv_free(&all);
}
