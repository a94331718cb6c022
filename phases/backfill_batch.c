/*
 * backfill_batch.c -- one batch of a claimed range.
 *
 * Owns: the batch's transaction: the range's cursor read under its row
 * lock with the owner checked (fencing), the rows converted, and the
 * cursor moved in the same commit -- a worker killed at any instant loses
 * only the uncommitted batch.  Also the integer-span fast path and naming
 * the key range of a failed batch.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backfill_int.h"

/* ---- one batch ---- */

/* The integer in a one-column key tuple ["123"], if it is one. */
static int int_key(const char *json, long long *out)
{
    if (!json || strncmp(json, "[\"", 2) != 0)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(json + 2, &end, 10);
    if (errno || end == json + 2 || strcmp(end, "\"]") != 0)
        return 0;
    *out = v;
    return 1;
}

/* PostgreSQL, one integer key, past the first batch of a range: the batch
 * is the span of key values (cursor, cursor + size], converted by one
 * index range scan with no separate pass over its keys.  After a span
 * with nothing to convert, the cursor jumps to just before the next
 * existing key, so sparse keys do not cost a batch per gap.  Fills *last
 * (the new cursor); returns -1 when the keys are not integers. */
static int span_batch(worker *w, const char *cursor, int64_t size, int *range_done, int64_t *scanned,
                      int64_t *updated, char **last, zdm_err *err)
{
    long long c, h;
    if (!w->span_sql || !int_key(cursor, &c) || !int_key(w->hi, &h))
        return -1;
    /* unsigned: h - c overflows for keys at both ends of bigint */
    long long e = ((unsigned long long)h - (unsigned long long)c > (unsigned long long)size) ? c + (long long)size : h;
    char cs[32], es[32], hs[32];
    snprintf(cs, sizeof cs, "%lld", c);
    snprintf(es, sizeof es, "%lld", e);
    snprintf(hs, sizeof hs, "%lld", h);
    const char *p[] = {cs, es};
    int rc = zdm_db_query(w->db, w->span_sql, 2, p, NULL, err);
    if (rc != 0) {
        zdm_err_prefix(err, "batch of range %d, keys after [\"%lld\"] up to [\"%lld\"]: ", w->range_id, c, e);
        return rc;
    }
    *updated = zdm_db_changes(w->db);
    if (*updated == 0 && e < h) {
        const char *p2[] = {es, hs};
        char *v = NULL;
        rc = zdm_db_query_value(w->db, w->next_key_sql, 2, p2, &v, err);
        if (rc != 0)
            return rc;
        /* no key left up to h: the span ends the range (h + 1 would
         * overflow at the top of bigint) */
        long long next_m1 = v ? strtoll(v, NULL, 10) - 1 : h;
        free(v);
        e = next_m1 > h ? h : next_m1 > e ? next_m1 : e;
    }
    *scanned = (unsigned long long)e - (unsigned long long)c >= (unsigned long long)size ? size : e - c;
    *range_done = e >= h;
    *last = zdm_xasprintf("[\"%lld\"]", e);
    return 0;
}


/* PostgreSQL finds and converts a batch in one statement, so when that
 * statement fails the batch's last key is not known.  Roll back and look
 * it up (the batch's keys, same parameters), so the error names the failed
 * batch's whole key range ("after X up to Y") as on SQLite, and the
 * operator can find the row that broke it. */
static void name_failed_batch(worker *w, const char *cursor, const char **params, int np, zdm_err *err)
{
    char *last = NULL;
    if (!zdm_bf_connection_lost(err)) {
        zdm_db_rollback(w->db);
        zdm_buf b = {0};
        zdm_buf_puts(&b, "SELECT ");
        zdm_bf_cols_list(w, &b, "");
        zdm_buf_puts(&b, " FROM (");
        zdm_bf_batch_keys(w, &b, cursor != NULL);
        zdm_buf_puts(&b, ") zdm_batch ORDER BY ");
        zdm_bf_cols_list(w, &b, " DESC");
        zdm_buf_puts(&b, " LIMIT 1");
        zdm_rows *r = NULL;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_query(w->db, b.data, np, params, &r, &e) == 0 && zdm_rows_count(r) == 1)
            last = zdm_bf_key_json(r, 0, (int)w->key.n);
        zdm_rows_free(r);
        zdm_buf_free(&b);
    }
    zdm_err_prefix(err, "batch of range %d, keys after %s%s%s: ", w->range_id, cursor ? cursor : "the start",
                   last ? " up to " : "", last ? last : "");
    free(last);
}

