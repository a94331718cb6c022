/*
 * backfill_finish.c -- the end of a backfill, and losing the server.
 *
 * Owns: the final check (no row still needs conversion), the move to
 * backfilled (once, whichever worker gets there first, under advance's
 * guard), and reconnecting a worker that owns its connection after the
 * server went away, plus reviving the caller's connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_int.h"

/* Rows the final check may convert itself, at most: more is a plan that
 * converts nothing, said as is (SWEEP_MAX / SWEEP_CHUNK statements, each
 * of which evaluates `where`, perhaps a scan of the table). */
#define SWEEP_MAX 10000

/* Before the plan may become backfilled: no row of the table still needs
 * conversion (a key range computed wrong, a row the walk missed, set
 * expressions that leave `where` true, a `where` that reads other rows
 * and so starts to match rows nobody wrote).  *left: how many, 0 when the
 * check cannot tell (below). */
static int count_left(worker *w, long long *left, zdm_err *err)
{
    const zdm_backfill *bf = w->plan->backfill;
    *left = 0;
    /* set.n = "n + 1" without a where: every row differs from its
     * expression forever, converted or not; the check cannot tell, and
     * the cursors (committed with each batch) are all there is. */
    for (size_t i = 0; !bf->where && i < bf->nset; i++)
        if (zdm_dw_names(bf->set[i].expr, bf->set[i].column)) {
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                    "final check skipped: set.%s reads its own target, so a converted row cannot be told "
                    "from one still to convert (give a where to have it checked)",
                    bf->set[i].column);
            return 0;
        }
    char *sql = zdm_bf_sql_unconverted(w, 0);
    char *v = NULL;
    int64_t t0 = zdm_mono_ms();
    int rc = zdm_db_query_value(w->db, sql, 0, NULL, &v, err);
    free(sql);
    *left = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    if (rc != 0) {
        zdm_err_prefix(err, "final check of the backfill of %s: ", w->plan->id);
        return rc;
    }
    zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "final check: %lld row%s of %s still to convert (%lld ms)",
            *left, *left == 1 ? "" : "s", bf->table, (long long)(zdm_mono_ms() - t0));
    return 0;
}

/* The first few keys of the rows still to convert, for a message. */
static void left_keys(worker *w, zdm_buf *keys)
{
    char *sql = zdm_bf_sql_unconverted(w, 5);
    zdm_rows *r = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_db_query(w->db, sql, 0, NULL, &r, &e) == 0)
        for (int i = 0; i < zdm_rows_count(r); i++) {
            char *k = zdm_bf_key_json(r, i, (int)w->key.n);
            zdm_buf_printf(keys, "%s%s", i ? ", " : "", k);
            free(k);
        }
    zdm_rows_free(r);
    free(sql);
    if (!keys->data)
        zdm_buf_puts(keys, "?");
}

/* Why rows are still left, for left_error. */
enum left_why { LEFT_TOO_MANY, LEFT_UNCONVERTIBLE, LEFT_AFTER_SWEEP, LEFT_SELF };

/* Refuses with the count and the first few keys. */
static int left_error(worker *w, long long left, enum left_why why, zdm_err *err)
{
    static const char *const said[] = {
        [LEFT_TOO_MANY] = ", too many to convert at the end",
        [LEFT_UNCONVERTIBLE] = ", none of which its expressions convert as the data stands",
        [LEFT_AFTER_SWEEP] = ", after this run converted the rows its check found once",
        [LEFT_SELF] = (": a set expression reads its own target, so converting them again would change them "
                       "again, and zdm does not"),
    };
    const zdm_backfill *bf = w->plan->backfill;
    zdm_buf keys = {0};
    left_keys(w, &keys);
    zdm_err_set(err, ZDM_EXIT_FAIL,
                "backfill of %s walked every range but %lld row%s of %s still need%s conversion%s%s%s (keys %s%s)%s",
                w->plan->id, left, left == 1 ? "" : "s", bf->table, left == 1 ? "s" : "",
                bf->where ? " (match where " : "", bf->where ? bf->where : "", bf->where ? ")" : "",
                keys.data, left > 5 ? ", ..." : "", said[why]);
    zdm_buf_free(&keys);
    if (why == LEFT_SELF) {
        zdm_err_detail(err, "the plan stays expanded and nothing was converted twice; a converted row must stop "
                            "matching where (where names a target the conversion changes). If those rows were "
                            "converted already, where is wrong: fix the plan (zdm rollback %s first); if they are "
                            "new rows, convert them by hand and record the phase with \"zdm stamp %s backfilled\"",
                       w->plan->id, w->plan->id);
        return ZDM_EXIT_FAIL;
    }
    zdm_err_detail(err, "the plan stays expanded; the set expressions leave those rows unconverted (e.g. they "
                        "return NULL where the where asks for a value, or are volatile)%s. A new \"zdm backfill "
                        "%s\" converts the rows its check finds (up to %d), once, and checks again: fix the data "
                        "or the plan so that they can be converted, then run it; or \"zdm rollback %s\"",
                   why == LEFT_TOO_MANY ? ", or more rows were left than the end of a run converts" : "",
                   w->plan->id, SWEEP_MAX, w->plan->id);
    return ZDM_EXIT_FAIL;
}

