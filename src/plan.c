/*
 * plan.c -- loading and validating plan files (see plan.h).
 *
 * Validation walks the TOML tree once, table by table, with the list of
 * keys each table may hold.  Every problem is recorded with the position of
 * the offending key or value and the walk goes on, so a user fixes a file
 * in one round instead of one error per run.
 */
#include "plan.h"
#include "dwsql.h"
#include "ops.h"
#include "sqlscan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* Line of the value of key k in table t; 0 when absent. */
static int line_of_key(const toml_value *t, const char *k)
{
    const toml_value *v = toml_get(t, k);
    return v ? v->line : 0;
}

/* The parsed document stays here: op steps' fields borrow from it. */
struct zdm_plan_tree {
    toml_value *doc;
};

/* ---- the checker ---- */

typedef struct chk {
    const char *file;
    zdm_diags *diags;
    int errors;
} chk;

static void bad(chk *c, int line, int col, const char *fmt, ...) ZDM_PRINTF(4, 5);
static void bad(chk *c, int line, int col, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    zdm_diag_add(c->diags, c->file, line, col, "%s", msg);
    c->errors++;
}

/* Reports every key of `t` not in `allowed`, with a did-you-mean. */
static void check_keys(chk *c, const toml_value *t, const char *where,
                       const char *const *allowed)
{
    size_t n = 0;
    while (allowed[n])
        n++;
    for (size_t i = 0; i < t->u.table.len; i++) {
        const toml_kv *kv = &t->u.table.items[i];
        int known = 0;
        for (size_t j = 0; j < n && !known; j++)
            known = strcmp(kv->key, allowed[j]) == 0;
        if (known)
            continue;
        const char *hint = zdm_did_you_mean(kv->key, allowed, n);
        if (hint)
            bad(c, kv->line, kv->col, "unknown key \"%s\" in %s (did you mean \"%s\"?)",
                kv->key, where, hint);
        else
            bad(c, kv->line, kv->col, "unknown key \"%s\" in %s", kv->key, where);
    }
}

static const char *type_article(toml_type t)
{
    switch (t) {
    case TOML_INTEGER:
    case TOML_ARRAY:
        return "an";
    default:
        return "a";
    }
}

/* Fetches key from t when it has type `want`; reports a type error else. */
static const toml_value *want(chk *c, const toml_value *t, const char *key,
                              toml_type type, const char *where)
{
    const toml_kv *kv = toml_get_kv(t, key);
    if (!kv)
        return NULL;
    if (kv->value->type != type) {
        bad(c, kv->value->line, kv->value->col, "%s.%s must be %s %s, not %s %s", where, key,
            type_article(type), toml_type_name(type), type_article(kv->value->type),
            toml_type_name(kv->value->type));
        return NULL;
    }
    return kv->value;
}

static char *want_str(chk *c, const toml_value *t, const char *key, const char *where, int required)
{
    const toml_value *v = want(c, t, key, TOML_STRING, where);
    if (!v) {
        if (required && !toml_get(t, key))
            bad(c, t->line, t->col, "%s is missing required key \"%s\"", where, key);
        return NULL;
    }
    if (strlen(v->u.str.ptr) != v->u.str.len) {
        bad(c, v->line, v->col, "%s.%s contains a NUL character", where, key);
        return NULL;
    }
    return zdm_xstrdup(v->u.str.ptr);
}

/* A string holding SQL: also within the size and depth bounds every
 * statement must keep (sqlscan.h), so no parser downstream (lint's
 * libpg_query) is handed a statement that could exhaust its stack. */
static void sql_bounds(chk *c, const toml_value *v, const char *text, const char *where,
                       const char *key, int dialect)
{
    int line = 0, col = 0;
    zdm_buf why = {0};
    if (text && zdm_sql_check_limits(text, dialect, &line, &col, &why) != 0)
        bad(c, v->line, v->col, "%s.%s: line %d of the SQL: %s", where, key, line, why.data);
    zdm_buf_free(&why);
}

static char *want_sql(chk *c, const toml_value *t, const char *key, const char *where, int required,
                      int dialect)
{
    char *s = want_str(c, t, key, where, required);
    if (s)
        sql_bounds(c, toml_get(t, key), s, where, key, dialect);
    return s;
}

static int64_t want_int(chk *c, const toml_value *t, const char *key, const char *where,
                        int64_t dflt, int64_t min, int64_t max)
{
    const toml_value *v = want(c, t, key, TOML_INTEGER, where);
    if (!v)
        return dflt;
    if (v->u.integer < min || v->u.integer > max) {
        bad(c, v->line, v->col, "%s.%s = %lld is out of range (%lld to %lld)", where, key,
            (long long)v->u.integer, (long long)min, (long long)max);
        return dflt;
    }
    return v->u.integer;
}

/* A latency factor: 0 (off) or a number from 1 to 100, integer or float;
 * returned x 100. */
static int64_t want_factor(chk *c, const toml_value *t, const char *key, const char *where, int64_t dflt)
{
    const toml_kv *kv = toml_get_kv(t, key);
    if (!kv)
        return dflt;
    const toml_value *v = kv->value;
    double f;
    if (v->type == TOML_INTEGER)
        f = (double)v->u.integer;
    else if (v->type == TOML_FLOAT)
        f = v->u.flt;
    else {
        bad(c, v->line, v->col, "%s.%s must be a number (e.g. 1.5, or 0 for no latency pacing), not %s %s", where,
            key, type_article(v->type), toml_type_name(v->type));
        return dflt;
    }
    if (!(f == 0 || (f >= 1 && f <= 100))) {
        bad(c, v->line, v->col, "%s.%s = %g is out of range (0 for off, else 1 to 100)", where, key, f);
        return dflt;
    }
    return (int64_t)(f * 100 + 0.5);
}

static int want_bool(chk *c, const toml_value *t, const char *key, const char *where, int dflt)
{
    const toml_value *v = want(c, t, key, TOML_BOOL, where);
    return v ? v->u.boolean : dflt;
}

/* A duration: "2s" style string, or an integer of milliseconds. */
static int64_t want_duration(chk *c, const toml_value *t, const char *key, const char *where,
                             int64_t dflt)
{
    const toml_kv *kv = toml_get_kv(t, key);
    if (!kv)
        return dflt;
    const toml_value *v = kv->value;
    if (v->type == TOML_INTEGER) {
        if (v->u.integer < 0) {
            bad(c, v->line, v->col, "%s.%s must not be negative", where, key);
            return dflt;
        }
        return v->u.integer;
    }
    if (v->type != TOML_STRING) {
        bad(c, v->line, v->col, "%s.%s must be a duration like \"2s\" or an integer of milliseconds, not %s %s",
            where, key, type_article(v->type), toml_type_name(v->type));
        return dflt;
    }
    int64_t ms;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_parse_duration_ms(v->u.str.ptr, 1, &ms, &e) != 0) {
        bad(c, v->line, v->col, "%s.%s: %s", where, key, e.msg);
        return dflt;
    }
    return ms;
}

