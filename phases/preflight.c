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
 *     resumed run), so the expressions can name what expand adds -- not
 *     those that read every row under the table's lock (an added column's
 *     CHECK, UNIQUE, ...: SQLite's run without its CHECK);
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backfill.h"
#include "dialect.h"
#include "dwsql.h"
#include "log.h"
#include "sqlkind.h"
#include "sqlscan.h"
#include "sqlite_deps.h"
#include "state.h"
#include "util.h"

#include <jansson.h>
#include <pg_query.h>

/* SQLite: sql without the CHECK constraints of its ALTER TABLE
 * statements ([CONSTRAINT name] CHECK (...)), or NULL when it has none.
 * SQLite tests the CHECK of an added column on every row, under the write
 * lock: the preflight adds the column without it (its names are what the
 * checks need; the step's own run tests the rows). */
static char *sqlite_without_checks(const char *sql)
{
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql, ZDM_SQL_SQLITE, &sc);
    zdm_buf out = {0};
    size_t from = 0;
    int cut = 0;
    for (size_t i = 0; !sc.unterminated && i < sc.nstmts; i++) {
        const zdm_sql_stmt *st = &sc.stmts[i];
        const zdm_tok *t = &sc.toks[st->tok];
        if (!st->ntok || !zdm_tok_is(sql, &t[0], "ALTER"))
            continue;
        for (size_t k = 1; k + 1 < st->ntok; k++) {
            if (!zdm_tok_is(sql, &t[k], "CHECK") || t[k + 1].kind != ZDM_TOK_LPAREN)
                continue;
            size_t e = k + 1;
            for (int depth = 0; e < st->ntok; e++) {
                depth += t[e].kind == ZDM_TOK_LPAREN ? 1 : t[e].kind == ZDM_TOK_RPAREN ? -1 : 0;
                if (depth == 0)
                    break;
            }
            if (e >= st->ntok)
                break;
            size_t b = k >= 2 && zdm_tok_is(sql, &t[k - 2], "CONSTRAINT") ? k - 2 : k;
            zdm_buf_putn(&out, sql + from, t[b].off - from);
            from = t[e].off + t[e].len;
            cut = 1;
            k = e;
        }
    }
    zdm_sql_scan_free(&sc);
    if (!cut) {
        zdm_buf_free(&out);
        return NULL;
    }
    zdm_buf_puts(&out, sql + from);
    return zdm_buf_take(&out);
}

/* Does an ADD COLUMN (its AlterTableCmd) read or rewrite every row of the
 * table: a CHECK, UNIQUE, PRIMARY KEY or REFERENCES constraint checks or
 * indexes them (SQLite tests a CHECK on every row too), a stored generated
 * or identity column or a serial type computes each.  Lint refuses those
 * on PostgreSQL unless allowed; allowed, the step's own scan is the
 * user's, but a second one in the preflight held the lock as long again. */
static int add_column_scans(const json_t *cmd)
{
    const json_t *cd = json_object_get(json_object_get(cmd, "def"), "ColumnDef");
    const json_t *cons = json_object_get(cd, "constraints");
    for (size_t i = 0; i < json_array_size(cons); i++) {
        const char *t = json_string_value(json_object_get(json_object_get(json_array_get(cons, i), "Constraint"),
                                                          "contype"));
        if (t && (!strcmp(t, "CONSTR_CHECK") || !strcmp(t, "CONSTR_UNIQUE") || !strcmp(t, "CONSTR_PRIMARY") ||
                  !strcmp(t, "CONSTR_FOREIGN") || !strcmp(t, "CONSTR_GENERATED") || !strcmp(t, "CONSTR_IDENTITY") ||
                  !strcmp(t, "CONSTR_EXCLUSION")))
            return 1;
    }
    const json_t *names = json_object_get(json_object_get(cd, "typeName"), "names");
    size_t n = json_array_size(names);
    const char *type = n ? json_string_value(json_object_get(json_object_get(json_array_get(names, n - 1), "String"),
                                                             "sval"))
                         : NULL;
    return type && (!strcasecmp(type, "serial") || !strcasecmp(type, "bigserial") || !strcasecmp(type, "smallserial") ||
                    !strcasecmp(type, "serial2") || !strcasecmp(type, "serial4") || !strcasecmp(type, "serial8"));
}

/* Is every statement in sql one that only adds (CREATE TABLE / SCHEMA,
 * ALTER TABLE ... ADD COLUMN without what makes it read every row,
 * COMMENT)?  Those are the steps the checks need and cheap to run: nothing
 * is scanned or rewritten.  `zdm_do`: the
 * step was written by zdm from an operation, whose DO blocks add a column
 * or a view (anything slow they do is in steps of other kinds).
 * `sqlite`: SQL the PostgreSQL grammar rejects is SQLite's own (ADD COLUMN
 * without a type, CREATE TRIGGER ... BEGIN): cheap there, so it runs. */
static int only_adds(const char *sql, int zdm_do, int sqlite)
{
    PgQueryParseResult pr = pg_query_parse(sql);
    int ok = pr.error && sqlite;
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
            if (!strcmp(k, "CreateStmt") || !strcmp(k, "CreateSchemaStmt") || !strcmp(k, "CommentStmt") ||
                (zdm_do && (!strcmp(k, "DoStmt") || !strcmp(k, "ViewStmt"))) || (sqlite && !strcmp(k, "SelectStmt")))
                continue;
            if (strcmp(k, "AlterTableStmt") != 0) {
                ok = 0;
                break;
            }
            const json_t *cmds = json_object_get(in, "cmds");
            for (size_t j = 0; ok && j < json_array_size(cmds); j++) {
                json_t *c = json_object_get(json_array_get(cmds, j), "AlterTableCmd");
                const char *sub = json_string_value(json_object_get(c, "subtype"));
                ok = sub && !strcmp(sub, "AT_AddColumn") && !add_column_scans(c);
            }
        }
        json_decref(tree);
    }
    pg_query_free_parse_result(pr);
    return ok;
}

/* Could sql create a name an expression reads (a table, a column, a
 * function)?  For steps the check does not run. */
static int may_add_names(const char *sql)
{
    PgQueryParseResult pr = pg_query_parse(sql);
    int may = pr.error != NULL;
    if (!pr.error) {
        static const char *const kinds[] = {"DoStmt", "CreateStmt", "CreateTableAsStmt", "ViewStmt", "RenameStmt",
                                            "CreateFunctionStmt", "CreateSchemaStmt", "CompositeTypeStmt",
                                            "CreateDomainStmt", "CreateEnumStmt", NULL};
        json_error_t je;
        json_t *tree = json_loads(pr.parse_tree, 0, &je);
        const json_t *stmts = json_object_get(tree, "stmts");
        for (size_t i = 0; !may && i < json_array_size(stmts); i++) {
            json_t *st = json_object_get(json_array_get(stmts, i), "stmt");
            void *it = json_object_iter(st);
            const char *k = it ? json_object_iter_key(it) : "";
            for (size_t j = 0; kinds[j] && !may; j++)
                may = !strcmp(k, kinds[j]);
            const json_t *cmds = !strcmp(k, "AlterTableStmt") ? json_object_get(json_object_iter_value(it), "cmds") : NULL;
            for (size_t j = 0; !may && j < json_array_size(cmds); j++) {
                const char *sub = json_string_value(
                    json_object_get(json_object_get(json_array_get(cmds, j), "AlterTableCmd"), "subtype"));
                may = sub && !strcmp(sub, "AT_AddColumn");
            }
        }
        json_decref(tree);
    }
    pg_query_free_parse_result(pr);
    return may;
}

/* The highest $N in sql (placeholders), by the scanner's tokens: not in a
 * string or a quoted name (a quote inside either, a hostile column name,
 * must not swallow the placeholders after it; nor an escaped quote in
 * an E'' string, which a look for the next quote took for the string's
 * end: the check then bound no parameter, and a valid set.* was
 * refused). */
static int max_param(const char *sql)
{
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql, ZDM_SQL_PG, &sc);
    int max = 0;
    for (size_t i = 0; i < sc.ntoks; i++) {
        const zdm_tok *t = &sc.toks[i];
        if (t->kind == ZDM_TOK_PARAM && sql[t->off] == '$' && t->len > 1 && isdigit((unsigned char)sql[t->off + 1])) {
            int n = atoi(sql + t->off + 1);
            if (n > max)
                max = n;
        }
    }
    zdm_sql_scan_free(&sc);
    return max;
}

/* A check (an EXPLAIN) waiting to be run with the others (check_expr). */
typedef struct pf_check {
    char *sql;        /* without EXPLAIN */
    int line;
    char *what;
    const char *expr; /* the plan's */
} pf_check;

