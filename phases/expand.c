/*
 * expand.c -- the expand phase: pending -> expanded.
 *
 * Owns: expand's gate (lint, the required plans complete and locked, every
 * step runnable on this database, SQLite's DROP COLUMN dependencies, the
 * backfill key, preflight of every expression), its run (the plan's steps,
 * then the dual-write triggers; a failed expand undone unless on_failure =
 * "stop") and its undo (rollback).
 */
#include "phase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "dialect.h"
#include "lint.h"
#include "log.h"
#include "mutant.h"
#include "preflight.h"
#include "sqlite_deps.h"
#include "toml.h"
#include "util.h"

static int check_requires(zdm_phase_ctx *c, const zdm_plan_set *set, zdm_err *err)
{
    zdm_buf missing = {0};
    for (size_t i = 0; i < c->plan->requires.n; i++) {
        const char *req = c->plan->requires.v[i];
        zdm_plan_state st;
        int rc = c->dry_run && !zdm_state_exists(c->db)
                     ? (memset(&st, 0, sizeof st), 0)
                     : zdm_state_get(c->db, req, &st, err);
        if (rc != 0) {
            zdm_buf_free(&missing);
            return rc;
        }
        if (st.phase != ZDM_COMPLETE)
            zdm_buf_printf(&missing, "%s%s (%s)", missing.len ? ", " : "", req,
                           zdm_phase_name(st.known ? st.phase : ZDM_PENDING));
    }
    (void)set;
    if (!missing.len)
        return 0;
    zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s requires plans that are not complete: %s",
                c->plan->id, missing.data);
    zdm_err_reason(err, "requires_incomplete");
    zdm_err_detail(err, "advance those plans to complete first (zdm status shows where each stands)");
    zdm_buf_free(&missing);
    return ZDM_EXIT_REFUSED;
}

/* The indexes (not unique) on a column that rename_column or
 * change_type drops at contract go with it -- not carried over.  Said at
 * expand, while the operator can still add them on the new column with
 * add_index.  (Dialects that move plain ones themselves -- SQLite, sqlite_deps.c -- have no
 * lost_indexes_sql.)  Only a
 * warning: a catalog query that fails here changes nothing. */
static void warn_lost_indexes(zdm_phase_ctx *c)
{
    const zdm_plan *p = c->plan;
    const char *lost = zdm_db_dialect(c->db)->lost_indexes_sql;
    if (!lost)
        return;
    for (size_t i = 0; i < p->nexpand; i++) {
        const zdm_step *st = &p->expand[i];
        const char *op = st->op ? st->op : st->from_op;
        if (!op || (strcmp(op, "rename_column") != 0 && strcmp(op, "change_type") != 0) || !st->fields)
            continue;
        const toml_value *t = toml_get(st->fields, "table"), *col = toml_get(st->fields, "column");
        if (!t || !col || t->type != TOML_STRING || col->type != TOML_STRING)
            continue;
        const char *params[] = {t->u.str.ptr, col->u.str.ptr};
        zdm_rows *rows = NULL;
        zdm_err e = {0};
        if (zdm_db_query(c->db, lost, 2, params, &rows, &e) != 0) {
            zdm_err_clear(&e);
            continue;
        }
        for (int k = 0; k < zdm_rows_count(rows); k++)
            zdm_log(ZDM_LOG_WARN, p->id, "expand",
                    "index %s on %s.%s goes with the column at contract and is not carried over to the new "
                    "column: if queries need it there, add it with add_index (a later plan)",
                    zdm_rows_get(rows, k, 0), t->u.str.ptr, col->u.str.ptr);
        zdm_rows_free(rows);
        zdm_err_clear(&e);
    }
}

/* A backfill needs a key it can walk; refuse before expand changes
 * anything, when the table is already there to ask. */
static int gate_backfill_key(zdm_phase_ctx *c, zdm_err *err)
{
    if (!c->plan->backfill)
        return 0;
    zdm_strv key = {0};
    int rc = zdm_backfill_key(c->db, c->plan, &key, err);
    zdm_strv_free(&key);
    if (rc == ZDM_EXIT_REFUSED && (!strcmp(err->reason, ZDM_KEY_NO_TABLE) || !strcmp(err->reason, ZDM_KEY_NO_COLUMN))) {
        zdm_err_clear(err); /* expand creates it */
        return 0;
    }
    return rc;
}

/* Expand is atomic by default: when a step fails, the steps this run
 * applied are undone (their down, newest first), so the schema is as it
 * was and nothing half-made (a NOT VALID constraint the application's
 * writes trip on) stays live.  on_failure = "stop" keeps them instead.
 * err keeps the failure; its detail says what was done about it. */
