/*
 * preflight.c -- before expand changes anything, have the database itself
 * compile every piece of SQL the plan will run later (see preflight.h).
 *
 * A misspelt column or function in set.*, reverse.*, where, verify or
 * pause_query used to pass validate, lint and expand, and then break every
 * write of the application (the dual-write trigger failed on each row)
 * until someone rolled back.  Here, inside one transaction that is always
 * rolled back:
 *  1. the expand steps that add tables and columns run (each under a
 *     savepoint; one that fails is skipped, e.g. already applied by a
 *     resumed run), so the expressions can name what expand adds;
 *  2. the dual-write trigger SQL is created, exactly as expand will;
 *  3. each expression, the batch statements of the backfill exactly as a
 *     worker builds them, and the trigger bodies' expressions (rewritten
 *     to NEW.col as in the trigger functions) go through EXPLAIN, which on
 *     both databases parses, resolves names and plans without running.
 * The first failure is a refusal (exit 3) naming the plan file, the line,
 * the expression and the database's message.
 */
#include "preflight.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "log.h"
#include "sqlkind.h"
#include "util.h"

#include <jansson.h>
#include <pg_query.h>

/* Is every statement in sql one that only adds (CREATE TABLE / SCHEMA,
 * ALTER TABLE ... ADD COLUMN, COMMENT)?  Those are the steps the checks
 * need and cheap to run: nothing is scanned or rewritten. */
static int only_adds(const char *sql)
{
    PgQueryParseResult pr = pg_query_parse(sql);
    int ok = 0;
    if (!pr.error) {
        json_error_t je;
        json_t *tree = json_loads(pr.parse_tree, 0, &je);
        const json_t *stmts = json_object_get(tree, "stmts");
        ok = json_array_size(stmts) > 0;
        for (size_t i = 0; ok && i < json_array_size(stmts); i++) {
            json_t *st = json_object_get(json_array_get(stmts, i), "stmt");
            void *it = json_object_iter(st);
            const char *k = it ? json_object_iter_key(it) : "";
            json_t *in = it ? json_object_iter_value(it) : NULL;
            if (!strcmp(k, "CreateStmt") || !strcmp(k, "CreateSchemaStmt") || !strcmp(k, "CommentStmt"))
                continue;
            if (strcmp(k, "AlterTableStmt") != 0) {
                ok = 0;
                break;
            }
            const json_t *cmds = json_object_get(in, "cmds");
            for (size_t j = 0; ok && j < json_array_size(cmds); j++) {
                json_t *c = json_object_get(json_array_get(cmds, j), "AlterTableCmd");
                const char *sub = json_string_value(json_object_get(c, "subtype"));
                ok = sub && !strcmp(sub, "AT_AddColumn");
            }
        }
        json_decref(tree);
    }
    pg_query_free_parse_result(pr);
    return ok;
}

/* The highest $N in sql (placeholders), outside quotes. */
static int max_param(const char *sql)
{
    int max = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                ;
            if (!*p)
                break;
            continue;
        }
        if (*p == '$' && isdigit((unsigned char)p[1]) && (p == sql || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            int n = atoi(p + 1);
            if (n > max)
                max = n;
        }
    }
    return max;
}

typedef struct pf {
    zdm_db *db;
    const zdm_plan *plan;
    int pg;
    int n_sp;
} pf;

/* Runs sql (with NULL for every placeholder) under a savepoint; on error
 * the savepoint is rolled back so the transaction goes on. */
static int try_sql(pf *c, const char *sql, int explain, zdm_err *err)
{
    char sp[64], q[160];
    snprintf(sp, sizeof sp, "zdm_preflight_%d", ++c->n_sp);
    snprintf(q, sizeof q, "SAVEPOINT %s", sp);
    int rc = zdm_db_exec_script(c->db, q, err);
    if (rc != 0)
        return rc;
    int np = max_param(sql);
    const char **params = zdm_xcalloc((size_t)np + 1, sizeof *params);
    char *stmt = explain ? zdm_xasprintf("EXPLAIN %s", sql) : zdm_xstrdup(sql);
    if (explain)
        rc = zdm_db_query(c->db, stmt, np, params, NULL, err);
    else
        rc = zdm_db_exec_script(c->db, stmt, err);
    free(stmt);
    free(params);
    zdm_err e2;
    zdm_err_clear(&e2);
    snprintf(q, sizeof q, rc == 0 ? "RELEASE SAVEPOINT %s" : "ROLLBACK TO SAVEPOINT %s", sp);
    if (zdm_db_exec_script(c->db, q, &e2) != 0 && rc == 0) {
        *err = e2;
        rc = e2.code;
    }
    return rc;
}

