/*
 * lint.c -- zdm lint (see lint.h).
 *
 * PostgreSQL: each step's SQL goes through libpg_query, which returns the
 * parse tree as JSON: {"stmts": [{"stmt": {"IndexStmt": {...}},
 * "stmt_location": N}, ...]}.  The rules read that tree with jansson, one
 * statement at a time, while a small model of the schema (tables, column
 * types, indexes, validated NOT NULL checks) follows along so that a rule
 * can tell a table created a moment ago from one the application is using.
 * SQLite: no parser is at hand, so the rules read sqlscan's tokens, one
 * statement at a time, with the same model.  Before either, sqlscan's
 * bounds keep a statement too deep for libpg_query's recursive output
 * away from it.
 */
#include "lint.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "db.h"
#include "log.h"
#include "sqlscan.h"

/* ---- rules ---- */

#define PG ZDM_LINT_DIALECT_PG
#define SL ZDM_LINT_DIALECT_SQLITE
#define BOTH (PG | SL)

static const zdm_lint_rule rules[] = {
    {"parse-error", ZDM_LINT_ERROR, "the SQL does not parse (PostgreSQL), or a string, comment or parenthesis "
                                    "never closes (SQLite)", BOTH},
    {"index-not-concurrent", ZDM_LINT_ERROR,
     "CREATE INDEX (or ADD UNIQUE / PRIMARY KEY) on an existing table without CONCURRENTLY", PG},
    {"add-column-volatile-default", ZDM_LINT_ERROR,
     "ADD COLUMN whose value is computed per row (volatile default, serial, identity, stored)", PG},
    {"alter-type-rewrite", ZDM_LINT_ERROR, "ALTER COLUMN TYPE that rewrites the table", PG},
    {"set-not-null", ZDM_LINT_ERROR, "SET NOT NULL without a validated CHECK (col IS NOT NULL) first", PG},
    {"constraint-not-valid", ZDM_LINT_ERROR, "ADD FOREIGN KEY / CHECK without NOT VALID", PG},
    {"destructive-in-expand", ZDM_LINT_ERROR, "DROP / RENAME / TRUNCATE in expand, while the old application runs",
     BOTH},
    {"heavy-lock", ZDM_LINT_ERROR, "VACUUM FULL, CLUSTER, LOCK TABLE, REINDEX without CONCURRENTLY", PG},
    {"missing-down", ZDM_LINT_WARNING, "an expand step without down: it cannot be rolled back", BOTH},
    {"mass-dml-in-expand", ZDM_LINT_ERROR, "UPDATE or DELETE of a whole table in expand", BOTH},
    {"multi-ddl-no-transaction", ZDM_LINT_ERROR,
     "several DDL statements on one table in a step that runs without a transaction", PG},
    {"allow-unknown-rule", ZDM_LINT_WARNING, "allow_unsafe or zdm:allow names a rule zdm lint does not have", BOTH},
    {"sqlite-only", ZDM_LINT_INFO, "the step has SQL for SQLite only: not linted for PostgreSQL", PG},
    /* added with dialects, plain SQL files and inline exceptions */
    {"allow-no-reason", ZDM_LINT_ERROR, "a -- zdm:allow comment without a reason (it allows nothing)", BOTH},
    {"add-column-not-null-no-default", ZDM_LINT_ERROR,
     "ADD COLUMN ... NOT NULL without a DEFAULT on an existing table", PG},
    {"drop-index-not-concurrent", ZDM_LINT_ERROR, "DROP INDEX without CONCURRENTLY", PG},
    {"drop-database", ZDM_LINT_ERROR, "DROP DATABASE", PG},
    {"transaction-control", ZDM_LINT_ERROR, "BEGIN / COMMIT / ROLLBACK inside a step (zdm owns the transaction)",
     BOTH},
    {"concurrent-in-transaction", ZDM_LINT_ERROR,
     "CONCURRENTLY (or VACUUM) in a step that runs inside a transaction", PG},
    {"validate-in-same-transaction", ZDM_LINT_ERROR,
     "ADD CONSTRAINT ... NOT VALID and its VALIDATE in one transaction", PG},
    {"detach-partition-not-concurrent", ZDM_LINT_ERROR, "DETACH PARTITION without CONCURRENTLY", PG},
    {"domain-constraint", ZDM_LINT_ERROR, "CREATE DOMAIN ... CHECK, ALTER DOMAIN ... ADD CONSTRAINT", PG},
    {"drop-not-null", ZDM_LINT_WARNING, "DROP NOT NULL in expand: the old application may rely on it", PG},
    {"not-idempotent", ZDM_LINT_WARNING,
     "CREATE without IF NOT EXISTS / DROP without IF EXISTS in a step run without a transaction", PG},
    {"type-int-primary-key", ZDM_LINT_WARNING, "an integer (int4/int2/serial) primary key: it runs out", PG},
    {"type-serial", ZDM_LINT_WARNING, "serial / bigserial instead of GENERATED ... AS IDENTITY", PG},
    {"type-varchar-length", ZDM_LINT_WARNING, "varchar(n): raising n later is free, lowering it rewrites", PG},
    {"type-char", ZDM_LINT_WARNING, "char(n): blank-padded, slower than text", PG},
    {"type-timestamp", ZDM_LINT_WARNING, "timestamp without time zone", PG},
    {"sqlite-alter-unsupported", ZDM_LINT_ERROR, "an ALTER TABLE form SQLite refuses", SL},
    {"sqlite-table-rebuild", ZDM_LINT_ERROR,
     "a copy of a whole existing table (INSERT ... SELECT, CREATE TABLE AS) holding the write lock", SL},
    {"sqlite-vacuum", ZDM_LINT_ERROR, "VACUUM in a step: rewrites the whole database file under a lock", SL},
    {"truncate-cascade", ZDM_LINT_ERROR, "TRUNCATE ... CASCADE: empties every table that references it too", PG},
    {"missing-lock-timeout", ZDM_LINT_WARNING,
     "a plain SQL file: DDL on an existing table with no SET lock_timeout before it", PG},
    {"long-transaction", ZDM_LINT_WARNING,
     "--db: a transaction open longer than lock_timeout holds a lock on a table the SQL changes", PG},
    {"sqlite-pragma-in-transaction", ZDM_LINT_WARNING,
     "PRAGMA foreign_keys / journal_mode inside a transaction, where it does nothing or fails", SL},
    {"missing-not-before", ZDM_LINT_WARNING,
     "a plan with no soak time (no not_before, no [contract] not_before in zdm.toml): run-due never contracts it",
     BOTH},
};
#define NRULES (sizeof rules / sizeof rules[0])

const zdm_lint_rule *zdm_lint_rules(size_t *n)
{
    *n = NRULES;
    return rules;
}

const zdm_lint_rule *zdm_lint_rule_find(const char *id)
{
    for (size_t i = 0; i < NRULES; i++)
        if (strcmp(rules[i].id, id) == 0)
            return &rules[i];
    return NULL;
}

const char *zdm_lint_severity_name(zdm_lint_severity s)
{
    return s == ZDM_LINT_ERROR ? "error" : s == ZDM_LINT_WARNING ? "warning" : "info";
}

/* ---- results ---- */

static zdm_lint_finding *add_finding(zdm_lint_result *r, const char *rule, int line, const char *hint,
                                     const char *fmt, ...) ZDM_PRINTF(5, 6);
static zdm_lint_finding *add_finding(zdm_lint_result *r, const char *rule, int line, const char *hint,
                                     const char *fmt, ...)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = zdm_xrealloc(r->v, r->cap * sizeof *r->v);
    }
    zdm_lint_finding *f = &r->v[r->n++];
    memset(f, 0, sizeof *f);
    const zdm_lint_rule *ru = zdm_lint_rule_find(rule);
    f->rule = ru ? ru->id : "parse-error";
    f->severity = ru ? ru->severity : ZDM_LINT_ERROR;
    f->line = line;
    f->hint = hint;
    zdm_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    zdm_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    f->message = zdm_buf_take(&b);
    return f;
}

void zdm_lint_result_free(zdm_lint_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].message);
        free(r->v[i].reason);
        free(r->v[i].table);
        free(r->v[i].object);
    }
    for (size_t i = 0; i < r->nddl; i++)
        free(r->ddl[i].table);
    free(r->ddl);
    free(r->v);
    memset(r, 0, sizeof *r);
}

size_t zdm_lint_count(const zdm_lint_result *r, zdm_lint_severity sev, int phase)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].severity == sev && !r->v[i].allowed && (phase < 0 || (int)r->v[i].phase == phase))
            n++;
    return n;
}

/* ---- the schema model ---- */

typedef struct lcol {
    char *name;
    char *type;    /* last element of the type name ("varchar", "int4"), "" when unknown */
    int mods[2];   /* type modifiers: varchar(n), numeric(p, s) */
    int nmods;
} lcol;

typedef struct ltable {
    char *name;        /* "rel", or "schema.rel" outside public */
    lcol *cols;
    size_t ncols, cap;
    unsigned gen;      /* plan generation that created it; 0: before */
    int phase;         /* phase that created it */
} ltable;

typedef struct lcheck {
    char *name;        /* may be "" when unnamed */
    char *table;
    char *column;      /* the column of CHECK (column IS NOT NULL) */
    int validated;
} lcheck;

struct zdm_lint_ctx {
    ltable *t;
    size_t nt, capt;
    lcheck *ck;
    size_t nck, capck;
    unsigned gen;
};

zdm_lint_ctx *zdm_lint_ctx_new(void)
{
    zdm_lint_ctx *c = zdm_xcalloc(1, sizeof *c);
    c->gen = 1;
    return c;
}

static void table_clear(ltable *t)
{
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->cols[i].name);
        free(t->cols[i].type);
    }
    free(t->cols);
    free(t->name);
}

static void checks_clear(zdm_lint_ctx *c)
{
    for (size_t i = 0; i < c->nck; i++) {
        free(c->ck[i].name);
        free(c->ck[i].table);
        free(c->ck[i].column);
    }
    c->nck = 0;
}

void zdm_lint_ctx_free(zdm_lint_ctx *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nt; i++)
        table_clear(&c->t[i]);
    free(c->t);
    checks_clear(c);
    free(c->ck);
    free(c);
}

void zdm_lint_ctx_next_plan(zdm_lint_ctx *c)
{
    /* Checks stay: a CHECK (col IS NOT NULL) validated by an earlier plan
     * still lets SET NOT NULL skip its scan. */
    c->gen++;
}

static ltable *table_find(zdm_lint_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->nt; i++)
        if (strcmp(c->t[i].name, name) == 0)
            return &c->t[i];
    return NULL;
}

static void table_drop(zdm_lint_ctx *c, const char *name)
{
    ltable *t = table_find(c, name);
    if (!t)
        return;
    table_clear(t);
    *t = c->t[--c->nt];
}

/* A table created now (or seen for the first time, when gen is 0). */
static ltable *table_add(zdm_lint_ctx *c, const char *name, unsigned gen, int phase)
{
    table_drop(c, name);
    if (c->nt == c->capt) {
        c->capt = c->capt ? c->capt * 2 : 8;
        c->t = zdm_xrealloc(c->t, c->capt * sizeof *c->t);
    }
    ltable *t = &c->t[c->nt++];
    memset(t, 0, sizeof *t);
    t->name = zdm_xstrdup(name);
    t->gen = gen;
    t->phase = phase;
    return t;
}

