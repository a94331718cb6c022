/*
 * sqlite_deps.c -- DROP COLUMN blockers on SQLite (see sqlite_deps.h).
 *
 * Why: SQLite's DROP COLUMN fails ("error in index ... after drop column")
 * when an index, a view, a trigger, a CHECK or a partial index names the
 * column, and a contract of rename_column (or a rollback with an index on
 * the new column) that met this half-way would already have removed the
 * dual-write triggers.  So the gate lists every such dependency before
 * the phase starts and refuses (exit 3), and plain indexes are dropped
 * with their column in the step's own transaction.
 *
 * How a dependency is found: the schema (no rows) is copied into an
 * in-memory database; for each object, SQLite is asked to drop the column
 * with only the tables and that object present, inside a savepoint that
 * is rolled back.  Whatever SQLite refuses there, it would refuse for
 * real.  Foreign keys of other tables pointing at the column are not
 * checked by DROP COLUMN (they break later, at the next write); they come
 * from PRAGMA foreign_key_list.
 */
#include "sqlite_deps.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "state.h"
#include "toml.h"
#include "util.h"

/* ------------------------------------------------ finding DROP COLUMN */

typedef struct tok {
    char *text; /* unquoted identifier or keyword; NULL for punctuation */
    char punct; /* ';', '.', ... when text is NULL */
} tok;

static void toks_free(tok *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].text);
    free(t);
}

/* A rough SQL tokenizer: words and quoted names ("x", [x], `x`) become
 * text; strings, numbers and comments are skipped; other characters are
 * punctuation.  Enough to see ALTER TABLE name DROP [COLUMN] name. */
static tok *tokenize(const char *s, size_t *n)
{
    size_t cap = 16;
    tok *v = zdm_xcalloc(cap, sizeof *v);
    *n = 0;
    while (*s) {
        if (*n + 1 >= cap) {
            cap *= 2;
            v = zdm_xrealloc(v, cap * sizeof *v);
        }
        unsigned char c = (unsigned char)*s;
        if (isspace(c)) {
            s++;
        } else if (c == '-' && s[1] == '-') {
            while (*s && *s != '\n')
                s++;
        } else if (c == '/' && s[1] == '*') {
            const char *e = strstr(s + 2, "*/");
            s = e ? e + 2 : s + strlen(s);
        } else if (c == '\'') {
            for (s++; *s; s++)
                if (*s == '\'' && *++s != '\'')
                    break;
        } else if (c == '"' || c == '`' || c == '[') {
            char close = c == '[' ? ']' : (char)c;
            zdm_buf b = {0};
            for (s++; *s; s++) {
                if (*s == close) {
                    if (close != ']' && s[1] == close) {
                        zdm_buf_putn(&b, s, 1);
                        s++;
                        continue;
                    }
                    s++;
                    break;
                }
                zdm_buf_putn(&b, s, 1);
            }
            v[(*n)++] = (tok){zdm_buf_take(&b), 0};
        } else if (isalnum(c) || c == '_' || c >= 0x80) {
            const char *st = s;
            while (*s && (isalnum((unsigned char)*s) || *s == '_' || *s == '$' || (unsigned char)*s >= 0x80))
                s++;
            if (isdigit((unsigned char)*st))
                continue; /* a number */
            v[(*n)++] = (tok){zdm_xstrndup(st, (size_t)(s - st)), 0};
        } else {
            v[(*n)++] = (tok){NULL, (char)c};
            s++;
        }
    }
    return v;
}

static int kw(const tok *t, const char *word) { return t->text && strcasecmp(t->text, word) == 0; }

void zdm_sqdeps_drops(const char *sql, zdm_strv *out)
{
    size_t n = 0;
    tok *t = tokenize(sql ? sql : "", &n);
    for (size_t i = 0; i + 4 < n; i++) {
        if (!kw(&t[i], "ALTER") || !kw(&t[i + 1], "TABLE") || !t[i + 2].text)
            continue;
        size_t j = i + 2;
        const char *table = t[j].text;
        if (j + 2 < n && !t[j + 1].text && t[j + 1].punct == '.' && t[j + 2].text) {
            table = t[j + 2].text; /* schema.table: zdm works on main */
            j += 2;
        }
        j++;
        if (j >= n || !kw(&t[j], "DROP"))
            continue;
        j++;
        if (j < n && kw(&t[j], "COLUMN"))
            j++;
        if (j >= n || !t[j].text)
            continue;
        zdm_strv_push(out, table);
        zdm_strv_push(out, t[j].text);
    }
    toks_free(t, n);
}