typedef struct pf {
    zdm_db *db;
    const zdm_plan *plan;
    const zdm_dialect *d;
    int n_sp;
    int skipped;            /* expand steps not run here: names they add may be missing */
    int in_tx;              /* inside the preflight's transaction (after its DDL) */
    char *counted;          /* per expand step: its violating rows were counted before the DDL */
    int dw_done;            /* the dual-write triggers' step is done (a resumed expand) */
    char warned[1024];      /* the last lenient warning: each batch statement would repeat it */
    char sp[40];            /* the savepoint at the transaction's last good state (try_sql) */
    int broken;             /* a rollback to it failed: the transaction is lost */
    pf_check q[ZDM_DB_QUERY_ALL_MAX]; /* checks waiting for flush() */
    size_t nq;
} pf;

/* Back to the last good state after a failed statement.  A failure to
 * get there (the connection lost) replaces the statement's error and
 * marks the transaction lost: no check is judged on that error. */
static int back_to_good(pf *c, zdm_err *err)
{
    char q[80];
    snprintf(q, sizeof q, "ROLLBACK TO SAVEPOINT %s", c->sp);
    zdm_err e2;
    zdm_err_clear(&e2);
    int rc = zdm_db_exec_script(c->db, q, &e2);
    if (rc != 0) {
        *err = e2;
        c->broken = 1;
    }
    return rc;
}

/* Sets the last good state: a savepoint of this name, made by the caller. */
static void good_is(pf *c, const char *name)
{
    snprintf(c->sp, sizeof c->sp, "%s", name);
}

/* Runs sql, a statement that changes the schema (an expand step, the
 * triggers, a down).  The transaction keeps a savepoint at its last good
 * state (c->sp): sql goes in one round trip with the next one, and when
 * it fails the transaction is rolled back to the last, so it goes on.
 * The checks (EXPLAINs, which change nothing) go in pipelines (flush).
 * Few round trips: on PostgreSQL the first expand step's lock (ACCESS
 * EXCLUSIVE for an ADD COLUMN) is held until the preflight rolls back,
 * and the application's statements on the table wait for every round
 * trip under it. */
static int try_sql(pf *c, const char *sql, zdm_err *err)
{
    char sp[40];
    snprintf(sp, sizeof sp, "zdm_preflight_%d", c->n_sp + 1);
    /* the newline ends a trailing -- comment of sql */
    char *script = zdm_xasprintf("%s\n;SAVEPOINT %s", sql, sp);
    int rc = zdm_db_exec_script(c->db, script, err);
    free(script);
    if (rc == 0) {
        c->n_sp++;
        good_is(c, sp);
    } else if (err->code != ZDM_EXIT_INTERRUPTED)
        (void)back_to_good(c, err);
    return rc;
}

/* The line a key is written on (0: not in the file, e.g. generated by
 * an op), or `dflt`. */
static int line_or(int line, int dflt)
{
    return line > 0 ? line : dflt;
}

/* A lock the check could not get within lock_timeout says nothing about
 * the plan: an application transaction holds the table.  Said as such,
 * exit 1 (try again), never as an expression that "does not work". */
static int lock_busy(pf *c, const char *what, const char *expr, zdm_err *err)
{
    char dbmsg[ZDM_ERR_MSG], d[32];
    snprintf(dbmsg, sizeof dbmsg, "%s", err->msg);
    char sqlstate[6];
    memcpy(sqlstate, err->sqlstate, sizeof sqlstate);
    zdm_err_clear(err);
    int64_t ms = c->plan->lock_timeout_ms > 0 ? c->plan->lock_timeout_ms : 2000;
    zdm_err_set(err, ZDM_EXIT_FAIL,
                "preflight of %s could not get a lock within lock_timeout %s while checking %s%s%s%s: another "
                "session holds a conflicting lock (%s)",
                c->plan->id, zdm_format_duration(ms, d, sizeof d), what, expr ? " \"" : "", expr ? expr : "",
                expr ? "\"" : "", dbmsg);
    memcpy(err->sqlstate, sqlstate, sizeof sqlstate);
    zdm_err_detail(err, "nothing was changed (the check ran in a transaction that was rolled back); find the "
                        "session %s, let it finish, then run \"zdm advance %s\" again (or raise lock_timeout in "
                        "the plan)",
                   c->d->lock_holder_hint,
                   c->plan->id);
    return ZDM_EXIT_FAIL;
}

static int refuse(pf *c, int line, const char *what, const char *expr, zdm_err *err)
{
    if (zdm_db_err_is_lock_timeout(err))
        return lock_busy(c, what, expr, err);
    char dbmsg[ZDM_ERR_MSG];
    snprintf(dbmsg, sizeof dbmsg, "%s", err->msg);
    char sqlstate[6];
    memcpy(sqlstate, err->sqlstate, sizeof sqlstate);
    zdm_err_clear(err);
    /* expr NULL: what is a statement zdm builds from the plan's
     * [backfill] (its triggers, a batch), not one key of it */
    if (expr)
        zdm_err_set(err, ZDM_EXIT_REFUSED, "%s:%d: %s = \"%s\" does not work on this database: %s", c->plan->path,
                    line, what, expr, dbmsg);
    else
        zdm_err_set(err, ZDM_EXIT_REFUSED, "%s:%d: %s fail%s on this database: %s", c->plan->path, line, what,
                    strstr(what, "triggers") ? "" : "s", dbmsg);
    memcpy(err->sqlstate, sqlstate, sizeof sqlstate);
    int upper = 0;
    for (const char *s = expr; s && *s; s++)
        upper |= isupper((unsigned char)*s) != 0;
    if (expr && upper && c->d->quoted_names_case_sensitive && !strcmp(what, "[backfill] table"))
        zdm_err_detail(err, "expand refused before changing anything; zdm quotes each part of the name as written, "
                            "so \"%s\" is matched with its case (unquoted names in SQL fold to lower case): "
                            "write it as the catalog has it, then run \"zdm advance %s\" again",
                       expr, c->plan->id);
    else if (expr)
        zdm_err_detail(err, "expand refused before changing anything (the check ran in a transaction that was "
                            "rolled back); fix %s in the plan, then run \"zdm advance %s\" again",
                       what, c->plan->id);
    else
        zdm_err_detail(err, "expand refused before changing anything (the check ran in a transaction that was "
                            "rolled back); zdm builds these from the plan's [backfill] (set, reverse, where, "
                            "sources): fix what the error names, then run \"zdm advance %s\" again",
                       c->plan->id);
    return ZDM_EXIT_REFUSED;
}

/* An undefined column or table, when an expand step the check could not
 * run may be what adds it, is not proof of a mistake: warn, clear, 1. */
static int lenient(pf *c, const char *what, const char *expr, zdm_err *err)
{
    if (!c->skipped || !(!strcmp(err->sqlstate, "42703") || !strcmp(err->sqlstate, "42P01")))
        return 0;
    char line[sizeof c->warned];
    if (snprintf(line, sizeof line, /* a long one cut short is still the same one */
             "preflight could not check %s%s%s%s (%s): an expand step it does not run may add what it names", what,
             expr ? " \"" : "", expr ? expr : "", expr ? "\"" : "", err->msg) < 0)
        line[0] = '\0';
    if (strcmp(line, c->warned) != 0) /* each batch statement would say it again */
        zdm_log(ZDM_LOG_WARN, c->plan->id, "expand", "%s", line);
    memcpy(c->warned, line, sizeof line);
    zdm_err_clear(err);
    return 1;
}

/* What a failed check means: the statement's own error (interrupted, a
 * lost transaction), a warning (lenient: 0), or a refusal. */
static int judge(pf *c, int rc, int line, const char *what, const char *expr, zdm_err *err)
{
    if (err->code == ZDM_EXIT_INTERRUPTED || c->broken)
        return rc;
    if (lenient(c, what, expr, err))
        return 0;
    return refuse(c, line, what, expr, err);
}

static void drop_checks(pf *c)
{
    for (size_t i = 0; i < c->nq; i++) {
        free(c->q[i].sql);
        free(c->q[i].what);
    }
    c->nq = 0;
}

/* Runs the checks waiting in the queue, in order, as one pipeline
 * (zdm_db_query_all): the first that fails is judged as if run alone; a
 * lenient one (a warning) lets the rest go on in a pipeline of their own.
 * One round trip for a group of checks under expand's lock, not one
 * each. */