/* An array of strings into l. */
static void want_strv(chk *c, const toml_value *t, const char *key, const char *where,
                      zdm_strv *l, int **lines, int **cols)
{
    const toml_kv *kv = toml_get_kv(t, key);
    if (!kv)
        return;
    const toml_value *v = kv->value;
    if (v->type == TOML_STRING && !lines) { /* a single string is a one-item list */
        zdm_strv_push(l, v->u.str.ptr);
        return;
    }
    if (v->type != TOML_ARRAY) {
        bad(c, v->line, v->col, "%s.%s must be an array of strings, not %s %s", where, key,
            type_article(v->type), toml_type_name(v->type));
        return;
    }
    if (lines) {
        *lines = zdm_xcalloc(v->u.array.len + 1, sizeof(int));
        *cols = zdm_xcalloc(v->u.array.len + 1, sizeof(int));
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        const toml_value *it = v->u.array.items[i];
        if (it->type != TOML_STRING) {
            bad(c, it->line, it->col, "%s.%s[%zu] must be a string, not %s %s", where, key, i,
                type_article(it->type), toml_type_name(it->type));
            continue;
        }
        if (lines) {
            (*lines)[l->n] = it->line;
            (*cols)[l->n] = it->col;
        }
        zdm_strv_push(l, it->u.str.ptr);
    }
}

/* Plain SQL identifiers for table/column names in the plan: letters,
 * digits, _ and $, optionally schema-qualified.  The driver quotes them;
 * this check only catches typos such as "events;" early. */
static int ident_ok(const char *s, int allow_dot)
{
    if (!*s)
        return 0;
    int dots = 0;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '.' && allow_dot && p != s && p[1] && ++dots <= 1)
            continue;
        if (!(isalnum(ch) || ch == '_' || ch == '$' || ch >= 0x80))
            return 0;
    }
    return 1;
}

/* ---- steps ---- */

static int blank(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return !*s;
}

/* `key` is SQL for every dialect ("...") or per dialect ({pg = "...",
 * sqlite = "..."}, either may be missing: the step then cannot run there). */
static void load_sqltext(chk *c, const toml_value *t, const char *key, const char *where,
                         int required, char **all, char *per[2])
{
    const toml_kv *kv = toml_get_kv(t, key);
    if (!kv) {
        if (required)
            bad(c, t->line, t->col, "%s is missing required key \"%s\"", where, key);
        return;
    }
    const toml_value *v = kv->value;
    if (v->type == TOML_STRING) {
        *all = want_sql(c, t, key, where, required, ZDM_SQL_PG);
        if (*all && blank(*all))
            bad(c, v->line, v->col, "%s has an empty \"%s\"", where, key);
        return;
    }
    if (v->type != TOML_TABLE) {
        bad(c, v->line, v->col, "%s.%s must be SQL in a string, or a table {pg = \"...\", sqlite = \"...\"}",
            where, key);
        return;
    }
    static const char *const dkeys[] = {"pg", "sqlite", NULL};
    char w2[96];
    snprintf(w2, sizeof w2, "%s.%s", where, key);
    check_keys(c, v, w2, dkeys);
    for (int k = 0; k < 2; k++) {
        per[k] = want_sql(c, v, dkeys[k], w2, 0, k == 0 ? ZDM_SQL_PG : ZDM_SQL_SQLITE);
        if (per[k] && blank(per[k])) {
            const toml_value *x = toml_get(v, dkeys[k]);
            bad(c, x->line, x->col, "%s has an empty \"%s\"", w2, dkeys[k]);
        }
    }
    if (!per[0] && !per[1])
        bad(c, v->line, v->col, "%s needs pg = \"...\" and/or sqlite = \"...\"", w2);
}

static const char *const raw_step_keys[] = {
    "sql", "down", "name", "op", "transaction", "lock_timeout", "statement_timeout",
    "lock_retries", NULL};

