/*
 * rollback.c -- rollback's refusals and undo.
 *
 * Owns: what refuses a rollback (applied plans that require this one, a
 * cut_over plan without --force, a contract step without a down, SQLite's
 * DROP COLUMN dependencies of the downs) and the undo of the phases
 * between two phases, newest first, through the phase table.  The
 * lifecycle (zdm_life_rollback) locks, runs on_rollback, records.
 */
#include "phase.h"

#include <string.h>

#include "backfill.h"
#include "sqlite_deps.h"
#include "util.h"

/* The applied plans that require this one (rollback would pull the
 * ground from under them): a comma-separated list in *out. */
static int dependents(zdm_phase_ctx *c, zdm_buf *out, zdm_err *err)
{
    if (!c->set || (c->dry_run && !zdm_state_exists(c->db)))
        return 0;
    for (size_t i = 0; i < c->set->n; i++) {
        const zdm_plan *q = c->set->plans[i];
        int needs = 0;
        for (size_t k = 0; k < q->requires.n && !needs; k++)
            needs = strcmp(q->requires.v[k], c->plan->id) == 0;
        if (!needs)
            continue;
        zdm_plan_state st;
        int rc = zdm_state_get(c->db, q->id, &st, err);
        if (rc != 0)
            return rc;
        int applied = st.known && st.phase != ZDM_PENDING && st.phase != ZDM_ROLLED_BACK;
        if (st.known && !applied) {
            int n = 0;
            rc = zdm_state_steps_applied(c->db, q->id, &n, err);
            if (rc != 0)
                return rc;
            applied = n > 0;
        }
        if (applied)
            zdm_buf_printf(out, "%s%s (%s)", out->len ? ", " : "", q->id, zdm_phase_name(st.phase));
    }
    return 0;
}

/* Refusals of rollback, checked under the lock before anything runs. */
int zdm_rollback_gate(zdm_phase_ctx *c, zdm_phase from, zdm_phase to, zdm_err *err)
{
    const zdm_plan *plan = c->plan;
    zdm_buf deps = {0};
    int rc = dependents(c, &deps, err);
    if (rc == 0 && deps.len) {
        rc = zdm_err_set(err, ZDM_EXIT_REFUSED, "rollback of %s refused: applied plans require it: %s", plan->id,
                         deps.data);
        zdm_err_reason(err, "dependents_applied");
        zdm_err_detail(err, "roll those plans back first (newest first), then roll back %s", plan->id);
    }
    zdm_buf_free(&deps);
    if (rc != 0)
        return rc;
    /* Backfill workers of their own (zdm backfill) go on converting while
     * the rollback drops what they write and their ranges: one then
     * exited 0 saying other workers held the rest, another blamed the
     * plan's set expressions. */
    if (plan->backfill && (from == ZDM_EXPANDED || from == ZDM_PENDING) && !c->run->no_state) {
        zdm_rows *wr = NULL;
        rc = zdm_backfill_workers(c->db, plan->id, &wr, err);
        int n = rc == 0 ? zdm_rows_count(wr) : 0;
        if (n > 0) {
            zdm_buf who = {0};
            for (int i = 0; i < n && i < 5; i++)
                zdm_buf_printf(&who, "%s%s", i ? ", " : "", zdm_rows_get(wr, i, 0));
            zdm_err_set(err, ZDM_EXIT_REFUSED, "rollback of %s refused: %d backfill worker%s still convert%s its "
                        "rows (%s%s)", plan->id, n, n == 1 ? "" : "s", n == 1 ? "s" : "", who.data,
                        n > 5 ? ", ..." : "");
            zdm_err_reason(err, "workers_live");
            zdm_err_detail(err, "stop them first (SIGTERM: each stops after its batch in flight, which is kept), "
                                "then run \"zdm rollback %s\" again", plan->id);
            zdm_buf_free(&who);
            rc = ZDM_EXIT_REFUSED;
        }
        zdm_rows_free(wr);
        if (rc != 0)
            return rc;
    }
    if (from == ZDM_CUT_OVER && !c->force) {
        zdm_err_set(err, ZDM_EXIT_REFUSED,
                    "rollback of %s refused: it is cut_over, so traffic already runs on the new version",
                    plan->id);
        zdm_err_reason(err, "cut_over_needs_force");
        zdm_err_detail(err, "switch traffic back first, or run \"zdm rollback %s --force\": it runs the "
                            "on_rollback hooks (the switch back) first and undoes expand only if they pass",
                       plan->id);
        return ZDM_EXIT_REFUSED;
    }
    if (to == ZDM_CUT_OVER && plan->ncontract) {
        for (size_t i = 0; i < plan->ncontract; i++)
            if (!zdm_step_down(&plan->contract[i], zdm_db_kind_of(c->db)) || plan->contract[i].op) {
                zdm_err_set(err, ZDM_EXIT_REFUSED,
                            "plan %s is complete and contract step %d (%s:%d) has no \"down\": "
                            "the removed structure cannot be restored; rollback refused",
                            plan->id, plan->contract[i].index, plan->path, plan->contract[i].line);
                zdm_err_reason(err, "contract_no_down");
                zdm_err_detail(err, "restore from the backup taken before contract (zdm history %s shows "
                                    "its path), or write a new plan that adds the structure back",
                               plan->id);
                return ZDM_EXIT_REFUSED;
            }
    }
    /* SQLite: a down that drops a column must not stop half-way. */
    return zdm_sqdeps_gate(c->db, plan, to == ZDM_CUT_OVER ? ZDM_SQDEPS_ROLLBACK_CONTRACT : ZDM_SQDEPS_ROLLBACK_EXPAND,
                           c->run->no_state, err);
}

/* Undoes the phases between `to` and `from`, newest first, through the
 * phase table: complete -> cut_over undoes contract; anything else goes
 * back to rolled_back by undoing cutover, backfill and expand. */
int zdm_rollback_undo(zdm_phase_ctx *c, zdm_phase from, zdm_phase to, zdm_err *err)
{
    int rc = 0;
    for (size_t k = zdm_nphases; rc == 0 && k-- > 0;) {
        const zdm_phase_def *d = &zdm_phases[k];
        if (to == ZDM_CUT_OVER ? d->to != ZDM_COMPLETE : (d->to == ZDM_COMPLETE || d->from > from))
            continue;
        rc = c->guard(c->arg, err);
        if (rc == 0)
            rc = d->undo(c, err);
    }
    return rc;
}
