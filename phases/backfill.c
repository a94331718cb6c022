/*
 * backfill.c -- the backfill worker.
 *
 * The key space of the table, as it was when the backfill started, is cut
 * into ranges stored in zdm's ranges table.  Workers (any number, on any
 * host) claim a range, then walk it in keyset batches: each batch finds
 * its last key with an index scan bounded by LIMIT, converts the rows up
 * to it with one UPDATE that computes the new values itself, and moves
 * the range's cursor, all in one transaction.  Killing a worker at any
 * instant loses only the uncommitted batch, which the next worker redoes;
 * no row is converted twice because the cursor moved in the same commit.
 *
 * Rows inserted after the start lie above the last range's bound and are
 * converted by the dual-write triggers, so a heavy insert load cannot make
 * the backfill chase new rows forever.
 *
 * The loop runs on libevent: a timer paces the batches (throttle, rate
 * limit, pauses) and another prints progress.  SIGINT/SIGTERM set a flag
 * checked between batches; a second one cancels the running statement.
 */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill.h"
#include "httpstat.h"
#include "log.h"
#include "metrics.h"
#include "mutant.h"
#include "pacer.h"
#include "sig.h"
#include "state.h"

#define STALE_OWNER_MS (60 * 1000)
#define PAUSE_RECHECK_MS 1000
#define HEALTH_EVERY_MS 1000
/* No batch committed for this long, with nothing pausing the worker: the
 * stalled flag of /metrics. */
#define STALL_MS (5 * 60 * 1000)
/* How long one batch waits for a lock before it is rolled back and retried. */
#define BATCH_LOCK_TIMEOUT "5s"

/* SIGINT/SIGTERM are the command's (sig.c): the count says whether one
 * came, and the loop also watches its descriptor, so a signal ends a
 * pacing sleep or a pause at once instead of when the timer fires. */
static void on_sig_event(evutil_socket_t fd, short what, void *arg);

typedef struct worker {
    zdm_db *db;
    const zdm_plan *plan;
    const zdm_backfill_opts *o;
    int pg;
    zdm_strv key;
    char *tbl;              /* quoted table */
    /* [0] first batch of a range (no cursor), [1] with cursor */
    char *peek_sql[2];      /* SQLite: the batch's last key and size */
    char *update_sql[2];    /* SQLite: convert up to that key */
    char *combo_sql[2];     /* PostgreSQL: both in one statement */
    char *span_sql;         /* PostgreSQL, one integer key: convert a span of key values */
    char *next_key_sql;     /* ... and find the next key after an empty span */
    char me[320];           /* owner id: user@host pid N */
    zdm_throttle th;        /* plan settings + live overrides */
    zdm_pacer pacer;
    /* current range */
    int range_id;
    char *cursor;           /* JSON array text, NULL before the first batch */
    char *hi;
    /* progress */
    int64_t start_ms, rows_mine, total_est, done_at_start;
    int64_t win_t[16], win_rows[16];
    int win_n;
    /* every worker's rows (the plan's rows_done) over time, for the ETA */
    int64_t plan_win_t[16], plan_win_rows[16];
    int plan_win_n;
    int64_t last_progress_ms, last_health_ms, pause_since_ms, last_pause_log_ms;
    char pause_reason[512];
    int tty;
    int64_t last_batch_ms, replica_lag_ms;
    int64_t start_wall_ms;  /* epoch ms this worker started: "stalled" counts from here at first */
    zdm_histogram batch_hist; /* batch durations, seconds, for /metrics */
    int64_t probe_ms;         /* the last check_throttle, for /metrics */
    int busy_retries;       /* lock waits in a row (SQLite BUSY, pg lock timeout) */
    int finished_plan;      /* this worker made the backfilled transition */
    /* outcome */
    int rc;
    zdm_err *err;
    struct event_base *base;
    struct event *tick;
} worker;

static const char *T(worker *w, const char *base)
{
    return zdm_state_table(w->db, base);
}

/* ---- key tuples as JSON arrays of text ---- */

static char *key_json(const zdm_rows *r, int row, int ncols)
{
    json_t *a = json_array();
    for (int i = 0; i < ncols; i++)
        json_array_append_new(a, json_string(zdm_rows_get(r, row, i)));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

/* Appends the values of a JSON key tuple to params (borrowed from j). */
static int key_params(const char *txt, json_t **j, const char **params, int *np, size_t nkey,
                      zdm_err *err)
{
    json_error_t je;
    *j = json_loads(txt, 0, &je);
    if (!*j || !json_is_array(*j) || json_array_size(*j) != nkey)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "corrupt key tuple %s in zdm's ranges table", txt);
    for (size_t i = 0; i < nkey; i++)
        params[(*np)++] = json_string_value(json_array_get(*j, i));
    return 0;
}

/* ---- SQL built once per worker ---- */

static void cols_list(worker *w, zdm_buf *b, const char *suffix)
{
    for (size_t i = 0; i < w->key.n; i++) {
        char *q = zdm_db_ident(w->db, w->key.v[i]);
        zdm_buf_printf(b, "%s%s%s", i ? ", " : "", q, suffix);
        free(q);
    }
}

/* "(k1, k2) > ($a, $b)" with params starting at `first`. */
static void key_cmp(worker *w, zdm_buf *b, const char *op, int first)
{
    int multi = w->key.n > 1;
    zdm_buf_puts(b, multi ? "(" : "");
    cols_list(w, b, "");
    zdm_buf_printf(b, "%s %s %s", multi ? ")" : "", op, multi ? "(" : "");
    for (size_t i = 0; i < w->key.n; i++)
        zdm_buf_printf(b, "%s$%d", i ? ", " : "", first + (int)i);
    zdm_buf_puts(b, multi ? ")" : "");
}

/* "SELECT k FROM t WHERE [k > cursor AND] k <= bound ORDER BY k LIMIT $1":
 * the keys of the next batch.  Cursor params start at $2. */
static void batch_keys(worker *w, zdm_buf *b, int with_cursor)
{
    zdm_buf_puts(b, "SELECT ");
    cols_list(w, b, "");
    zdm_buf_printf(b, " FROM %s WHERE ", w->tbl);
    if (with_cursor) {
        key_cmp(w, b, ">", 2);
        zdm_buf_puts(b, " AND ");
    }
    key_cmp(w, b, "<=", with_cursor ? 2 + (int)w->key.n : 2);
    zdm_buf_puts(b, " ORDER BY ");
    cols_list(w, b, "");
    zdm_buf_puts(b, " LIMIT $1");
}

/* "UPDATE t SET c = (expr), ... WHERE " */
static void update_head(worker *w, zdm_buf *b)
{
    const zdm_backfill *bf = w->plan->backfill;
    zdm_buf_printf(b, "UPDATE %s SET ", w->tbl);
    for (size_t i = 0; i < bf->nset; i++) {
        char *q = zdm_db_ident(w->db, bf->set[i].column);
        zdm_buf_printf(b, "%s%s = (%s)", i ? ", " : "", q, bf->set[i].expr);
        free(q);
    }
    zdm_buf_puts(b, " WHERE ");
}

/* The rows a batch converts.  With a `where`, the plan names them itself
 * (typically "target IS NULL", which already leaves out the rows the
 * triggers converted).  Without one, rows whose targets already equal the
 * set expressions -- written by the triggers, or by an earlier run -- are
 * skipped: no dead tuple, no WAL for them.  (Only then is each expression
 * evaluated twice per row.) */
static void update_filter(worker *w, zdm_buf *b)
{
    const zdm_backfill *bf = w->plan->backfill;
    if (bf->where) {
        zdm_buf_printf(b, " AND (%s)", bf->where);
        return;
    }
    zdm_buf_puts(b, " AND (");
    for (size_t i = 0; i < bf->nset; i++) {
        char *q = zdm_db_ident(w->db, bf->set[i].column);
        zdm_buf_printf(b, "%s%s %s (%s)", i ? " OR " : "", q, w->pg ? "IS DISTINCT FROM" : "IS NOT",
                       bf->set[i].expr);
        free(q);
    }
    zdm_buf_puts(b, ")");
}

static void needs_conversion(worker *w, zdm_buf *b);