static lcol *col_find(ltable *t, const char *name)
{
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

static lcol *col_add(ltable *t, const char *name)
{
    lcol *k = col_find(t, name);
    if (k)
        return k;
    if (t->ncols == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->cols = zdm_xrealloc(t->cols, t->cap * sizeof *t->cols);
    }
    k = &t->cols[t->ncols++];
    memset(k, 0, sizeof *k);
    k->name = zdm_xstrdup(name);
    k->type = zdm_xstrdup("");
    return k;
}

static void col_drop(ltable *t, const char *name)
{
    lcol *k = col_find(t, name);
    if (!k)
        return;
    free(k->name);
    free(k->type);
    *k = t->cols[--t->ncols];
}

/* A check equal in name, table and column to one the model has merges
 * into it (validated if either is): the two would answer every later
 * question alike, since VALIDATE and DROP CONSTRAINT change both.  The list
 * then holds each check once, not once per statement adding it, so the
 * lookups below stay bounded by the distinct checks of the SQL. */
static void check_add(zdm_lint_ctx *c, const char *name, const char *table, const char *column,
                      int validated)
{
    if (!name)
        name = "";
    for (size_t i = 0; i < c->nck; i++)
        if (strcmp(c->ck[i].name, name) == 0 && strcmp(c->ck[i].table, table) == 0 &&
            strcmp(c->ck[i].column, column) == 0) {
            c->ck[i].validated |= validated;
            return;
        }
    if (c->nck == c->capck) {
        c->capck = c->capck ? c->capck * 2 : 8;
        c->ck = zdm_xrealloc(c->ck, c->capck * sizeof *c->ck);
    }
    lcheck *k = &c->ck[c->nck++];
    k->name = zdm_xstrdup(name ? name : "");
    k->table = zdm_xstrdup(table);
    k->column = zdm_xstrdup(column);
    k->validated = validated;
}

static int not_null_validated(const zdm_lint_ctx *c, const char *table, const char *column)
{
    for (size_t i = 0; i < c->nck; i++)
        if (c->ck[i].validated && strcmp(c->ck[i].table, table) == 0 &&
            strcmp(c->ck[i].column, column) == 0)
            return 1;
    return 0;
}

/* ---- reading the parse tree ---- */

static json_t *jget(const json_t *o, const char *k)
{
    return json_is_object(o) ? json_object_get(o, k) : NULL;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(jget(o, k));
}

static int jtrue(const json_t *o, const char *k)
{
    return json_is_true(jget(o, k));
}

/* {"Type": {...}}: the type name, and the inner object in *inner. */
static const char *node_type(const json_t *n, json_t **inner)
{
    if (!json_is_object(n) || json_object_size(n) != 1)
        return NULL;
    void *it = json_object_iter((json_t *)n);
    if (inner)
        *inner = json_object_iter_value(it);
    return json_object_iter_key(it);
}

/* The inner object of n when n is a `type` node, else NULL. */
static json_t *node_as(const json_t *n, const char *type)
{
    json_t *inner = NULL;
    const char *t = node_type(n, &inner);
    return t && strcmp(t, type) == 0 ? inner : NULL;
}

/* [{"String": {"sval": "a"}}, ...]: element i (negative: from the end). */
static const char *str_list_at(const json_t *list, int i)
{
    size_t n = json_array_size(list);
    if (i < 0)
        i += (int)n;
    if (i < 0 || (size_t)i >= n)
        return NULL;
    return jstr(node_as(json_array_get(list, (size_t)i), "String"), "sval");
}

/* The name rules use for a relation: "rel", or "schema.rel" outside public. */
static char *rel_name2(const char *schema, const char *rel)
{
    if (!rel)
        return NULL;
    if (schema && strcmp(schema, "public") != 0)
        return zdm_xasprintf("%s.%s", schema, rel);
    return zdm_xstrdup(rel);
}

/* A RangeVar, bare or wrapped in {"RangeVar": ...}. */
static char *rel_name(const json_t *rv)
{
    const json_t *in = node_as(rv, "RangeVar");
    if (in)
        rv = in;
    return rel_name2(jstr(rv, "schemaname"), jstr(rv, "relname"));
}

/* A qualified name as a String list: ["schema", "rel"] or ["rel"]. */
static char *list_name(const json_t *list)
{
    size_t n = json_array_size(list);
    if (n == 0)
        return NULL;
    return rel_name2(n >= 2 ? str_list_at(list, -2) : NULL, str_list_at(list, -1));
}

static int const_int(const json_t *aconst)
{
    /* {"A_Const": {"ival": {"ival": 20}}}; zero is {"ival": {}}. */
    const json_t *c = node_as(aconst, "A_Const");
    const json_t *iv = jget(c, "ival");
    if (!iv)
        return -1;
    return (int)json_integer_value(jget(iv, "ival"));
}

/* A column type as the model keeps it. */
typedef struct ltype {
    const char *name;
    int mods[2];
    int nmods;
    int array;
} ltype;

static void type_of(const json_t *typeName, ltype *t)
{
    memset(t, 0, sizeof *t);
    t->name = str_list_at(jget(typeName, "names"), -1);
    if (!t->name)
        t->name = "";
    json_t *mods = jget(typeName, "typmods");
    for (size_t i = 0; i < json_array_size(mods) && i < 2; i++)
        t->mods[t->nmods++] = const_int(json_array_get(mods, i));
    t->array = json_array_size(jget(typeName, "arrayBounds")) > 0;
}

/* The name a user writes for a type the parser spells its own way. */
static const char *type_display(const char *name)
{
    static const char *const map[][2] = {
        {"int2", "smallint"}, {"int4", "integer"}, {"int8", "bigint"}, {"float4", "real"},
        {"float8", "double precision"}, {"bool", "boolean"}, {"bpchar", "char"},
        {"timestamptz", "timestamp with time zone"}, {"timetz", "time with time zone"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(name, map[i][0]) == 0)
            return map[i][1];
    return name;
}

static void col_set_type(lcol *k, const ltype *t)
{
    free(k->type);
    k->type = t->array ? zdm_xasprintf("%s[]", t->name) : zdm_xstrdup(t->name);
    k->nmods = t->nmods;
    memcpy(k->mods, t->mods, sizeof k->mods);
}

/* Does changing column k to type t keep every row as it is (no rewrite)? */
static int type_change_in_place(const lcol *k, const ltype *t)
{
    if (!k || !k->type[0] || t->array || strchr(k->type, '['))
        return 0;
    const char *from = k->type, *to = t->name;
    if (strcmp(from, "varchar") == 0) {
        if (strcmp(to, "text") == 0)
            return 1;
        if (strcmp(to, "varchar") == 0)
            return t->nmods == 0 || (k->nmods == 1 && t->mods[0] >= k->mods[0]);
        return 0;
    }
    if (strcmp(from, "text") == 0)
        return (strcmp(to, "varchar") == 0 && t->nmods == 0) || (strcmp(to, "text") == 0);
    if (strcmp(from, "numeric") == 0 && strcmp(to, "numeric") == 0) {
        if (t->nmods == 0)
            return 1;
        if (k->nmods == 0)
            return 0;
        int s_from = k->nmods > 1 ? k->mods[1] : 0, s_to = t->nmods > 1 ? t->mods[1] : 0;
        return t->mods[0] >= k->mods[0] && s_from == s_to;
    }
    /* The same type and modifiers: nothing changes. */
    if (strcmp(from, to) != 0 || k->nmods != t->nmods)
        return 0;
    for (int i = 0; i < t->nmods; i++)
        if (k->mods[i] != t->mods[i])
            return 0;
    return 1;
}

/* Functions whose value differs per row: named in messages as volatile
 * for sure.  Any function not in nonvolatile_funcs counts as volatile too
 * (a user's function may be), unless --db says otherwise. */
static const char *const volatile_funcs[] = {
    "random", "random_normal", "setseed", "clock_timestamp", "timeofday", "gen_random_uuid",
    "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4", "gen_random_bytes", "nextval",
    "txid_current", "pg_current_xact_id", "uuidv4", "uuidv7", NULL};

/* Built-ins PostgreSQL marks immutable or stable: a default calling only
 * these is evaluated once, and ADD COLUMN stores it without a rewrite. */
static const char *const nonvolatile_funcs[] = {
    "now", "statement_timestamp", "transaction_timestamp", "current_timestamp", "localtimestamp",
    "current_date", "lower", "upper", "length", "char_length", "octet_length", "abs", "round", "floor",
    "ceil", "ceiling", "trunc", "mod", "power", "sqrt", "concat", "concat_ws", "substr", "substring",
    "replace", "btrim", "ltrim", "rtrim", "trim", "lpad", "rpad", "left", "right", "md5", "sha256",
    "to_char", "to_date", "to_timestamp", "to_number", "make_date", "make_time", "make_timestamp",
    "make_timestamptz", "make_interval", "date_trunc", "date_part", "extract", "age", "json_build_object",
    "jsonb_build_object", "json_build_array", "jsonb_build_array", "to_json", "to_jsonb", "array_length",
    "cardinality", "coalesce", "nullif", "greatest", "least", "int4", "int8", "text", "numeric",
    "current_setting", "current_user", "current_schema", "session_user", "format", "initcap",
    "timezone", "jsonb_set", "array_append", "array_prepend", "string_to_array", "array_to_string",
    "regexp_replace", "split_part", "position", "strpos", "bool", "float8", "float4", "inet", NULL};

/* Is `name` volatile as far as zdm knows: in volatile_funcs, or in
 * neither list (*unknown set)? */
static int func_volatile(const char *name, int *unknown)
{
    *unknown = 0;
    for (size_t i = 0; volatile_funcs[i]; i++)
        if (strcmp(name, volatile_funcs[i]) == 0)
            return 1;
    for (size_t i = 0; nonvolatile_funcs[i]; i++)
        if (strcmp(name, nonvolatile_funcs[i]) == 0)
            return 0;
    *unknown = 1;
    return 1;
}

/* The first function called anywhere in an expression that zdm cannot
 * show to be non-volatile (*unknown: not known to be volatile either). */
static const char *find_volatile(const json_t *e, int *unknown)
{
    if (json_is_array(e)) {
        for (size_t i = 0; i < json_array_size(e); i++) {
            const char *f = find_volatile(json_array_get(e, i), unknown);
            if (f)
                return f;
        }
        return NULL;
    }
    if (!json_is_object(e))
        return NULL;
    const json_t *fc = node_as(e, "FuncCall");
    if (fc) {
        const char *name = str_list_at(jget(fc, "funcname"), -1);
        if (name && func_volatile(name, unknown))
            return name;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)e, key, v) {
        const char *f = find_volatile(v, unknown);
        if (f)
            return f;
    }
    return NULL;
}

/* CHECK (col IS NOT NULL [AND ...]): the column, or NULL. */
static const char *not_null_column(const json_t *expr)
{
    const json_t *nt = node_as(expr, "NullTest");
    if (nt) {
        const char *t = jstr(nt, "nulltesttype");
        const json_t *cr = node_as(jget(nt, "arg"), "ColumnRef");
        if (t && strcmp(t, "IS_NOT_NULL") == 0 && cr)
            return str_list_at(jget(cr, "fields"), -1);
        return NULL;
    }
    const json_t *be = node_as(expr, "BoolExpr");
    if (be && jstr(be, "boolop") && strcmp(jstr(be, "boolop"), "AND_EXPR") == 0) {
        const json_t *args = jget(be, "args");
        for (size_t i = 0; i < json_array_size(args); i++) {
            const char *c = not_null_column(json_array_get(args, i));
            if (c)
                return c;
        }
    }
    return NULL;
}

/* A WHERE that keeps every row: none, TRUE, or a constant = the same constant. */
static int where_is_everything(const json_t *w)
{
    if (!w)
        return 1;
    const json_t *c = node_as(w, "A_Const");
    if (c)
        return jtrue(jget(c, "boolval"), "boolval");
    const json_t *e = node_as(w, "A_Expr");
    if (e && jstr(e, "kind") && strcmp(jstr(e, "kind"), "AEXPR_OP") == 0 &&
        str_list_at(jget(e, "name"), -1) && strcmp(str_list_at(jget(e, "name"), -1), "=") == 0) {
        const json_t *l = node_as(jget(e, "lexpr"), "A_Const"), *r = node_as(jget(e, "rexpr"), "A_Const");
        if (!l || !r)
            return 0;
        static const char *const kinds[] = {"ival", "sval", "fval", "boolval"};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (jget(l, kinds[i]) && jget(r, kinds[i]))
                return json_equal(jget(l, kinds[i]), jget(r, kinds[i]));
    }
    return 0;
}

/* ---- the rules, per statement ---- */

static const char *const H_INDEX =
    "CREATE INDEX CONCURRENTLY in a step of its own (zdm runs it outside a transaction)";
static const char *const H_UNIQUE =
    "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... UNIQUE (or PRIMARY KEY) USING INDEX";
static const char *const H_VOLATILE =
    "add the column without that default (or with a constant one), SET DEFAULT for new rows, "
    "and fill existing rows in [backfill]";
static const char *const H_TYPE =
    "add a new column of the new type, fill it in [backfill] with dual-write, switch at cutover, "
    "drop the old column in contract (op = \"change_type\" does all of this)";
static const char *const H_NOT_NULL =
    "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT, earlier in the "
    "plan: SET NOT NULL then uses the check instead of scanning";
static const char *const H_NOT_VALID =
    "ADD CONSTRAINT ... NOT VALID (instant), then ALTER TABLE ... VALIDATE CONSTRAINT in a later step "
    "(it does not block writes)";
static const char *const H_NEW_COL_CONSTRAINT =
    "add the column without the constraint, then ADD CONSTRAINT ... NOT VALID and VALIDATE CONSTRAINT";
static const char *const H_DESTRUCTIVE =
    "move it to [[contract.steps]]; for a rename, add the new name, dual-write and backfill it, "
    "and drop the old one in contract";
static const char *const H_VACUUM_FULL = "pg_repack (or plain VACUUM, which takes no such lock)";
static const char *const H_CLUSTER = "pg_repack --order-by, which rewrites without the long lock";
static const char *const H_LOCK =
    "drop the LOCK: zdm already runs each step with a short lock_timeout and retries";
static const char *const H_REINDEX = "REINDEX ... CONCURRENTLY";
static const char *const H_MASS_DML =
    "change existing rows in [backfill] (batched, throttled, resumable), or restrict it with WHERE";
static const char *const H_MULTI_DDL =
    "one statement per step when the step cannot run in a transaction (or set transaction = true)";
static const char *const H_NOT_NULL_NO_DEFAULT =
    "add the column nullable (or with a constant DEFAULT), fill it in [backfill], then ADD CONSTRAINT "
    "... CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, and SET NOT NULL";
static const char *const H_DROP_INDEX = "DROP INDEX CONCURRENTLY IF EXISTS, in a step of its own";
static const char *const H_DROP_DB = "drop databases out of band, never from a migration";
static const char *const H_TX =
    "remove BEGIN/COMMIT: zdm runs each step in its own transaction (transaction = false for none)";
static const char *const H_PLAIN_TX =
    "one transaction at a time: COMMIT (or ROLLBACK) before the next BEGIN, and end every BEGIN";
static const char *const H_CONC_TX =
    "put it in a step of its own without transaction = true: zdm then runs it outside a transaction";
static const char *const H_VALIDATE_SAME =
    "VALIDATE CONSTRAINT in a later step (or a later plan): each step commits, so the short lock of "
    "NOT VALID is released before the long scan";
static const char *const H_DETACH = "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY, in a step of its own";
static const char *const H_DOMAIN =
    "a CHECK constraint on the table's column (ADD CONSTRAINT ... NOT VALID, then VALIDATE)";
static const char *const H_DROP_NOT_NULL =
    "make sure the old application never reads the column as non-null, or drop NOT NULL in contract";
static const char *const H_IDEMPOTENT =
    "IF NOT EXISTS / IF EXISTS, so a retry after a crash half-way through the step succeeds";
static const char *const H_PARSE =
    "fix the SQL; SQL for SQLite alone belongs in sql.sqlite, with PostgreSQL's in sql.pg";

typedef struct lint_run {
    zdm_lint_ctx *c;
    zdm_lint_result *out;
    zdm_phase_kind phase;
    int line;            /* of the current statement */
    zdm_strv ddl;        /* "table" per DDL statement (deduplicated within one) */
    zdm_buf stmt_tables; /* "\ntable\n" seen in the current statement */
    int *ddl_line;
    size_t ddl_cap;
    /* Tables renamed in expand (destructive-in-expand findings, by index
     * in out) and views created in the step: a view taking the old name
     * keeps the old application working. */
    zdm_strv renamed, views;
    size_t *renamed_finding;
    size_t renamed_cap;
    size_t off;          /* byte offset of the current statement */
    size_t *ddl_off;
    int in_tx;           /* zdm runs the step in a transaction */
    int explicit_tx;     /* after a BEGIN in the SQL itself */
    zdm_strv not_valid;  /* "table\nconstraint" added NOT VALID by this SQL */
    char *cur_table;     /* the table the current statement is about (first seen) */
    int plain;           /* a plain SQL file: its BEGIN/COMMIT are its own */
    int begin_line;      /* plain: line of the BEGIN still open, 0 when none */
    size_t begin_off;
    int lock_timeout_set; /* plain: SET lock_timeout seen */
    int lock_timeout_told;
} lint_run;

static const char *const H_LOCK_TIMEOUT =
    "SET lock_timeout = '2s' (and retry on failure) before the DDL, or run it as a zdm plan, which does "
    "both";


static void note_table(lint_run *r, const char *table)
{
    if (table && !r->cur_table)
        r->cur_table = zdm_xstrdup(table);
}

/* Findings [k0, out->n) of the statement just linted: its offset and table. */
static void stmt_done(lint_run *r, size_t k0)
{
    for (size_t k = k0; k < r->out->n; k++) {
        r->out->v[k].offset = r->off;
        if (!r->out->v[k].table && r->cur_table)
            r->out->v[k].table = zdm_xstrdup(r->cur_table);
    }
    free(r->cur_table);
    r->cur_table = NULL;
}

/* Runs in a transaction now: the step's own, or one the SQL opened. */
static int in_tx(const lint_run *r)
{
    return r->in_tx || r->explicit_tx;
}

static int is_new(const lint_run *r, const char *table)
{
    const ltable *t = table_find(r->c, table);
    return t && t->gen == r->c->gen && t->phase == (int)r->phase;
}

/* Plain files: DDL that takes a strong lock, with no lock_timeout set
 * before it, queues behind any long transaction and blocks every query
 * on the table behind it for as long as it waits. */
static void plain_lock_timeout(lint_run *r, const char *table)
{
    if (!r->plain || r->lock_timeout_set || r->lock_timeout_told || !table || is_new(r, table))
        return;
    r->lock_timeout_told = 1;
    add_finding(r->out, "missing-lock-timeout", r->line, H_LOCK_TIMEOUT,
                "DDL on %s with no lock_timeout set first: if a long transaction holds %s, this statement "
                "waits for it, and every query on %s waits behind this statement", table, table, table);
}

static void note_ddl(lint_run *r, const char *table)
{
    if (!table)
        return;
    note_table(r, table);
    char *key = zdm_xasprintf("\n%s\n", table);
    int seen = r->stmt_tables.data && strstr(r->stmt_tables.data, key);
    if (!seen) {
        zdm_buf_puts(&r->stmt_tables, key);
        /* Both arrays grow together, by doubling: reallocating one per
         * statement made a file of many DDL statements quadratic (under
         * ASan every realloc copies; 65,000 DROPs took two minutes). */
        if (r->ddl.n == r->ddl_cap) {
            r->ddl_cap = r->ddl_cap ? r->ddl_cap * 2 : 8;
            r->ddl_line = zdm_xrealloc(r->ddl_line, r->ddl_cap * sizeof *r->ddl_line);
            r->ddl_off = zdm_xrealloc(r->ddl_off, r->ddl_cap * sizeof *r->ddl_off);
        }
        r->ddl_line[r->ddl.n] = r->line;
        r->ddl_off[r->ddl.n] = r->off;
        zdm_strv_push(&r->ddl, table);
    }
    free(key);
}

/* The destructive-in-expand finding just added renames `table`; a view
 * taking the old name in the same SQL withdraws it (drop_covered_renames).
 * The index array grows by doubling, not by one per rename. */
static void note_rename(lint_run *r, const char *table)
{
    if (r->renamed.n == r->renamed_cap) {
        r->renamed_cap = r->renamed_cap ? r->renamed_cap * 2 : 8;
        r->renamed_finding = zdm_xrealloc(r->renamed_finding, r->renamed_cap * sizeof *r->renamed_finding);
    }
    r->renamed_finding[r->renamed.n] = r->out->n - 1;
    zdm_strv_push(&r->renamed, table);
}

static void columns_from(ltable *t, const json_t *elts)
{
    for (size_t i = 0; i < json_array_size(elts); i++) {
        const json_t *cd = node_as(json_array_get(elts, i), "ColumnDef");
        if (!cd || !jstr(cd, "colname"))
            continue;
        ltype ty;
        type_of(jget(cd, "typeName"), &ty);
        col_set_type(col_add(t, jstr(cd, "colname")), &ty);
    }
}

static int is_serial(const char *type)
{
    static const char *const s[] = {"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial", NULL};
    for (size_t i = 0; s[i]; i++)
        if (strcmp(type, s[i]) == 0)
            return 1;
    return 0;
}

/* Warnings about a column's type (CREATE TABLE, ADD COLUMN). */
static void type_hygiene(lint_run *r, const char *table, const json_t *cd, const ltype *ty)
{
    const char *col = jstr(cd, "colname");
    int pk = 0;
    const json_t *cs = jget(cd, "constraints");
    for (size_t i = 0; i < json_array_size(cs); i++) {
        const char *ct = jstr(node_as(json_array_get(cs, i), "Constraint"), "contype");
        pk |= ct && strcmp(ct, "CONSTR_PRIMARY") == 0;
    }
    if (ty->array)
        return;
    if (pk && (strcmp(ty->name, "int4") == 0 || strcmp(ty->name, "int2") == 0 || strcmp(ty->name, "serial") == 0 ||
               strcmp(ty->name, "serial4") == 0 || strcmp(ty->name, "smallserial") == 0 ||
               strcmp(ty->name, "serial2") == 0))
        add_finding(r->out, "type-int-primary-key", r->line, "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                    "%s.%s: a primary key of type %s runs out at %s rows; widening it later rewrites the table",
                    table, col, type_display(ty->name), strstr(ty->name, "2") || strstr(ty->name, "small") ?
                    "32,767" : "2,147,483,647");
    if (is_serial(ty->name))
        add_finding(r->out, "type-serial", r->line, "bigint GENERATED ALWAYS AS IDENTITY",
                    "%s.%s %s: a serial's sequence is a separate object with its own owner and grants",
                    table, col, ty->name);
    else if (strcmp(ty->name, "varchar") == 0 && ty->nmods > 0)
        add_finding(r->out, "type-varchar-length", r->line,
                    "text, with a CHECK (length(col) <= n) NOT VALID when a limit matters",
                    "%s.%s varchar(%d): lowering the limit later rewrites the table", table, col, ty->mods[0]);
    else if (strcmp(ty->name, "bpchar") == 0)
        add_finding(r->out, "type-char", r->line, "text (or varchar without a length)",
                    "%s.%s char(n) pads with blanks and compares surprisingly; it is no faster than text",
                    table, col);
    else if (strcmp(ty->name, "timestamp") == 0)
        add_finding(r->out, "type-timestamp", r->line, "timestamptz (timestamp with time zone)",
                    "%s.%s timestamp without time zone stores a wall-clock time with no zone: the same "
                    "value means different instants on servers with different TimeZone settings", table, col);
}

static void add_column(lint_run *r, const char *table, const json_t *cd)
{
    const char *col = jstr(cd, "colname");
    ltype ty;
    type_of(jget(cd, "typeName"), &ty);
    type_hygiene(r, table, cd, &ty);
    if (!is_new(r, table)) {
        int notnull = 0, has_default = 0;
        const json_t *cs = jget(cd, "constraints");
        for (size_t i = 0; i < json_array_size(cs); i++) {
            const char *ct = jstr(node_as(json_array_get(cs, i), "Constraint"), "contype");
            if (!ct)
                continue;
            notnull |= strcmp(ct, "CONSTR_NOTNULL") == 0 || strcmp(ct, "CONSTR_PRIMARY") == 0;
            has_default |= strcmp(ct, "CONSTR_DEFAULT") == 0 || strcmp(ct, "CONSTR_IDENTITY") == 0 ||
                           strcmp(ct, "CONSTR_GENERATED") == 0;
        }
        if (notnull && !has_default && !is_serial(ty.name))
            add_finding(r->out, "add-column-not-null-no-default", r->line, H_NOT_NULL_NO_DEFAULT,
                        "ADD COLUMN %s.%s NOT NULL without a DEFAULT fails on a table with rows, and the "
                        "old application's INSERTs, which do not name the column, fail too", table, col);
        if (is_serial(ty.name))
            add_finding(r->out, "add-column-volatile-default", r->line, H_VOLATILE,
                        "ADD COLUMN %s.%s %s fills every existing row from a sequence, rewriting the "
                        "table under an ACCESS EXCLUSIVE lock", table, col, ty.name);
        const json_t *cons = jget(cd, "constraints");
        for (size_t i = 0; i < json_array_size(cons); i++) {
            const json_t *k = node_as(json_array_get(cons, i), "Constraint");
            const char *ct = jstr(k, "contype");
            if (!ct)
                continue;
            const char *vf;
            int unknown = 0;
            if (strcmp(ct, "CONSTR_DEFAULT") == 0 && (vf = find_volatile(jget(k, "raw_expr"), &unknown)))
                add_finding(r->out, "add-column-volatile-default", r->line, H_VOLATILE,
                            "ADD COLUMN %s.%s with DEFAULT calling %s()%s computes it for "
                            "every existing row, rewriting the table under an ACCESS EXCLUSIVE lock",
                            table, col, vf,
                            unknown ? ", which zdm does not know to be immutable or stable," : " (volatile)")
                    ->object = unknown ? zdm_xstrdup(vf) : NULL;
            else if (strcmp(ct, "CONSTR_IDENTITY") == 0)
                add_finding(r->out, "add-column-volatile-default", r->line, H_VOLATILE,
                            "ADD COLUMN %s.%s GENERATED AS IDENTITY numbers every existing row, "
                            "rewriting the table under an ACCESS EXCLUSIVE lock", table, col);
            else if (strcmp(ct, "CONSTR_GENERATED") == 0)
                add_finding(r->out, "add-column-volatile-default", r->line, H_VOLATILE,
                            "ADD COLUMN %s.%s GENERATED ALWAYS AS (...) STORED computes every "
                            "existing row, rewriting the table under an ACCESS EXCLUSIVE lock", table, col);
            else if (strcmp(ct, "CONSTR_FOREIGN") == 0 || strcmp(ct, "CONSTR_CHECK") == 0)
                add_finding(r->out, "constraint-not-valid", r->line, H_NEW_COL_CONSTRAINT,
                            "ADD COLUMN %s.%s with a %s constraint checks every row of %s while "
                            "holding an ACCESS EXCLUSIVE lock", table, col,
                            ct[7] == 'F' ? "REFERENCES" : "CHECK", table);
            else if (strcmp(ct, "CONSTR_UNIQUE") == 0 || strcmp(ct, "CONSTR_PRIMARY") == 0)
                add_finding(r->out, "index-not-concurrent", r->line, H_UNIQUE,
                            "ADD COLUMN %s.%s %s builds an index while holding an ACCESS EXCLUSIVE "
                            "lock on %s", table, col, ct[7] == 'U' ? "UNIQUE" : "PRIMARY KEY", table);
        }
    }
    ltable *t = table_find(r->c, table);
    if (!t)
        t = table_add(r->c, table, 0, 0);
    col_set_type(col_add(t, col), &ty);
}

static void add_constraint(lint_run *r, const char *table, const json_t *k)
{
    const char *ct = jstr(k, "contype");
    const char *name = jstr(k, "conname");
    if (!ct)
        return;
    int fresh = is_new(r, table);
    int not_valid = jtrue(k, "skip_validation");
    if (strcmp(ct, "CONSTR_CHECK") == 0) {
        const char *col = not_null_column(jget(k, "raw_expr"));
        if (col)
            check_add(r->c, name, table, col, !not_valid);
    }
    if (not_valid && name) {
        /* Once each: VALIDATE looks the list through. */
        char *key = zdm_xasprintf("%s\n%s", table, name);
        int seen = 0;
        for (size_t j = 0; j < r->not_valid.n && !seen; j++)
            seen = strcmp(r->not_valid.v[j], key) == 0;
        if (seen)
            free(key);
        else
            zdm_strv_push_owned(&r->not_valid, key);
    }
    if (fresh)
        return;
    if ((strcmp(ct, "CONSTR_FOREIGN") == 0 || strcmp(ct, "CONSTR_CHECK") == 0) && !not_valid)
        add_finding(r->out, "constraint-not-valid", r->line, H_NOT_VALID,
                    "ADD %s%s%s on %s checks every existing row while holding a lock that blocks "
                    "writes", ct[7] == 'F' ? "FOREIGN KEY" : "CHECK", name ? " " : "", name ? name : "",
                    table);
    else if ((strcmp(ct, "CONSTR_UNIQUE") == 0 || strcmp(ct, "CONSTR_PRIMARY") == 0 ||
              strcmp(ct, "CONSTR_EXCLUSION") == 0) && !jstr(k, "indexname"))
        add_finding(r->out, "index-not-concurrent", r->line, H_UNIQUE,
                    "ADD %s on %s builds its index while holding an ACCESS EXCLUSIVE lock",
                    ct[7] == 'U' ? "UNIQUE" : ct[7] == 'P' ? "PRIMARY KEY" : "EXCLUDE", table);
}

static void alter_table(lint_run *r, const json_t *s)
{
    const char *objtype = jstr(s, "objtype");
    char *table = rel_name(jget(s, "relation"));
    if (!table)
        return;
    if (objtype && strcmp(objtype, "OBJECT_TABLE") != 0) {
        free(table);
        return;
    }
    note_ddl(r, table);
    plain_lock_timeout(r, table);
    const json_t *cmds = jget(s, "cmds");
    for (size_t i = 0; i < json_array_size(cmds); i++) {
        const json_t *cmd = node_as(json_array_get(cmds, i), "AlterTableCmd");
        const char *sub = jstr(cmd, "subtype");
        const char *name = jstr(cmd, "name");
        if (!sub)
            continue;
        int fresh = is_new(r, table);
        ltable *t = table_find(r->c, table);
        if (strcmp(sub, "AT_AddColumn") == 0) {
            const json_t *cd = node_as(jget(cmd, "def"), "ColumnDef");
            if (cd && jstr(cd, "colname"))
                add_column(r, table, cd);
            if (cd && !in_tx(r) && !jtrue(cmd, "missing_ok"))
                add_finding(r->out, "not-idempotent", r->line, H_IDEMPOTENT,
                            "ADD COLUMN %s.%s without IF NOT EXISTS in a step run without a transaction: "
                            "a retry after a crash fails", table, jstr(cd, "colname") ? jstr(cd, "colname") : "?");
        } else if (strcmp(sub, "AT_AlterColumnType") == 0 && name) {
            const json_t *cd = node_as(jget(cmd, "def"), "ColumnDef");
            ltype ty;
            type_of(jget(cd, "typeName"), &ty);
            lcol *k = col_find(t, name);
            if (!fresh) {
                if (jget(cd, "raw_default"))
                    add_finding(r->out, "alter-type-rewrite", r->line, H_TYPE,
                                "ALTER COLUMN %s.%s TYPE %s USING ... rewrites the table and its indexes "
                                "under an ACCESS EXCLUSIVE lock", table, name, type_display(ty.name));
                else if (!k || !k->type[0])
                    add_finding(r->out, "alter-type-rewrite", r->line, H_TYPE,
                                "ALTER COLUMN %s.%s TYPE %s rewrites the table and its indexes under an "
                                "ACCESS EXCLUSIVE lock (zdm cannot tell the column's current type from the "
                                "plans)", table, name, type_display(ty.name))
                        /* --db reads the current type: column and new type. */
                        ->object = zdm_xasprintf("%s\t%s\t%d\t%d\t%d\t%d", name, ty.name, ty.nmods, ty.mods[0],
                                                 ty.mods[1], ty.array);
                else if (!type_change_in_place(k, &ty))
                    add_finding(r->out, "alter-type-rewrite", r->line, H_TYPE,
                                "ALTER COLUMN %s.%s TYPE %s (from %s) rewrites the table and its indexes "
                                "under an ACCESS EXCLUSIVE lock", table, name, type_display(ty.name),
                                type_display(k->type));
            }
            if (!t)
                t = table_add(r->c, table, 0, 0);
            col_set_type(col_add(t, name), &ty);
        } else if (strcmp(sub, "AT_SetNotNull") == 0 && name) {
            if (!fresh && !not_null_validated(r->c, table, name))
                add_finding(r->out, "set-not-null", r->line, H_NOT_NULL,
                            "SET NOT NULL on %s.%s scans the whole table under an ACCESS EXCLUSIVE lock",
                            table, name)->object = zdm_xstrdup(name);
        } else if (strcmp(sub, "AT_AddConstraint") == 0) {
            const json_t *k = node_as(jget(cmd, "def"), "Constraint");
            if (k)
                add_constraint(r, table, k);
        } else if (strcmp(sub, "AT_ValidateConstraint") == 0 && name) {
            if (in_tx(r)) {
                char *key = zdm_xasprintf("%s\n%s", table, name);
                for (size_t j = 0; j < r->not_valid.n; j++)
                    if (strcmp(r->not_valid.v[j], key) == 0) {
                        add_finding(r->out, "validate-in-same-transaction", r->line, H_VALIDATE_SAME,
                                    "VALIDATE CONSTRAINT %s in the transaction that added it NOT VALID: the "
                                    "ACCESS EXCLUSIVE lock of ADD CONSTRAINT is still held while VALIDATE scans "
                                    "%s, so NOT VALID gains nothing", name, table);
                        break;
                    }
                free(key);
            }
            for (size_t j = 0; j < r->c->nck; j++)
                if (strcmp(r->c->ck[j].name, name) == 0 && strcmp(r->c->ck[j].table, table) == 0)
                    r->c->ck[j].validated = 1;
        } else if (strcmp(sub, "AT_DropConstraint") == 0 && name) {
            for (size_t j = 0; j < r->c->nck; j++)
                if (strcmp(r->c->ck[j].name, name) == 0 && strcmp(r->c->ck[j].table, table) == 0)
                    r->c->ck[j].validated = 0;
        } else if (strcmp(sub, "AT_DetachPartition") == 0) {
            const json_t *pc = node_as(jget(cmd, "def"), "PartitionCmd");
            if (!jtrue(pc, "concurrent")) {
                char *part = rel_name(jget(pc, "name"));
                add_finding(r->out, "detach-partition-not-concurrent", r->line, H_DETACH,
                            "DETACH PARTITION %s from %s takes an ACCESS EXCLUSIVE lock on %s: reads and "
                            "writes of every partition wait", part ? part : "?", table, table);
                free(part);
            } else if (in_tx(r)) {
                add_finding(r->out, "concurrent-in-transaction", r->line, H_CONC_TX,
                            "DETACH PARTITION ... CONCURRENTLY cannot run inside a transaction block");
            }
        } else if (strcmp(sub, "AT_DropNotNull") == 0 && name) {
            if (r->phase == ZDM_PHASE_EXPAND && !fresh)
                add_finding(r->out, "drop-not-null", r->line, H_DROP_NOT_NULL,
                            "DROP NOT NULL on %s.%s in expand: the old application, running until cutover, "
                            "may read the column assuming it is never null", table, name);
        } else if (strcmp(sub, "AT_DropColumn") == 0 && name) {
            if (!in_tx(r) && !jtrue(cmd, "missing_ok"))
                add_finding(r->out, "not-idempotent", r->line, H_IDEMPOTENT,
                            "DROP COLUMN %s.%s without IF EXISTS in a step run without a transaction: a "
                            "retry after a crash fails", table, name);
            if (r->phase == ZDM_PHASE_EXPAND && !fresh)
                add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                            "DROP COLUMN %s.%s in expand: the old application, still running until "
                            "cutover, may read or write it", table, name);
            if (t)
                col_drop(t, name);
        }
    }
    free(table);
}

