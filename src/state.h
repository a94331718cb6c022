/*
 * state.h -- zdm's own tables in the target database.
 *
 * PostgreSQL: schema "zdm" (zdm.plans, zdm.steps, ...); SQLite: tables
 * named zdm_plans, zdm_steps, ...  The layout carries a version in
 * meta(key='schema_version') and the zdm version that created or last
 * upgraded it in meta(key='layout_written_by').  Every command checks the
 * layout first (zdm_state_check): a newer, older or garbled one is refused
 * with ZDM_EXIT_STATE, and only zdm_state_upgrade() ("zdm init --upgrade")
 * moves an older one forward, in one transaction, with a history row.
 *
 * Owns: plan phases and their checksums, applied steps (so a crash between
 * steps resumes at the right one), the history of every transition and
 * refusal (written in state.c, listed in state_history.c), and the
 * per-plan lock that keeps two runs apart.  Times are
 * stored as epoch milliseconds (bigint) so both dialects agree exactly.
 */
#ifndef ZDM_STATE_H
#define ZDM_STATE_H

#include <stdint.h>

#include "db.h"
#include "err.h"
#include "util.h"

/* 2: plans.attempts, last_error, last_attempt_ms, failed_ms (the failure
 * policy of run-due); ranges.last_batch_ms (last progress); meta
 * layout_written_by.
 * 3: history.reason (a refusal's kind: repeats fold by it).
 * 4: ranges.rate_rows, rate_ms (each worker's recent rate, for status). */
#define ZDM_STATE_VERSION 4

/* Phases: names are a contract (CLI, --json, history); never rename. */
typedef enum zdm_phase {
    ZDM_PENDING = 0,
    ZDM_EXPANDED,
    ZDM_BACKFILLED,
    ZDM_CUT_OVER,
    ZDM_COMPLETE,
    ZDM_ROLLED_BACK,
    ZDM_PHASE__COUNT
} zdm_phase;

const char *zdm_phase_name(zdm_phase p);
/* Returns -1 for an unknown name. */
int zdm_phase_parse(const char *name);

/* Table name for zdm's own table `base` ("plans" -> zdm.plans / zdm_plans).
 * Borrowed static string. */
const char *zdm_state_table(const zdm_db *db, const char *base);

/* 1 when zdm's tables exist (at any version), without creating them. */
int zdm_state_exists(zdm_db *db);

/* What meta says about the layout. */
typedef struct zdm_state_layout {
    int exists;             /* zdm's tables are there */
    int version;            /* the layout version; -1 when missing or garbled */
    char raw[64];           /* schema_version as stored ("" when missing) */
    char written_by[64];    /* zdm version that created or upgraded it, "" when unknown */
} zdm_state_layout;
int zdm_state_layout_read(zdm_db *db, zdm_state_layout *out, zdm_err *err) ZDM_MUST_CHECK;

/* Refuses (ZDM_EXIT_STATE, saying what to do) a layout this zdm cannot
 * use: newer, older (not yet upgraded), or missing/garbled version rows.
 * No tables at all is fine.  Changes nothing; every command runs it. */
int zdm_state_check(zdm_db *db, zdm_err *err) ZDM_MUST_CHECK;

/* Creates zdm's tables when there are none (idempotent); refuses like
 * zdm_state_check otherwise.  Never upgrades. */
int zdm_state_init(zdm_db *db, zdm_err *err) ZDM_MUST_CHECK;

/* Creates the tables, or upgrades an older layout to ZDM_STATE_VERSION in
 * one transaction and records it in history (plan "(state)", action
 * "upgrade").  *from gets the version found (0: created; ==
 * ZDM_STATE_VERSION: nothing to do).  A newer or garbled layout is
 * refused. */
int zdm_state_upgrade(zdm_db *db, int *from, zdm_err *err) ZDM_MUST_CHECK;

typedef struct zdm_plan_state {
    int known;               /* 0: the database has never seen the plan */
    zdm_phase phase;
    char checksum[65];
    int64_t phase_since_ms;
    int64_t cutover_at_ms;   /* 0 when none */
    int64_t contract_after_ms; /* scheduled by `zdm schedule`, 0 when none */
    int attempts;            /* contract attempts by run-due since the last success or retry */
    char last_error[512];    /* the last contract failure or refusal, "" when none */
    int64_t last_attempt_ms; /* 0 when none */
    int64_t failed_ms;       /* when run-due gave up (state "failed"), 0 when not */
} zdm_plan_state;

