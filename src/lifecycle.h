/*
 * lifecycle.h -- the plan state machine:
 *
 *   pending -> expanded -> backfilled -> cut_over -> complete
 *        \________\____________\___________\--> rolled_back
 *
 * Owns: the one transition function through which every phase changes
 * (lock, phase read again under the lock, gate, run with a lock-and-signal
 * guard before every step, record), the history row of every transition
 * and refusal, and calling the phase modules in phases/ through their
 * table (phases/phase.c: each phase's hooks, gate, run, dry run and undo).
 */
#ifndef ZDM_LIFECYCLE_H
#define ZDM_LIFECYCLE_H

#include <stdio.h>

#include "db.h"
#include "hooks.h"
#include "plan.h"
#include "state.h"
#include "util.h"

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

/* ---- Commands' verbs: what src/cli*.c call instead of the driver, the
 * state tables or the phases (life_db.c, life_status.c, life_backfill.c,
 * life_baseline.c). ---- */

/* Opening the database a command names (--db).  Without CREATE a missing
 * SQLite file is refused (a mistyped path is an error, not a new file). */
enum {
    ZDM_LIFE_OPEN_CREATE = 1,        /* a missing SQLite file may be created */
    ZDM_LIFE_OPEN_SAY_CREATED = 2,   /* ...and a note on `notes` says so */
    ZDM_LIFE_OPEN_MISSING_EMPTY = 4, /* a missing file reads as an empty database, said on `notes` with
                                      * missing_note (dry runs, plan graph); no file is created */
    ZDM_LIFE_OPEN_CHECK = 8,         /* refuse a layout this zdm cannot read (exit 5) */
    ZDM_LIFE_OPEN_INIT = 16,         /* create zdm's tables when there are none */
};
/* On failure *db is NULL. */
int zdm_life_open(const char *url, int flags, FILE *notes, const char *missing_note, zdm_db **db,
                  zdm_err *err) ZDM_MUST_CHECK;
void zdm_life_close(zdm_db *db); /* NULL is fine */
const char *zdm_life_db_name(const zdm_db *db);    /* the URL, password hidden: the form to print */
const char *zdm_life_db_dialect(const zdm_db *db); /* "postgresql" | "sqlite" */
/* 1 when zdm's tables exist (db may be NULL: 0). */
int zdm_life_has_state(zdm_db *db);
/* zdm init (upgrade: init --upgrade).  *from: the layout found (0: none;
 * == *version: nothing to do); *version: the layout this zdm writes. */
int zdm_life_init(zdm_db *db, int upgrade, int *from, int *version, zdm_err *err) ZDM_MUST_CHECK;
/* The plan's recorded state; all zero (not known) when zdm's tables are
 * not there yet. */
int zdm_life_plan_state(zdm_db *db, const char *plan_id, zdm_plan_state *st, zdm_err *err) ZDM_MUST_CHECK;
/* 1 when an applied plan's file changed since it was applied. */
int zdm_life_plan_changed(const zdm_plan *p, const zdm_plan_state *st);
/* The plans the database has applied and not undone (in flight, or a
 * half-done expand) whose file is not in `set`: their triggers and
 * columns are live with nothing in the plans folder pointing at them (a
 * branch switched, a file deleted).  ids and phase names; none without
 * zdm's state. */
int zdm_life_missing_files(zdm_db *db, const zdm_plan_set *set, zdm_strv *ids, zdm_strv *phases,
                           zdm_err *err) ZDM_MUST_CHECK;
/* zdm unlock: removes the plan's lock row and records it; detail says what
 * was removed.  A holder alive (zdm_state_lock_live) is refused, exit 3:
 * on PostgreSQL always, on SQLite unless `force`. */
int zdm_life_unlock(zdm_db *db, const zdm_plan *plan, int force, char *detail, size_t size,
                    zdm_err *err) ZDM_MUST_CHECK;
/* zdm retry: clears run-due's failed state and attempt count of a plan
 * and records it (*cleared = 1, detail says what); *cleared = 0 when the
 * plan was not failed. */
int zdm_life_retry(zdm_db *db, const zdm_plan *plan, int *cleared, char *detail, size_t size,
                   zdm_err *err) ZDM_MUST_CHECK;
/* zdm history: the rows passing the filter, oldest first (none when
 * zdm's tables are not there yet). */
int zdm_life_history(zdm_db *db, const zdm_history_filter *f, zdm_history_list *out, zdm_err *err) ZDM_MUST_CHECK;
void zdm_life_history_free(zdm_history_list *l);

/* One live backfill worker, as status shows it. */
typedef struct zdm_life_worker {
    char *owner;
    int range;
    int64_t range_rows_done, heartbeat_ms;
    char *throttle;        /* NULL when not throttled */
    int64_t last_batch_ms; /* 0 before its first batch */
    int rate_known;        /* its recent pace is known (not held, two batches done) */
    double rows_per_second;
} zdm_life_worker;
/* What zdm status shows of a plan. */
typedef struct zdm_life_status {
    zdm_plan_state st;
    zdm_phase phase;        /* pending when the plan is not known */
    int changed;            /* the file changed since it was applied */
    char next[300];         /* what an operator runs next */
    int64_t due_ms;         /* contract due, 0 when no due time */
    int waiting, overdue;   /* cut over without a due time; 15 min past it */
    char holder[300];       /* who holds the plan's lock, "" when nobody */
    /* the backfill (plans with a [backfill], once zdm's tables exist) */
    int bf_started, bf_ranges, bf_ranges_done, bf_workers, bf_paused;
    int64_t bf_rows_done, bf_total_est;
    int64_t bf_rows_left;   /* estimated, refined as ranges finish */
    double bf_percent;      /* 100 only once every range is done */
    char bf_throttle[256];
    /* every live worker's recent rate together, and the rows left at that
     * pace; -1 when not known (paused, no live worker, no rate yet) */
    double bf_rate;
    int64_t bf_eta_s;
    int64_t last_progress_ms; /* the last batch's commit, 0 before the first */
    char *overrides;          /* zdm set overrides as JSON text, NULL when none read */
    zdm_life_worker *worker;  /* live workers, once the backfill started */
    size_t nworkers;
} zdm_life_status;
/* have_state: zdm_life_has_state(db), asked once for every plan. */
int zdm_life_status_of(zdm_db *db, int have_state, const zdm_plan *p, zdm_life_status *out,
                       zdm_err *err) ZDM_MUST_CHECK;