static void rename_stmt(lint_run *r, const json_t *s)
{
    const char *kind = jstr(s, "renameType");
    if (!kind)
        return;
    int is_table = strcmp(kind, "OBJECT_TABLE") == 0 || strcmp(kind, "OBJECT_VIEW") == 0 ||
                   strcmp(kind, "OBJECT_MATVIEW") == 0;
    int is_col = strcmp(kind, "OBJECT_COLUMN") == 0;
    if (!is_table && !is_col)
        return;
    char *table = rel_name(jget(s, "relation"));
    const char *newname = jstr(s, "newname");
    if (!table || !newname) {
        free(table);
        return;
    }
    note_ddl(r, table);
    plain_lock_timeout(r, table);
    if (r->phase == ZDM_PHASE_EXPAND && !is_new(r, table)) {
        if (is_col)
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "RENAME COLUMN %s.%s in expand: the old application, still running until "
                        "cutover, uses the old name", table, jstr(s, "subname") ? jstr(s, "subname") : "?");
        else {
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "RENAME %s TO %s in expand: the old application, still running until cutover, "
                        "uses the old name (unless a view takes it in the same step)", table, newname);
            note_rename(r, table);
        }
    }
    ltable *t = table_find(r->c, table);
    if (t && is_col && jstr(s, "subname")) {
        lcol *k = col_find(t, jstr(s, "subname"));
        if (k) {
            free(k->name);
            k->name = zdm_xstrdup(newname);
        }
    } else if (t && is_table) {
        const json_t *rv = jget(s, "relation");
        char *to = rel_name2(jstr(rv, "schemaname"), newname);
        if (strcmp(to, table) != 0) {
            table_drop(r->c, to);
            t = table_find(r->c, table); /* table_drop may have moved it */
            if (t) {
                free(t->name);
                t->name = to;
                to = NULL;
            }
        }
        free(to);
    }
    free(table);
}

static void drop_stmt(lint_run *r, const json_t *s)
{
    const char *kind = jstr(s, "removeType");
    if (kind && !in_tx(r) && !jtrue(s, "missing_ok") &&
        (strcmp(kind, "OBJECT_TABLE") == 0 || strcmp(kind, "OBJECT_INDEX") == 0 ||
         strcmp(kind, "OBJECT_VIEW") == 0))
        add_finding(r->out, "not-idempotent", r->line, H_IDEMPOTENT,
                    "DROP %s without IF EXISTS in a step run without a transaction: a retry after a crash "
                    "fails", kind + 7);
    if (kind && strcmp(kind, "OBJECT_INDEX") == 0) {
        const json_t *objs = jget(s, "objects");
        for (size_t i = 0; i < json_array_size(objs); i++) {
            char *idx = list_name(jget(node_as(json_array_get(objs, i), "List"), "items"));
            if (!idx)
                continue;
            char *key = zdm_xasprintf("\001index %s", idx);
            int fresh = is_new(r, key);
            table_drop(r->c, key);
            if (jtrue(s, "concurrent") && in_tx(r))
                add_finding(r->out, "concurrent-in-transaction", r->line, H_CONC_TX,
                            "DROP INDEX CONCURRENTLY %s cannot run inside a transaction block", idx);
            else if (!jtrue(s, "concurrent") && !fresh)
                add_finding(r->out, "drop-index-not-concurrent", r->line, H_DROP_INDEX,
                            "DROP INDEX %s without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table: "
                            "reads and writes wait, and wait behind any long query", idx)
                    ->object = zdm_xstrdup(idx); /* --db finds its table */
            free(key);
            free(idx);
        }
        return;
    }
    if (!kind || (strcmp(kind, "OBJECT_TABLE") != 0 && strcmp(kind, "OBJECT_VIEW") != 0 &&
                  strcmp(kind, "OBJECT_MATVIEW") != 0))
        return;
    const json_t *objs = jget(s, "objects");
    for (size_t i = 0; i < json_array_size(objs); i++) {
        const json_t *l = node_as(json_array_get(objs, i), "List");
        char *table = list_name(jget(l, "items"));
        if (!table)
            continue;
        note_ddl(r, table);
        plain_lock_timeout(r, table);
        if (r->phase == ZDM_PHASE_EXPAND && !is_new(r, table))
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "DROP %s %s in expand: the old application, still running until cutover, may "
                        "use it", strcmp(kind, "OBJECT_TABLE") == 0 ? "TABLE" : "VIEW", table);
        table_drop(r->c, table);
        free(table);
    }
}

static void stmt_create(lint_run *r, const json_t *s)
{
    char *table = rel_name(jget(s, "relation"));
    if (!table)
        return;
    note_ddl(r, table);
    if (!in_tx(r) && !jtrue(s, "if_not_exists"))
        add_finding(r->out, "not-idempotent", r->line, H_IDEMPOTENT,
                    "CREATE TABLE %s without IF NOT EXISTS in a step run without a transaction: a retry "
                    "after a crash fails", table);
    const json_t *elts = jget(s, "tableElts");
    for (size_t i = 0; i < json_array_size(elts); i++) {
        const json_t *cd = node_as(json_array_get(elts, i), "ColumnDef");
        if (cd && jstr(cd, "colname")) {
            ltype ty;
            type_of(jget(cd, "typeName"), &ty);
            type_hygiene(r, table, cd, &ty);
        }
    }
    if (!(jtrue(s, "if_not_exists") && table_find(r->c, table))) {
        ltable *t = table_add(r->c, table, r->c->gen, (int)r->phase);
        columns_from(t, elts);
    }
    free(table);
}

