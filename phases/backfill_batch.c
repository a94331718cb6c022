/*
 * backfill_batch.c -- one batch of a claimed range.
 *
 * Owns: the batch's transaction: the range's cursor read under its row
 * lock with the owner checked (fencing), the rows converted, and the
 * cursor moved in the same commit -- a worker killed at any instant loses
 * only the uncommitted batch.  Also the integer-span fast path and naming
 * the key range of a failed batch.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_int.h"

/* ---- one batch ---- */

/* Runs of locked rows one batch records as revisit ranges; more, and the
 * batch waits for them instead (an application that locks every other
 * row would otherwise make a range per row). */
#define MAX_REVISITS 16

/* Spans of integer keys between two looks at how far apart the keys are
 * (span_density). */
#define SPAN_LOOK_EVERY 8

/* One key column of integers, past the first batch of a range, where the
 * dialect converts a batch in one statement (span_sql): the batch is the
 * span of key values (cursor, cursor + size], converted by one index
 * range scan with no separate pass over its keys.  After a span
 * with nothing to convert, the cursor jumps to just before the next
 * existing key, so sparse keys do not cost a batch per gap.  Fills *last
 * (the new cursor); returns -1 when the keys are not integers.
 *
 * While the pacer is latency-aware (max_latency_factor > 0, the default)
 * the batch passes over rows another session holds locked (span_skip_sql)
 * instead of waiting for them: each run of them (no converted row between)
 * becomes a new range in the batch's own commit
 * (zdm_state_ranges_revisit), so a kill at any instant leaves them on
 * record and the plan is not backfilled before they are converted.  When
 * the range's last batch passes over rows, it returns -2: rolled back,
 * tried again later (the range stays this worker's, not done). */
static int span_batch(worker *w, const char *cursor, int64_t size, int *range_done, int64_t *scanned,
                      int64_t *updated, char **last, zdm_err *err)
{
    long long c, h;
    if (!w->span_sql || !zdm_state_key_int(cursor, &c) || !zdm_state_key_int(w->hi, &h))
        return -1;
    /* unsigned: h - c overflows for keys at both ends of bigint */
    long long e = ((unsigned long long)h - (unsigned long long)c > (unsigned long long)size) ? c + (long long)size : h;
    char cs[32], es[32], hs[32];
    snprintf(cs, sizeof cs, "%lld", c);
    snprintf(es, sizeof es, "%lld", e);
    snprintf(hs, sizeof hs, "%lld", h);
    const char *p[] = {cs, es};
    /* latency-aware (the default): pass over the rows the application
     * holds locked rather than wait for them (and hold ours meanwhile) */
    int skip = w->span_skip_sql && w->pacer.latency_pct;
    zdm_rows *sk = NULL;
    int rc = 0;
    if (skip) {
        /* the first look: when it locked every row to convert, the plain
         * span statement converts them (it meets no lock of another) */
        rc = zdm_db_query(w->db, w->span_lock_sql, 2, p, &sk, err);
        if (rc == 0 && zdm_rows_count(sk) == 1 && strcmp(zdm_rows_get(sk, 0, 0), zdm_rows_get(sk, 0, 1)) == 0)
            skip = 0;
        zdm_rows_free(sk);
        sk = NULL;
    }
    if (rc == 0)
        rc = zdm_db_query(w->db, skip ? w->span_skip_sql : w->span_sql, 2, p, skip ? &sk : NULL, err);
    if (rc != 0) {
        zdm_err_prefix(err, "batch of range %d, keys after [\"%lld\"] up to [\"%lld\"]: ", w->range_id, c, e);
        return rc;
    }
    int64_t passed = 0;
    if (skip) {
        int runs = zdm_rows_count(sk) - 1;
        if (runs >= 0)
            *updated = strtoll(zdm_rows_get(sk, 0, 1), NULL, 10);
        for (int i = 1; i <= runs; i++)
            passed += strtoll(zdm_rows_get(sk, i, 1), NULL, 10);
        if (passed > 0 && (e >= h || runs > MAX_REVISITS)) {
            /* the range's last batch passed over rows held locked (a
             * revisit range made of it would be this batch again), or
             * too many runs of them to record: the caller rolls it back
             * and tries again later, holding nothing meanwhile */
            zdm_rows_free(sk);
            w->locked_wait_ms = w->locked_wait_ms ? w->locked_wait_ms * 2 : 50;
            if (w->locked_wait_ms > 1000)
                w->locked_wait_ms = 1000;
            *last = NULL;
            return -2;
        }
        w->locked_wait_ms = 0;
        /* each run of rows passed over becomes a range, recorded in this
         * batch's commit */
        for (int i = 1; rc == 0 && i <= runs; i++) {
            long long first = strtoll(zdm_rows_get(sk, i, 2), NULL, 10);
            char *after = zdm_xasprintf("[\"%lld\"]", first - 1); /* first > c: no overflow */
            char *up_to = zdm_xasprintf("[\"%s\"]", zdm_rows_get(sk, i, 3));
            int id = -1;
            rc = zdm_state_ranges_revisit(w->db, w->plan->id, after, up_to, &id, err);
            if (rc == 0) {
                long long n = strtoll(zdm_rows_get(sk, i, 1), NULL, 10);
                w->rows_skipped += n;
                zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                        "range %d: %lld row%s held locked by another session passed over (keys %s..%s); "
                        "range %d revisits them", w->range_id, n, n == 1 ? "" : "s", zdm_rows_get(sk, i, 2),
                        zdm_rows_get(sk, i, 3), id);
            }
            free(after);
            free(up_to);
        }
        zdm_rows_free(sk);
        if (rc != 0)
            return rc;
    } else {
        *updated = zdm_db_changes(w->db);
    }
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
    /* Where batches do not look first every few (PostgreSQL), the span
     * tells the keys' spread itself when there is no where (its rows are
     * all the rows of the span): more than two key values a row, and the
     * next batch looks for its last key first (span_density then says
     * when they are dense again).  Ids 1000 apart made batches of a
     * fiftieth of their size, and under max_rows_per_second or latency
     * pacing (which count a span's width) 4 to 200 rows a second. */
    if (!w->span_looks && !w->plan->backfill->where)
        w->span_sparse = (unsigned long long)e - (unsigned long long)c > 2 * (unsigned long long)(*updated + passed);
    /* walk_skips, a mutant: the cursor passes one key it did not convert */
    *last = zdm_xasprintf("[\"%lld\"]", zdm_mutant("walk_skips") && e < h ? e + 1 : e);
    return 0;
}


