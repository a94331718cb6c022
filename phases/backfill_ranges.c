/*
 * backfill_ranges.c -- the key ranges of a backfill and who works on them.
 *
 * Owns: splitting the key space into ranges when the first worker starts
 * (integer keys by the driver's quantiles or equal widths, other keys as
 * one range), claiming a free range (one whose owner is gone or stale),
 * and releasing it.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int zdm_bf_init_ranges(worker *w, zdm_err *err)
{
    const char *id = w->plan->id;
    char sql[600], now[32];
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    int rc = zdm_db_begin(w->db, err);
    if (rc != 0)
        return rc;
    snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, key_cols, started_ms) VALUES ($1, '', 0) "
                              "ON CONFLICT (plan_id) DO NOTHING", T(w, "backfills"));
    const char *p1[] = {id};
    rc = zdm_db_query(w->db, sql, 1, p1, NULL, err);
    char *started = NULL;
    if (rc == 0) {
        snprintf(sql, sizeof sql, "SELECT started_ms, key_cols, total_est FROM %s WHERE plan_id = $1%s",
                 T(w, "backfills"), w->pg ? " FOR UPDATE" : "");
        zdm_rows *r = NULL;
        rc = zdm_db_query(w->db, sql, 1, p1, &r, err);
        if (rc == 0 && zdm_rows_count(r) == 1) {
            started = zdm_xstrdup(zdm_rows_get(r, 0, 0));
            w->total_est = strtoll(zdm_rows_get(r, 0, 2), NULL, 10);
            if (strcmp(started, "0") != 0) {
                /* Already split by an earlier worker: use its key. */
                json_error_t je;
                json_t *k = json_loads(zdm_rows_get(r, 0, 1), 0, &je);
                zdm_strv_free(&w->key);
                for (size_t i = 0; k && i < json_array_size(k); i++)
                    zdm_strv_push(&w->key, json_string_value(json_array_get(k, i)));
                json_decref(k);
            }
        }
        zdm_rows_free(r);
    }
    if (rc == 0 && started && strcmp(started, "0") == 0) {
        /* First worker: bound the work now.  Rows above the bound arrive
         * after the triggers exist and are theirs. */
        zdm_buf b = {0};
        zdm_buf_puts(&b, "SELECT ");
        zdm_bf_cols_list(w, &b, "");
        zdm_buf_printf(&b, " FROM %s ORDER BY ", w->tbl);
        zdm_bf_cols_list(w, &b, " DESC");
        zdm_buf_puts(&b, " LIMIT 1");
        zdm_rows *hi = NULL, *lo = NULL;
        rc = zdm_db_query(w->db, b.data, 0, NULL, &hi, err);
        zdm_buf_free(&b);
        if (rc == 0) {
            zdm_buf_puts(&b, "SELECT ");
            zdm_bf_cols_list(w, &b, "");
            zdm_buf_printf(&b, " FROM %s ORDER BY ", w->tbl);
            zdm_bf_cols_list(w, &b, "");
            zdm_buf_puts(&b, " LIMIT 1");
            rc = zdm_db_query(w->db, b.data, 0, NULL, &lo, err);
            zdm_buf_free(&b);
        }
        int64_t est = 0;
        if (rc == 0) {
            char *v = NULL;
            if (w->pg) {
                char *q = zdm_db_ident_path(w->db, w->plan->backfill->table);
                const char *pq[] = {q};
                rc = zdm_db_query_value(w->db, "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)",
                                        1, pq, &v, err);
                free(q);
            } else {
                char *cq = zdm_xasprintf("SELECT count(*) FROM %s", w->tbl);
                rc = zdm_db_query_value(w->db, cq, 0, NULL, &v, err);
                free(cq);
            }
            est = v ? strtoll(v, NULL, 10) : 0;
            free(v);
        }
        /* Progress counts the rows to convert: with a `where`, those it
         * matches (pg: the planner's estimate, nothing runs; sqlite: a
         * count), not the whole table.  Ranges are still cut by the rows
         * the keys hold (est). */
        int64_t conv = est;
        if (rc == 0 && w->plan->backfill->where) {
            zdm_buf b = {0};
            zdm_buf_printf(&b, "%s FROM %s WHERE (%s)", w->pg ? "EXPLAIN (FORMAT JSON) SELECT 1" : "SELECT count(*)",
                           w->tbl, w->plan->backfill->where);
            char *v = NULL;
            zdm_err e;
            zdm_err_clear(&e);
            if (zdm_db_query_value(w->db, b.data, 0, NULL, &v, &e) == 0 && v) {
                if (w->pg) {
                    json_error_t je;
                    json_t *j = json_loads(v, 0, &je);
                    json_t *pr = json_object_get(json_object_get(json_array_get(j, 0), "Plan"), "Plan Rows");
                    if (json_is_number(pr))
                        conv = (int64_t)json_number_value(pr);
                    json_decref(j);
                } else {
                    conv = strtoll(v, NULL, 10);
                }
            }
            free(v);
            zdm_buf_free(&b);
        }
        int nranges = 0;
        if (rc == 0 && zdm_rows_count(hi) == 1) {
            char *hij = zdm_bf_key_json(hi, 0, (int)w->key.n);
            const char *h0 = zdm_rows_get(hi, 0, 0), *l0 = zdm_rows_get(lo, 0, 0);
            if (w->key.n == 1 && is_int(h0) && is_int(l0)) {
                long long lov = strtoll(l0, NULL, 10), hiv = strtoll(h0, NULL, 10);
                /* In unsigned arithmetic: hiv - lov overflows a signed
                 * 64-bit integer for keys spread over the whole bigint
                 * range (-9e18 .. 9e18), and hiv - lov + 1 wraps to 0 for
                 * the very ends.  ukeys is the number of key values minus
                 * one, which always fits. */
                unsigned long long ukeys = (unsigned long long)hiv - (unsigned long long)lov;
                if (zdm_mutant("range_overflow")) /* the span in signed 64 bits */
                    ukeys = (unsigned long long)(hiv - lov);
                /* no statistics yet: the key span, capped so that the
                 * progress arithmetic (rows * 1000 / rate) cannot overflow */
                if (est <= 0)
                    est = ukeys >= 1000000000000ULL ? 1000000000000LL : (int64_t)ukeys + 1;
                /* Enough ranges for several workers, few enough that
                 * claiming is cheap: about 10,000 rows each, 1..64. */
                long long want = est / 10000;
                want = want < 1 ? 1 : want > 64 ? 64 : want;
                /* the work list: each range pays one evaluation of the
                 * costly `where` to collect its keys, so one range */
                if (w->worklist)
                    want = 1;
                if ((unsigned long long)(want - 1) > ukeys)
                    want = (long long)ukeys + 1;
                /* want * width >= ukeys + 1: the ranges cover every key */
                unsigned long long width = ukeys / (unsigned long long)want + 1;
                /* Split by the rows the keys hold, not by equal widths of
                 * the key span: the driver's quantiles of the key (pg:
                 * the column's statistics), when it has them.  Skewed keys
                 * (1..1e6 and a few near 1e12) otherwise put every row in
                 * one range, and a second worker has nothing to do. */
                long long *q = NULL;
                int nq = 0;
                if (want > 1 && zdm_db_key_quantiles(w->db, w->plan->backfill->table, w->key.v[0], (int)want,
                                                     &q, &nq) == 0 && nq > 0)
                    zdm_log(ZDM_LOG_DEBUG, id, "backfill", "ranges split at %d quantiles of the key", nq);
                int qi = 0;
                char prev[96] = "";
                long long last_top = lov;
                for (long long i = 0; rc == 0 && i < want; i++) {
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
                    char hib[96], rid[16];
                    snprintf(hib, sizeof hib, "[\"%lld\"]", top);
                    snprintf(rid, sizeof rid, "%lld", i);
                    snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, range_id, lo, hi, cursor) VALUES ($1, $2, $3, $4, $3)",
                             T(w, "ranges"));
                    const char *pr[] = {id, rid, prev[0] ? prev : NULL, hib};
                    rc = zdm_db_query(w->db, sql, 4, pr, NULL, err);
                    snprintf(prev, sizeof prev, "%s", hib);
                    nranges++;
                    if (top == hiv)
                        break;
                }
                free(q);
            } else {
                /* Other keys (text, composite): split at quantiles of a
                 * sample of the key (zdm_db_key_splits), about 10,000 rows
                 * a range as above; one range when there is no sample (pg
                 * before ANALYZE) or a work list.  Range i holds the keys
                 * after split i - 1 up to split i, the last one up to the
                 * table's last key; the cursor starts at the low bound. */
                long long want = est / 10000;
                want = want < 1 ? 1 : want > 64 ? 64 : want;
                zdm_rows *sp = NULL;
                if (want > 1 && !w->worklist)
                    (void)zdm_db_key_splits(w->db, w->plan->backfill->table, (const char *const *)w->key.v,
                                            (int)w->key.n, (int)want, &sp);
                int ns = sp ? zdm_rows_count(sp) : 0;
                char *prev = NULL;
                snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, range_id, lo, hi, cursor) VALUES ($1, $2, $3, $4, $3)",
                         T(w, "ranges"));
                for (int i = 0; rc == 0 && i <= ns; i++) {
                    char *top = i < ns ? zdm_bf_key_json(sp, i, (int)w->key.n) : zdm_xstrdup(hij);
                    char rid[16];
                    snprintf(rid, sizeof rid, "%d", i);
                    const char *pr[] = {id, rid, prev, top};
                    rc = zdm_db_query(w->db, sql, 4, pr, NULL, err);
                    free(prev);
                    prev = top;
                    nranges++;
                }
                free(prev);
                zdm_rows_free(sp);
                if (ns > 0)
                    zdm_log(ZDM_LOG_DEBUG, id, "backfill", "ranges split at %d sampled keys", ns);
            }
            free(hij);
        }
        if (rc == 0) {
            json_t *k = json_array();
            for (size_t i = 0; i < w->key.n; i++)
                json_array_append_new(k, json_string(w->key.v[i]));
            char *kj = json_dumps(k, JSON_COMPACT);
            json_decref(k);
            char estb[32];
            if (!w->plan->backfill->where || conv < 0)
                conv = est;
            snprintf(estb, sizeof estb, "%lld", (long long)(conv < 0 ? 0 : conv));
            snprintf(sql, sizeof sql, "UPDATE %s SET key_cols = $2, started_ms = $3, total_est = $4 WHERE plan_id = $1",
                     T(w, "backfills"));
            const char *pu[] = {id, kj, now, estb};
            rc = zdm_db_query(w->db, sql, 4, pu, NULL, err);
            free(kj);
            w->total_est = conv;
            if (rc == 0)
                zdm_log(ZDM_LOG_INFO, id, "backfill", "started: about %lld rows of %s to convert in %d range%s, key (%s%s)",
                        (long long)conv, w->plan->backfill->table, nranges, nranges == 1 ? "" : "s",
                        w->key.v[0], w->key.n > 1 ? ", ..." : "");
        }
        zdm_rows_free(hi);
        zdm_rows_free(lo);
    }
    free(started);
    if (rc == 0)
        return zdm_db_commit(w->db, err);
    zdm_db_rollback(w->db);
    return rc;
}