/* CREATE TABLE AS, CREATE VIEW (view = 1) */
static void stmt_create_as(lint_run *r, const json_t *s, int view)
{
    char *table = rel_name(view ? jget(s, "view") : jget(jget(s, "into"), "rel"));
    if (table) {
        note_ddl(r, table);
        table_add(r->c, table, r->c->gen, (int)r->phase);
        if (view)
            zdm_strv_push(&r->views, table);
    }
    free(table);
}

static void stmt_create_table_as(lint_run *r, const json_t *s)
{
    stmt_create_as(r, s, 0);
}

static void stmt_view(lint_run *r, const json_t *s)
{
    stmt_create_as(r, s, 1);
}

static void stmt_index(lint_run *r, const json_t *s)
{
    char *table = rel_name(jget(s, "relation"));
    if (!table)
        return;
    note_ddl(r, table);
    if (jstr(s, "idxname")) {
        char *key = zdm_xasprintf("\001index %s", jstr(s, "idxname"));
        if (!(jtrue(s, "if_not_exists") && table_find(r->c, key)))
            table_add(r->c, key, r->c->gen, (int)r->phase);
        free(key);
    }
    if (jtrue(s, "concurrent") && in_tx(r))
        add_finding(r->out, "concurrent-in-transaction", r->line, H_CONC_TX,
                    "CREATE INDEX CONCURRENTLY cannot run inside a transaction block: the step fails");
    if (!in_tx(r) && !jtrue(s, "if_not_exists"))
        add_finding(r->out, "not-idempotent", r->line, H_IDEMPOTENT,
                    "CREATE INDEX%s%s without IF NOT EXISTS in a step run without a transaction: a retry "
                    "after a crash fails (zdm drops an INVALID index first, not a finished one)",
                    jstr(s, "idxname") ? " " : "", jstr(s, "idxname") ? jstr(s, "idxname") : "");
    if (!jtrue(s, "concurrent"))
        plain_lock_timeout(r, table);
    if (!jtrue(s, "concurrent") && !is_new(r, table)) {
        zdm_lint_finding *f = add_finding(
            r->out, "index-not-concurrent", r->line, H_INDEX,
            "CREATE %sINDEX%s%s on %s without CONCURRENTLY blocks writes to %s until the index is built",
            jtrue(s, "unique") ? "UNIQUE " : "", jstr(s, "idxname") ? " " : "",
            jstr(s, "idxname") ? jstr(s, "idxname") : "", table, table);
        /* --db: IF NOT EXISTS of an index the database has does nothing. */
        if (jtrue(s, "if_not_exists") && jstr(s, "idxname"))
            f->object = zdm_xstrdup(jstr(s, "idxname"));
    }
    free(table);
}

static void stmt_truncate(lint_run *r, const json_t *s)
{
    const json_t *rels = jget(s, "relations");
    if (jstr(s, "behavior") && strcmp(jstr(s, "behavior"), "DROP_CASCADE") == 0) {
        char *first = rel_name(json_array_get(rels, 0));
        add_finding(r->out, "truncate-cascade", r->line,
                    "name every table to empty (TRUNCATE a, b) and leave CASCADE out",
                    "TRUNCATE %s CASCADE also empties every table with a foreign key to it, and every "
                    "table referencing those, whatever this migration meant", first ? first : "?");
        free(first);
    }
    for (size_t i = 0; i < json_array_size(rels); i++) {
        char *table = rel_name(json_array_get(rels, i));
        note_table(r, table);
        if (table && r->phase == ZDM_PHASE_EXPAND && !is_new(r, table))
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "TRUNCATE %s in expand empties a table the old application uses", table);
        free(table);
    }
}

static void stmt_vacuum(lint_run *r, const json_t *s)
{
    const json_t *opts = jget(s, "options");
    int full = 0;
    for (size_t i = 0; i < json_array_size(opts); i++) {
        const json_t *d = node_as(json_array_get(opts, i), "DefElem");
        if (!jstr(d, "defname") || strcmp(jstr(d, "defname"), "full") != 0)
            continue;
        const json_t *arg = jget(d, "arg");
        const char *v = jstr(node_as(arg, "String"), "sval");
        const json_t *iv = node_as(arg, "Integer");
        full = !arg || (v && strcmp(v, "false") != 0 && strcmp(v, "off") != 0) ||
               (iv && json_integer_value(jget(iv, "ival")) != 0);
    }
    if (in_tx(r))
        add_finding(r->out, "concurrent-in-transaction", r->line, H_CONC_TX,
                    "VACUUM cannot run inside a transaction block: the step fails");
    if (full) {
        const json_t *rels = jget(s, "rels");
        char *table = NULL;
        for (size_t i = 0; i < json_array_size(rels); i++) {
            free(table);
            table = rel_name(jget(node_as(json_array_get(rels, i), "VacuumRelation"), "relation"));
            note_ddl(r, table);
        }
        add_finding(r->out, "heavy-lock", r->line, H_VACUUM_FULL,
                    "VACUUM FULL%s%s rewrites the table under an ACCESS EXCLUSIVE lock: reads and "
                    "writes wait until it ends", table ? " " : "", table ? table : "");
        free(table);
    }
}

static void stmt_cluster(lint_run *r, const json_t *s)
{
    char *table = rel_name(jget(s, "relation"));
    note_ddl(r, table);
    add_finding(r->out, "heavy-lock", r->line, H_CLUSTER,
                "CLUSTER%s%s rewrites the table under an ACCESS EXCLUSIVE lock: reads and writes "
                "wait until it ends", table ? " " : "", table ? table : "");
    free(table);
}

static void stmt_lock(lint_run *r, const json_t *s)
{
    static const char *const modes[] = {"", "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE",
                                        "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
                                        "EXCLUSIVE", "ACCESS EXCLUSIVE"};
    json_int_t mode = json_integer_value(jget(s, "mode"));
    if (mode >= 5 && mode <= 8) {
        char *table = rel_name(json_array_get(jget(s, "relations"), 0));
        note_table(r, table);
        add_finding(r->out, "heavy-lock", r->line, H_LOCK,
                    "LOCK TABLE %s IN %s MODE blocks %s for as long as the transaction lasts",
                    table ? table : "?", modes[mode], mode == 8 ? "reads and writes" : "writes");
        free(table);
    }
}

static void stmt_reindex(lint_run *r, const json_t *s)
{
    const json_t *params = jget(s, "params");
    int conc = 0;
    for (size_t i = 0; i < json_array_size(params); i++) {
        const char *d = jstr(node_as(json_array_get(params, i), "DefElem"), "defname");
        conc |= d && strcmp(d, "concurrently") == 0;
    }
    if (conc && in_tx(r))
        add_finding(r->out, "concurrent-in-transaction", r->line, H_CONC_TX,
                    "REINDEX CONCURRENTLY cannot run inside a transaction block: the step fails");
    if (!conc) {
        char *what = rel_name(jget(s, "relation"));
        add_finding(r->out, "heavy-lock", r->line, H_REINDEX,
                    "REINDEX%s%s without CONCURRENTLY blocks writes (and reads using the index) "
                    "until it ends", what ? " " : "", what ? what : "");
        free(what);
    }
}

static void stmt_transaction(lint_run *r, const json_t *s)
{
    const char *k = jstr(s, "kind");
    if (!k)
        return;
    int begin = strcmp(k, "TRANS_STMT_BEGIN") == 0 || strcmp(k, "TRANS_STMT_START") == 0;
    int end = strcmp(k, "TRANS_STMT_COMMIT") == 0 || strcmp(k, "TRANS_STMT_ROLLBACK") == 0 ||
              strcmp(k, "TRANS_STMT_PREPARE") == 0 || strcmp(k, "TRANS_STMT_COMMIT_PREPARED") == 0 ||
              strcmp(k, "TRANS_STMT_ROLLBACK_PREPARED") == 0;
    if (r->plain) {
        if (begin && r->explicit_tx)
            add_finding(r->out, "transaction-control", r->line, H_PLAIN_TX,
                        "%s while the transaction begun on line %d is still open: PostgreSQL warns and "
                        "ignores it, so its COMMIT commits the earlier statements too", k + 11,
                        r->begin_line);
        if (begin) {
            r->begin_line = r->line;
            r->begin_off = r->off;
        } else if (end) {
            r->begin_line = 0;
        }
    } else if (begin || end)
        add_finding(r->out, "transaction-control", r->line, H_TX,
                    "%s inside a step: zdm owns the step's transaction, and %s", k + 11,
                    begin ? "a BEGIN of its own breaks zdm's lock_timeout and retry, and its record of "
                            "the step"
                          : "a COMMIT or ROLLBACK in the middle leaves the step half-applied and "
                            "recorded as neither done nor undone");
    if (begin)
        r->explicit_tx = 1;
    else if (end)
        r->explicit_tx = 0;
}

static void stmt_variable_set(lint_run *r, const json_t *s)
{
    const char *name = jstr(s, "name");
    if (name && strcmp(name, "lock_timeout") == 0)
        r->lock_timeout_set = 1;
}

static void stmt_dropdb(lint_run *r, const json_t *s)
{
    add_finding(r->out, "drop-database", r->line, H_DROP_DB,
                "DROP DATABASE %s: irreversible, and no schema change needs it",
                jstr(s, "dbname") ? jstr(s, "dbname") : "?");
}

static void stmt_create_domain(lint_run *r, const json_t *s)
{
    const json_t *cs = jget(s, "constraints");
    for (size_t i = 0; i < json_array_size(cs); i++) {
        const char *ct = jstr(node_as(json_array_get(cs, i), "Constraint"), "contype");
        if (ct && strcmp(ct, "CONSTR_CHECK") == 0) {
            char *d = list_name(jget(s, "domainname"));
            add_finding(r->out, "domain-constraint", r->line, H_DOMAIN,
                        "CREATE DOMAIN %s with a CHECK: changing that check later scans every column of "
                        "the domain in every table, under locks, with no NOT VALID way round",
                        d ? d : "?");
            free(d);
            break;
        }
    }
}

static void stmt_alter_domain(lint_run *r, const json_t *s)
{
    const char *st = jstr(s, "subtype");
    if (st && strcmp(st, "C") == 0) {
        char *d = list_name(jget(s, "typeName"));
        add_finding(r->out, "domain-constraint", r->line, H_DOMAIN,
                    "ALTER DOMAIN %s ADD CONSTRAINT checks every column of the domain in every table "
                    "while holding locks that block writes", d ? d : "?");
        free(d);
    }
}

static void stmt_create_trigger(lint_run *r, const json_t *s)
{
    char *table = rel_name(jget(s, "relation"));
    note_ddl(r, table);
    free(table);
}

/* UPDATE (update = 1), DELETE */
static void stmt_dml(lint_run *r, const json_t *s, int update)
{
    char *table = rel_name(jget(s, "relation"));
    note_table(r, table);
    if (table && r->phase == ZDM_PHASE_EXPAND && !is_new(r, table) &&
        where_is_everything(jget(s, "whereClause")))
        add_finding(r->out, "mass-dml-in-expand", r->line, H_MASS_DML,
                    "%s of every row of %s in expand: one long transaction locking every row, "
                    "while the application runs", update ? "UPDATE" : "DELETE", table);
    free(table);
}

static void stmt_update(lint_run *r, const json_t *s)
{
    stmt_dml(r, s, 1);
}

static void stmt_delete(lint_run *r, const json_t *s)
{
    stmt_dml(r, s, 0);
}

/* The statements lint looks at, by parse-tree node type. */
static const struct {
    const char *type;
    void (*lint)(lint_run *r, const json_t *s);
} stmt_linters[] = {
    {"CreateStmt", stmt_create},
    {"CreateTableAsStmt", stmt_create_table_as},
    {"ViewStmt", stmt_view},
    {"IndexStmt", stmt_index},
    {"AlterTableStmt", alter_table},
    {"RenameStmt", rename_stmt},
    {"DropStmt", drop_stmt},
    {"TruncateStmt", stmt_truncate},
    {"VacuumStmt", stmt_vacuum},
    {"ClusterStmt", stmt_cluster},
    {"LockStmt", stmt_lock},
    {"ReindexStmt", stmt_reindex},
    {"TransactionStmt", stmt_transaction},
    {"VariableSetStmt", stmt_variable_set},
    {"DropdbStmt", stmt_dropdb},
    {"CreateDomainStmt", stmt_create_domain},
    {"AlterDomainStmt", stmt_alter_domain},
    {"CreateTrigStmt", stmt_create_trigger},
    {"UpdateStmt", stmt_update},
    {"DeleteStmt", stmt_delete},
};

static void lint_stmt(lint_run *r, const json_t *stmt)
{
    json_t *s = NULL;
    const char *type = node_type(stmt, &s);
    if (!type)
        return;
    for (size_t i = 0; i < sizeof stmt_linters / sizeof stmt_linters[0]; i++)
        if (strcmp(type, stmt_linters[i].type) == 0) {
            stmt_linters[i].lint(r, s);
            return;
        }
}

/* Byte offset of the `chars`-th character (0-based) of UTF-8 text. */
static size_t char_to_byte(const char *s, size_t chars)
{
    size_t i = 0;
    while (s[i] && chars > 0) {
        i++;
        while ((s[i] & 0xC0) == 0x80)
            i++;
        chars--;
    }
    return i;
}

static int line_at(const char *s, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && s[i]; i++)
        line += s[i] == '\n';
    return line;
}

/* A statement's text starts after the previous one's ';': skip the blanks
 * and comments in between to find its first line. */
static size_t skip_blanks(const char *s, size_t i)
{
    for (;;) {
        while (s[i] && isspace((unsigned char)s[i]))
            i++;
        if (s[i] == '-' && s[i + 1] == '-') {
            while (s[i] && s[i] != '\n')
                i++;
        } else if (s[i] == '/' && s[i + 1] == '*') {
            const char *e = strstr(s + i + 2, "*/");
            i = e ? (size_t)(e - s) + 2 : strlen(s);
        } else {
            return i;
        }
    }
}

/* A parse-error finding for libpg_query's error on sql. */
static void parse_error(const char *sql, const PgQueryError *e, zdm_lint_result *out)
{
    int cur = e->cursorpos;
    size_t off = cur > 0 ? char_to_byte(sql, (size_t)cur - 1) : 0;
    int line = line_at(sql, off);
    add_finding(out, "parse-error", line, H_PARSE, "not valid PostgreSQL: %s",
                e->message ? e->message : "syntax error")->offset = off;
}

/* JSON bytes that matter when skipping a value: one table lookup per
 * byte in the loops below (the text of a large query is megabytes):
 * '"' J_QUOTE, '\\' J_ESC, '{' '[' J_OPEN, '}' ']' J_CLOSE, ',' J_COMMA,
 * NUL J_END. */
