/*
 * steps.c -- running expand and contract steps safely.
 *
 * Every DDL statement runs with a short lock_timeout: an ALTER that waits
 * behind a long transaction would otherwise queue all of the application's
 * queries behind its own lock request.  A lock timeout is retried with
 * exponential backoff and jitter, so the application gets the table back
 * between tries.  A transactional step commits its "done" mark in the same
 * transaction as its DDL, so a crash leaves either both or neither.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dialect.h"
#include "log.h"
#include "mutant.h"
#include "phase.h"
#include "sqlite_deps.h"
#include "sig.h"
#include "util.h"

/* 10 minutes bounds a transactional DDL step holding its lock when the
 * plan sets no statement_timeout; steps outside a transaction (CREATE
 * INDEX CONCURRENTLY) may take as long as they need. */
#define DEFAULT_TX_STATEMENT_TIMEOUT_MS (10 * 60 * 1000)

typedef struct step_cfg {
    int in_tx;
    int64_t lock_ms, stmt_ms;
    int tries;
} step_cfg;

static step_cfg cfg_of(const zdm_plan *p, const zdm_step *s, const char *sql)
{
    step_cfg c;
    c.in_tx = zdm_step_in_transaction(s, sql);
    c.lock_ms = s->lock_timeout_ms >= 0 ? s->lock_timeout_ms : p->lock_timeout_ms;
    c.stmt_ms = s->statement_timeout_ms >= 0 ? s->statement_timeout_ms : p->statement_timeout_ms;
    if (c.stmt_ms == 0 && c.in_tx && s->statement_timeout_ms < 0 && p->statement_timeout_ms == 0)
        c.stmt_ms = DEFAULT_TX_STATEMENT_TIMEOUT_MS;
    c.tries = s->lock_retries >= 0 ? s->lock_retries : p->lock_retries;
    if (c.tries < 1)
        c.tries = 1;
    return c;
}

static int before_step(zdm_run *r, zdm_err *err)
{
    return r->before_step ? r->before_step(r->before_step_arg, err) : 0;
}

/* Backoff before try n+1: 250 ms doubling, capped at 30 s, plus up to
 * 50% jitter so several waiting runs do not retry in step. */
static int64_t backoff_ms(int attempt)
{
    int64_t base = 250;
    for (int i = 1; i < attempt && base < 30000; i++)
        base *= 2;
    if (base > 30000)
        base = 30000;
    return base + (int64_t)(rand() % (int)(base / 2 + 1));
}

/* A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind that
 * blocks the retry; drop it (concurrently, so no table lock). */
static int drop_invalid_index(zdm_run *r, const char *sql, zdm_err *err)
{
    const zdm_dialect *d = zdm_db_dialect(r->db);
    if (!d->invalid_indexes)
        return 0;
    char *schema = NULL, *name = NULL;
    if (!zdm_sql_concurrent_index(sql, &schema, &name))
        return 0;
    zdm_rows *rows = NULL;
    int rc = d->invalid_indexes(r->db, schema, name, &rows, err);
    for (int i = 0; rc == 0 && i < zdm_rows_count(rows); i++) {
        char *qs = zdm_db_ident(r->db, zdm_rows_get(rows, i, 0));
        char *qn = zdm_db_ident(r->db, zdm_rows_get(rows, i, 1));
        char *drop = zdm_xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s.%s", qs, qn);
        zdm_log(ZDM_LOG_WARN, r->plan->id, NULL,
                "dropping INVALID index %s.%s left by an interrupted CREATE INDEX CONCURRENTLY",
                zdm_rows_get(rows, i, 0), zdm_rows_get(rows, i, 1));
        rc = zdm_db_exec_script(r->db, drop, err);
        free(drop);
        free(qs);
        free(qn);
    }
    zdm_rows_free(rows);
    free(schema);
    free(name);
    return rc;
}

/* A run killed after its CREATE INDEX CONCURRENTLY finished but before
 * the step was recorded: the index is there and valid, so building it
 * again fails ("already exists").  *built = 1 when the step is exactly
 * that one statement and its index exists and is valid. */
