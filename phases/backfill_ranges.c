/*
 * backfill_ranges.c -- the key ranges of a backfill and who works on them.
 *
 * Owns: splitting the key space into ranges when the first worker starts
 * (integer keys by the driver's quantiles or equal widths, other keys at
 * quantiles of a sample), claiming a free range (one whose owner is gone
 * or stale), splitting a busy range for an idle worker (by the rows it has
 * left), and releasing it.  The ranges themselves are state's
 * (state_ranges.c).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_int.h"

/* ---- initialisation: the ranges ---- */

static int is_int(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    (void)strtoll(s, &end, 10);
    return *end == '\0' && errno == 0;
}

/* How many ranges for est rows: enough for several workers, few enough
 * that claiming is cheap: about 10,000 rows each, at most cap.  Each
 * range costs a claim and at least one batch of its own (a commit each,
 * an fsync with fsync on): 64 ranges of 15,600 rows for 1M rows cost
 * ~0.3 s against 3 s of UPDATE.  Fewer, larger ranges cost no balance:
 * an idle worker splits a busy integer range (zdm_bf_split).  A range
 * larger than the largest batch holds a whole number of them: 16 ranges
 * of 62,500 rows took a full batch and a quarter-full one each (32
 * batches where 20 do; on SQLite 0.1 s of a 0.68 s backfill). */
static long long ranges_wanted(const worker *w, int64_t est, long long cap)
{
    long long want = est / 10000;
    want = want < 1 ? 1 : want > cap ? cap : want;
    long long most = w->pacer.max_size, per = (est + want - 1) / want;
    if (most > 0 && per > most && !zdm_mutant("ranges_unaligned")) {
        per = (per + most - 1) / most * most;
        want = (est + per - 1) / per;
    }
    return want;
}

/* One integer key from lov to hiv: the upper bounds of the ranges.  *est
 * (the row estimate) is filled from the key span when there are no
 * statistics. */
static void int_bounds(worker *w, long long lov, long long hiv, int64_t *est, zdm_strv *bounds)
{
    /* In unsigned arithmetic: hiv - lov overflows a signed 64-bit integer
     * for keys spread over the whole bigint range (-9e18 .. 9e18), and
     * hiv - lov + 1 wraps to 0 for the very ends.  ukeys is the number of
     * key values minus one, which always fits. */
    unsigned long long ukeys = (unsigned long long)hiv - (unsigned long long)lov;
    if (zdm_mutant("range_overflow")) /* the span in signed 64 bits */
        ukeys = (unsigned long long)(hiv - lov);
    /* no statistics yet: the key span, capped so that the progress
     * arithmetic (rows * 1000 / rate) cannot overflow */
    if (*est <= 0)
        *est = ukeys >= 1000000000000ULL ? 1000000000000LL : (int64_t)ukeys + 1;
    long long want = ranges_wanted(w, *est, 16);
    /* the work list: each range pays one evaluation of the costly
     * `where` to collect its keys, so one range */
    if (w->worklist)
        want = 1;
    if ((unsigned long long)(want - 1) > ukeys)
        want = (long long)ukeys + 1;
    /* want * width >= ukeys + 1: the ranges cover every key; a width
     * larger than the largest batch is a whole number of them (the span
     * batches count key values: ranges_wanted) */
    unsigned long long width = ukeys / (unsigned long long)want + 1;
    unsigned long long most = w->pacer.max_size > 0 ? (unsigned long long)w->pacer.max_size : 0;
    if (most > 0 && width > most && width <= ~0ULL - most && !zdm_mutant("ranges_unaligned"))
        width = (width + most - 1) / most * most;
    /* Split by the rows the keys hold, not by equal widths of the key
     * span: the driver's quantiles of the key (pg: the column's
     * statistics), when it has them.  Skewed keys (1..1e6 and a few near
     * 1e12) otherwise put every row in one range, and a second worker has
     * nothing to do.  Not where one writer converts at a time (SQLite):
     * workers take turns whatever their ranges hold, and the sample costs
     * a scan of the table (a tenth of a 1,000,000-row backfill). */
    long long *q = NULL;
    int nq = 0;
    if (want > 1 && !w->d->one_writer &&
        zdm_db_key_quantiles(w->db, w->plan->backfill->table, w->key.v[0], (int)want, &q, &nq) == 0 && nq > 0)
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "ranges split at %d quantiles of the key", nq);
    int qi = 0;
    long long last_top = lov;
    for (long long i = 0; i < want; i++) {
        long long top = hiv;
        if (nq > 0) {
            if (i < want - 1) { /* the last range ends at hiv */
                while (qi < nq && q[qi] <= last_top)
                    qi++;
                if (qi < nq && q[qi] < hiv)
                    top = q[qi++];
            }
        } else if (i < want - 1) {
            unsigned long long off = (unsigned long long)(i + 1) * width - 1;
            if (off < ukeys)
                top = (long long)((unsigned long long)lov + off);
        }
        last_top = top;
        zdm_strv_push_owned(bounds, zdm_xasprintf("[\"%lld\"]", top));
        if (top == hiv)
            break;
    }
    free(q);
}

