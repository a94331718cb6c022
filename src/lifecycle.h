/*
 * lifecycle.h -- the plan state machine:
 *
 *   pending -> expanded -> backfilled -> cut_over -> complete
 *        \________\____________\___________\--> rolled_back
 *
 * Owns: the phase table (each phase's hooks, gate, run, dry run and undo),
 * the one transition function through which every phase changes (lock,
 * phase read again under the lock, gate, run with a lock-and-signal guard
 * before every step, record), the history row of every transition and
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
    int force;       /* rollback: a cut_over plan too (--force) */
} zdm_life_opts;

/* Moves the plan one phase forward. */
int zdm_life_advance(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o, zdm_err *err) ZDM_MUST_CHECK;
/* backfilled -> cut_over, and nothing else: the phase is read again under
 * the plan's lock, and any other phase is refused (exit 3). */
int zdm_life_cutover(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o, zdm_err *err) ZDM_MUST_CHECK;
/* Undoes contract (complete -> cut_over, when its steps have downs), or
 * everything back to rolled_back: the applied steps of contract and expand
 * are undone and their records forgotten, the backfill's ranges and the
 * zdm set overrides cleared.  Refused (exit 3) while an applied plan of
 * `set` requires this one, and on a cut_over plan unless o->force: then
 * on_rollback runs first and nothing is undone if it fails. */
int zdm_life_rollback(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan, const zdm_life_opts *o,
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
/* The zdm set overrides of a plan in the database at url, as JSON text
 * (malloc'd; NULL when the plan has no backfill or the database has no
 * zdm state yet). */
int zdm_life_overrides(const char *url, const zdm_plan *plan, char **json, zdm_err *err) ZDM_MUST_CHECK;
/* What an operator runs next, for status output. */
const char *zdm_life_next_action(const zdm_plan *plan, const zdm_plan_state *st, char *buf, size_t size);

#endif