static void load_step(chk *c, const toml_value *t, zdm_phase_kind phase, int index,
                      zdm_step *s)
{
    const char *pname = phase == ZDM_PHASE_EXPAND ? "expand" : "contract";
    char where[64];
    snprintf(where, sizeof where, "%s step %d", pname, index);
    memset(s, 0, sizeof *s);
    s->index = index;
    s->fields = t;
    s->line = t->line;
    s->col = t->col;
    s->transaction = -1;
    s->lock_retries = -1;
    s->name = want_str(c, t, "name", where, 0);
    s->op = want_str(c, t, "op", where, 0);
    load_sqltext(c, t, "down", where, 0, &s->down, s->down_for);
    s->lock_timeout_ms = want_duration(c, t, "lock_timeout", where, -1);
    s->statement_timeout_ms = want_duration(c, t, "statement_timeout", where, -1);
    s->lock_retries = (int)want_int(c, t, "lock_retries", where, -1, 0, 1000);
    if (toml_get(t, "transaction"))
        s->transaction = want_bool(c, t, "transaction", where, 1);

    if (!s->op || strcmp(s->op, "sql") == 0) {
        /* A raw step: exactly the raw keys. */
        if (s->op && strcmp(s->op, "sql") == 0) {
            free(s->op);
            s->op = NULL;
        }
        check_keys(c, t, where, raw_step_keys);
        load_sqltext(c, t, "sql", where, 1, &s->sql, s->sql_for);
        return;
    }

    const zdm_op_spec *spec = zdm_op_find(s->op);
    const toml_kv *opkv = toml_get_kv(t, "op");
    if (!spec) {
        const char *names[64];
        size_t nn = 0;
        for (const zdm_op_spec *o; nn < 64 && (o = zdm_op_at(nn)) != NULL; nn++)
            names[nn] = o->name;
        const char *hint = zdm_did_you_mean(s->op, names, nn);
        bad(c, opkv->value->line, opkv->value->col, "%s: unknown operation \"%s\"%s%s%s", where,
            s->op, hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
        return;
    }
    if (phase == ZDM_PHASE_EXPAND && !spec->expand_ok)
        bad(c, opkv->value->line, opkv->value->col,
            "%s: operation \"%s\" removes structure the running application may still use; "
            "it belongs in [[contract.steps]]", where, s->op);
    if (phase == ZDM_PHASE_CONTRACT && !spec->contract_ok)
        bad(c, opkv->value->line, opkv->value->col,
            "%s: operation \"%s\" belongs in [[expand.steps]]", where, s->op);

    /* Allowed keys: the common ones plus the op's own. */
    const char *allowed[48];
    size_t na = 0;
    const char *const common[] = {"op", "name", "transaction", "lock_timeout",
                                  "statement_timeout", "lock_retries"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        allowed[na++] = common[i];
    for (const char *const *f = spec->required; *f && na < 46; f++)
        allowed[na++] = *f;
    for (const char *const *f = spec->optional; *f && na < 46; f++)
        allowed[na++] = *f;
    allowed[na] = NULL;
    char opwhere[96];
    snprintf(opwhere, sizeof opwhere, "%s (op \"%s\")", where, s->op);
    check_keys(c, t, opwhere, allowed);
    for (const char *const *f = spec->required; *f; f++)
        if (!toml_get(t, *f))
            bad(c, t->line, t->col, "%s: operation \"%s\" needs \"%s\"", where, s->op, *f);
    const char *const ident_fields[] = {"table", "column", "to", "index", "constraint", "references"};
    for (size_t i = 0; i < sizeof ident_fields / sizeof ident_fields[0]; i++) {
        const toml_value *v = toml_get(t, ident_fields[i]);
        if (!v)
            continue;
        if (v->type != TOML_STRING)
            bad(c, v->line, v->col, "%s.%s must be a string, not %s %s", where, ident_fields[i],
                type_article(v->type), toml_type_name(v->type));
        else if (!ident_ok(v->u.str.ptr, strcmp(ident_fields[i], "column") != 0))
            bad(c, v->line, v->col, "%s.%s = \"%s\" is not a valid name", where, ident_fields[i],
                v->u.str.ptr);
    }
    /* The fields zdm pastes into the SQL it generates: one piece each
     * (type = "text; DROP TABLE orders" ran, and lint never sees
     * generated SQL; type = "uuid DEFAULT gen_random_uuid()" rewrote the
     * table under its lock). */
    const char *const pieces[] = {"type", "default", "up", "down", "check", "where"};
    for (size_t i = 0; strcmp(s->op, "sql") != 0 && i < sizeof pieces / sizeof pieces[0]; i++) {
        const toml_value *v = toml_get(t, pieces[i]);
        /* "down" is an expression of change_type's only; elsewhere (an
         * op = "sql" step's) it is statements of their own */
        if (!v || v->type != TOML_STRING || (!strcmp(pieces[i], "down") && strcmp(s->op, "change_type") != 0))
            continue;
        int as_type = strcmp(pieces[i], "type") == 0;
        const char *why = zdm_sql_fragment_problem(v->u.str.ptr, as_type, as_type);
        if (why)
            bad(c, v->line, v->col, "%s.%s = \"%s\" %s", where, pieces[i], v->u.str.ptr, why);
    }
    if (strcmp(s->op, "change_type") == 0) {
        free(s->down);
        s->down = NULL; /* "down" is the conversion expression, not undo SQL */
    }
    /* Op steps keep their fields in s->fields; SQL generation reads them. */
}

static void load_steps(chk *c, const toml_value *phase_tbl, zdm_phase_kind phase,
                       zdm_step **out, size_t *n)
{
    const char *pname = phase == ZDM_PHASE_EXPAND ? "expand" : "contract";
    const toml_kv *kv = toml_get_kv(phase_tbl, "steps");
    if (!kv)
        return;
    const toml_value *arr = kv->value;
    if (arr->type != TOML_ARRAY) {
        bad(c, arr->line, arr->col, "%s.steps must be an array of tables ([[%s.steps]]), not %s %s",
            pname, pname, type_article(arr->type), toml_type_name(arr->type));
        return;
    }
    *out = zdm_xcalloc(arr->u.array.len + 1, sizeof **out);
    for (size_t i = 0; i < arr->u.array.len; i++) {
        const toml_value *st = arr->u.array.items[i];
        if (st->type != TOML_TABLE) {
            bad(c, st->line, st->col, "%s.steps[%zu] must be a table with \"sql\" or \"op\"",
                pname, i + 1);
            continue;
        }
        load_step(c, st, phase, (int)*n + 1, &(*out)[*n]);
        (*n)++;
    }
}

/* ---- backfill ---- */

static void load_assigns(chk *c, const toml_value *t, const char *key, const char *where,
                         zdm_assign **out, size_t *n)
{
    const toml_value *v = want(c, t, key, TOML_TABLE, where);
    if (!v)
        return;
    *out = zdm_xcalloc(v->u.table.len + 1, sizeof **out);
    for (size_t i = 0; i < v->u.table.len; i++) {
        const toml_kv *kv = &v->u.table.items[i];
        if (kv->value->type != TOML_STRING) {
            bad(c, kv->value->line, kv->value->col,
                "%s.%s.%s must be a SQL expression in a string, not %s %s", where, key, kv->key,
                type_article(kv->value->type), toml_type_name(kv->value->type));
            continue;
        }
        if (!ident_ok(kv->key, 0)) {
            bad(c, kv->line, kv->col, "%s.%s: \"%s\" is not a valid column name", where, key,
                kv->key);
            continue;
        }
        char w2[96];
        snprintf(w2, sizeof w2, "%s.%s", where, key);
        sql_bounds(c, kv->value, kv->value->u.str.ptr, w2, kv->key, ZDM_SQL_PG);
        /* pasted into the backfill's statements and the triggers' bodies */
        const char *why = zdm_sql_fragment_problem(kv->value->u.str.ptr, 0, 0);
        if (why)
            bad(c, kv->value->line, kv->value->col, "%s %s.%s = \"%s\" %s", where, key, kv->key,
                kv->value->u.str.ptr, why);
        zdm_assign *a = &(*out)[(*n)++];
        a->column = zdm_xstrdup(kv->key);
        a->expr = zdm_xstrdup(kv->value->u.str.ptr);
        a->line = kv->line;
        a->col = kv->col;
    }
}

static void load_throttle(chk *c, const toml_value *t, zdm_throttle *th)
{
    static const char *const keys[] = {
        "batch_size", "target_batch_ms", "min_batch_size", "max_batch_size",
        "max_rows_per_second", "sleep_ms", "max_replication_lag_ms", "pause_query",
        "check_autovacuum", "check_wal_archive", "max_wal_archive_ready", "check_replica_lag",
        "max_latency_factor", "max_lock_ms", "max_duty_percent", "probe_query", "stall_after_ms", NULL};
    const char *w = "[backfill.throttle]";
    check_keys(c, t, w, keys);
    const int64_t big = INT64_C(1000000000);
    th->batch_size = want_int(c, t, "batch_size", w, th->batch_size, 1, big);
    th->target_batch_ms = want_int(c, t, "target_batch_ms", w, th->target_batch_ms, 0, ZDM_THROTTLE_MS_MAX);
    th->min_batch_size = want_int(c, t, "min_batch_size", w, th->min_batch_size, 1, big);
    th->max_batch_size = want_int(c, t, "max_batch_size", w, th->max_batch_size, 1, big);
    th->max_rows_per_second = want_int(c, t, "max_rows_per_second", w, 0, 0, big);
    th->sleep_ms = want_int(c, t, "sleep_ms", w, 0, 0, ZDM_THROTTLE_MS_MAX);
    th->max_replication_lag_ms = want_int(c, t, "max_replication_lag_ms", w, 0, 0, big);
    th->pause_query = want_sql(c, t, "pause_query", w, 0, ZDM_SQL_PG);
    th->pause_query_line = line_of_key(t, "pause_query");
    th->check_autovacuum = want_bool(c, t, "check_autovacuum", w, th->check_autovacuum);
    th->check_wal_archive = want_bool(c, t, "check_wal_archive", w, th->check_wal_archive);
    th->max_wal_archive_ready = want_int(c, t, "max_wal_archive_ready", w, th->max_wal_archive_ready, 1, big);
    th->check_replica_lag = want_bool(c, t, "check_replica_lag", w, th->check_replica_lag);
    th->max_latency_pct = want_factor(c, t, "max_latency_factor", w, th->max_latency_pct);
    th->max_lock_ms = want_int(c, t, "max_lock_ms", w, th->max_lock_ms, 0, ZDM_THROTTLE_MS_MAX);
    th->max_duty_percent = want_int(c, t, "max_duty_percent", w, th->max_duty_percent, 1, 100);
    th->probe_query = want_sql(c, t, "probe_query", w, 0, ZDM_SQL_PG);
    th->stall_after_ms = want_int(c, t, "stall_after_ms", w, th->stall_after_ms, 1, ZDM_STALL_MS_MAX);
    if (th->min_batch_size > th->max_batch_size)
        bad(c, t->line, t->col, "[backfill.throttle] min_batch_size (%lld) is larger than max_batch_size (%lld)",
            (long long)th->min_batch_size, (long long)th->max_batch_size);
}

/* An expression that reads a column another one of its direction
 * writes: the backfill's UPDATE reads that column as it was, its final
 * check (which converts again what differs) as it is after, and the
 * dual-write trigger once, on the row as the application wrote it -- so
 * the application's rows got other values than the backfilled ones
 * (set.b = "coalesce(a, 'none')" beside set.a: "none" against "A"). */
static void cross_reads(chk *c, const zdm_assign *a, size_t n, const char *kind)
{
    for (size_t i = 0; i < n; i++) {
        zdm_strv others = {0};
        for (size_t j = 0; j < n; j++)
            if (j != i)
                zdm_strv_push(&others, a[j].column);
        for (size_t j = 0; j < others.n; j++) {
            zdm_strv one = {0};
            zdm_strv_push(&one, others.v[j]);
            if (zdm_dwsql_reads(a[i].expr, &one))
                bad(c, a[i].line, a[i].col,
                    "%s.%s reads \"%s\", which %s.%s writes: the dual-write trigger would compute it from the "
                    "row as written, the backfill from the row as it was; compute %s.%s from the columns the "
                    "other is computed from (repeat %s.%s's expression in it)",
                    kind, a[i].column, others.v[j], kind, others.v[j], kind, a[i].column, kind, others.v[j]);
            zdm_strv_free(&one);
        }
        zdm_strv_free(&others);
    }
}

static zdm_backfill *load_backfill(chk *c, const toml_value *t)
{
    static const char *const keys[] = {"table", "key", "where", "set", "dual_write", "throttle", NULL};
    const char *w = "[backfill]";
    check_keys(c, t, w, keys);
    zdm_backfill *b = zdm_xcalloc(1, sizeof *b);
    b->line = t->line;
    b->col = t->col;
    zdm_throttle_defaults(&b->throttle);
    b->table = want_str(c, t, "table", w, 1);
    if (b->table && !ident_ok(b->table, 1)) {
        const toml_value *v = toml_get(t, "table");
        bad(c, v->line, v->col, "[backfill] table = \"%s\" is not a valid table name", b->table);
    }
    want_strv(c, t, "key", w, &b->key, NULL, NULL);
    for (size_t i = 0; i < b->key.n; i++)
        if (!ident_ok(b->key.v[i], 0)) {
            const toml_value *v = toml_get(t, "key");
            bad(c, v->line, v->col, "[backfill] key column \"%s\" is not a valid column name", b->key.v[i]);
        }
    b->where = want_sql(c, t, "where", w, 0, ZDM_SQL_PG);
    b->where_line = line_of_key(t, "where");
    const char *wwhy = b->where ? zdm_sql_fragment_problem(b->where, 0, 0) : NULL;
    if (wwhy) {
        const toml_value *v = toml_get(t, "where");
        bad(c, v->line, v->col, "[backfill] where = \"%s\" %s", b->where, wwhy);
    }
    b->table_line = line_of_key(t, "table");
    load_assigns(c, t, "set", w, &b->set, &b->nset);
    const toml_value *setv = toml_get(t, "set");
    if (!setv || (setv->type == TOML_TABLE && setv->u.table.len == 0)) /* absent or set = {} */
        bad(c, t->line, t->col, "[backfill] needs at least one set.COLUMN = \"SQL expression\"");
    b->dual_write = b->nset > 0;
    const toml_value *dw = toml_get(t, "dual_write");
    if (dw && dw->type == TOML_BOOL) {
        b->dual_write = dw->u.boolean;
    } else if (dw && dw->type == TOML_TABLE) {
        static const char *const dkeys[] = {"enabled", "sources", "reverse", NULL};
        check_keys(c, dw, "[backfill.dual_write]", dkeys);
        b->dual_write = want_bool(c, dw, "enabled", "[backfill.dual_write]", 1);
        want_strv(c, dw, "sources", "[backfill.dual_write]", &b->dw_sources, NULL, NULL);
        b->dw_sources_line = line_of_key(dw, "sources");
        load_assigns(c, dw, "reverse", "[backfill.dual_write]", &b->reverse, &b->nreverse);
    } else if (dw) {
        bad(c, dw->line, dw->col, "[backfill] dual_write must be a table or a boolean");
    }
    const toml_value *th = want(c, t, "throttle", TOML_TABLE, w);
    if (th)
        load_throttle(c, th, &b->throttle);
    /* dual_write.sources name the columns whose writes fire the forward
     * trigger: plain column names, each once, never a column the forward
     * direction itself writes (set.*).  A reverse target may be a source:
     * rename_column's old column is both, the WHEN clauses keep the two
     * directions apart. */
    const toml_value *srcv = dw && dw->type == TOML_TABLE ? toml_get(dw, "sources") : NULL;
    for (size_t i = 0; srcv && i < b->dw_sources.n; i++) {
        const char *src = b->dw_sources.v[i];
        const toml_value *at = srcv->type == TOML_ARRAY && i < srcv->u.array.len ? srcv->u.array.items[i] : srcv;
        if (!ident_ok(src, 0)) {
            bad(c, at->line, at->col, "[backfill.dual_write] sources: \"%s\" is not a valid column name", src);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(b->dw_sources.v[j], src) == 0)
                bad(c, at->line, at->col, "[backfill.dual_write] sources: \"%s\" is listed twice", src);
        for (size_t j = 0; j < b->nset; j++)
            if (strcmp(b->set[j].column, src) == 0)
                bad(c, at->line, at->col,
                    "[backfill.dual_write] sources: \"%s\" is a backfill target (set.%s); sources are the "
                    "columns the old application writes, from which the targets are computed", src, src);
    }
    if (srcv && srcv->type == TOML_ARRAY && srcv->u.array.len == 0)
        bad(c, srcv->line, srcv->col,
            "[backfill.dual_write] sources is empty: list the columns whose writes must update the targets, "
            "or leave sources out (every UPDATE then fires the trigger)");
    /* A column written by both directions would loop; refuse early. */
    for (size_t i = 0; i < b->nreverse; i++)
        for (size_t j = 0; j < b->nset; j++)
            if (strcmp(b->reverse[i].column, b->set[j].column) == 0)
                bad(c, b->reverse[i].line, b->reverse[i].col,
                    "column \"%s\" is both a backfill target (set.%s) and a reverse target; "
                    "a column can only be written in one direction",
                    b->reverse[i].column, b->set[j].column);
    if (b->dual_write) {
        cross_reads(c, b->set, b->nset, "set");
        cross_reads(c, b->reverse, b->nreverse, "reverse");
    }
    /* A set.X that reads X changes a row again each time it converts it;
     * with a where that names none of the targets, a converted row still
     * matches it, so the final check (or a trigger, or a rerun) would
     * convert it again: n = n + 1 became 2, then 3.  (coalesce(n, 0)
     * with where = "n IS NULL" is fine: the row leaves where.) */
    const char **targets = zdm_xcalloc(b->nset + 1, sizeof *targets);
    for (size_t j = 0; j < b->nset; j++)
        targets[j] = b->set[j].column;
    /* any mention counts (t.n, in a subquery): a false match only lets a
     * plan through to the final check, which never converts twice */
    if (b->where && !zdm_dwsql_has_word(b->where, targets))
        for (size_t i = 0; i < b->nset; i++) {
            zdm_strv self = {0};
            zdm_strv_push(&self, b->set[i].column);
            if (zdm_dwsql_reads(b->set[i].expr, &self))
                bad(c, b->set[i].line, b->set[i].col,
                    "[backfill] set.%s reads %s itself, and where names none of the targets: a converted row "
                    "still matches where, and converting it again changes it again; make where false for a "
                    "converted row (name a target the conversion changes, e.g. set.%s_fixed = \"true\" with "
                    "where = \"... AND %s_fixed IS NULL\"), or write the change as a raw sql step",
                    b->set[i].column, b->set[i].column, b->set[i].column, b->set[i].column);
            zdm_strv_free(&self);
        }
    free(targets);
    return b;
}

/* ---- hooks ---- */

int zdm_split_command(const char *line, zdm_strv *argv, zdm_err *err)
{
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        zdm_buf w = {0};
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                const char *start = p;
                while (*p && *p != q)
                    p++;
                if (!*p) {
                    zdm_buf_free(&w);
                    return zdm_err_set(err, ZDM_EXIT_USAGE, "unterminated %c quote in command \"%s\"", q, line);
                }
                zdm_buf_putn(&w, start, (size_t)(p - start));
                p++;
            } else {
                zdm_buf_putn(&w, p, 1);
                p++;
            }
        }
        zdm_strv_push_owned(argv, zdm_buf_take(&w));
    }
    if (argv->n == 0)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "empty command");
    return 0;
}