/* Other keys (text, composite): split at quantiles of a sample of the
 * key (zdm_db_key_splits), about 10,000 rows a range as for integers; one
 * range when there is no sample (pg before ANALYZE) or a work list.  The
 * last range ends at the table's last key, `hi`. */
static void sampled_bounds(worker *w, int64_t est, const zdm_rows *hi, zdm_strv *bounds)
{
    long long want = ranges_wanted(w, est, 64);
    zdm_rows *sp = NULL;
    if (want > 1 && !w->worklist)
        (void)zdm_db_key_splits(w->db, w->plan->backfill->table, (const char *const *)w->key.v, (int)w->key.n,
                                (int)want, &sp);
    int ns = sp ? zdm_rows_count(sp) : 0;
    for (int i = 0; i < ns; i++)
        zdm_strv_push_owned(bounds, zdm_bf_key_json(sp, i, (int)w->key.n));
    zdm_strv_push_owned(bounds, zdm_bf_key_json(hi, 0, (int)w->key.n));
    zdm_rows_free(sp);
    if (ns > 0)
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "ranges split at %d sampled keys", ns);
}

/* The first worker bounds the work now: rows above the table's last key
 * arrive after the triggers exist and are theirs.  Reads only: the
 * bounds of the ranges and the rows to convert, into *bounds and *conv. */
static int split_compute(worker *w, zdm_strv *bounds, int64_t *conv_out, zdm_err *err)
{
    zdm_rows *hi = NULL, *lo = NULL;
    char *sql = zdm_bf_sql_edge(w, 1);
    int rc = zdm_db_query(w->db, sql, 0, NULL, &hi, err);
    free(sql);
    if (rc == 0) {
        sql = zdm_bf_sql_edge(w, 0);
        rc = zdm_db_query(w->db, sql, 0, NULL, &lo, err);
        free(sql);
    }
    const zdm_backfill *bf = w->plan->backfill;
    int64_t est = 0;
    if (rc == 0)
        rc = w->d->row_estimate(w->db, bf->table, &est, err);
    /* Progress counts the rows to convert: with a `where`, those it
     * matches (the dialect's estimate or count), not the whole table.
     * Ranges are still cut by the rows the keys hold (est). */
    int64_t conv = est, matching = 0;
    if (rc == 0 && bf->where && w->d->where_estimate &&
        w->d->where_estimate(w->db, w->tbl, bf->where, &matching) == 0)
        conv = matching;
    if (rc == 0 && zdm_rows_count(hi) == 1) {
        const char *h0 = zdm_rows_get(hi, 0, 0), *l0 = zdm_rows_get(lo, 0, 0);
        /* numbers cut a key's span only where the key orders as numbers
         * (w->int_key): a text key of digits cut at 6250 and 12500 (text:
         * '12500' < '6250') had keys in two ranges, converted twice */
        if (w->key.n == 1 && w->int_key && is_int(h0) && is_int(l0))
            int_bounds(w, strtoll(l0, NULL, 10), strtoll(h0, NULL, 10), &est, bounds);
        else
            sampled_bounds(w, est, hi, bounds);
    }
    if (!bf->where || conv < 0)
        conv = est;
    *conv_out = conv;
    zdm_rows_free(hi);
    zdm_rows_free(lo);
    return rc;
}