enum { J_QUOTE = 1, J_ESC, J_OPEN, J_CLOSE, J_COMMA, J_END };
static const unsigned char json_cls[256] = {
    6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 4, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Index just past the JSON string opening at js[i]. */
static size_t json_str_end(const char *js, size_t i)
{
    size_t k = i + 1;
    for (;;) {
        unsigned char c;
        while ((c = json_cls[(unsigned char)js[k]]) == 0 || c >= J_OPEN) {
            if (c == J_END)
                return k;
            k++;
        }
        if (c == J_QUOTE)
            return k + 1;
        k += js[k + 1] ? 2 : 1; /* J_ESC */
    }
}

/* Index just past the JSON value starting at js[i]. */
static size_t json_value_end(const char *js, size_t i)
{
    int depth = 0;
    for (size_t k = i;;) {
        unsigned char c;
        while ((c = json_cls[(unsigned char)js[k]]) == 0 || c == J_ESC)
            k++;
        switch (c) {
        case J_QUOTE:
            k = json_str_end(js, k);
            if (depth == 0)
                return k;
            continue;
        case J_OPEN:
            depth++;
            break;
        case J_CLOSE:
            if (depth == 0)
                return k; /* the end of a scalar in the enclosing container */
            if (--depth == 0)
                return k + 1;
            break;
        case J_COMMA:
            if (depth == 0)
                return k;
            break;
        default: /* J_END */
            return k;
        }
        k++;
    }
}

/* The parse tree's JSON text (one statement) with the fields no rule reads
 * emptied: a view's or CREATE TABLE AS's query, an UPDATE's SET list and
 * FROM, an index's columns and predicate, ...  In one pass over the text,
 * so that "CREATE VIEW v AS SELECT" and 60,000 columns does not become a
 * tree of 400,000 nodes (2.7 s under ASan).  Only the statement's own
 * fields (depth 5: {"stmts": [{"stmt": {"ViewStmt": {HERE}}}]}) are
 * emptied; expressions the rules walk keep everything.  Returns NULL when
 * nothing would be emptied. */
static char *prune_unread(const char *js)
{
    static const char *const unread[] = {"query", "targetList", "fromClause", "returningList", "withClause",
                                         "usingClause", "indexParams", "indexIncludingParams", "whenClause",
                                         NULL};
    size_t n = strlen(js);
    if (n < 8192)
        return NULL; /* small: the tree costs less than this pass */
    char *out = zdm_xmalloc(n + 1);
    size_t w = 0;
    int depth = 0;
    for (size_t i = 0; i < n;) {
        char c = js[i];
        if (c == '"') {
            size_t e = json_str_end(js, i);
            int skip = 0;
            if (depth == 5 && js[e] == ':')
                for (size_t u = 0; unread[u] && !skip; u++)
                    skip = strlen(unread[u]) == e - i - 2 && strncmp(js + i + 1, unread[u], e - i - 2) == 0;
            memcpy(out + w, js + i, e - i);
            w += e - i;
            i = e;
            if (skip) {
                out[w++] = ':';
                i = json_value_end(js, i + 1);
                memcpy(out + w, "null", 4);
                w += 4;
            }
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        out[w++] = c;
        i++;
    }
    out[w] = '\0';
    return out;
}

/* Parses sql; on failure appends a parse-error finding and returns NULL.
 * prune: leave out the fields no rule reads (prune_unread). */
static json_t *parse_tree(const char *sql, zdm_lint_result *out, int prune)
{
    PgQueryParseResult pr = pg_query_parse(sql);
    json_t *tree = NULL;
    if (pr.error) {
        parse_error(sql, pr.error, out);
    } else {
        json_error_t je;
        char *pruned = prune ? prune_unread(pr.parse_tree) : NULL;
        tree = json_loads(pruned ? pruned : pr.parse_tree, 0, &je);
        free(pruned);
        if (!tree)
            add_finding(out, "parse-error", 1, H_PARSE, "could not read the parse tree: %s", je.text);
    }
    pg_query_free_parse_result(pr);
    return tree;
}

static json_t *parse(const char *sql, zdm_lint_result *out)
{
    return parse_tree(sql, out, 0);
}

/* Can the statement starting at s (blanks and comments skipped) be one a
 * rule looks at?  Queries, INSERTs and the like are not (their parse
 * trees are SelectStmt, InsertStmt, ...: no entry in stmt_linters), and
 * they are what makes an SQL text large: a data load of thousands of rows
 * turned into a JSON tree of millions of nodes is most of lint's time and
 * memory (a 300 KB INSERT took 1.5 s and 500 MB under ASan).  Only words
 * whose statements are never linted are listed, so a rule can miss
 * nothing. */
static int may_lint(const char *s)
{
    static const char *const never[] = {"SELECT", "INSERT", "VALUES", "TABLE", "MERGE", "COPY", "EXPLAIN",
                                        "GRANT", "REVOKE", "COMMENT", "CALL", "DO", "SHOW", "EXECUTE",
                                        "NOTIFY", "LISTEN", NULL};
    if (*s == '(')
        return 0; /* (SELECT ...) */
    size_t n = 0;
    while (isalpha((unsigned char)s[n]))
        n++;
    for (size_t i = 0; never[i]; i++)
        if (strlen(never[i]) == n && strncasecmp(s, never[i], n) == 0)
            return 0;
    return 1;
}

static void run_free(lint_run *r)
{
    free(r->cur_table);
    zdm_buf_free(&r->stmt_tables);
    zdm_strv_free(&r->ddl);
    free(r->ddl_line);
    free(r->ddl_off);
    zdm_strv_free(&r->renamed);
    zdm_strv_free(&r->views);
    zdm_strv_free(&r->not_valid);
    free(r->renamed_finding);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ALTER TABLE a RENAME TO b; CREATE VIEW a AS SELECT * FROM b: the old
 * application reads and writes through the view, so the rename's
 * destructive-in-expand finding goes.  In (R + V) log V and one pass over
 * the findings: comparing every rename with every view and moving the
 * findings down once per withdrawn one was quadratic in a file of many
 * renames. */
static void drop_covered_renames(lint_run *r, zdm_lint_result *out)
{
    if (r->renamed.n == 0 || r->views.n == 0)
        return;
    char **views = zdm_xmalloc(r->views.n * sizeof *views);
    memcpy(views, r->views.v, r->views.n * sizeof *views);
    qsort(views, r->views.n, sizeof *views, str_cmp);
    unsigned char *drop = zdm_xcalloc(out->n, 1);
    size_t lo = out->n;
    for (size_t i = 0; i < r->renamed.n; i++) {
        if (!bsearch(&r->renamed.v[i], views, r->views.n, sizeof *views, str_cmp))
            continue;
        size_t k = r->renamed_finding[i];
        drop[k] = 1;
        if (k < lo)
            lo = k;
    }
    size_t w = lo;
    for (size_t k = lo; k < out->n; k++) {
        if (!drop[k]) {
            out->v[w++] = out->v[k];
            continue;
        }
        free(out->v[k].message);
        free(out->v[k].reason);
        free(out->v[k].table);
        free(out->v[k].object);
    }
    out->n = w;
    free(drop);
    free(views);
}

/* qsort has no context argument in C11: the names being sorted. */
static const char *const *ddl_sort_names;

static int ddl_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(ddl_sort_names[x], ddl_sort_names[y]);
    return c ? c : (x > y) - (x < y); /* ties in statement order */
}

static int lint_pg(zdm_lint_ctx *ctx, const char *sql, zdm_phase_kind phase, int in_transaction,
                   zdm_lint_result *out, int plain)
{
    /* The whole text goes through the parser once for its errors and the
     * bounds of its statements (no parse tree is built); then only the
     * statements a rule may look at are parsed again, one at a time, into
     * the JSON tree the rules read.  The cost of a text is then its parse
     * plus the trees of its DDL, not a tree of every row of every INSERT. */
    PgQuerySplitResult sp = pg_query_split_with_parser(sql);
    if (sp.error) {
        parse_error(sql, sp.error, out);
        pg_query_free_split_result(sp);
        return -1;
    }
    lint_run r;
    memset(&r, 0, sizeof r);
    r.c = ctx;
    r.out = out;
    r.phase = phase;
    r.in_tx = in_transaction;
    r.plain = plain;
    int rc = 0;
    size_t len = strlen(sql);
    size_t line_off = 0; /* statements come in order: count lines on from the last one */
    int line_no = 1;
    for (int i = 0; i < sp.n_stmts; i++) {
        size_t loc = sp.stmts[i]->stmt_location > 0 ? (size_t)sp.stmts[i]->stmt_location : 0;
        if (loc >= len)
            continue;
        size_t slen = sp.stmts[i]->stmt_len > 0 ? (size_t)sp.stmts[i]->stmt_len : len - loc;
        if (slen > len - loc)
            slen = len - loc;
        r.off = skip_blanks(sql, loc);
        if (r.off < line_off) {
            line_off = 0;
            line_no = 1;
        }
        line_no += zdm_sql_count_lines(sql, line_off, r.off);
        line_off = r.off;
        r.line = line_no;
        if (!may_lint(sql + r.off))
            continue;
        char *one = zdm_xstrndup(sql + loc, slen);
        json_t *tree = parse_tree(one, out, 1);
        free(one);
        if (!tree) {
            rc = -1; /* (the whole text parsed: not expected) */
            continue;
        }
        const json_t *stmts = jget(tree, "stmts");
        for (size_t j = 0; j < json_array_size(stmts); j++) {
            zdm_buf_free(&r.stmt_tables);
            size_t k0 = out->n;
            lint_stmt(&r, jget(json_array_get(stmts, j), "stmt"));
            stmt_done(&r, k0);
        }
        json_decref(tree);
    }
    pg_query_free_split_result(sp);
    drop_covered_renames(&r, out);
    if (plain && r.begin_line)
        add_finding(out, "transaction-control", r.begin_line, H_PLAIN_TX,
                    "BEGIN is never committed or rolled back: psql rolls it back at the end, other tools "
                    "leave it open holding every lock it took")->offset = r.begin_off;
    /* Group the DDL statements by table in n log n (a file of thousands
     * of statements must not take minutes): first[i] is the index of the
     * first statement on i's table, count and second kept at that index. */
    size_t n = r.ddl.n;
    size_t *order = zdm_xmalloc((n ? n : 1) * sizeof *order);
    size_t *first = zdm_xmalloc((n ? n : 1) * sizeof *first);
    size_t *count = zdm_xcalloc(n ? n : 1, sizeof *count);
    size_t *second = zdm_xcalloc(n ? n : 1, sizeof *second);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    ddl_sort_names = (const char *const *)r.ddl.v;
    qsort(order, n, sizeof *order, ddl_cmp);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        first[i] = k > 0 && strcmp(r.ddl.v[order[k - 1]], r.ddl.v[i]) == 0 ? first[order[k - 1]] : i;
        if (++count[first[i]] == 2)
            second[first[i]] = i;
    }
    zdm_sql_cursor cur = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (first[i] != i)
            continue;
        if (out->nddl == out->capddl) {
            out->capddl = out->capddl ? out->capddl * 2 : 8;
            out->ddl = zdm_xrealloc(out->ddl, out->capddl * sizeof *out->ddl);
        }
        zdm_lint_ddl *d = &out->ddl[out->nddl++];
        memset(d, 0, sizeof *d);
        d->table = zdm_xstrdup(r.ddl.v[i]);
        zdm_sql_pos_next(&cur, sql, r.ddl_off[i], &d->line, &d->col);
        d->dialect = ZDM_LINT_DIALECT_PG;
    }
    if (!in_transaction) {
        /* A step outside a transaction that stops half-way leaves part of
         * its DDL applied: more than one change to a table is a problem. */
        for (size_t i = 0; i < n; i++) {
            if (first[i] != i || count[i] < 2)
                continue; /* counted at its first statement */
            add_finding(out, "multi-ddl-no-transaction", r.ddl_line[second[i]], H_MULTI_DDL,
                        "%zu DDL statements on %s in one step that runs without a transaction: a "
                        "failure half-way leaves some applied and the retry starts over", count[i],
                        r.ddl.v[i])->offset = r.ddl_off[second[i]];
        }
    }
    free(order);
    free(first);
    free(count);
    free(second);
    run_free(&r);
    return rc;
}

/* ---- SQLite: rules over tokens ---- */

typedef struct sl_stmt {
    const char *sql;
    const zdm_tok *t;
    size_t n;
} sl_stmt;

static int K(const sl_stmt *x, size_t i, const char *kw)
{
    return i < x->n && zdm_tok_is(x->sql, &x->t[i], kw);
}

/* A name at token i ("a", "s"."a", [a], `a`): its last part, unquoted,
 * into a new string; *next: the token after it. */
static char *sl_name(const sl_stmt *x, size_t i, size_t *next)
{
    char *name = NULL;
    for (;;) {
        if (i >= x->n || (x->t[i].kind != ZDM_TOK_WORD && x->t[i].kind != ZDM_TOK_QIDENT &&
                          x->t[i].kind != ZDM_TOK_STRING))
            break;
        const zdm_tok *t = &x->t[i];
        free(name);
        if (t->kind == ZDM_TOK_WORD)
            name = zdm_xstrndup(x->sql + t->off, t->len);
        else
            name = zdm_xstrndup(x->sql + t->off + 1, t->len >= 2 ? t->len - 2 : 0);
        i++;
        if (i < x->n && x->t[i].kind == ZDM_TOK_OP && x->t[i].len == 1 && x->sql[x->t[i].off] == '.')
            i++;
        else
            break;
    }
    if (next)
        *next = i;
    return name;
}

/* Index of keyword kw at parenthesis depth 0 from token i, or x->n. */
static size_t sl_find(const sl_stmt *x, size_t i, const char *kw)
{
    int depth = 0;
    for (; i < x->n; i++) {
        if (x->t[i].kind == ZDM_TOK_LPAREN)
            depth++;
        else if (x->t[i].kind == ZDM_TOK_RPAREN)
            depth--;
        else if (depth == 0 && zdm_tok_is(x->sql, &x->t[i], kw))
            return i;
    }
    return x->n;
}

static const char *const H_SL_ALTER =
    "rebuild the table the SQLite way (new table, copy, swap) in [backfill]-sized steps, or use a "
    "structured operation (op = ...), which zdm knows how to run on SQLite";
static const char *const H_SL_REBUILD =
    "copy rows in [backfill] (batched, resumable, short write locks) instead of one INSERT ... SELECT";
static const char *const H_SL_VACUUM =
    "run VACUUM out of band in a quiet hour, or use PRAGMA auto_vacuum = INCREMENTAL with "
    "incremental_vacuum";
static const char *const H_SL_PRAGMA =
    "set it on the connection outside the step (PRAGMA foreign_keys is a no-op inside a transaction)";

static void sl_add_column(lint_run *r, const sl_stmt *x, size_t i, const char *table)
{
    size_t next;
    char *col = sl_name(x, i, &next);
    int depth = 0, notnull = 0, has_default = 0, default_null = 0, nonconst = 0, stored = 0, key = 0;
    for (size_t k = next; k < x->n; k++) {
        if (x->t[k].kind == ZDM_TOK_LPAREN) {
            depth++;
            continue;
        }
        if (x->t[k].kind == ZDM_TOK_RPAREN) {
            depth--;
            continue;
        }
        if (depth != 0)
            continue;
        if (K(x, k, "NOT") && K(x, k + 1, "NULL"))
            notnull = 1, k++;
        else if (K(x, k, "PRIMARY") || K(x, k, "UNIQUE"))
            key = 1;
        else if (K(x, k, "STORED"))
            stored = 1;
        else if (K(x, k, "DEFAULT")) {
            has_default = 1;
            size_t d = k + 1;
            if (d < x->n && x->t[d].kind == ZDM_TOK_LPAREN)
                nonconst = 1;
            else if (K(x, d, "CURRENT_TIME") || K(x, d, "CURRENT_DATE") || K(x, d, "CURRENT_TIMESTAMP"))
                nonconst = 1;
            else if (K(x, d, "NULL"))
                default_null = 1;
        }
    }
    int fresh = is_new(r, table);
    if (key)
        add_finding(r->out, "sqlite-alter-unsupported", r->line, H_SL_ALTER,
                    "SQLite refuses ADD COLUMN %s.%s with PRIMARY KEY or UNIQUE (\"Cannot add a PRIMARY KEY "
                    "column\" / \"Cannot add a UNIQUE column\")", table, col ? col : "?");
    if (stored)
        add_finding(r->out, "sqlite-alter-unsupported", r->line, H_SL_ALTER,
                    "SQLite refuses ADD COLUMN %s.%s ... STORED (\"cannot add a STORED column\"); a VIRTUAL "
                    "generated column can be added", table, col ? col : "?");
    if (!fresh && notnull && (!has_default || default_null))
        add_finding(r->out, "sqlite-alter-unsupported", r->line, H_SL_ALTER,
                    "SQLite refuses ADD COLUMN %s.%s NOT NULL without a non-null DEFAULT on a table with "
                    "rows (\"Cannot add a NOT NULL column with default value NULL\")", table, col ? col : "?");
    if (!fresh && nonconst)
        add_finding(r->out, "sqlite-alter-unsupported", r->line, H_SL_ALTER,
                    "SQLite refuses ADD COLUMN %s.%s with a non-constant DEFAULT (an expression in "
                    "parentheses or CURRENT_*) on a table with rows (\"Cannot add a column with "
                    "non-constant default\")", table, col ? col : "?");
    ltable *t = table_find(r->c, table);
    if (!t)
        t = table_add(r->c, table, 0, 0);
    if (col)
        col_add(t, col);
    free(col);
}

static void sl_alter(lint_run *r, const sl_stmt *x)
{
    size_t i;
    char *table = sl_name(x, 2, &i);
    if (!table)
        return;
    note_table(r, table);
    int fresh = is_new(r, table);
    /* SQLite's ALTER TABLE does one thing. */
    int depth = 0;
    for (size_t k = i; k < x->n; k++) {
        depth += x->t[k].kind == ZDM_TOK_LPAREN ? 1 : x->t[k].kind == ZDM_TOK_RPAREN ? -1 : 0;
        if (depth == 0 && x->t[k].kind == ZDM_TOK_COMMA) {
            add_finding(r->out, "sqlite-alter-unsupported", r->line, H_SL_ALTER,
                        "SQLite's ALTER TABLE %s makes one change per statement: this one lists several",
                        table);
            break;
        }
    }
    if (K(x, i, "RENAME") && K(x, i + 1, "TO")) {
        char *to = sl_name(x, i + 2, NULL);
        if (r->phase == ZDM_PHASE_EXPAND && !fresh) {
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "RENAME %s TO %s in expand: the old application, still running until cutover, "
                        "uses the old name (unless a view takes it in the same step)", table, to ? to : "?");
            note_rename(r, table);
        }
        ltable *t = table_find(r->c, table);
        if (t && to) {
            table_drop(r->c, to);
            t = table_find(r->c, table);
            if (t) {
                free(t->name);
                t->name = zdm_xstrdup(to);
            }
        }
        free(to);
    } else if (K(x, i, "RENAME")) {
        size_t c = K(x, i + 1, "COLUMN") ? i + 2 : i + 1;
        char *from = sl_name(x, c, NULL);
        if (r->phase == ZDM_PHASE_EXPAND && !fresh)
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "RENAME COLUMN %s.%s in expand: the old application, still running until cutover, "
                        "uses the old name", table, from ? from : "?");
        free(from);
    } else if (K(x, i, "ADD") && !K(x, i + 1, "CONSTRAINT") && !K(x, i + 1, "PRIMARY") &&
               !K(x, i + 1, "UNIQUE") && !K(x, i + 1, "CHECK") && !K(x, i + 1, "FOREIGN")) {
        sl_add_column(r, x, K(x, i + 1, "COLUMN") ? i + 2 : i + 1, table);
    } else if (K(x, i, "DROP") && !K(x, i + 1, "CONSTRAINT")) {
        size_t c = K(x, i + 1, "COLUMN") ? i + 2 : i + 1;
        char *col = sl_name(x, c, NULL);
        if (r->phase == ZDM_PHASE_EXPAND && !fresh)
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "DROP COLUMN %s.%s in expand: the old application, still running until cutover, "
                        "may read or write it", table, col ? col : "?");
        if (col)
            col_drop(table_find(r->c, table), col);
        free(col);
    } else {
        char *what = i < x->n ? zdm_xstrndup(x->sql + x->t[i].off, x->t[i].len) : zdm_xstrdup("");
        add_finding(r->out, "sqlite-alter-unsupported", r->line, H_SL_ALTER,
                    "SQLite refuses ALTER TABLE %s %s%s: its ALTER TABLE only renames the table or a column, "
                    "adds a column, or drops one (no ALTER COLUMN, no ADD/DROP CONSTRAINT)", table, what,
                    K(x, i + 1, "COLUMN") || K(x, i + 1, "CONSTRAINT") ? " ..." : "");
        free(what);
    }
    free(table);
}