int zdm_state_get(zdm_db *db, const char *plan_id, zdm_plan_state *out, zdm_err *err) ZDM_MUST_CHECK;
/* Records the plan's phase (inserting the plan when new) and its checksum. */
int zdm_state_set_phase(zdm_db *db, const char *plan_id, zdm_phase phase,
                        const char *checksum, zdm_err *err) ZDM_MUST_CHECK;
int zdm_state_set_cutover(zdm_db *db, const char *plan_id, int64_t at_ms, zdm_err *err) ZDM_MUST_CHECK;
int zdm_state_set_contract_after(zdm_db *db, const char *plan_id, int64_t at_ms, zdm_err *err) ZDM_MUST_CHECK;

/* run-due's contract bookkeeping.  ok: attempts back to 0, last_error
 * cleared.  Not ok: attempts + 1, last_error = error, and when attempts
 * reach max_attempts the plan is failed (failed_ms = now; *failed_now =
 * 1).  last_attempt_ms = now either way. */
int zdm_state_contract_attempt(zdm_db *db, const char *plan_id, int ok, const char *error, int max_attempts,
                               int *attempts, int *failed_now, zdm_err *err) ZDM_MUST_CHECK;
/* "zdm retry": clears the failed state and the attempt count (last_error
 * stays, for the record).  *was_failed says whether it was failed. */
int zdm_state_contract_retry(zdm_db *db, const char *plan_id, int *was_failed, zdm_err *err) ZDM_MUST_CHECK;

/* Who holds the plan's lock ("alice@web1 pid 4242 since ..."), or "" when
 * nobody does.  Reads the holder row only; takes nothing. */
int zdm_state_lock_holder(zdm_db *db, const char *plan_id, char *holder, size_t size, zdm_err *err) ZDM_MUST_CHECK;

/* Applied steps: phase is "expand" or "contract"; status "running" (a
 * non-transactional step started), "done", or absent. */
int zdm_state_step_status(zdm_db *db, const char *plan_id, const char *phase, int index,
                          char status[16], zdm_err *err) ZDM_MUST_CHECK;
int zdm_state_step_mark(zdm_db *db, const char *plan_id, const char *phase, int index,
                        const char *status, zdm_err *err) ZDM_MUST_CHECK;
/* How many steps of the plan are recorded as done or started. */
int zdm_state_steps_applied(zdm_db *db, const char *plan_id, int *n, zdm_err *err) ZDM_MUST_CHECK;
/* Every plan the database has a row of that has changed its schema and
 * not undone it: in flight (expanded .. cut_over), or pending with steps
 * applied (a half-done expand).  ids and phase names, in id order. */
int zdm_state_plans_applied(zdm_db *db, zdm_strv *ids, zdm_strv *phases, zdm_err *err) ZDM_MUST_CHECK;
/* Forgets the steps of a phase (after rollback). */
int zdm_state_steps_clear(zdm_db *db, const char *plan_id, const char *phase, zdm_err *err) ZDM_MUST_CHECK;

/* One history row.  detail may be NULL.  Returns the new row id in *id
 * (may be NULL). */
typedef struct zdm_history_entry {
    const char *plan_id;
    const char *action;      /* advance, rollback, stamp, refused, schedule, ... */
    const char *from_phase;  /* may be NULL */
    const char *to_phase;    /* may be NULL */
    const char *outcome;     /* ok, failed, refused */
    const char *detail;      /* may be NULL */
} zdm_history_entry;
int zdm_state_history_add(zdm_db *db, const zdm_history_entry *h, int64_t *id, zdm_err *err) ZDM_MUST_CHECK;
/* A refusal's row (outcome "refused"), with its reason code (err.h's
 * reason; NULL or "": none), without waiting: SQLite, when another run
 * holds the write lock, gets it written by a detached process once the
 * lock is free (within 10 minutes; *id is 0 then).  A repeat of the
 * plan's newest refusal (same action, phases and reason; without a
 * reason, the same text) is folded into that row instead: "[repeated N
 * times, last at T by WHO pid P]". */
int zdm_state_history_add_now_or_later(zdm_db *db, const zdm_history_entry *h, const char *reason,
                                       int64_t *id, zdm_err *err) ZDM_MUST_CHECK;
int zdm_state_history_update(zdm_db *db, int64_t id, const char *outcome, const char *detail,
                             zdm_err *err) ZDM_MUST_CHECK;