/* Keys per statement of the sweep: each statement evaluates `where` (a
 * subquery in it perhaps over the whole table) once. */
#define SWEEP_CHUNK 500

/* One chunk of the sweep, a batch-like transaction: the dual-write
 * triggers' mark, an UPDATE of those keys that still need conversion, a
 * done range of its own holding their count (so the ranges' rows_done
 * still add up to the rows the backfill converted), one commit.  *n: the
 * rows converted (0: nothing recorded, rolled back). */
static int sweep_chunk(worker *w, const zdm_rows *keys, int at, int chunk, const char **params, int64_t *n,
                       zdm_err *err)
{
    const char *id[] = {w->plan->id};
    int nk = (int)w->key.n;
    *n = 0;
    for (int i = 0; i < chunk; i++)
        for (int c = 0; c < nk; c++)
            params[i * nk + c] = zdm_rows_get(keys, at + i, c);
    int rc = zdm_db_begin(w->db, err);
    if (rc != 0)
        return rc;
    rc = zdm_db_query(w->db, w->d->batch_begin, 1, id, NULL, err);
    if (rc == 0) {
        char *sql = zdm_bf_sql_sweep(w, chunk);
        rc = zdm_db_query(w->db, sql, chunk * nk, params, NULL, err);
        free(sql);
        if (rc == 0)
            *n = zdm_db_changes(w->db);
    }
    if (rc == 0 && w->d->batch_end)
        rc = zdm_db_query(w->db, w->d->batch_end, 1, id, NULL, err);
    if (rc == 0 && *n > 0)
        rc = zdm_state_ranges_swept(w->db, w->plan->id, *n, err);
    if (rc == 0 && *n > 0)
        rc = zdm_db_commit(w->db, err);
    else
        zdm_db_rollback(w->db); /* nothing converted: nothing to record */
    if (rc != 0)
        *n = 0;
    return rc;
}

/* Converts the rows the final check found, by key: their keys are read
 * first (a plain read: no lock held while `where` is evaluated over the
 * table), then SWEEP_CHUNK keys a transaction (sweep_chunk), each
 * committed with its count, so a crash loses at most the chunk in
 * flight and the next run finds only the rows still left.  Between
 * chunks the write lock (SQLite) is left free as between batches (the
 * pacer's writer gap): with a `where` that scans the table, each chunk
 * holds it for a scan.  A row that a `where` reading other rows started
 * to match after its range was walked is converted here, and so is a row
 * whose data was fixed after a failed check. */
