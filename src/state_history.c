/*
 * state_history.c -- reading and sweeping zdm's history table (see
 * state.h); the writers (history_add, _update, _last) stay in state.c
 * beside the deferred refusal record they share.
 *
 * Owns: the history listing with its filters (zdm history), marking a
 * dead run's "running" rows interrupted, and counting what this process
 * itself recorded (run-due).  Every filter value is a parameter; the
 * table name is zdm's own constant.
 */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static char *dup_or_null(const char *s)
{
    return s ? zdm_xstrdup(s) : NULL;
}

int zdm_state_history_list(zdm_db *db, const zdm_history_filter *f, zdm_history_list *out, zdm_err *err)
{
    memset(out, 0, sizeof *out);
    char since[32] = "", until[32] = "", limit[32] = "";
    if (f->has_since)
        snprintf(since, sizeof since, "%lld", (long long)f->since_ms);
    if (f->has_until)
        snprintf(until, sizeof until, "%lld", (long long)f->until_ms);
    if (f->limit > 0)
        snprintf(limit, sizeof limit, "%ld", f->limit);
    char sql[1200];
    /* --event ACTION matches the action, and "hook" every "hook EVENT" row;
     * the newest `limit` rows, still returned oldest first. */
    snprintf(sql, sizeof sql,
             "SELECT id, plan_id, at_ms, who, pid, action, from_phase, to_phase, outcome, detail, reason FROM ("
             "SELECT * FROM %s WHERE (CAST($1 AS text) IS NULL OR plan_id = CAST($1 AS text)) "
             "AND (CAST($2 AS text) IS NULL OR action = CAST($2 AS text) "
             "     OR substr(action, 1, length(CAST($2 AS text)) + 1) = CAST($2 AS text) || ' ') "
             "AND (CAST($3 AS text) IS NULL OR outcome = CAST($3 AS text)) "
             "AND (CAST($4 AS text) IS NULL OR at_ms >= CAST(CAST($4 AS text) AS bigint)) "
             "AND (CAST($5 AS text) IS NULL OR at_ms <= CAST(CAST($5 AS text) AS bigint)) "
             "ORDER BY id DESC%s) h ORDER BY id",
             zdm_state_table(db, "history"), limit[0] ? " LIMIT CAST(CAST($6 AS text) AS bigint)" : "");
    const char *params[] = {f->plan_id, f->action, f->outcome, since[0] ? since : NULL, until[0] ? until : NULL,
                            limit};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, limit[0] ? 6 : 5, params, &r, err);
    if (rc != 0)
        return rc;
    int n = zdm_rows_count(r);
    out->v = zdm_xcalloc(n ? (size_t)n : 1, sizeof *out->v);
    out->n = (size_t)n;
    for (int i = 0; i < n; i++) {
        zdm_history_row *h = &out->v[i];
        h->id = strtoll(zdm_rows_get(r, i, 0), NULL, 10);
        h->plan_id = dup_or_null(zdm_rows_get(r, i, 1));
        h->at_ms = strtoll(zdm_rows_get(r, i, 2), NULL, 10);
        h->who = dup_or_null(zdm_rows_get(r, i, 3));
        h->pid = dup_or_null(zdm_rows_get(r, i, 4));
        h->action = dup_or_null(zdm_rows_get(r, i, 5));
        h->from_phase = dup_or_null(zdm_rows_get(r, i, 6));
        h->to_phase = dup_or_null(zdm_rows_get(r, i, 7));
        h->outcome = dup_or_null(zdm_rows_get(r, i, 8));
        h->detail = dup_or_null(zdm_rows_get(r, i, 9));
        h->reason = dup_or_null(zdm_rows_get(r, i, 10));
    }
    zdm_rows_free(r);
    return 0;
}

void zdm_state_history_list_free(zdm_history_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        zdm_history_row *h = &l->v[i];
        free(h->plan_id);
        free(h->who);
        free(h->pid);
        free(h->action);
        free(h->from_phase);
        free(h->to_phase);
        free(h->outcome);
        free(h->detail);
        free(h->reason);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

int zdm_state_history_mark_interrupted(zdm_db *db, const char *plan_id, zdm_err *err)
{
    /* Read first: almost always no run died, and on SQLite an UPDATE that
     * changes nothing still takes the write lock the application's
     * writers wait on.  No race: only the lock's holder (the caller)
     * writes "running" rows. */
    char sql[200];
    const char *t = zdm_state_table(db, "history");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE plan_id = $1 AND outcome = 'running'", t);
    const char *params[] = {plan_id};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 1, params, &v, err);
    int any = rc == 0 && v && strcmp(v, "0") != 0;
    free(v);
    if (!any)
        return rc;
    snprintf(sql, sizeof sql, "UPDATE %s SET outcome = 'interrupted' WHERE plan_id = $1 AND outcome = 'running'", t);
    return zdm_db_query(db, sql, 1, params, NULL, err);
}

int zdm_state_history_count_mine(zdm_db *db, const char *plan_id, const char *action, const char *to_phase,
                                 const char *outcome, int *n, zdm_err *err)
{
    *n = 0;
    char sql[300], pid[16];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s WHERE plan_id = $1 AND pid = $2 AND action = $3 "
             "AND to_phase = $4 AND outcome = $5", zdm_state_table(db, "history"));
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *params[] = {plan_id, pid, action, to_phase, outcome};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 5, params, &v, err);
    if (rc == 0 && v)
        *n = atoi(v);
    free(v);
    return rc;
}
