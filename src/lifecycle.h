/*
 * lifecycle.h -- the plan state machine:
 *
 *   pending -> expanded -> backfilled -> cut_over -> complete
 *        \________\____________\___________\--> rolled_back
 *
 * Owns: which phase runs next, the gates in front of it (lock, checksum,
 * requires, schedule, verify), the history row of every transition and
 * refusal, and calling the phase modules in phases/.
 */
#ifndef ZDM_LIFECYCLE_H
#define ZDM_LIFECYCLE_H

#include <stdio.h>

#include "db.h"
#include "hooks.h"
#include "plan.h"
#include "state.h"

typedef struct zdm_life_opts {
    int dry_run;
    int no_backup;
    FILE *out;      /* dry-run statements and results */
    const char *url; /* the database URL: the backfill worker opens its own connection */
    const zdm_project *project; /* zdm.toml defaults (hooks), may be NULL */
    int hooks_only;  /* advance: re-run the after_* hooks of the current phase */
    const char *allow; /* advance: lint rule ids allowed (--allow), comma-separated, or NULL */
} zdm_life_opts;

/* Moves the plan one phase forward. */
int zdm_life_advance(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o, zdm_err *err) ZDM_MUST_CHECK;
/* Undoes expand (before contract) or contract (when it has downs). */
int zdm_life_rollback(zdm_db *db, const zdm_plan *plan, const zdm_life_opts *o,
                      zdm_err *err) ZDM_MUST_CHECK;
/* Runs the plans whose contract is due (run-due): each is advanced under
 * its lock, so several hosts may run this at once. *advanced counts them. */
int zdm_life_run_due(zdm_db *db, const zdm_plan_set *set, const zdm_life_opts *o, int *advanced,
                     zdm_err *err) ZDM_MUST_CHECK;
/* Sets the earliest contract time of a plan (zdm schedule). */
int zdm_life_schedule(zdm_db *db, const zdm_plan *plan, int64_t at_ms, zdm_err *err) ZDM_MUST_CHECK;
/* Runs the after_backfill hooks once a worker (zdm backfill) finished the
 * plan's backfill itself. */
int zdm_life_after_backfill(zdm_db *db, const zdm_plan *plan, const zdm_life_opts *o,
                            zdm_err *err) ZDM_MUST_CHECK;
/* Records a phase without running anything. */
int zdm_life_stamp(zdm_db *db, const zdm_plan *plan, zdm_phase phase, zdm_err *err) ZDM_MUST_CHECK;
/* Earliest contract time of a cut-over plan (0 when due now or no rule). */
int64_t zdm_life_contract_due_ms(const zdm_plan *plan, const zdm_plan_state *st);
/* What an operator runs next, for status output. */
const char *zdm_life_next_action(const zdm_plan *plan, const zdm_plan_state *st, char *buf, size_t size);

#endif