/* A SELECT reading a whole existing table: its name, or NULL. */
static char *sl_copies_table(lint_run *r, const sl_stmt *x, size_t from)
{
    size_t sel = sl_find(x, from, "SELECT");
    if (sel >= x->n)
        return NULL;
    size_t f = sl_find(x, sel, "FROM");
    if (f >= x->n || sl_find(x, f, "WHERE") < x->n || sl_find(x, f, "LIMIT") < x->n)
        return NULL;
    char *src = sl_name(x, f + 1, NULL);
    /* WITH src [(cols)] AS (...): a CTE, not a table. */
    for (size_t k = 0; src && k + 2 < x->n; k++) {
        if (x->t[k].kind != ZDM_TOK_WORD || x->t[k].len != strlen(src) ||
            strncasecmp(x->sql + x->t[k].off, src, x->t[k].len) != 0)
            continue;
        size_t a = k + 1;
        /* A CTE's column list holds no parentheses: the scan stops at the
         * next one, so the scans of all the names "src (" in a statement
         * cover disjoint spans (scanning on to the next ')' made "src(" nested
         * a thousand deep cost a thousand passes). */
        if (x->t[a].kind == ZDM_TOK_LPAREN) {
            a++;
            while (a < x->n && x->t[a].kind != ZDM_TOK_RPAREN && x->t[a].kind != ZDM_TOK_LPAREN)
                a++;
        }
        if (a < x->n && x->t[a].kind == ZDM_TOK_RPAREN)
            a++;
        if (K(x, a, "AS") && a + 1 < x->n && x->t[a + 1].kind == ZDM_TOK_LPAREN) {
            free(src);
            return NULL;
        }
    }
    if (src && is_new(r, src)) {
        free(src);
        return NULL;
    }
    return src;
}

static void sl_stmt_lint(lint_run *r, const sl_stmt *x)
{
    if (x->n == 0)
        return;
    if (K(x, 0, "BEGIN") || K(x, 0, "COMMIT") || K(x, 0, "END") ||
        (K(x, 0, "ROLLBACK") && sl_find(x, 1, "TO") >= x->n)) {
        char *w = zdm_xstrndup(x->sql + x->t[0].off, x->t[0].len);
        int begin = K(x, 0, "BEGIN");
        if (r->plain) {
            if (begin && r->explicit_tx)
                add_finding(r->out, "transaction-control", r->line, H_PLAIN_TX,
                            "BEGIN while the transaction begun on line %d is still open: SQLite refuses it "
                            "(\"cannot start a transaction within a transaction\")", r->begin_line);
            if (begin) {
                r->begin_line = r->line;
                r->begin_off = r->off;
            } else {
                r->begin_line = 0;
            }
            r->explicit_tx = begin;
            free(w);
            return;
        }
        r->explicit_tx = begin;
        add_finding(r->out, "transaction-control", r->line, H_TX,
                    "%s inside a step: zdm owns the step's transaction, and %s", w,
                    begin ? "SQLite refuses a BEGIN inside it (\"cannot start a transaction within a "
                            "transaction\")"
                          : "a COMMIT or ROLLBACK in the middle leaves the step half-applied and recorded "
                            "as neither done nor undone");
        free(w);
    } else if (K(x, 0, "VACUUM")) {
        add_finding(r->out, "sqlite-vacuum", r->line, H_SL_VACUUM,
                    "VACUUM rewrites the whole database file, blocking every writer (and, in rollback-journal "
                    "mode, every reader) until it ends; it cannot run inside a transaction");
    } else if (K(x, 0, "PRAGMA") && in_tx(r)) {
        size_t i = 1;
        char *name = sl_name(x, i, &i);
        if (name && (strcasecmp(name, "foreign_keys") == 0 || strcasecmp(name, "journal_mode") == 0) &&
            i < x->n)
            add_finding(r->out, "sqlite-pragma-in-transaction", r->line, H_SL_PRAGMA,
                        "PRAGMA %s inside the step's transaction %s", name,
                        strcasecmp(name, "foreign_keys") == 0 ? "does nothing (SQLite ignores it there)"
                                                              : "fails or does nothing");
        free(name);
    } else if (K(x, 0, "ALTER") && K(x, 1, "TABLE")) {
        sl_alter(r, x);
    } else if (K(x, 0, "CREATE")) {
        size_t i = 1;
        if (K(x, i, "TEMP") || K(x, i, "TEMPORARY"))
            i++;
        int view = K(x, i, "VIEW");
        if (!K(x, i, "TABLE") && !view)
            return;
        i++;
        int ine = K(x, i, "IF") && K(x, i + 1, "NOT") && K(x, i + 2, "EXISTS");
        if (ine)
            i += 3;
        char *table = sl_name(x, i, &i);
        if (!table)
            return;
        if (!view && K(x, i, "AS")) {
            char *src = sl_copies_table(r, x, i);
            note_table(r, src);
            if (src)
                add_finding(r->out, "sqlite-table-rebuild", r->line, H_SL_REBUILD,
                            "CREATE TABLE %s AS SELECT ... FROM %s copies every row of %s in one statement, "
                            "holding SQLite's write lock (every writer waits) until it ends", table, src, src);
            free(src);
        }
        if (!(ine && table_find(r->c, table)))
            table_add(r->c, table, r->c->gen, (int)r->phase);
        if (view)
            zdm_strv_push(&r->views, table);
        free(table);
    } else if (K(x, 0, "DROP") && (K(x, 1, "TABLE") || K(x, 1, "VIEW"))) {
        size_t i = 2;
        if (K(x, i, "IF") && K(x, i + 1, "EXISTS"))
            i += 2;
        char *table = sl_name(x, i, NULL);
        if (!table)
            return;
        if (r->phase == ZDM_PHASE_EXPAND && !is_new(r, table))
            add_finding(r->out, "destructive-in-expand", r->line, H_DESTRUCTIVE,
                        "DROP %s %s in expand: the old application, still running until cutover, may use it",
                        K(x, 1, "TABLE") ? "TABLE" : "VIEW", table);
        table_drop(r->c, table);
        free(table);
    } else if (K(x, 0, "INSERT") || K(x, 0, "REPLACE")) {
        size_t into = sl_find(x, 0, "INTO");
        if (into >= x->n)
            return;
        size_t i;
        char *dst = sl_name(x, into + 1, &i);
        char *src = sl_copies_table(r, x, i);
        note_table(r, src);
        if (src)
            add_finding(r->out, "sqlite-table-rebuild", r->line, H_SL_REBUILD,
                        "INSERT INTO %s SELECT ... FROM %s copies every row of %s in one statement, holding "
                        "SQLite's write lock (every writer waits) until it ends", dst ? dst : "?", src, src);
        free(src);
        free(dst);
    } else if (K(x, 0, "UPDATE") || K(x, 0, "DELETE")) {
        size_t i = 1;
        if (K(x, 0, "DELETE") && K(x, i, "FROM"))
            i++;
        if (K(x, i, "OR"))
            i += 2;
        char *table = sl_name(x, i, NULL);
        note_table(r, table);
        if (table && r->phase == ZDM_PHASE_EXPAND && !is_new(r, table) && sl_find(x, i, "WHERE") >= x->n)
            add_finding(r->out, "mass-dml-in-expand", r->line, H_MASS_DML,
                        "%s of every row of %s in expand: one long write transaction holding SQLite's write "
                        "lock, while the application runs", K(x, 0, "UPDATE") ? "UPDATE" : "DELETE", table);
        free(table);
    }
}

static int lint_sqlite(zdm_lint_ctx *ctx, const char *sql, const zdm_sql_scan *sc, zdm_phase_kind phase,
                       int in_transaction, zdm_lint_result *out, int plain)
{
    if (sc->unterminated) {
        zdm_lint_finding *f = add_finding(out, "parse-error", sc->un_line, H_PARSE,
                                          "not valid SQLite: a string, quoted name or comment never ends");
        int l;
        zdm_sql_pos(sql, 0, &l, &f->col);
        return -1;
    }
    lint_run r;
    memset(&r, 0, sizeof r);
    r.c = ctx;
    r.out = out;
    r.phase = phase;
    r.in_tx = in_transaction;
    r.plain = plain;
    int bad = 0;
    for (size_t j = 0; j < sc->nstmts; j++) {
        const zdm_sql_stmt *st = &sc->stmts[j];
        sl_stmt x = {sql, sc->toks + st->tok, st->ntok};
        r.line = st->line;
        r.off = st->off;
        size_t k0 = out->n;
        int depth = 0, neg = 0;
        for (size_t k = 0; k < x.n; k++) {
            depth += x.t[k].kind == ZDM_TOK_LPAREN ? 1 : x.t[k].kind == ZDM_TOK_RPAREN ? -1 : 0;
            neg |= depth < 0;
        }
        if (depth != 0 || neg) {
            add_finding(out, "parse-error", st->line, H_PARSE,
                        "not valid SQLite: the parentheses of this statement do not balance");
            bad = 1;
        } else {
            sl_stmt_lint(&r, &x);
        }
        stmt_done(&r, k0);
    }
    drop_covered_renames(&r, out);
    if (plain && r.begin_line)
        add_finding(out, "transaction-control", r.begin_line, H_PLAIN_TX,
                    "BEGIN is never committed or rolled back: the sqlite3 shell leaves it open, holding the "
                    "database's write lock")->offset = r.begin_off;
    run_free(&r);
    return bad ? -1 : 0;
}

/* ---- one SQL text ---- */

static const char *const H_LIMIT = "split the statement; zdm refuses it before any parser sees it";

/* The index of a rule id in rules[], or NRULES. */
static size_t rule_index(const char *id, size_t len)
{
    for (size_t i = 0; i < NRULES; i++)
        if (strlen(rules[i].id) == len && strncmp(rules[i].id, id, len) == 0)
            return i;
    return NRULES;
}

/* qsort has no context argument in C11: the findings being sorted. */
static const zdm_lint_finding *off_sort_v;

static int off_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    size_t ox = off_sort_v[x].offset, oy = off_sort_v[y].offset;
    return ox != oy ? (ox > oy) - (ox < oy) : (x > y) - (x < y);
}

/* First position in idx[0..n) (sorted by offset) whose finding's offset
 * is >= off. */
static size_t first_at(const zdm_lint_finding *v, const size_t *idx, size_t n, size_t off)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[idx[mid]].offset < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Findings [from, out->n) of sql: dialect, column, and the zdm:allow
 * comments of the statement each is about.
 *
 * In n log n: the findings are sorted by offset once; columns are counted
 * in one pass in that order, and the allows of each statement are merged
 * into one table (rule -> the first allow naming it) that is applied to
 * that statement's findings alone.  Matching every allow against every
 * finding, and counting columns from the start for each finding out of
 * text order, was quadratic (a file of many "-- zdm:allow" statements). */
static void finish_findings(const char *sql, const zdm_sql_scan *sc, int dialect, zdm_lint_result *out,
                            size_t from, int report_allows)
{
    size_t end = out->n, nf = end - from;
    size_t *idx = zdm_xmalloc((nf ? nf : 1) * sizeof *idx);
    for (size_t k = 0; k < nf; k++)
        idx[k] = from + k;
    off_sort_v = out->v;
    qsort(idx, nf, sizeof *idx, off_cmp);
    zdm_sql_cursor cur = {0, 0, 0};
    for (size_t j = 0; j < nf; j++) {
        zdm_lint_finding *f = &out->v[idx[j]];
        f->dialect = dialect;
        if (!f->col) {
            int l;
            zdm_sql_pos_next(&cur, sql, f->offset, &l, &f->col);
        }
    }
    for (size_t a = 0; a < sc->nallows; a++) {
        const zdm_sql_allow *al = &sc->allows[a];
        if (report_allows) {
            for (const char *p = al->rules; *p;) {
                const char *e = strchr(p, ',');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                if (rule_index(p, len) == NRULES) {
                    char *id = zdm_xstrndup(p, len);
                    zdm_lint_finding *f = add_finding(out, "allow-unknown-rule", al->line,
                                                      "use one of the rule ids \"zdm help lint\" lists",
                                                      "zdm:allow names \"%s\", which is not a lint rule", id);
                    f->col = al->col;
                    f->dialect = dialect;
                    free(id);
                }
                p += len + (e ? 1 : 0);
            }
        }
        if (!al->reason[0] && report_allows) {
            zdm_lint_finding *f = add_finding(
                out, "allow-no-reason", al->line, "write why it is safe: -- zdm:allow RULE the reason",
                "\"-- zdm:allow %s\" gives no reason: it allows nothing", al->rules);
            f->col = al->col;
            f->dialect = dialect;
        }
    }
    /* The allows come in text order, so those of one statement are
     * (almost always) adjacent; a statement met again later merges anew,
     * which keeps "the first allow naming the rule wins" since a finding
     * once allowed stays so. */
    for (size_t a = 0; a < sc->nallows;) {
        size_t stmt = sc->allows[a].stmt, b = a;
        const zdm_sql_allow *first[NRULES];
        memset(first, 0, sizeof first);
        for (; b < sc->nallows && sc->allows[b].stmt == stmt; b++) {
            const zdm_sql_allow *al = &sc->allows[b];
            if (!al->reason[0])
                continue; /* without a reason it allows nothing */
            for (const char *p = al->rules; *p;) {
                const char *e = strchr(p, ',');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                size_t ri = rule_index(p, len);
                if (ri < NRULES && !first[ri])
                    first[ri] = al;
                p += len + (e ? 1 : 0);
            }
        }
        a = b;
        if (stmt >= sc->nstmts)
            continue;
        size_t lo = first_at(out->v, idx, nf, sc->stmts[stmt].off);
        size_t hi = stmt + 1 < sc->nstmts ? first_at(out->v, idx, nf, sc->stmts[stmt + 1].off) : nf;
        for (size_t j = lo; j < hi; j++) {
            zdm_lint_finding *f = &out->v[idx[j]];
            size_t ri = rule_index(f->rule, strlen(f->rule));
            if (f->allowed || ri == NRULES || !first[ri])
                continue;
            f->allowed = 1;
            free(f->reason);
            f->reason = zdm_xstrdup(first[ri]->reason);
            f->allowed_by = f->reason;
        }
    }
    free(idx);
}

/* A plain SQL file runs as it is, statement by statement (psql, sqlite3):
 * its BEGIN/COMMIT are its own (transaction-control then reports a nested
 * or unfinished BEGIN; not-idempotent applies outside them, where a rerun
 * after a failure half-way must not trip on what the first run did).  The
 * rules about zdm's steps (a step's down, a step's statements on one
 * table) are left out. */
static int plain_skips(const char *rule)
{
    return strcmp(rule, "multi-ddl-no-transaction") == 0 || strcmp(rule, "missing-down") == 0;
}

static int lint_text(zdm_lint_ctx *ctx, const char *sql, int dialect, zdm_phase_kind phase, int in_transaction,
                     zdm_lint_result *out, int report_allows, int plain);

int zdm_lint_sql_file(zdm_lint_ctx *ctx, const char *sql, int dialect, zdm_lint_result *out)
{
    size_t from = out->n;
    int rc = lint_text(ctx, sql, dialect, ZDM_PHASE_EXPAND, 0, out, 1, 1);
    size_t w = from;
    for (size_t k = from; k < out->n; k++) {
        if (plain_skips(out->v[k].rule)) {
            free(out->v[k].message);
            free(out->v[k].reason);
            free(out->v[k].table);
            free(out->v[k].object);
            continue;
        }
        out->v[w++] = out->v[k];
    }
    out->n = w;
    for (size_t k = from; k < out->n; k++)
        if (out->v[k].allowed_by && out->v[k].reason)
            out->v[k].allowed_by = out->v[k].reason; /* moved with the finding */
    return rc;
}

static int lint_text(zdm_lint_ctx *ctx, const char *sql, int dialect, zdm_phase_kind phase, int in_transaction,
                     zdm_lint_result *out, int report_allows, int plain)
{
    size_t from = out->n;
    int line = 0, col = 0;
    zdm_buf why = {0};
    int sd = dialect == ZDM_LINT_DIALECT_SQLITE ? ZDM_SQL_SQLITE : ZDM_SQL_PG;
    zdm_sql_scan sc;
    if (zdm_sql_scan_checked(sql, sd, &sc, &line, &col, &why) != 0) {
        /* Never handed to a parser; plan validation refuses it before. */
        zdm_lint_finding *f = add_finding(out, "parse-error", line, H_LIMIT, "%s", why.data);
        f->col = col;
        f->dialect = dialect;
        zdm_buf_free(&why);
        return -1;
    }
    int rc = sd == ZDM_SQL_SQLITE ? lint_sqlite(ctx, sql, &sc, phase, in_transaction, out, plain)
                                  : lint_pg(ctx, sql, phase, in_transaction, out, plain);
    finish_findings(sql, &sc, dialect, out, from, report_allows);
    zdm_sql_scan_free(&sc);
    return rc;
}

int zdm_lint_sql(zdm_lint_ctx *ctx, const char *sql, zdm_phase_kind phase, int in_transaction,
                 zdm_lint_result *out)
{
    return lint_text(ctx, sql, ZDM_LINT_DIALECT_PG, phase, in_transaction, out, 1, 0);
}

