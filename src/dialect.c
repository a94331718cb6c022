/*
 * dialect.c -- which dialect a connection speaks (see dialect.h).
 *
 * Owns: the mapping from a driver to its dialect table.  The tables
 * themselves live in dialect_pg.c and dialect_sqlite.c.
 */
#include "dialect.h"

#include <stdlib.h>
#include <string.h>

static const zdm_dialect *const dialects[] = {&zdm_dialect_pg, &zdm_dialect_sqlite};

const zdm_dialect *zdm_db_dialect(const zdm_db *db)
{
    zdm_db_kind kind = zdm_db_kind_of(db);
    for (size_t i = 0; i < sizeof dialects / sizeof dialects[0]; i++)
        if (dialects[i]->kind == kind)
            return dialects[i];
    return dialects[0]; /* unreachable: every driver has its table above */
}

char *zdm_dialect_quote_std(const char *name)
{
    zdm_buf b = {0};
    zdm_buf_putn(&b, "\"", 1);
    for (const char *p = name; *p; p++)
        zdm_buf_putn(&b, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
    zdm_buf_putn(&b, "\"", 1);
    return zdm_buf_take(&b);
}

char *zdm_dialect_quote_path(const zdm_dialect *d, const char *dotted)
{
    zdm_buf b = {0};
    for (const char *p = dotted;;) {
        const char *dot = strchr(p, '.');
        char *part = zdm_xstrndup(p, dot ? (size_t)(dot - p) : strlen(p));
        char *q = d->quote_ident(part);
        zdm_buf_puts(&b, q);
        free(q);
        free(part);
        if (!dot)
            break;
        zdm_buf_putn(&b, ".", 1);
        p = dot + 1;
    }
    return zdm_buf_take(&b);
}

void zdm_dialect_join_sorted(const zdm_strv *l, zdm_buf *out)
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

void zdm_table_facts_free(zdm_table_facts *f)
{
    for (size_t i = 0; i < f->ncols; i++) {
        free(f->cols[i].name);
        free(f->cols[i].def);
    }
    free(f->cols);
    free(f->after_ours);
    zdm_strv_free(&f->upd_triggers);
    zdm_strv_free(&f->upd_triggers_of);
    *f = (zdm_table_facts){0};
}