/* Where the dialect vouches for integer keys (w->int_key) spans are the
 * rule; on SQLite (w->span_looks) a batch that looks for its last key
 * first (convert) measures how the keys are spread: every
 * SPAN_LOOK_EVERY-th batch of spans, and every batch while they are
 * sparse -- more than two key values a row, where a span of `size` values
 * would convert a fraction of `size` rows (ids 1000 apart: 50 rows a
 * batch).  A span's own count cannot tell: it counts the rows `where`
 * matched, and a where that matches few rows of dense keys is no reason
 * to look first. */
static void span_density(worker *w, const char *cursor, int64_t scanned, const char *last)
{
    long long c, l;
    if (!w->int_key)
        return;
    if (!cursor) { /* a range's first batch from its very start: its first key, and so the spread, unknown */
        w->span_sparse = w->span_looks; /* where spans tell the spread (above), the next one says */
        return;
    }
    if (!last || !zdm_state_key_int(cursor, &c) || !zdm_state_key_int(last, &l))
        return;
    w->span_batches = 0;
    /* unsigned: keys at both ends of int64 */
    w->span_sparse = (unsigned long long)l - (unsigned long long)c > 2 * (unsigned long long)(scanned > 0 ? scanned : 0);
}

/* A batch found and converted in one statement (batch_one_statement):
 * when that statement fails the batch's last key is not known.  Roll back
 * and look it up (the batch's keys, same parameters), so the error names
 * the failed batch's whole key range ("after X up to Y") as the two-step
 * form does, and the operator can find the row that broke it. */
static void name_failed_batch(worker *w, const char *cursor, const char **params, int np, zdm_err *err)
{
    char *last = NULL;
    if (!zdm_bf_connection_lost(err)) {
        zdm_db_rollback(w->db);
        char *sql = zdm_bf_sql_last_key(w, cursor != NULL);
        zdm_rows *r = NULL;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_query(w->db, sql, np, params, &r, &e) == 0 && zdm_rows_count(r) == 1)
            last = zdm_bf_key_json(r, 0, (int)w->key.n);
        zdm_rows_free(r);
        free(sql);
    }
    zdm_err_prefix(err, "batch of range %d, keys after %s%s%s: ", w->range_id, cursor ? cursor : "the start",
                   last ? " up to " : "", last ? last : "");
    free(last);
}

