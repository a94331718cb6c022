/*
 * backfill.h -- the backfill phase: dual-write triggers and the batched,
 * resumable, parallel backfill worker.
 *
 * Owns: the trigger SQL of a plan (dualwrite.c) and the worker
 * (backfill.c, the loop, and backfill_*.c, one job each); the key ranges
 * and cursors in zdm's backfills/ranges tables are state's
 * (state_ranges.c).  A batch's UPDATE and its cursor advance commit in one
 * transaction, so a worker killed at any moment resumes at the first row
 * it had not committed, and no row is converted twice.
 */
#ifndef ZDM_BACKFILL_H
#define ZDM_BACKFILL_H

#include "db.h"
#include "dialect.h"
#include "phase.h"
#include "plan.h"
#include "util.h"

/* ---- dual-write triggers (dualwrite.c) ---- */

/* Rewrites a SQL expression so that every bare reference to a column in
 * `cols` reads `prefix.column` (e.g. NEW."project_name").  Strings, quoted
 * identifiers that are not columns, qualified names and function calls
 * are left alone.  malloc'd. */
char *zdm_dw_rewrite(zdm_db *db, const char *expr, const zdm_strv *cols, const char *prefix);

/* The base of the names of plan's triggers and functions ("zdm_dw_ID",
 * shortened with a hash for a long id); its forward function is
 * BASE_fwd. */
void zdm_dw_name_base(const zdm_plan *plan, char *out, size_t size);

/* The columns a trigger may reference: cols (the table's columns now),
 * plus the plan's set/reverse targets and sources it lacks (which expand
 * may be adding). */
void zdm_dw_columns_add(const zdm_plan *plan, zdm_strv *cols);

/* An in-place fix: a `where` and no [backfill.dual_write] sources or
 * reverse.  Its triggers convert every inserted or updated row that
 * matches `where`, whoever wrote it; the other kinds decide a direction
 * from what the statement wrote, then apply `where` the same way. */
int zdm_dw_in_place(const zdm_backfill *b);

/* Does SQL text `expr` name column `col` (a whole word, case folded)?  A
 * lexical look: good for a warning, or to spot `set.n = "n + 1"`. */
int zdm_dw_names(const char *expr, const char *col);

/* "off", "in_place", "one_way" or "two_way" (plan show, --json). */
const char *zdm_dw_mode(const zdm_backfill *b);
/* What the triggers do, one sentence per line, for plan show. */
void zdm_dw_describe(const zdm_backfill *b, zdm_strv *lines);

/* SQL creating / dropping the plan's triggers (one script each); the
 * names are zdm's own, per plan, so drop removes exactly them.  `key` is
 * the row identity used by SQLite's AFTER triggers; `facts` the table's
 * as the caller read them (NULL: read here). */
int zdm_dw_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *key, const zdm_table_facts *facts,
               char **create, char **drop, zdm_err *err) ZDM_MUST_CHECK;

/* The synthetic step that installs the triggers at the end of expand
 * (index = nexpand + 1) and removes them in rollback; and the one that
 * removes them at the start of contract (index 0).  Filled into *step;
 * free its sql/down with zdm_dw_step_free. */
int zdm_dw_step(zdm_db *db, const zdm_plan *plan, int for_contract, zdm_step *step,
                zdm_err *err) ZDM_MUST_CHECK;
void zdm_dw_step_free(zdm_step *step);

/* The backfill key: the plan's `key`, else the primary key, else (SQLite)
 * rowid.  Refuses (ZDM_EXIT_REFUSED) a table without a usable key, with
 * the statement that would add one. */
int zdm_backfill_key(zdm_db *db, const zdm_plan *plan, zdm_strv *key, zdm_err *err) ZDM_MUST_CHECK;

/* ---- the worker (backfill*.c) ---- */

/* The key is one column of integers as the dialect vouches (its
 * integer_key): the worker's span batches and numeric range split. */
int zdm_backfill_int_key(zdm_db *db, const char *table, const zdm_strv *key);

/* Every statement a worker would run to convert rows (batch UPDATEs for
 * the first and later batches, the span and next-key statements, the
 * final check), exactly as built, with $N placeholders; for the preflight
 * check.  int_key: the key is one column of integers (the span
 * statements; on SQLite its bounds are cast once, zdm_dialect.span_param),
 * as the worker decides.  Appends to out. */
int zdm_backfill_batch_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *key, int int_key,
                           zdm_strv *out) ZDM_MUST_CHECK;