static int index_already_built(zdm_run *r, const char *sql, int *built, zdm_err *err)
{
    *built = 0;
    const zdm_dialect *d = zdm_db_dialect(r->db);
    if (!d->index_built)
        return 0;
    char *schema = NULL, *name = NULL;
    if (!zdm_sql_concurrent_index(sql, &schema, &name))
        return 0;
    int rc = d->index_built(r->db, schema, name, built, err);
    free(schema);
    free(name);
    return rc;
}

static void print_dry(zdm_run *r, const char *phase, const zdm_step *s, const char *sql,
                      const step_cfg *c, const char *what)
{
    FILE *f = r->out;
    char d1[32], d2[32];
    fprintf(f, "-- %s step %d%s%s%s (%s)\n", phase, s->index, what, s->name ? ": " : "",
            s->name ? s->name : "", c->in_tx ? "in a transaction" : "outside a transaction");
    zdm_buf t = {0};
    zdm_db_dialect(r->db)->dry_timeouts(&t, zdm_format_duration(c->lock_ms, d1, sizeof d1),
                                        c->stmt_ms ? zdm_format_duration(c->stmt_ms, d2, sizeof d2) : "0", c->tries);
    fputs(t.data ? t.data : "", f);
    zdm_buf_free(&t);
    if (c->in_tx)
        fprintf(f, "BEGIN;\n");
    size_t n = strlen(sql);
    while (n && isspace((unsigned char)sql[n - 1]))
        n--;
    fprintf(f, "%.*s%s\n", (int)n, sql, n && sql[n - 1] == ';' ? "" : ";");
    if (c->in_tx)
        fprintf(f, "COMMIT;\n");
    fputc('\n', f);
}

/* Runs `sql` for step `s` under the retry discipline; marks the step's
 * state `mark` ("done" or "undone") atomically with it when in a
 * transaction. */