/* In the transaction that holds the backfills row: the ranges recorded. */
static int split_record(worker *w, const zdm_strv *bounds, int64_t conv, zdm_err *err)
{
    const zdm_backfill *bf = w->plan->backfill;
    int rc = zdm_state_ranges_init(w->db, w->plan->id, &w->key, bounds, conv, err);
    w->total_est = conv;
    if (rc == 0)
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                "started: about %lld rows of %s to convert in %zu range%s, key (%s%s)", (long long)conv, bf->table,
                bounds->n, bounds->n == 1 ? "" : "s", w->key.v[0], w->key.n > 1 ? ", ..." : "");
    return rc;
}

/* The reads that size and cut the ranges run before the transaction, as
 * plain reads, when no worker has split the key space yet: on SQLite they
 * can cost a scan of the table (the count of a table whose rowids are
 * sparse or absent, the count of a `where`, the sample of a text or
 * composite key, sorted), and the transaction holds the one write lock
 * from its BEGIN IMMEDIATE -- every write of the application waited for
 * them (500,000 rows, text key: ~60 ms warm, more from disk).  Two
 * workers starting at once both read; the one that gets the backfills
 * row first records its split, the other uses it. */
int zdm_bf_init_ranges(worker *w, zdm_err *err)
{
    zdm_strv bounds = {0};
    int64_t conv = 0;
    int cut = 0, rc = 0;
    zdm_backfill_progress bp;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_backfill_progress_get(w->db, w->plan->id, &bp, &e) != 0 || !bp.started) {
        rc = split_compute(w, &bounds, &conv, err);
        cut = rc == 0;
    }
    if (rc == 0)
        rc = zdm_db_begin(w->db, err);
    if (rc != 0) {
        zdm_strv_free(&bounds);
        return rc;
    }
    zdm_state_backfill bf;
    rc = zdm_state_backfill_lock(w->db, w->plan->id, &bf, err);
    if (rc == 0) {
        w->total_est = bf.total_est;
        if (bf.started_ms != 0) { /* already split by an earlier worker: use its key */
            zdm_strv_free(&w->key);
            w->key = bf.key;
            memset(&bf.key, 0, sizeof bf.key);
        } else {
            /* not read before: the ranges were there then (and reset
             * since, by a stamp), or the read failed */
            if (!cut)
                rc = split_compute(w, &bounds, &conv, err);
            if (rc == 0)
                rc = split_record(w, &bounds, conv, err);
        }
    }
    zdm_state_backfill_free(&bf);
    zdm_strv_free(&bounds);
    if (rc == 0)
        return zdm_db_commit(w->db, err);
    zdm_db_rollback(w->db);
    return rc;
}

/* ---- claiming ---- */

int zdm_bf_claim(worker *w, int *got, zdm_err *err)
{
    zdm_state_range r = {.id = -1};
    zdm_state_rate rate;
    zdm_bf_rate(w, 0, &rate);
    int rc = zdm_state_ranges_claim(w->db, w->plan->id, w->me, &rate, got, &r, err);
    if (rc == 0 && *got) {
        w->range_id = r.id;
        free(w->hi);
        free(w->cursor);
        w->hi = r.hi;
        w->cursor = r.cursor;
        r.hi = r.cursor = NULL;
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "claimed range %d (up to %s)", w->range_id, w->hi);
    }
    zdm_state_range_free(&r);
    return rc;
}

/* An idle worker takes the upper half of the rows left in the busiest
 * range held by another worker (not with a work list, whose every range
 * costs a collection), so N workers stay busy to the end.  By rows, not by
 * the width of the key span: with skewed keys (1..1e6 and a few near
 * 1e12) half the span holds a thousand rows, and the idle worker would
 * split again and again for nothing while the owner converts the rest
 * alone.  Any key, integer or not: the rows are counted and the middle
 * one found through the key's index. */
#define SPLIT_MIN_ROWS 2000
#define SPLIT_TRIES 3
#define SPLIT_RECOUNT_MAX 200000