static int flush(pf *c, zdm_err *err)
{
    int rc = 0;
    size_t at = 0;
    while (rc == 0 && at < c->nq) {
        size_t n = c->nq - at, failed = n;
        const char *sqls[ZDM_DB_QUERY_ALL_MAX];
        const char *const *params[ZDM_DB_QUERY_ALL_MAX];
        int np[ZDM_DB_QUERY_ALL_MAX], most = 0;
        for (size_t i = 0; i < n; i++) {
            np[i] = max_param(c->q[at + i].sql);
            most = np[i] > most ? np[i] : most;
            sqls[i] = zdm_xasprintf("EXPLAIN %s", c->q[at + i].sql);
        }
        const char **nulls = zdm_xcalloc((size_t)most + 1, sizeof *nulls); /* NULL for every placeholder */
        for (size_t i = 0; i < n; i++)
            params[i] = nulls;
        rc = zdm_db_query_all(c->db, n, sqls, np, params, &failed, err);
        for (size_t i = 0; i < n; i++)
            free((char *)sqls[i]);
        free(nulls);
        if (rc == 0)
            break;
        size_t bad = at + (failed < n ? failed : 0); /* n: a failure before any ran */
        if (err->code != ZDM_EXIT_INTERRUPTED)
            (void)back_to_good(c, err);
        rc = judge(c, rc, c->q[bad].line, c->q[bad].what, c->q[bad].expr, err);
        at = bad + 1;
    }
    drop_checks(c);
    return rc;
}

/* An EXPLAIN of sql, queued: it runs with the checks after it at the
 * next flush(), which the caller makes before anything else reads the
 * database (so the first failure is still the first in order). */
static int check_expr(pf *c, const char *sql, int line, const char *what, const char *expr, zdm_err *err)
{
    if (c->nq == ZDM_DB_QUERY_ALL_MAX) {
        int rc = flush(c, err);
        if (rc != 0)
            return rc;
    }
    c->q[c->nq++] = (pf_check){zdm_xstrdup(sql), line, zdm_xstrdup(what), expr};
    return 0;
}

/* How the trigger function reads an expression's columns, for a refusal
 * that says a column does not exist when the table has it: a name the
 * rewrite did not take for one stayed bare, and quoting it is the way out. */
#define AS_NEW "each column read as NEW.\"column\"; write a name zdm did not take for one \"quoted\""

/* The dual-write checks that ask the catalog about the table (one read,
 * into *out, which the trigger DDL uses too: the application waits on
 * expand's lock for every round trip here): what a trigger cannot do on it
 * is refused, what it does that the application may not expect is said.
 * *all: the table's columns. */