/* Converts the next batch of the claimed range.  *range_done is set when
 * the range has no rows left.  *scanned / *updated count keys and rows. */
int zdm_bf_batch(worker *w, int64_t size, int *range_done, int64_t *scanned, int64_t *updated,
                 zdm_err *err)
{
    const char *id = w->plan->id;
    char sql[400], rid[16], sizes[32];
    snprintf(rid, sizeof rid, "%d", w->range_id);
    snprintf(sizes, sizeof sizes, "%lld", (long long)size);
    *range_done = 0;
    *scanned = *updated = 0;
    int n = (int)w->key.n;
    json_t *jc = NULL, *jh = NULL, *jl = NULL, *jc2 = NULL;
    zdm_rows *r = NULL;
    char *last = NULL, *cursor = NULL;

    /* Until its commit, the first SIGTERM cancels the batch (rolled back:
     * the range resumes at its committed cursor), from the BEGIN on: on
     * SQLite that is where a batch waits for the write lock.  A signal
     * that came just before is seen below. */
    zdm_db_cancel_first(1);
    int rc = zdm_db_begin(w->db, err);
    if (rc != 0) {
        zdm_db_cancel_first(0);
        return rc;
    }
    if (zdm_sig_caught()) {
        rc = zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "backfill of %s interrupted before a batch", id);
        goto out;
    }
    /* A batch never waits long for a lock (a table locked by another
     * session): it gives up after BATCH_LOCK_TIMEOUT, the wait is logged
     * and retried with backoff (fail()), and a worker told to stop meanwhile
     * stops -- a stuck batch would hold SIGTERM and /metrics hostage. */
    if (w->pg)
        rc = zdm_db_query(w->db, "SELECT set_config('lock_timeout', '" BATCH_LOCK_TIMEOUT "', true)", 0, NULL,
                          NULL, err);
    if (rc != 0)
        goto out;
    /* The cursor, read under the range's row lock: a second worker that
     * believes it owns the range waits here and then sees our cursor.  The
     * owner is read under the same lock (fencing): a worker that was cut
     * off or stalled long enough for another to take its range over finds
     * that out here, in the batch's own transaction, and never commits a
     * batch of a range that is no longer its own. */
    if (w->pg) {
        snprintf(sql, sizeof sql, "SELECT cursor, done, owner, set_config('zdm.backfill', $3, true) FROM %s "
                                  "WHERE plan_id = $1 AND range_id = $2 FOR UPDATE", T(w, "ranges"));
        const char *p[] = {id, rid, id};
        rc = zdm_db_query(w->db, sql, 3, p, &r, err);
    } else {
        snprintf(sql, sizeof sql, "INSERT INTO zdm_guard (plan_id) VALUES ($1)");
        const char *pg_[] = {id};
        rc = zdm_db_query(w->db, sql, 1, pg_, NULL, err);
        if (rc == 0) {
            snprintf(sql, sizeof sql, "SELECT cursor, done, owner FROM %s WHERE plan_id = $1 AND range_id = $2",
                     T(w, "ranges"));
            const char *p[] = {id, rid};
            rc = zdm_db_query(w->db, sql, 2, p, &r, err);
        }
    }
    if (rc == 0 && zdm_rows_count(r) != 1)
        rc = zdm_err_set(err, ZDM_EXIT_FAIL, "range %d of %s vanished from zdm's ranges table", w->range_id, id);
    if (rc != 0)
        goto out;
    if (atoi(zdm_rows_get(r, 0, 1))) { /* finished by someone else */
        *range_done = 1;
        goto out;
    }
    if (!zdm_rows_get(r, 0, 2) || strcmp(zdm_rows_get(r, 0, 2), w->me) != 0) {
        zdm_log(ZDM_LOG_WARN, id, "backfill", "range %d was taken over by %s while this worker was away; "
                "leaving it (no batch of it committed) and claiming another",
                w->range_id, zdm_rows_get(r, 0, 2) ? zdm_rows_get(r, 0, 2) : "nobody (released)");
        w->range_id = -1;
        goto out; /* rolled back: rc is 0 and nothing was written */
    }
    cursor = zdm_rows_get(r, 0, 0) ? zdm_xstrdup(zdm_rows_get(r, 0, 0)) : NULL;
    zdm_rows_free(r);
    r = NULL;

    if (w->worklist) {
        rc = zdm_bf_worklist_batch(w, cursor, size, range_done, scanned, updated, &last, err);
        if (rc != 0)
            goto out;
        goto record;
    }
    if (w->pg && cursor) {
        int sr = span_batch(w, cursor, size, range_done, scanned, updated, &last, err);
        if (sr == 0)
            goto record;
        if (sr > 0) {
            rc = sr;
            goto out;
        }
    }

    /* Peek: where does this batch end? */
    const char *params[1 + 2 * 8];
    int np = 0;
    params[np++] = sizes;
    if (n > 8) {
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "backfill keys of more than 8 columns are not supported");
        goto out;
    }
    if (cursor && (rc = zdm_bf_key_params(cursor, &jc, params, &np, w->key.n, err)) != 0)
        goto out;
    if ((rc = zdm_bf_key_params(w->hi, &jh, params, &np, w->key.n, err)) != 0)
        goto out;
    rc = zdm_db_query(w->db, (w->pg ? w->combo_sql : w->peek_sql)[cursor != NULL], np, params, &r, err);
    if (rc != 0) {
        if (w->pg)
            name_failed_batch(w, cursor, params, np, err);
        goto out;
    }
    if (zdm_rows_count(r) == 0) {
        *range_done = 1;
    } else if (w->pg) {
        *scanned = strtoll(zdm_rows_get(r, 0, n), NULL, 10);
        *updated = strtoll(zdm_rows_get(r, 0, n + 1), NULL, 10);
        last = zdm_bf_key_json(r, 0, n);
        *range_done = *scanned < size;
    } else {
        *scanned = strtoll(zdm_rows_get(r, 0, n), NULL, 10);
        last = zdm_bf_key_json(r, 0, n);
        *range_done = *scanned < size;
        /* Convert every row from the cursor up to the batch's last key. */
        np = 0;
        if (cursor)
            rc = zdm_bf_key_params(cursor, &jc2, params, &np, w->key.n, err);
        if (rc == 0)
            rc = zdm_bf_key_params(last, &jl, params, &np, w->key.n, err);
        if (rc == 0)
            rc = zdm_db_query(w->db, w->update_sql[cursor != NULL], np, params, NULL, err);
        if (rc == 0)
            *updated = zdm_db_changes(w->db);
        if (rc != 0) {
            zdm_err_prefix(err, "batch of range %d, keys after %s up to %s: ", w->range_id,
                           cursor ? cursor : "the start", last);
            goto out;
        }
    }