/* The keys after `cursor` (NULL: from the start) up to `hi`: *n counted;
 * with mid, the key after which the upper half begins (malloc'd). */
static int range_keys(worker *w, const char *cursor, const char *hi, long long *n, char **mid, zdm_err *err)
{
    json_t *jc = NULL, *jh = NULL;
    const char *params[2 * 8 + 1];
    int np = 0, rc = 0, with_cursor = cursor != NULL;
    char off[32];
    *n = 0;
    if (mid)
        *mid = NULL;
    if (w->key.n > 8)
        return 0; /* the batches refuse them */
    if (with_cursor)
        rc = zdm_bf_key_params(cursor, &jc, params, &np, w->key.n, err);
    if (rc == 0)
        rc = zdm_bf_key_params(hi, &jh, params, &np, w->key.n, err);
    char *v = NULL;
    if (rc == 0) {
        char *sql = zdm_bf_sql_count_keys(w, with_cursor);
        rc = zdm_db_query_value(w->db, sql, np, params, &v, err);
        free(sql);
        *n = v ? strtoll(v, NULL, 10) : 0;
        free(v);
    }
    if (rc == 0 && mid && *n >= 2) {
        /* the lower half, (cursor, mid], keeps n / 2 keys */
        snprintf(off, sizeof off, "%lld", *n / 2 - 1);
        params[np++] = off;
        char *sql = zdm_bf_sql_key_at(w, with_cursor);
        zdm_rows *r = NULL;
        rc = zdm_db_query(w->db, sql, np, params, &r, err);
        free(sql);
        if (rc == 0 && zdm_rows_count(r) == 1)
            *mid = zdm_bf_key_json(r, 0, (int)w->key.n);
        zdm_rows_free(r);
    }
    json_decref(jc);
    json_decref(jh);
    return rc;
}

/* *yes = 1 when a key lies after `cursor` (NULL: from the start) up to
 * `upto`: one index probe, not a count. */
static int key_after(worker *w, const char *cursor, const char *upto, int *yes, zdm_err *err)
{
    json_t *jc = NULL, *jh = NULL;
    const char *params[2 * 8 + 1];
    int np = 0, rc = 0, with_cursor = cursor != NULL;
    *yes = 0;
    if (w->key.n > 8)
        return 0;
    if (with_cursor)
        rc = zdm_bf_key_params(cursor, &jc, params, &np, w->key.n, err);
    if (rc == 0)
        rc = zdm_bf_key_params(upto, &jh, params, &np, w->key.n, err);
    if (rc == 0) {
        params[np++] = "0";
        char *sql = zdm_bf_sql_key_at(w, with_cursor);
        zdm_rows *r = NULL;
        rc = zdm_db_query(w->db, sql, np, params, &r, err);
        free(sql);
        *yes = rc == 0 && zdm_rows_count(r) == 1;
        zdm_rows_free(r);
    }
    json_decref(jc);
    json_decref(jh);
    return rc;
}

/* One try: the busiest range by rows left (counted without locks), then
 * under its row lock -- after its owner's batch in flight has committed,
 * so the cursor is the committed one and the owner's next batch reads the
 * new bound -- counted again and cut in the middle.  *again: the range
 * changed hands or was split meanwhile; look again.  A range with no
 * owner yet is a candidate too: two workers that finish their ranges at
 * once both claim the last free one; the loser's claim passes over it
 * (locked) and, before it waited for the winner's claim here, it found no
 * busy range either and left the winner a whole range alone (0.65 s of
 * one worker idle at the end of a 6 s run). */