int zdm_lint_sql_dialect(zdm_lint_ctx *ctx, const char *sql, int dialect, zdm_phase_kind phase,
                         int in_transaction, zdm_lint_result *out)
{
    return lint_text(ctx, sql, dialect, phase, in_transaction, out, 1, 0);
}

/* ---- plans ---- */

/* Where a string value's text starts in the file: its line, plus one when
 * it is a multi-line string opening with a newline (TOML drops that). */
static int text_first_line(const toml_value *v, const char *src, const char *text)
{
    if (!src)
        return v->line + (strchr(text, '\n') ? 1 : 0); /* a guess: """ then a newline */
    const char *p = src;
    for (int l = 1; l < v->line && p; l++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || (size_t)(v->col - 1) > strlen(p))
        return v->line;
    p += v->col - 1;
    if ((strncmp(p, "\"\"\"", 3) == 0 || strncmp(p, "'''", 3) == 0) &&
        (p[3] == '\n' || (p[3] == '\r' && p[4] == '\n')))
        return v->line + 1;
    return v->line;
}

/* The TOML value holding a step's sql (or down) for a dialect. */
static const toml_value *sql_value(const zdm_step *s, const char *key, int dialect)
{
    const toml_value *v = toml_get(s->fields, key);
    if (v && v->type == TOML_TABLE) {
        const toml_value *d = toml_get(v, dialect == ZDM_LINT_DIALECT_SQLITE ? "sqlite" : "pg");
        v = d ? d : toml_get(v, "sql"); /* (no generic key inside the table: d or nothing) */
    }
    return v && v->type == TOML_STRING ? v : NULL;
}

/* Column in the file of column `col` on line `line` of a value's text:
 * the same, except on the value's own first line, after its quotes. */
static int file_col(const toml_value *v, const char *src, const char *text, int line, int col)
{
    if (!v || col <= 0 || line != 1 || text_first_line(v, src, text) != v->line)
        return col;
    int quote = 1;
    if (src) {
        const char *p = src;
        for (int l = 1; l < v->line && p; l++) {
            p = strchr(p, '\n');
            if (p)
                p++;
        }
        if (p && (size_t)(v->col - 1) <= strlen(p) &&
            (strncmp(p + v->col - 1, "\"\"\"", 3) == 0 || strncmp(p + v->col - 1, "\'\'\'", 3) == 0))
            quote = 3;
    }
    return v->col + quote + col - 1;
}

/* Line of the statement at `line` (1-based in the text) of a value. */
static int file_line(const toml_value *v, const char *src, const char *text, int line, int fallback)
{
    if (!v)
        return fallback;
    int first = text_first_line(v, src, text);
    /* A one-line "..." string: any newline in it came from an escape. */
    if (src && first == v->line && strchr(text, '\n')) {
        const char *p = src;
        for (int l = 1; l < v->line && p; l++) {
            p = strchr(p, '\n');
            if (p)
                p++;
        }
        if (p && (size_t)(v->col - 1) <= strlen(p) && strncmp(p + v->col - 1, "\"\"\"", 3) != 0 &&
            strncmp(p + v->col - 1, "'''", 3) != 0)
            return first;
    }
    return first + line - 1;
}

/* The SQL of step s to lint for `dialect`, given the plan-wide mode
 * (0: PostgreSQL's SQL with PostgreSQL rules, and sql.sqlite with the
 * SQLite rules; else the target's SQL only). */
static const char *step_text(const zdm_step *s, int mode, int dialect)
{
    if (mode == 0 && dialect == ZDM_LINT_DIALECT_SQLITE)
        return s->sql_for[1];
    return zdm_step_sql(s, dialect);
}

static void lint_steps(zdm_lint_ctx *const ctxs[2], const zdm_plan *p, const zdm_step *steps, size_t n,
                       zdm_phase_kind phase, const char *src, zdm_lint_result *out, int report, int mode)
{
    for (size_t i = 0; i < n; i++) {
        const zdm_step *s = &steps[i];
        if (s->op)
            continue; /* zdm writes the SQL of structured operations itself */
        size_t before = out->n;
        int any = 0;
        for (int d = 0; d < 2; d++) {
            int dialect = d == 0 ? ZDM_LINT_DIALECT_PG : ZDM_LINT_DIALECT_SQLITE;
            if (mode && mode != dialect)
                continue;
            zdm_lint_ctx *ctx = ctxs[d];
            const char *sql = step_text(s, mode, dialect);
            if (s->from_op) {
                /* The same for the steps an operation became once the plan
                 * was loaded (op is NULL by then, from_op names the
                 * operation): rename_table's RENAME is followed by a view
                 * under the old name, which the rules cannot see, and was
                 * refused as destructive-in-expand.  The schema model
                 * still follows the SQL, so later raw steps are judged
                 * against it. */
                if (sql) {
                    /* Its tables still count for --db's long transactions. */
                    zdm_lint_result quiet = {0};
                    lint_text(ctx, sql, dialect, phase, zdm_step_in_transaction(s, sql), &quiet, 0, 0);
                    for (size_t k = 0; report && k < quiet.nddl; k++) {
                        if (out->nddl == out->capddl) {
                            out->capddl = out->capddl ? out->capddl * 2 : 8;
                            out->ddl = zdm_xrealloc(out->ddl, out->capddl * sizeof *out->ddl);
                        }
                        zdm_lint_ddl *dd = &out->ddl[out->nddl++];
                        *dd = quiet.ddl[k];
                        quiet.ddl[k].table = NULL;
                        dd->line = s->line;
                        dd->col = s->col;
                        dd->plan = p->id;
                        dd->file = p->path;
                        dd->step = s->index;
                        dd->phase = phase;
                    }
                    zdm_lint_result_free(&quiet);
                }
                continue;
            }
            if (!sql)
                continue;
            any = 1;
            size_t b1 = out->n, d1 = out->nddl;
            /* (Each text is linted once: for its dialect, or the target's.) */
            lint_text(ctx, sql, dialect, phase, zdm_step_in_transaction(s, sql), out, 1, 0);
            const toml_value *v = sql_value(s, "sql", dialect);
            for (size_t k = b1; k < out->n; k++) {
                int l = out->v[k].line;
                out->v[k].line = file_line(v, src, sql, l, s->line);
                out->v[k].col = file_col(v, src, sql, l, out->v[k].col);
            }
            for (size_t k = d1; k < out->nddl; k++) {
                zdm_lint_ddl *dd = &out->ddl[k];
                int l = dd->line;
                dd->line = file_line(v, src, sql, l, s->line);
                dd->col = file_col(v, src, sql, l, dd->col);
                dd->plan = p->id;
                dd->file = p->path;
                dd->step = s->index;
                dd->phase = phase;
            }
            const char *down = zdm_step_down(s, dialect);
            if (report && down && dialect == ZDM_LINT_DIALECT_PG) {
                size_t b2 = out->n;
                json_t *t = parse(down, out);
                json_decref(t);
                const toml_value *dv = sql_value(s, "down", dialect);
                for (size_t k = b2; k < out->n; k++) {
                    out->v[k].line = file_line(dv, src, down, out->v[k].line, s->line);
                    out->v[k].dialect = dialect;
                    char *m = zdm_xasprintf("down of the step: %s", out->v[k].message);
                    free(out->v[k].message);
                    out->v[k].message = m;
                }
            }
        }
        if (s->from_op)
            continue;
        if (report && mode == ZDM_LINT_DIALECT_PG && !any)
            add_finding(out, "sqlite-only", s->line, "add sql.pg to have the PostgreSQL SQL checked",
                        "%s step %d has SQL for SQLite only: it cannot run on PostgreSQL",
                        phase == ZDM_PHASE_EXPAND ? "expand" : "contract", s->index);
        int dd = mode ? mode : s->sql || s->sql_for[0] ? ZDM_LINT_DIALECT_PG : ZDM_LINT_DIALECT_SQLITE;
        if (report && any && phase == ZDM_PHASE_EXPAND && !zdm_step_down(s, dd))
            add_finding(out, "missing-down", s->line,
                        "add down = \"...\" undoing the step (\"SELECT 1\" when there is nothing to undo)",
                        "expand step %d has no down: \"zdm rollback\" of the plan will be refused "
                        "once it ran", s->index)->dialect = dd;
        for (size_t k = before; k < out->n; k++) {
            if (!out->v[k].dialect)
                out->v[k].dialect = mode ? mode : ZDM_LINT_DIALECT_PG;
            out->v[k].plan = p->id;
            out->v[k].file = p->path;
            out->v[k].step = s->index;
            out->v[k].phase = phase;
        }
    }
}

void zdm_lint_plan_dialect(const zdm_plan *plan, const zdm_plan_set *set, const char *src, int mode,
                           zdm_lint_result *out)
{
    zdm_lint_ctx *ctxs[2] = {zdm_lint_ctx_new(), zdm_lint_ctx_new()};
    /* The plans before this one, in requires order: what they create, the
     * column types, the checks they validate. */
    for (size_t i = 0; set && i < set->n && set->plans[i] != plan; i++) {
        if (strcmp(set->plans[i]->id, plan->id) == 0)
            break;
        zdm_lint_result scratch = {0};
        lint_steps(ctxs, set->plans[i], set->plans[i]->expand, set->plans[i]->nexpand, ZDM_PHASE_EXPAND,
                   NULL, &scratch, 0, mode);
        lint_steps(ctxs, set->plans[i], set->plans[i]->contract, set->plans[i]->ncontract,
                   ZDM_PHASE_CONTRACT, NULL, &scratch, 0, mode);
        zdm_lint_result_free(&scratch);
        zdm_lint_ctx_next_plan(ctxs[0]);
        zdm_lint_ctx_next_plan(ctxs[1]);
    }
    zdm_lint_ctx_next_plan(ctxs[0]);
    zdm_lint_ctx_next_plan(ctxs[1]);

    char *owned = NULL;
    if (!src && plan->path) {
        size_t len;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_read_file(plan->path, &owned, &len, &e) == 0)
            src = owned;
    }
    size_t before = out->n;
    lint_steps(ctxs, plan, plan->expand, plan->nexpand, ZDM_PHASE_EXPAND, src, out, 1, mode);
    lint_steps(ctxs, plan, plan->contract, plan->ncontract, ZDM_PHASE_CONTRACT, src, out, 1, mode);

    /* allow_unsafe: rule ids zdm knows, marking what they allow. */
    for (size_t a = 0; a < plan->nallow; a++) {
        const char *rule = plan->allow[a].rule;
        if (!zdm_lint_rule_find(rule)) {
            size_t nr;
            const zdm_lint_rule *all = zdm_lint_rules(&nr);
            const char *ids[NRULES];
            for (size_t k = 0; k < nr; k++)
                ids[k] = all[k].id;
            const char *hint = zdm_did_you_mean(rule, ids, nr);
            /* the last entry naming it, as the file has it */
            int line = plan->allow[a].line;
            for (size_t k = a + 1; k < plan->nallow; k++)
                if (strcmp(plan->allow[k].rule, rule) == 0)
                    line = plan->allow[k].line;
            zdm_lint_finding *f = add_finding(
                out, "allow-unknown-rule", line, "use one of the rule ids \"zdm help lint\" lists",
                "allow_unsafe names \"%s\", which is not a lint rule%s%s%s", rule,
                hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
            f->plan = plan->id;
            f->file = plan->path;
            continue;
        }
        for (size_t k = before; k < out->n; k++)
            if (!out->v[k].allowed && strcmp(out->v[k].rule, rule) == 0) {
                out->v[k].allowed = 1;
                out->v[k].allowed_by = plan->allow[a].reason ? plan->allow[a].reason : "allow_unsafe";
            }
    }
    free(owned);
    zdm_lint_ctx_free(ctxs[0]);
    zdm_lint_ctx_free(ctxs[1]);
}

void zdm_lint_plan(const zdm_plan *plan, const zdm_plan_set *set, const char *src, zdm_lint_result *out)
{
    zdm_lint_plan_dialect(plan, set, src, 0, out);
}

void zdm_lint_plan_soak(const zdm_plan *plan, int mode, zdm_lint_result *out)
{
    /* A baseline is stamped complete: it is never contracted. */
    if (plan->not_before_ms >= 0 || plan->baseline)
        return;
    zdm_lint_finding *f =
        add_finding(out, "missing-not-before", plan->contract_line > 0 ? plan->contract_line : 1,
                    "not_before = \"cutover + 24h\" under [contract], a default in zdm.toml's [contract], "
                    "or \"zdm schedule\" after each cutover",
                    "plan %s has no soak time (no not_before, here or in zdm.toml): zdm run-due never "
                    "contracts it; only an operator's zdm advance does", plan->id);
    f->plan = plan->id;
    f->file = plan->path;
    f->phase = ZDM_PHASE_CONTRACT;
    f->dialect = mode ? mode : ZDM_LINT_DIALECT_PG;
    for (size_t a = 0; a < plan->nallow; a++)
        if (strcmp(plan->allow[a].rule, f->rule) == 0) {
            f->allowed = 1;
            f->allowed_by = plan->allow[a].reason ? plan->allow[a].reason : "allow_unsafe";
        }
}

int zdm_lint_allow_list(zdm_lint_result *r, const char *list, zdm_err *err)
{
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t n = 0;
        while (p[n] && p[n] != ',')
            n++;
        size_t m = n;
        while (m > 0 && isspace((unsigned char)p[m - 1]))
            m--;
        char *rule = zdm_xstrndup(p, m);
        const zdm_lint_rule *ru = zdm_lint_rule_find(rule);
        if (!ru) {
            const char *ids[NRULES];
            for (size_t k = 0; k < NRULES; k++)
                ids[k] = rules[k].id;
            const char *hint = zdm_did_you_mean(rule, ids, NRULES);
            zdm_err_set(err, ZDM_EXIT_USAGE, "--allow: \"%s\" is not a lint rule%s%s%s", rule,
                        hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
            zdm_err_detail(err, "\"zdm help lint\" lists the rule ids");
            free(rule);
            return ZDM_EXIT_USAGE;
        }
        for (size_t k = 0; k < r->n; k++)
            if (!r->v[k].allowed && strcmp(r->v[k].rule, ru->id) == 0) {
                r->v[k].allowed = 1;
                r->v[k].allowed_by = "--allow";
            }
        free(rule);
        p += n;
    }
    return 0;
}

void zdm_lint_format(const zdm_lint_finding *f, zdm_buf *out)
{
    zdm_buf_printf(out, "%s:", f->file ? f->file : "<sql>");
    if (f->line > 0)
        zdm_buf_printf(out, "%d:", f->line);
    if (f->line > 0 && f->col > 0)
        zdm_buf_printf(out, "%d:", f->col);
    zdm_buf_printf(out, " %s[%s]: %s", zdm_lint_severity_name(f->severity), f->rule, f->message);
    if (f->hint)
        zdm_buf_printf(out, " -- %s", f->hint);
    if (f->allowed)
        zdm_buf_printf(out, " (allowed: %s)", f->allowed_by ? f->allowed_by : "yes");
}

int zdm_lint_gate(const zdm_plan *plan, const zdm_plan_set *set, zdm_phase_kind phase,
                  const char *allow, int dialect, zdm_err *err)
{
    zdm_lint_result r = {0};
    zdm_lint_plan_dialect(plan, set, NULL, dialect, &r);
    int rc = zdm_lint_allow_list(&r, allow, err);
    if (rc != 0) {
        zdm_lint_result_free(&r);
        return rc;
    }
    /* Before expand the whole plan counts: once expand ran, the file may
     * not change, so a contract the linter refuses must be fixed now. */
    int which = phase == ZDM_PHASE_EXPAND ? -1 : (int)phase;
    size_t nerr = zdm_lint_count(&r, ZDM_LINT_ERROR, which);
    const zdm_lint_finding *first = NULL;
    zdm_buf ids = {0};
    for (size_t i = 0; i < r.n; i++) {
        const zdm_lint_finding *f = &r.v[i];
        if ((which >= 0 && (int)f->phase != which) || f->severity != ZDM_LINT_ERROR || f->allowed)
            continue;
        if (!first)
            first = f;
        if (!ids.data || !strstr(ids.data, f->rule))
            zdm_buf_printf(&ids, "%s%s", ids.data ? "," : "", f->rule);
    }
    for (size_t i = 0; i < r.n; i++) {
        const zdm_lint_finding *f = &r.v[i];
        if ((which >= 0 && (int)f->phase != which) || f == first)
            continue; /* the first error goes in the refusal itself */
        zdm_buf line = {0};
        zdm_lint_format(f, &line);
        zdm_log_level lvl = f->allowed ? ZDM_LOG_INFO
                            : f->severity == ZDM_LINT_ERROR ? ZDM_LOG_ERROR
                            : f->severity == ZDM_LINT_WARNING ? ZDM_LOG_WARN : ZDM_LOG_DEBUG;
        zdm_log(lvl, plan->id, "lint", "%s", line.data);
        zdm_buf_free(&line);
    }
    if (nerr) {
        zdm_buf line = {0};
        zdm_lint_format(first, &line);
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s: zdm lint found %zu error%s%s; the first: %s", plan->id,
                    nerr, nerr == 1 ? "" : "s",
                    phase == ZDM_PHASE_EXPAND ? "" : " in contract", line.data);
        zdm_err_detail(err, "nothing was changed; make the SQL safe, or if it is safe here, allow the "
                            "rule: allow_unsafe = [{rule = \"%s\", reason = \"...\"}] in the plan, or "
                            "--allow %s; \"zdm lint %s\" lists every finding",
                       first->rule, ids.data, plan->id);
        zdm_err_reason(err, "lint");
        zdm_buf_free(&line);
        rc = ZDM_EXIT_REFUSED;
    }
    zdm_buf_free(&ids);
    zdm_lint_result_free(&r);
    return rc;
}