static int check_table_facts(pf *c, zdm_table_facts *out, zdm_strv *all, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    const zdm_backfill *b = p->backfill;
    int rc = c->d->table_facts(c->db, b->table, out, err);
    const zdm_table_facts facts = *out;
    zdm_strv gen = {0}, pk = {0};
    char what[200];
    for (size_t i = 0; i < facts.ncols; i++) {
        zdm_strv_push(all, facts.cols[i].name);
        if (facts.cols[i].unreadable_generated)
            zdm_strv_push(&gen, facts.cols[i].name);
        if (facts.cols[i].partition_key)
            zdm_strv_push(&pk, facts.cols[i].name);
    }
    /* The application's BEFORE triggers named after zdm's fire after
     * them: one that changes a source leaves the target computed from the
     * value before it.  Said, not refused: most change something else. */
    if (rc == 0 && facts.after_ours)
        zdm_log(ZDM_LOG_WARN, p->id, "expand",
                "table %s has BEFORE triggers that fire after zdm's dual-write triggers (PostgreSQL fires them in "
                "name order): %s; if one changes a column set.* reads, rename it to sort before \"zdm_dw\"",
                b->table, facts.after_ours);
    /* The application's UPDATE triggers that zdm's UPDATEs fire: any
     * column, or OF a column they write (SQLite: a target, a reverse.*). */
    zdm_buf fired = {0};
    for (size_t i = 0; rc == 0 && i < facts.upd_triggers.n; i++) {
        const char *of = facts.upd_triggers_of.v[i];
        int hit = !*of;
        for (size_t k = 0; !hit && k < b->nset + b->nreverse; k++) {
            const zdm_assign *a = k < b->nset ? &b->set[k] : &b->reverse[k - b->nset];
            for (const char *w = of; !hit && *w; w += strcspn(w, ","), w += *w == ',')
                hit = strlen(a->column) == strcspn(w, ",") && strncasecmp(w, a->column, strcspn(w, ",")) == 0;
        }
        if (hit)
            zdm_buf_printf(&fired, "%s%s", fired.len ? ", " : "", facts.upd_triggers.v[i]);
    }
    if (fired.len)
        zdm_log(ZDM_LOG_WARN, p->id, "expand",
                "table %s has UPDATE triggers of the application's that zdm's triggers fire: %s; they convert a "
                "row by an UPDATE of it (an INSERT's too): one that refuses every UPDATE makes the application's "
                "writes fail, one that counts or logs updates sees one more",
                b->table, fired.data);
    zdm_buf_free(&fired);
    /* A target in a unique index, where the trigger's UPDATE takes the
     * application statement's conflict policy (SQLite): said, not refused;
     * only a conversion that collides is hit, and the backfill itself
     * fails on such a row. */
    for (size_t i = 0; rc == 0 && i < facts.ncols; i++) {
        if (!facts.cols[i].unique_inherits)
            continue;
        for (size_t k = 0; k < b->nset + b->nreverse; k++) {
            const zdm_assign *a = k < b->nset ? &b->set[k] : &b->reverse[k - b->nset];
            if (strcasecmp(a->column, facts.cols[i].name) != 0)
                continue;
            zdm_log(ZDM_LOG_WARN, p->id, "expand",
                    "%s.%s is in a unique index (or the table has one on an expression): an application "
                    "statement with OR REPLACE whose row converts to "
                    "a value another row holds deletes that other row, and OR IGNORE leaves the row unconverted "
                    "(SQLite gives the trigger's write the statement's conflict policy)",
                    b->table, a->column);
            break;
        }
    }
    /* A target of a type without "=" (json): the backfill finds the rows
     * left to convert by comparing each target with its expression, and
     * that comparison did not compile (a refusal that named "operator
     * does not exist: json = json" and no column). */
    for (size_t i = 0; rc == 0 && i < facts.ncols; i++) {
        if (!facts.cols[i].no_equality)
            continue;
        for (size_t k = 0; rc == 0 && k < b->nset; k++) {
            if (strcmp(b->set[k].column, facts.cols[i].name) != 0)
                continue;
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED,
                             "%s:%d: set.%s: column %s is of a type zdm cannot compare (json, xml, an array of "
                             "them, a composite type), and the backfill compares each target with its expression "
                             "to find the rows left to convert",
                             p->path, b->set[k].line, b->set[k].column, b->set[k].column);
            zdm_err_detail(err, "expand refused before changing anything; make %s jsonb (or text), then run "
                                "\"zdm advance %s\" again", b->set[k].column, p->id);
        }
    }
    /* Inheritance children (not partitions): the backfill's UPDATE of the
     * parent converts their rows, but their writes fire no trigger of the
     * parent's, so the application's writes there were never converted. */
    if (rc == 0 && facts.inherited) {
        rc = zdm_err_set(err, ZDM_EXIT_REFUSED,
                         "%s:%d: [backfill] table = \"%s\" has tables that inherit from it: the dual-write "
                         "triggers would not fire for the application's writes to their rows",
                         p->path, b->line, b->table);
        zdm_err_detail(err, "expand refused before changing anything; give each inheriting table a plan of its "
                            "own (its rows, its triggers), or run this one without [backfill.dual_write], then "
                            "run \"zdm advance %s\" again", p->id);
    }
    /* A stored generated column read by set, reverse or where: the BEFORE
     * trigger saw it NULL (set.total2 = "total * 2" wrote NULL over the
     * backfilled value; a where on it matched rows outside it) */
    for (int dir = 0; rc == 0 && gen.n && dir < 3; dir++) {
        const zdm_assign *a = dir == 1 ? b->reverse : b->set;
        size_t n = dir == 2 ? (b->where ? 1 : 0) : dir ? b->nreverse : b->nset;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const char *e = dir == 2 ? b->where : a[i].expr;
            if (!zdm_dwsql_reads(e, &gen))
                continue;
            if (dir == 2)
                snprintf(what, sizeof what, "where");
            else
                snprintf(what, sizeof what, "%s.%s", dir ? "reverse" : "set", a[i].column);
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED,
                             "%s:%d: %s = \"%s\" reads a generated column of %s, which the dual-write trigger "
                             "sees as NULL (it runs before generated columns are computed)",
                             p->path, dir == 2 ? line_or(b->where_line, b->line) : a[i].line, what, e, b->table);
            zdm_err_detail(err, "expand refused before changing anything; compute %s from the columns the "
                                "generated one is computed from, then run \"zdm advance %s\" again",
                           what, p->id);
        }
    }
    /* A target in the partition key: PostgreSQL refuses a BEFORE trigger
     * that moves the row to another partition, so every write the
     * trigger converted failed (reverse.region = "lower(region_code)"). */
    for (int dir = 0; rc == 0 && pk.n && dir < 2; dir++) {
        const zdm_assign *a = dir ? b->reverse : b->set;
        size_t n = dir ? b->nreverse : b->nset;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (!zdm_dwsql_in_list(&pk, a[i].column, strlen(a[i].column), 0))
                continue;
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED,
                             "%s:%d: %s.%s writes a column of %s's partition key, which a dual-write trigger "
                             "cannot change (PostgreSQL refuses a BEFORE trigger that moves a row to another "
                             "partition: the application's writes would fail)",
                             p->path, a[i].line, dir ? "reverse" : "set", a[i].column, b->table);
            zdm_err_detail(err, "expand refused before changing anything; keep the partition key out of "
                                "the dual-write targets, then run \"zdm advance %s\" again", p->id);
        }
    }
    /* A target with a default: the old application's inserts get it, and
     * the forward INSERT trigger, which converts rows whose targets are
     * NULL (an application that writes them is the new one), never
     * converted them (dst NOT NULL DEFAULT '' stayed '' for good).  Not
     * in place: there every insert is converted. */
    for (size_t i = 0; rc == 0 && !zdm_dw_in_place(b) && i < b->nset; i++) {
        const char *def = NULL;
        for (size_t f = 0; f < facts.ncols; f++)
            if (strcmp(facts.cols[f].name, b->set[i].column) == 0)
                def = facts.cols[f].def;
        if (def && !(strncasecmp(def, "NULL", 4) == 0 && (def[4] == '\0' || def[4] == ':'))) {
            snprintf(what, sizeof what, "set.%s", b->set[i].column);
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED,
                             "%s:%d: %s: column %s has the default %s, which the old application's inserts get; "
                             "the dual-write trigger converts the rows whose %s is NULL, so it would never convert them",
                             p->path, b->set[i].line, what, b->set[i].column, def, b->set[i].column);
            zdm_err_detail(err, "expand refused before changing anything; add %s without a default (give it one, "
                                "and NOT NULL, in contract, once it is backfilled), then run \"zdm advance %s\" again",
                           b->set[i].column, p->id);
        }
    }
    zdm_strv_free(&gen);
    zdm_strv_free(&pk);
    return rc;
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
    /* the table first: a missing one was blamed on the first set.X that
     * named it ("fix set.nick") */
    char *sql = zdm_xasprintf("SELECT * FROM %s", tbl);
    rc = check_expr(c, sql, line_or(b->table_line, b->line), "[backfill] table", b->table, err);
    free(sql);
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
        rc = check_expr(c, sql, line_or(b->where_line, b->line), "where", b->where, err);
        free(sql);
    }
    for (size_t i = 0; rc == 0 && i < b->dw_sources.n; i++) {
        char *q = zdm_db_ident(c->db, b->dw_sources.v[i]);
        /* qualified: SQLite reads an unknown "name" alone as a string */
        sql = zdm_xasprintf("SELECT zdm_t.%s FROM %s AS zdm_t", q, tbl);
        snprintf(what, sizeof what, "[backfill.dual_write] sources");
        rc = check_expr(c, sql, line_or(b->dw_sources_line, b->line), what, b->dw_sources.v[i],
                        err);
        free(sql);
        free(q);
    }
    if (rc == 0 && b->throttle.pause_query)
        rc = check_expr(c, b->throttle.pause_query, line_or(b->throttle.pause_query_line, b->line),
                        "pause_query", b->throttle.pause_query, err);
    zdm_strv key = {0};
    if (rc == 0)
        rc = flush(c, err);
    if (rc == 0) {
        rc = zdm_backfill_key(c->db, p, &key, err);
        if (rc != 0 && err->code != ZDM_EXIT_INTERRUPTED && err->code != ZDM_EXIT_REFUSED)
            rc = refuse(c, b->line, "[backfill] table", b->table, err);
    }
    zdm_strv all = {0};
    zdm_table_facts facts = {0};
    if (rc == 0)
        rc = flush(c, err);
    if (rc == 0 && b->dual_write)
        rc = check_table_facts(c, &facts, &all, err);
    /* the trigger bodies' expressions, rewritten as the functions hold
     * them, with the row as one value of the table's type (not a table
     * under the name new): a column the rewrite left bare resolves to
     * nothing here, as in the function, where it failed every write of
     * the application (a name it did not read as one: größe) */
    if (rc == 0 && b->dual_write && c->d->dw_body_in_function) {
        zdm_strv cols = {0};
        for (size_t i = 0; i < all.n; i++)
            zdm_strv_push(&cols, all.v[i]);
        zdm_dw_columns_add(p, &cols);
        for (int dir = 0; rc == 0 && dir < 2; dir++) {
            const zdm_assign *a = dir ? b->reverse : b->set;
            size_t n = dir ? b->nreverse : b->nset;
            /* in the function's form (dialect_pg.c): expressions on the
             * row's value, or a query on NEW under the table's name */
            int local = zdm_dwsql_assign_row_local(c->d, a, n, &cols, 1);
            for (size_t i = 0; rc == 0 && i < n; i++) {
                if (local) {
                    char *e = zdm_dw_rewrite(c->db, a[i].expr, &cols, "(zdm_new)");
                    sql = zdm_xasprintf("SELECT (%s) FROM (SELECT NULL::%s AS zdm_new) AS zdm_row", e, tbl);
                    free(e);
                } else {
                    sql = zdm_xasprintf("SELECT (%s) FROM (SELECT * FROM %s) AS %s", a[i].expr, tbl, alias);
                }
                snprintf(what, sizeof what, "%s.%s (in the dual-write trigger%s%s)", dir ? "reverse" : "set",
                         a[i].column, local ? ", " : "", local ? AS_NEW : "");
                rc = check_expr(c, sql, a[i].line, what, a[i].expr, err);
                free(sql);
            }
        }
        /* the where as the function holds it (dialect_pg.c): on the row
         * alone, an expression on the row's value; else a query on NEW
         * seen as a one-row table under the table's name */
        if (rc == 0 && b->where && zdm_dwsql_row_local(b->where, &cols)) {
            char *e = zdm_dw_rewrite(c->db, b->where, &cols, "(zdm_new)");
            sql = zdm_xasprintf("SELECT 1 FROM (SELECT NULL::%s AS zdm_new) AS zdm_row WHERE (%s) IS NOT TRUE", tbl,
                                e);
            rc = check_expr(c, sql, line_or(b->where_line, b->line), "where (in the dual-write trigger, " AS_NEW ")",
                            b->where, err);
            free(sql);
            free(e);
        } else if (rc == 0 && b->where) {
            sql = zdm_xasprintf("SELECT 1 FROM (SELECT * FROM %s) AS %s WHERE (%s)", tbl, alias, b->where);
            rc = check_expr(c, sql, line_or(b->where_line, b->line), "where (in the dual-write trigger)",
                            b->where, err);
            free(sql);
        }
        zdm_strv_free(&cols);
    }
    if (rc == 0)
        rc = flush(c, err);
    char on_table[300], on_write[300], batch[300];
    snprintf(on_table, sizeof on_table, "[backfill] the dual-write triggers zdm would create on \"%s\"", b->table);
    snprintf(on_write, sizeof on_write, "[backfill] the dual-write triggers, as a write of \"%s\" fires them,",
             b->table);
    snprintf(batch, sizeof batch, "[backfill] a batch statement of the backfill of \"%s\"", b->table);
    /* the triggers themselves, exactly as expand creates them */
    if (rc == 0 && b->dual_write) {
        char *create = NULL, *drop = NULL;
        rc = zdm_dw_sql(c->db, p, &key, &facts, &create, &drop, err);
        int created = 0;
        /* A resumed expand whose triggers are in place (their step done,
         * a run killed before the phase was recorded): expand does not
         * create them again, and creating them here failed on SQLite (no
         * CREATE OR REPLACE TRIGGER: "already exists"), a refusal that
         * left the plan stuck.  The ones in place are compiled below. */
        if (rc == 0 && c->dw_done)
            created = 1;
        else if (rc == 0) {
            rc = try_sql(c, create, err);
            created = rc == 0;
            if (rc != 0 && err->code != ZDM_EXIT_INTERRUPTED && !c->broken)
                rc = lenient(c, "the dual-write triggers", NULL, err) ? 0 : refuse(c, b->line, on_table, NULL, err);
        }
        /* SQLite compiles trigger bodies into the statements that fire
         * them: compile an UPDATE and an INSERT of the table */
        if (rc == 0 && created && c->d->dw_compiled_on_write) {
            /* every column written: each UPDATE trigger fires, whatever
             * it is OF (setting the target alone left the forward one,
             * OF the sources, uncompiled: an expression its WHEN could
             * not read broke every UPDATE of the application) */
            zdm_buf u = {0};
            zdm_buf_printf(&u, "UPDATE %s SET ", tbl);
            for (size_t i = 0; i < all.n; i++) {
                char *q = zdm_db_ident(c->db, all.v[i]);
                zdm_buf_printf(&u, "%s%s = %s", i ? ", " : "", q, q);
                free(q);
            }
            sql = zdm_buf_take(&u);
            if (rc == 0)
                rc = check_expr(c, sql, b->line, on_write, NULL, err);
            free(sql);
            if (rc == 0) {
                sql = zdm_xasprintf("INSERT INTO %s DEFAULT VALUES", tbl);
                rc = check_expr(c, sql, b->line, on_write, NULL, err);
                free(sql);
            }
        }
        free(create);
        free(drop);
    }
    /* every statement a worker runs, exactly as built */
    if (rc == 0) {
        zdm_strv stmts = {0};
        /* the worker's span statements only for an integer key, asked
         * as the worker asks: checked for any one-column key, a uuid
         * key's min(uuid) (no such function) refused every plan on such
         * a table, which the worker (no spans) converts fine */
        int int_key = zdm_backfill_int_key(c->db, b->table, &key);
        rc = zdm_backfill_batch_sql(c->db, p, &key, int_key, &stmts);
        for (size_t i = 0; rc == 0 && i < stmts.n; i++)
            rc = check_expr(c, stmts.v[i], b->line, batch, NULL, err);
        zdm_strv_free(&stmts);
    }
    if (rc == 0)
        rc = flush(c, err);
    zdm_strv_free(&all);
    zdm_table_facts_free(&facts);
    zdm_strv_free(&key);
    free(alias);
    free(tbl);
    return rc;
}

