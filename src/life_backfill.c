/*
 * life_backfill.c -- the backfill commands' verbs (see lifecycle.h,
 * "Commands' verbs"): zdm backfill, pause, resume, set, and what plan
 * show says of a plan's dual-write triggers.
 *
 * Owns: the gates of a standalone backfill worker (the plan has a
 * [backfill], is expanded, its file unchanged since), running it on the
 * command's connection and the after_backfill hooks when it was the one
 * that finished, the operator's live controls (pause, zdm set), and the
 * --listen check made before anything is opened.  The worker itself is
 * phases/backfill.c.
 */
#include "lifecycle.h"

#include <string.h>

#include "backfill.h"
#include "httpstat.h"
#include "log.h"

int zdm_life_check_listen(const char *listen, zdm_err *err)
{
    return listen ? zdm_httpstat_check_listen(listen, err) : 0;
}

int zdm_life_backfill_gate(zdm_db *db, const zdm_plan *plan, zdm_life_backfill_result *res, zdm_phase *phase,
                           zdm_err *err)
{
    *res = ZDM_LIFE_BF_WORKER_DONE;
    zdm_plan_state st;
    int rc = zdm_state_init(db, err);
    if (rc == 0)
        rc = zdm_state_get(db, plan->id, &st, err);
    if (rc != 0)
        return rc;
    zdm_phase ph = *phase = st.known ? st.phase : ZDM_PENDING;
    if (!plan->backfill)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s has no [backfill]", plan->id);
    if (ph == ZDM_BACKFILLED || ph == ZDM_CUT_OVER || ph == ZDM_COMPLETE) {
        *res = ZDM_LIFE_BF_ALREADY_DONE;
        return 0;
    }
    if (ph != ZDM_EXPANDED) {
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is %s; the backfill runs after expand", plan->id,
                    zdm_phase_name(ph));
        zdm_err_detail(err, "run \"zdm advance %s\" first: it adds the new columns and the dual-write triggers",
                       plan->id);
        return ZDM_EXIT_REFUSED;
    }
    if (strcmp(st.checksum, plan->checksum) != 0) {
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s changed after it was expanded (%s)", plan->id, plan->path);
        zdm_err_detail(err, "restore the file as it was, or accept it with \"zdm stamp %s expanded\"", plan->id);
        return ZDM_EXIT_REFUSED;
    }
    return 0;
}

int zdm_life_backfill(zdm_db *db, const zdm_plan *plan, const zdm_life_opts *o, const char *listen,
                      zdm_life_backfill_result *res, zdm_phase *phase, zdm_err *err)
{
    int rc = zdm_life_backfill_gate(db, plan, res, phase, err);
    if (rc != 0 || *res == ZDM_LIFE_BF_ALREADY_DONE)
        return rc;
    zdm_plan_state st;
    /* One of several worker processes (--workers) logs lines: N progress
     * bars on one terminal would draw over each other. */
    zdm_backfill_opts bo = {0, zdm_log_worker()[0] ? 0 : -1, listen, o->url, 0, NULL, NULL};
    rc = zdm_backfill_run(db, plan, &bo, err);
    if (rc == 0 && bo.finished_plan) /* the worker that finished the backfill runs after_backfill */
        rc = zdm_life_after_backfill(db, plan, o, err);
    if (rc == 0)
        rc = zdm_state_get(db, plan->id, &st, err);
    if (rc == 0 && st.phase == ZDM_BACKFILLED)
        *res = ZDM_LIFE_BF_BACKFILLED;
    return rc;
}

int zdm_life_backfill_pause(zdm_db *db, const zdm_plan *plan, int paused, zdm_err *err)
{
    int rc = zdm_state_init(db, err);
    if (rc == 0 && !plan->backfill)
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s has no [backfill] to %s", plan->id,
                         paused ? "pause" : "resume");
    if (rc == 0)
        rc = zdm_backfill_set_paused(db, plan, paused, err);
    return rc;
}

int zdm_life_backfill_set(zdm_db *db, const zdm_plan *plan, const char *const *kv, int n, int reset,
                          zdm_err *err)
{
    int rc = zdm_state_init(db, err);
    if (rc == 0 && !plan->backfill)
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s has no [backfill] to tune", plan->id);
    if (rc == 0)
        rc = zdm_backfill_set_many(db, plan, kv, n, reset, err);
    return rc;
}

const char *zdm_life_dual_write_mode(const zdm_backfill *b)
{
    return zdm_dw_mode(b);
}

void zdm_life_dual_write_describe(const zdm_backfill *b, zdm_strv *lines)
{
    zdm_dw_describe(b, lines);
}