void zdm_life_status_free(zdm_life_status *s);

/* A standalone backfill worker (zdm backfill). */
typedef enum zdm_life_backfill_result {
    ZDM_LIFE_BF_ALREADY_DONE, /* the plan was past its backfill: nothing ran (*phase says where) */
    ZDM_LIFE_BF_BACKFILLED,   /* the plan is backfilled now */
    ZDM_LIFE_BF_WORKER_DONE,  /* this worker is done; other workers hold the remaining ranges */
} zdm_life_backfill_result;
/* A malformed --listen is a usage error, found before anything opens. */
int zdm_life_check_listen(const char *listen, zdm_err *err) ZDM_MUST_CHECK;
/* Refused unless the plan has a [backfill] and is expanded with its file
 * unchanged; the worker that finishes the plan runs after_backfill.
 * listen: [HOST:]PORT of /status and /metrics, or NULL. */
int zdm_life_backfill(zdm_db *db, const zdm_plan *plan, const zdm_life_opts *o, const char *listen,
                      zdm_life_backfill_result *res, zdm_phase *phase, zdm_err *err) ZDM_MUST_CHECK;
/* The gates of zdm backfill alone (zdm_life_backfill runs them too):
 * 0 with *res ZDM_LIFE_BF_ALREADY_DONE when there is nothing to do, 0
 * with ZDM_LIFE_BF_WORKER_DONE when a worker may start, else the
 * refusal. */
int zdm_life_backfill_gate(zdm_db *db, const zdm_plan *plan, zdm_life_backfill_result *res, zdm_phase *phase,
                           zdm_err *err) ZDM_MUST_CHECK;

/* Worker processes (life_workers.c): zdm backfill --workers N.
 * zdm_life_workers_fork starts n processes and returns in each of them
 * with *index = 1..n (that process runs one ordinary worker, with its own
 * connection, and returns its status as usual) and in the parent with
 * *index = 0; the parent then calls zdm_life_workers_wait, which forwards
 * every SIGINT/SIGTERM it gets to the workers, reaps them all, and
 * returns 0 when every worker exited 0, else the worst of their codes:
 * 1 (a failure, or a worker killed by a signal) before 5, 2, 3 and 4. */
#define ZDM_LIFE_MAX_WORKERS 64
typedef struct zdm_life_workers {
    int n, started, start_failed, interrupted; /* interrupted: a signal came before all were started */
    int pid[ZDM_LIFE_MAX_WORKERS];
    int reaped[ZDM_LIFE_MAX_WORKERS];
    int code[ZDM_LIFE_MAX_WORKERS]; /* exit code (1 when killed by a signal) */
    int sig[ZDM_LIFE_MAX_WORKERS];  /* the signal that killed it, 0 when none */
} zdm_life_workers;
int zdm_life_workers_fork(zdm_life_workers *w, int n, int *index, zdm_err *err) ZDM_MUST_CHECK;
int zdm_life_workers_wait(zdm_life_workers *w, zdm_err *err);
/* Worker `index` of --listen ADDR serves on PORT+index-1 of ADDR's host
 * (worker 1 on ADDR itself); out is ADDR with that port.  Exit 2 when
 * the port would pass 65535. */
int zdm_life_worker_listen(const char *listen, int index, char *out, size_t size, zdm_err *err) ZDM_MUST_CHECK;

/* zdm pause / resume. */
int zdm_life_backfill_pause(zdm_db *db, const zdm_plan *plan, int paused, zdm_err *err) ZDM_MUST_CHECK;
/* zdm set PLAN [--reset] KEY=VALUE...: kv[0..n). */
int zdm_life_backfill_set(zdm_db *db, const zdm_plan *plan, const char *const *kv, int n, int reset,
                          zdm_err *err) ZDM_MUST_CHECK;
/* plan show: "off", "in_place", "one_way" or "two_way", and what the
 * dual-write triggers do, one sentence per line. */
const char *zdm_life_dual_write_mode(const zdm_backfill *b);
void zdm_life_dual_write_describe(const zdm_backfill *b, zdm_strv *lines);

/* zdm baseline: the text of a plan file recreating the database's schema
 * (requiring heads), with the number of objects and the Alembic revision
 * found ("" when none); then its record (stamped complete, one history
 * row). */
int zdm_life_baseline_text(zdm_db *db, const zdm_strv *heads, zdm_buf *text, int *n, char *rev, size_t revsize,
                           zdm_err *err) ZDM_MUST_CHECK;
int zdm_life_baseline_record(zdm_db *db, const zdm_plan *plan, int n, const char *rev, zdm_err *err) ZDM_MUST_CHECK;

#endif
