/*
 * life_status.c -- what zdm status and zdm check show of one plan (see
 * lifecycle.h, "Commands' verbs").
 *
 * Owns: gathering a plan's status from zdm's tables -- its phase and
 * whether its file changed since, the next action (a half-done expand
 * named step by step, live backfill workers, the backfill's progress),
 * the contract's due time and whether it is overdue, the lock holder, the
 * backfill's progress, its live workers' combined rate and the ETA at it,
 * live workers and zdm set overrides.  The command
 * prints it (text, --json, prometheus).
 */
#include "lifecycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "state_ranges.h"
#include "util.h"

/* NEXT for an expand that stopped half-way: how many steps are done, and
 * which one failed when the last run failed (rather than counting a step
 * that failed, or was left "running", as done). */
static int half_done_expand(zdm_db *db, const zdm_plan *p, char *next, size_t size, zdm_err *err)
{
    int done = 0, first_open = -1;
    for (size_t i = 0; i < p->nexpand; i++) {
        char st[16] = "";
        int rc = zdm_state_step_status(db, p->id, "expand", p->expand[i].index, st, err);
        if (rc != 0)
            return rc;
        if (strcmp(st, "done") == 0)
            done++;
        else if (first_open < 0)
            first_open = p->expand[i].index;
    }
    char outcome[16] = "";
    char *detail = NULL;
    int rc = zdm_state_history_last(db, p->id, "advance", outcome, &detail, err);
    if (rc != 0)
        return rc;
    if (strcmp(outcome, "failed") == 0 && first_open >= 0) {
        char line[160];
        snprintf(line, sizeof line, "%s", detail ? detail : "");
        line[strcspn(line, "\n")] = '\0';
        snprintf(next, size, "expand step %d failed (%d of %zu done): %s -- fix it, then zdm advance %s resumes, "
                 "zdm rollback %s undoes", first_open, done, p->nexpand, line, p->id, p->id);
    } else {
        snprintf(next, size, "expand stopped after %d of %zu steps: zdm advance %s resumes it, "
                 "zdm rollback %s undoes it", done, p->nexpand, p->id, p->id);
    }
    free(detail);
    return 0;
}

int zdm_life_plan_changed(const zdm_plan *p, const zdm_plan_state *st)
{
    zdm_phase ph = st->known ? st->phase : ZDM_PENDING;
    return st->known && ph != ZDM_PENDING && ph != ZDM_ROLLED_BACK && strcmp(st->checksum, p->checksum) != 0;
}

int zdm_life_missing_files(zdm_db *db, const zdm_plan_set *set, zdm_strv *ids, zdm_strv *phases, zdm_err *err)
{
    if (!zdm_state_exists(db))
        return 0;
    zdm_strv all = {0}, ph = {0};
    int rc = zdm_state_plans_applied(db, &all, &ph, err);
    for (size_t i = 0; rc == 0 && i < all.n; i++)
        if (!zdm_plan_set_find(set, all.v[i])) {
            zdm_strv_push(ids, all.v[i]);
            zdm_strv_push(phases, ph.v[i]);
        }
    zdm_strv_free(&all);
    zdm_strv_free(&ph);
    return rc;
}

/* The live workers, as status shows them, and their rates together (from
 * the same reading, so the sum is the sum of the rates listed); a failure
 * to read them shows none (the rest of the status still stands). */
static void read_workers(zdm_db *db, const zdm_plan *p, zdm_life_status *o)
{
    zdm_rows *wr = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_backfill_workers(db, p->id, &wr, &e) != 0)
        return;
    int n = zdm_rows_count(wr);
    int64_t now = zdm_now_ms();
    o->worker = zdm_xcalloc(n ? (size_t)n : 1, sizeof *o->worker);
    o->nworkers = (size_t)n;
    for (int k = 0; k < n; k++) {
        zdm_life_worker *w = &o->worker[k];
        const char *thr = zdm_rows_get(wr, k, 4), *lb = zdm_rows_get(wr, k, 5);
        w->owner = zdm_xstrdup(zdm_rows_get(wr, k, 0));
        w->range = atoi(zdm_rows_get(wr, k, 1));
        w->range_rows_done = strtoll(zdm_rows_get(wr, k, 2), NULL, 10);
        w->heartbeat_ms = strtoll(zdm_rows_get(wr, k, 3), NULL, 10);
        w->throttle = thr ? zdm_xstrdup(thr) : NULL;
        w->last_batch_ms = lb ? strtoll(lb, NULL, 10) : 0;
        w->rate_known = zdm_state_worker_rate(wr, k, now, &w->rows_per_second);
    }
    double rate;
    if (zdm_state_workers_rate(wr, now, &rate))
        o->bf_rate = rate;
    zdm_rows_free(wr);
}

/* The ETA: the rows left (refined as ranges finish) at the live workers'
 * recent pace, rounded up.  Unknown without a pace, and while the
 * operator's pause holds the workers: until zdm resume there is no pace
 * to finish at.  A rate under one row a minute gives none either. */