static int split_once(worker *w, int *got, int *again, zdm_err *err)
{
    *got = *again = 0;
    zdm_rows *busy = NULL;
    int rc = zdm_state_ranges_busy(w->db, w->plan->id, w->me, &busy, err);
    int best = -1;
    long long most = 0;
    for (int i = 0; rc == 0 && i < zdm_rows_count(busy); i++) {
        long long n = 0;
        rc = range_keys(w, zdm_rows_get(busy, i, 1), zdm_rows_get(busy, i, 2), &n, NULL, err);
        if (rc == 0 && n > most) {
            most = n;
            best = i;
        }
    }
    if (rc != 0 || best < 0 || most < SPLIT_MIN_ROWS) {
        zdm_rows_free(busy);
        return rc;
    }
    int id = atoi(zdm_rows_get(busy, best, 0));
    char *seen_hi = zdm_xstrdup(zdm_rows_get(busy, best, 2));
    char *cursor = NULL, *owner = NULL, *hi = NULL, *mid = NULL;
    int done = 0, nid = -1;
    long long n = most;
    /* A large range is cut where its rows looked halved before the lock
     * (its owner waits on that lock: counting millions of keys under it
     * would stall its batches for seconds); its owner's batch in flight
     * is small beside it.  A smaller one is counted again under the lock,
     * after that batch, for an even cut at the end of the backfill. */
    /* Where one writer converts at a time (SQLite), the lock is the
     * database's write lock (BEGIN IMMEDIATE): nothing is counted under
     * it, the cut is always the one seen before it -- counting 200,000
     * keys there stalled every writer of the application meanwhile. */
    int recount = most <= SPLIT_RECOUNT_MAX && !w->d->one_writer;
    if (!recount)
        rc = range_keys(w, zdm_rows_get(busy, best, 1), seen_hi, &n, &mid, err);
    zdm_rows_free(busy);
    zdm_state_rate rate;
    zdm_bf_rate(w, 0, &rate);
    if (rc == 0)
        rc = zdm_db_begin(w->db, err);
    if (rc == 0)
        rc = zdm_state_ranges_lock(w->db, w->plan->id, id, &cursor, &done, &owner, &hi, err);
    if (rc == 0 && (done || !owner || strcmp(owner, w->me) == 0 || !hi || strcmp(hi, seen_hi) != 0))
        *again = 1; /* done, released, or split by another idle worker meanwhile */
    if (rc == 0 && !*again && recount) {
        rc = range_keys(w, cursor, hi, &n, &mid, err);
    } else if (rc == 0 && !*again && mid) {
        /* still a key after the owner's committed cursor up to mid? */
        int ahead = 0;
        rc = key_after(w, cursor, mid, &ahead, err);
        if (rc == 0 && !ahead)
            n = 0; /* its owner went past mid meanwhile: look again */
    }
    if (rc == 0 && !*again && n >= SPLIT_MIN_ROWS && mid)
        rc = zdm_state_ranges_split(w->db, w->plan->id, id, w->me, &rate, mid, hi, &nid, err);
    else if (rc == 0 && !*again)
        *again = 1; /* its owner's batch took most of what was left: another range may have more */
    if (rc == 0 && nid >= 0)
        rc = zdm_db_commit(w->db, err);
    if (rc != 0 || nid < 0) {
        zdm_db_rollback(w->db);
    } else {
        *got = 1;
        w->range_id = nid;
        free(w->hi);
        free(w->cursor);
        w->hi = hi;
        w->cursor = zdm_xstrdup(mid);
        hi = NULL;
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                "split range %d: took its keys after %s up to %s as range %d (%lld of its %lld rows left)", id, mid,
                w->hi, nid, n - n / 2, n);
    }
    free(seen_hi);
    free(cursor);
    free(owner);
    free(hi);
    free(mid);
    return rc;
}

int zdm_bf_split(worker *w, int *got, zdm_err *err)
{
    *got = 0;
    if (w->worklist)
        return 0;
    int again = 1, rc = 0;
    for (int i = 0; rc == 0 && !*got && again && i < SPLIT_TRIES; i++) {
        /* a range released meanwhile (or whose claim by another was
         * rolled back) is claimed as any free range */
        if (i > 0 && (rc = zdm_bf_claim(w, got, err)) != 0)
            break;
        if (!*got)
            rc = split_once(w, got, &again, err);
    }
    return rc;
}

void zdm_bf_release(worker *w)
{
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_state_ranges_release(w->db, w->plan->id, w->range_id, w->me, &e) != 0)
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "could not release range %d: %s", w->range_id, e.msg);
    w->range_id = -1;
}