/* ---- constraint operations: the rows that would fail them ---- */

static const char *field(const zdm_step *s, const char *k)
{
    const toml_value *v = s->fields ? toml_get(s->fields, k) : NULL;
    return v && v->type == TOML_STRING ? v->u.str.ptr : NULL;
}

/* "a, b" (quoted) from a field that is a name or a list of names. */
static char *field_cols(pf *c, const zdm_step *s, const char *k, const char *prefix)
{
    const toml_value *v = s->fields ? toml_get(s->fields, k) : NULL;
    zdm_buf b = {0};
    size_t n = v && v->type == TOML_ARRAY ? v->u.array.len : v && v->type == TOML_STRING ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        const toml_value *it = v->type == TOML_ARRAY ? v->u.array.items[i] : v;
        if (it->type != TOML_STRING)
            continue;
        char *q = zdm_db_ident(c->db, it->u.str.ptr);
        zdm_buf_printf(&b, "%s%s%s", b.len ? ", " : "", prefix, q);
        free(q);
    }
    return zdm_buf_take(&b);
}

/* How to name a row of `table` in a message: its primary key, else ctid
 * (PostgreSQL) / rowid (SQLite). */
static char *row_label(pf *c, const char *table, const char *alias)
{
    zdm_buf b = {0};
    c->d->row_label(c->db, table, alias, &b);
    return zdm_buf_take(&b);
}

/* Counts the rows `bad` ("FROM ... WHERE ...") selects; when there are
 * any, refuses with the count and up to five of them, named by *label
 * (built from the table's row identity when NULL). */
static int refuse_violations(pf *c, const zdm_step *s, const char *table, const char *bad, char **label,
                             const char *what, int *counted, zdm_err *err)
{
    int rc = 0;
    char *q = zdm_xasprintf("SELECT count(*) %s", bad);
    zdm_rows *r = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    /* in the transaction, under a savepoint: a column expand adds later
     * is not an error here */
    char sp[64];
    snprintf(sp, sizeof sp, "SAVEPOINT zdm_preflight_count_%d", ++c->n_sp);
    if (!c->in_tx || zdm_db_exec_script(c->db, sp, &e) == 0) {
        int qr = zdm_db_query(c->db, q, 0, NULL, &r, &e);
        snprintf(sp, sizeof sp, qr == 0 ? "RELEASE SAVEPOINT zdm_preflight_count_%d" :
                                          "ROLLBACK TO SAVEPOINT zdm_preflight_count_%d", c->n_sp);
        zdm_err e2;
        zdm_err_clear(&e2);
        if (c->in_tx && zdm_db_exec_script(c->db, sp, &e2) != 0)
            zdm_log(ZDM_LOG_DEBUG, c->plan->id, "expand", "preflight: %s", e2.msg);
        *counted = qr == 0;
        long long n = qr == 0 && zdm_rows_count(r) == 1 ? strtoll(zdm_rows_get(r, 0, 0), NULL, 10) : 0;
        if (qr != 0 && zdm_db_err_is_lock_timeout(&e)) {
            *err = e;
            rc = lock_busy(c, "the rows that violate", s->from_op, err);
        } else if (qr == ZDM_EXIT_INTERRUPTED) {
            *err = e;
            rc = qr;
        } else if (qr != 0)
            zdm_log(ZDM_LOG_DEBUG, c->plan->id, "expand", "preflight: could not count violating rows %s(%s)",
                    c->in_tx ? "" : "before the steps ", e.msg);
        if (n > 0) {
            char *sq = *label ? zdm_xasprintf("SELECT %s %s ORDER BY 1 LIMIT 5", *label, bad) : NULL;
            if (!*label) {
                *label = row_label(c, table, "zdm_t");
                sq = zdm_xasprintf("SELECT %s %s LIMIT 5", *label, bad);
            }
            zdm_rows *sr = NULL;
            zdm_buf keys = {0};
            if (zdm_db_query(c->db, sq, 0, NULL, &sr, &e) == 0)
                for (int i = 0; i < zdm_rows_count(sr); i++)
                    zdm_buf_printf(&keys, "%s%s", i ? "; " : "", zdm_rows_get(sr, i, 0) ? zdm_rows_get(sr, i, 0) : "?");
            zdm_rows_free(sr);
            char head[600];
            snprintf(head, sizeof head, what, n, n == 1 ? "" : "s", n == 1 ? "s" : "");
            zdm_err_set(err, ZDM_EXIT_REFUSED, "%s:%d: %s (e.g. %s%s)", c->plan->path, s->line, head,
                        keys.data ? keys.data : "?", n > 5 ? "; ..." : "");
            zdm_err_detail(err, "expand refused before any DDL: fix those rows first (or add the constraint "
                                "in a later plan), then run \"zdm advance %s\" again", c->plan->id);
            rc = ZDM_EXIT_REFUSED;
            zdm_buf_free(&keys);
            free(sq);
        }
    }
    zdm_rows_free(r);
    free(q);
    return rc;
}

/* One constraint operation: count the rows that violate it now; refuse
 * with the count and up to five of them, before any DDL. */