static void load_hook_cmd(chk *c, const toml_value *v, const char *event, zdm_hook_cmd *cmd)
{
    cmd->line = v->line;
    cmd->col = v->col;
    if (v->type == TOML_STRING) {
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_split_command(v->u.str.ptr, &cmd->argv, &e) != 0)
            bad(c, v->line, v->col, "hooks.%s: %s", event, e.msg);
        return;
    }
    if (v->type == TOML_ARRAY) { /* exact argv, no splitting */
        for (size_t i = 0; i < v->u.array.len; i++) {
            const toml_value *a = v->u.array.items[i];
            if (a->type != TOML_STRING) {
                bad(c, a->line, a->col, "hooks.%s: a command given as an array must hold only strings", event);
                continue;
            }
            zdm_strv_push(&cmd->argv, a->u.str.ptr);
        }
        if (!cmd->argv.n)
            bad(c, v->line, v->col, "hooks.%s: empty command", event);
        return;
    }
    bad(c, v->line, v->col, "hooks.%s: a command must be a string or an array of strings, not %s %s",
        event, type_article(v->type), toml_type_name(v->type));
}

static void load_hooks(chk *c, const toml_value *t, zdm_hooks *h)
{
    const char *allowed[ZDM_HOOK__COUNT + 3];
    for (int i = 0; i < ZDM_HOOK__COUNT; i++)
        allowed[i] = zdm_hook_event_name((zdm_hook_event)i);
    allowed[ZDM_HOOK__COUNT] = "timeout";
    allowed[ZDM_HOOK__COUNT + 1] = "inherit";
    allowed[ZDM_HOOK__COUNT + 2] = NULL;
    check_keys(c, t, "[hooks]", allowed);
    h->timeout_ms = want_duration(c, t, "timeout", "[hooks]", h->timeout_ms);
    h->inherit = want_bool(c, t, "inherit", "[hooks]", 1);
    for (int e = 0; e < ZDM_HOOK__COUNT; e++) {
        const toml_value *v = toml_get(t, zdm_hook_event_name((zdm_hook_event)e));
        if (!v)
            continue;
        /* One command (string) or a list of commands. */
        if (v->type == TOML_STRING) {
            h->cmds[e] = zdm_xcalloc(1, sizeof(zdm_hook_cmd));
            load_hook_cmd(c, v, zdm_hook_event_name((zdm_hook_event)e), &h->cmds[e][0]);
            h->n[e] = 1;
        } else if (v->type == TOML_ARRAY) {
            h->cmds[e] = zdm_xcalloc(v->u.array.len + 1, sizeof(zdm_hook_cmd));
            for (size_t i = 0; i < v->u.array.len; i++)
                load_hook_cmd(c, v->u.array.items[i], zdm_hook_event_name((zdm_hook_event)e), &h->cmds[e][h->n[e]++]);
        } else {
            bad(c, v->line, v->col, "hooks.%s must be a command string or an array of commands", zdm_hook_event_name((zdm_hook_event)e));
        }
    }
}