/* Line of key `k` in table path a.b of the plan file, or `dflt`. */
static int line_of(const zdm_plan *p, const char *a, const char *b, const char *k, int dflt)
{
    const toml_value *t = p->doc ? toml_get(p->doc, a) : NULL;
    if (t && b)
        t = toml_get(t, b);
    const toml_value *v = t ? toml_get(t, k) : NULL;
    return v ? v->line : dflt;
}

static int refuse(pf *c, int line, const char *what, const char *expr, zdm_err *err)
{
    char dbmsg[ZDM_ERR_MSG];
    snprintf(dbmsg, sizeof dbmsg, "%s", err->msg);
    char sqlstate[6];
    memcpy(sqlstate, err->sqlstate, sizeof sqlstate);
    zdm_err_clear(err);
    zdm_err_set(err, ZDM_EXIT_REFUSED, "%s:%d: %s = \"%s\" does not work on this database: %s", c->plan->path,
                line, what, expr, dbmsg);
    memcpy(err->sqlstate, sqlstate, sizeof sqlstate);
    zdm_err_detail(err, "expand refused before changing anything (the check ran in a transaction that was "
                        "rolled back); fix %s in the plan, then run \"zdm advance %s\" again",
                   what, c->plan->id);
    return ZDM_EXIT_REFUSED;
}

static int check_expr(pf *c, const char *sql, int line, const char *what, const char *expr, zdm_err *err)
{
    int rc = try_sql(c, sql, 1, err);
    if (rc == 0)
        return 0;
    if (err->code == ZDM_EXIT_INTERRUPTED)
        return rc;
    return refuse(c, line, what, expr, err);
}

static int check_backfill(pf *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    const zdm_backfill *b = p->backfill;
    char *tbl = zdm_db_ident_path(c->db, b->table);
    const char *dot = strrchr(b->table, '.');
    char *alias = zdm_db_ident(c->db, dot ? dot + 1 : b->table);
    char what[200];
    int rc = 0;
    char *sql = NULL;
    /* each expression alone first, so the message names the one at fault */
    for (size_t i = 0; rc == 0 && i < b->nset; i++) {
        char *q = zdm_db_ident(c->db, b->set[i].column);
        sql = zdm_xasprintf("UPDATE %s SET %s = (%s)", tbl, q, b->set[i].expr);
        snprintf(what, sizeof what, "set.%s", b->set[i].column);
        rc = check_expr(c, sql, b->set[i].line, what, b->set[i].expr, err);
        free(sql);
        free(q);
    }
    for (size_t i = 0; rc == 0 && i < b->nreverse; i++) {
        char *q = zdm_db_ident(c->db, b->reverse[i].column);
        sql = zdm_xasprintf("UPDATE %s SET %s = (%s)", tbl, q, b->reverse[i].expr);
        snprintf(what, sizeof what, "reverse.%s", b->reverse[i].column);
        rc = check_expr(c, sql, b->reverse[i].line, what, b->reverse[i].expr, err);
        free(sql);
        free(q);
    }
    if (rc == 0 && b->where) {
        /* as the backfill reads it, and as the trigger does (NEW under the table's name) */
        sql = zdm_xasprintf("SELECT 1 FROM %s WHERE (%s)", tbl, b->where);
        rc = check_expr(c, sql, line_of(p, "backfill", NULL, "where", b->line), "where", b->where, err);
        free(sql);
    }
    for (size_t i = 0; rc == 0 && i < b->dw_sources.n; i++) {
        char *q = zdm_db_ident(c->db, b->dw_sources.v[i]);
        sql = zdm_xasprintf("SELECT %s FROM %s", q, tbl);
        snprintf(what, sizeof what, "[backfill.dual_write] sources");
        rc = check_expr(c, sql, line_of(p, "backfill", "dual_write", "sources", b->line), what, b->dw_sources.v[i],
                        err);
        free(sql);
        free(q);
    }
    if (rc == 0 && b->throttle.pause_query)
        rc = check_expr(c, b->throttle.pause_query, line_of(p, "backfill", "throttle", "pause_query", b->line),
                        "pause_query", b->throttle.pause_query, err);
    zdm_strv key = {0};
    if (rc == 0) {
        rc = zdm_backfill_key(c->db, p, &key, err);
        if (rc != 0 && err->code != ZDM_EXIT_INTERRUPTED && err->code != ZDM_EXIT_REFUSED)
            rc = refuse(c, b->line, "[backfill] table", b->table, err);
    }
    /* the trigger bodies' expressions, rewritten as the functions hold them */
    if (rc == 0 && b->dual_write && c->pg) {
        zdm_strv cols = {0};
        rc = zdm_dw_columns(c->db, p, &cols, err);
        for (int dir = 0; rc == 0 && dir < 2; dir++) {
            const zdm_assign *a = dir ? b->reverse : b->set;
            size_t n = dir ? b->nreverse : b->nset;
            for (size_t i = 0; rc == 0 && i < n; i++) {
                char *e = zdm_dw_rewrite(c->db, a[i].expr, &cols, "NEW");
                sql = zdm_xasprintf("SELECT (%s) FROM %s AS new", e, tbl);
                snprintf(what, sizeof what, "%s.%s (in the dual-write trigger)", dir ? "reverse" : "set",
                         a[i].column);
                rc = check_expr(c, sql, a[i].line, what, a[i].expr, err);
                free(sql);
                free(e);
            }
        }
        if (rc == 0 && b->where) {
            sql = zdm_xasprintf("SELECT 1 FROM (SELECT * FROM %s) AS %s WHERE (%s)", tbl, alias, b->where);
            rc = check_expr(c, sql, line_of(p, "backfill", NULL, "where", b->line), "where (in the dual-write trigger)",
                            b->where, err);
            free(sql);
        }
        zdm_strv_free(&cols);
    }
    /* the triggers themselves, exactly as expand creates them */
    if (rc == 0 && b->dual_write) {
        char *create = NULL, *drop = NULL;
        rc = zdm_dw_sql(c->db, p, &key, &create, &drop, err);
        if (rc == 0 && (rc = try_sql(c, create, 0, err)) != 0 && err->code != ZDM_EXIT_INTERRUPTED)
            rc = refuse(c, b->line, "[backfill] dual-write trigger of", b->table, err);
        /* SQLite compiles trigger bodies into the statements that fire
         * them: compile an UPDATE and an INSERT of the table */
        if (rc == 0 && !c->pg) {
            char *q = zdm_db_ident(c->db, b->set[0].column);
            sql = zdm_xasprintf("UPDATE %s SET %s = %s", tbl, q, q);
            rc = check_expr(c, sql, b->line, "[backfill] dual-write triggers on", b->table, err);
            free(sql);
            if (rc == 0) {
                sql = zdm_xasprintf("INSERT INTO %s DEFAULT VALUES", tbl);
                rc = check_expr(c, sql, b->line, "[backfill] dual-write triggers on", b->table, err);
                free(sql);
            }
            free(q);
        }
        free(create);
        free(drop);
    }
    /* every statement a worker runs, exactly as built */
    if (rc == 0) {
        zdm_strv stmts = {0};
        rc = zdm_backfill_batch_sql(c->db, p, &key, &stmts);
        for (size_t i = 0; rc == 0 && i < stmts.n; i++)
            rc = check_expr(c, stmts.v[i], b->line, "[backfill] batch statement for", b->table, err);
        zdm_strv_free(&stmts);
    }
    zdm_strv_free(&key);
    free(alias);
    free(tbl);
    return rc;
}