/* ------------------------------------------------ the schema copy */

typedef struct obj {
    char *type, *name, *tbl, *sql;
} obj;

typedef struct schema {
    obj *v;
    size_t n;
} schema;

static void schema_free(schema *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].type);
        free(s->v[i].name);
        free(s->v[i].tbl);
        free(s->v[i].sql);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static const char *schema_sql =
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type <> 'table', rowid";

/* Reads the schema from the real database (through the driver). */
static int schema_read_db(zdm_db *db, schema *s, zdm_err *err)
{
    zdm_rows *rows = NULL;
    int rc = zdm_db_query(db, schema_sql, 0, NULL, &rows, err);
    if (rc != 0)
        return rc;
    int n = zdm_rows_count(rows);
    s->v = zdm_xcalloc((size_t)n + 1, sizeof *s->v);
    for (int i = 0; i < n; i++) {
        obj *o = &s->v[s->n++];
        o->type = zdm_xstrdup(zdm_rows_get(rows, i, 0));
        o->name = zdm_xstrdup(zdm_rows_get(rows, i, 1));
        o->tbl = zdm_xstrdup(zdm_rows_get(rows, i, 2));
        o->sql = zdm_xstrdup(zdm_rows_get(rows, i, 3));
    }
    zdm_rows_free(rows);
    return 0;
}