static int sweep(worker *w, long long left, int64_t *converted, zdm_err *err)
{
    zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "final check: %lld row%s of %s still to convert after every "
            "range was walked; converting them now", left, left == 1 ? "" : "s", w->plan->backfill->table);
    char *sql = zdm_bf_sql_unconverted(w, SWEEP_MAX);
    zdm_rows *keys = NULL;
    int rc = zdm_db_query(w->db, sql, 0, NULL, &keys, err);
    free(sql);
    int nrows = rc == 0 ? zdm_rows_count(keys) : 0;
    const char **params = zdm_xcalloc((size_t)SWEEP_CHUNK * w->key.n + 1, sizeof *params);
    int64_t n = 0;
    for (int at = 0; rc == 0 && at < nrows; at += SWEEP_CHUNK) {
        if (at > 0 && w->d->one_writer && w->pacer.latency_pct) {
            /* whether the application writes (a run that only sweeps
             * has not probed yet): the pause is then the lock's share */
            zdm_err pe;
            zdm_err_clear(&pe);
            (void)zdm_bf_probe_latency(w, 0, &pe);
            int64_t gap = zdm_pacer_writer_gap_ms(&w->pacer);
            /* a pause of seconds is said (a costly where: 199 x a scan) */
            zdm_log(gap >= 1000 ? ZDM_LOG_INFO : ZDM_LOG_DEBUG, w->plan->id, "backfill",
                    "final check: %lld of %d rows converted; the write lock (held %.1f ms) is left to the "
                    "application for %.1f s before the next %d",
                    (long long)n, nrows, (double)w->pacer.lock_us / 1000.0, (double)gap / 1000.0,
                    nrows - at < SWEEP_CHUNK ? nrows - at : SWEEP_CHUNK);
            zdm_sig_sleep_ms(gap);
        }
        if (zdm_sig_caught()) {
            rc = zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "interrupted after %lld row%s", (long long)n,
                             n == 1 ? "" : "s");
            break;
        }
        int chunk = nrows - at < SWEEP_CHUNK ? nrows - at : SWEEP_CHUNK;
        int64_t c = 0, t0 = zdm_mono_us();
        rc = sweep_chunk(w, keys, at, chunk, params, &c, err);
        zdm_pacer_lock_held(&w->pacer, zdm_mono_us() - t0);
        n += c;
    }
    free(params);
    zdm_rows_free(keys);
    *converted = n;
    w->rows_mine += n;
    if (rc != 0) {
        zdm_err_prefix(err, "converting the rows the final check found (%lld converted and kept): ",
                       (long long)n);
        return rc;
    }
    if (n > 0)
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "final check: converted %lld row%s; checking again",
                (long long)n, n == 1 ? "" : "s");
    return 0;
}

/* When every range is done (and no row still matches `where`), moves the
 * plan to backfilled -- once, whichever worker gets here first. */
static int finish_once(worker *w, int may_sweep, int *swept, int *all_done, int *others, zdm_err *err)
{
    int64_t n = 0, done = 0, rows = 0;
    int rc = zdm_state_ranges_summary(w->db, w->plan->id, &n, &done, &rows, err);
    if (rc != 0)
        return rc;
    *all_done = n == done;
    *others = (int)(n - done);
    if (!*all_done)
        return 0;
    /* Workers that run out of ranges together would each run the final
     * check, a scan of the whole table (and of a costly `where`) at once:
     * with 2 workers on 1M rows two scans of ~0.35 s side by side, ~9 % of
     * the backfill.  Where rows lock (PostgreSQL), the first holds a range
     * row through its check and its commit; the next waits there and
     * finds the plan finished -- or, after a minute (the holder stalled),
     * checks and finishes without it.  (On SQLite that transaction would
     * hold the one write lock through the scan: not there.) */
    int serial = w->d->lock_row[0] != '\0';
    if (serial) {
        int finished = 0;
        rc = zdm_db_begin(w->db, err);
        if (rc == 0)
            rc = zdm_state_ranges_finish_lock(w->db, w->plan->id, ZDM_RANGE_STALE_MS, &finished, err);
        if (rc == 0 && finished)
            return zdm_db_commit(w->db, err);
        if (rc != 0) {
            zdm_db_rollback(w->db);
            if (!zdm_db_err_is_lock_timeout(err))
                return rc;
            zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "another worker has been finishing the plan for %d s (%s); "
                    "running the final check without it", ZDM_RANGE_STALE_MS / 1000, err->msg);
            zdm_err_clear(err);
            serial = 0;
        }
    }
    long long left = 0;
    rc = count_left(w, &left, err);
    if (rc == 0 && left > 0) {
        if (serial)
            zdm_db_rollback(w->db); /* the sweep runs transactions of its own */
        /* set.n = "n + 1": a converted row differs from its expression
         * again, so the sweep converted every row the walk had (n = 2,
         * and 3 after the advised rerun) */
        for (size_t i = 0; i < w->plan->backfill->nset; i++)
            if (zdm_dw_names(w->plan->backfill->set[i].expr, w->plan->backfill->set[i].column))
                return left_error(w, left, LEFT_SELF, err);
        if (!may_sweep || left > SWEEP_MAX)
            return left_error(w, left, may_sweep ? LEFT_TOO_MANY : LEFT_AFTER_SWEEP, err);
        int64_t converted = 0;
        rc = sweep(w, left, &converted, err);
        /* none converted: the expressions cannot, or the rows were
         * converted by another meanwhile -- counted again to tell */
        if (rc == 0 && converted == 0 && (rc = count_left(w, &left, err)) == 0 && left > 0)
            return left_error(w, left, LEFT_UNCONVERTIBLE, err);
        *swept = rc == 0;
        return rc;
    }
    if (rc != 0) {
        if (serial)
            zdm_db_rollback(w->db);
        return rc;
    }
    char detail[200], d[32];
    snprintf(detail, sizeof detail, "backfill finished: %lld rows converted (this worker: %lld in %s)",
             (long long)rows, (long long)w->rows_mine, zdm_format_duration(zdm_mono_ms() - w->start_ms, d, sizeof d));
    if (!serial && (rc = zdm_db_begin(w->db, err)) != 0)
        return rc;
    /* Inside the transaction: on SQLite it holds the write lock, so zdm
     * unlock cannot take the lock row away between this check and the
     * commit; on PostgreSQL a restart after it fails the commit. */
    if (w->o->guard && !zdm_mutant("backfill_unguarded") && (rc = w->o->guard(w->o->guard_arg, err)) != 0) {
        zdm_db_rollback(w->db);
        return rc;
    }
    int moved = 0;
    rc = zdm_state_backfill_complete(w->db, w->plan->id, detail, &moved, err);
    if (rc == 0)
        rc = zdm_db_commit(w->db, err);
    else
        zdm_db_rollback(w->db);
    /* Said, and the after_backfill hooks owed, once it is so: a commit
     * that failed (SQLite busy) is rolled back and tried again later. */
    if (rc == 0 && moved) {
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "%s; plan is backfilled", detail);
        w->finished_plan = 1;
    }
    return rc;
}

