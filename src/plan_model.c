/*
 * plan_model.c -- the helpers of the plan model that need no loading (see
 * plan_model.h): validation messages, hook event names, throttle
 * defaults, plan lookup in a set, a step's SQL per dialect.
 */
#include "plan_model.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sqlscan.h"

/* ---- diagnostics ---- */

void zdm_diag_add(zdm_diags *d, const char *file, int line, int col, const char *fmt, ...)
{
    zdm_buf b = {0};
    if (line > 0)
        zdm_buf_printf(&b, "%s:%d:%d: ", file, line, col);
    else
        zdm_buf_printf(&b, "%s: ", file);
    va_list ap;
    va_start(ap, fmt);
    zdm_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    zdm_strv_push_owned(&d->msgs, zdm_buf_take(&b));
}

void zdm_diags_free(zdm_diags *d)
{
    zdm_strv_free(&d->msgs);
}

/* ---- hooks and throttle ---- */

static const char *const hook_names[ZDM_HOOK__COUNT] = {
    "before_expand", "after_expand", "before_backfill", "after_backfill", "cutover",
    "before_contract", "after_contract", "on_failure", "on_rollback"};

const char *zdm_hook_event_name(zdm_hook_event e)
{
    return (unsigned)e < ZDM_HOOK__COUNT ? hook_names[e] : "?";
}

void zdm_throttle_defaults(zdm_throttle *t)
{
    memset(t, 0, sizeof *t);
    t->batch_size = 1000;
    t->target_batch_ms = 200;
    t->min_batch_size = 10;
    t->max_batch_size = 50000;
    t->check_autovacuum = 1;
    t->check_wal_archive = 1;
    t->max_wal_archive_ready = 100;
    t->check_replica_lag = 1;
    t->max_latency_pct = 150;
    t->max_lock_ms = 100;
    t->max_duty_percent = 5;
    t->stall_after_ms = 5 * 60 * 1000;
}

/* ---- sets ---- */

zdm_plan *zdm_plan_set_find(const zdm_plan_set *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->plans[i]->id, id) == 0)
            return s->plans[i];
    return NULL;
}

/* ---- SQL classification ---- */

int zdm_step_in_transaction(const zdm_step *s, const char *sql)
{
    if (s->transaction >= 0)
        return s->transaction;
    for (int d = 0; d < 2; d++)
        if (sql && s->autocommit_for[d] && sql == s->sql_for[d])
            return 0;
    return !zdm_sql_needs_autocommit(sql);
}

const char *zdm_step_sql(const zdm_step *s, int dialect)
{
    const char *v = (dialect == 1 || dialect == 2) ? s->sql_for[dialect - 1] : NULL;
    return v ? v : s->sql;
}

const char *zdm_step_down(const zdm_step *s, int dialect)
{
    const char *v = (dialect == 1 || dialect == 2) ? s->down_for[dialect - 1] : NULL;
    return v ? v : s->down;
}
