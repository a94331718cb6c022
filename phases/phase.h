/*
 * phase.h -- the phase interface: what every phase module (expand.c,
 * contract.c, rollback.c, and later backfill and cutover) receives, and
 * the step runner they share.
 *
 * A zdm_run borrows everything it points to; the lifecycle (lifecycle.c)
 * owns the connection, the plan set and the lock while a phase runs.
 */
#ifndef ZDM_PHASE_H
#define ZDM_PHASE_H

#include <stdio.h>

#include "db.h"
#include "err.h"
#include "plan.h"
#include "state.h"

typedef struct zdm_run {
    zdm_db *db;
    const zdm_plan *plan;
    int dry_run;        /* print statements to `out`, change nothing */
    FILE *out;          /* dry-run output */
    int no_backup;      /* sqlite: skip the pre-contract backup */
    int no_state;       /* dry run on a database without zdm's tables: all steps pending */
    char backup_path[1024]; /* set when a backup was taken */
    /* Called before each step that is about to run (not for skipped or
     * dry-run steps); non-zero stops the phase there with that status.
     * The lifecycle checks here that it still holds the plan's lock and
     * that no signal asked it to stop.  May be NULL. */
    int (*before_step)(void *arg, zdm_err *err);
    void *before_step_arg;
} zdm_run;

/* Runs the steps of one phase in order ("expand" or "contract"), skipping
 * steps already recorded as done, each under the lock-timeout and retry
 * discipline.  On error the failed step's changes are rolled back (or, for
 * a non-transactional step, left marked "running" so the next run cleans
 * up and retries it). */
int zdm_steps_apply(zdm_run *r, const char *phase, const zdm_step *steps, size_t n,
                    zdm_err *err) ZDM_MUST_CHECK;

/* Runs the `down` of every applied step of `phase`, newest first.  Refuses
 * before doing anything (ZDM_EXIT_REFUSED) when an applied step has no
 * down, naming it. */
int zdm_steps_undo(zdm_run *r, const char *phase, const zdm_step *steps, size_t n,
                   zdm_err *err) ZDM_MUST_CHECK;

/* Refuses (ZDM_EXIT_REFUSED) a phase whose steps zdm cannot run yet (an
 * operation without an implementation for this dialect). */
int zdm_steps_check_runnable(zdm_run *r, const char *phase, const zdm_step *steps, size_t n,
                             zdm_err *err) ZDM_MUST_CHECK;

/* SQLite: how long zdm's own writes (state, history, the plan's lock) may
 * wait for the write lock while a command works on plan p: the plan's
 * lock_timeout times its lock_retries, the budget a step gets, capped at
 * 10 minutes.  (Waiting for the write lock holds no reader off; a commit
 * gives its lock up after 25 ms and retries -- see db_sqlite.c.) */
static inline int zdm_run_sqlite_wait_ms(const zdm_plan *p)
{
    int64_t ms = p->lock_timeout_ms * (p->lock_retries > 1 ? p->lock_retries : 1);
    return ms <= 0 ? 5000 : ms > 600000 ? 600000 : (int)ms;
}

/* SQLite: online backup of the database file before contract (sqlite3
 * backup API); sets r->backup_path.  PostgreSQL: no-op (use a hook). */
int zdm_backup_sqlite(zdm_run *r, zdm_err *err) ZDM_MUST_CHECK;

#endif