record:
    if (zdm_mutant("checkpoint_split")) { /* the batch commits before its checkpoint */
        rc = zdm_db_commit(w->db, err);
        if (rc == 0)
            rc = zdm_db_begin(w->db, err);
        if (rc != 0)
            goto out;
    }
    if (!w->pg) {
        const char *pg_[] = {id};
        rc = zdm_db_query(w->db, "DELETE FROM zdm_guard WHERE plan_id = $1", 1, pg_, NULL, err);
        if (rc != 0)
            goto out;
    }
    {
        char now[32], upd[32];
        snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
        snprintf(upd, sizeof upd, "%lld", (long long)*updated);
        snprintf(sql, sizeof sql,
                 "UPDATE %s SET cursor = COALESCE($3, cursor), rows_done = rows_done + $4, batches = batches + 1, "
                 "done = $5, heartbeat_ms = $6, last_batch_ms = $6, throttle = NULL WHERE plan_id = $1 AND range_id = $2",
                 T(w, "ranges"));
        const char *p[] = {id, rid, last, upd, *range_done ? "1" : "0", now};
        rc = zdm_db_query(w->db, sql, 6, p, NULL, err);
    }
    if (rc == 0 && w->pacer.latency_pct && *updated > 0) {
        /* the application waiting on this batch's row locks, seen while
         * they are still held: the pacer backs off */
        long long blocked = 0;
        rc = zdm_db_blocked_by_me(w->db, &blocked, err);
        if (rc == 0)
            zdm_pacer_blocked(&w->pacer, blocked);
    }
    zdm_db_cancel_first(0); /* the commit is not cancelled: its outcome would be unknown */
    if (rc == 0)
        rc = zdm_db_commit(w->db, err);
    if (rc == 0 && last) {
        free(w->cursor);
        w->cursor = last;
        last = NULL;
    }
out:
    zdm_db_cancel_first(0);
    if (rc != 0 || zdm_db_in_transaction(w->db)) /* an error, fenced, or done by another */
        zdm_db_rollback(w->db);
    zdm_rows_free(r);
    json_decref(jc);
    json_decref(jh);
    json_decref(jl);
    json_decref(jc2);
    free(last);
    free(cursor);
    return rc;
}