static void build_sql(worker *w)
{
    int n = (int)w->key.n, multi = n > 1;
    for (int with_cursor = 0; with_cursor < 2; with_cursor++) {
        zdm_buf b = {0};
        if (w->pg) {
            /* One statement: the batch's keys are read once, its rows
             * converted, and its last key and counts returned.  $1 = batch
             * size, then the cursor (if any), then the range's bound. */
            zdm_buf_puts(&b, "WITH zdm_batch AS MATERIALIZED (");
            batch_keys(w, &b, with_cursor);
            zdm_buf_puts(&b, "), zdm_last AS (SELECT ");
            cols_list(w, &b, "");
            zdm_buf_puts(&b, " FROM zdm_batch ORDER BY ");
            cols_list(w, &b, " DESC");
            zdm_buf_puts(&b, " LIMIT 1), zdm_upd AS (");
            update_head(w, &b);
            if (with_cursor) {
                key_cmp(w, &b, ">", 2);
                zdm_buf_puts(&b, " AND ");
            }
            zdm_buf_puts(&b, multi ? "(" : "");
            cols_list(w, &b, "");
            zdm_buf_puts(&b, multi ? ")" : "");
            zdm_buf_puts(&b, " <= (SELECT ");
            cols_list(w, &b, "");
            zdm_buf_puts(&b, " FROM zdm_last)");
            update_filter(w, &b);
            zdm_buf_puts(&b, " RETURNING 1) SELECT ");
            cols_list(w, &b, "");
            zdm_buf_puts(&b, ", (SELECT count(*) FROM zdm_batch), (SELECT count(*) FROM zdm_upd) FROM zdm_last");
            w->combo_sql[with_cursor] = zdm_buf_take(&b);
            if (with_cursor && n == 1) {
                update_head(w, &b);
                key_cmp(w, &b, ">", 1);
                zdm_buf_puts(&b, " AND ");
                key_cmp(w, &b, "<=", 2);
                update_filter(w, &b);
                w->span_sql = zdm_buf_take(&b);
                zdm_buf_puts(&b, "SELECT ");
                cols_list(w, &b, "");
                zdm_buf_printf(&b, " FROM %s WHERE ", w->tbl);
                key_cmp(w, &b, ">", 1);
                zdm_buf_puts(&b, " AND ");
                key_cmp(w, &b, "<=", 2);
                zdm_buf_puts(&b, " ORDER BY ");
                cols_list(w, &b, "");
                zdm_buf_puts(&b, " LIMIT 1");
                w->next_key_sql = zdm_buf_take(&b);
            }
            continue;
        }
        /* SQLite (no data-modifying CTEs): peek at the batch's last key and
         * size, then update every row from the cursor up to it. */
        zdm_buf_puts(&b, "SELECT ");
        cols_list(w, &b, "");
        zdm_buf_puts(&b, ", count(*) OVER () FROM (");
        batch_keys(w, &b, with_cursor);
        zdm_buf_puts(&b, ") zdm_batch ORDER BY ");
        cols_list(w, &b, " DESC");
        zdm_buf_puts(&b, " LIMIT 1");
        w->peek_sql[with_cursor] = zdm_buf_take(&b);

        update_head(w, &b);
        if (with_cursor) {
            key_cmp(w, &b, ">", 1);
            zdm_buf_puts(&b, " AND ");
        }
        key_cmp(w, &b, "<=", with_cursor ? 1 + n : 1);
        update_filter(w, &b);
        w->update_sql[with_cursor] = zdm_buf_take(&b);
    }
}

int zdm_backfill_batch_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *key, zdm_strv *out)
{
    worker w;
    memset(&w, 0, sizeof w);
    w.db = db;
    w.plan = plan;
    w.pg = zdm_db_kind_of(db) == ZDM_DB_PG;
    for (size_t i = 0; i < key->n; i++)
        zdm_strv_push(&w.key, key->v[i]);
    w.tbl = zdm_db_ident_path(db, plan->backfill->table);
    build_sql(&w);
    char *all[] = {w.combo_sql[0], w.combo_sql[1], w.peek_sql[0], w.peek_sql[1], w.update_sql[0],
                   w.update_sql[1], w.span_sql, w.next_key_sql};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i])
            zdm_strv_push(out, all[i]);
        free(all[i]);
    }
    zdm_buf b = {0};
    zdm_buf_printf(&b, "SELECT count(*) FROM %s", w.tbl);
    needs_conversion(&w, &b);
    zdm_strv_push(out, b.data);
    zdm_buf_free(&b);
    free(w.tbl);
    zdm_strv_free(&w.key);
    return 0;
}

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

