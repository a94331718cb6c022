/*
 * lifecycle.c -- the plan state machine (see lifecycle.h).
 *
 * Every entry point takes the plan's lock first, writes a history row
 * saying what it is about to do, runs the phase, and then records the new
 * phase and the outcome.  A refusal is written to history too, so the
 * record shows who tried what and why it was refused.
 *
 * Owns: transition() (the one function that runs a phase and records the
 * next one), the plan's lock and the locks of required plans, history
 * rows, hooks, rollback's sequence and run-due's decision.  What each
 * phase does (gate, run, dry run, undo) is in phases/ (expand.c,
 * backfill_phase.c, cutover.c, contract.c, rollback.c), reached through
 * the phase table (phases/phase.c) with a zdm_phase_ctx.
 */
#include "lifecycle.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backfill.h"
#include "log.h"
#include "mutant.h"
#include "phase.h"
#include "preflight.h"
#include "sig.h"
#include "util.h"

typedef struct ctx {
    zdm_db *db;
    const zdm_plan_set *set; /* may be NULL: no requires/dependents known */
    const zdm_plan *plan;
    const zdm_life_opts *o;
    int locked;
    int lock_lost;           /* guard() found the lock gone: run nothing more */
    zdm_plan_state st;
    const zdm_err *failure;  /* what on_failure hooks are told (ZDM_ERROR, ZDM_EXIT_CODE) */
    int64_t refused_hid;     /* the history row refuse() wrote, 0 when none */
    zdm_run run;             /* what the phase's steps run with */
    char detail[1200];       /* the transition's history detail (contract: the backup) */
    zdm_strv owned;     /* SQL built for the phase's steps (zdm_phase_steps) */
    zdm_phase_ctx pc;        /* what the phases (phases/) receive: run_init */
    const struct due_policy *due; /* run-due: its decision, taken again under the lock */
    int due_skip;            /* run-due: not due after all (another host tried meanwhile) */
    int due_parked;          /* run-due: failed meanwhile: refused, no attempt counted */
    zdm_strv req_locked;     /* required plans whose lock this run holds (expand) */
} ctx;

/* run-due's failure policy (zdm.toml [contract]). */
typedef struct due_policy {
    int max_attempts;
    int64_t retry_after_ms;
} due_policy;

enum { DUE_GO, DUE_WAIT, DUE_PARKED };

/* Whether run-due contracts this cut-over plan now, from the state st
 * says.  DUE_WAIT logs why unless quiet; DUE_PARKED fills e. */
static int due_decision(const zdm_plan *p, const zdm_plan_state *st, const due_policy *pol, int quiet,
                        zdm_err *e);

static int refuse(ctx *c, const char *action, zdm_phase to, zdm_err *err)
{
    /* err already says why; remember it. */
    if (!c->o->dry_run && zdm_state_exists(c->db)) {
        zdm_err e2;
        zdm_err_clear(&e2);
        zdm_history_entry h = {c->plan->id, action, zdm_phase_name(c->st.phase),
                               zdm_phase_name(to), "refused", err->msg};
        if (zdm_state_history_add_now_or_later(c->db, &h, err->reason, &c->refused_hid, &e2) != 0)
            zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "could not record the refusal in history: %s", e2.msg);
    }
    return err->code;
}

static void ctx_init(ctx *c, zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o)
{
    memset(c, 0, sizeof *c);
    c->db = db;
    c->set = set;
    c->plan = plan;
    c->o = o;
    /* SQLite: zdm's own writes (the lock row, state, history) wait for the
     * write lock under the plan's lock_timeout/lock_retries, not a fixed
     * 5 s. */
    if (zdm_db_kind_of(db) == ZDM_DB_SQLITE) {
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_set_timeouts(db, zdm_run_sqlite_wait_ms(plan), 0, &e) != 0) /* sqlite: cannot fail */
            zdm_log(ZDM_LOG_WARN, plan->id, NULL, "%s", e.msg);
    }
}

/* The phase a command refused at the gates was to enter, for its
 * history row: advance's next phase, rollback's rolled_back; stamp and
 * schedule stay (the row read "backfilled -> backfilled" for an advance
 * refused on a changed file). */
static zdm_phase gate_to(const ctx *c, const char *action)
{
    zdm_phase from = c->st.known ? c->st.phase : ZDM_PENDING;
    if (strcmp(action, "rollback") == 0)
        return ZDM_ROLLED_BACK;
    const zdm_phase_def *d = strcmp(action, "advance") == 0 ? zdm_phase_def_from(from) : NULL;
    return d ? d->to : from;
}