int zdm_preflight(zdm_db *db, const zdm_plan *plan, zdm_err *err)
{
    pf c = {db, plan, zdm_db_kind_of(db) == ZDM_DB_PG, 0};
    if (!plan->backfill && !plan->verify)
        return 0;
    int rc = zdm_db_begin(db, err);
    if (rc != 0)
        return rc;
    if (c.pg) {
        char q[160];
        /* the checks take the locks expand's own DDL takes, briefly */
        snprintf(q, sizeof q, "SET LOCAL lock_timeout = %lld; SET LOCAL statement_timeout = 60000",
                 (long long)(plan->lock_timeout_ms > 0 ? plan->lock_timeout_ms : 2000));
        rc = zdm_db_exec_script(db, q, err);
    }
    int dialect = zdm_db_kind_of(db);
    for (size_t i = 0; rc == 0 && i < plan->nexpand; i++) {
        const char *sql = zdm_step_sql(&plan->expand[i], dialect);
        if (!sql || !zdm_step_in_transaction(&plan->expand[i], sql) || !only_adds(sql))
            continue;
        zdm_err e;
        zdm_err_clear(&e);
        if (try_sql(&c, sql, 0, &e) != 0) {
            if (e.code == ZDM_EXIT_INTERRUPTED) {
                *err = e;
                rc = e.code;
            } else {
                zdm_log(ZDM_LOG_DEBUG, plan->id, "expand", "preflight: expand step %d skipped (%s)",
                        plan->expand[i].index, e.msg);
            }
        }
    }
    if (rc == 0 && plan->backfill)
        rc = check_backfill(&c, err);
    if (rc == 0 && plan->verify)
        rc = check_expr(&c, plan->verify, line_of(plan, "contract", NULL, "verify", 0), "[contract] verify",
                        plan->verify, err);
    zdm_db_rollback(db);
    return rc;
}