static int run_with_retries(zdm_run *r, const char *phase, const zdm_step *s, const char *sql,
                            const char *mark, const char *was, zdm_err *err)
{
    step_cfg c = cfg_of(r->plan, s, sql);
    const char *id = r->plan->id;
    int rc = 0;
    char d[32];
    if (zdm_mutant("rollback_keeps_steps") && strcmp(mark, "undone") == 0)
        mark = was; /* the undone step keeps its "done" record */
    for (int attempt = 1; attempt <= c.tries; attempt++) {
        zdm_err_clear(err);
        rc = zdm_db_set_timeouts(r->db, (int)c.lock_ms, (int)c.stmt_ms, err);
        if (rc != 0)
            break;
        int64_t t0 = zdm_mono_ms();
        if (c.in_tx) {
            rc = zdm_db_begin(r->db, err);
            const char *sb = zdm_db_dialect(r->db)->step_begin;
            if (rc == 0 && sb)
                rc = zdm_db_exec_script(r->db, sb, err);
            /* the mark before the DDL: the table's lock, taken by the
             * DDL, is then held for its statement and the commit only,
             * one round trip less that the application waits */
            if (rc == 0)
                rc = zdm_state_step_mark(r->db, id, phase, s->index, mark, err);
            if (rc == 0) /* SQLite: plain indexes go with a dropped column */
                rc = zdm_sqdeps_before_drop(r->db, r->plan, sql, err);
            if (rc == 0)
                rc = zdm_db_exec_script(r->db, sql, err);
            if (rc == 0)
                rc = zdm_db_commit(r->db, err);
            if (rc != 0)
                zdm_db_rollback(r->db);
        } else {
            int built = 0;
            if (strcmp(was, "running") == 0 && strcmp(mark, "done") == 0 && attempt == 1)
                rc = index_already_built(r, sql, &built, err);
            if (rc == 0 && built) {
                zdm_log(ZDM_LOG_INFO, id, phase,
                        "step %d: its index was built by an interrupted run and is valid; recorded as done",
                        s->index);
                rc = zdm_state_step_mark(r->db, id, phase, s->index, mark, err);
                break;
            }
            if (rc == 0 && (strcmp(was, "running") == 0 || attempt > 1))
                rc = drop_invalid_index(r, sql, err);
            if (rc == 0 && strcmp(mark, "done") == 0)
                rc = zdm_state_step_mark(r->db, id, phase, s->index, "running", err);
            if (rc == 0) /* SQLite: as above, though not atomically here */
                rc = zdm_sqdeps_before_drop(r->db, r->plan, sql, err);
            if (rc == 0)
                rc = zdm_db_exec_script(r->db, sql, err);
            if (rc == 0)
                rc = zdm_state_step_mark(r->db, id, phase, s->index, mark, err);
        }
        if (rc == 0) {
            zdm_log(ZDM_LOG_INFO, id, phase, "step %d%s%s %s in %lld ms%s", s->index,
                    s->name ? " " : "", s->name ? s->name : "",
                    strcmp(mark, "done") == 0 ? "applied" : "undone",
                    (long long)(zdm_mono_ms() - t0), attempt > 1 ? " (after retries)" : "");
            break;
        }
        if (strcmp(err->sqlstate, "2BP01") == 0) {
            /* PostgreSQL's own hint says to use CASCADE, which would drop
             * whatever depends on the object: another plan's view schema
             * (zdm_v_*), the new application's way in. */
            zdm_err_detail(err, "other objects depend on what this step removes (the DETAIL names them); do not "
                                "add CASCADE: a zdm_v_<plan> view schema belongs to another plan in flight -- "
                                "contract or roll back that plan first, or drop the dependent objects you own in "
                                "an earlier step; this step was not applied");
            break;
        }
        if (!zdm_db_err_is_lock_timeout(err) || attempt == c.tries) {
            if (zdm_db_err_is_lock_timeout(err)) {
                zdm_err_prefix(err, "gave up after %d tries of %s lock_timeout: ", c.tries,
                               zdm_format_duration(c.lock_ms, d, sizeof d));
                zdm_err_detail(err,
                               "another session holds a conflicting lock on the table; find it in "
                               "pg_stat_activity / pg_locks, let it finish, then run the command again "
                               "(or raise lock_retries / lock_timeout in the plan)");
            }
            if (!c.in_tx) {
                /* Leave no INVALID index behind for the next run to trip on. */
                zdm_err keep = *err;
                zdm_err e2;
                zdm_err_clear(&e2);
                if (drop_invalid_index(r, sql, &e2) != 0)
                    zdm_log(ZDM_LOG_WARN, id, phase, "could not drop the INVALID index: %s", e2.msg);
                *err = keep;
            }
            break;
        }
        int64_t wait = backoff_ms(attempt);
        zdm_log(ZDM_LOG_WARN, id, phase,
                "step %d: lock not granted within %s (try %d of %d: %s); retrying in %lld ms",
                s->index, zdm_format_duration(c.lock_ms, d, sizeof d), attempt, c.tries, err->msg,
                (long long)wait);
        if (zdm_sig_sleep_ms(wait)) { /* a signal: stop retrying, the step is not done */
            rc = zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "interrupted while waiting to retry the lock");
            break;
        }
    }
    zdm_err e3;
    zdm_err_clear(&e3);
    /* Back to the session defaults: none on PostgreSQL; on SQLite the
     * plan's budget for zdm's own writes. */
    int idle_lock_ms = zdm_db_dialect(r->db)->idle_busy_wait ? zdm_run_sqlite_wait_ms(r->plan) : 0;
    if (zdm_db_set_timeouts(r->db, idle_lock_ms, 0, &e3) != 0 && rc == 0)
        *err = e3, rc = e3.code;
    if (rc != 0)
        zdm_err_prefix(err, "%s step %d (%s:%d): ", phase, s->index, r->plan->path, s->line);
    return rc;
}