/* Lock, state, checksum: the gates every changing command passes. */
static int open_ctx(ctx *c, const char *action, int check_sum, zdm_err *err)
{
    if (c->o->dry_run) {
        if (!zdm_state_exists(c->db))
            return 0; /* never seen: everything pending, and we must not create tables */
        return zdm_state_get(c->db, c->plan->id, &c->st, err);
    }
    int rc = zdm_state_init(c->db, err);
    if (rc != 0)
        return rc;
    char holder[512];
    int got = 0;
    zdm_plan_state early = c->st;
    if (zdm_mutant("phase_unlocked") && zdm_state_get(c->db, c->plan->id, &early, err) != 0)
        return err->code;
    zdm_barrier("before_lock"); /* test builds: test_races holds runs here */
    rc = zdm_state_lock(c->db, c->plan->id, &got, holder, sizeof holder, err);
    if (rc != 0)
        return rc;
    if (!got) {
        rc = zdm_state_get(c->db, c->plan->id, &c->st, err);
        if (rc != 0)
            return rc;
        /* on PostgreSQL the session may outlive its zdm (kill -9 during
         * a long statement): with that zdm gone, it is the session to wait
         * for (zdm unlock would change nothing) */
        char live[600] = "";
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_kind_of(c->db) == ZDM_DB_PG && zdm_state_lock_holder_gone(c->db, c->plan->id) &&
            zdm_state_lock_live(c->db, c->plan->id, live, sizeof live, &e) != 0)
            live[0] = '\0';
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is locked by %s%s%s%s", c->plan->id, holder,
                    live[0] ? "; the lock is held by " : "", live, live[0] ? ", still running" : "");
        zdm_err_reason(err, "lock_held");
        if (live[0])
            zdm_err_detail(err, "wait for that session to finish; if it must stop, end it with SELECT "
                                "pg_terminate_backend(PID), then run the command again");
        else
            zdm_err_detail(err, "wait for that run to finish; if its process is gone for good, "
                                "run \"zdm unlock %s\"", c->plan->id);
        return refuse(c, action, gate_to(c, action), err);
    }
    c->locked = 1;
    zdm_db_cancel_arm(c->db); /* a second signal cancels the running statement */
    /* Only a holder of this lock writes "running" history rows, so any left
     * now belong to a run that died (kill -9, power loss): say so. */
    rc = zdm_state_history_mark_interrupted(c->db, c->plan->id, err);
    if (rc != 0)
        return rc;
    rc = zdm_state_get(c->db, c->plan->id, &c->st, err);
    if (rc != 0)
        return rc;
    if (zdm_mutant("phase_unlocked")) /* trusts the phase it read before the lock */
        c->st = early;
    /* A changed file is refused once anything of it was applied: after
     * expand, and also half-way through expand (steps recorded while the
     * plan is still pending), where an edited done step would be skipped. */
    int applied = c->st.known && c->st.phase != ZDM_PENDING && c->st.phase != ZDM_ROLLED_BACK;
    if (check_sum && c->st.known && !applied && strcmp(c->st.checksum, c->plan->checksum) != 0) {
        int n = 0;
        rc = zdm_state_steps_applied(c->db, c->plan->id, &n, err);
        if (rc != 0)
            return rc;
        applied = n > 0;
    }
    if (check_sum && applied && strcmp(c->st.checksum, c->plan->checksum) != 0) {
        zdm_err_set(err, ZDM_EXIT_REFUSED,
                    "plan %s changed after it was applied: %s has checksum %.12s, the database "
                    "recorded %.12s when it entered %s",
                    c->plan->id, c->plan->path, c->plan->checksum, c->st.checksum,
                    zdm_phase_name(c->st.phase));
        zdm_err_reason(err, "plan_changed");
        zdm_err_detail(err, "restore the file as it was (git checkout), or, if the database already "
                            "matches the new file, accept it with \"zdm stamp %s %s\"",
                       c->plan->id, zdm_phase_name(c->st.phase));
        return refuse(c, action, gate_to(c, action), err);
    }
    return 0;
}

static void close_ctx(ctx *c)
{
    if (c->locked)
        zdm_db_cancel_disarm();
    if (c->locked)
        zdm_state_unlock(c->db, c->plan->id);
    c->locked = 0;
    for (size_t i = 0; i < c->req_locked.n; i++)
        zdm_state_unlock(c->db, c->req_locked.v[i]);
    zdm_strv_free(&c->req_locked);
    zdm_strv_free(&c->owned);
}

static int64_t begin_history(ctx *c, const char *action, zdm_phase to)
{
    int64_t id = 0;
    zdm_err e;
    zdm_err_clear(&e);
    zdm_history_entry h = {c->plan->id, action, zdm_phase_name(c->st.phase), zdm_phase_name(to),
                           "running", NULL};
    if (zdm_state_history_add(c->db, &h, &id, &e) != 0)
        zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "could not write history: %s", e.msg);
    return id;
}

static void end_history(ctx *c, int64_t id, int rc, const zdm_err *err, const char *detail)
{
    if (!id)
        return;
    zdm_err e;
    zdm_err_clear(&e);
    const char *outcome = rc == 0                      ? "ok"
                          : rc == ZDM_EXIT_REFUSED     ? "refused"
                          : rc == ZDM_EXIT_INTERRUPTED ? "interrupted"
                                                       : "failed";
    /* Once more on failure: a row left "running" stays so until the next
     * run that takes the lock. */
    if (zdm_state_history_update(c->db, id, outcome, rc == 0 ? detail : err->msg, &e) != 0 &&
        (zdm_err_clear(&e), zdm_state_history_update(c->db, id, outcome, rc == 0 ? detail : err->msg, &e)) != 0)
        zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "could not update history row %lld: %s",
                (long long)id, e.msg);
}

static int set_phase(ctx *c, zdm_phase to, zdm_err *err)
{
    int rc = zdm_state_set_phase(c->db, c->plan->id, to, c->plan->checksum, err);
    if (rc == 0) {
        c->st.phase = to;
        c->st.known = 1;
    }
    return rc;
}

static int guard(void *arg, zdm_err *err);

/* The transition's end: the lock still held, the new phase and its history
 * row's outcome, in one commit.  Two commits left a window where a crash
 * (kill -9) recorded the phase but left the row "running", which the next
 * run to take the lock marked "interrupted": a finished transition shown
 * as not finished.  On SQLite the transaction holds the write lock, so zdm
 * unlock cannot take the lock row between the check and the commit. */
static int record_done(ctx *c, const char *action, zdm_phase to, int64_t hid, zdm_err *err)
{
    int own = !zdm_db_in_transaction(c->db);
    int rc = own ? zdm_db_begin(c->db, err) : 0;
    if (rc == 0)
        rc = guard(c, err);
    if (rc == 0)
        rc = zdm_state_set_phase(c->db, c->plan->id, to, c->plan->checksum, err);
    if (rc == 0 && hid)
        rc = zdm_state_history_update(c->db, hid, "ok", c->detail[0] ? c->detail : NULL, err);
    /* its "running" row could not be written when the run began (a
     * failed insert is only a warning there): the transition still gets
     * its row, in this commit */
    zdm_history_entry h = {c->plan->id, action, zdm_phase_name(c->st.phase), zdm_phase_name(to), "ok",
                           c->detail[0] ? c->detail : NULL};
    if (rc == 0 && !hid)
        rc = zdm_state_history_add(c->db, &h, NULL, err);
    if (rc == 0 && own)
        rc = zdm_db_commit(c->db, err);
    else if (rc != 0 && own)
        zdm_db_rollback(c->db);
    if (rc == 0) {
        c->st.phase = to;
        c->st.known = 1;
    }
    return rc;
}