typedef struct zdm_backfill_opts {
    int wait_for_others;  /* advance: wait until ranges owned by other workers finish */
    int progress_tty;     /* -1 auto, 0 log lines, 1 bar */
    const char *listen;   /* "127.0.0.1:PORT" for /status and /metrics, or NULL */
    const char *url;      /* when set, the worker uses its own connection to this
                           * database and reconnects after losing it */
    int finished_plan;    /* OUT: this worker moved the plan to backfilled */
    /* advance's worker: called before each batch and, in the transaction
     * that records backfilled, before that record; nonzero (err filled)
     * stops the worker.  It says whether advance still holds the plan's
     * lock: a run that lost it (server restart, zdm unlock) records
     * nothing more.  NULL for zdm backfill workers (they hold no lock). */
    int (*guard)(void *arg, zdm_err *err);
    void *guard_arg;
} zdm_backfill_opts;

/* Runs one worker until no range is left for it.  Returns 0 when the
 * plan is backfilled or the remaining ranges belong to live workers,
 * ZDM_EXIT_INTERRUPTED when stopped by a signal (safe to resume),
 * ZDM_EXIT_FAIL on error (the failed batch rolled back, its range named). */
int zdm_backfill_run(zdm_db *db, const zdm_plan *plan, zdm_backfill_opts *o,
                     zdm_err *err) ZDM_MUST_CHECK;

/* Operator controls, read by every worker before each batch. */
int zdm_backfill_set_paused(zdm_db *db, const zdm_plan *plan, int paused, zdm_err *err) ZDM_MUST_CHECK;
int zdm_backfill_set(zdm_db *db, const zdm_plan *plan, const char *key, const char *value,
                     zdm_err *err) ZDM_MUST_CHECK;
/* zdm set: every "KEY=VALUE" of kv[0..n) (after clearing every override
 * when reset) in one transaction with the settings row locked, so
 * concurrent runs lose nothing.  Refused (ZDM_EXIT_USAGE, nothing changed)
 * for an unknown key, a bad value, or settings that contradict each other
 * with the plan's (min_batch_size above max_batch_size).  One history row. */
int zdm_backfill_set_many(zdm_db *db, const zdm_plan *plan, const char *const *kv, int n, int reset,
                          zdm_err *err) ZDM_MUST_CHECK;
/* The overrides as JSON text ("{}" when none); *json is malloc'd. */
int zdm_backfill_overrides(zdm_db *db, const char *plan_id, char **json, zdm_err *err) ZDM_MUST_CHECK;
/* Forgets the zdm set overrides of a plan (rollback; zdm set --reset). */
int zdm_backfill_settings_reset(zdm_db *db, const char *plan_id, zdm_err *err) ZDM_MUST_CHECK;
/* Forgets a plan's ranges and cursors (rollback). */
int zdm_backfill_reset(zdm_db *db, const char *plan_id, zdm_err *err) ZDM_MUST_CHECK;

/* Progress for status: rows done, estimated total, ranges done/all,
 * live workers, throttle reasons ("" when none). */
typedef struct zdm_backfill_progress {
    int started;
    int64_t rows_done, total_est;
    int64_t rows_left; /* estimated, refined as ranges finish (state_ranges.h) */
    int ranges, ranges_done, workers;
    int paused;
    char throttle[256];
} zdm_backfill_progress;
/* The live workers of a plan: one row per claimed range with columns
 * owner, range_id, rows_done, heartbeat_ms, throttle (NULL when none),
 * last_batch_ms (NULL before its first batch), rate_rows, rate_ms (NULL
 * when its pace is not known: zdm_state_worker_rate). */
int zdm_backfill_workers(zdm_db *db, const char *plan_id, zdm_rows **out, zdm_err *err) ZDM_MUST_CHECK;
/* When the plan's last batch committed (any worker), 0 when none yet. */
int zdm_backfill_last_progress(zdm_db *db, const char *plan_id, int64_t *last_ms, zdm_err *err) ZDM_MUST_CHECK;
int zdm_backfill_progress_get(zdm_db *db, const char *plan_id, zdm_backfill_progress *out,
                              zdm_err *err) ZDM_MUST_CHECK;
/* The rows to convert in all: done plus the estimate of what is left (never
 * below the rows done), and the percentage done, which is 100 only once
 * every range is done (an estimate that ran out early shows 99.9). */
int64_t zdm_backfill_rows_total(const zdm_backfill_progress *p);
double zdm_backfill_percent(const zdm_backfill_progress *p, int64_t total);

#endif