static int init_ranges(worker *w, zdm_err *err)
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
        cols_list(w, &b, "");
        zdm_buf_printf(&b, " FROM %s ORDER BY ", w->tbl);
        cols_list(w, &b, " DESC");
        zdm_buf_puts(&b, " LIMIT 1");
        zdm_rows *hi = NULL, *lo = NULL;
        rc = zdm_db_query(w->db, b.data, 0, NULL, &hi, err);
        zdm_buf_free(&b);
        if (rc == 0) {
            zdm_buf_puts(&b, "SELECT ");
            cols_list(w, &b, "");
            zdm_buf_printf(&b, " FROM %s ORDER BY ", w->tbl);
            cols_list(w, &b, "");
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
        int nranges = 0;
        if (rc == 0 && zdm_rows_count(hi) == 1) {
            char *hij = key_json(hi, 0, (int)w->key.n);
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
                /* Other keys: one range (split points would need a scan of
                 * the whole key set). */
                snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, range_id, lo, hi, cursor) VALUES ($1, 0, NULL, $2, NULL)",
                         T(w, "ranges"));
                const char *pr[] = {id, hij};
                rc = zdm_db_query(w->db, sql, 2, pr, NULL, err);
                nranges = 1;
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
            snprintf(estb, sizeof estb, "%lld", (long long)(est < 0 ? 0 : est));
            snprintf(sql, sizeof sql, "UPDATE %s SET key_cols = $2, started_ms = $3, total_est = $4 WHERE plan_id = $1",
                     T(w, "backfills"));
            const char *pu[] = {id, kj, now, estb};
            rc = zdm_db_query(w->db, sql, 4, pu, NULL, err);
            free(kj);
            w->total_est = est;
            if (rc == 0)
                zdm_log(ZDM_LOG_INFO, id, "backfill", "started: about %lld rows of %s in %d range%s, key (%s%s)",
                        (long long)est, w->plan->backfill->table, nranges, nranges == 1 ? "" : "s",
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

static const char *host_of(void)
{
    const char *at = strchr(zdm_whoami(), '@');
    return at ? at + 1 : zdm_whoami();
}

static int claim(worker *w, int *got, zdm_err *err)
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
        const char *pq[] = {w->plan->id, host_of(), pid};
        zdm_rows *r = NULL;
        rc = zdm_db_query(w->db, q, 3, pq, &r, err);
        for (int i = 0; rc == 0 && i < zdm_rows_count(r); i++) {
            int opid = atoi(zdm_rows_get(r, i, 0));
            if (opid > 0 && kill(opid, 0) != 0 && errno == ESRCH) {
                snprintf(q, sizeof q, "UPDATE %s SET owner = NULL, owner_pid = NULL WHERE plan_id = $1 "
                                      "AND owner_host = $2 AND owner_pid = $3", T(w, "ranges"));
                const char *pc[] = {w->plan->id, host_of(), zdm_rows_get(r, i, 0)};
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
    const char *params[] = {w->plan->id, w->me, host_of(), pid, now, stale};
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

static void release(worker *w)
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

static int connection_lost(const zdm_err *err);

/* PostgreSQL finds and converts a batch in one statement, so when that
 * statement fails the batch's last key is not known.  Roll back and look
 * it up (the batch's keys, same parameters), so the error names the failed
 * batch's whole key range ("after X up to Y") as on SQLite, and the
 * operator can find the row that broke it. */
static void name_failed_batch(worker *w, const char *cursor, const char **params, int np, zdm_err *err)
{
    char *last = NULL;
    if (!connection_lost(err)) {
        zdm_db_rollback(w->db);
        zdm_buf b = {0};
        zdm_buf_puts(&b, "SELECT ");
        cols_list(w, &b, "");
        zdm_buf_puts(&b, " FROM (");
        batch_keys(w, &b, cursor != NULL);
        zdm_buf_puts(&b, ") zdm_batch ORDER BY ");
        cols_list(w, &b, " DESC");
        zdm_buf_puts(&b, " LIMIT 1");
        zdm_rows *r = NULL;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_query(w->db, b.data, np, params, &r, &e) == 0 && zdm_rows_count(r) == 1)
            last = key_json(r, 0, (int)w->key.n);
        zdm_rows_free(r);
        zdm_buf_free(&b);
    }
    zdm_err_prefix(err, "batch of range %d, keys after %s%s%s: ", w->range_id, cursor ? cursor : "the start",
                   last ? " up to " : "", last ? last : "");
    free(last);
}

/* Converts the next batch of the claimed range.  *range_done is set when
 * the range has no rows left.  *scanned / *updated count keys and rows. */
static int batch(worker *w, int64_t size, int *range_done, int64_t *scanned, int64_t *updated,
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

    int rc = zdm_db_begin(w->db, err);
    if (rc != 0)
        return rc;
    /* Until its commit, the first SIGTERM cancels the batch (rolled back:
     * the range resumes at its committed cursor).  A signal that came
     * just before is seen here. */
    zdm_db_cancel_first(1);
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
    if (cursor && (rc = key_params(cursor, &jc, params, &np, w->key.n, err)) != 0)
        goto out;
    if ((rc = key_params(w->hi, &jh, params, &np, w->key.n, err)) != 0)
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
        last = key_json(r, 0, n);
        *range_done = *scanned < size;
    } else {
        *scanned = strtoll(zdm_rows_get(r, 0, n), NULL, 10);
        last = key_json(r, 0, n);
        *range_done = *scanned < size;
        /* Convert every row from the cursor up to the batch's last key. */
        np = 0;
        if (cursor)
            rc = key_params(cursor, &jc2, params, &np, w->key.n, err);
        if (rc == 0)
            rc = key_params(last, &jl, params, &np, w->key.n, err);
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

/* ---- controls and health ---- */

/* `workers`: live workers of the plan; max_rows_per_second is the plan's
 * limit, so each worker takes its share. */
static void apply_settings(worker *w, const char *json, int workers)
{
    json_error_t je;
    json_t *o = json_loads(json ? json : "{}", 0, &je);
    if (!o)
        return;
    const char *k;
    json_t *v;
    zdm_throttle *t = &w->th;
    *t = w->plan->backfill->throttle;
    t->pause_query = w->plan->backfill->throttle.pause_query;
    json_object_foreach(o, k, v)
    {
        long long n = json_is_integer(v) ? json_integer_value(v) : 0;
        if (strcmp(k, "batch_size") == 0) {
            /* a new starting size takes effect at once */
            if (n > 0 && n != w->pacer.size)
                w->pacer.size = n;
        } else if (strcmp(k, "target_batch_ms") == 0)
            t->target_batch_ms = n;
        else if (strcmp(k, "min_batch_size") == 0)
            t->min_batch_size = n;
        else if (strcmp(k, "max_batch_size") == 0)
            t->max_batch_size = n;
        else if (strcmp(k, "max_rows_per_second") == 0)
            t->max_rows_per_second = n;
        else if (strcmp(k, "sleep_ms") == 0)
            t->sleep_ms = n;
        else if (strcmp(k, "max_replication_lag_ms") == 0)
            t->max_replication_lag_ms = n;
        else if (strcmp(k, "max_latency_factor") == 0 && json_is_number(v))
            t->max_latency_pct = (int64_t)(json_number_value(v) * 100 + 0.5);
        else if (strcmp(k, "max_lock_ms") == 0)
            t->max_lock_ms = n;
    }
    json_decref(o);
    int64_t rate = t->max_rows_per_second;
    if (rate > 0 && workers > 1)
        rate = rate / workers > 0 ? rate / workers : 1;
    zdm_pacer_update(&w->pacer, t->min_batch_size, t->max_batch_size, t->target_batch_ms, rate, t->sleep_ms);
    zdm_pacer_latency(&w->pacer, t->max_latency_pct, t->max_lock_ms, !w->pg);
}

/* The latency probe: before the first batch (the idle baseline, median
 * of five) and before every batch after it. */
static int probe_latency(worker *w, int baseline, zdm_err *err)
{
    if (!w->pacer.latency_pct)
        return 0;
    long long us = 0;
    if (!baseline) {
        int rc = zdm_db_probe(w->db, w->th.probe_query, &us, err);
        if (rc == 0)
            zdm_pacer_probe(&w->pacer, us);
        return rc;
    }
    long long v[5];
    for (int i = 0; i < 5; i++) {
        int rc = zdm_db_probe(w->db, w->th.probe_query, &v[i], err);
        if (rc != 0) {
            zdm_err_detail(err, "the latency probe%s failed before the first batch; fix probe_query, or set "
                                "max_latency_factor = 0 to run without latency pacing",
                           w->th.probe_query ? " (probe_query)" : "");
            return rc;
        }
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            long long x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
        zdm_sig_sleep_ms(10);
    }
    zdm_pacer_baseline(&w->pacer, v[2]);
    zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
            "latency probe idle: %.2f ms; batches keep its p99 under %.2f ms (max_latency_factor %.2g)%s",
            (double)v[2] / 1000.0, (double)zdm_pacer_bound_us(&w->pacer) / 1000.0,
            (double)w->pacer.latency_pct / 100.0, w->pg ? "" : ", the write lock left free between batches");
    return 0;
}

static int truthy(const char *v)
{
    return v && (strcmp(v, "t") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static void add_reason(char *buf, size_t size, const char *fmt, ...) ZDM_PRINTF(3, 4);
static void add_reason(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len && len + 2 < size) {
        strcat(buf, "; ");
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* Reads the operator's controls (every batch) and the health signals
 * (at most once a second); fills why with every tripped signal. */
static int check_throttle(worker *w, char *why, size_t size, zdm_err *err)
{
    why[0] = '\0';
    char sql[400], fresh[32];
    snprintf(sql, sizeof sql,
             "SELECT paused, settings, (SELECT count(DISTINCT owner) FROM %s r WHERE r.plan_id = $1 "
             "AND r.owner IS NOT NULL AND r.done = 0 AND r.heartbeat_ms > $2) FROM %s WHERE plan_id = $1",
             T(w, "ranges"), T(w, "backfills"));
    snprintf(fresh, sizeof fresh, "%lld", (long long)(zdm_now_ms() - STALE_OWNER_MS));
    const char *p[] = {w->plan->id, fresh};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(w->db, sql, 2, p, &r, err);
    if (rc != 0)
        return rc;
    if (zdm_rows_count(r) == 1) {
        if (atoi(zdm_rows_get(r, 0, 0)))
            add_reason(why, size, "paused by operator (zdm resume %s)", w->plan->id);
        apply_settings(w, zdm_rows_get(r, 0, 1), atoi(zdm_rows_get(r, 0, 2)));
    }
    zdm_rows_free(r);

    if (w->th.pause_query) {
        char *v = NULL;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_query_value(w->db, w->th.pause_query, 0, NULL, &v, &e) != 0)
            add_reason(why, size, "pause_query failed (%s): pausing until it answers", e.msg);
        else if (truthy(v))
            add_reason(why, size, "pause_query returned true");
        free(v);
    }
    /* The built-in signals cost three catalog queries: read them at most
     * once a second while they are quiet.  While one of them holds the
     * worker, every recheck reads them again (the verdict is not cached). */
    int64_t now = zdm_mono_ms();
    int held_by_health = w->pause_reason[0] && !strstr(w->pause_reason, "paused by operator") &&
                         !strstr(w->pause_reason, "pause_query");
    if (!w->pg || (now - w->last_health_ms < HEALTH_EVERY_MS && !held_by_health))
        return 0;
    w->last_health_ms = now;
    zdm_err e;
    char *v = NULL;
    if (w->th.check_autovacuum) {
        zdm_err_clear(&e);
        char *q = zdm_db_ident_path(w->db, w->plan->backfill->table);
        const char *pq[] = {q};
        if (zdm_db_query_value(w->db,
                               "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum v JOIN pg_stat_activity a "
                               "USING (pid) WHERE v.relid = to_regclass($1) AND a.backend_type = 'autovacuum worker')",
                               1, pq, &v, &e) != 0)
            add_reason(why, size, "autovacuum signal unreadable (%s): failing closed", e.msg);
        else if (truthy(v))
            add_reason(why, size, "autovacuum is running on %s", w->plan->backfill->table);
        free(v);
        v = NULL;
        free(q);
    }
    if (w->th.check_replica_lag) {
        int64_t limit = w->th.max_replication_lag_ms > 0 ? w->th.max_replication_lag_ms : 10000;
        zdm_err_clear(&e);
        if (zdm_db_query_value(w->db,
                               "SELECT COALESCE(max(extract(epoch FROM replay_lag) * 1000), 0)::bigint "
                               "FROM pg_stat_replication", 0, NULL, &v, &e) != 0)
            add_reason(why, size, "replica lag unreadable (%s): failing closed", e.msg);
        else if (v && (w->replica_lag_ms = strtoll(v, NULL, 10)) > limit)
            add_reason(why, size, "replica replay lag %s ms > %lld ms", v, (long long)limit);
        free(v);
        v = NULL;
    }
    if (w->th.check_wal_archive) {
        zdm_err_clear(&e);
        if (zdm_db_query_value(w->db,
                               "SELECT CASE WHEN current_setting('archive_mode') = 'off' THEN 0 ELSE "
                               "(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') END",
                               0, NULL, &v, &e) != 0)
            add_reason(why, size, "WAL archive backlog unreadable (%s): failing closed", e.msg);
        else if (v && strtoll(v, NULL, 10) > w->th.max_wal_archive_ready)
            add_reason(why, size, "%s WAL files waiting to be archived (> %lld)", v,
                       (long long)w->th.max_wal_archive_ready);
        free(v);
    }
    return 0;
}

static void heartbeat(worker *w, const char *throttle)
{
    if (w->range_id < 0)
        return;
    zdm_err e;
    zdm_err_clear(&e);
    char sql[200], rid[16], now[32];
    /* Only while the range is still ours: a heartbeat must not keep alive
     * a range another worker took over. */
    snprintf(sql, sizeof sql, "UPDATE %s SET heartbeat_ms = $3, throttle = $4 WHERE plan_id = $1 AND range_id = $2 "
             "AND owner = $5", T(w, "ranges"));
    snprintf(rid, sizeof rid, "%d", w->range_id);
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    const char *p[] = {w->plan->id, rid, now, throttle, w->me};
    if (zdm_db_query(w->db, sql, 5, p, NULL, &e) != 0)
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "heartbeat failed: %s", e.msg);
}

/* ---- progress ---- */

static void progress(worker *w, int final)
{
    int64_t now = zdm_mono_ms();
    int interval = w->tty ? 250 : 10000;
    if (!final && now - w->last_progress_ms < interval)
        return;
    w->last_progress_ms = now;
    zdm_backfill_progress pr;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_backfill_progress_get(w->db, w->plan->id, &pr, &e) != 0)
        return;
    /* Rate over the recent window, not since the start, of every live
     * worker together: the plan's rows done, sampled here.  Both windows
     * restart after a pause (on_tick), so paused time is not in the rate. */
    if (w->plan_win_n == 16) {
        memmove(w->plan_win_t, w->plan_win_t + 1, 15 * sizeof w->plan_win_t[0]);
        memmove(w->plan_win_rows, w->plan_win_rows + 1, 15 * sizeof w->plan_win_rows[0]);
        w->plan_win_n = 15;
    }
    w->plan_win_t[w->plan_win_n] = now;
    w->plan_win_rows[w->plan_win_n] = pr.rows_done;
    w->plan_win_n++;
    int64_t rate = 0;
    if (w->plan_win_n >= 2 && w->plan_win_t[w->plan_win_n - 1] > w->plan_win_t[0]) {
        int64_t dt = w->plan_win_t[w->plan_win_n - 1] - w->plan_win_t[0];
        int64_t dr = w->plan_win_rows[w->plan_win_n - 1] - w->plan_win_rows[0];
        rate = dr > 0 ? dr * 1000 / dt : 0;
    } else if (w->win_n >= 2) {
        int64_t dt = w->win_t[w->win_n - 1] - w->win_t[0];
        int64_t dr = w->win_rows[w->win_n - 1] - w->win_rows[0];
        rate = dt > 0 ? dr * 1000 / dt : 0;
    }
    int64_t total = pr.total_est > pr.rows_done ? pr.total_est : pr.rows_done;
    double pct = total ? 100.0 * (double)pr.rows_done / (double)total : 100.0;
    if (pct > 100.0)
        pct = 100.0;
    char eta[32] = "?";
    if (rate > 0 && total >= pr.rows_done)
        zdm_format_duration((total - pr.rows_done) * 1000 / rate, eta, sizeof eta);
    if (w->tty) {
        int width = 30, filled = (int)(pct * width / 100.0);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        /* The bar owns the last line: log lines print above it (log.c),
         * and it is cleared once the work ends. */
        char line[1024];
        snprintf(line, sizeof line, "%.200s [%s] %5.1f%% %lld/%lld rows %lld rows/s ETA %s %s%s", w->plan->id, bar,
                 pct, (long long)pr.rows_done, (long long)total, (long long)rate, eta,
                 w->pause_reason[0] ? "PAUSED: " : "", w->pause_reason);
        if (final)
            zdm_progress_end();
        else
            zdm_progress_show(line);
    } else {
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                "%lld of ~%lld rows (%.1f%%), %lld rows/s, ETA %s, ranges %d/%d done, batch %lld rows%s%s",
                (long long)pr.rows_done, (long long)total, pct, (long long)rate, eta, pr.ranges_done,
                pr.ranges, (long long)w->pacer.size, w->pause_reason[0] ? ", paused: " : "",
                w->pause_reason);
    }
}

static void note_rows(worker *w, int64_t rows)
{
    w->rows_mine += rows;
    if (w->win_n == 16) {
        memmove(w->win_t, w->win_t + 1, 15 * sizeof w->win_t[0]);
        memmove(w->win_rows, w->win_rows + 1, 15 * sizeof w->win_rows[0]);
        w->win_n = 15;
    }
    w->win_t[w->win_n] = zdm_mono_ms();
    w->win_rows[w->win_n] = w->rows_mine;
    w->win_n++;
}

static int64_t recent_rate(const worker *w)
{
    if (w->win_n < 2)
        return 0;
    int64_t dt = w->win_t[w->win_n - 1] - w->win_t[0];
    int64_t dr = w->win_rows[w->win_n - 1] - w->win_rows[0];
    return dt > 0 ? dr * 1000 / dt : 0;
}

/* /status and /metrics (httpstat.c), answered between batches. */
static void fill_http(void *arg, int metrics, zdm_buf *out)
{
    worker *w = arg;
    zdm_backfill_progress pr;
    zdm_err e;
    zdm_err_clear(&e);
    if (!w->db || zdm_backfill_progress_get(w->db, w->plan->id, &pr, &e) != 0)
        memset(&pr, 0, sizeof pr);
    int64_t rate = recent_rate(w);
    if (!(metrics & ZDM_HTTP_FILL_METRICS)) {
        json_t *o = json_object();
        json_object_set_new(o, "plan", json_string(w->plan->id));
        json_object_set_new(o, "worker", json_string(w->me));
        json_object_set_new(o, "range", w->range_id >= 0 ? json_integer(w->range_id) : json_null());
        json_object_set_new(o, "rows_done", json_integer(pr.rows_done));
        json_object_set_new(o, "rows_total_estimate", json_integer(pr.total_est));
        json_object_set_new(o, "rows_done_by_worker", json_integer(w->rows_mine));
        json_object_set_new(o, "rows_per_second", json_integer(rate));
        json_object_set_new(o, "batch_size", json_integer(w->pacer.size));
        json_object_set_new(o, "last_batch_ms", json_integer(w->last_batch_ms));
        json_object_set_new(o, "ranges", json_integer(pr.ranges));
        json_object_set_new(o, "ranges_done", json_integer(pr.ranges_done));
        json_object_set_new(o, "workers", json_integer(pr.workers));
        json_object_set_new(o, "throttled", json_boolean(w->pause_reason[0] != 0));
        json_object_set_new(o, "throttle_reason", json_string(w->pause_reason));
        json_object_set_new(o, "replica_lag_ms", json_integer(w->replica_lag_ms));
        json_object_set_new(o, "pacer_state", json_string(zdm_pacer_state_name(w->pacer.state)));
        json_object_set_new(o, "latency_probe_us", json_integer(w->pacer.last_probe_us));
        json_object_set_new(o, "latency_baseline_us", json_integer(w->pacer.baseline_us));
        json_object_set_new(o, "latency_bound_us", json_integer(zdm_pacer_bound_us(&w->pacer)));
        char *txt = json_dumps(o, JSON_INDENT(2));
        zdm_buf_puts(out, txt);
        zdm_buf_puts(out, "\n");
        free(txt);
        json_decref(o);
        return;
    }
    /* Last progress: the newest batch any worker committed (the state, so
     * a worker that answers while another is stuck still tells).  Stalled:
     * none for STALL_MS while this worker is neither paused nor held by a
     * throttle signal -- a batch blocked on a lock, a dead database. */
    int64_t last = 0;
    if (w->db && zdm_backfill_last_progress(w->db, w->plan->id, &last, &e) != 0)
        last = 0;
    int64_t since = last > w->start_wall_ms ? last : w->start_wall_ms;
    zdm_backfill_metrics m = {
        .plan = w->plan->id,
        .rows_done = pr.rows_done,
        .rows_estimate = pr.total_est,
        .worker_rows_done = w->rows_mine,
        .rows_per_second = rate,
        .last_batch_ms = w->last_batch_ms,
        .batch_size = w->pacer.size,
        .batch_seconds = &w->batch_hist,
        .throttled = w->pause_reason[0] != 0,
        .throttle_reason = w->pause_reason,
        .throttled_for_ms = w->pause_reason[0] ? zdm_mono_ms() - w->pause_since_ms : 0,
        .replica_lag_ms = w->replica_lag_ms,
        .probe_ms = w->probe_ms,
        .last_progress_ms = last,
        .stalled = !w->pause_reason[0] && zdm_now_ms() - since > STALL_MS,
        .stall_after_ms = STALL_MS,
        .latency_probe_us = w->pacer.last_probe_us,
        .latency_p99_us = w->pacer.probe_p99_us,
        .latency_baseline_us = w->pacer.baseline_us,
        .latency_bound_us = zdm_pacer_bound_us(&w->pacer),
        .pacer_state = (int)w->pacer.state,
        .pacer_state_name = zdm_pacer_state_name(w->pacer.state),
        .pacer_gap_ms = zdm_pacer_delay(&w->pacer, zdm_mono_ms()),
        .blocked_sessions = w->pacer.blocked_total,
    };
    m.have_cost = zdm_pacer_cost(&w->pacer, &m.cost_fixed_us, &m.cost_per_row_ns);
    zdm_metrics_backfill(&m, !(metrics & ZDM_HTTP_FILL_NO_DEPRECATED), out);
}

/* ---- finishing ---- */

/* " WHERE [(where) AND] (t1 IS DISTINCT FROM (e1) OR ...)": the rows that
 * still need conversion under the row rule.  A row matching `where` whose
 * targets already hold their values needs nothing, so a `where` that
 * selects rows (rather than naming the work left) still lets the check
 * pass once they are converted.  With a `where`, a target still NULL
 * counts as not converted even when its expression gives NULL: that is
 * the "where = new IS NULL, set gives NULL for some rows" mistake, which
 * would leave the rows to the contract's verify or NOT NULL. */
static void needs_conversion(worker *w, zdm_buf *b)
{
    const zdm_backfill *bf = w->plan->backfill;
    zdm_buf_puts(b, " WHERE ");
    if (bf->where)
        zdm_buf_printf(b, "(%s) AND ", bf->where);
    zdm_buf_puts(b, "(");
    for (size_t i = 0; i < bf->nset; i++) {
        char *q = zdm_db_ident(w->db, bf->set[i].column);
        zdm_buf_printf(b, "%s%s %s (%s)", i ? " OR " : "", q, w->pg ? "IS DISTINCT FROM" : "IS NOT",
                       bf->set[i].expr);
        if (bf->where)
            zdm_buf_printf(b, " OR %s IS NULL", q);
        free(q);
    }
    zdm_buf_puts(b, ")");
}

/* Before the plan may become backfilled: no row of the table still needs
 * conversion (a key range computed wrong, a row the walk missed, set
 * expressions that leave `where` true).  Refuses with the count and the
 * first few keys. */
static int final_check(worker *w, zdm_err *err)
{
    const zdm_backfill *bf = w->plan->backfill;
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
    zdm_buf b = {0};
    zdm_buf_printf(&b, "SELECT count(*) FROM %s", w->tbl);
    needs_conversion(w, &b);
    char *v = NULL;
    int rc = zdm_db_query_value(w->db, b.data, 0, NULL, &v, err);
    zdm_buf_free(&b);
    long long left = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    if (rc != 0) {
        zdm_err_prefix(err, "final check of the backfill of %s: ", w->plan->id);
        return rc;
    }
    if (left == 0)
        return 0;
    zdm_buf_puts(&b, "SELECT ");
    cols_list(w, &b, "");
    zdm_buf_printf(&b, " FROM %s", w->tbl);
    needs_conversion(w, &b);
    zdm_buf_puts(&b, " ORDER BY ");
    cols_list(w, &b, "");
    zdm_buf_puts(&b, " LIMIT 5");
    zdm_rows *r = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    zdm_buf keys = {0};
    if (zdm_db_query(w->db, b.data, 0, NULL, &r, &e) == 0)
        for (int i = 0; i < zdm_rows_count(r); i++) {
            char *k = key_json(r, i, (int)w->key.n);
            zdm_buf_printf(&keys, "%s%s", i ? ", " : "", k);
            free(k);
        }
    zdm_rows_free(r);
    zdm_buf_free(&b);
    zdm_err_set(err, ZDM_EXIT_FAIL,
                "backfill of %s walked every range but %lld row%s of %s still need%s conversion%s%s%s (keys %s%s)",
                w->plan->id, left, left == 1 ? "" : "s", bf->table, left == 1 ? "s" : "",
                bf->where ? " (match where " : "", bf->where ? bf->where : "", bf->where ? ")" : "",
                keys.data ? keys.data : "?", left > 5 ? ", ..." : "");
    zdm_buf_free(&keys);
    zdm_err_detail(err, "the plan stays expanded; the set expressions may leave those rows unconverted "
                        "(e.g. they return NULL, or are volatile), or rows were changed behind the triggers' "
                        "back: fix the data or the plan, then run \"zdm backfill %s\" again",
                   w->plan->id);
    return ZDM_EXIT_FAIL;
}

/* When every range is done (and no row still matches `where`), moves the
 * plan to backfilled -- once, whichever worker gets here first. */
static int finish(worker *w, int *all_done, int *others, zdm_err *err)
{
    char sql[400];
    snprintf(sql, sizeof sql, "SELECT count(*), COALESCE(sum(done), 0), COALESCE(sum(rows_done), 0) FROM %s WHERE plan_id = $1",
             T(w, "ranges"));
    const char *p[] = {w->plan->id};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(w->db, sql, 1, p, &r, err);
    if (rc != 0)
        return rc;
    int64_t n = strtoll(zdm_rows_get(r, 0, 0), NULL, 10), done = strtoll(zdm_rows_get(r, 0, 1), NULL, 10);
    int64_t rows = strtoll(zdm_rows_get(r, 0, 2), NULL, 10);
    zdm_rows_free(r);
    *all_done = n == done;
    *others = (int)(n - done);
    if (!*all_done)
        return 0;
    rc = final_check(w, err);
    if (rc != 0)
        return rc;
    char now[32], detail[200];
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    char d[32];
    snprintf(detail, sizeof detail, "backfill finished: %lld rows converted (this worker: %lld in %s)",
             (long long)rows, (long long)w->rows_mine, zdm_format_duration(zdm_mono_ms() - w->start_ms, d, sizeof d));
    rc = zdm_db_begin(w->db, err);
    if (rc != 0)
        return rc;
    /* Inside the transaction: on SQLite it holds the write lock, so zdm
     * unlock cannot take the lock row away between this check and the
     * commit; on PostgreSQL a restart after it fails the commit. */
    if (w->o->guard && !zdm_mutant("backfill_unguarded") && (rc = w->o->guard(w->o->guard_arg, err)) != 0) {
        zdm_db_rollback(w->db);
        return rc;
    }
    snprintf(sql, sizeof sql, "UPDATE %s SET phase = 'backfilled', phase_since_ms = $2 WHERE id = $1 AND phase = 'expanded'",
             T(w, "plans"));
    const char *pu[] = {w->plan->id, now};
    rc = zdm_db_query(w->db, sql, 2, pu, NULL, err);
    if (rc == 0 && zdm_db_changes(w->db) == 1) {
        zdm_history_entry h = {w->plan->id, "backfill", "expanded", "backfilled", "ok", detail};
        rc = zdm_state_history_add(w->db, &h, NULL, err);
        if (rc == 0) {
            snprintf(sql, sizeof sql, "UPDATE %s SET finished_ms = $2 WHERE plan_id = $1", T(w, "backfills"));
            rc = zdm_db_query(w->db, sql, 2, pu, NULL, err);
        }
        if (rc == 0)
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "%s; plan is backfilled", detail);
        if (rc == 0)
            w->finished_plan = 1;
    }
    if (rc == 0)
        return zdm_db_commit(w->db, err);
    zdm_db_rollback(w->db);
    return rc;
}

