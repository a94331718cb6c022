/*
 * state_ranges.h -- zdm's backfills and ranges tables.
 *
 * Owns: every statement on zdm's `backfills` table (one row per plan: when
 * its backfill started and finished, its key columns, the row estimate,
 * the operator's pause and live-setting overrides) and `ranges` table (the
 * key ranges of a backfill: bounds, the committed cursor, the owner and its
 * heartbeat with the owner's recent rate, rows done).  The backfill worker (phases/backfill_*.c) and
 * zdm status call these verbs; nobody else names the tables.
 *
 * The verbs that run inside the caller's transaction say so: the batch's
 * cursor move (zdm_state_ranges_advance) must commit with the batch it
 * records, so a worker killed at any instant resumes at the first row it
 * had not committed.  Key tuples (bounds, cursors) are JSON arrays of text.
 */
#ifndef ZDM_STATE_RANGES_H
#define ZDM_STATE_RANGES_H

#include <stdint.h>

#include "db.h"
#include "err.h"
#include "util.h"

/* A worker whose heartbeat is older than this is gone: its range is free. */
#define ZDM_RANGE_STALE_MS (60 * 1000)

/* The integer in a one-column key tuple ["123"] (the ranges' cursor and
 * bound format), if it is one: 1 and *out, else 0. */
int zdm_state_key_int(const char *json, long long *out);

/* ---- the backfills row ---- */

/* Creates the plan's backfills row if missing (not started, no settings). */
int zdm_state_backfill_ensure(zdm_db *db, const char *plan_id, zdm_err *err) ZDM_MUST_CHECK;

typedef struct zdm_state_backfill {
    int64_t started_ms;  /* 0: no worker has split the key space yet */
    int64_t total_est;   /* rows, estimated when the split was made */
    zdm_strv key;        /* the key columns of the split (empty before) */
} zdm_state_backfill;
void zdm_state_backfill_free(zdm_state_backfill *b);

/* In the caller's transaction: ensures the row and reads it locked until
 * commit, so only one worker splits the key space. */
int zdm_state_backfill_lock(zdm_db *db, const char *plan_id, zdm_state_backfill *out,
                            zdm_err *err) ZDM_MUST_CHECK;

/* In the caller's transaction (after zdm_state_backfill_lock): the split.
 * Range i covers keys after bounds[i-1] (from the start for i = 0) up to
 * and including bounds[i]; its cursor starts at its low bound.  Marks the
 * backfill started now with `key` and the estimate. */
int zdm_state_ranges_init(zdm_db *db, const char *plan_id, const zdm_strv *key, const zdm_strv *bounds,
                          int64_t total_est, zdm_err *err) ZDM_MUST_CHECK;

/* In the caller's transaction: the plan moves from expanded to
 * backfilled (*moved = 1) with its history row and the backfill's
 * finished time, or nothing happens (*moved = 0: another worker did it). */
int zdm_state_backfill_complete(zdm_db *db, const char *plan_id, const char *detail, int *moved,
                                zdm_err *err) ZDM_MUST_CHECK;

/* In the caller's transaction, PostgreSQL only (row locks): the plan's
 * first range row locked until commit, waiting at most wait_ms (then a
 * lock timeout, zdm_db_err_is_lock_timeout), so that one worker at a time
 * runs the final check; *finished = 1 when the plan is no longer expanded
 * (another worker finished it meanwhile).  A range row, not the backfills
 * row: finishing (zdm_state_backfill_complete) does not need it, so a
 * holder that stalls delays the others by wait_ms at most. */
int zdm_state_ranges_finish_lock(zdm_db *db, const char *plan_id, int64_t wait_ms, int *finished,
                                 zdm_err *err) ZDM_MUST_CHECK;

/* ---- the operator's controls ---- */

/* Pause flag, the overrides (JSON object text, malloc'd, NULL when the
 * row is missing) and the live workers; *found = 0 without a row. */
int zdm_state_backfill_controls(zdm_db *db, const char *plan_id, int *found, int *paused, char **settings,
                                int *workers, zdm_err *err) ZDM_MUST_CHECK;