/* Runs the hooks of one event and writes a history row with their output.
 * from/to is the transition the hooks belong to, whatever the event:
 * ZDM_FROM_PHASE/ZDM_TO_PHASE, and the history row.  ZDM_PHASE and
 * ZDM_NEXT_PHASE say from -> to too, except for hooks that run once the
 * plan is in `to` (after_*, on_rollback of a plain rollback), which are
 * told to -> to, as they always were.
 * Returns 0 or ZDM_EXIT_FAIL (err names the failing hook). */
static int run_hooks(ctx *c, zdm_hook_event ev, zdm_phase from, zdm_phase to, int64_t hid,
                     zdm_err *err)
{
    int after = ev == ZDM_HOOK_AFTER_EXPAND || ev == ZDM_HOOK_AFTER_BACKFILL || ev == ZDM_HOOK_AFTER_CONTRACT ||
                (ev == ZDM_HOOK_ON_ROLLBACK && c->st.phase == to);
    zdm_phase phase = after ? to : from, next = to;
    const zdm_plan *p = c->plan;
    if (!zdm_hooks_count(c->o->project, p, ev))
        return 0;
    if (c->o->dry_run) {
        fprintf(c->o->out, "-- %s hooks run here\n", zdm_hook_event_name(ev));
        return 0;
    }
    char *url = zdm_url_without_password(zdm_db_safe_url(c->db));
    zdm_hook_env env = {zdm_phase_name(phase), zdm_phase_name(next), zdm_db_dialect_name(c->db), url,
                        (long long)hid, NULL, 0, zdm_phase_name(from), zdm_phase_name(to)};
    if (ev == ZDM_HOOK_ON_FAILURE && c->failure) {
        env.error = c->failure->msg;
        env.exit_code = c->failure->code;
    }
    zdm_buf tail = {0};
    int ran = 0;
    int rc = zdm_hooks_run(c->o->project, p, ev, &env, &ran, &tail, err);
    free(url);
    char action[64];
    snprintf(action, sizeof action, "hook %s", zdm_hook_event_name(ev));
    zdm_history_entry h = {p->id, action, zdm_phase_name(from), zdm_phase_name(to),
                           rc == 0 ? "ok" : rc == ZDM_EXIT_INTERRUPTED ? "interrupted" : "failed", tail.data};
    zdm_err e2;
    zdm_err_clear(&e2);
    if (zdm_state_history_add(c->db, &h, NULL, &e2) != 0)
        zdm_log(ZDM_LOG_WARN, p->id, NULL, "could not record the hook run in history: %s", e2.msg);
    zdm_buf_free(&tail);
    return rc;
}

/* The on_failure hooks of a transition that failed or was refused, told
 * why (ZDM_ERROR, ZDM_EXIT_CODE) and pointed at its history row, which
 * is closed by then.  err is left as it was. */
static void on_failure(ctx *c, zdm_phase from, zdm_phase to, int64_t hid, zdm_err *err)
{
    if (c->o->dry_run || err->code == ZDM_EXIT_INTERRUPTED)
        return;
    zdm_err keep = *err, e2;
    zdm_err_clear(&e2);
    c->failure = &keep;
    if (run_hooks(c, ZDM_HOOK_ON_FAILURE, from, to, hid, &e2) != 0)
        zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "on_failure hook failed too: %s", e2.msg);
    c->failure = NULL;
    *err = keep;
}

/* Expand holds the lock of every plan it requires until it is recorded:
 * otherwise a rollback of one of them could run between the check below
 * and the steps (the plan is not applied yet, so rollback sees no
 * dependent) and leave this plan expanded on top of a plan that is no
 * longer complete. */
static int lock_requires(ctx *c, zdm_err *err)
{
    for (size_t i = 0; i < c->plan->requires.n; i++) {
        const char *req = c->plan->requires.v[i];
        char holder[512];
        int got = 0;
        int rc = zdm_state_lock(c->db, req, &got, holder, sizeof holder, err);
        if (rc != 0)
            return rc;
        if (!got) {
            zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s requires %s, which is locked by %s", c->plan->id, req,
                        holder);
            zdm_err_reason(err, "required_locked");
            zdm_err_detail(err, "wait for that run to finish, then run \"zdm advance %s\" again", c->plan->id);
            return ZDM_EXIT_REFUSED;
        }
        zdm_strv_push(&c->req_locked, req);
    }
    return 0;
}

/* The plans whose dual-write triggers would share the table with this
 * plan's, and that are not in flight (zdm_preflight_neighbours): each may
 * be expanding right now, and the two checks (zdm_preflight_shared) would
 * each find the other clear -- two plans writing one column both went
 * live; a contract dropped a column the other's new triggers read.  Their
 * locks are held through this expand or contract: a run of theirs waits
 * for it, or this one is refused while theirs runs. */
static int lock_neighbours(ctx *c, zdm_err *err)
{
    zdm_strv nb = {0};
    zdm_preflight_neighbours(c->plan, c->set, zdm_db_dialect(c->db)->kind, &nb);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nb.n; i++) {
        int held = 0;
        for (size_t k = 0; k < c->req_locked.n; k++)
            held |= strcmp(c->req_locked.v[k], nb.v[i]) == 0;
        if (held)
            continue;
        zdm_plan_state st;
        rc = zdm_state_get(c->db, nb.v[i], &st, err);
        if (rc != 0 || (st.known && st.phase >= ZDM_EXPANDED && st.phase <= ZDM_COMPLETE))
            continue; /* in flight: the check sees it; complete: its triggers are gone */
        char holder[512], why[300];
        int got = 0;
        snprintf(why, sizeof why, "for the %s of plan %s (%s)",
                 c->st.known && c->st.phase == ZDM_CUT_OVER ? "contract" : "expand", c->plan->id,
                 c->plan->backfill && c->plan->backfill->dual_write ? "dual-write on the same table"
                                                                    : "it drops columns of the table");
        rc = zdm_state_lock_for(c->db, nb.v[i], why, &got, holder, sizeof holder, err);
        if (rc != 0)
            break;
        if (!got) {
            const zdm_plan *q = zdm_plan_set_find(c->set, nb.v[i]);
            zdm_err_set(err, ZDM_EXIT_REFUSED,
                        "plan %s changes table %s, where plan %s has dual-write triggers, and plan %s is locked "
                        "by %s (it may be expanding right now)", c->plan->id,
                        q ? q->backfill->table : "(its table)", nb.v[i], nb.v[i], holder);
            zdm_err_reason(err, "neighbour_locked");
            zdm_err_detail(err, "wait for that run to finish, then run the command again (the two plans are "
                                "checked against each other then); nothing was changed");
            rc = ZDM_EXIT_REFUSED;
            break;
        }
        zdm_strv_push(&c->req_locked, nb.v[i]);
    }
    zdm_strv_free(&nb);
    return rc;
}