void zdm_hooks_free(zdm_hooks *h)
{
    for (int e = 0; e < ZDM_HOOK__COUNT; e++) {
        for (size_t i = 0; i < h->n[e]; i++)
            zdm_strv_free(&h->cmds[e][i].argv);
        free(h->cmds[e]);
        h->cmds[e] = NULL;
        h->n[e] = 0;
    }
}

int zdm_hooks_load_doc(const char *path, const toml_value *doc, zdm_hooks *h, zdm_diags *diags)
{
    chk c = {path, diags, 0};
    memset(h, 0, sizeof *h);
    h->timeout_ms = 300000;
    h->inherit = 1;
    static const char *const keys[] = {"hooks", "contract", NULL};
    check_keys(&c, doc, "zdm.toml", keys);
    const toml_value *hk = want(&c, doc, "hooks", TOML_TABLE, "zdm.toml");
    if (hk)
        load_hooks(&c, hk, h);
    if (c.errors) {
        zdm_hooks_free(h);
        return ZDM_EXIT_USAGE;
    }
    return 0;
}

/* ---- the plan ---- */

/* "cutover + 24h", "cutover" or "24h" (after cutover) into *out; `what`
 * names the key in messages. */
static void parse_soak(chk *c, const char *text, const toml_value *v, const char *what, int64_t *out)
{
    const char *s = text;
    while (isspace((unsigned char)*s))
        s++;
    if (strncmp(s, "cutover", 7) == 0) {
        s += 7;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s) {
            *out = 0;
            return;
        }
        if (*s != '+') {
            bad(c, v->line, v->col, "%s = \"%s\": expected \"cutover + DURATION\" such as \"cutover + 24h\"",
                what, text);
            return;
        }
        s++;
    }
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_parse_duration_ms(s, 1000, out, &e) != 0)
        bad(c, v->line, v->col, "%s = \"%s\": %s", what, text, e.msg);
}

static void parse_not_before(chk *c, zdm_plan *p, const toml_value *v)
{
    parse_soak(c, p->not_before, v, "contract.not_before", &p->not_before_ms);
}

void zdm_contract_defaults_init(zdm_contract_defaults *d)
{
    d->not_before_ms = -1;
    d->max_attempts = 3;
    d->retry_after_ms = 10 * 60 * 1000;
}

