/*
 * contract.c -- the contract phase: cut_over -> complete.
 *
 * Owns: contract's gate (lint, the backfill finished, the soak time after
 * cutover passed, the plan's verify query true, every step runnable,
 * SQLite's DROP COLUMN dependencies, other plans' triggers), when contract
 * is due, its run (SQLite's backup first, then the dual-write triggers
 * dropped with the first step that drops a column) and its undo.
 */
#include "phase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "lint.h"
#include "mutant.h"
#include "preflight.h"
#include "sqlite_deps.h"
#include "util.h"

int64_t zdm_contract_due_ms(const zdm_plan *plan, const zdm_plan_state *st)
{
    int64_t due = 0;
    if (plan->not_before_ms >= 0 && st->cutover_at_ms)
        due = st->cutover_at_ms + plan->not_before_ms;
    if (st->contract_after_ms > due)
        due = st->contract_after_ms;
    return due;
}

static int truthy(const char *v)
{
    return v && (strcmp(v, "t") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static int gate_contract(zdm_phase_ctx *c, zdm_err *err)
{
    if (c->plan->backfill && !c->dry_run) {
        zdm_backfill_progress bp;
        int rc = zdm_backfill_progress_get(c->db, c->plan->id, &bp, err);
        if (rc != 0)
            return rc;
        if (bp.started && (bp.ranges_done < bp.ranges || bp.workers > 0)) {
            zdm_err_set(err, ZDM_EXIT_REFUSED,
                        "contract of %s refused: the backfill is not finished (%d of %d ranges done, %d worker%s active)",
                        c->plan->id, bp.ranges_done, bp.ranges, bp.workers, bp.workers == 1 ? "" : "s");
            zdm_err_reason(err, "backfill_unfinished");
            zdm_err_detail(err, "let \"zdm backfill %s\" finish first", c->plan->id);
            return ZDM_EXIT_REFUSED;
        }
    }
    int64_t due = zdm_contract_due_ms(c->plan, c->st);
    int64_t now = zdm_now_ms();
    if (due > now) {
        char ts[40], d[32];
        zdm_err_set(err, ZDM_EXIT_REFUSED, "contract of %s is not due until %s (in %s)",
                    c->plan->id, zdm_format_time(due, ts, sizeof ts),
                    zdm_format_duration(due - now, d, sizeof d));
        zdm_err_reason(err, "not_due");
        zdm_err_detail(err, "the soak time after cutover has not passed; run again after that time "
                            "(\"zdm run-due\" from a timer does it for you)");
        return ZDM_EXIT_REFUSED;
    }
    if (c->plan->verify) {
        char *v = NULL;
        int rc = zdm_db_query_value(c->db, c->plan->verify, 0, NULL, &v, err);
        if (rc != 0) {
            zdm_err_prefix(err, "contract verify query of %s failed: ", c->plan->id);
            return rc;
        }
        int ok = truthy(v);
        if (!ok) {
            zdm_err_set(err, ZDM_EXIT_REFUSED,
                        "contract of %s refused: the verify query returned %s, not true",
                        c->plan->id, v ? v : "NULL");
            zdm_err_reason(err, "verify_false");
            zdm_err_detail(err, "the data is not ready for contract (verify = \"%s\"); "
                                "fix the rows it checks, then run again", c->plan->verify);
        }
        free(v);
        if (!ok)
            return ZDM_EXIT_REFUSED;
    }
    return 0;
}

int zdm_contract_gate(zdm_phase_ctx *c, zdm_err *err)
{
    int rc = zdm_lint_gate(c->plan, c->set, ZDM_PHASE_CONTRACT, c->allow, (int)zdm_db_kind_of(c->db), err);
    if (rc == 0)
        rc = gate_contract(c, err);
    if (rc == 0)
        rc = zdm_steps_check_runnable(c->run, "contract", c->plan->contract, c->plan->ncontract, err);
    if (rc == 0)
        rc = zdm_sqdeps_gate(c->db, c->plan, ZDM_SQDEPS_CONTRACT, c->run->no_state, err);
    /* the plans sharing its dual-write table that are not in flight: one
     * may be expanding now, its triggers about to use a column this
     * contract drops, each check finding the other clear (as two expands
     * did); their locks are held until contract ends */
    if (rc == 0 && !c->dry_run)
        rc = c->lock_requires(c->arg, err);
    if (rc == 0 && !c->dry_run) /* a column another plan's triggers use */
        rc = zdm_preflight_shared(c->db, c->plan, c->set, 1, err);
    if (rc == 0 && !c->dry_run)
        zdm_barrier("contract_checked"); /* test builds: test_data_safety holds a run here */
    return rc;
}

int zdm_contract_run(zdm_phase_ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    int rc = 0;
    if (p->ncontract) /* nothing to lose when contract removes nothing */
        rc = zdm_backup_sqlite(c->run, err);
    if (rc == 0 && c->run->backup_path[0])
        snprintf(c->detail, c->detail_size, "backup: %s", c->run->backup_path);
    zdm_step *steps = NULL, dw;
    size_t nsteps = 0;
    memset(&dw, 0, sizeof dw);
    if (rc == 0)
        rc = zdm_phase_steps(c, 1, &steps, &nsteps, &dw, err);
    if (rc == 0)
        rc = zdm_steps_apply(c->run, "contract", steps, nsteps, err);
    free(steps);
    zdm_dw_step_free(&dw);
    return rc;
}

int zdm_contract_undo(zdm_phase_ctx *c, zdm_err *err)
{
    return zdm_phase_undo_steps(c, 1, err);
}