static int check_violations(pf *c, const zdm_step *s, int *counted, zdm_err *err)
{
    const char *table = field(s, "table");
    if (!table)
        return 0;
    char *tq = zdm_db_ident_path(c->db, table);
    char *bad = NULL, *what = NULL;
    if (!strcmp(s->from_op, "set_not_null") && field(s, "column")) {
        char *col = zdm_db_ident(c->db, field(s, "column"));
        bad = zdm_xasprintf("FROM %s AS zdm_t WHERE zdm_t.%s IS NULL", tq, col);
        what = zdm_xasprintf("set_not_null on %s.%s: %%lld row%%s hold%%s NULL", table, field(s, "column"));
        free(col);
    } else if (!strcmp(s->from_op, "add_check") && field(s, "check")) {
        bad = zdm_xasprintf("FROM %s AS zdm_t WHERE NOT COALESCE((%s), true)", tq, field(s, "check"));
        what = zdm_xasprintf("add_check (%s) on %s: %%lld row%%s violate%%s it", field(s, "check"), table);
    } else if (!strcmp(s->from_op, "add_foreign_key") && field(s, "references")) {
        char *cols = field_cols(c, s, "columns", "zdm_t."), *rcols = field_cols(c, s, "references_columns", "");
        char *rq = zdm_db_ident_path(c->db, field(s, "references"));
        const toml_value *cv = toml_get(s->fields, "columns");
        size_t n = cv && cv->type == TOML_ARRAY ? cv->u.array.len : 1;
        zdm_buf nn = {0};
        for (size_t i = 0; i < n; i++) {
            const toml_value *it = cv && cv->type == TOML_ARRAY ? cv->u.array.items[i] : cv;
            if (!it || it->type != TOML_STRING)
                continue;
            char *q = zdm_db_ident(c->db, it->u.str.ptr);
            zdm_buf_printf(&nn, "%szdm_t.%s IS NOT NULL", nn.len ? " AND " : "", q);
            free(q);
        }
        bad = zdm_xasprintf("FROM %s AS zdm_t WHERE %s AND (%s) NOT IN (SELECT %s FROM %s WHERE (%s) IS NOT NULL)", tq,
                            nn.data ? nn.data : "true", cols, rcols, rq, rcols);
        what = zdm_xasprintf("add_foreign_key on %s referencing %s: %%lld row%%s point%%s at no row", table,
                             field(s, "references"));
        zdm_buf_free(&nn);
        free(cols);
        free(rcols);
        free(rq);
    }
    char *label = NULL;
    const toml_value *uv = s->fields ? toml_get(s->fields, "unique") : NULL;
    int unique_index = !strcmp(s->from_op, "add_index") && uv && uv->type == TOML_BOOL && uv->u.boolean;
    if ((!strcmp(s->from_op, "add_unique") || unique_index) && toml_get(s->fields, "columns")) {
        /* the values more than one row holds (NULLs never clash); the
         * sample names each value and how many rows hold it */
        char *cols = field_cols(c, s, "columns", "zdm_t.");
        const char *where = unique_index ? field(s, "where") : NULL;
        const toml_value *cv = toml_get(s->fields, "columns");
        size_t ncols = cv->type == TOML_ARRAY ? cv->u.array.len : 1;
        zdm_buf nn = {0}, lb = {0}, names = {0};
        for (size_t i = 0; i < ncols; i++) {
            const toml_value *it = cv->type == TOML_ARRAY ? cv->u.array.items[i] : cv;
            if (it->type != TOML_STRING)
                continue;
            zdm_buf_printf(&names, "%s%s", names.len ? ", " : "", it->u.str.ptr);
            char *q = zdm_db_ident(c->db, it->u.str.ptr);
            zdm_buf_printf(&nn, "%szdm_t.%s IS NOT NULL", nn.len ? " AND " : "", q);
            zdm_buf_printf(&lb, "%sCAST(zdm_d.%s AS text)", lb.len ? " || ',' || " : "", q);
            free(q);
        }
        zdm_buf_printf(&lb, " || ' (' || zdm_d.zdm_n || ' rows)'");
        bad = zdm_xasprintf("FROM (SELECT %s, count(*) AS zdm_n FROM %s AS zdm_t WHERE %s%s%s%s GROUP BY %s "
                            "HAVING count(*) > 1) AS zdm_d",
                            cols, tq, nn.data ? nn.data : "true", where ? " AND (" : "", where ? where : "",
                            where ? ")" : "", cols);
        label = zdm_buf_take(&lb);
        what = zdm_xasprintf("%s (%s) on %s: %%lld value%%s occur%%s in more than one row",
                             unique_index ? "add_index unique" : "add_unique", names.data ? names.data : "", table);
        zdm_buf_free(&nn);
        zdm_buf_free(&names);
        free(cols);
    }
    int rc = bad ? refuse_violations(c, s, table, bad, &label, what, counted, err) : 0;
    free(label);
    free(bad);
    free(what);
    free(tq);
    return rc;
}

/* Counts what each constraint operation would trip on.  Before the
 * transaction (in_tx 0), as plain reads: a count is a scan of the whole
 * table, and inside the transaction, after an ADD COLUMN step, it ran
 * while the table was locked (PostgreSQL: ACCESS EXCLUSIVE; SQLite: the
 * write lock, taken at BEGIN) -- every query of the application waited
 * for it.  In the transaction only the counts that could not run before,
 * on a column an expand step adds. */
static int check_constraint_ops(pf *c, zdm_err *err)
{
    const toml_value *seen[64];
    size_t nseen = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->plan->nexpand; i++) {
        const zdm_step *s = &c->plan->expand[i];
        if (!s->from_op || !s->fields)
            continue;
        if (strcmp(s->from_op, "set_not_null") && strcmp(s->from_op, "add_check") &&
            strcmp(s->from_op, "add_foreign_key") && strcmp(s->from_op, "add_unique") &&
            strcmp(s->from_op, "add_index"))
            continue;
        int dup = 0;
        for (size_t j = 0; j < nseen && !dup; j++)
            dup = seen[j] == s->fields; /* the generated steps of one op share it */
        if (dup)
            continue;
        if (nseen < sizeof seen / sizeof seen[0])
            seen[nseen++] = s->fields;
        /* SQLite cannot add a foreign key: its step is refused elsewhere */
        if (!zdm_step_sql(s, c->d->kind) || (c->in_tx && c->counted[i]))
            continue;
        int counted = 0;
        rc = check_violations(c, s, &counted, err);
        c->counted[i] = (char)counted;
    }
    return rc;
}

/* Does every statement of a SQLite `sql` change the schema alone, so that
 * a copy without rows says whether it runs: DROP, ALTER TABLE without ADD
 * (DROP COLUMN, RENAME), CREATE TABLE / VIEW / TRIGGER without a SELECT
 * to fill it, SELECT without FROM (a no-op down).  Not: INSERT, UPDATE,
 * DELETE, CREATE INDEX (a UNIQUE one fails on duplicate rows), ADD COLUMN
 * (its CHECK or NOT NULL is tested on every row) -- those can fail on
 * the real rows only. */
static int schema_only(const char *sql)
{
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql, ZDM_SQL_SQLITE, &sc);
    int ok = !sc.unterminated && sc.nstmts > 0;
    for (size_t i = 0; ok && i < sc.nstmts; i++) {
        const zdm_sql_stmt *st = &sc.stmts[i];
        const zdm_tok *t = &sc.toks[st->tok];
        size_t n = st->ntok;
        int has_add = 0, has_select = 0, has_from = 0;
        for (size_t k = 0; k < n; k++) {
            has_add |= zdm_tok_is(sql, &t[k], "ADD");
            has_select |= zdm_tok_is(sql, &t[k], "SELECT");
            has_from |= zdm_tok_is(sql, &t[k], "FROM");
        }
        /* CREATE [TEMP|UNIQUE|VIRTUAL] <what>: the first of these words */
        const char *what = "";
        static const char *const whats[] = {"TABLE", "VIEW", "TRIGGER", "INDEX", "VIRTUAL"};
        for (size_t k = 1; k < n && k < 4 && !*what; k++)
            for (size_t w = 0; w < sizeof whats / sizeof whats[0] && !*what; w++)
                if (zdm_tok_is(sql, &t[k], whats[w]))
                    what = whats[w];
        if (n == 0 || zdm_tok_is(sql, &t[0], "DROP"))
            continue;
        if (zdm_tok_is(sql, &t[0], "ALTER"))
            ok = !has_add;
        else if (zdm_tok_is(sql, &t[0], "CREATE"))
            ok = !strcmp(what, "VIEW") || !strcmp(what, "TRIGGER") || (!strcmp(what, "TABLE") && !has_select);
        else
            ok = zdm_tok_is(sql, &t[0], "SELECT") && !has_from;
    }
    zdm_sql_scan_free(&sc);
    return ok;
}

/* The downs of the steps run here, newest first (written steps only: an
 * operation's down is zdm's own), as a failed expand runs them: sql[k]
 * is the down of plan->expand[step[k]]. */
typedef struct pf_downs {
    const char **sql;
    size_t *step;
    size_t n;
} pf_downs;

static void downs_of(const pf *c, const char *ran, pf_downs *d)
{
    const zdm_plan *plan = c->plan;
    d->sql = zdm_xcalloc(plan->nexpand + 1, sizeof *d->sql);
    d->step = zdm_xcalloc(plan->nexpand + 1, sizeof *d->step);
    d->n = 0;
    for (size_t i = plan->nexpand; i-- > 0;) {
        const char *down = ran[i] && !plan->expand[i].from_op ? zdm_step_down(&plan->expand[i], c->d->kind) : NULL;
        if (down) {
            d->step[d->n] = i;
            d->sql[d->n++] = down;
        }
    }
}

static void downs_free(pf_downs *d)
{
    free(d->sql);
    free(d->step);
}

/* SQLite: the downs are tried on a copy of the schema without rows
 * (sqlite_deps.h says why: a DROP COLUMN on the real file rewrites the
 * table under the write lock), made after the transaction from the schema
 * read here, in it, as the steps leave it: building the copy took 1.5 of
 * the 2.5 ms the preflight held the write lock that the application's
 * writers wait on (their busy handler then sleeps 1, 2, then 5 ms).
 * *snap: that schema, when every down changes the schema alone; NULL
 * when one reads or writes rows (its verdict is the real rows'), on
 * PostgreSQL (DROP COLUMN only changes the catalog), or when the schema
 * cannot be read: the downs then run in the transaction. */