int64_t zdm_life_contract_due_ms(const zdm_plan *plan, const zdm_plan_state *st)
{
    return zdm_contract_due_ms(plan, st);
}

/* The phases' callbacks (zdm_phase_ctx): what only the lifecycle does. */
static int record_phase(void *arg, zdm_phase to, zdm_err *err)
{
    return set_phase(arg, to, err);
}

static int lock_requires_cb(void *arg, zdm_err *err)
{
    int rc = lock_requires(arg, err);
    if (rc == 0 && !zdm_mutant("neighbours_unlocked"))
        rc = lock_neighbours(arg, err);
    return rc;
}

/* Before each step, and before recording the phase: the run still holds
 * the plan's lock (a PostgreSQL restart takes the advisory lock with the
 * session; zdm unlock takes an SQLite lock row away) and no signal asked
 * it to stop.  A run that lost its lock never goes on. */
static int guard(void *arg, zdm_err *err)
{
    ctx *c = arg;
    if (c->o->dry_run)
        return 0;
    if (zdm_sig_caught())
        return zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "plan %s: stopped by signal %d before the next step",
                           c->plan->id, zdm_sig_first());
    int held = 0;
    zdm_err e;
    zdm_err_clear(&e);
    int rc = zdm_state_lock_held(c->db, c->plan->id, &held, &e);
    if (rc == 0 && held)
        return 0;
    zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s: this run no longer holds the plan's lock (%s); stopped before "
                "the next step", c->plan->id,
                rc != 0 ? e.msg : "the database session that held it is gone, e.g. the server restarted, "
                                  "or zdm unlock removed it");
    zdm_err_detail(err, "another run may hold the plan now: check \"zdm status %s\" and \"zdm history %s\", "
                        "then run the command again", c->plan->id, c->plan->id);
    c->lock_lost = 1;
    return ZDM_EXIT_FAIL;
}

static void run_init(ctx *c)
{
    zdm_run *r = &c->run;
    memset(r, 0, sizeof *r);
    r->db = c->db;
    r->plan = c->plan;
    r->dry_run = c->o->dry_run;
    r->out = c->o->out;
    r->no_backup = c->o->no_backup;
    r->no_state = c->o->dry_run && !zdm_state_exists(c->db);
    r->before_step = guard;
    r->before_step_arg = c;
    zdm_phase_ctx *pc = &c->pc;
    memset(pc, 0, sizeof *pc);
    pc->db = c->db;
    pc->set = c->set;
    pc->plan = c->plan;
    pc->st = &c->st;
    pc->run = r;
    pc->dry_run = c->o->dry_run;
    pc->out = c->o->out;
    pc->url = c->o->url;
    pc->allow = c->o->allow;
    pc->force = c->o->force;
    pc->detail = c->detail;
    pc->detail_size = sizeof c->detail;
    pc->owned = &c->owned;
    pc->lock_lost = &c->lock_lost;
    pc->guard = guard;
    pc->record_phase = record_phase;
    pc->lock_requires = lock_requires_cb;
    pc->arg = c;
}

static int hooks_only(ctx *c, zdm_phase from, zdm_err *err)
{
    const zdm_phase_def *d = zdm_phase_def_to(from);
    if (!d || d->after < 0) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s is %s: there are no after_* hooks to re-run", c->plan->id,
                    zdm_phase_name(from));
        return ZDM_EXIT_USAGE;
    }
    zdm_hook_event ev = (zdm_hook_event)d->after;
    int rc = run_hooks(c, ev, d->from, from, 0, err);
    if (rc == 0)
        fprintf(c->o->out, "%s: %zu %s hook%s ran\n", c->plan->id, zdm_hooks_count(c->o->project, c->plan, ev),
                zdm_hook_event_name(ev), zdm_hooks_count(c->o->project, c->plan, ev) == 1 ? "" : "s");
    return rc;
}

/*
 * The one transition function: every phase change by advance, cutover or
 * run-due comes through here.  Under the plan's lock (open_ctx) it reads
 * the phase again, checks that it is `want_from` when the caller asked for
 * one transition only (cutover: backfilled -> cut_over, never anything
 * else), gates, runs the before hooks and the phase with a guard before
 * every step, guards once more, records the phase and the history row,
 * and runs the after hooks.  The caller releases the lock (close_ctx).
 */