int zdm_state_backfill_set_paused(zdm_db *db, const char *plan_id, int paused, zdm_err *err) ZDM_MUST_CHECK;
/* In the caller's transaction: the overrides, read with the row locked
 * until commit (concurrent zdm set merge instead of losing a change).
 * *json malloc'd, NULL when none. */
int zdm_state_backfill_settings_lock(zdm_db *db, const char *plan_id, char **json, zdm_err *err) ZDM_MUST_CHECK;
int zdm_state_backfill_settings_put(zdm_db *db, const char *plan_id, const char *json,
                                    zdm_err *err) ZDM_MUST_CHECK;
/* The overrides as JSON text, "{}" when none (*json malloc'd). */
int zdm_state_backfill_settings_get(zdm_db *db, const char *plan_id, char **json, zdm_err *err) ZDM_MUST_CHECK;
int zdm_state_backfill_settings_reset(zdm_db *db, const char *plan_id, zdm_err *err) ZDM_MUST_CHECK;
/* Forgets the split (ranges, cursors, start and finish), keeping the
 * operator's settings and pause (rollback). */
int zdm_state_ranges_reset(zdm_db *db, const char *plan_id, zdm_err *err) ZDM_MUST_CHECK;

/* ---- claiming and working a range ---- */

/* A worker's recent pace, written with every heartbeat it writes (claim,
 * batch, heartbeat): `rows` converted in the `ms` of wall-clock time that
 * end at that heartbeat.  The window holds the sleeps between batches
 * (pacing, max_rows_per_second) but no time the worker was held (zdm
 * pause, pause_query, a health signal): it starts again after a hold.
 * ms <= 0 (or a NULL pointer): not known -- held now, or fewer than two
 * batches since the worker started or resumed. */
typedef struct zdm_state_rate {
    int64_t rows, ms;
} zdm_state_rate;

typedef struct zdm_state_range {
    int id;
    char *hi;      /* the range's last key (included) */
    char *cursor;  /* the last key converted, NULL before the first batch */
} zdm_state_range;
void zdm_state_range_free(zdm_state_range *r);

/* The host part of zdm_whoami() (workers on this host are checked by pid). */
const char *zdm_state_ranges_host(void);

/* Claims the first free range of the plan for `owner` (this process): one
 * with no owner, its owner's session or process gone, or its heartbeat
 * stale.  *got = 0 when none is free. */
int zdm_state_ranges_claim(zdm_db *db, const char *plan_id, const char *owner, const zdm_state_rate *rate, int *got,
                           zdm_state_range *out, zdm_err *err) ZDM_MUST_CHECK;
/* Gives the range up if `owner` still holds it. */
int zdm_state_ranges_release(zdm_db *db, const char *plan_id, int range_id, const char *owner,
                             zdm_err *err) ZDM_MUST_CHECK;
/* Keeps `owner`'s claim alive (only while it is still its own) and
 * records why it is held back (NULL: nothing) and its pace. */
int zdm_state_ranges_heartbeat(zdm_db *db, const char *plan_id, int range_id, const char *owner,
                               const char *throttle, const zdm_state_rate *rate, zdm_err *err) ZDM_MUST_CHECK;

/* In the batch's transaction: the range's cursor, done flag and owner,
 * read with its row locked until commit (a second worker that believes it
 * owns the range waits, then sees the new cursor; the owner check fences a
 * worker that was taken over).  *cursor and *owner malloc'd or NULL.
 * Fails (ZDM_EXIT_FAIL) when the range is gone. */
int zdm_state_ranges_lock(zdm_db *db, const char *plan_id, int range_id, char **cursor, int *done, char **owner,
                          char **hi, zdm_err *err) ZDM_MUST_CHECK;
/* For a worker that found no free range: the open ranges other workers
 * hold (range_id, cursor, hi; cursor NULL before the first range's first
 * batch), read without locks -- the caller picks one to split, then
 * locks it (zdm_state_ranges_lock) and looks again.  Ranges with no owner
 * too: one another worker's claim has locked but not committed yet (the
 * claim passes over it, SKIP LOCKED, and this read does not see the new
 * owner) -- its lock waits for that claim. */
int zdm_state_ranges_busy(zdm_db *db, const char *plan_id, const char *owner, zdm_rows **out,
                          zdm_err *err) ZDM_MUST_CHECK;