/* ---- losing the server ---- */

static int connection_lost(const zdm_err *err)
{
    const char *st = err->sqlstate;
    return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
           strcmp(st, "57P03") == 0;
}

/* Reopens the worker's connection, waiting with backoff while the server
 * is away.  The batch in flight was rolled back by the server; the range
 * is claimed again like any other. */
static int reconnect(worker *w, zdm_err *err)
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
static void revive_caller(zdm_db *db, const char *url, const zdm_plan *plan)
{
    if (!db || zdm_db_in_transaction(db))
        return;
    zdm_err e;
    zdm_err_clear(&e);
    char *v = NULL;
    int rc = zdm_db_query_value(db, "SELECT 1", 0, NULL, &v, &e);
    free(v);
    if (rc == 0 || !connection_lost(&e))
        return;
    zdm_err_clear(&e);
    if (zdm_db_reopen(db, url, &e) != 0)
        zdm_log(ZDM_LOG_WARN, plan->id, "backfill", "could not reopen the main connection: %s", e.msg);
}

/* ---- the loop ---- */

static void schedule(worker *w, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(w->tick, &tv);
}

static void stop(worker *w, int rc)
{
    w->rc = rc;
    event_base_loopbreak(w->base);
}

/* An error in the loop: reconnect and go on when the server went away
 * and the worker owns its connection; stop otherwise. */