static int transition(ctx *c, const char *action, int want_from, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    zdm_phase from = c->st.known ? c->st.phase : ZDM_PENDING;
    c->st.phase = from;
    run_init(c);
    if (c->o->hooks_only)
        return hooks_only(c, from, err);
    if (want_from >= 0 && from != (zdm_phase)want_from) {
        const zdm_phase_def *w = zdm_phase_def_from((zdm_phase)want_from);
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is %s; %s follows %s", p->id, zdm_phase_name(from),
                    w ? w->name : action, zdm_phase_name((zdm_phase)want_from));
        zdm_err_reason(err, "wrong_phase");
        if (from > (zdm_phase)want_from && from != ZDM_ROLLED_BACK)
            zdm_err_detail(err, "the %s already happened (zdm history %s shows when)", w ? w->name : action, p->id);
        else
            zdm_err_detail(err, "advance the plan to %s first", zdm_phase_name((zdm_phase)want_from));
        return c->o->dry_run ? err->code : refuse(c, action, w ? w->to : from, err);
    }
    /* run-due decided from state read before the lock; another host may
     * have tried (and failed) since.  Decide again from the state read
     * under the lock, so one backoff window sees one attempt. */
    if (c->due && from == ZDM_CUT_OVER) {
        int dd = due_decision(p, &c->st, c->due, 1, err);
        if (dd == DUE_WAIT) {
            c->due_skip = 1;
            return 0;
        }
        if (dd == DUE_PARKED) {
            c->due_parked = 1;
            return err->code;
        }
    }
    if (from == ZDM_COMPLETE) {
        fprintf(c->o->out, "plan %s is already complete; nothing to do\n", p->id);
        return 0;
    }
    const zdm_phase_def *d = zdm_phase_def_from(from);
    if (!d)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s: no phase starts from %s", p->id, zdm_phase_name(from));
    zdm_phase to = d->to;
    if (c->o->dry_run)
        fprintf(c->o->out, "-- zdm %s %s --dry-run on %s: %s -> %s\n\n", action, p->id,
                zdm_db_dialect_name(c->db), zdm_phase_name(from), zdm_phase_name(to));

    /* Gates first: a refusal changes nothing. */
    int rc = d->gate ? d->gate(&c->pc, err) : 0;
    if (rc != 0) {
        if (c->o->dry_run || rc != ZDM_EXIT_REFUSED)
            return rc;
        rc = refuse(c, action, to, err);
        on_failure(c, from, to, c->refused_hid, err);
        return rc;
    }

    int64_t hid = c->o->dry_run ? 0 : begin_history(c, action, to);
    int64_t t0 = zdm_mono_ms();
    if (!c->o->dry_run)
        zdm_log(ZDM_LOG_INFO, p->id, d->name, "starting: %s -> %s", zdm_phase_name(from), zdm_phase_name(to));

    /* A failing before_* (or cutover) hook refuses the transition: it runs
     * before anything changes. */
    rc = run_hooks(c, (zdm_hook_event)d->before, from, to, hid, err);
    if (rc != 0) {
        if (rc != ZDM_EXIT_INTERRUPTED) {
            err->code = rc = ZDM_EXIT_REFUSED;
            zdm_err_detail(err, "nothing was changed; fix what the hook checks (or the hook), then run "
                                "\"zdm %s %s\" again", action, p->id);
        } else {
            zdm_err_detail(err, "nothing was recorded; run \"zdm %s %s\" again", action, p->id);
        }
        end_history(c, hid, rc, err, NULL);
        on_failure(c, from, to, hid, err);
        return rc;
    }
    if (c->o->dry_run) {
        rc = d->dry_run(&c->pc, err);
        if (rc == 0 && d->after >= 0)
            rc = run_hooks(c, (zdm_hook_event)d->after, from, to, 0, err);
        return rc;
    }
    rc = guard(c, err);
    if (rc == 0)
        rc = d->run(&c->pc, err);
    if (rc == 0)
        rc = record_done(c, action, to, hid, err);
    char dur[32];
    if (rc == 0) {
        zdm_log(ZDM_LOG_INFO, p->id, d->name, "done: %s in %s", zdm_phase_name(to),
                zdm_format_duration(zdm_mono_ms() - t0, dur, sizeof dur));
        fprintf(c->o->out, "%s: %s -> %s\n", p->id, zdm_phase_name(from), zdm_phase_name(to));
        /* After hooks: the phase is done whatever they say; a failure is
         * reported (exit 1) and they can be re-run with --hooks-only.  They
         * are told which transition (its history row). */
        if (d->after >= 0) {
            rc = run_hooks(c, (zdm_hook_event)d->after, from, to, hid, err);
            if (rc != 0 && rc != ZDM_EXIT_INTERRUPTED)
                zdm_err_detail(err, "the plan is %s all the same; re-run the hooks with "
                                    "\"zdm advance %s --hooks-only\"", zdm_phase_name(to), p->id);
        }
        return rc;
    }
    zdm_log(ZDM_LOG_ERROR, p->id, d->name, "failed after %s: %s",
            zdm_format_duration(zdm_mono_ms() - t0, dur, sizeof dur), err->msg);
    if (!err->detail[0])
        zdm_err_detail(err, "the plan stays %s and every completed step is recorded; fix the cause "
                            "and run \"zdm advance %s\" again to resume, or \"zdm rollback %s\"",
                       zdm_phase_name(from), p->id, p->id);
    /* The row first: the hook is pointed at it, closed.  A run that lost
     * its lock runs nothing more, hooks included. */
    end_history(c, hid, rc, err, c->detail[0] ? c->detail : NULL);
    if (!c->lock_lost)
        on_failure(c, from, to, hid, err);
    return rc;
}

int zdm_life_advance(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o, zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, set, plan, o);
    int rc = open_ctx(&c, "advance", 1, err);
    if (rc == 0)
        rc = transition(&c, "advance", -1, err);
    close_ctx(&c);
    return rc;
}

int zdm_life_cutover(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o, zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, set, plan, o);
    /* Recorded as "advance", as before: history's action names are kept. */
    int rc = open_ctx(&c, "advance", 1, err);
    if (rc == 0)
        rc = transition(&c, "advance", ZDM_BACKFILLED, err);
    close_ctx(&c);
    return rc;
}