/* When every range is done, the final check passes and the plan moves to
 * backfilled; rows the check finds are converted once, then it checks
 * again. */
int zdm_bf_finish(worker *w, int *all_done, int *others, zdm_err *err)
{
    for (int round = 0;; round++) {
        int swept = 0;
        int rc = finish_once(w, round == 0, &swept, all_done, others, err);
        if (rc != 0 || !swept)
            return rc;
    }
}

/* ---- losing the server ---- */

int zdm_bf_connection_lost(const zdm_err *err)
{
    const char *st = err->sqlstate;
    return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
           strcmp(st, "57P03") == 0;
}

/* Reopens the worker's connection, waiting with backoff while the server
 * is away.  The batch in flight was rolled back by the server; the range
 * is claimed again like any other. */
int zdm_bf_reconnect(worker *w, zdm_err *err)
{
    int64_t wait = 500;
    zdm_db_cancel_disarm();
    zdm_db_close(w->db);
    w->db = NULL;
    w->range_id = -1;
    for (int attempt = 1; !zdm_sig_caught(); attempt++) {
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_open(w->o->url, &w->db, &e) == 0) {
            zdm_bf_session(w);
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "reconnected after %d tr%s", attempt,
                    attempt == 1 ? "y" : "ies");
            zdm_db_cancel_arm(w->db);
            zdm_err_clear(err);
            return 0;
        }
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "database unreachable (%s); retrying in %lld ms",
                e.msg, (long long)wait);
        zdm_sig_sleep_ms(wait);
        wait = wait * 2 > 30000 ? 30000 : wait * 2;
    }
    return ZDM_EXIT_INTERRUPTED;
}

/* The worker reconnected its own connection, but the server may have
 * dropped the caller's with it (a restart mid-backfill): the caller goes
 * on to read the plan's state, record history and release its lock on that
 * connection, and failed with "server closed the connection" after a
 * backfill that had finished.  Give it a live connection, in place. */
void zdm_bf_revive_caller(zdm_db *db, const char *url, const zdm_plan *plan)
{
    if (!db || zdm_db_in_transaction(db))
        return;
    zdm_err e;
    zdm_err_clear(&e);
    char *v = NULL;
    int rc = zdm_db_query_value(db, "SELECT 1", 0, NULL, &v, &e);
    free(v);
    if (rc == 0 || !zdm_bf_connection_lost(&e))
        return;
    zdm_err_clear(&e);
    if (zdm_db_reopen(db, url, &e) != 0)
        zdm_log(ZDM_LOG_WARN, plan->id, "backfill", "could not reopen the main connection: %s", e.msg);
}
