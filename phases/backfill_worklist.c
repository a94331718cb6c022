/*
 * backfill_worklist.c -- the work-list strategy, for a `where` that is
 * costly per statement.
 *
 * Owns: choosing the strategy (PostgreSQL, one integer key, a `where`
 * whose planner cost for one batch is many times the batch's cost without
 * it: a subquery over the whole table, say), and the batch of that
 * strategy.
 *
 * Why: a batch evaluates `where` once per statement.  When `where` costs
 * a scan of the table (de-duplication: "k IN (SELECT k FROM t GROUP BY k
 * HAVING count(*) > 1)"), every batch pays that scan, and a backfill of
 * many small batches takes many times one UPDATE.  Instead the worker
 * collects, once per claimed range, the keys that match together with
 * each row's version (xmin), in key order, in its memory (at most
 * WL_MAX keys at a time: collected again from there when used up), then
 * converts by key, batch after batch, with no `where` to evaluate: a row is
 * converted only if its version is still the one that matched.  A row
 * written since (its xmin moved) is checked against `where` again, in the
 * same batch, by key: converted if it still matches, untouched if not.
 * Rows that start matching after the collection are the dual-write
 * triggers' job, as in the ranges strategy.
 *
 * The cursor and the fencing are the batch's (backfill_batch.c): the list
 * is only a cache of "the matching keys after the committed cursor", so a
 * worker restarted, or a range taken over, collects again from the
 * committed cursor, and a batch that rolled back is simply redone.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_int.h"

/* keys held at once: 16 bytes each, 1 MiB */
#define WL_MAX 65536
/* `where` is costly when one batch with it is planned at more than this
 * many times the batch without it, and at least WL_MIN_COST more (cost
 * units: about one page read each). */
#define WL_FACTOR 10.0
#define WL_MIN_COST 1000.0

void zdm_bf_choose_strategy(worker *w)
{
    const zdm_backfill *bf = w->plan->backfill;
    w->worklist = 0;
    const char *why = "one integer key on PostgreSQL and a where are needed for a work list";
    char detail[160] = "";
    char *type = NULL;
    /* the dialect's work-list support: the key's type and planner costs */
    if (w->d->column_type && w->d->plan_cost && bf->where && w->key.n == 1)
        type = w->d->column_type(w->db, bf->table, w->key.v[0]);
    if (type && (strcmp(type, "bigint") == 0 || strcmp(type, "integer") == 0 || strcmp(type, "smallint") == 0)) {
        /* one batch's span, with and without `where`, as the planner sees
         * it (UPDATE: the same plan as the batch, not run) */
        zdm_buf a = {0}, b = {0};
        char *k = zdm_db_ident(w->db, w->key.v[0]);
        zdm_bf_update_set(w, &a);
        zdm_buf_printf(&a, " WHERE %s > $1 AND %s <= $2 AND (%s)", k, k, bf->where);
        zdm_bf_update_set(w, &b);
        zdm_buf_printf(&b, " WHERE %s > $1 AND %s <= $2", k, k);
        free(k);
        const char *lo = "0", *hi = "1000";
        const char *p[] = {lo, hi};
        double with = w->d->plan_cost(w->db, a.data, 2, p), without = w->d->plan_cost(w->db, b.data, 2, p);
        zdm_buf_free(&a);
        zdm_buf_free(&b);
        if (with >= 0 && without >= 0) {
            snprintf(detail, sizeof detail, "planner cost of a batch %.0f with where, %.0f without", with, without);
            if (with > WL_FACTOR * (without > 1 ? without : 1) && with - without > WL_MIN_COST) {
                w->worklist = 1;
                why = "where costs a scan per statement";
            } else {
                why = "where is cheap per batch";
            }
        } else {
            why = "the planner gave no cost";
        }
    } else if (!bf->where) {
        why = "no where";
    }
    free(type);
    zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "strategy: %s (%s%s%s)",
            w->worklist ? "work list: the matching keys collected once per range, converted by key"
                        : "key ranges: each batch converts a span of keys",
            why, detail[0] ? "; " : "", detail);
}