/* zdm history: the rows that pass every filter given (NULL / 0: no
 * filter), oldest first.  action matches the action, and "hook" every
 * "hook EVENT" row; limit keeps the newest `limit` rows. */
typedef struct zdm_history_filter {
    const char *plan_id, *action, *outcome;
    int has_since, has_until;
    int64_t since_ms, until_ms; /* at_ms >= since_ms, at_ms <= until_ms */
    long limit;                 /* 0: every row */
} zdm_history_filter;
typedef struct zdm_history_row {
    int64_t id, at_ms;
    char *plan_id, *who, *pid, *action, *outcome;
    char *from_phase, *to_phase, *detail; /* NULL when none */
    char *reason;                         /* a refusal's kind (err.h), NULL when none */
} zdm_history_row;
typedef struct zdm_history_list {
    zdm_history_row *v;
    size_t n;
} zdm_history_list;
int zdm_state_history_list(zdm_db *db, const zdm_history_filter *f, zdm_history_list *out,
                           zdm_err *err) ZDM_MUST_CHECK;
void zdm_state_history_list_free(zdm_history_list *l);
/* Marks the plan's "running" rows interrupted: called by the new holder
 * of the plan's lock, so they belong to a run that died. */
int zdm_state_history_mark_interrupted(zdm_db *db, const char *plan_id, zdm_err *err) ZDM_MUST_CHECK;
/* How many rows this process (its pid) wrote for plan_id with exactly this
 * action, to_phase and outcome. */
int zdm_state_history_count_mine(zdm_db *db, const char *plan_id, const char *action, const char *to_phase,
                                 const char *outcome, int *n, zdm_err *err) ZDM_MUST_CHECK;

/* The outcome ("ok", "failed", ...; "" when none) and detail (malloc'd or
 * NULL) of the newest history row of plan_id with this action. */
int zdm_state_history_last(zdm_db *db, const char *plan_id, const char *action, char outcome[16],
                           char **detail, zdm_err *err) ZDM_MUST_CHECK;

/* The per-plan lock.  On success *got is 1; when another run holds it *got
 * is 0 and `holder` describes it ("alice@web1 pid 4242 since
 * 2026-11-21T23:40:00Z").  PostgreSQL: a session advisory lock plus a
 * row naming the holder; SQLite: the row alone, taken over when its holder
 * was on this host and its pid is gone. */
int zdm_state_lock(zdm_db *db, const char *plan_id, int *got, char *holder, size_t holder_size,
                   zdm_err *err) ZDM_MUST_CHECK;
/* The same, taken by a run of another plan: `why` (e.g. "for the expand
 * of plan 0001_x") follows the holder's name. */
int zdm_state_lock_for(zdm_db *db, const char *plan_id, const char *why, int *got, char *holder,
                       size_t holder_size, zdm_err *err) ZDM_MUST_CHECK;
void zdm_state_unlock(zdm_db *db, const char *plan_id);
/* Who holds the plan's lock right now and is alive, in words (`live`
 * empty when nobody is): on PostgreSQL a server session that holds the
 * advisory lock (its backend pid, state and for how long; not its query,
 * which may hold a literal no message should carry), whatever became of
 * its zdm; on SQLite the holder when its process is on this host and
 * exists.  A holder on another host is not known to be alive. */
int zdm_state_lock_live(zdm_db *db, const char *plan_id, char *live, size_t lsize, zdm_err *err) ZDM_MUST_CHECK;
/* 1 when the plan's lock row names a process on this host that no longer
 * exists (a zdm killed with -9); 0 otherwise, another host's included. */
int zdm_state_lock_holder_gone(zdm_db *db, const char *plan_id);
/* zdm unlock: removes the plan's lock row whoever holds it; *removed says
 * whether there was one, holder and pid (as stored) name it. */
int zdm_state_lock_remove(zdm_db *db, const char *plan_id, int *removed, char *holder, size_t hsize, char *pid,
                          size_t psize, zdm_err *err) ZDM_MUST_CHECK;
/* *held = 1 while this process still holds the plan's lock.  PostgreSQL:
 * the session's advisory lock (a server restart or a reset connection
 * loses it); SQLite: the lock row still names this process (zdm unlock
 * removes it). */
int zdm_state_lock_held(zdm_db *db, const char *plan_id, int *held, zdm_err *err) ZDM_MUST_CHECK;

#endif