int zdm_life_rollback(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan, const zdm_life_opts *o,
                      zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, set, plan, o);
    int rc = open_ctx(&c, "rollback", 1, err);
    if (rc != 0) {
        close_ctx(&c);
        return rc;
    }
    run_init(&c);
    zdm_phase from = c.st.known ? c.st.phase : ZDM_PENDING;
    if (from == ZDM_PENDING || from == ZDM_ROLLED_BACK) {
        /* An expand that failed part way (a validation that found bad
         * rows) leaves the plan pending with the steps it finished recorded
         * as done, and its message says to run zdm rollback: those steps
         * are undone like any others. */
        int partial = 0;
        if (!c.run.no_state && (rc = zdm_state_steps_applied(db, plan->id, &partial, err)) != 0) {
            close_ctx(&c);
            return rc;
        }
        if (!partial) {
            fprintf(o->out, "plan %s is %s; nothing to roll back\n", plan->id, zdm_phase_name(from));
            close_ctx(&c);
            return 0;
        }
    }
    zdm_phase to = from == ZDM_COMPLETE ? ZDM_CUT_OVER : ZDM_ROLLED_BACK;
    rc = zdm_rollback_gate(&c.pc, from, to, err);
    if (rc != 0) {
        rc = o->dry_run || rc != ZDM_EXIT_REFUSED ? rc : refuse(&c, "rollback", to, err);
        close_ctx(&c);
        return rc;
    }
    if (o->dry_run)
        fprintf(o->out, "-- zdm rollback %s --dry-run on %s: %s -> %s\n\n", plan->id,
                zdm_db_dialect_name(db), zdm_phase_name(from), zdm_phase_name(to));
    int64_t hid = o->dry_run ? 0 : begin_history(&c, "rollback", to);
    /* After cutover the switch back comes first: undoing expand under live
     * traffic on the new version would break it. */
    int switched_back = from == ZDM_CUT_OVER;
    if (switched_back) {
        rc = run_hooks(&c, ZDM_HOOK_ON_ROLLBACK, from, to, hid, err);
        if (rc != 0 && rc != ZDM_EXIT_INTERRUPTED)
            zdm_err_detail(err, "nothing was undone: traffic may still be on the new version; fix the "
                                "switch back, then run \"zdm rollback %s --force\" again", plan->id);
        else if (rc == ZDM_EXIT_INTERRUPTED)
            zdm_err_detail(err, "nothing was undone and the plan is still cut_over, but the switch back was "
                                "stopped part-way: check where traffic goes, then run \"zdm rollback %s --force\" "
                                "again", plan->id);
    }
    if (rc == 0)
        rc = zdm_rollback_undo(&c.pc, from, to, err);
    if (rc == 0 && !o->dry_run && plan->backfill)
        rc = zdm_backfill_settings_reset(db, plan->id, err); /* overrides were for this run of the plan */
    if (!o->dry_run) {
        if (rc == 0)
            rc = record_done(&c, "rollback", to, hid, err);
        if (rc == 0) {
            fprintf(o->out, "%s: %s -> %s\n", plan->id, zdm_phase_name(from), zdm_phase_name(to));
            if (to == ZDM_CUT_OVER)
                fprintf(o->out, "contract undone; run \"zdm rollback %s\" again to undo expand, with --force: "
                                "the plan is cut_over, so on_rollback switches traffic back first\n", plan->id);
            if (!switched_back)
                rc = run_hooks(&c, ZDM_HOOK_ON_ROLLBACK, from, to, hid, err);
            hid = 0;
        } else if (!err->detail[0] && rc != ZDM_EXIT_REFUSED) {
            zdm_err_detail(err, "the steps undone so far are recorded; fix the cause and run "
                                "\"zdm rollback %s\" again to continue", plan->id);
        }
        end_history(&c, hid, rc, err, NULL);
    }
    close_ctx(&c);
    return rc;
}

int zdm_life_stamp(zdm_db *db, const zdm_plan *plan, zdm_phase phase, zdm_err *err)
{
    zdm_life_opts o = {0, 0, stdout, NULL, NULL, 0, NULL, 0};
    ctx c;
    ctx_init(&c, db, NULL, plan, &o);
    int rc = open_ctx(&c, "stamp", 0, err);
    if (rc == 0) {
        zdm_phase from = c.st.known ? c.st.phase : ZDM_PENDING;
        char detail[200];
        snprintf(detail, sizeof detail, "stamped by hand; checksum %.12s", plan->checksum);
        zdm_history_entry h = {plan->id, "stamp", zdm_phase_name(from), zdm_phase_name(phase), "ok", detail};
        rc = zdm_db_begin(db, err);
        if (rc == 0)
            rc = set_phase(&c, phase, err);
        /* Step records follow the stamp: stamped expanded means expand is done. */
        for (size_t i = 0; rc == 0 && i < plan->nexpand; i++)
            rc = zdm_state_step_mark(db, plan->id, "expand", plan->expand[i].index,
                                     phase == ZDM_PENDING || phase == ZDM_ROLLED_BACK ? "undone" : "done", err);
        for (size_t i = 0; rc == 0 && i < plan->ncontract; i++)
            rc = zdm_state_step_mark(db, plan->id, "contract", plan->contract[i].index,
                                     phase == ZDM_COMPLETE ? "done" : "undone", err);
        /* Stamped back before the backfill: its ranges start over. */
        if (rc == 0 && plan->backfill && (phase <= ZDM_EXPANDED || phase == ZDM_ROLLED_BACK))
            rc = zdm_backfill_reset(db, plan->id, err);
        if (rc == 0 && phase >= ZDM_CUT_OVER && phase != ZDM_ROLLED_BACK && !c.st.cutover_at_ms)
            rc = zdm_state_set_cutover(db, plan->id, zdm_now_ms(), err);
        if (rc == 0)
            rc = zdm_state_history_add(db, &h, NULL, err);
        if (rc == 0)
            rc = zdm_db_commit(db, err);
        else
            zdm_db_rollback(db);
        if (rc == 0)
            zdm_log(ZDM_LOG_INFO, plan->id, NULL, "stamped %s (was %s); nothing was run",
                    zdm_phase_name(phase), zdm_phase_name(from));
    }
    close_ctx(&c);
    return rc;
}