void zdm_bf_worklist_free(worker *w)
{
    free(w->wl_keys);
    free(w->wl_xmin);
    w->wl_keys = NULL;
    w->wl_xmin = NULL;
    w->wl_n = 0;
    w->wl_range = -1;
}

/* Collects up to WL_MAX matching keys after `c` (has_c = 0: from the
 * range's start) up to h, in key order, with their row versions. */
static int collect(worker *w, int has_c, long long c, long long h, zdm_err *err)
{
    zdm_bf_worklist_free(w);
    char *k = zdm_db_ident(w->db, w->key.v[0]);
    zdm_buf b = {0};
    zdm_buf_printf(&b, "/* zdm backfill */ SELECT %s, xmin::text FROM %s WHERE ", k, w->tbl);
    if (has_c)
        zdm_buf_printf(&b, "%s > $2 AND ", k);
    zdm_buf_printf(&b, "%s <= $1 AND (%s) ORDER BY %s LIMIT %d", k, w->plan->backfill->where, k, WL_MAX);
    free(k);
    char cs[32], hs[32];
    snprintf(cs, sizeof cs, "%lld", c);
    snprintf(hs, sizeof hs, "%lld", h);
    const char *p[] = {hs, cs};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(w->db, b.data, has_c ? 2 : 1, p, &r, err);
    zdm_buf_free(&b);
    if (rc != 0)
        return rc;
    int n = zdm_rows_count(r);
    w->wl_keys = malloc(sizeof *w->wl_keys * (size_t)(n ? n : 1));
    w->wl_xmin = malloc(sizeof *w->wl_xmin * (size_t)(n ? n : 1));
    if (!w->wl_keys || !w->wl_xmin) {
        zdm_rows_free(r);
        zdm_bf_worklist_free(w);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "out of memory for the work list");
    }
    for (int i = 0; i < n; i++) {
        w->wl_keys[i] = strtoll(zdm_rows_get(r, i, 0), NULL, 10);
        w->wl_xmin[i] = strtoll(zdm_rows_get(r, i, 1), NULL, 10);
    }
    zdm_rows_free(r);
    w->wl_n = n;
    w->wl_range = w->range_id;
    w->wl_has_after = has_c;
    w->wl_after = c;
    w->wl_complete = n < WL_MAX; /* every matching key up to h is in the list */
    w->wl_collections++;
    zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "range %d: work list of %d matching keys collected", w->range_id,
            n);
    return 0;
}