/* ---- claiming ---- */

const char *zdm_bf_host_of(void)
{
    const char *at = strchr(zdm_whoami(), '@');
    return at ? at + 1 : zdm_whoami();
}

int zdm_bf_claim(worker *w, int *got, zdm_err *err)
{
    *got = 0;
    char sql[1200], now[32], stale[32], pid[16];
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    snprintf(stale, sizeof stale, "%lld", (long long)(zdm_now_ms() - STALE_OWNER_MS));
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    int rc;
    if (w->pg) {
        /* A range is free when its owner's session is gone (pg_stat_activity
         * forgets a backend the moment it exits, kill -9 included) or its
         * heartbeat is stale; SKIP LOCKED passes over ranges mid-batch. */
        snprintf(sql, sizeof sql,
                 "UPDATE %s SET owner = $2, owner_host = $3, owner_pid = $4, owner_backend = pg_backend_pid(), "
                 "heartbeat_ms = $5, throttle = NULL "
                 "WHERE plan_id = $1 AND range_id = (SELECT range_id FROM %s r WHERE plan_id = $1 AND done = 0 "
                 "AND (owner_backend IS NULL OR owner_backend = pg_backend_pid() OR heartbeat_ms < $6 "
                 "OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.owner_backend)) "
                 "ORDER BY range_id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING range_id, hi, cursor",
                 T(w, "ranges"), T(w, "ranges"));
    } else {
        /* SQLite: owners on this host whose process is gone free their
         * ranges at once; others after the heartbeat goes stale. */
        char q[300];
        snprintf(q, sizeof q, "SELECT DISTINCT owner_pid FROM %s WHERE plan_id = $1 AND done = 0 "
                              "AND owner_host = $2 AND owner_pid <> $3", T(w, "ranges"));
        const char *pq[] = {w->plan->id, zdm_bf_host_of(), pid};
        zdm_rows *r = NULL;
        rc = zdm_db_query(w->db, q, 3, pq, &r, err);
        for (int i = 0; rc == 0 && i < zdm_rows_count(r); i++) {
            int opid = atoi(zdm_rows_get(r, i, 0));
            if (opid > 0 && kill(opid, 0) != 0 && errno == ESRCH) {
                snprintf(q, sizeof q, "UPDATE %s SET owner = NULL, owner_pid = NULL WHERE plan_id = $1 "
                                      "AND owner_host = $2 AND owner_pid = $3", T(w, "ranges"));
                const char *pc[] = {w->plan->id, zdm_bf_host_of(), zdm_rows_get(r, i, 0)};
                rc = zdm_db_query(w->db, q, 3, pc, NULL, err);
            }
        }
        zdm_rows_free(r);
        if (rc != 0)
            return rc;
        snprintf(sql, sizeof sql,
                 "UPDATE %s SET owner = $2, owner_host = $3, owner_pid = $4, heartbeat_ms = $5, throttle = NULL "
                 "WHERE plan_id = $1 AND range_id = (SELECT range_id FROM %s WHERE plan_id = $1 AND done = 0 "
                 "AND (owner IS NULL OR (owner_host = $3 AND owner_pid = $4) OR heartbeat_ms < $6) "
                 "ORDER BY range_id LIMIT 1) RETURNING range_id, hi, cursor",
                 T(w, "ranges"), T(w, "ranges"));
    }
    const char *params[] = {w->plan->id, w->me, zdm_bf_host_of(), pid, now, stale};
    zdm_rows *r = NULL;
    rc = zdm_db_query(w->db, sql, 6, params, &r, err);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        *got = 1;
        w->range_id = atoi(zdm_rows_get(r, 0, 0));
        free(w->hi);
        free(w->cursor);
        w->hi = zdm_xstrdup(zdm_rows_get(r, 0, 1));
        w->cursor = zdm_rows_get(r, 0, 2) ? zdm_xstrdup(zdm_rows_get(r, 0, 2)) : NULL;
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "claimed range %d (up to %s)", w->range_id, w->hi);
    }
    zdm_rows_free(r);
    return rc;
}

void zdm_bf_release(worker *w)
{
    zdm_err e;
    zdm_err_clear(&e);
    char sql[300], rid[16];
    snprintf(sql, sizeof sql, "UPDATE %s SET owner = NULL, owner_pid = NULL, owner_backend = NULL, throttle = NULL "
                              "WHERE plan_id = $1 AND range_id = $2 AND owner = $3", T(w, "ranges"));
    snprintf(rid, sizeof rid, "%d", w->range_id);
    const char *p[] = {w->plan->id, rid, w->me};
    if (zdm_db_query(w->db, sql, 3, p, NULL, &e) != 0)
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "could not release range %d: %s", w->range_id, e.msg);
    w->range_id = -1;
}