/* ---- --db ---- */

/* Rules whose cost grows with the table: an empty table makes them
 * harmless, a small one brief. */
static int size_matters(const char *rule)
{
    static const char *const r[] = {"index-not-concurrent", "add-column-volatile-default", "alter-type-rewrite",
                                    "set-not-null", "constraint-not-valid", "heavy-lock", "mass-dml-in-expand",
                                    "add-column-not-null-no-default", "validate-in-same-transaction",
                                    "sqlite-table-rebuild", "drop-index-not-concurrent", NULL};
    for (size_t i = 0; r[i]; i++)
        if (strcmp(rule, r[i]) == 0)
            return 1;
    return 0;
}

#define SMALL_ROWS 10000
#define SMALL_BYTES (16 * 1024 * 1024)

/* "schema.rel" or "rel" as the two parameters of the pg queries below. */
static void split_name(const char *table, char **schema, char **rel)
{
    const char *dot = strchr(table, '.');
    *schema = dot ? zdm_xstrndup(table, (size_t)(dot - table)) : zdm_xstrdup("");
    *rel = zdm_xstrdup(dot ? dot + 1 : table);
}

/* The table's oid (pg), "" when it does not exist. */
static int pg_oid(zdm_db *db, const char *table, char **oid, zdm_err *err)
{
    char *schema, *rel;
    split_name(table, &schema, &rel);
    const char *params[2] = {rel, schema};
    int rc = zdm_db_query_value(db,
                                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'm') AND "
                                "(($2 = '' AND pg_table_is_visible(c.oid)) OR n.nspname = $2)",
                                2, params, oid, err);
    free(schema);
    free(rel);
    return rc;
}

/* Size of a table: *rows (estimate on pg), *bytes; *exists 0 when not there. */
static int table_size(zdm_db *db, const char *table, int *exists, double *rows, double *bytes, zdm_err *err)
{
    *exists = 0;
    *rows = *bytes = 0;
    if (zdm_db_kind_of(db) == ZDM_DB_SQLITE) {
        char *q = zdm_db_ident_path(db, table);
        char *sql = zdm_xasprintf("SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %d)", q, SMALL_ROWS);
        char *v = NULL;
        const char *p1[1] = {table};
        char *found = NULL;
        int rc = zdm_db_query_value(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1", 1, p1,
                                    &found, err);
        if (rc == 0 && found)
            rc = zdm_db_query_value(db, sql, 0, NULL, &v, err);
        if (rc == 0 && found && v) {
            *exists = 1;
            *rows = atof(v);
            *bytes = *rows > 0 ? 1 : 0;
        }
        free(found);
        free(v);
        free(sql);
        free(q);
        return rc;
    }
    char *oid = NULL;
    int rc = pg_oid(db, table, &oid, err);
    if (rc != 0 || !oid) {
        free(oid);
        return rc;
    }
    const char *params[1] = {oid};
    zdm_rows *rs = NULL;
    rc = zdm_db_query(db,
                      "SELECT greatest(c.reltuples, 0)::bigint, pg_relation_size(c.oid), "
                      "pg_total_relation_size(c.oid) FROM pg_class c WHERE c.oid = $1::oid",
                      1, params, &rs, err);
    if (rc == 0 && zdm_rows_count(rs) == 1) {
        *exists = 1;
        double heap = atof(zdm_rows_get(rs, 0, 1));
        *rows = atof(zdm_rows_get(rs, 0, 0));
        *bytes = heap == 0 ? 0 : atof(zdm_rows_get(rs, 0, 2));
        /* Never analyzed (reltuples 0 or -1) but not empty: count up to the bound. */
        if (heap > 0 && *rows == 0) {
            char *q = zdm_db_ident_path(db, table);
            char *sql = zdm_xasprintf("SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %d) s", q, SMALL_ROWS);
            char *v = NULL;
            if (zdm_db_query_value(db, sql, 0, NULL, &v, err) == 0 && v)
                *rows = atof(v);
            free(v);
            free(sql);
            free(q);
        }
    }
    zdm_rows_free(rs);
    free(oid);
    return rc;
}

static void append(zdm_lint_finding *f, const char *fmt, ...) ZDM_PRINTF(2, 3);
static void append(zdm_lint_finding *f, const char *fmt, ...)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, f->message);
    va_list ap;
    va_start(ap, fmt);
    zdm_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    free(f->message);
    f->message = zdm_buf_take(&b);
}

static void human_bytes(double b, char *out, size_t n)
{
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(out, n, "%.0f %s", b, u[i]);
}

/* Is pg's set-not-null already covered: the column NOT NULL, or a
 * validated CHECK (col IS NOT NULL) on the table? */
static int pg_not_null_covered(zdm_db *db, const char *table, const char *col, int *covered, zdm_err *err)
{
    *covered = 0;
    char *oid = NULL;
    int rc = pg_oid(db, table, &oid, err);
    if (rc != 0 || !oid) {
        free(oid);
        return rc;
    }
    const char *params[2] = {oid, col};
    char *v = NULL;
    rc = zdm_db_query_value(db,
                            "SELECT coalesce((SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = $1::oid "
                            "AND a.attname = $2), false) OR EXISTS (SELECT 1 FROM pg_constraint k WHERE "
                            "k.conrelid = $1::oid AND k.contype = 'c' AND k.convalidated AND "
                            "replace(replace(pg_get_constraintdef(k.oid), '(', ''), ')', '') = "
                            "'CHECK ' || quote_ident($2) || ' IS NOT NULL')",
                            2, params, &v, err);
    *covered = rc == 0 && v && strcmp(v, "t") == 0;
    free(v);
    free(oid);
    return rc;
}

/* alter-type-rewrite's object is "col\tnewtype\tnmods\tm0\tm1\tarray":
 * does the catalog's current type change to it in place? */
static int pg_type_in_place(zdm_db *db, zdm_lint_finding *f, int *inplace, zdm_err *err)
{
    *inplace = 0;
    char col[256], tname[128];
    int nmods = 0, m0 = 0, m1 = 0, arr = 0;
    if (sscanf(f->object, "%255[^\t]\t%127[^\t]\t%d\t%d\t%d\t%d", col, tname, &nmods, &m0, &m1, &arr) != 6)
        return 0;
    char *oid = NULL;
    int rc = pg_oid(db, f->table, &oid, err);
    if (rc != 0 || !oid) {
        free(oid);
        return rc;
    }
    const char *params[2] = {oid, col};
    zdm_rows *rs = NULL;
    rc = zdm_db_query(db,
                      "SELECT t.typname, a.atttypmod, a.attndims, format_type(a.atttypid, a.atttypmod) "
                      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                      "WHERE a.attrelid = $1::oid AND a.attname = $2 AND NOT a.attisdropped",
                      2, params, &rs, err);
    free(oid);
    if (rc != 0 || zdm_rows_count(rs) != 1) {
        zdm_rows_free(rs);
        return rc;
    }
    lcol k;
    memset(&k, 0, sizeof k);
    const char *typname = zdm_rows_get(rs, 0, 0);
    int typmod = atoi(zdm_rows_get(rs, 0, 1));
    int dims = atoi(zdm_rows_get(rs, 0, 2));
    k.type = zdm_xasprintf("%s%s", typname, dims > 0 || typname[0] == '_' ? "[]" : "");
    if (typmod >= 4 && (strcmp(typname, "varchar") == 0 || strcmp(typname, "bpchar") == 0)) {
        k.mods[0] = typmod - 4;
        k.nmods = 1;
    } else if (typmod >= 4 && strcmp(typname, "numeric") == 0) {
        k.mods[0] = ((typmod - 4) >> 16) & 0xffff;
        k.mods[1] = (typmod - 4) & 0xffff;
        k.nmods = 2;
    }
    ltype t;
    memset(&t, 0, sizeof t);
    t.name = tname;
    t.nmods = nmods;
    t.mods[0] = m0;
    t.mods[1] = m1;
    t.array = arr;
    *inplace = type_change_in_place(&k, &t);
    if (!*inplace)
        append(f, " (--db: the column is %s now)", zdm_rows_get(rs, 0, 3));
    free(k.type);
    zdm_rows_free(rs);
    return 0;
}

static void remove_finding(zdm_lint_result *r, size_t k)
{
    zdm_lint_finding *f = &r->v[k];
    free(f->message);
    free(f->reason);
    free(f->table);
    free(f->object);
    memmove(&r->v[k], &r->v[k + 1], (r->n - k - 1) * sizeof *r->v);
    r->n--;
}

/* --db, one PostgreSQL finding: does the catalog clear it?  pg_proc's
 * volatility of a default's function, a type change done in place, a
 * NOT NULL already covered, an index IF NOT EXISTS that exists.  A
 * DROP INDEX finding learns its index's table (for the size). */
static int db_clears(zdm_db *db, zdm_lint_finding *f, int *clear, zdm_err *err)
{
    *clear = 0;
    /* A function the catalog says is immutable or stable. */
    if (strcmp(f->rule, "add-column-volatile-default") == 0 && f->object) {
        const char *params[1] = {f->object};
        char *v = NULL;
        int rc = zdm_db_query_value(db,
                                    "SELECT count(*) > 0 AND bool_and(provolatile IN ('i', 's')) FROM pg_proc "
                                    "WHERE proname = $1",
                                    1, params, &v, err);
        int nonvolatile = rc == 0 && v && strcmp(v, "t") == 0;
        free(v);
        if (rc != 0)
            return rc;
        if (nonvolatile) {
            *clear = 1;
            return 0;
        }
        append(f, " (pg_proc: %s() is volatile or unknown)", f->object);
    }
    /* A type change zdm could not judge: the catalog has the type. */
    if (strcmp(f->rule, "alter-type-rewrite") == 0 && f->table && f->object) {
        int rc = pg_type_in_place(db, f, clear, err);
        if (rc != 0 || *clear)
            return rc;
    }
    if (strcmp(f->rule, "set-not-null") == 0 && f->table && f->object) {
        int rc = pg_not_null_covered(db, f->table, f->object, clear, err);
        if (rc != 0 || *clear)
            return rc;
    }
    /* Existing indexes: CREATE INDEX IF NOT EXISTS of one the database
     * has is a no-op; DROP INDEX is about the index's table. */
    if (f->object && (strcmp(f->rule, "index-not-concurrent") == 0 ||
                      strcmp(f->rule, "drop-index-not-concurrent") == 0)) {
        char *schema, *rel;
        split_name(f->object, &schema, &rel);
        const char *params[2] = {rel, schema};
        char *owner = NULL;
        int rc = zdm_db_query_value(db,
                                    "SELECT CASE WHEN pg_table_is_visible(t.oid) THEN t.relname "
                                    "ELSE n.nspname || '.' || t.relname END FROM pg_class ic "
                                    "JOIN pg_namespace icn ON icn.oid = ic.relnamespace "
                                    "JOIN pg_index i ON i.indexrelid = ic.oid JOIN pg_class t ON t.oid = "
                                    "i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
                                    "WHERE ic.relname = $1 AND (($2 = '' AND pg_table_is_visible(ic.oid)) OR "
                                    "icn.nspname = $2)",
                                    2, params, &owner, err);
        free(schema);
        free(rel);
        if (rc != 0)
            return rc;
        if (owner && f->rule[0] == 'i') {
            free(owner);
            *clear = 1;
            return 0;
        }
        if (f->rule[0] == 'd') {
            free(f->table);
            f->table = owner; /* NULL: no such index, nothing to size */
            owner = NULL;
        }
        free(owner);
    }
    return 0;
}

/* --db: the size of the finding's table sets the severity of a rule
 * about locks and rewrites. */
static int db_sizes(zdm_db *db, zdm_lint_finding *f, zdm_err *err)
{
    int exists;
    double rows, bytes;
    int rc = table_size(db, f->table, &exists, &rows, &bytes, err);
    if (rc != 0)
        return rc;
    char hb[32];
    human_bytes(bytes, hb, sizeof hb);
    if (exists && bytes == 0) {
        f->severity = ZDM_LINT_INFO;
        append(f, " -- but %s is empty in the database (--db): harmless now", f->table);
    } else if (exists && rows < SMALL_ROWS && bytes < SMALL_BYTES) {
        if (f->severity == ZDM_LINT_ERROR)
            f->severity = ZDM_LINT_WARNING;
        append(f, " -- %s is small in the database (--db: about %.0f rows, %s): a short lock", f->table,
               rows, hb);
    } else if (exists) {
        append(f, " (--db: %s holds about %.0f rows, %s)", f->table, rows, hb);
    }
    return 0;
}

/* --db, PostgreSQL: transactions holding a lock on a table the SQL
 * changes, open longer than lock_timeout: the DDL would wait behind them,
 * and every query on the table behind the DDL. */
static int db_long_transactions(zdm_lint_result *r, zdm_db *db, int64_t lock_timeout_ms, zdm_err *err)
{
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", (long long)(lock_timeout_ms > 0 ? lock_timeout_ms : 2000));
    for (size_t i = 0; i < r->nddl; i++) {
        zdm_lint_ddl *d = &r->ddl[i];
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(r->ddl[j].table, d->table) == 0;
        if (dup || d->dialect != ZDM_LINT_DIALECT_PG)
            continue;
        char *oid = NULL;
        int rc = pg_oid(db, d->table, &oid, err);
        if (rc != 0)
            return rc;
        if (!oid)
            continue;
        const char *params[2] = {oid, ms};
        zdm_rows *rs = NULL;
        rc = zdm_db_query(db,
                          "SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), "
                          "coalesce(a.state, ''), floor(extract(epoch FROM now() - a.xact_start))::bigint "
                          "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                          "WHERE l.locktype = 'relation' AND l.relation = $1::oid AND a.pid <> pg_backend_pid() "
                          "AND a.xact_start < now() - $2::bigint * interval '1 millisecond' "
                          "ORDER BY a.xact_start LIMIT 1",
                          2, params, &rs, err);
        free(oid);
        if (rc != 0)
            return rc;
        if (zdm_rows_count(rs) == 1) {
            char dur[32];
            zdm_format_duration(atoll(zdm_rows_get(rs, 0, 4)) * 1000, dur, sizeof dur);
            zdm_lint_finding *f = add_finding(
                r, "long-transaction", d->line,
                "wait for it to finish (or end it: pg_terminate_backend(pid)) before zdm advance; zdm's "
                "lock_timeout and retries keep the application running meanwhile, but the step will not pass",
                "right now pid %s (user %s%s%s, %s) has had a transaction open for %s holding a lock on %s: DDL "
                "on %s waits behind it, and every query on %s waits behind the DDL",
                zdm_rows_get(rs, 0, 0), zdm_rows_get(rs, 0, 1), zdm_rows_get(rs, 0, 2)[0] ? ", " : "",
                zdm_rows_get(rs, 0, 2), zdm_rows_get(rs, 0, 3), dur, d->table, d->table, d->table);
            f->col = d->col;
            f->plan = d->plan;
            f->file = d->file;
            f->step = d->step;
            f->phase = d->phase;
            f->dialect = ZDM_LINT_DIALECT_PG;
            f->table = zdm_xstrdup(d->table);
        }
        zdm_rows_free(rs);
    }
    return 0;
}

int zdm_lint_with_db(zdm_lint_result *r, zdm_db *db, int64_t lock_timeout_ms, zdm_err *err)
{
    int pg = zdm_db_kind_of(db) == ZDM_DB_PG;
    int want = pg ? ZDM_LINT_DIALECT_PG : ZDM_LINT_DIALECT_SQLITE;
    for (size_t k = 0; k < r->n;) {
        zdm_lint_finding *f = &r->v[k];
        if (f->dialect != want) {
            k++;
            continue;
        }
        int clear = 0, rc = pg ? db_clears(db, f, &clear, err) : 0;
        if (rc != 0)
            return rc;
        if (clear) {
            remove_finding(r, k);
            continue;
        }
        if (size_matters(f->rule) && f->table) {
            rc = db_sizes(db, f, err);
            if (rc != 0)
                return rc;
        }
        k++;
    }
    return pg ? db_long_transactions(r, db, lock_timeout_ms, err) : 0;
}

int zdm_lint_with_url(zdm_lint_result *r, const char *url, int64_t lock_timeout_ms, zdm_err *err)
{
    if (zdm_db_kind_of_url(url) == ZDM_DB_SQLITE) {
        const char *path = url + strlen("sqlite:");
        if (strncmp(path, "///", 3) == 0)
            path += 2;
        else if (strncmp(path, "//", 2) == 0)
            path += 2;
        struct stat st;
        if (stat(path, &st) != 0)
            return zdm_err_set(err, ZDM_EXIT_USAGE,
                               "--db: no SQLite database at %s; zdm lint reads a database, never creates one", path);
    }
    zdm_db *db = NULL;
    int rc = zdm_db_open(url, &db, err);
    if (rc != 0)
        return rc;
    rc = zdm_lint_with_db(r, db, lock_timeout_ms, err);
    zdm_db_close(db);
    return rc;
}

int zdm_lint_dialect_of_url(const char *url)
{
    zdm_db_kind k = zdm_db_kind_of_url(url);
    return k == ZDM_DB_SQLITE ? ZDM_LINT_DIALECT_SQLITE : k == ZDM_DB_PG ? ZDM_LINT_DIALECT_PG : 0;
}

int zdm_lint_sql_limits(const char *sql, int mode, int *line, int *col, zdm_buf *why)
{
    int sd = mode == ZDM_LINT_DIALECT_SQLITE ? ZDM_SQL_SQLITE : ZDM_SQL_PG;
    return zdm_sql_check_limits(sql, sd, line, col, why) != 0 ? -1 : 0;
}