int zdm_project_contract_load(const char *path, const toml_value *doc, zdm_contract_defaults *out,
                              zdm_diags *diags)
{
    chk c = {path, diags, 0};
    zdm_contract_defaults_init(out);
    const toml_value *ct = toml_get(doc, "contract");
    if (!ct)
        return 0;
    if (ct->type != TOML_TABLE) {
        bad(&c, ct->line, ct->col, "contract in zdm.toml must be a table: [contract]");
        return ZDM_EXIT_USAGE;
    }
    static const char *const keys[] = {"not_before", "max_attempts", "retry_after", NULL};
    check_keys(&c, ct, "[contract] of zdm.toml", keys);
    const toml_value *v = toml_get(ct, "not_before");
    if (v && v->type != TOML_STRING)
        bad(&c, v->line, v->col, "contract.not_before must be a string such as \"cutover + 24h\"");
    else if (v)
        parse_soak(&c, v->u.str.ptr, v, "contract.not_before (zdm.toml)", &out->not_before_ms);
    v = toml_get(ct, "max_attempts");
    if (v && (v->type != TOML_INTEGER || v->u.integer < 1 || v->u.integer > 100))
        bad(&c, v->line, v->col, "contract.max_attempts must be a number from 1 to 100");
    else if (v)
        out->max_attempts = (int)v->u.integer;
    v = toml_get(ct, "retry_after");
    if (v && v->type != TOML_STRING) {
        bad(&c, v->line, v->col, "contract.retry_after must be a duration such as \"10m\"");
    } else if (v) {
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_parse_duration_ms(v->u.str.ptr, 1000, &out->retry_after_ms, &e) != 0)
            bad(&c, v->line, v->col, "contract.retry_after = \"%s\": %s", v->u.str.ptr, e.msg);
    }
    return c.errors ? ZDM_EXIT_USAGE : 0;
}

static void load_allow(chk *c, const toml_value *t, zdm_plan *p)
{
    const toml_value *v = toml_get(t, "allow_unsafe");
    if (!v)
        return;
    if (v->type != TOML_ARRAY) {
        bad(c, v->line, v->col, "allow_unsafe must be an array of rule ids or {rule = \"...\", reason = \"...\"} tables");
        return;
    }
    p->allow = zdm_xcalloc(v->u.array.len + 1, sizeof *p->allow);
    for (size_t i = 0; i < v->u.array.len; i++) {
        const toml_value *it = v->u.array.items[i];
        zdm_allow *a = &p->allow[p->nallow];
        if (it->type == TOML_STRING) {
            a->rule = zdm_xstrdup(it->u.str.ptr);
            a->line = it->line;
            a->col = it->col;
        } else if (it->type == TOML_TABLE) {
            static const char *const keys[] = {"rule", "reason", NULL};
            check_keys(c, it, "allow_unsafe entry", keys);
            a->rule = want_str(c, it, "rule", "allow_unsafe entry", 1);
            a->reason = want_str(c, it, "reason", "allow_unsafe entry", 0);
            if (!a->rule) { /* the slot is reused: drop what it holds */
                free(a->reason);
                a->reason = NULL;
                continue;
            }
            const toml_value *rv = toml_get(it, "rule");
            a->line = rv->line;
            a->col = rv->col;
        } else {
            bad(c, it->line, it->col, "allow_unsafe entries must be rule ids (strings) or tables");
            continue;
        }
        p->nallow++;
    }
}

static char *default_id(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".toml") == 0)
        n -= 5;
    return zdm_xstrndup(base, n);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return zdm_xstrdup(".");
    if (slash == path)
        return zdm_xstrdup("/");
    return zdm_xstrndup(path, (size_t)(slash - path));
}

static int id_ok(const char *id)
{
    if (!*id || strlen(id) > 200)
        return 0;
    for (const char *p = id; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* The plan's top-level keys (id, description, requires, timeouts,
 * allow_unsafe). */
static void load_top(chk *cp, const toml_value *doc, const char *path, zdm_plan *p)
{
    p->id = want_str(cp, doc, "id", "the plan", 0);
    const toml_kv *idkv = toml_get_kv(doc, "id");
    if (idkv) {
        p->id_line = idkv->value->line;
        p->id_col = idkv->value->col;
    }
    if (!p->id)
        p->id = default_id(path);
    if (strlen(p->id) > 200)
        bad(cp, p->id_line, p->id_col, "plan id \"%.32s...\" is too long (%zu characters, at most 200)",
            p->id, strlen(p->id));
    else if (!id_ok(p->id))
        bad(cp, p->id_line ? p->id_line : 0, p->id_col,
            "plan id \"%s\" may only use letters, digits, '_', '-' and '.'%s", p->id,
            idkv ? "" : " (the id defaults to the file name; set id = \"...\" to choose another)");
    p->description = want_str(cp, doc, "description", "the plan", 0);
    p->baseline = want_bool(cp, doc, "baseline", "the plan", 0);
    want_strv(cp, doc, "requires", "the plan", &p->requires, &p->requires_line, &p->requires_col);
    p->lock_timeout_ms = want_duration(cp, doc, "lock_timeout", "the plan", p->lock_timeout_ms);
    p->statement_timeout_ms = want_duration(cp, doc, "statement_timeout", "the plan", 0);
    p->lock_retries = (int)want_int(cp, doc, "lock_retries", "the plan", 10, 0, 1000);
    p->backup_keep = (int)want_int(cp, doc, "backup_keep", "the plan", 3, 0, 1000);
    p->backup_timeout_ms = want_duration(cp, doc, "backup_timeout", "the plan", p->backup_timeout_ms);
    load_allow(cp, doc, p);
}

/* The SQL an operation became keeps the same bounds as hand-written SQL:
 * a deep `check` or `up` expression is refused here, not later. */
static void check_op_limits(chk *cp, const zdm_plan *p)
{
    int told_line = 0, told_col = 0; /* one message per op, whatever it became */
    for (int ph = 0; !cp->errors && ph < 2; ph++) {
        const zdm_step *st = ph == 0 ? p->expand : p->contract;
        size_t n = ph == 0 ? p->nexpand : p->ncontract;
        for (size_t i = 0; i < n; i++) {
            if (!st[i].from_op || (st[i].line == told_line && st[i].col == told_col))
                continue;
            for (int k = 0; k < 4; k++) {
                const char *text = k & 1 ? st[i].down_for[k / 2] : st[i].sql_for[k / 2];
                int line = 0, col = 0;
                zdm_buf why = {0};
                if (text && zdm_sql_check_limits(text, k / 2 == 0 ? ZDM_SQL_PG : ZDM_SQL_SQLITE, &line, &col,
                                                 &why) != 0) {
                    bad(cp, st[i].line, st[i].col, "%s step (op \"%s\"): the SQL it becomes holds %s",
                        ph == 0 ? "expand" : "contract", st[i].from_op, why.data);
                    told_line = st[i].line;
                    told_col = st[i].col;
                    k = 4;
                }
                zdm_buf_free(&why);
            }
        }
    }
}

int zdm_plan_load_buffer(const char *path, const char *src, size_t len, zdm_plan **out,
                         zdm_diags *diags)
{
    *out = NULL;
    zdm_err err;
    zdm_err_clear(&err);
    toml_value *doc = NULL;
    if (toml_parse(src, len, path, &doc, &err) != 0) {
        zdm_strv_push(&diags->msgs, err.msg);
        return ZDM_EXIT_USAGE;
    }
    chk c = {path, diags, 0};
    zdm_plan *p = zdm_xcalloc(1, sizeof *p);
    p->tree = zdm_xcalloc(1, sizeof *p->tree);
    p->tree->doc = doc;
    p->path = zdm_xstrdup(path);
    p->dir = dir_of(path);
    p->lock_timeout_ms = 2000;
    p->statement_timeout_ms = 0;
    p->lock_retries = 10;
    p->backup_keep = 3;
    p->backup_timeout_ms = 600000;
    p->not_before_ms = -1;
    p->hooks.timeout_ms = 300000;
    p->hooks.inherit = 1;
    zdm_sha256_hex(src, len, p->checksum);

    static const char *const top_keys[] = {
        "id", "description", "requires", "lock_timeout", "statement_timeout", "lock_retries",
        "allow_unsafe", "expand", "backfill", "contract", "hooks", "baseline", "on_failure", "backup_keep",
        "backup_timeout", NULL};
    check_keys(&c, doc, "the plan", top_keys);

    load_top(&c, doc, path, p);
    {
        /* what a failed expand leaves: "rollback" (default) or "stop" */
        char *of = want_str(&c, doc, "on_failure", "the plan", 0);
        if (of && strcmp(of, "stop") == 0) {
            p->expand_keep_partial = 1;
        } else if (of && strcmp(of, "rollback") != 0) {
            const toml_value *v = toml_get(doc, "on_failure");
            bad(&c, v->line, v->col, "on_failure = \"%s\": expected \"rollback\" (the default) or \"stop\"", of);
        }
        free(of);
    }

    const toml_value *ex = want(&c, doc, "expand", TOML_TABLE, "the plan");
    if (ex) {
        static const char *const keys[] = {"steps", NULL};
        check_keys(&c, ex, "[expand]", keys);
        load_steps(&c, ex, ZDM_PHASE_EXPAND, &p->expand, &p->nexpand);
    }
    const toml_value *bf = want(&c, doc, "backfill", TOML_TABLE, "the plan");
    if (bf)
        p->backfill = load_backfill(&c, bf);
    const toml_value *ct = want(&c, doc, "contract", TOML_TABLE, "the plan");
    p->contract_line = line_of_key(doc, "contract");
    if (ct) {
        static const char *const keys[] = {"steps", "not_before", "verify", NULL};
        check_keys(&c, ct, "[contract]", keys);
        load_steps(&c, ct, ZDM_PHASE_CONTRACT, &p->contract, &p->ncontract);
        p->not_before = want_str(&c, ct, "not_before", "[contract]", 0);
        if (p->not_before)
            parse_not_before(&c, p, toml_get(ct, "not_before"));
        p->verify = want_sql(&c, ct, "verify", "[contract]", 0, ZDM_SQL_PG);
        p->verify_line = line_of_key(ct, "verify");
    }
    const toml_value *hk = want(&c, doc, "hooks", TOML_TABLE, "the plan");
    if (hk)
        load_hooks(&c, hk, &p->hooks);

    /* Operations become raw steps (and maybe the backfill) once their
     * fields are known to be well-formed. */
    if (!c.errors)
        c.errors += zdm_ops_expand(p, diags);
    if (!c.errors)
        check_op_limits(&c, p);

    /* A baseline records a schema that already exists: an empty database
     * has an empty one. */
    if (!c.errors && !p->nexpand && !p->backfill && !p->ncontract && !p->baseline)
        bad(&c, 1, 1, "the plan does nothing: add [[expand.steps]], [backfill] or [[contract.steps]]");

    if (c.errors) {
        zdm_plan_free(p);
        return ZDM_EXIT_USAGE;
    }
    *out = p;
    return 0;
}

int zdm_plan_load_file(const char *path, zdm_plan **out, zdm_diags *diags)
{
    char *src;
    size_t len;
    zdm_err err;
    zdm_err_clear(&err);
    *out = NULL;
    if (zdm_read_file(path, &src, &len, &err) != 0) {
        zdm_strv_push(&diags->msgs, err.msg);
        return ZDM_EXIT_FAIL;
    }
    int rc = zdm_plan_load_buffer(path, src, len, out, diags);
    free(src);
    return rc;
}

static void free_steps(zdm_step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].name);
        free(s[i].sql);
        free(s[i].down);
        for (int k = 0; k < 2; k++) {
            free(s[i].sql_for[k]);
            free(s[i].down_for[k]);
            free(s[i].unsupported_for[k]);
        }
        free(s[i].from_op);
        free(s[i].op);
    }
    free(s);
}