static void failed(worker *w, int rc)
{
    if (zdm_sig_caught()) {
        zdm_err_clear(w->err);
        stop(w, ZDM_EXIT_INTERRUPTED);
        return;
    }
    if (w->o->url && connection_lost(w->err)) {
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "lost the connection: %s", w->err->msg);
        rc = reconnect(w, w->err);
        if (rc == 0) {
            schedule(w, 0);
            return;
        }
    }
    /* A busy database (SQLite's single writer, a lock held by the
     * application) is a reason to wait, not to stop: the batch was rolled
     * back and is simply tried again, with growing pauses. */
    if (zdm_db_err_is_lock_timeout(w->err) && w->busy_retries < 30) {
        int64_t wait = 100;
        for (int i = 0; i < w->busy_retries && wait < 5000; i++)
            wait *= 2;
        w->busy_retries++;
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "database busy (%s); retrying in %lld ms (%d in a row)",
                w->err->msg, (long long)wait, w->busy_retries);
        zdm_err_clear(w->err);
        schedule(w, wait);
        return;
    }
    stop(w, rc);
}

static void on_sig_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stop(arg, ZDM_EXIT_INTERRUPTED);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    zdm_err *err = w->err;
    if (zdm_sig_caught()) {
        stop(w, ZDM_EXIT_INTERRUPTED);
        return;
    }
    if (w->o->guard && !zdm_mutant("backfill_unguarded")) {
        int grc = w->o->guard(w->o->guard_arg, err);
        if (grc != 0) {
            stop(w, grc);
            return;
        }
    }
    if (w->range_id < 0) {
        int got = 0;
        int rc = claim(w, &got, err);
        if (rc != 0) {
            failed(w, rc);
            return;
        }
        if (!got) {
            int all_done = 0, others = 0;
            rc = finish(w, &all_done, &others, err);
            if (rc != 0 && connection_lost(err)) {
                failed(w, rc);
                return;
            }
            if (rc != 0 || all_done || !w->o->wait_for_others) {
                if (rc == 0 && !all_done)
                    zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                            "no range left for this worker; %d range%s still held by other workers", others,
                            others == 1 ? "" : "s");
                stop(w, rc);
                return;
            }
            schedule(w, PAUSE_RECHECK_MS); /* wait for the other workers */
            return;
        }
    }
    char why[512];
    int64_t probe_t0 = zdm_mono_ms();
    int rc = check_throttle(w, why, sizeof why, err);
    w->probe_ms = zdm_mono_ms() - probe_t0;
    if (rc != 0) {
        failed(w, rc);
        return;
    }
    if (why[0]) {
        int64_t now = zdm_mono_ms();
        if (!w->pause_reason[0])
            w->pause_since_ms = now;
        snprintf(w->pause_reason, sizeof w->pause_reason, "%s", why);
        char d[32], line[600];
        snprintf(line, sizeof line, "%s (waiting %s)", why, zdm_format_duration(now - w->pause_since_ms, d, sizeof d));
        heartbeat(w, line);
        if (now - w->last_pause_log_ms >= 10000 || w->last_pause_log_ms == 0) {
            w->last_pause_log_ms = now;
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "throttled: %s", line);
        }
        schedule(w, PAUSE_RECHECK_MS);
        return;
    }
    if (w->pause_reason[0]) {
        char d[32];
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "resuming after %s (%s)",
                zdm_format_duration(zdm_mono_ms() - w->pause_since_ms, d, sizeof d), w->pause_reason);
        w->pause_reason[0] = '\0';
        w->last_pause_log_ms = 0;
        w->win_n = w->plan_win_n = 0; /* the pause stays out of the rates */
    }
    if (w->pacer.baseline_us == 0 && w->pacer.latency_pct)
        rc = probe_latency(w, 1, err);
    else
        rc = probe_latency(w, 0, err);
    if (rc != 0) {
        failed(w, rc);
        return;
    }
    int range_done = 0;
    int64_t scanned = 0, updated = 0, t0 = zdm_mono_ms();
    rc = batch(w, w->pacer.size, &range_done, &scanned, &updated, err);
    int64_t t1 = zdm_mono_ms();
    if (rc != 0) {
        failed(w, rc);
        return;
    }
    w->busy_retries = 0;
    zdm_pacer_record(&w->pacer, scanned, t1 - t0, t1);
    w->last_batch_ms = t1 - t0;
    zdm_histogram_observe(&w->batch_hist, (double)(t1 - t0) / 1000.0);
    note_rows(w, updated);
    zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "range %d: %lld keys, %lld rows converted in %lld ms; next batch %lld",
            w->range_id, (long long)scanned, (long long)updated, (long long)(t1 - t0), (long long)w->pacer.size);
    if (range_done)
        release(w);
    progress(w, 0);
    schedule(w, zdm_pacer_delay(&w->pacer, zdm_mono_ms()));
}