static int downs_schema(pf *c, const pf_downs *d, zdm_sqdeps_schema **snap, zdm_err *err)
{
    *snap = NULL;
    if (c->d->kind != ZDM_DB_SQLITE || d->n == 0)
        return 0;
    for (size_t k = 0; k < d->n; k++)
        if (!schema_only(d->sql[k])) {
            zdm_log(ZDM_LOG_DEBUG, c->plan->id, "expand", "preflight: the down of expand step %d reads or writes "
                    "rows; trying the downs in the transaction", c->plan->expand[d->step[k]].index);
            return 0;
        }
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_sqdeps_schema_read(c->db, snap, &e) != 0) {
        if (e.code == ZDM_EXIT_INTERRUPTED) {
            *err = e;
            return e.code;
        }
        zdm_log(ZDM_LOG_DEBUG, c->plan->id, "expand", "preflight: no schema copy for the downs (%s)", e.msg);
    }
    return 0;
}

/* After the transaction: the downs on the copy of snap.  1 when every
 * down ran there; 0 when one failed, or there was no copy: the caller
 * runs them in a transaction as before, whose verdict is the one that
 * counts and names the down at fault. */
static int downs_on_copy(pf *c, const pf_downs *d, const zdm_sqdeps_schema *snap)
{
    int tried = 0;
    long failed = -1;
    zdm_err e;
    zdm_err_clear(&e);
    zdm_sqdeps_try_on_schema(snap, d->sql, d->n, &tried, &failed, &e);
    if (tried && failed >= 0)
        zdm_log(ZDM_LOG_DEBUG, c->plan->id, "expand", "preflight: the down of expand step %d failed on the "
                "schema copy (%s); trying the downs in the transaction",
                c->plan->expand[d->step[failed]].index, e.msg);
    return tried && failed < 0;
}

/* One pass: the steps, the checks and the downs in one transaction,
 * rolled back.  downs_in_tx: run the downs in it (else, where they can,
 * on a copy of the schema after it: *again = 1 when that copy could not
 * say, and a second pass must run them in the transaction). */
static int preflight_pass(zdm_db *db, const zdm_plan *plan, int downs_in_tx, int *again, zdm_err *err)
{
    pf c = {.db = db, .plan = plan, .d = zdm_db_dialect(db)};
    *again = 0;
    int constraint_ops = 0;
    for (size_t i = 0; i < plan->nexpand; i++)
        constraint_ops |= plan->expand[i].from_op != NULL;
    if (!plan->backfill && !plan->verify && !constraint_ops)
        return 0;
    c.counted = zdm_xcalloc(plan->nexpand + 1, 1);
    if (plan->backfill && plan->backfill->dual_write) { /* read before the transaction: may fail harmlessly */
        char st[16] = "";
        zdm_err se;
        zdm_err_clear(&se);
        c.dw_done = zdm_state_step_status(db, plan->id, "expand", (int)plan->nexpand + 1, st, &se) == 0 &&
                    strcmp(st, "done") == 0;
    }
    int rc = check_constraint_ops(&c, err);
    if (rc == 0 && c.d->preflight_warm) {
        zdm_err we;
        zdm_err_clear(&we);
        if (zdm_db_exec_script(db, c.d->preflight_warm, &we) != 0)
            zdm_log(ZDM_LOG_DEBUG, plan->id, "expand", "preflight: warming up: %s", we.msg);
    }
    if (rc == 0)
        rc = zdm_db_begin(db, err);
    if (rc != 0) {
        free(c.counted);
        return rc;
    }
    c.in_tx = 1;
    /* the checks take the locks expand's own DDL takes, briefly */
    if (c.d->set_local_timeouts)
        rc = c.d->set_local_timeouts(db, (long long)(plan->lock_timeout_ms > 0 ? plan->lock_timeout_ms : 2000), 60000,
                                     err);
    if (rc == 0 && (rc = zdm_db_exec_script(db, "SAVEPOINT zdm_preflight_0", err)) == 0)
        good_is(&c, "zdm_preflight_0");
    int dialect = c.d->kind;
    char *ran = zdm_xcalloc(plan->nexpand + 1, 1); /* the steps run here */
    for (size_t i = 0; rc == 0 && i < plan->nexpand; i++) {
        const char *sql = zdm_step_sql(&plan->expand[i], dialect);
        if (!sql)
            continue;
        char *no_checks = c.d->pg_grammar ? NULL : sqlite_without_checks(sql);
        int in_tx = zdm_step_in_transaction(&plan->expand[i], sql);
        if (no_checks)
            sql = no_checks;
        if (!in_tx || !only_adds(sql, plan->expand[i].from_op != NULL, !c.d->pg_grammar)) {
            c.skipped += may_add_names(sql);
            free(no_checks);
            continue;
        }
        zdm_err e;
        zdm_err_clear(&e);
        ran[i] = 1;
        if (try_sql(&c, sql, &e) != 0) {
            ran[i] = 0;
            if (e.code == ZDM_EXIT_INTERRUPTED || c.broken) {
                *err = e;
                rc = e.code;
            } else if (zdm_db_err_is_lock_timeout(&e)) {
                char what[64];
                snprintf(what, sizeof what, "expand step %d", plan->expand[i].index);
                *err = e;
                rc = lock_busy(&c, what, NULL, err);
            } else {
                c.skipped += may_add_names(sql);
                zdm_log(ZDM_LOG_DEBUG, plan->id, "expand", "preflight: expand step %d skipped (%s)",
                        plan->expand[i].index, e.msg);
            }
        }
        free(no_checks);
    }
    /* the schema as the expand steps leave it, for their downs below:
     * the last good state now (no round trip of its own) */
    char steps_sp[sizeof c.sp];
    memcpy(steps_sp, c.sp, sizeof steps_sp);
    if (rc == 0)
        rc = check_constraint_ops(&c, err);
    if (rc == 0 && plan->backfill)
        rc = check_backfill(&c, err);
    if (rc == 0 && plan->verify)
        rc = check_expr(&c, plan->verify, plan->verify_line, "[contract] verify",
                        plan->verify, err);
    if (rc == 0)
        rc = flush(&c, err);
    /* The downs of the steps run here, newest first, as a failed expand
     * runs them: one that cannot undo its step (a misspelt column) would
     * leave the schema changed after a failure.  Written steps only: an
     * operation's down is zdm's own. */
    if (rc == 0) {
        good_is(&c, steps_sp);
        rc = back_to_good(&c, err);
    }
    pf_downs downs;
    downs_of(&c, ran, &downs);
    zdm_sqdeps_schema *snap = NULL;
    if (rc == 0 && !downs_in_tx)
        rc = downs_schema(&c, &downs, &snap, err);
    for (size_t k = 0; rc == 0 && !snap && k < downs.n; k++) {
        if (try_sql(&c, downs.sql[k], err) == 0)
            continue;
        const zdm_step *s = &plan->expand[downs.step[k]];
        char what[64];
        snprintf(what, sizeof what, "down of expand step %d", s->index);
        rc = err->code == ZDM_EXIT_INTERRUPTED || c.broken ? err->code : refuse(&c, s->line, what, downs.sql[k], err);
    }
    drop_checks(&c);
    zdm_db_rollback(db);
    if (rc == 0 && snap && !downs_on_copy(&c, &downs, snap))
        *again = 1;
    zdm_sqdeps_schema_free(snap);
    downs_free(&downs);
    free(ran);
    free(c.counted);
    return rc;
}

int zdm_preflight(zdm_db *db, const zdm_plan *plan, zdm_err *err)
{
    int again = 0;
    int rc = preflight_pass(db, plan, 0, &again, err);
    if (rc == 0 && again) /* a down the copy of the schema could not run: the real verdict */
        rc = preflight_pass(db, plan, 1, &again, err);
    return rc;
}

/* ---- plans in flight on the same table ---- */

/* One table under two spellings: "public.users" and "users" (PostgreSQL),
 * "main.users" and "users" (SQLite), any case. */
static int same_table(const char *a, const char *b)
{
    const char *pre[] = {"public.", "main."};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(pre[i]);
        if (!strncasecmp(a, pre[i], n))
            a += n;
        if (!strncasecmp(b, pre[i], n))
            b += n;
    }
    return strcasecmp(a, b) == 0;
}

/* Does the backfill (its triggers) write or read column `col`?  The
 * expressions are matched by word: a false match refuses a plan that
 * could have run, never the other way round. */
static int backfill_uses(const zdm_backfill *b, const char *col)
{
    for (size_t i = 0; i < b->nset; i++)
        if (!strcasecmp(b->set[i].column, col) || zdm_dw_names(b->set[i].expr, col))
            return 1;
    for (size_t i = 0; i < b->nreverse; i++)
        if (!strcasecmp(b->reverse[i].column, col) || zdm_dw_names(b->reverse[i].expr, col))
            return 1;
    for (size_t i = 0; i < b->dw_sources.n; i++)
        if (!strcasecmp(b->dw_sources.v[i], col))
            return 1;
    for (size_t i = 0; i < b->key.n; i++)
        if (!strcasecmp(b->key.v[i], col))
            return 1;
    return b->where && zdm_dw_names(b->where, col);
}