const char *zdm_life_next_action(const zdm_plan *plan, const zdm_plan_state *st, char *buf, size_t size)
{
    zdm_phase ph = st->known ? st->phase : ZDM_PENDING;
    switch (ph) {
    case ZDM_PENDING:
    case ZDM_ROLLED_BACK:
        snprintf(buf, size, "zdm advance %s (expand)", plan->id);
        break;
    case ZDM_EXPANDED:
        snprintf(buf, size, "zdm advance %s (%s)", plan->id, plan->backfill ? "backfill" : "no backfill: passes at once");
        break;
    case ZDM_BACKFILLED:
        snprintf(buf, size, "zdm advance %s (cutover)", plan->id);
        break;
    case ZDM_CUT_OVER: {
        int64_t due = zdm_life_contract_due_ms(plan, st);
        char ts[40];
        if (st->failed_ms)
            snprintf(buf, size, "contract FAILED %d times (%s): fix the cause, then zdm retry %s", st->attempts,
                     st->last_error, plan->id);
        else if (!due)
            snprintf(buf, size, "waiting for a schedule: zdm schedule %s --after DURATION (run-due contracts "
                     "only plans with a due time), or zdm advance %s to contract now", plan->id, plan->id);
        else if (due > zdm_now_ms())
            snprintf(buf, size, "zdm advance %s (contract) after %s", plan->id,
                     zdm_format_time(due, ts, sizeof ts));
        else
            snprintf(buf, size, "zdm advance %s (contract)", plan->id);
        break;
    }
    case ZDM_COMPLETE:
    default:
        snprintf(buf, size, "none");
        break;
    }
    return buf;
}

int zdm_life_schedule(zdm_db *db, const zdm_plan *plan, int64_t at_ms, zdm_err *err)
{
    zdm_life_opts o = {0, 0, stdout, NULL, NULL, 0, NULL, 0};
    ctx c;
    ctx_init(&c, db, NULL, plan, &o);
    int rc = open_ctx(&c, "schedule", 1, err);
    if (rc == 0) {
        zdm_phase ph = c.st.known ? c.st.phase : ZDM_PENDING;
        if (ph == ZDM_COMPLETE) {
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is already complete; nothing to schedule", plan->id);
        } else {
            if (!c.st.known)
                rc = set_phase(&c, ZDM_PENDING, err);
            if (rc == 0)
                rc = zdm_state_set_contract_after(db, plan->id, at_ms, err);
            /* The row says what is now in force and what it replaced:
             * the requested time alone does not tell when contract runs. */
            int64_t prev = c.st.contract_after_ms;
            zdm_plan_state now_st = c.st;
            now_st.contract_after_ms = at_ms;
            int64_t due = zdm_life_contract_due_ms(plan, &now_st);
            char ts[40], pts[40], dts[40], detail[300];
            snprintf(detail, sizeof detail, "%s%s (was %s); contract due: %s",
                     at_ms ? "contract not before " : "schedule cancelled",
                     at_ms ? zdm_format_time(at_ms, ts, sizeof ts) : "",
                     prev ? zdm_format_time(prev, pts, sizeof pts) : "not scheduled",
                     due ? zdm_format_time(due, dts, sizeof dts)
                         : (ph != ZDM_CUT_OVER && plan->not_before_ms >= 0 ? "counted from cutover (not_before)"
                                                                            : "none, waiting for a schedule"));
            zdm_history_entry h = {plan->id, "schedule", zdm_phase_name(ph), NULL, "ok", detail};
            if (rc == 0)
                rc = zdm_state_history_add(db, &h, NULL, err);
        }
    }
    close_ctx(&c);
    return rc;
}

static int due_decision(const zdm_plan *p, const zdm_plan_state *st, const due_policy *pol, int quiet,
                        zdm_err *e)
{
    int64_t due = zdm_life_contract_due_ms(p, st);
    if (!due) {
        /* No soak time anywhere (plan, zdm.toml, zdm schedule): run-due
         * never picks the moment on its own. */
        if (!quiet)
            zdm_log(ZDM_LOG_INFO, p->id, "contract",
                    "waiting for a schedule: no not_before and no zdm schedule; not contracted");
        return DUE_WAIT;
    }
    if (due > zdm_now_ms()) {
        char ts[40];
        if (!quiet)
            zdm_log(ZDM_LOG_INFO, p->id, "contract", "not due until %s", zdm_format_time(due, ts, sizeof ts));
        return DUE_WAIT;
    }
    if (st->failed_ms) {
        /* Parked: a person must look.  Exit 3 every run until then, but
         * no new history row each time: status and history say it. */
        zdm_err_set(e, ZDM_EXIT_REFUSED, "contract of %s failed %d time%s and is not tried again (last: %s)",
                    p->id, st->attempts, st->attempts == 1 ? "" : "s", st->last_error);
        zdm_err_detail(e, "fix the cause, then \"zdm retry %s\" (or \"zdm rollback %s\")", p->id, p->id);
        return DUE_PARKED;
    }
    if (st->attempts > 0) {
        int shift = st->attempts - 1 < 20 ? st->attempts - 1 : 20;
        int64_t next = st->last_attempt_ms + (pol->retry_after_ms << shift);
        if (zdm_now_ms() < next) {
            char ts[40];
            if (!quiet)
                zdm_log(ZDM_LOG_INFO, p->id, "contract", "attempt %d of %d failed (%s); next try after %s",
                        st->attempts, pol->max_attempts, st->last_error, zdm_format_time(next, ts, sizeof ts));
            return DUE_WAIT;
        }
    }
    return DUE_GO;
}