int zdm_backfill_run(zdm_db *db, const zdm_plan *plan, zdm_backfill_opts *o, zdm_err *err)
{
    if (!plan->backfill)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s has no [backfill]", plan->id);
    worker w;
    memset(&w, 0, sizeof w);
    w.db = db;
    w.plan = plan;
    w.o = o;
    w.err = err;
    w.pg = zdm_db_kind_of(db) == ZDM_DB_PG;
    w.range_id = -1;
    w.start_ms = zdm_mono_ms();
    w.start_wall_ms = zdm_now_ms();
    zdm_histogram_init_batch(&w.batch_hist);
    w.tty = o->progress_tty >= 0 ? o->progress_tty : isatty(2);
    snprintf(w.me, sizeof w.me, "%s pid %d", zdm_whoami(), (int)getpid());
    w.th = plan->backfill->throttle;
    const zdm_throttle *t = &plan->backfill->throttle;
    zdm_pacer_init(&w.pacer, t->batch_size, t->min_batch_size, t->max_batch_size, t->target_batch_ms,
                   t->max_rows_per_second, t->sleep_ms);
    zdm_pacer_latency(&w.pacer, t->max_latency_pct, t->max_lock_ms, !w.pg);

    zdm_db *own = NULL, *caller = db;
    if (o->url) {
        int orc = zdm_db_open(o->url, &own, err);
        if (orc != 0)
            return orc;
        w.db = db = own;
    }
    w.tbl = zdm_db_ident_path(db, plan->backfill->table);
    int rc = zdm_backfill_key(db, plan, &w.key, err);
    if (rc == 0)
        rc = init_ranges(&w, err);
    if (rc != 0) {
        zdm_strv_free(&w.key);
        free(w.tbl);
        if (own)
            zdm_db_close(own);
        return rc;
    }
    build_sql(&w);

    int own_sig = zdm_sig_fd() < 0; /* called outside a command (tests) */
    if (own_sig)
        zdm_sig_install();
    zdm_db_cancel_arm(w.db);

    w.base = event_base_new();
    w.tick = evtimer_new(w.base, on_tick, &w);
    struct event *sigev = event_new(w.base, zdm_sig_fd(), EV_READ | EV_PERSIST, on_sig_event, &w);
    event_add(sigev, NULL);
    zdm_httpstat *http = NULL;
    if (o->listen) {
        rc = zdm_httpstat_start(w.base, o->listen, fill_http, &w, &http, err);
        if (rc == 0)
            zdm_log(ZDM_LOG_INFO, plan->id, "backfill", "serving /status and /metrics on %s", o->listen);
    }
    if (rc == 0) {
        schedule(&w, 0);
        event_base_dispatch(w.base);
        rc = w.rc;
        o->finished_plan = w.finished_plan;
    }
    zdm_httpstat_stop(http);

    zdm_db_cancel_disarm();
    event_free(sigev);
    if (own_sig)
        zdm_sig_restore();
    if (w.db && w.range_id >= 0)
        release(&w);
    if (w.db)
        progress(&w, 1);
    if (rc == ZDM_EXIT_INTERRUPTED) {
        zdm_err_set(err, ZDM_EXIT_INTERRUPTED,
                    "backfill of %s interrupted after %lld rows by this worker; every committed batch is kept",
                    plan->id, (long long)w.rows_mine);
        zdm_err_detail(err, "safe to resume: run \"zdm backfill %s\" (or zdm advance) again", plan->id);
    } else if (rc != 0 && !err->detail[0]) {
        zdm_err_detail(err, "the failed batch was rolled back and every earlier batch is kept; fix the cause, "
                            "then run \"zdm backfill %s\" again to resume", plan->id);
    }
    event_free(w.tick);
    event_base_free(w.base);
    for (int i = 0; i < 2; i++) {
        free(w.peek_sql[i]);
        free(w.update_sql[i]);
        free(w.combo_sql[i]);
    }
    free(w.span_sql);
    free(w.next_key_sql);
    free(w.tbl);
    free(w.cursor);
    free(w.hi);
    zdm_strv_free(&w.key);
    if (o->url && w.db)
        zdm_db_close(w.db);
    if (o->url)
        revive_caller(caller, o->url, plan);
    return rc;
}