static void free_assigns(zdm_assign *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].column);
        free(a[i].expr);
    }
    free(a);
}

void zdm_plan_free(zdm_plan *p)
{
    if (!p)
        return;
    free(p->id);
    free(p->path);
    free(p->dir);
    free(p->description);
    zdm_strv_free(&p->requires);
    free(p->requires_line);
    free(p->requires_col);
    free_steps(p->expand, p->nexpand);
    free_steps(p->contract, p->ncontract);
    if (p->backfill) {
        zdm_backfill *b = p->backfill;
        free(b->table);
        zdm_strv_free(&b->key);
        free(b->where);
        free_assigns(b->set, b->nset);
        zdm_strv_free(&b->dw_sources);
        free_assigns(b->reverse, b->nreverse);
        free(b->throttle.pause_query);
        free(b->throttle.probe_query);
        free(b);
    }
    free(p->not_before);
    free(p->verify);
    zdm_hooks_free(&p->hooks);
    for (size_t i = 0; i < p->nallow; i++) {
        free(p->allow[i].rule);
        free(p->allow[i].reason);
    }
    free(p->allow);
    if (p->tree)
        toml_free(p->tree->doc);
    free(p->tree);
    free(p);
}

/* ---- sets of plans ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Expands paths into the sorted list of plan files. */
static int collect_files(const char *const *paths, size_t npaths, zdm_strv *files, zdm_diags *d)
{
    int rc = 0;
    for (size_t i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            zdm_diag_add(d, paths[i], 0, 0, "cannot read: %s", strerror(errno));
            rc = ZDM_EXIT_USAGE;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            zdm_strv_push(files, paths[i]);
            continue;
        }
        DIR *dir = opendir(paths[i]);
        if (!dir) {
            zdm_diag_add(d, paths[i], 0, 0, "cannot open directory: %s", strerror(errno));
            rc = ZDM_EXIT_USAGE;
            continue;
        }
        zdm_strv found = {0};
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.' || !ends_with(de->d_name, ".toml") ||
                strcmp(de->d_name, "zdm.toml") == 0)
                continue;
            const char *sep = ends_with(paths[i], "/") ? "" : "/";
            zdm_strv_push_owned(&found, zdm_xasprintf("%s%s%s", paths[i], sep, de->d_name));
        }
        closedir(dir);
        if (found.n)
            qsort(found.v, found.n, sizeof *found.v, cmp_str);
        for (size_t j = 0; j < found.n; j++)
            zdm_strv_push(files, found.v[j]);
        zdm_strv_free(&found);
    }
    return rc;
}


static size_t plan_index(const zdm_plan_set *s, const char *id)
{
    size_t i = 0;
    while (i < s->n && strcmp(s->plans[i]->id, id) != 0)
        i++;
    return i;
}

/* Is plan `to` reachable from plan `from` through requires edges between
 * plans not yet ordered (self-requires ignored)?  Iterative, bounded by n. */
static int reaches_from(const zdm_plan_set *s, const int *done, size_t from, size_t to)
{
    size_t n = s->n, top = 0;
    int found = 0;
    char *seen = zdm_xcalloc(n + 1, 1);
    size_t *stack = zdm_xcalloc(n + 1, sizeof *stack);
    stack[top++] = from;
    seen[from] = 1;
    while (top && !found) {
        const zdm_plan *p = s->plans[stack[--top]];
        for (size_t r = 0; r < p->requires.n && !found; r++) {
            size_t qi = plan_index(s, p->requires.v[r]);
            if (qi == n || done[qi] || s->plans[qi] == p)
                continue;
            if (qi == to)
                found = 1;
            else if (!seen[qi]) {
                seen[qi] = 1;
                stack[top++] = qi;
            }
        }
    }
    free(seen);
    free(stack);
    return found;
}