int zdm_life_run_due(zdm_db *db, const zdm_plan_set *set, const zdm_life_opts *o, int *advanced,
                     zdm_err *err)
{
    *advanced = 0;
    int rc = zdm_state_init(db, err);
    int failures = 0;
    zdm_err first;
    zdm_err_clear(&first);
    /* The failure policy (zdm.toml [contract]): after a failed or refused
     * contract, wait retry_after, then twice that, ...; after
     * max_attempts, the plan is failed and waits for "zdm retry".  So a
     * broken contract does not run its before_contract backup every 5
     * minutes forever. */
    const zdm_contract_defaults *cd = o->project ? &o->project->contract : NULL;
    due_policy pol;
    pol.max_attempts = cd && cd->max_attempts > 0 ? cd->max_attempts : 3;
    pol.retry_after_ms = cd && cd->retry_after_ms > 0 ? cd->retry_after_ms : 10 * 60 * 1000;
    int max_attempts = pol.max_attempts;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const zdm_plan *p = set->plans[i];
        zdm_plan_state st;
        rc = zdm_state_get(db, p->id, &st, err);
        if (rc != 0)
            break;
        if (!st.known || st.phase != ZDM_CUT_OVER)
            continue;
        zdm_err e;
        zdm_err_clear(&e);
        /* A first look without the lock, so plans not due take no lock
         * (and leave no "locked" refusal); transition() decides again
         * under the lock. */
        int dd = due_decision(p, &st, &pol, 0, &e);
        if (dd == DUE_WAIT)
            continue;
        if (dd == DUE_PARKED) {
            zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", e.msg);
            if (!failures++)
                first = e;
            continue;
        }
        /* cut_over -> complete only: the phase read above may be stale by
         * the time the lock is ours (rolled back meanwhile). */
        ctx c;
        ctx_init(&c, db, set, p, o);
        c.due = &pol;
        int r = open_ctx(&c, "advance", 1, &e);
        /* the one refusal open_ctx returns before holding the lock */
        int lock_busy = r == ZDM_EXIT_REFUSED && !c.locked;
        if (r == 0 && c.st.phase == ZDM_COMPLETE)
            fprintf(o->out, "plan %s is already complete; nothing to do\n", p->id);
        else if (r == 0)
            r = transition(&c, "advance", ZDM_CUT_OVER, &e);
        /* the lock of a plan on the same table, held by that plan's expand
         * now: a wait like the plan's own lock, not the contract's fault */
        if (r == ZDM_EXIT_REFUSED && !strcmp(e.reason, "neighbour_locked"))
            lock_busy = 1;
        /* The attempt is counted before the lock is released: a host that
         * takes the lock next reads it, and waits out the backoff. */
        int counted = 0, n = 0, failed_now = 0;
        zdm_err e2;
        zdm_err_clear(&e2);
        if (r != 0 && !lock_busy && !c.due_parked && r != ZDM_EXIT_INTERRUPTED) {
            if (zdm_state_contract_attempt(db, p->id, 0, e.msg, max_attempts, &n, &failed_now, &e2) != 0)
                zdm_log(ZDM_LOG_WARN, p->id, "contract", "could not record the attempt: %s", e2.msg);
            else
                counted = 1;
        }
        zdm_plan_state locked_st = c.st;
        int skipped = c.due_skip, parked = c.due_parked;
        close_ctx(&c);
        if (r == 0 && skipped) {
            zdm_log(ZDM_LOG_INFO, p->id, "contract", "not contracted: another run tried it meanwhile");
        } else if (r == 0) {
            /* Another host may have contracted it between our read and our
             * lock ("already complete"): count only what this process did. */
            int mine = 0;
            if (zdm_state_history_count_mine(db, p->id, "advance", "complete", "ok", &mine, &e) == 0 && mine > 0)
                (*advanced)++;
            if ((locked_st.attempts || locked_st.last_error[0]) &&
                zdm_state_contract_attempt(db, p->id, 1, NULL, max_attempts, &n, &failed_now, &e2) != 0)
                zdm_log(ZDM_LOG_WARN, p->id, "contract", "could not clear the attempt count: %s", e2.msg);
        } else if (lock_busy) {
            /* another host got there first: it does the contract */
            zdm_log(ZDM_LOG_INFO, p->id, "contract", "skipped: %s", e.msg);
        } else if (r == ZDM_EXIT_INTERRUPTED) {
            /* stopped by a signal: not the contract's fault */
            if (!failures++)
                first = e;
            break;
        } else if (parked) {
            zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", e.msg);
            if (!failures++)
                first = e;
        } else {
            zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", e.msg);
            if (counted && failed_now) {
                char detail[ZDM_ERR_MSG + 100];
                snprintf(detail, sizeof detail, "contract failed %d times; run-due stops trying until "
                         "\"zdm retry %s\"; last error: %s", n, p->id, e.msg);
                zdm_history_entry h = {p->id, "failed", zdm_phase_name(ZDM_CUT_OVER), NULL, "failed", detail};
                if (zdm_state_history_add(db, &h, NULL, &e2) != 0)
                    zdm_log(ZDM_LOG_WARN, p->id, "contract", "could not record the failed state: %s", e2.msg);
                zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", detail);
            } else if (counted) {
                char ts[40];
                int shift = n - 1 < 20 ? n - 1 : 20;
                zdm_log(ZDM_LOG_INFO, p->id, "contract", "attempt %d of %d failed; next try after %s", n,
                        max_attempts, zdm_format_time(zdm_now_ms() + (pol.retry_after_ms << shift), ts, sizeof ts));
            }
            if (!failures++)
                first = e;
        }
    }
    if (rc == 0 && failures) {
        *err = first;
        zdm_err_prefix(err, "%d due plan%s could not be contracted; first: ", failures, failures == 1 ? "" : "s");
        rc = first.code == ZDM_EXIT_REFUSED || first.code == ZDM_EXIT_INTERRUPTED ? first.code : ZDM_EXIT_FAIL;
        err->code = rc;
    }
    return rc;
}

int zdm_life_after_backfill(zdm_db *db, const zdm_plan *plan, const zdm_life_opts *o, zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, NULL, plan, o);
    int rc = run_hooks(&c, ZDM_HOOK_AFTER_BACKFILL, ZDM_EXPANDED, ZDM_BACKFILLED, 0, err);
    if (rc != 0)
        zdm_err_detail(err, "the plan is backfilled all the same; re-run the hooks with "
                            "\"zdm advance %s --hooks-only\"", plan->id);
    return rc;
}

int zdm_life_overrides(const char *url, const zdm_plan *plan, char **json, zdm_err *err)
{
    *json = NULL;
    if (!plan->backfill)
        return 0;
    zdm_db *db = NULL;
    int rc = zdm_db_open(url, &db, err);
    if (rc == 0 && zdm_state_exists(db))
        rc = zdm_backfill_overrides(db, plan->id, json, err);
    if (db)
        zdm_db_close(db);
    return rc;
}