/* ---- controls ---- */

static int ensure_row(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, key_cols, started_ms) VALUES ($1, '', 0) "
                              "ON CONFLICT (plan_id) DO NOTHING", zdm_state_table(db, "backfills"));
    const char *p[] = {plan_id};
    return zdm_db_query(db, sql, 1, p, NULL, err);
}

int zdm_backfill_set_paused(zdm_db *db, const zdm_plan *plan, int paused, zdm_err *err)
{
    int rc = ensure_row(db, plan->id, err);
    if (rc != 0)
        return rc;
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE %s SET paused = $2 WHERE plan_id = $1", zdm_state_table(db, "backfills"));
    const char *p[] = {plan->id, paused ? "1" : "0"};
    rc = zdm_db_query(db, sql, 2, p, NULL, err);
    if (rc == 0) {
        zdm_history_entry h = {plan->id, paused ? "pause" : "resume", NULL, NULL, "ok", NULL};
        rc = zdm_state_history_add(db, &h, NULL, err);
    }
    return rc;
}

static const char *const live_keys[] = {"batch_size", "target_batch_ms", "min_batch_size", "max_batch_size",
                                        "max_rows_per_second", "sleep_ms", "max_replication_lag_ms",
                                        "max_latency_factor", "max_lock_ms"};
#define NLIVE (sizeof live_keys / sizeof live_keys[0])

static int parse_setting(const char *kv, char *key, size_t ksize, long long *v, zdm_err *err)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "expected KEY=VALUE, got \"%s\"", kv);
    snprintf(key, ksize, "%.*s", (int)(eq - kv), kv);
    const char *value = eq + 1;
    int known = 0;
    for (size_t i = 0; i < NLIVE; i++)
        known |= strcmp(live_keys[i], key) == 0;
    if (!known) {
        const char *hint = zdm_did_you_mean(key, live_keys, NLIVE);
        zdm_err_set(err, ZDM_EXIT_USAGE, "\"%s\" cannot be changed live%s%s%s", key,
                    hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
        zdm_err_detail(err, "live settings: batch_size, target_batch_ms, min_batch_size, max_batch_size, "
                            "max_rows_per_second, sleep_ms, max_replication_lag_ms, max_latency_factor, "
                            "max_lock_ms");
        return ZDM_EXIT_USAGE;
    }
    char *end;
    errno = 0;
    if (strcmp(key, "max_latency_factor") == 0) {
        /* a factor: 0 (no latency pacing) or 1..100, kept x 100 */
        double f = strtod(value, &end);
        if (!*value || *end || errno || !(f == 0 || (f >= 1 && f <= 100))) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: expected 0 (off) or a number from 1 to 100, e.g. 1.5", key,
                        value);
            return ZDM_EXIT_USAGE;
        }
        *v = (long long)(f * 100 + 0.5);
        return 0;
    }
    *v = strtoll(value, &end, 10);
    if (!*value || *end || errno || *v < 0 || (*v == 0 && strstr(key, "batch_size"))) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: expected a %s integer", key, value,
                    strstr(key, "batch_size") ? "positive" : "non-negative");
        return ZDM_EXIT_USAGE;
    }
    return 0;
}

static long long eff(const json_t *o, const char *key, long long plan_value)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : plan_value;
}

/* The plan's settings with the overrides in o must still make sense. */
static int check_effective(const zdm_plan *plan, const json_t *o, zdm_err *err)
{
    const zdm_throttle *t = &plan->backfill->throttle;
    long long mn = eff(o, "min_batch_size", t->min_batch_size), mx = eff(o, "max_batch_size", t->max_batch_size);
    long long bs = eff(o, "batch_size", t->batch_size);
    if (mn > mx) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "min_batch_size (%lld) would be larger than max_batch_size (%lld)", mn, mx);
        zdm_err_detail(err, "nothing was changed; set both in one command, e.g. zdm set %s min_batch_size=%lld "
                            "max_batch_size=%lld", plan->id, mx, mn);
        return ZDM_EXIT_USAGE;
    }
    if (bs < mn || bs > mx) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "batch_size (%lld) would be outside min_batch_size..max_batch_size (%lld..%lld)",
                    bs, mn, mx);
        zdm_err_detail(err, "nothing was changed; set the bounds and batch_size together");
        return ZDM_EXIT_USAGE;
    }
    return 0;
}

static int set_many_once(zdm_db *db, const zdm_plan *plan, const char *const *kv, int n, int reset,
                         zdm_err *err)
{
    /* Parse everything first: a bad value changes nothing. */
    char key[64];
    long long v;
    for (int i = 0; i < n; i++)
        if (parse_setting(kv[i], key, sizeof key, &v, err) != 0)
            return err->code;
    int rc = ensure_row(db, plan->id, err);
    if (rc != 0)
        return rc;
    /* Read, merge, write in one transaction with the row locked (SQLite:
     * BEGIN IMMEDIATE holds the write lock), so two zdm set at once never
     * lose one of the changes. */
    rc = zdm_db_begin(db, err);
    if (rc != 0)
        return rc;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT settings FROM %s WHERE plan_id = $1%s", zdm_state_table(db, "backfills"),
             zdm_db_kind_of(db) == ZDM_DB_PG ? " FOR UPDATE" : "");
    const char *p[] = {plan->id};
    char *cur = NULL;
    rc = zdm_db_query_value(db, sql, 1, p, &cur, err);
    json_t *o = NULL;
    if (rc == 0) {
        json_error_t je;
        o = reset ? NULL : json_loads(cur ? cur : "{}", 0, &je);
        if (!o)
            o = json_object();
    }
    free(cur);
    zdm_buf detail = {0};
    if (reset)
        zdm_buf_printf(&detail, "--reset");
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = parse_setting(kv[i], key, sizeof key, &v, err);
        if (rc == 0 && strcmp(key, "max_latency_factor") == 0) {
            json_object_set_new(o, key, json_real((double)v / 100.0));
            zdm_buf_printf(&detail, "%s%s=%g", detail.len ? " " : "", key, (double)v / 100.0);
        } else if (rc == 0) {
            json_object_set_new(o, key, json_integer(v));
            zdm_buf_printf(&detail, "%s%s=%lld", detail.len ? " " : "", key, v);
        }
    }
    if (rc == 0)
        rc = check_effective(plan, o, err);
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (rc == 0) {
        snprintf(sql, sizeof sql, "UPDATE %s SET settings = $2 WHERE plan_id = $1", zdm_state_table(db, "backfills"));
        const char *pu[] = {plan->id, txt};
        rc = zdm_db_query(db, sql, 2, pu, NULL, err);
    }
    if (rc == 0) {
        zdm_history_entry h = {plan->id, "set", NULL, NULL, "ok", detail.data};
        rc = zdm_state_history_add(db, &h, NULL, err);
    }
    if (rc == 0)
        rc = zdm_db_commit(db, err);
    else
        zdm_db_rollback(db);
    free(txt);
    zdm_buf_free(&detail);
    return rc;
}