/* Finds the batch after `cursor` (NULL: the range's first) of at most
 * `size` keys and converts its rows.  *last: its last key (malloc'd; NULL
 * when the range had no keys left). */
static int convert(worker *w, const char *cursor, int64_t size, int *range_done, int64_t *scanned,
                   int64_t *updated, char **last, zdm_err *err)
{
    int n = (int)w->key.n, one = w->d->batch_one_statement;
    char sizes[32];
    snprintf(sizes, sizeof sizes, "%lld", (long long)size);
    json_t *jc = NULL, *jh = NULL, *jl = NULL, *jc2 = NULL;
    zdm_rows *r = NULL;
    const char *params[1 + 2 * 8];
    int np = 0, rc = 0;
    params[np++] = sizes;
    if (n > 8) {
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "backfill keys of more than 8 columns are not supported");
        goto out;
    }
    if (cursor && (rc = zdm_bf_key_params(cursor, &jc, params, &np, w->key.n, err)) != 0)
        goto out;
    if ((rc = zdm_bf_key_params(w->hi, &jh, params, &np, w->key.n, err)) != 0)
        goto out;
    /* Peek (or, in one statement, convert): where does this batch end? */
    rc = zdm_db_query(w->db, (one ? w->combo_sql : w->peek_sql)[cursor != NULL], np, params, &r, err);
    if (rc != 0) {
        if (one)
            name_failed_batch(w, cursor, params, np, err);
        goto out;
    }
    if (zdm_rows_count(r) == 0) {
        *range_done = 1;
        goto out;
    }
    *scanned = strtoll(zdm_rows_get(r, 0, n), NULL, 10);
    *last = zdm_bf_key_json(r, 0, n);
    /* fewer keys than asked, or the last is the range's bound: a full
     * batch ending at the bound left an empty one to find that out */
    *range_done = *scanned < size || (w->hi && strcmp(*last, w->hi) == 0);
    if (one) {
        *updated = strtoll(zdm_rows_get(r, 0, n + 1), NULL, 10);
        goto out;
    }
    /* Convert every row from the cursor up to the batch's last key. */
    np = 0;
    if (cursor)
        rc = zdm_bf_key_params(cursor, &jc2, params, &np, w->key.n, err);
    if (rc == 0)
        rc = zdm_bf_key_params(*last, &jl, params, &np, w->key.n, err);
    if (rc == 0)
        rc = zdm_db_query(w->db, w->update_sql[cursor != NULL], np, params, NULL, err);
    if (rc == 0)
        *updated = zdm_db_changes(w->db);
    if (rc != 0)
        zdm_err_prefix(err, "batch of range %d, keys after %s up to %s: ", w->range_id, cursor ? cursor : "the start",
                       *last);
out:
    zdm_rows_free(r);
    json_decref(jc);
    json_decref(jh);
    json_decref(jl);
    json_decref(jc2);
    return rc;
}

/* Opens the batch's transaction: the backfill's mark (and the dialect's
 * lock timeout), then the range's cursor read under its row lock.  *mine
 * = 0 when the range is done or no longer this worker's: nothing to do. */
static int open_batch(worker *w, char **cursor, int *range_done, int *mine, zdm_err *err)
{
    const char *id = w->plan->id;
    *mine = 0;
    /* A signal that came just before the BEGIN is seen here. */
    if (zdm_sig_caught())
        return zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "backfill of %s interrupted before a batch", id);
    /* The mark the dual-write triggers step aside for; on PostgreSQL also
     * a lock timeout: a batch never waits long for a lock (a table locked
     * by another session), the wait is logged and retried with backoff
     * (failed()), and a worker told to stop meanwhile stops -- a stuck
     * batch would hold SIGTERM and /metrics hostage. */
    const char *p[] = {id};
    int rc = zdm_db_query(w->db, w->d->batch_begin, 1, p, NULL, err);
    /* The cursor, read under the range's row lock: a second worker that
     * believes it owns the range waits here and then sees our cursor.  The
     * owner is read under the same lock (fencing): a worker that was cut
     * off or stalled long enough for another to take its range over finds
     * that out here, in the batch's own transaction, and never commits a
     * batch of a range that is no longer its own. */
    char *owner = NULL, *hi = NULL;
    int done = 0;
    if (rc == 0)
        rc = zdm_state_ranges_lock(w->db, id, w->range_id, cursor, &done, &owner, &hi, err);
    /* the range's bound, read under the same lock: an idle worker may have
     * split the range and taken its upper part (zdm_state_ranges_split) */
    if (rc == 0 && hi && (!w->hi || strcmp(hi, w->hi) != 0)) {
        zdm_log(ZDM_LOG_INFO, id, "backfill", "range %d now ends at %s (another worker took the keys after it)",
                w->range_id, hi);
        free(w->hi);
        w->hi = hi;
        hi = NULL;
    }
    free(hi);
    if (rc == 0 && done) { /* finished by someone else */
        *range_done = 1;
    } else if (rc == 0 && (!owner || strcmp(owner, w->me) != 0)) {
        zdm_log(ZDM_LOG_WARN, id, "backfill", "range %d was taken over by %s while this worker was away; "
                "leaving it (no batch of it committed) and claiming another",
                w->range_id, owner ? owner : "nobody (released)");
        w->range_id = -1;
    } else if (rc == 0) {
        *mine = 1;
    }
    free(owner);
    return rc;
}