/* Reads the schema from the in-memory copy. */
static void schema_read_mem(sqlite3 *m, schema *s)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 16;
    s->v = zdm_xcalloc(cap, sizeof *s->v);
    s->n = 0;
    if (sqlite3_prepare_v2(m, schema_sql, -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (s->n == cap) {
            cap *= 2;
            s->v = zdm_xrealloc(s->v, cap * sizeof *s->v);
        }
        obj *o = &s->v[s->n++];
        o->type = zdm_xstrdup((const char *)sqlite3_column_text(st, 0));
        o->name = zdm_xstrdup((const char *)sqlite3_column_text(st, 1));
        o->tbl = zdm_xstrdup((const char *)sqlite3_column_text(st, 2));
        o->sql = zdm_xstrdup((const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
}

/* An in-memory database with the objects of s (tables only when
 * tables_only).  An object SQLite cannot create here (a virtual table of
 * a module this process lacks) is left out: the real DROP COLUMN still
 * runs in a transaction and fails safely. */
static sqlite3 *mem_open(const schema *s, int tables_only)
{
    sqlite3 *m = NULL;
    if (sqlite3_open_v2(":memory:", &m, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        sqlite3_close(m);
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++)
        if (!tables_only || strcmp(s->v[i].type, "table") == 0)
            (void)sqlite3_exec(m, s->v[i].sql, NULL, NULL, NULL);
    return m;
}

static char *drop_sql(const char *table, const char *col)
{
    char *q = sqlite3_mprintf("ALTER TABLE \"%w\" DROP COLUMN \"%w\"", table, col);
    char *r = zdm_xstrdup(q);
    sqlite3_free(q);
    return r;
}

/* Would DROP COLUMN fail on m after `extra` (NULL: nothing) is created?
 * Leaves m as it was.  *why: SQLite's message when it would, malloc'd. */
static int blocks(sqlite3 *m, const char *extra, const char *table, const char *col, char **why)
{
    *why = NULL;
    if (sqlite3_exec(m, "SAVEPOINT zdm_probe", NULL, NULL, NULL) != SQLITE_OK)
        return 0;
    int blocked = 0;
    if (!extra || sqlite3_exec(m, extra, NULL, NULL, NULL) == SQLITE_OK) {
        char *d = drop_sql(table, col);
        char *msg = NULL;
        if (sqlite3_exec(m, d, NULL, NULL, &msg) != SQLITE_OK) {
            blocked = 1;
            *why = zdm_xstrdup(msg ? msg : "refused");
        }
        sqlite3_free(msg);
        free(d);
    }
    (void)sqlite3_exec(m, "ROLLBACK TO zdm_probe; RELEASE zdm_probe", NULL, NULL, NULL);
    return blocked;
}

/* Does `extra` name table.col in double quotes only SQLite's misfeature
 * saves?  Once the column is gone, SQLite reads "col" in a view or
 * trigger as the string 'col' and lets DROP COLUMN through: the view
 * silently returns that string, the trigger compares with it.  With
 * double-quoted strings off (SQLITE_DBCONFIG_DQS_DML, which its check
 * after DROP COLUMN follows) the drop fails instead.  An object that uses
 * double-quoted strings of its own fails any drop: dropping a column made
 * for the probe tells the two apart.  m holds tables only.  Leaves m as
 * it was. */
static int blocks_dqs(sqlite3 *m, const char *extra, const char *table, const char *col, char **why)
{
    *why = NULL;
    if (sqlite3_exec(m, "SAVEPOINT zdm_dqs", NULL, NULL, NULL) != SQLITE_OK)
        return 0;
    int blocked = 0;
    if (sqlite3_exec(m, extra, NULL, NULL, NULL) == SQLITE_OK) {
        (void)sqlite3_db_config(m, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
        char *add = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN zdm_dqs_probe", table);
        char *dp = drop_sql(table, "zdm_dqs_probe");
        int own_dqs = !add || sqlite3_exec(m, add, NULL, NULL, NULL) != SQLITE_OK ||
                      sqlite3_exec(m, dp, NULL, NULL, NULL) != SQLITE_OK;
        if (!own_dqs) {
            char *d = drop_sql(table, col), *msg = NULL;
            if (sqlite3_exec(m, d, NULL, NULL, &msg) != SQLITE_OK) {
                blocked = 1;
                *why = zdm_xstrdup(msg ? msg : "refused");
            }
            sqlite3_free(msg);
            free(d);
        }
        sqlite3_free(add);
        free(dp);
        (void)sqlite3_db_config(m, SQLITE_DBCONFIG_DQS_DML, 1, (int *)NULL);
    }
    (void)sqlite3_exec(m, "ROLLBACK TO zdm_dqs; RELEASE zdm_dqs", NULL, NULL, NULL);
    return blocked;
}

/* An FTS4/FTS5 table whose external content is table.col: SQLite drops
 * the column without a word, and the full-text index can then never be
 * rebuilt or read back ("no such column").  Asked of the copy: a rebuild
 * that works before the drop and fails after it.  Leaves m as it was. */
static int has_ci(const char *h, const char *n)
{
    size_t nl = strlen(n);
    for (; *h; h++)
        if (strncasecmp(h, n, nl) == 0)
            return 1;
    return 0;
}

static int fts_breaks(sqlite3 *m, const obj *o, const char *table, const char *col, char **why)
{
    *why = NULL;
    if (strcmp(o->type, "table") != 0 || !o->sql || strncasecmp(o->sql, "CREATE VIRTUAL TABLE", 20) != 0 ||
        (!has_ci(o->sql, "fts5") && !has_ci(o->sql, "fts4")) || !has_ci(o->sql, "content"))
        return 0;
    char *rebuild = sqlite3_mprintf("INSERT INTO \"%w\"(\"%w\") VALUES ('rebuild')", o->name, o->name);
    if (!rebuild || sqlite3_exec(m, "SAVEPOINT zdm_fts", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_free(rebuild);
        return 0;
    }
    int broken = 0;
    char *d = drop_sql(table, col), *msg = NULL;
    if (sqlite3_exec(m, rebuild, NULL, NULL, NULL) == SQLITE_OK && sqlite3_exec(m, d, NULL, NULL, NULL) == SQLITE_OK &&
        sqlite3_exec(m, rebuild, NULL, NULL, &msg) != SQLITE_OK) {
        broken = 1;
        *why = zdm_xstrdup(msg ? msg : "rebuild fails");
    }
    sqlite3_free(msg);
    free(d);
    sqlite3_free(rebuild);
    (void)sqlite3_exec(m, "ROLLBACK TO zdm_fts; RELEASE zdm_fts", NULL, NULL, NULL);
    return broken;
}

/* A plain index: made by CREATE INDEX, not unique, not partial, every
 * key a column (no expression), one of them `col`. */
static int plain_index_on(sqlite3 *m, const char *index, const char *table, const char *col)
{
    int plain = 0;
    sqlite3_stmt *st = NULL;
    char *q = sqlite3_mprintf("SELECT \"unique\", origin, partial FROM pragma_index_list(%Q) WHERE name = %Q",
                              table, index);
    if (q && sqlite3_prepare_v2(m, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        plain = sqlite3_column_int(st, 0) == 0 &&
                strcmp((const char *)sqlite3_column_text(st, 1), "c") == 0 && sqlite3_column_int(st, 2) == 0;
    sqlite3_finalize(st);
    sqlite3_free(q);
    if (!plain)
        return 0;
    int has_col = 0, has_expr = 0;
    q = sqlite3_mprintf("SELECT cid, name FROM pragma_index_xinfo(%Q) WHERE key", index);
    st = NULL;
    if (q && sqlite3_prepare_v2(m, q, -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 1);
            if (sqlite3_column_int(st, 0) == -2)
                has_expr = 1;
            else if (name && strcasecmp(name, col) == 0)
                has_col = 1;
        }
    }
    sqlite3_finalize(st);
    sqlite3_free(q);
    return has_col && !has_expr;
}

/* The new name a rename_column of p gives table.col, else NULL. */
static const char *renamed_to(const zdm_plan *p, const char *table, const char *col)
{
    for (int pass = 0; p && pass < 2; pass++) {
        const zdm_step *v = pass ? p->contract : p->expand;
        size_t n = pass ? p->ncontract : p->nexpand;
        for (size_t i = 0; i < n; i++) {
            const char *op = v[i].op ? v[i].op : v[i].from_op;
            if (!op || strcmp(op, "rename_column") != 0 || !v[i].fields)
                continue;
            const toml_value *t = toml_get(v[i].fields, "table"), *c = toml_get(v[i].fields, "column"),
                             *to = toml_get(v[i].fields, "to");
            if (t && c && to && t->type == TOML_STRING && c->type == TOML_STRING && to->type == TOML_STRING &&
                strcasecmp(t->u.str.ptr, table) == 0 && strcasecmp(c->u.str.ptr, col) == 0)
                return to->u.str.ptr;
        }
    }
    return NULL;
}

typedef struct finding {
    zdm_buf list; /* "\n  - ..." lines */
    int count;
    const zdm_plan *plan;
    int warn_plain; /* say which plain indexes go with a column (expand) */
} finding;

static void note(finding *f, const char *table, const char *col, const char *fmt, const char *a, const char *b)
{
    char what[600];
    snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
    zdm_buf_printf(&f->list, "\n  - %s.%s: %s", table, col, what);
    f->count++;
}

static int dw_trigger(const char *name, const char *dw_prefix)
{
    return dw_prefix && strncmp(name, dw_prefix, strlen(dw_prefix)) == 0;
}

/* Does sql name `col` as an identifier (not in a string)? */
static int mentions(const char *sql, const char *col)
{
    size_t n = 0;
    tok *t = tokenize(sql, &n);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = t[i].text && strcasecmp(t[i].text, col) == 0;
    toks_free(t, n);
    return found;
}

/* Does a trigger's "UPDATE OF a, b ON" list name col?  SQLite lets DROP
 * COLUMN through such a trigger, which then never fires for it again. */
static int update_of_names(const char *sql, const char *col)
{
    size_t n = 0;
    tok *t = tokenize(sql, &n);
    int found = 0;
    for (size_t i = 0; i + 2 < n && !found; i++) {
        if (!kw(&t[i], "UPDATE") || !kw(&t[i + 1], "OF"))
            continue;
        for (size_t j = i + 2; j < n && !kw(&t[j], "ON") && !found; j++)
            found = t[j].text && strcasecmp(t[j].text, col) == 0;
    }
    toks_free(t, n);
    return found;
}

/* An in-memory database with the objects of s that `keep` allows. */
static sqlite3 *mem_open_some(const schema *s, const char *keep)
{
    sqlite3 *m = NULL;
    if (sqlite3_open_v2(":memory:", &m, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        sqlite3_close(m);
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++)
        if (keep[i])
            (void)sqlite3_exec(m, s->v[i].sql, NULL, NULL, NULL);
    return m;
}

/* Lists what blocks dropping table.col in the schema of m into f, and
 * removes from m what the real run removes before the DROP COLUMN (the
 * plan's dual-write triggers, dw_prefix; plain indexes on the column) and
 * the blockers, so later steps are checked against the schema they meet.
 *
 * SQLite checks the whole schema at DROP COLUMN, so an object is tried
 * with every object that does not name the column around it (a view may
 * read another view), and alone among those that do. */
static void list_blockers(sqlite3 *m, const char *table, const char *col, const char *dw_prefix, finding *f)
{
    schema s = {0};
    schema_read_mem(m, &s);
    char *keep = zdm_xcalloc(s.n + 1, 1), *cand = zdm_xcalloc(s.n + 1, 1), *gone = zdm_xcalloc(s.n + 1, 1);
    for (size_t i = 0; i < s.n; i++) {
        const obj *o = &s.v[i];
        if (strcmp(o->type, "table") == 0)
            keep[i] = 1;
        else if (strcmp(o->type, "trigger") == 0 && dw_trigger(o->name, dw_prefix))
            gone[i] = 1; /* zdm drops it first */
        else if (strcmp(o->type, "index") == 0 && strcasecmp(o->tbl, table) == 0 &&
                 plain_index_on(m, o->name, table, col)) {
            gone[i] = 1; /* goes with the column (zdm_sqdeps_before_drop) */
            /* Not carried over to the new column (yet): said at expand,
             * while the operator can still add it with add_index. */
            const char *to = renamed_to(f->plan, table, col);
            if (f->warn_plain && to)
                zdm_log(ZDM_LOG_INFO, f->plan->id, NULL,
                        "index %s on %s.%s moves to %s at contract: rebuilt on it in contract's DROP COLUMN "
                        "transaction, which holds SQLite's write lock while it rewrites the table anyway",
                        o->name, table, col, to);
            else if (f->warn_plain)
                zdm_log(ZDM_LOG_WARN, f->plan->id, NULL,
                        "index %s on %s.%s goes with the column at contract and is not carried over to a new "
                        "column: if queries need it there, add it with add_index (a later plan)",
                        o->name, table, col);
        } else if (mentions(o->sql, col))
            cand[i] = 1;
        else
            keep[i] = 1;
    }
    char *why = NULL;
    char *tables_only = zdm_xcalloc(s.n + 1, 1);
    for (size_t i = 0; i < s.n; i++)
        tables_only[i] = strcmp(s.v[i].type, "table") == 0;
    sqlite3 *t = mem_open_some(&s, tables_only);
    sqlite3 *base = mem_open_some(&s, keep);
    if (t && blocks(t, NULL, table, col, &why)) {
        /* PRIMARY KEY, UNIQUE, CHECK, FOREIGN KEY, generated columns */
        note(f, table, col, "the table's own definition uses it (%s); SQLite can drop it only by rebuilding the "
                            "table%s", why, NULL);
    } else if (base && blocks(base, NULL, table, col, &why)) {
        note(f, table, col, "SQLite checks the whole schema when it drops a column, and it fails already "
                            "(%s)%s", why, NULL);
    } else {
        for (size_t i = 0; base && i < s.n; i++) {
            if (!cand[i])
                continue;
            free(why);
            why = NULL;
            if (!blocks(base, s.v[i].sql, table, col, &why)) {
                free(why);
                why = NULL;
                if (t && strcmp(s.v[i].type, "index") != 0 && blocks_dqs(t, s.v[i].sql, table, col, &why)) {
                    note(f, table, col, strcmp(s.v[i].type, "view") == 0
                                            ? "view %s: names it in double quotes; once it is gone SQLite would "
                                              "read that as a string and the view would silently return it (%s)"
                                            : "trigger %s: names it in double quotes; once it is gone SQLite "
                                              "would read that as a string and the trigger would silently use "
                                              "it (%s)",
                         s.v[i].name, why);
                    gone[i] = 1;
                    continue;
                }
                if (strcmp(s.v[i].type, "trigger") == 0 && strcasecmp(s.v[i].tbl, table) == 0 &&
                    update_of_names(s.v[i].sql, col)) {
                    note(f, table, col, "trigger %s: fires on UPDATE OF it, and would silently never fire for it "
                                        "again%s", s.v[i].name, NULL);
                    gone[i] = 1;
                }
                continue;
            }
            const char *kind = strcmp(s.v[i].type, "index") == 0
                                   ? "index %s (unique, partial or on an expression): %s"
                               : strcmp(s.v[i].type, "view") == 0 ? "view %s: %s"
                                                                  : "trigger %s: %s";
            note(f, table, col, kind, s.v[i].name, why);
            gone[i] = 1;
        }
    }
    for (size_t i = 0; t && i < s.n; i++) {
        free(why);
        why = NULL;
        if (fts_breaks(t, &s.v[i], table, col, &why))
            note(f, table, col, "full-text table %s: its external content; SQLite would drop the column and the "
                                "index could no longer be rebuilt or read (%s)", s.v[i].name, why);
    }
    free(why);
    sqlite3_close(t);
    sqlite3_close(base);
    /* Foreign keys of other tables that reference the column. */
    for (size_t i = 0; i < s.n; i++) {
        if (strcmp(s.v[i].type, "table") != 0)
            continue;
        sqlite3_stmt *st = NULL;
        char *q = sqlite3_mprintf("SELECT 1 FROM pragma_foreign_key_list(%Q) WHERE \"table\" = %Q COLLATE NOCASE "
                                  "AND \"to\" = %Q COLLATE NOCASE",
                                  s.v[i].name, table, col);
        if (q && sqlite3_prepare_v2(m, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            note(f, table, col, "a FOREIGN KEY of table %s references it%s", s.v[i].name, NULL);
        sqlite3_finalize(st);
        sqlite3_free(q);
    }
    for (size_t i = 0; i < s.n; i++) {
        if (!gone[i])
            continue;
        char *q = sqlite3_mprintf("DROP %s IF EXISTS \"%w\"", s.v[i].type, s.v[i].name);
        (void)sqlite3_exec(m, q, NULL, NULL, NULL);
        sqlite3_free(q);
    }
    free(keep);
    free(cand);
    free(gone);
    free(tables_only);
    schema_free(&s);
}

static void dw_prefix_of(const zdm_plan *p, char *out, size_t size)
{
    /* The trigger names of dualwrite.c (zdm_dw_<plan>_...). */
    if (strlen(p->id) <= 40) {
        snprintf(out, size, "zdm_dw_%s_", p->id);
        return;
    }
    char h[65];
    zdm_sha256_hex(p->id, strlen(p->id), h);
    snprintf(out, size, "zdm_dw_%.32s_%.8s_", p->id, h);
}

/* The SQL the gate replays, in order. */
static int gather(zdm_db *db, const zdm_plan *p, zdm_sqdeps_what what, int no_state, zdm_strv *sqls, zdm_err *err)
{
    int kind = zdm_db_kind_of(db);
    for (int pass = 0; pass < 2; pass++) {
        int contract = what == ZDM_SQDEPS_CONTRACT || what == ZDM_SQDEPS_ROLLBACK_CONTRACT ||
                       (what == ZDM_SQDEPS_EXPAND && pass == 1);
        if (pass == 1 && what != ZDM_SQDEPS_EXPAND)
            break;
        const zdm_step *steps = contract ? p->contract : p->expand;
        size_t n = contract ? p->ncontract : p->nexpand;
        int downs = what == ZDM_SQDEPS_ROLLBACK_EXPAND || what == ZDM_SQDEPS_ROLLBACK_CONTRACT;
        for (size_t k = 0; k < n; k++) {
            const zdm_step *s = &steps[downs ? n - 1 - k : k];
            char status[16] = "";
            /* The second pass (contract after expand) has not started. */
            if (!no_state && !(what == ZDM_SQDEPS_EXPAND && pass == 1)) {
                int rc = zdm_state_step_status(db, p->id, contract ? "contract" : "expand", s->index, status, err);
                if (rc != 0)
                    return rc;
            }
            int applied = strcmp(status, "done") == 0 || strcmp(status, "running") == 0;
            if (downs ? !applied : strcmp(status, "done") == 0)
                continue;
            const char *sql = downs ? zdm_step_down(s, kind) : zdm_step_sql(s, kind);
            if (sql)
                zdm_strv_push(sqls, sql);
        }
    }
    return 0;
}

int zdm_sqdeps_gate(zdm_db *db, const zdm_plan *p, zdm_sqdeps_what what, int no_state, zdm_err *err)
{
    if (zdm_db_kind_of(db) != ZDM_DB_SQLITE)
        return 0;
    zdm_strv sqls = {0};
    int rc = gather(db, p, what, no_state, &sqls, err);
    int any_drop = 0;
    for (size_t i = 0; rc == 0 && i < sqls.n && !any_drop; i++) {
        zdm_strv d = {0};
        zdm_sqdeps_drops(sqls.v[i], &d);
        any_drop = d.n > 0;
        zdm_strv_free(&d);
    }
    if (rc != 0 || !any_drop) {
        zdm_strv_free(&sqls);
        return rc;
    }
    schema real = {0};
    rc = schema_read_db(db, &real, err);
    if (rc != 0) {
        zdm_strv_free(&sqls);
        return rc;
    }
    sqlite3 *m = mem_open(&real, 0);
    schema_free(&real);
    if (!m) {
        zdm_strv_free(&sqls);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: cannot open an in-memory database to check the schema");
    }
    char dw[128] = "";
    if (p->backfill && p->backfill->dual_write)
        dw_prefix_of(p, dw, sizeof dw);
    finding f = {{0}, 0, p, what == ZDM_SQDEPS_EXPAND};
    for (size_t i = 0; i < sqls.n; i++) {
        zdm_strv d = {0};
        zdm_sqdeps_drops(sqls.v[i], &d);
        for (size_t j = 0; j + 1 < d.n; j += 2) {
            list_blockers(m, d.v[j], d.v[j + 1], dw[0] ? dw : NULL, &f);
        }
        zdm_strv_free(&d);
        /* Replay the step so the next one sees its schema.  A step that
         * fails on an empty copy (it reads data, or something above) ends
         * the replay: what follows is not checked here, and the real step
         * still runs in its transaction. */
        char *msg = NULL;
        if (sqlite3_exec(m, sqls.v[i], NULL, NULL, &msg) != SQLITE_OK) {
            zdm_log(ZDM_LOG_DEBUG, p->id, NULL, "schema check stopped at a step that fails on an empty copy: %s",
                    msg ? msg : "?");
            sqlite3_free(msg);
            break;
        }
    }
    sqlite3_close(m);
    zdm_strv_free(&sqls);
    if (f.count == 0) {
        zdm_buf_free(&f.list);
        return 0;
    }
    const char *action = what == ZDM_SQDEPS_EXPAND ? "expand (its contract would fail half-way)"
                         : what == ZDM_SQDEPS_CONTRACT ? "contract"
                                                       : "rollback";
    zdm_err_set(err, ZDM_EXIT_REFUSED, "%s of %s refused: on SQLite, DROP COLUMN would fail or break %s:%s",
                action, p->id, f.count == 1 ? "this" : "these", f.list.data ? f.list.data : "");
    if (what == ZDM_SQDEPS_ROLLBACK_EXPAND || what == ZDM_SQDEPS_ROLLBACK_CONTRACT)
        zdm_err_detail(err, "drop these first (they were made for the column rollback removes), then run "
                            "\"zdm rollback %s\" again; plain indexes go with the column by themselves; "
                            "nothing was changed", p->id);
    else
        zdm_err_detail(err, "drop each of these in an earlier plan (drop_index, DROP VIEW, DROP TRIGGER) and "
                            "create them for the new column in a later one; what the table's own definition "
                            "holds needs a table rebuild (a plan of its own); plain indexes go with the column "
                            "by themselves; nothing was changed");
    zdm_buf_free(&f.list);
    return ZDM_EXIT_REFUSED;
}

struct zdm_sqdeps_schema {
    schema s;
};

int zdm_sqdeps_schema_read(zdm_db *db, zdm_sqdeps_schema **snap, zdm_err *err)
{
    *snap = NULL;
    if (zdm_db_kind_of(db) != ZDM_DB_SQLITE)
        return 0;
    zdm_sqdeps_schema *r = zdm_xcalloc(1, sizeof *r);
    int rc = schema_read_db(db, &r->s, err);
    if (rc != 0) {
        free(r);
        return rc;
    }
    *snap = r;
    return 0;
}

void zdm_sqdeps_schema_free(zdm_sqdeps_schema *snap)
{
    if (!snap)
        return;
    schema_free(&snap->s);
    free(snap);
}

void zdm_sqdeps_try_on_schema(const zdm_sqdeps_schema *snap, const char *const *sqls, size_t n, int *tried,
                              long *failed, zdm_err *err)
{
    *tried = 0;
    *failed = -1;
    if (!snap)
        return;
    sqlite3 *m = mem_open(&snap->s, 0);
    /* The copy must hold every object of the real schema, or a statement
     * could fail (or pass) here for want of one: a virtual table of a
     * module this process lacks, say.  Then nothing is tried. */
    schema copy = {0};
    if (m)
        schema_read_mem(m, &copy);
    int whole = m && copy.n == snap->s.n;
    schema_free(&copy);
    if (!whole) {
        sqlite3_close(m);
        return;
    }
    *tried = 1;
    for (size_t i = 0; i < n; i++) {
        char *msg = NULL;
        if (sqlite3_exec(m, sqls[i], NULL, NULL, &msg) != SQLITE_OK) {
            *failed = (long)i;
            zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: %s", msg ? msg : sqlite3_errmsg(m));
            sqlite3_free(msg);
            break;
        }
    }
    sqlite3_close(m);
}

/* CREATE INDEX for the plain index `index` of table with column `col`
 * replaced by `to` (same name, key order, collations and DESC).  NULL
 * when it cannot be read. */
static char *moved_index_sql(zdm_db *db, const char *index, const char *table, const char *col, const char *to,
                             zdm_err *err)
{
    const char *params[] = {index};
    zdm_rows *rows = NULL;
    if (zdm_db_query(db, "SELECT name, \"desc\", coll FROM pragma_index_xinfo($1) WHERE key ORDER BY seqno", 1,
                     params, &rows, err) != 0)
        return NULL;
    zdm_buf b = {0};
    char *iq = zdm_db_ident(db, index), *tq = zdm_db_ident(db, table);
    zdm_buf_printf(&b, "CREATE INDEX %s ON %s(", iq, tq);
    for (int i = 0; i < zdm_rows_count(rows); i++) {
        const char *name = zdm_rows_get(rows, i, 0), *coll = zdm_rows_get(rows, i, 2);
        char *cq = zdm_db_ident(db, strcasecmp(name, col) == 0 ? to : name);
        char *collq = coll ? zdm_db_ident(db, coll) : NULL;
        zdm_buf_printf(&b, "%s%s%s%s%s", i ? ", " : "", cq, collq ? " COLLATE " : "", collq ? collq : "",
                       strcmp(zdm_rows_get(rows, i, 1), "1") == 0 ? " DESC" : "");
        free(cq);
        free(collq);
    }
    zdm_buf_puts(&b, ")");
    zdm_rows_free(rows);
    free(iq);
    free(tq);
    return b.data;
}

int zdm_sqdeps_before_drop(zdm_db *db, const zdm_plan *p, const char *sql, zdm_err *err)
{
    const char *plan_id = p->id;
    if (zdm_db_kind_of(db) != ZDM_DB_SQLITE)
        return 0;
    zdm_strv d = {0};
    zdm_sqdeps_drops(sql, &d);
    int rc = 0;
    for (size_t j = 0; rc == 0 && j + 1 < d.n; j += 2) {
        const char *params[] = {d.v[j], d.v[j + 1]};
        zdm_rows *rows = NULL;
        /* Plain indexes of the table with the column as a key, and no
         * expression key (cid -2). */
        rc = zdm_db_query(db,
                          "SELECT l.name FROM pragma_index_list($1) l "
                          "WHERE l.origin = 'c' AND NOT l.\"unique\" AND NOT l.partial "
                          "AND EXISTS (SELECT 1 FROM pragma_index_xinfo(l.name) x "
                          "            WHERE x.key AND x.name = $2 COLLATE NOCASE) "
                          "AND NOT EXISTS (SELECT 1 FROM pragma_index_xinfo(l.name) x WHERE x.key AND x.cid = -2)",
                          2, params, &rows, err);
        for (int i = 0; rc == 0 && i < zdm_rows_count(rows); i++) {
            const char *iname = zdm_rows_get(rows, i, 0);
            const char *to = renamed_to(p, d.v[j], d.v[j + 1]);
            char *create = to ? moved_index_sql(db, iname, d.v[j], d.v[j + 1], to, err) : NULL;
            if (to && !create) {
                rc = ZDM_EXIT_FAIL;
                break;
            }
            char *q = zdm_db_ident(db, iname);
            char *drop = zdm_xasprintf("DROP INDEX %s", q);
            if (create)
                zdm_log(ZDM_LOG_INFO, plan_id, NULL, "index %s moves from %s.%s to %s (rebuilt in this transaction)",
                        iname, d.v[j], d.v[j + 1], to);
            else
                zdm_log(ZDM_LOG_INFO, plan_id, NULL, "index %s goes with the column %s.%s it covers", iname, d.v[j],
                        d.v[j + 1]);
            rc = zdm_db_exec_script(db, drop, err);
            if (rc == 0 && create)
                rc = zdm_db_exec_script(db, create, err);
            free(create);
            free(drop);
            free(q);
        }
        zdm_rows_free(rows);
    }
    zdm_strv_free(&d);
    return rc;
}