static void eta(zdm_life_status *o)
{
    if (o->bf_paused)
        o->bf_rate = -1;
    if (o->bf_rate * 60.0 < 1.0)
        return;
    double s = (double)(o->bf_rows_left > 0 ? o->bf_rows_left : 0) / o->bf_rate;
    if (s < 1e12) {
        o->bf_eta_s = (int64_t)s;
        o->bf_eta_s += (double)o->bf_eta_s < s;
    }
}

/* The backfill part of the status, and what it adds to NEXT. */
static int backfill_status(zdm_db *db, const zdm_plan *p, zdm_life_status *o, zdm_err *err)
{
    zdm_backfill_progress bp;
    memset(&bp, 0, sizeof bp);
    int rc = zdm_backfill_progress_get(db, p->id, &bp, err);
    if (rc == 0)
        rc = zdm_backfill_overrides(db, p->id, &o->overrides, err);
    if (rc != 0)
        return rc;
    o->bf_started = bp.started;
    o->bf_rows_done = bp.rows_done;
    o->bf_total_est = bp.total_est;
    int64_t total = zdm_backfill_rows_total(&bp);
    o->bf_rows_left = total - bp.rows_done;
    o->bf_percent = zdm_backfill_percent(&bp, total);
    o->bf_ranges = bp.ranges;
    o->bf_ranges_done = bp.ranges_done;
    o->bf_workers = bp.workers;
    o->bf_paused = bp.paused;
    snprintf(o->bf_throttle, sizeof o->bf_throttle, "%s", bp.throttle);
    if (o->phase == ZDM_EXPANDED && bp.workers > 0 && !o->changed)
        snprintf(o->next, sizeof o->next, "wait: %d live backfill worker%s on it; the last one moves the plan to "
                 "backfilled", bp.workers, bp.workers == 1 ? " is" : "s are");
    if (o->phase == ZDM_EXPANDED && bp.started) {
        char extra[400];
        snprintf(extra, sizeof extra, " -- backfill %lld/%lld rows (%.1f%%), %d/%d ranges, %d worker%s%s%s%s",
                 (long long)bp.rows_done, (long long)total, o->bf_percent, bp.ranges_done, bp.ranges, bp.workers,
                 bp.workers == 1 ? "" : "s", bp.paused ? ", PAUSED" : "", bp.throttle[0] ? ", " : "", bp.throttle);
        size_t len = strlen(o->next);
        snprintf(o->next + len, sizeof o->next - len, "%s", extra);
    }
    if (bp.started) {
        rc = zdm_backfill_last_progress(db, p->id, &o->last_progress_ms, err);
        if (rc == 0)
            read_workers(db, p, o);
        eta(o);
    }
    return rc;
}

int zdm_life_status_of(zdm_db *db, int have_state, const zdm_plan *p, zdm_life_status *o, zdm_err *err)
{
    memset(o, 0, sizeof *o);
    o->bf_rate = -1;
    o->bf_eta_s = -1;
    int rc;
    if (have_state && (rc = zdm_state_get(db, p->id, &o->st, err)) != 0)
        return rc;
    const zdm_plan_state *st = &o->st;
    zdm_phase ph = o->phase = st->known ? st->phase : ZDM_PENDING;
    o->changed = zdm_life_plan_changed(p, st);
    zdm_life_next_action(p, st, o->next, sizeof o->next);
    /* a half-done expand (a step failed, or the run was killed) */
    int applied = 0;
    if (have_state && st->known && (ph == ZDM_PENDING || ph == ZDM_ROLLED_BACK) &&
        (rc = zdm_state_steps_applied(db, p->id, &applied, err)) != 0)
        return rc;
    if (applied && (rc = half_done_expand(db, p, o->next, sizeof o->next, err)) != 0)
        return rc;
    if (o->changed)
        snprintf(o->next, sizeof o->next, "plan file changed since %s: restore it or zdm stamp %s %s",
                 zdm_phase_name(ph), p->id, zdm_phase_name(ph));
    /* contract_due: whenever a due time exists (before cutover only a
     * schedule gives one); overdue: run-due (every 5 min) should have
     * contracted it by now -- 15 min of grace. */
    o->due_ms = st->known && ph != ZDM_COMPLETE ? zdm_life_contract_due_ms(p, st) : 0;
    int64_t now = zdm_now_ms();
    o->waiting = ph == ZDM_CUT_OVER && !o->due_ms;
    o->overdue = ph == ZDM_CUT_OVER && o->due_ms && now > o->due_ms + 15 * 60 * 1000;
    if (have_state && st->known &&
        (rc = zdm_state_lock_holder(db, p->id, o->holder, sizeof o->holder, err)) != 0)
        return rc;
    if (have_state && p->backfill)
        return backfill_status(db, p, o, err);
    return 0;
}

void zdm_life_status_free(zdm_life_status *o)
{
    for (size_t k = 0; k < o->nworkers; k++) {
        free(o->worker[k].owner);
        free(o->worker[k].throttle);
    }
    free(o->worker);
    free(o->overrides);
    memset(o, 0, sizeof *o);
}