/* The first list index whose key is past c. */
static int first_after(const worker *w, long long c)
{
    int lo = 0, hi = w->wl_n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (w->wl_keys[mid] <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void log_done(worker *w)
{
    zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
            "range %d done by work list: %lld collection(s) of its matching keys, %lld row(s) written "
            "since checked against where again", w->range_id, (long long)w->wl_collections,
            (long long)w->wl_rechecked);
}

int zdm_bf_worklist_batch(worker *w, const char *cursor, int64_t size, int *range_done, int64_t *scanned,
                          int64_t *updated, char **last, zdm_err *err)
{
    long long c = 0, h;
    int has_c = cursor != NULL;
    if ((has_c && !zdm_state_key_int(cursor, &c)) || !zdm_state_key_int(w->hi, &h))
        return zdm_err_set(err, ZDM_EXIT_FAIL, "work list: range %d's bounds are not integer keys", w->range_id);
    /* the list is valid when it was collected for this range from at or
     * before the committed cursor, and still holds keys past it (or holds
     * every matching key up to the range's end) */
    int valid = w->wl_keys && w->wl_range == w->range_id &&
                (!w->wl_has_after || (has_c && c >= w->wl_after));
    int pos = valid ? (has_c ? first_after(w, c) : 0) : 0;
    if (valid && pos >= w->wl_n && !w->wl_complete)
        valid = 0;
    if (!valid) {
        int64_t t0 = zdm_mono_ms();
        int rc = collect(w, has_c, c, h, err);
        w->wl_collect_ms = zdm_mono_ms() - t0;
        if (rc != 0)
            return rc;
        pos = 0;
    }
    int m = (int)(w->wl_n - pos < size ? w->wl_n - pos : size);
    if (m <= 0) { /* nothing matches past the cursor: the range is done */
        *range_done = 1;
        *last = zdm_xasprintf("[\"%lld\"]", h);
        log_done(w);
        return 0;
    }
    zdm_buf keys = {0}, xmins = {0}, sql = {0};
    zdm_buf_puts(&keys, "{");
    zdm_buf_puts(&xmins, "{");
    for (int i = 0; i < m; i++) {
        zdm_buf_printf(&keys, "%s%lld", i ? "," : "", w->wl_keys[pos + i]);
        zdm_buf_printf(&xmins, "%s%lld", i ? "," : "", w->wl_xmin[pos + i]);
    }
    zdm_buf_puts(&keys, "}");
    zdm_buf_puts(&xmins, "}");
    char *k = zdm_db_ident(w->db, w->key.v[0]);
    /* by key and row version: no `where` to evaluate */
    zdm_buf_puts(&sql, "/* zdm backfill */ ");
    zdm_bf_update_set(w, &sql);
    zdm_buf_printf(&sql, " FROM unnest($1::bigint[], $2::xid[]) AS zdm_wl(zdm_k, zdm_x) WHERE %s.%s = zdm_wl.zdm_k "
                         "AND %s.xmin = zdm_wl.zdm_x RETURNING %s.%s", w->tbl, k, w->tbl, w->tbl, k);
    const char *p[] = {keys.data, xmins.data};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(w->db, sql.data, 2, p, &r, err);
    long long first = w->wl_keys[pos], lastk = w->wl_keys[pos + m - 1];
    if (rc == 0) {
        int nu = zdm_rows_count(r);
        *updated = nu;
        if (nu < m) {
            /* rows written since the collection: `where` again, for them only */
            long long *done = malloc(sizeof *done * (size_t)(nu ? nu : 1));
            if (!done)
                rc = zdm_err_set(err, ZDM_EXIT_FAIL, "out of memory for the work list");
            for (int i = 0; rc == 0 && i < nu; i++)
                done[i] = strtoll(zdm_rows_get(r, i, 0), NULL, 10);
            if (rc == 0) {
                qsort(done, (size_t)nu, sizeof *done, cmp_ll);
                zdm_buf again = {0};
                zdm_buf_puts(&again, "{");
                int na = 0;
                for (int i = 0; i < m; i++) {
                    long long key = w->wl_keys[pos + i];
                    if (!bsearch(&key, done, (size_t)nu, sizeof *done, cmp_ll))
                        zdm_buf_printf(&again, "%s%lld", na++ ? "," : "", key);
                }
                zdm_buf_puts(&again, "}");
                zdm_buf_free(&sql);
                zdm_buf_puts(&sql, "/* zdm backfill */ ");
                zdm_bf_update_set(w, &sql);
                zdm_buf_printf(&sql, " WHERE %s = ANY ($1::bigint[]) AND (%s)", k, w->plan->backfill->where);
                const char *p2[] = {again.data};
                rc = zdm_db_query(w->db, sql.data, 1, p2, NULL, err);
                if (rc == 0) {
                    *updated += zdm_db_changes(w->db);
                    w->wl_rechecked += na;
                }
                zdm_buf_free(&again);
            }
            free(done);
        }
    }
    if (rc != 0)
        zdm_err_prefix(err, "work-list batch of range %d, keys %lld to %lld: ", w->range_id, first, lastk);
    free(k);
    zdm_rows_free(r);
    zdm_buf_free(&keys);
    zdm_buf_free(&xmins);
    zdm_buf_free(&sql);
    if (rc != 0)
        return rc;
    *scanned = m;
    /* what is left to convert is known exactly once the list holds every
     * matching key of the range (progress) */
    w->wl_left = w->wl_complete ? w->wl_n - pos - m : -1;
    /* the list's last key with nothing more to collect: the range is done
     * up to its end */
    if (pos + m >= w->wl_n && w->wl_complete) {
        *range_done = 1;
        *last = zdm_xasprintf("[\"%lld\"]", h);
        log_done(w);
    } else {
        *last = zdm_xasprintf("[\"%lld\"]", lastk);
    }
    return 0;
}