/* Is plan i on a dependency cycle? */
static int reaches(const zdm_plan_set *s, const int *done, size_t i)
{
    return reaches_from(s, done, i, i);
}

/* Orders plans so requirements come first; reports cycles.  Kahn's
 * algorithm, picking the smallest id among the ready ones so the order is
 * stable. */
static int order_plans(zdm_plan_set *s, zdm_diags *d)
{
    size_t n = s->n;
    int *indeg = zdm_xcalloc(n + 1, sizeof(int));
    int *done = zdm_xcalloc(n + 1, sizeof(int));
    zdm_plan **sorted = zdm_xcalloc(n + 1, sizeof *sorted);
    /* A plan requiring itself is reported by the caller, not as a cycle. */
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < s->plans[i]->requires.n; r++)
            if (strcmp(s->plans[i]->requires.v[r], s->plans[i]->id) != 0 &&
                zdm_plan_set_find(s, s->plans[i]->requires.v[r]))
                indeg[i]++;
    size_t k = 0;
    for (;;) {
        size_t pick = n;
        for (size_t i = 0; i < n; i++)
            if (!done[i] && indeg[i] == 0 &&
                (pick == n || strcmp(s->plans[i]->id, s->plans[pick]->id) < 0))
                pick = i;
        if (pick == n)
            break;
        done[pick] = 1;
        sorted[k++] = s->plans[pick];
        for (size_t i = 0; i < n; i++)
            for (size_t r = 0; r < s->plans[i]->requires.n; r++)
                if (i != pick && strcmp(s->plans[i]->requires.v[r], s->plans[pick]->id) == 0)
                    indeg[i]--;
    }
    int rc = 0;
    if (k < n) {
        /* Everything left is on a cycle or waits for one.  Name each
         * member of a cycle with the members it requires; a plan that only
         * waits names the requirement that does, at its position. */
        int *oncycle = zdm_xcalloc(n + 1, sizeof(int));
        for (size_t i = 0; i < n; i++)
            if (!done[i])
                oncycle[i] = reaches(s, done, i);
        for (size_t i = 0; i < n; i++) {
            if (done[i])
                continue;
            zdm_plan *p = s->plans[i];
            zdm_buf b = {0};
            size_t first = p->requires.n;
            for (size_t r = 0; r < p->requires.n; r++) {
                size_t qi = plan_index(s, p->requires.v[r]);
                if (qi == n || qi == i || done[qi])
                    continue;
                if (oncycle[i] && reaches_from(s, done, qi, i)) {
                    if (first == p->requires.n)
                        first = r;
                    zdm_buf_printf(&b, "%s\"%s\"", b.len ? ", " : "", s->plans[qi]->id);
                } else if (!oncycle[i] && first == p->requires.n) {
                    first = r;
                }
            }
            int line = first < p->requires.n ? p->requires_line[first] : 1;
            int col = first < p->requires.n ? p->requires_col[first] : 1;
            if (oncycle[i])
                zdm_diag_add(d, p->path, line, col,
                             "plan \"%s\" is part of a dependency cycle (it requires %s, which never comes first)",
                             p->id, b.data ? b.data : "?");
            else
                zdm_diag_add(d, p->path, line, col,
                             "plan \"%s\" requires \"%s\", which %s a dependency cycle", p->id,
                             first < p->requires.n ? p->requires.v[first] : "?",
                             first < p->requires.n &&
                                     oncycle[plan_index(s, p->requires.v[first])]
                                 ? "is part of"
                                 : "waits for");
            zdm_buf_free(&b);
        }
        free(oncycle);
        rc = ZDM_EXIT_USAGE;
        for (size_t i = 0; i < n; i++)
            if (!done[i])
                sorted[k++] = s->plans[i];
    }
    memcpy(s->plans, sorted, n * sizeof *sorted);
    free(sorted);
    free(indeg);
    free(done);
    return rc;
}

int zdm_plan_set_load(const char *const *paths, size_t npaths, zdm_plan_set *out,
                      zdm_diags *diags)
{
    return zdm_plan_set_load_known(paths, npaths, NULL, out, diags);
}

int zdm_plan_set_load_known(const char *const *paths, size_t npaths, const zdm_strv *known,
                            zdm_plan_set *out, zdm_diags *diags)
{
    memset(out, 0, sizeof *out);
    zdm_strv files = {0};
    int rc = collect_files(paths, npaths, &files, diags);
    out->plans = zdm_xcalloc(files.n + 1, sizeof *out->plans);
    for (size_t i = 0; i < files.n; i++) {
        zdm_plan *p = NULL;
        int r = zdm_plan_load_file(files.v[i], &p, diags);
        if (r != 0) {
            if (rc == 0 || r == ZDM_EXIT_USAGE)
                rc = r == ZDM_EXIT_FAIL ? ZDM_EXIT_USAGE : r;
            continue;
        }
        zdm_plan *dup = zdm_plan_set_find(out, p->id);
        if (dup) {
            zdm_diag_add(diags, p->path, p->id_line, p->id_col,
                         "duplicate plan id \"%s\" (also used by %s)", p->id, dup->path);
            zdm_plan_free(p);
            rc = ZDM_EXIT_USAGE;
            continue;
        }
        out->plans[out->n++] = p;
    }
    zdm_strv_free(&files);
    for (size_t i = 0; i < out->n; i++) {
        zdm_plan *p = out->plans[i];
        for (size_t r = 0; r < p->requires.n; r++) {
            const char *req = p->requires.v[r];
            if (strcmp(req, p->id) != 0 && zdm_plan_set_find(out, req))
                continue;
            int elsewhere = 0;
            for (size_t k = 0; known && k < known->n; k++)
                elsewhere |= strcmp(known->v[k], req) == 0;
            if (elsewhere && strcmp(req, p->id) != 0)
                continue;
            if (strcmp(req, p->id) == 0) {
                zdm_diag_add(diags, p->path, p->requires_line[r], p->requires_col[r],
                             "plan \"%s\" requires itself", p->id);
            } else {
                /* the other plans it could have meant, never itself */
                size_t nk = known ? known->n : 0, nids = 0;
                const char **ids = zdm_xcalloc(out->n + nk + 1, sizeof *ids);
                for (size_t j = 0; j < out->n; j++)
                    if (out->plans[j] != p)
                        ids[nids++] = out->plans[j]->id;
                for (size_t j = 0; j < nk; j++)
                    if (strcmp(known->v[j], p->id) != 0)
                        ids[nids++] = known->v[j];
                const char *hint = zdm_did_you_mean(req, ids, nids);
                zdm_diag_add(diags, p->path, p->requires_line[r], p->requires_col[r],
                             "plan \"%s\" requires \"%s\", which is not among the loaded plans%s%s%s",
                             p->id, req, hint ? " (did you mean \"" : "", hint ? hint : "",
                             hint ? "\"?)" : "");
                free(ids);
            }
            rc = ZDM_EXIT_USAGE;
        }
    }
    if (order_plans(out, diags) != 0)
        rc = ZDM_EXIT_USAGE;
    return rc;
}

void zdm_plan_set_free(zdm_plan_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        zdm_plan_free(s->plans[i]);
    free(s->plans);
    s->plans = NULL;
    s->n = 0;
}