/* In the batch's transaction, after its rows: the cursor moves in the
 * same commit (checkpoint_split, a mutant, commits the rows first). */
static int record(worker *w, const char *last, int64_t updated, int range_done, zdm_err *err)
{
    const char *p[] = {w->plan->id};
    int rc = 0;
    if (zdm_mutant("checkpoint_split")) { /* the batch commits before its checkpoint */
        rc = zdm_db_commit(w->db, err);
        if (rc == 0)
            rc = zdm_db_begin(w->db, err);
        if (rc != 0)
            return rc;
    }
    if (w->d->batch_end && (rc = zdm_db_query(w->db, w->d->batch_end, 1, p, NULL, err)) != 0)
        return rc;
    zdm_state_rate rate;
    zdm_bf_rate(w, updated, &rate);
    rc = zdm_state_ranges_advance(w->db, w->plan->id, w->range_id, last, updated, range_done, &rate, err);
    if (rc == 0 && w->pacer.latency_pct && updated > 0) {
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
    return rc;
}

/* Converts the next batch of the claimed range.  *range_done is set when
 * the range has no rows left.  *scanned / *updated count keys and rows. */
int zdm_bf_batch(worker *w, int64_t size, int *range_done, int64_t *scanned, int64_t *updated,
                 zdm_err *err)
{
    *range_done = 0;
    *scanned = *updated = 0;
    char *last = NULL, *cursor = NULL;
    int mine = 0;
    /* Until its commit, the first SIGTERM cancels the batch (rolled back:
     * the range resumes at its committed cursor), from the BEGIN on: on
     * SQLite that is where a batch waits for the write lock. */
    zdm_db_cancel_first(1);
    int rc = zdm_db_begin(w->db, err);
    if (rc != 0) {
        zdm_db_cancel_first(0);
        return rc;
    }
    rc = open_batch(w, &cursor, range_done, &mine, err);
    if (rc != 0 || !mine)
        goto out; /* done by another, or fenced: rolled back, nothing written */
    int sr = -1;
    if (w->worklist)
        sr = zdm_bf_worklist_batch(w, cursor, size, range_done, scanned, updated, &last, err);
    else if (cursor && !(w->span_sparse || (w->span_looks && w->span_batches >= SPAN_LOOK_EVERY)))
        sr = span_batch(w, cursor, size, range_done, scanned, updated, &last, err);
    if (sr == 0)
        w->span_batches++;
    if (sr == -2) {
        /* the range's last batch passed over rows another session holds
         * locked: nothing committed, nothing held while waiting */
        zdm_db_rollback(w->db);
        char line[128];
        snprintf(line, sizeof line, "waiting for rows held locked by another session (range %d)", w->range_id);
        zdm_bf_heartbeat(w, line, 0);
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "range %d: %s; trying again in %lld ms", w->range_id, line,
                (long long)w->locked_wait_ms);
        zdm_db_cancel_first(0);
        zdm_sig_sleep_ms(w->locked_wait_ms);
        free(cursor);
        return 0;
    }
    if (sr > 0)
        rc = sr;
    else if (sr < 0 && (rc = convert(w, cursor, size, range_done, scanned, updated, &last, err)) == 0)
        span_density(w, cursor, *scanned, last);
    if (rc == 0)
        rc = record(w, last, *updated, *range_done, err);
    if (rc == 0 && last) {
        free(w->cursor);
        w->cursor = last;
        last = NULL;
    }
out:
    zdm_db_cancel_first(0);
    if (rc != 0 || zdm_db_in_transaction(w->db)) /* an error, fenced, or done by another */
        zdm_db_rollback(w->db);
    free(last);
    free(cursor);
    return rc;
}
