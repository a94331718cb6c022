/*
 * backfill_phase.c -- the backfill phase: expanded -> backfilled.
 *
 * Owns: the lifecycle side of backfill -- its run (the worker of
 * backfill.c in the foreground, under the lifecycle's guard), its dry run
 * (the batch statement's shape) and its undo (the ranges forgotten).  The
 * worker itself (batches, ranges, throttle) is backfill*.c.
 */
#include "phase.h"

#include <stdio.h>

#include "backfill.h"
#include "util.h"

int zdm_backfill_phase_run(zdm_phase_ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    if (!p->backfill)
        return 0;
    zdm_backfill_opts bo = {1, -1, NULL, c->url, 0, c->guard, c->arg};
    int rc = zdm_backfill_run(c->db, p, &bo, err);
    zdm_db_cancel_arm(c->db); /* the worker armed its own connection */
    if (rc == 0) {
        zdm_plan_state st;
        rc = zdm_state_get(c->db, p->id, &st, err);
        if (rc == 0 && st.phase != ZDM_BACKFILLED)
            rc = zdm_err_set(err, ZDM_EXIT_FAIL, "backfill of %s ended but the plan is still %s",
                             p->id, zdm_phase_name(st.phase));
    }
    return rc;
}

int zdm_backfill_phase_dry(zdm_phase_ctx *c, zdm_err *err)
{
    (void)err;
    const zdm_plan *p = c->plan;
    if (!p->backfill) {
        fprintf(c->out, "-- no [backfill]: the plan passes backfilled at once\n");
        return 0;
    }
    fprintf(c->out, "-- backfill of %s in keyset batches of %lld rows (adaptive), each:\n"
                    "UPDATE %s SET ", p->id, (long long)p->backfill->throttle.batch_size,
            p->backfill->table);
    for (size_t i = 0; i < p->backfill->nset; i++)
        fprintf(c->out, "%s%s = (%s)", i ? ", " : "", p->backfill->set[i].column, p->backfill->set[i].expr);
    fprintf(c->out, "\n  WHERE key > cursor AND key <= batch_end%s%s%s;\n",
            p->backfill->where ? " AND (" : "", p->backfill->where ? p->backfill->where : "",
            p->backfill->where ? ")" : "");
    return 0;
}

int zdm_backfill_phase_undo(zdm_phase_ctx *c, zdm_err *err)
{
    if (c->dry_run || !c->plan->backfill)
        return 0;
    return zdm_backfill_reset(c->db, c->plan->id, err);
}
