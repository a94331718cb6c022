/*
 * phase.h -- the phase interface: the phase table (phase.c), what every
 * phase module (expand.c, backfill_phase.c, cutover.c, contract.c,
 * rollback.c) receives, and the step runner they share (steps.c).
 *
 * A zdm_run and a zdm_phase_ctx borrow everything they point to; the
 * lifecycle (src/lifecycle.c) owns the connection, the plan set, the
 * lock, history and hooks while a phase runs, and lends the phases what
 * only it can do (the lock/signal guard, recording a phase, taking the
 * locks of required plans) as callbacks.
 */
#ifndef ZDM_PHASE_H
#define ZDM_PHASE_H

#include <stdio.h>

#include "db.h"
#include "err.h"
#include "plan.h"
#include "plan_model.h"
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

/* What a phase's gate, run, dry run and undo receive from the lifecycle,
 * which fills it under the plan's lock (transition(), rollback). */
typedef struct zdm_phase_ctx {
    zdm_db *db;
    const zdm_plan_set *set;  /* may be NULL: no requires/dependents known */
    const zdm_plan *plan;
    zdm_plan_state *st;       /* the plan's state, read under the lock */
    zdm_run *run;             /* what the phase's steps run with */
    int dry_run;
    FILE *out;
    const char *url;          /* the backfill worker opens its own connection */
    const char *allow;        /* lint rule ids allowed (--allow), or NULL */
    int force;                /* rollback: a cut_over plan too */
    char *detail;             /* the transition's history detail (contract: the backup) */
    size_t detail_size;
    zdm_strv *owned;          /* SQL built for the phase's steps, freed by the lifecycle */
    const int *lock_lost;     /* the guard found the lock gone: undo nothing */
    /* The lifecycle's guard: the run still holds the plan's lock and no
     * signal asked it to stop (also run->before_step). */
    int (*guard)(void *arg, zdm_err *err);
    /* Records the plan's phase (and the file's checksum) in state. */
    int (*record_phase)(void *arg, zdm_phase to, zdm_err *err);
    /* Takes the lock of every plan this one requires, and of the plans
     * with dual-write on its table that are not in flight (expand and
     * contract gates), held until the lifecycle releases the plan's own. */
    int (*lock_requires)(void *arg, zdm_err *err);
    void *arg;
} zdm_phase_ctx;

/* One row of the phase table: the phase it starts from and the one it
 * records, its hooks, a gate (refuses before anything changes), a run, a
 * dry run, and the undo that rollback calls.  The lifecycle's transition()
 * is the only code that runs them and records a new phase. */
typedef struct zdm_phase_def {
    const char *name;        /* log tag: expand, backfill, cutover, contract */
    zdm_phase from, to;
    int before;              /* zdm_hook_event before anything changes (a failure refuses) */
    int after;               /* zdm_hook_event after the phase is recorded, -1 for none */
    int (*gate)(zdm_phase_ctx *c, zdm_err *err);
    int (*run)(zdm_phase_ctx *c, zdm_err *err);
    int (*dry_run)(zdm_phase_ctx *c, zdm_err *err);
    int (*undo)(zdm_phase_ctx *c, zdm_err *err);
} zdm_phase_def;

/* The phase table (phase.c), in order: expand, backfill, cutover, contract. */
extern const zdm_phase_def zdm_phases[];
extern const size_t zdm_nphases;
/* The phase that starts from `from` (a rolled back plan expands again). */
const zdm_phase_def *zdm_phase_def_from(zdm_phase from);
/* The phase that records `to`. */
const zdm_phase_def *zdm_phase_def_to(zdm_phase to);

/* expand.c */
int zdm_expand_gate(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_expand_run(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_expand_undo(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
/* backfill_phase.c */
int zdm_backfill_phase_run(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_backfill_phase_dry(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_backfill_phase_undo(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
/* cutover.c */
int zdm_cutover_run(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_cutover_dry(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_cutover_undo(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
/* contract.c */
int zdm_contract_gate(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_contract_run(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
int zdm_contract_undo(zdm_phase_ctx *c, zdm_err *err) ZDM_MUST_CHECK;
/* When contract is due for a cut-over plan: cutover + not_before, or a
 * later contract_after a failed run-due attempt set; 0 when at once. */
int64_t zdm_contract_due_ms(const zdm_plan *plan, const zdm_plan_state *st);
/* rollback.c: the refusals of a rollback from -> to, checked under the
 * lock before anything runs; and the undo of the phases between them,
 * newest first, through the phase table. */
int zdm_rollback_gate(zdm_phase_ctx *c, zdm_phase from, zdm_phase to, zdm_err *err) ZDM_MUST_CHECK;
int zdm_rollback_undo(zdm_phase_ctx *c, zdm_phase from, zdm_phase to, zdm_err *err) ZDM_MUST_CHECK;

/* phase.c: the steps of a phase as run: the plan's, plus the dual-write
 * trigger step zdm adds (last in expand, first in contract).  *list is
 * malloc'd (the steps are shallow copies; SQL built for them goes to
 * c->owned); *dw must be freed with zdm_dw_step_free. */
int zdm_phase_steps(zdm_phase_ctx *c, int contract, zdm_step **list, size_t *n, zdm_step *dw,
                    zdm_err *err) ZDM_MUST_CHECK;
/* Undoes the applied steps of one phase ("expand" or "contract", with the
 * dual-write step zdm adds) and then forgets their records, so a later
 * advance runs them all again. */
int zdm_phase_undo_steps(zdm_phase_ctx *c, int contract, zdm_err *err) ZDM_MUST_CHECK;

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