/* The transaction above again while the database is busy: on SQLite a
 * commit gives the lock up after a short wait rather than hold PENDING
 * against the application's readers, so under concurrent zdm set (or a
 * busy application) one try may lose the race; it changed nothing, and a
 * later try merges into whatever the others wrote.  Bounded (about 10 s),
 * and a signal ends the wait. */
int zdm_backfill_set_many(zdm_db *db, const zdm_plan *plan, const char *const *kv, int n, int reset,
                          zdm_err *err)
{
    int64_t t0 = zdm_mono_ms(), pause = 10;
    for (;;) {
        int rc = set_many_once(db, plan, kv, n, reset, err);
        if (rc == 0 || !zdm_db_err_is_lock_timeout(err) || zdm_mono_ms() - t0 > 10000)
            return rc;
        /* jitter from the pid and the clock: concurrent sets must not retry in step */
        if (zdm_sig_sleep_ms(pause + (int64_t)(((uint64_t)zdm_mono_ms() * 31u + (uint64_t)getpid()) % (uint64_t)(pause + 1))))
            return zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "zdm set interrupted while the database was busy");
        if (pause < 400)
            pause *= 2;
        zdm_err_clear(err);
    }
}

int zdm_backfill_set(zdm_db *db, const zdm_plan *plan, const char *key, const char *value, zdm_err *err)
{
    char *kv = zdm_xasprintf("%s=%s", key, value);
    const char *one[] = {kv};
    int rc = zdm_backfill_set_many(db, plan, one, 1, 0, err);
    free(kv);
    return rc;
}

int zdm_backfill_overrides(zdm_db *db, const char *plan_id, char **json, zdm_err *err)
{
    *json = NULL;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT settings FROM %s WHERE plan_id = $1", zdm_state_table(db, "backfills"));
    const char *p[] = {plan_id};
    int rc = zdm_db_query_value(db, sql, 1, p, json, err);
    if (rc == 0 && !*json)
        *json = zdm_xstrdup("{}");
    return rc;
}

int zdm_backfill_settings_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    const char *p[] = {plan_id};
    snprintf(sql, sizeof sql, "UPDATE %s SET settings = '{}' WHERE plan_id = $1", zdm_state_table(db, "backfills"));
    return zdm_db_query(db, sql, 1, p, NULL, err);
}

int zdm_backfill_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    const char *p[] = {plan_id};
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE plan_id = $1", zdm_state_table(db, "ranges"));
    int rc = zdm_db_query(db, sql, 1, p, NULL, err);
    if (rc == 0) {
        /* keep operator settings and pause; forget the split */
        snprintf(sql, sizeof sql, "UPDATE %s SET started_ms = 0, finished_ms = NULL, key_cols = '', bound = NULL, "
                                  "total_est = 0 WHERE plan_id = $1", zdm_state_table(db, "backfills"));
        rc = zdm_db_query(db, sql, 1, p, NULL, err);
    }
    return rc;
}

/* A worker is live while its heartbeat is fresh and its session
 * (PostgreSQL: the backend in pg_stat_activity) or its process (SQLite,
 * same host) still exists: one killed with kill -9 is gone at once. */
int zdm_backfill_workers(zdm_db *db, const char *plan_id, zdm_rows **out, zdm_err *err)
{
    *out = NULL;
    char sql[700], fresh[32];
    snprintf(sql, sizeof sql,
             "SELECT owner, range_id, rows_done, heartbeat_ms, throttle, last_batch_ms, owner_host, owner_pid, %s "
             "FROM %s r WHERE plan_id = $1 AND owner IS NOT NULL AND done = 0 AND heartbeat_ms > $2 "
             "ORDER BY owner, range_id",
             zdm_db_kind_of(db) == ZDM_DB_PG
                 ? "CASE WHEN r.owner_backend IS NULL OR EXISTS (SELECT 1 FROM pg_stat_activity a "
                   "WHERE a.pid = r.owner_backend) THEN 1 ELSE 0 END"
                 : "1",
             zdm_state_table(db, "ranges"));
    snprintf(fresh, sizeof fresh, "%lld", (long long)(zdm_now_ms() - STALE_OWNER_MS));
    const char *p[] = {plan_id, fresh};
    zdm_rows *all = NULL;
    int rc = zdm_db_query(db, sql, 2, p, &all, err);
    if (rc != 0)
        return rc;
    zdm_rows *live = zdm_rows_new(6);
    for (int i = 0; i < zdm_rows_count(all); i++) {
        const char *host = zdm_rows_get(all, i, 6), *pid = zdm_rows_get(all, i, 7);
        int alive = atoi(zdm_rows_get(all, i, 8));
        if (alive && host && pid && strcmp(host, host_of()) == 0 && atoi(pid) > 0 &&
            kill(atoi(pid), 0) != 0 && errno == ESRCH)
            alive = 0;
        if (!alive)
            continue;
        const char *v[6] = {zdm_rows_get(all, i, 0), zdm_rows_get(all, i, 1), zdm_rows_get(all, i, 2),
                            zdm_rows_get(all, i, 3), zdm_rows_get(all, i, 4), zdm_rows_get(all, i, 5)};
        if (zdm_rows_add(live, v) != 0) {
            zdm_rows_free(live);
            zdm_rows_free(all);
            return zdm_err_set(err, ZDM_EXIT_FAIL, "out of memory listing workers");
        }
    }
    zdm_rows_free(all);
    *out = live;
    return 0;
}

int zdm_backfill_last_progress(zdm_db *db, const char *plan_id, int64_t *last_ms, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT max(last_batch_ms) FROM %s WHERE plan_id = $1", zdm_state_table(db, "ranges"));
    const char *p[] = {plan_id};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 1, p, &v, err);
    *last_ms = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return rc;
}

int zdm_backfill_progress_get(zdm_db *db, const char *plan_id, zdm_backfill_progress *out, zdm_err *err)
{
    memset(out, 0, sizeof *out);
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT b.started_ms, b.total_est, b.paused, "
             "(SELECT count(*) FROM %s r WHERE r.plan_id = b.plan_id), "
             "(SELECT COALESCE(sum(done), 0) FROM %s r WHERE r.plan_id = b.plan_id), "
             "(SELECT COALESCE(sum(rows_done), 0) FROM %s r WHERE r.plan_id = b.plan_id), "
             "(SELECT count(*) FROM %s r WHERE r.plan_id = b.plan_id AND r.owner IS NOT NULL AND r.done = 0 AND r.heartbeat_ms > $2), "
             "(SELECT max(throttle) FROM %s r WHERE r.plan_id = b.plan_id AND r.owner IS NOT NULL AND r.heartbeat_ms > $2) "
             "FROM %s b WHERE b.plan_id = $1",
             zdm_state_table(db, "ranges"), zdm_state_table(db, "ranges"), zdm_state_table(db, "ranges"),
             zdm_state_table(db, "ranges"), zdm_state_table(db, "ranges"), zdm_state_table(db, "backfills"));
    char fresh[32];
    snprintf(fresh, sizeof fresh, "%lld", (long long)(zdm_now_ms() - STALE_OWNER_MS));
    const char *p[] = {plan_id, fresh};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 2, p, &r, err);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        out->started = strtoll(zdm_rows_get(r, 0, 0), NULL, 10) != 0;
        out->total_est = strtoll(zdm_rows_get(r, 0, 1), NULL, 10);
        out->paused = atoi(zdm_rows_get(r, 0, 2));
        out->ranges = atoi(zdm_rows_get(r, 0, 3));
        out->ranges_done = atoi(zdm_rows_get(r, 0, 4));
        out->rows_done = strtoll(zdm_rows_get(r, 0, 5), NULL, 10);
        out->workers = atoi(zdm_rows_get(r, 0, 6));
        snprintf(out->throttle, sizeof out->throttle, "%s", zdm_rows_get(r, 0, 7) ? zdm_rows_get(r, 0, 7) : "");
    }
    zdm_rows_free(r);
    /* Only live workers count: a dead one's range waits for a new worker. */
    zdm_rows *lw = NULL;
    if (rc == 0 && out->workers > 0 && (rc = zdm_backfill_workers(db, plan_id, &lw, err)) == 0)
        out->workers = zdm_rows_count(lw);
    zdm_rows_free(lw);
    return rc;
}