int zdm_steps_check_runnable(zdm_run *r, const char *phase, const zdm_step *steps, size_t n,
                             zdm_err *err)
{
    const zdm_dialect *d = zdm_db_dialect(r->db);
    for (size_t i = 0; i < n; i++) {
        if (steps[i].op) {
            zdm_err_set(err, ZDM_EXIT_REFUSED,
                        "%s step %d (%s:%d): operation \"%s\" cannot be executed by this version of zdm",
                        phase, steps[i].index, r->plan->path, steps[i].line, steps[i].op);
            zdm_err_detail(err, "write the step as raw SQL (sql = \"...\" with down = \"...\"); nothing was changed");
            return ZDM_EXIT_REFUSED;
        }
        if (!zdm_step_sql(&steps[i], d->kind)) {
            const char *why = steps[i].unsupported_for[d->slot];
            zdm_err_set(err, ZDM_EXIT_REFUSED, "%s step %d (%s:%d) has no SQL for %s%s%s",
                        phase, steps[i].index, r->plan->path, steps[i].line, zdm_db_dialect_name(r->db),
                        why ? ": " : "", why ? why : "");
            if (why) {
                zdm_err_detail(err, "run this plan on PostgreSQL, or write the change as raw SQL for SQLite; "
                                    "nothing was changed");
                return ZDM_EXIT_REFUSED;
            }
            zdm_err_detail(err, "add sql.%s = \"...\" to the step; nothing was changed", d->plan_key);
            return ZDM_EXIT_REFUSED;
        }
    }
    return 0;
}

int zdm_steps_apply(zdm_run *r, const char *phase, const zdm_step *steps, size_t n, zdm_err *err)
{
    int rc = zdm_steps_check_runnable(r, phase, steps, n, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const zdm_step *s = &steps[i];
        char status[16] = "";
        if (!r->no_state) {
            rc = zdm_state_step_status(r->db, r->plan->id, phase, s->index, status, err);
            if (rc != 0)
                return rc;
        }
        if (strcmp(status, "done") == 0) {
            if (r->dry_run)
                fprintf(r->out, "-- %s step %d: already applied, skipped\n\n", phase, s->index);
            else
                zdm_log(ZDM_LOG_INFO, r->plan->id, phase, "step %d already applied, skipping",
                        s->index);
            continue;
        }
        const char *sql = zdm_step_sql(s, zdm_db_dialect(r->db)->kind);
        if (r->dry_run) {
            step_cfg c = cfg_of(r->plan, s, sql);
            print_dry(r, phase, s, sql, &c, "");
            continue;
        }
        rc = before_step(r, err);
        if (rc != 0)
            return rc;
        if (strcmp(status, "running") == 0)
            zdm_log(ZDM_LOG_WARN, r->plan->id, phase,
                    "step %d was interrupted during a previous run; running it again", s->index);
        rc = run_with_retries(r, phase, s, sql, "done", status, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int zdm_steps_undo(zdm_run *r, const char *phase, const zdm_step *steps, size_t n, zdm_err *err)
{
    /* First pass: refuse before touching anything. */
    char (*status)[16] = zdm_xcalloc(n + 1, sizeof *status);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = zdm_state_step_status(r->db, r->plan->id, phase, steps[i].index, status[i], err);
        if (rc != 0)
            break;
        int applied = strcmp(status[i], "done") == 0 || strcmp(status[i], "running") == 0;
        if (applied && (steps[i].op || !zdm_step_down(&steps[i], zdm_db_dialect(r->db)->kind))) {
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED,
                             "%s step %d (%s:%d) has no \"down\": rollback refused, nothing was changed",
                             phase, steps[i].index, r->plan->path, steps[i].line);
            zdm_err_detail(err, "add down = \"SQL that undoes the step\" to the step, or undo it by hand "
                                "and record the result with \"zdm stamp %s rolled_back\"", r->plan->id);
        }
    }
    for (size_t k = n; rc == 0 && k-- > 0;) {
        const zdm_step *s = &steps[k];
        int applied = strcmp(status[k], "done") == 0 || strcmp(status[k], "running") == 0;
        if (!applied)
            continue;
        /* The down has its own transaction mode (DROP INDEX CONCURRENTLY). */
        const char *down = zdm_step_down(s, zdm_db_dialect(r->db)->kind);
        if (r->dry_run) {
            step_cfg c = cfg_of(r->plan, s, down);
            print_dry(r, phase, s, down, &c, " (down)");
            continue;
        }
        rc = before_step(r, err);
        if (rc == 0)
            rc = run_with_retries(r, phase, s, down, "undone", status[k], err);
    }
    free(status);
    return rc;
}