/* In the caller's transaction, with the range's row locked
 * (zdm_state_ranges_lock): range_id now ends at mid, and its keys after
 * mid up to hi become a new range owned by `owner` (its pace `rate`) with
 * its cursor at mid (*id).  The owner of range_id reads its new bound in
 * its next batch. */
int zdm_state_ranges_split(zdm_db *db, const char *plan_id, int range_id, const char *owner,
                           const zdm_state_rate *rate, const char *mid, const char *hi, int *id,
                           zdm_err *err) ZDM_MUST_CHECK;
/* In the batch's transaction, after its rows: moves the cursor to `last`
 * (NULL: unchanged), counts `rows`, marks the range done, beats the heart
 * with the worker's pace.  Committed with the batch or not at all. */
int zdm_state_ranges_advance(zdm_db *db, const char *plan_id, int range_id, const char *last, int64_t rows,
                             int done, const zdm_state_rate *rate, zdm_err *err) ZDM_MUST_CHECK;
/* Rows a batch passed over (the application held them locked, SKIP
 * LOCKED): a new range (after, up_to] of the same plan, unowned and not
 * done, in the caller's transaction -- the batch's own, so the rows it
 * left are on record in the same commit as its cursor, and the plan is
 * not backfilled until a worker has converted them.  *id: the new range. */
int zdm_state_ranges_revisit(zdm_db *db, const char *plan_id, const char *after, const char *up_to, int *id,
                             zdm_err *err) ZDM_MUST_CHECK;
/* Rows the final check found after every range was walked and the
 * finishing worker converted by key: a range of their own (no bounds),
 * done, rows_done = rows, in the caller's transaction (the one that
 * converted them), so the ranges' rows_done still add up to the rows the
 * backfill converted. */
int zdm_state_ranges_swept(zdm_db *db, const char *plan_id, int64_t rows, zdm_err *err) ZDM_MUST_CHECK;
/* Ranges of the plan, how many are done, rows converted by all. */
int zdm_state_ranges_summary(zdm_db *db, const char *plan_id, int64_t *ranges, int64_t *done, int64_t *rows,
                             zdm_err *err) ZDM_MUST_CHECK;

/* ---- for zdm status ---- */

typedef struct zdm_state_progress {
    int started;
    int64_t rows_done, total_est;
    /* rows still to convert, refined as ranges finish: an open range is
     * expected to hold what the finished ones held on average (ranges
     * are cut to hold about equal rows), less what it converted so far, and
     * never more than its integer keys left;
     * before any range finished, total_est less the rows done; never
     * negative, 0 once every range is done */
    int64_t rows_left_est;
    int ranges, ranges_done, workers;
    int paused;
    char throttle[256];
} zdm_state_progress;
int zdm_state_ranges_progress(zdm_db *db, const char *plan_id, zdm_state_progress *out,
                              zdm_err *err) ZDM_MUST_CHECK;
/* The live workers: one row per claimed range with columns owner,
 * range_id, rows_done, heartbeat_ms, throttle, last_batch_ms, rate_rows,
 * rate_ms. */
int zdm_state_ranges_workers(zdm_db *db, const char *plan_id, zdm_rows **out, zdm_err *err) ZDM_MUST_CHECK;
/* Rows per second of row i of zdm_state_ranges_workers at now_ms (epoch
 * ms): its window's rows over its window, or over the time since the
 * window ended once that is the longer (a worker stuck in a batch fades
 * to 0, and the rate does not jump when it starts to).  1 and *rate, or 0
 * when not known. */
int zdm_state_worker_rate(const zdm_rows *workers, int i, int64_t now_ms, double *rate);
/* Every worker's rate of zdm_state_ranges_workers' rows together, at
 * now_ms: 1 and *rate, or 0 when none is known. */
int zdm_state_workers_rate(const zdm_rows *workers, int64_t now_ms, double *rate);
/* When the plan's last batch committed, 0 when none yet. */
int zdm_state_ranges_last_batch(zdm_db *db, const char *plan_id, int64_t *last_ms, zdm_err *err) ZDM_MUST_CHECK;

#endif