static void undo_failed_expand(zdm_phase_ctx *c, zdm_run *run, const zdm_step *fresh, size_t n, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    if (p->expand_keep_partial) {
        zdm_err_detail(err, "on_failure = \"stop\": the steps applied so far stay (the plan stays pending); "
                            "fix the cause and run \"zdm advance %s\" to resume, or \"zdm rollback %s\"",
                       p->id, p->id);
        return;
    }
    zdm_err e;
    zdm_err_clear(&e);
    zdm_log(ZDM_LOG_WARN, p->id, "expand", "expand failed: undoing the steps this run applied");
    int rc = zdm_steps_undo(run, "expand", fresh, n, &e);
    if (rc == 0) {
        zdm_err_detail(err, "expand undone: the steps this run applied were rolled back with their down, the "
                            "schema is as before and the plan stays pending; fix the cause and run \"zdm advance "
                            "%s\" again", p->id);
    } else {
        zdm_log(ZDM_LOG_ERROR, p->id, "expand", "could not undo the failed expand: %s", e.msg);
        zdm_err_detail(err, "expand failed and could not be undone (%s); the steps applied so far stay: run "
                            "\"zdm rollback %s\" once that is fixed", e.msg, p->id);
    }
}

int zdm_expand_gate(zdm_phase_ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    int rc = zdm_lint_gate(p, c->set, ZDM_PHASE_EXPAND, c->allow, (int)zdm_db_kind_of(c->db), err);
    if (rc == 0 && !c->dry_run && !zdm_mutant("requires_unlocked"))
        rc = c->lock_requires(c->arg, err);
    if (rc == 0)
        rc = check_requires(c, c->set, err);
    if (rc == 0)
        rc = zdm_steps_check_runnable(c->run, "expand", p->expand, p->nexpand, err);
    /* A contract step this database cannot run would strand the plan
     * after cutover: refuse it now, before anything changes. */
    if (rc == 0)
        rc = zdm_steps_check_runnable(c->run, "contract", p->contract, p->ncontract, err);
    if (rc == 0) /* SQLite: what the DROP COLUMNs to come would trip on */
        rc = zdm_sqdeps_gate(c->db, p, ZDM_SQDEPS_EXPAND, c->run->no_state, err);
    if (rc == 0 && !c->dry_run)
        warn_lost_indexes(c);
    if (rc == 0)
        rc = gate_backfill_key(c, err);
    /* Every expression compiled by the database, before anything goes live. */
    if (rc == 0 && !c->dry_run)
        rc = zdm_preflight(c->db, p, err);
    if (rc == 0 && !c->dry_run) /* the other plans in flight on its table */
        rc = zdm_preflight_shared(c->db, p, c->set, 0, err);
    if (rc == 0 && !c->dry_run)
        zdm_barrier("expand_checked"); /* test builds: test_data_safety holds a run here */
    return rc;
}

int zdm_expand_run(zdm_phase_ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    int rc = 0;
    /* Record the file's checksum before the first step, so an edit made
     * while expand is half-done is caught (the lifecycle's open_ctx). */
    if (!c->dry_run)
        rc = c->record_phase(c->arg, ZDM_PENDING, err);
    /* The steps still to do before this run: a failed expand undoes
     * exactly those (unless on_failure = "stop"). */
    zdm_step *fresh = zdm_xcalloc(p->nexpand + 1, sizeof *fresh);
    size_t nfresh = 0;
    for (size_t i = 0; rc == 0 && !c->dry_run && i < p->nexpand; i++) {
        char st[16] = "";
        rc = zdm_state_step_status(c->db, p->id, "expand", p->expand[i].index, st, err);
        if (rc == 0 && strcmp(st, "done") != 0)
            fresh[nfresh++] = p->expand[i];
    }
    if (rc == 0)
        rc = zdm_steps_apply(c->run, "expand", p->expand, p->nexpand, err);
    if (rc == 0 && p->backfill && p->backfill->dual_write) {
        /* After the plan's steps: the trigger reads their new columns. */
        zdm_step *steps = NULL, dw;
        size_t nsteps = 0;
        rc = zdm_phase_steps(c, 0, &steps, &nsteps, &dw, err);
        if (rc == 0)
            rc = zdm_steps_apply(c->run, "expand", &steps[nsteps - 1], 1, err);
        else if (c->dry_run) {
            fprintf(c->out, "-- then the dual-write triggers (their SQL needs the table first: %s)\n", err->msg);
            zdm_err_clear(err);
            rc = 0;
        }
        free(steps);
        zdm_dw_step_free(&dw);
    }
    /* Never undo without the lock or after a signal: the next run resumes. */
    if (rc != 0 && rc != ZDM_EXIT_INTERRUPTED && !*c->lock_lost && !c->dry_run)
        undo_failed_expand(c, c->run, fresh, nfresh, err);
    free(fresh);
    return rc;
}

/* Expand's undo also undoes what a failed contract did first (it may have
 * removed the dual-write triggers that expand's own undo drops). */
int zdm_expand_undo(zdm_phase_ctx *c, zdm_err *err)
{
    int rc = zdm_phase_undo_steps(c, 1, err);
    if (rc == 0)
        rc = zdm_phase_undo_steps(c, 0, err);
    return rc;
}