/* A step of `p` that drops a column q's triggers use: refused. */
static int drops_used(const zdm_plan *p, const zdm_step *steps, size_t n, const char *phase, int dialect,
                      const zdm_plan *q, zdm_phase qphase, zdm_err *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        zdm_strv tables = {0}, cols = {0};
        zdm_sql_dropped_columns(zdm_step_sql(&steps[i], dialect), &tables, &cols);
        for (size_t j = 0; rc == 0 && j < cols.n; j++) {
            if (!same_table(tables.v[j], q->backfill->table) || !backfill_uses(q->backfill, cols.v[j]))
                continue;
            zdm_err_set(err, ZDM_EXIT_REFUSED,
                        "%s:%d: %s step %d of %s drops or renames %s.%s, which the dual-write triggers of plan %s (in flight: "
                        "%s) use: every write of the table would then fail in them",
                        p->path, steps[i].line, phase, steps[i].index, p->id, tables.v[j], cols.v[j], q->id,
                        zdm_phase_name(qphase));
            zdm_err_detail(err, "finish plan %s first (its contract removes its triggers) or roll it back, then "
                                "run \"zdm advance %s\" again; nothing was changed",
                           q->id, p->id);
            rc = ZDM_EXIT_REFUSED;
        }
        zdm_strv_free(&tables);
        zdm_strv_free(&cols);
    }
    return rc;
}

/* The columns b's triggers write: its set.* and reverse.* targets. */
static void written_by(const zdm_backfill *b, zdm_strv *cols)
{
    for (size_t i = 0; i < b->nset; i++)
        zdm_strv_push(cols, b->set[i].column);
    for (size_t i = 0; i < b->nreverse; i++)
        zdm_strv_push(cols, b->reverse[i].column);
}

/* Whether expr may read one of cols, the columns of `table`: it names
 * one as a word (qualified, users.nick; in functional notation,
 * nick(users); in a string, row_to_json(users)->>'nick'), or names the
 * table itself (a whole-row reference reads every column).  A lexical
 * look: a false match refuses a plan that could have run, never the
 * other way round. */
static int may_read(const char *expr, const zdm_strv *cols, const char *table)
{
    const char *dot = strrchr(table, '.');
    if (zdm_dw_names(expr, dot ? dot + 1 : table))
        return 1;
    for (size_t i = 0; i < cols->n; i++)
        if (zdm_dw_names(expr, cols->v[i]))
            return 1;
    return 0;
}

/* The first of b's set.*, reverse.* and where that may read one of cols:
 * 1, with its name in what and its line; 0 when none does. */
static int reads_any(const zdm_backfill *b, const zdm_strv *cols, char *what, size_t wn, int *line)
{
    for (size_t i = 0; i < b->nset + b->nreverse; i++) {
        const zdm_assign *a = i < b->nset ? &b->set[i] : &b->reverse[i - b->nset];
        if (may_read(a->expr, cols, b->table)) {
            snprintf(what, wn, "%s.%s", i < b->nset ? "set" : "reverse", a->column);
            *line = a->line;
            return 1;
        }
    }
    if (b->where && may_read(b->where, cols, b->table)) {
        snprintf(what, wn, "where");
        *line = line_or(b->where_line, b->line);
        return 1;
    }
    return 0;
}

/* Two plans' dual-write on one table, where one's expressions read what
 * the other's triggers write: the triggers fire in an order of their own
 * (PostgreSQL: by name; SQLite: the other's UPDATE fires it again only OF
 * its sources), so a write converted from the value the application wrote
 * or the one the other plan computed, by chance. */
static int reads_other(const zdm_plan *p, const zdm_plan *q, zdm_phase qphase, zdm_err *err)
{
    zdm_strv pw = {0}, qw = {0};
    written_by(p->backfill, &pw);
    written_by(q->backfill, &qw);
    char what[200];
    int line = 0, rc = 0;
    const zdm_plan *reader = NULL, *writer = NULL;
    if (reads_any(p->backfill, &qw, what, sizeof what, &line))
        reader = p, writer = q;
    else if (reads_any(q->backfill, &pw, what, sizeof what, &line))
        reader = q, writer = p;
    if (reader) {
        zdm_err_set(err, ZDM_EXIT_REFUSED,
                    "%s:%d: %s of plan %s reads a column of %s that the dual-write triggers of plan %s write "
                    "(%s in flight: %s); which plan's trigger runs first on a write is not defined, so it "
                    "would read the value the application wrote or the one the other plan computed",
                    reader->path, line, what, reader->id, p->backfill->table, writer->id, q->id,
                    zdm_phase_name(qphase));
        zdm_err_detail(err, "finish plan %s first (contract), or fold the two changes into one plan (where "
                            "set.* may read the sources only); nothing was changed",
                       q->id);
        rc = ZDM_EXIT_REFUSED;
    }
    zdm_strv_free(&pw);
    zdm_strv_free(&qw);
    return rc;
}

void zdm_preflight_neighbours(const zdm_plan *p, const zdm_plan_set *set, int dialect, zdm_strv *out)
{
    /* the tables p's triggers are on, and those its steps drop or rename
     * columns of (a plan without a backfill whose contract drops a column
     * another plan's new triggers read: drops_used) */
    zdm_strv tables = {0};
    if (p->backfill && p->backfill->dual_write)
        zdm_strv_push(&tables, p->backfill->table);
    const zdm_step *phases[2] = {p->expand, p->contract};
    size_t counts[2] = {p->nexpand, p->ncontract};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < counts[k]; i++) {
            zdm_strv cols = {0};
            zdm_sql_dropped_columns(zdm_step_sql(&phases[k][i], dialect), &tables, &cols);
            zdm_strv_free(&cols);
        }
    for (size_t i = 0; set && i < set->n; i++) {
        const zdm_plan *q = set->plans[i];
        if (q == p || !strcmp(q->id, p->id) || !q->backfill || !q->backfill->dual_write || !q->backfill->nset)
            continue;
        int shared = 0;
        for (size_t t = 0; !shared && t < tables.n; t++)
            shared = same_table(tables.v[t], q->backfill->table);
        if (shared)
            zdm_strv_push(out, q->id);
    }
    zdm_strv_free(&tables);
}

int zdm_preflight_shared(zdm_db *db, const zdm_plan *p, const zdm_plan_set *set, int contract, zdm_err *err)
{
    int dialect = zdm_db_dialect(db)->kind;
    int rc = 0;
    for (size_t i = 0; set && rc == 0 && i < set->n; i++) {
        const zdm_plan *q = set->plans[i];
        if (q == p || !strcmp(q->id, p->id) || !q->backfill || !q->backfill->dual_write || !q->backfill->nset)
            continue;
        zdm_plan_state st;
        rc = zdm_state_get(db, q->id, &st, err);
        if (rc != 0)
            break;
        if (!st.known || st.phase < ZDM_EXPANDED || st.phase > ZDM_CUT_OVER)
            continue; /* its triggers are not installed */
        if (contract) {
            rc = drops_used(p, p->contract, p->ncontract, "contract", dialect, q, st.phase, err);
            continue;
        }
        const zdm_backfill *b = p->backfill;
        for (size_t k = 0; b && b->dual_write && same_table(b->table, q->backfill->table) && k < b->nset; k++)
            for (size_t m = 0; rc == 0 && m < q->backfill->nset; m++) {
                if (strcasecmp(b->set[k].column, q->backfill->set[m].column) != 0)
                    continue;
                zdm_err_set(err, ZDM_EXIT_REFUSED,
                            "%s:%d: set.%s: the dual-write triggers of plan %s (in flight: %s) already write "
                            "%s.%s; two plans' triggers writing one column overwrite each other",
                            p->path, b->set[k].line, b->set[k].column, q->id, zdm_phase_name(st.phase), b->table,
                            b->set[k].column);
                zdm_err_detail(err, "finish plan %s first (contract) or roll it back, or fold this change into "
                                    "it; nothing was changed",
                               q->id);
                rc = ZDM_EXIT_REFUSED;
            }
        if (rc == 0 && b && b->dual_write && same_table(b->table, q->backfill->table))
            rc = reads_other(p, q, st.phase, err);
        if (rc == 0)
            rc = drops_used(p, p->expand, p->nexpand, "expand", dialect, q, st.phase, err);
        if (rc == 0 && b && same_table(b->table, q->backfill->table))
            zdm_log(ZDM_LOG_INFO, p->id, "expand",
                    "table %s is shared with plan %s (in flight: %s): both plans' triggers fire on each write",
                    b->table, q->id, zdm_phase_name(st.phase));
    }
    return rc;
}
