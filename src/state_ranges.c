/*
 * state_ranges.c -- zdm's backfills and ranges tables (see state_ranges.h).
 *
 * Owns: every statement on `backfills` and `ranges`, and the backfill's
 * move of its plan to backfilled.  What differs between the databases --
 * the row-lock suffix, how a worker's session is known to be alive -- is
 * the dialect's (dialect.h); the SQL here is written once.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dialect.h"
#include "state.h"
#include "state_ranges.h"

static const char *ranges_t(const zdm_db *db) { return zdm_state_table(db, "ranges"); }
static const char *backfills_t(const zdm_db *db) { return zdm_state_table(db, "backfills"); }

static void ms_text(char *buf, size_t size, int64_t ms) { snprintf(buf, size, "%lld", (long long)ms); }

static char *dup_or_null(const char *s) { return s ? zdm_xstrdup(s) : NULL; }

/* A worker's pace as two statement parameters, both NULL when not known. */
typedef struct rate_text {
    char rows[32], ms[32];
    const char *p_rows, *p_ms;
} rate_text;
static void rate_params(const zdm_state_rate *rate, rate_text *t)
{
    t->p_rows = t->p_ms = NULL;
    if (!rate || rate->ms <= 0 || rate->rows < 0)
        return;
    ms_text(t->rows, sizeof t->rows, rate->rows);
    ms_text(t->ms, sizeof t->ms, rate->ms);
    t->p_rows = t->rows;
    t->p_ms = t->ms;
}

/* ---- the backfills row ---- */

int zdm_state_backfill_ensure(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, key_cols, started_ms) VALUES ($1, '', 0) "
                              "ON CONFLICT (plan_id) DO NOTHING", backfills_t(db));
    const char *p[] = {plan_id};
    return zdm_db_query(db, sql, 1, p, NULL, err);
}

void zdm_state_backfill_free(zdm_state_backfill *b)
{
    zdm_strv_free(&b->key);
    memset(b, 0, sizeof *b);
}

int zdm_state_backfill_lock(zdm_db *db, const char *plan_id, zdm_state_backfill *out, zdm_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = zdm_state_backfill_ensure(db, plan_id, err);
    if (rc != 0)
        return rc;
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT started_ms, key_cols, total_est FROM %s WHERE plan_id = $1%s",
             backfills_t(db), zdm_db_dialect(db)->lock_row);
    const char *p[] = {plan_id};
    zdm_rows *r = NULL;
    rc = zdm_db_query(db, sql, 1, p, &r, err);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        out->started_ms = strtoll(zdm_rows_get(r, 0, 0), NULL, 10);
        out->total_est = strtoll(zdm_rows_get(r, 0, 2), NULL, 10);
        if (out->started_ms != 0) {
            json_error_t je;
            json_t *k = json_loads(zdm_rows_get(r, 0, 1), 0, &je);
            for (size_t i = 0; k && i < json_array_size(k); i++)
                zdm_strv_push(&out->key, json_string_value(json_array_get(k, i)));
            json_decref(k);
        }
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_ranges_init(zdm_db *db, const char *plan_id, const zdm_strv *key, const zdm_strv *bounds,
                          int64_t total_est, zdm_err *err)
{
    char sql[300], now[32], rid[32], est[32];
    ms_text(now, sizeof now, zdm_now_ms());
    int rc = 0;
    snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, range_id, lo, hi, cursor) VALUES ($1, $2, $3, $4, $3)",
             ranges_t(db));
    for (size_t i = 0; rc == 0 && i < bounds->n; i++) {
        snprintf(rid, sizeof rid, "%zu", i);
        const char *p[] = {plan_id, rid, i ? bounds->v[i - 1] : NULL, bounds->v[i]};
        rc = zdm_db_query(db, sql, 4, p, NULL, err);
    }
    if (rc != 0)
        return rc;
    json_t *k = json_array();
    for (size_t i = 0; i < key->n; i++)
        json_array_append_new(k, json_string(key->v[i]));
    char *kj = json_dumps(k, JSON_COMPACT);
    json_decref(k);
    ms_text(est, sizeof est, total_est < 0 ? 0 : total_est);
    snprintf(sql, sizeof sql, "UPDATE %s SET key_cols = $2, started_ms = $3, total_est = $4 WHERE plan_id = $1",
             backfills_t(db));
    const char *p[] = {plan_id, kj, now, est};
    rc = zdm_db_query(db, sql, 4, p, NULL, err);
    free(kj);
    return rc;
}

int zdm_state_backfill_complete(zdm_db *db, const char *plan_id, const char *detail, int *moved, zdm_err *err)
{
    *moved = 0;
    char sql[300], now[32];
    ms_text(now, sizeof now, zdm_now_ms());
    snprintf(sql, sizeof sql,
             "UPDATE %s SET phase = 'backfilled', phase_since_ms = $2 WHERE id = $1 AND phase = 'expanded'",
             zdm_state_table(db, "plans"));
    const char *p[] = {plan_id, now};
    int rc = zdm_db_query(db, sql, 2, p, NULL, err);
    if (rc != 0 || zdm_db_changes(db) != 1)
        return rc;
    zdm_history_entry h = {plan_id, "backfill", "expanded", "backfilled", "ok", detail};
    rc = zdm_state_history_add(db, &h, NULL, err);
    if (rc == 0) {
        snprintf(sql, sizeof sql, "UPDATE %s SET finished_ms = $2 WHERE plan_id = $1", backfills_t(db));
        rc = zdm_db_query(db, sql, 2, p, NULL, err);
    }
    *moved = rc == 0;
    return rc;
}

int zdm_state_ranges_finish_lock(zdm_db *db, const char *plan_id, int64_t wait_ms, int *finished, zdm_err *err)
{
    *finished = 0;
    char sql[300], ms[32];
    ms_text(ms, sizeof ms, wait_ms);
    const char *pt[] = {ms};
    int rc = zdm_db_query(db, "SELECT set_config('lock_timeout', $1, true)", 1, pt, NULL, err);
    const char *p[] = {plan_id};
    if (rc == 0) {
        snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE plan_id = $1 AND range_id = (SELECT min(range_id) FROM %s "
                                  "WHERE plan_id = $1)%s", ranges_t(db), ranges_t(db), zdm_db_dialect(db)->lock_row);
        rc = zdm_db_query(db, sql, 1, p, NULL, err);
    }
    char *phase = NULL;
    if (rc == 0) {
        snprintf(sql, sizeof sql, "SELECT phase FROM %s WHERE id = $1", zdm_state_table(db, "plans"));
        rc = zdm_db_query_value(db, sql, 1, p, &phase, err);
    }
    if (rc == 0)
        *finished = !phase || strcmp(phase, "expanded") != 0;
    free(phase);
    return rc;
}

/* ---- the operator's controls ---- */

int zdm_state_backfill_controls(zdm_db *db, const char *plan_id, int *found, int *paused, char **settings,
                                int *workers, zdm_err *err)
{
    *found = *paused = *workers = 0;
    *settings = NULL;
    char sql[400], fresh[32];
    snprintf(sql, sizeof sql,
             "SELECT paused, settings, (SELECT count(DISTINCT owner) FROM %s r WHERE r.plan_id = $1 "
             "AND r.owner IS NOT NULL AND r.done = 0 AND r.heartbeat_ms > $2) FROM %s WHERE plan_id = $1",
             ranges_t(db), backfills_t(db));
    ms_text(fresh, sizeof fresh, zdm_now_ms() - ZDM_RANGE_STALE_MS);
    const char *p[] = {plan_id, fresh};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 2, p, &r, err);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        *found = 1;
        *paused = atoi(zdm_rows_get(r, 0, 0));
        *settings = dup_or_null(zdm_rows_get(r, 0, 1));
        *workers = atoi(zdm_rows_get(r, 0, 2));
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_backfill_set_paused(zdm_db *db, const char *plan_id, int paused, zdm_err *err)
{
    int rc = zdm_state_backfill_ensure(db, plan_id, err);
    if (rc != 0)
        return rc;
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE %s SET paused = $2 WHERE plan_id = $1", backfills_t(db));
    const char *p[] = {plan_id, paused ? "1" : "0"};
    return zdm_db_query(db, sql, 2, p, NULL, err);
}

int zdm_state_backfill_settings_lock(zdm_db *db, const char *plan_id, char **json, zdm_err *err)
{
    *json = NULL;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT settings FROM %s WHERE plan_id = $1%s", backfills_t(db),
             zdm_db_dialect(db)->lock_row);
    const char *p[] = {plan_id};
    return zdm_db_query_value(db, sql, 1, p, json, err);
}

int zdm_state_backfill_settings_put(zdm_db *db, const char *plan_id, const char *json, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE %s SET settings = $2 WHERE plan_id = $1", backfills_t(db));
    const char *p[] = {plan_id, json};
    return zdm_db_query(db, sql, 2, p, NULL, err);
}

int zdm_state_backfill_settings_get(zdm_db *db, const char *plan_id, char **json, zdm_err *err)
{
    *json = NULL;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT settings FROM %s WHERE plan_id = $1", backfills_t(db));
    const char *p[] = {plan_id};
    int rc = zdm_db_query_value(db, sql, 1, p, json, err);
    if (rc == 0 && !*json)
        *json = zdm_xstrdup("{}");
    return rc;
}

int zdm_state_backfill_settings_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    const char *p[] = {plan_id};
    snprintf(sql, sizeof sql, "UPDATE %s SET settings = '{}' WHERE plan_id = $1", backfills_t(db));
    return zdm_db_query(db, sql, 1, p, NULL, err);
}

int zdm_state_ranges_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    const char *p[] = {plan_id};
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE plan_id = $1", ranges_t(db));
    int rc = zdm_db_query(db, sql, 1, p, NULL, err);
    if (rc == 0) {
        /* keep operator settings and pause; forget the split */
        snprintf(sql, sizeof sql, "UPDATE %s SET started_ms = 0, finished_ms = NULL, key_cols = '', bound = NULL, "
                                  "total_est = 0 WHERE plan_id = $1", backfills_t(db));
        rc = zdm_db_query(db, sql, 1, p, NULL, err);
    }
    return rc;
}

/* ---- claiming and working a range ---- */

void zdm_state_range_free(zdm_state_range *r)
{
    free(r->hi);
    free(r->cursor);
    memset(r, 0, sizeof *r);
    r->id = -1;
}

const char *zdm_state_ranges_host(void)
{
    const char *at = strchr(zdm_whoami(), '@');
    return at ? at + 1 : zdm_whoami();
}

/* Without sessions visible across connections (SQLite): owners on this
 * host whose process is gone free their ranges at once; owners elsewhere
 * only when their heartbeat goes stale. */
static int free_dead_local_owners(zdm_db *db, const char *plan_id, const char *pid, zdm_err *err)
{
    char q[300];
    snprintf(q, sizeof q, "SELECT DISTINCT owner_pid FROM %s WHERE plan_id = $1 AND done = 0 "
                          "AND owner_host = $2 AND owner_pid <> $3", ranges_t(db));
    const char *pq[] = {plan_id, zdm_state_ranges_host(), pid};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, q, 3, pq, &r, err);
    for (int i = 0; rc == 0 && i < zdm_rows_count(r); i++) {
        int opid = atoi(zdm_rows_get(r, i, 0));
        if (opid > 0 && kill(opid, 0) != 0 && errno == ESRCH) {
            snprintf(q, sizeof q, "UPDATE %s SET owner = NULL, owner_pid = NULL WHERE plan_id = $1 "
                                  "AND owner_host = $2 AND owner_pid = $3", ranges_t(db));
            const char *pc[] = {plan_id, zdm_state_ranges_host(), zdm_rows_get(r, i, 0)};
            rc = zdm_db_query(db, q, 3, pc, NULL, err);
        }
    }
    zdm_rows_free(r);
    return rc;
}

/* The claiming UPDATE.  With sessions visible (PostgreSQL): a range is
 * free when its owner's session is gone (pg_stat_activity forgets a
 * backend the moment it exits, kill -9 included) or its heartbeat is
 * stale, and SKIP LOCKED passes over ranges mid-batch.  Without: when it
 * has no owner, is this process's own, or its heartbeat is stale. */
static void claim_sql(zdm_db *db, zdm_buf *b)
{
    const zdm_dialect *d = zdm_db_dialect(db);
    zdm_buf_printf(b, "UPDATE %s SET owner = $2, owner_host = $3, owner_pid = $4, ", ranges_t(db));
    if (d->session_id)
        zdm_buf_printf(b, "owner_backend = %s, ", d->session_id);
    zdm_buf_printf(b, "heartbeat_ms = $5, throttle = NULL, rate_rows = $7, rate_ms = $8 "
                      "WHERE plan_id = $1 AND range_id = (SELECT range_id FROM %s r "
                      "WHERE plan_id = $1 AND done = 0 AND (",
                   ranges_t(db));
    if (d->session_id) {
        zdm_buf_printf(b, "owner_backend IS NULL OR owner_backend = %s OR heartbeat_ms < $6 OR NOT %s", d->session_id,
                       d->session_alive);
    } else {
        zdm_buf_puts(b, "owner IS NULL OR (owner_host = $3 AND owner_pid = $4) OR heartbeat_ms < $6");
    }
    zdm_buf_printf(b, ") ORDER BY range_id LIMIT 1%s) RETURNING range_id, hi, cursor", d->lock_row_skip_locked);
}

int zdm_state_ranges_claim(zdm_db *db, const char *plan_id, const char *owner, const zdm_state_rate *rate, int *got,
                           zdm_state_range *out, zdm_err *err)
{
    *got = 0;
    char now[32], stale[32], pid[16];
    ms_text(now, sizeof now, zdm_now_ms());
    ms_text(stale, sizeof stale, zdm_now_ms() - ZDM_RANGE_STALE_MS);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    int rc = 0;
    if (!zdm_db_dialect(db)->session_id && (rc = free_dead_local_owners(db, plan_id, pid, err)) != 0)
        return rc;
    zdm_buf sql = {0};
    claim_sql(db, &sql);
    /* the worker's pace carries over to its new range (a range it leaves
     * done no longer counts): status does not lose it between ranges */
    rate_text rt;
    rate_params(rate, &rt);
    const char *params[] = {plan_id, owner, zdm_state_ranges_host(), pid, now, stale, rt.p_rows, rt.p_ms};
    zdm_rows *r = NULL;
    rc = zdm_db_query(db, sql.data, 8, params, &r, err);
    zdm_buf_free(&sql);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        *got = 1;
        free(out->hi);
        free(out->cursor);
        out->id = atoi(zdm_rows_get(r, 0, 0));
        out->hi = zdm_xstrdup(zdm_rows_get(r, 0, 1));
        out->cursor = dup_or_null(zdm_rows_get(r, 0, 2));
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_ranges_release(zdm_db *db, const char *plan_id, int range_id, const char *owner, zdm_err *err)
{
    char sql[300], rid[16];
    snprintf(sql, sizeof sql, "UPDATE %s SET owner = NULL, owner_pid = NULL, owner_backend = NULL, throttle = NULL, "
                              "rate_rows = NULL, rate_ms = NULL WHERE plan_id = $1 AND range_id = $2 AND owner = $3",
             ranges_t(db));
    snprintf(rid, sizeof rid, "%d", range_id);
    const char *p[] = {plan_id, rid, owner};
    return zdm_db_query(db, sql, 3, p, NULL, err);
}

int zdm_state_ranges_heartbeat(zdm_db *db, const char *plan_id, int range_id, const char *owner,
                               const char *throttle, const zdm_state_rate *rate, zdm_err *err)
{
    char sql[300], rid[16], now[32];
    /* Only while the range is still ours: a heartbeat must not keep alive
     * a range another worker took over. */
    snprintf(sql, sizeof sql, "UPDATE %s SET heartbeat_ms = $3, throttle = $4, rate_rows = $6, rate_ms = $7 "
             "WHERE plan_id = $1 AND range_id = $2 AND owner = $5", ranges_t(db));
    snprintf(rid, sizeof rid, "%d", range_id);
    ms_text(now, sizeof now, zdm_now_ms());
    rate_text rt;
    rate_params(rate, &rt);
    const char *p[] = {plan_id, rid, now, throttle, owner, rt.p_rows, rt.p_ms};
    return zdm_db_query(db, sql, 7, p, NULL, err);
}

int zdm_state_ranges_lock(zdm_db *db, const char *plan_id, int range_id, char **cursor, int *done, char **owner,
                          char **hi, zdm_err *err)
{
    *cursor = *owner = *hi = NULL;
    *done = 0;
    char sql[300], rid[16];
    snprintf(sql, sizeof sql, "SELECT cursor, done, owner, hi FROM %s WHERE plan_id = $1 AND range_id = $2%s",
             ranges_t(db), zdm_db_dialect(db)->lock_row);
    snprintf(rid, sizeof rid, "%d", range_id);
    const char *p[] = {plan_id, rid};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 2, p, &r, err);
    if (rc == 0 && zdm_rows_count(r) != 1)
        rc = zdm_err_set(err, ZDM_EXIT_FAIL, "range %d of %s vanished from zdm's ranges table", range_id, plan_id);
    if (rc == 0) {
        *cursor = dup_or_null(zdm_rows_get(r, 0, 0));
        *done = atoi(zdm_rows_get(r, 0, 1));
        *owner = dup_or_null(zdm_rows_get(r, 0, 2));
        *hi = dup_or_null(zdm_rows_get(r, 0, 3));
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_key_int(const char *json, long long *out)
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

int zdm_state_ranges_busy(zdm_db *db, const char *plan_id, const char *owner, zdm_rows **out, zdm_err *err)
{
    *out = NULL;
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT range_id, cursor, hi FROM %s WHERE plan_id = $1 AND done = 0 "
                              "AND (owner IS NULL OR owner <> $2) ORDER BY range_id", ranges_t(db));
    const char *p[] = {plan_id, owner};
    return zdm_db_query(db, sql, 2, p, out, err);
}

/* A new range (after, up_to] of the plan with the next free id, owned by
 * `owner` (this process) or by nobody (owner NULL).  Another worker's
 * revisit or split may take the same id at the same time; ON CONFLICT
 * waits for it to commit and then inserts nothing, and the next id is
 * tried. */
static int insert_range(zdm_db *db, const char *plan_id, const char *after, const char *up_to, const char *owner,
                        const zdm_state_rate *rate, int *id, zdm_err *err)
{
    *id = -1;
    const zdm_dialect *d = zdm_db_dialect(db);
    char sql[600], rid[16], pid[16], now[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    ms_text(now, sizeof now, zdm_now_ms());
    rate_text rt;
    rate_params(rate, &rt);
    const char *p[] = {plan_id, NULL, after, up_to, owner, zdm_state_ranges_host(), pid, now, rt.p_rows, rt.p_ms};
    int np = 4;
    if (owner) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (plan_id, range_id, lo, hi, cursor, owner, owner_host, owner_pid, %sheartbeat_ms, "
                 "rate_rows, rate_ms) VALUES ($1, $2, $3, $4, $3, $5, $6, $7, %s%s$8, $9, $10) "
                 "ON CONFLICT (plan_id, range_id) DO NOTHING",
                 ranges_t(db), d->session_id ? "owner_backend, " : "", d->session_id ? d->session_id : "",
                 d->session_id ? ", " : "");
        np = 10;
    } else {
        snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, range_id, lo, hi, cursor) VALUES ($1, $2, $3, $4, $3) "
                                  "ON CONFLICT (plan_id, range_id) DO NOTHING", ranges_t(db));
    }
    char next_sql[200];
    snprintf(next_sql, sizeof next_sql, "SELECT COALESCE(max(range_id), -1) + 1 FROM %s WHERE plan_id = $1",
             ranges_t(db));
    int rc = 0;
    for (int tries = 0; rc == 0 && *id < 0 && tries < 100; tries++) {
        char *next = NULL;
        rc = zdm_db_query_value(db, next_sql, 1, p, &next, err);
        if (rc != 0 || !next) {
            free(next);
            break;
        }
        snprintf(rid, sizeof rid, "%d", atoi(next) + tries);
        free(next);
        p[1] = rid;
        rc = zdm_db_query(db, sql, np, p, NULL, err);
        if (rc == 0 && zdm_db_changes(db) == 1)
            *id = atoi(rid);
    }
    if (rc == 0 && *id < 0)
        rc = zdm_err_set(err, ZDM_EXIT_FAIL, "no free range id for a new range of %s", plan_id);
    return rc;
}

int zdm_state_ranges_split(zdm_db *db, const char *plan_id, int range_id, const char *owner,
                           const zdm_state_rate *rate, const char *mid, const char *hi, int *id, zdm_err *err)
{
    *id = -1;
    char sql[200], rid[16];
    snprintf(sql, sizeof sql, "UPDATE %s SET hi = $3 WHERE plan_id = $1 AND range_id = $2", ranges_t(db));
    snprintf(rid, sizeof rid, "%d", range_id);
    const char *p[] = {plan_id, rid, mid};
    int rc = zdm_db_query(db, sql, 3, p, NULL, err);
    if (rc == 0)
        rc = insert_range(db, plan_id, mid, hi, owner, rate, id, err);
    return rc;
}

int zdm_state_ranges_advance(zdm_db *db, const char *plan_id, int range_id, const char *last, int64_t rows,
                             int done, const zdm_state_rate *rate, zdm_err *err)
{
    char sql[500], rid[16], now[32], upd[32];
    snprintf(rid, sizeof rid, "%d", range_id);
    ms_text(now, sizeof now, zdm_now_ms());
    ms_text(upd, sizeof upd, rows);
    /* The range's last batch also releases it, in the same commit: the
     * worker's release after it (zdm_state_ranges_release) then changes
     * nothing, and a write that changes nothing commits without a WAL
     * flush -- one fsync less per range (PostgreSQL, fsync on). */
    /* The worker's pace rides on the statement every batch runs anyway:
     * no statement of its own on the hot path.  A range done forgets it
     * (as the release does: the release must still change nothing; the
     * worker's next claim carries the pace on). */
    snprintf(sql, sizeof sql,
             "UPDATE %s SET cursor = COALESCE($3, cursor), rows_done = rows_done + $4, batches = batches + 1, "
             "done = $5, heartbeat_ms = $6, last_batch_ms = $6, throttle = NULL, rate_rows = $7, rate_ms = $8%s "
             "WHERE plan_id = $1 AND range_id = $2",
             ranges_t(db), done ? ", owner = NULL, owner_pid = NULL, owner_backend = NULL" : "");
    rate_text rt;
    rate_params(done ? NULL : rate, &rt);
    const char *p[] = {plan_id, rid, last, upd, done ? "1" : "0", now, rt.p_rows, rt.p_ms};
    return zdm_db_query(db, sql, 8, p, NULL, err);
}

int zdm_state_ranges_revisit(zdm_db *db, const char *plan_id, const char *after, const char *up_to, int *id,
                             zdm_err *err)
{
    return insert_range(db, plan_id, after, up_to, NULL, NULL, id, err);
}

int zdm_state_ranges_swept(zdm_db *db, const char *plan_id, int64_t rows, zdm_err *err)
{
    int id = -1;
    int rc = insert_range(db, plan_id, NULL, NULL, NULL, NULL, &id, err);
    if (rc != 0)
        return rc;
    if (id < 0)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "could not record the rows the final check converted of plan %s",
                           plan_id);
    char sql[200], rid[16], n[32];
    snprintf(sql, sizeof sql, "UPDATE %s SET done = 1, rows_done = $3 WHERE plan_id = $1 AND range_id = $2",
             ranges_t(db));
    snprintf(rid, sizeof rid, "%d", id);
    snprintf(n, sizeof n, "%lld", (long long)rows);
    const char *p[] = {plan_id, rid, n};
    return zdm_db_query(db, sql, 3, p, NULL, err);
}

int zdm_state_ranges_summary(zdm_db *db, const char *plan_id, int64_t *ranges, int64_t *done, int64_t *rows,
                             zdm_err *err)
{
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*), COALESCE(sum(done), 0), COALESCE(sum(rows_done), 0) FROM %s WHERE plan_id = $1",
             ranges_t(db));
    const char *p[] = {plan_id};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 1, p, &r, err);
    if (rc != 0)
        return rc;
    *ranges = strtoll(zdm_rows_get(r, 0, 0), NULL, 10);
    *done = strtoll(zdm_rows_get(r, 0, 1), NULL, 10);
    *rows = strtoll(zdm_rows_get(r, 0, 2), NULL, 10);
    zdm_rows_free(r);
    return 0;
}

/* ---- for zdm status ---- */

/* A worker is live while its heartbeat is fresh and its session
 * (PostgreSQL: the backend in pg_stat_activity) or its process (SQLite,
 * same host) still exists: one killed with kill -9 is gone at once. */
int zdm_state_ranges_workers(zdm_db *db, const char *plan_id, zdm_rows **out, zdm_err *err)
{
    *out = NULL;
    const zdm_dialect *d = zdm_db_dialect(db);
    zdm_buf sql = {0};
    zdm_buf_puts(&sql, "SELECT owner, range_id, rows_done, heartbeat_ms, throttle, last_batch_ms, rate_rows, rate_ms, "
                       "owner_host, owner_pid, ");
    if (d->session_alive) {
        zdm_buf_printf(&sql, "CASE WHEN r.owner_backend IS NULL OR %s THEN 1 ELSE 0 END", d->session_alive);
    } else {
        zdm_buf_puts(&sql, "1");
    }
    zdm_buf_printf(&sql, " FROM %s r WHERE plan_id = $1 AND owner IS NOT NULL AND done = 0 AND heartbeat_ms > $2 "
                         "ORDER BY owner, range_id",
                   ranges_t(db));
    char fresh[32];
    ms_text(fresh, sizeof fresh, zdm_now_ms() - ZDM_RANGE_STALE_MS);
    const char *p[] = {plan_id, fresh};
    zdm_rows *all = NULL;
    int rc = zdm_db_query(db, sql.data, 2, p, &all, err);
    zdm_buf_free(&sql);
    if (rc != 0)
        return rc;
    zdm_rows *live = zdm_rows_new(8);
    for (int i = 0; i < zdm_rows_count(all); i++) {
        const char *host = zdm_rows_get(all, i, 8), *pid = zdm_rows_get(all, i, 9);
        int alive = atoi(zdm_rows_get(all, i, 10));
        if (alive && host && pid && strcmp(host, zdm_state_ranges_host()) == 0 && atoi(pid) > 0 &&
            kill(atoi(pid), 0) != 0 && errno == ESRCH)
            alive = 0;
        if (!alive)
            continue;
        const char *v[8];
        for (int c = 0; c < 8; c++)
            v[c] = zdm_rows_get(all, i, c);
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

int zdm_state_worker_rate(const zdm_rows *workers, int i, int64_t now_ms, double *rate)
{
    *rate = 0;
    const char *rows = zdm_rows_get(workers, i, 6), *ms = zdm_rows_get(workers, i, 7),
               *end = zdm_rows_get(workers, i, 3);
    if (!rows || !ms || !end)
        return 0;
    int64_t r = strtoll(rows, NULL, 10), w = strtoll(ms, NULL, 10), since = now_ms - strtoll(end, NULL, 10);
    if (r < 0 || w <= 0)
        return 0;
    /* Nothing committed since the window ended (a batch would have
     * written a newer one): within one window's length that is the gap
     * before the next batch, which the window already holds; past it, the
     * worker is slower than its window says, by the time it has gone
     * without a batch. */
    if (since > w)
        w = since;
    *rate = (double)r * 1000.0 / (double)w;
    return 1;
}

int zdm_state_workers_rate(const zdm_rows *live, int64_t now_ms, double *rate)
{
    /* one rate per worker: a worker on two rows (which the claim does not
     * make) counts once, at its newest heartbeat's */
    *rate = 0;
    int known = 0, n = zdm_rows_count(live);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        int64_t hb = strtoll(zdm_rows_get(live, i, 3), NULL, 10);
        for (int j = 0; j < n && !newer; j++) {
            if (j == i || strcmp(zdm_rows_get(live, i, 0), zdm_rows_get(live, j, 0)) != 0)
                continue;
            int64_t hj = strtoll(zdm_rows_get(live, j, 3), NULL, 10);
            newer = hj > hb || (hj == hb && j < i);
        }
        double r;
        if (!newer && zdm_state_worker_rate(live, i, now_ms, &r)) {
            known = 1;
            *rate += r;
        }
    }
    return known;
}

int zdm_state_ranges_last_batch(zdm_db *db, const char *plan_id, int64_t *last_ms, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT max(last_batch_ms) FROM %s WHERE plan_id = $1", ranges_t(db));
    const char *p[] = {plan_id};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 1, p, &v, err);
    *last_ms = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return rc;
}

/* The estimate of the rows still to convert (zdm_state_progress): a
 * finished range's actual count replaces its share of the estimate made at
 * the start, and the open ranges are expected to hold what the finished
 * ones showed -- a `where` whose planner estimate was off by 10x is right
 * once the first range is done. */
static int rows_left(zdm_db *db, const char *plan_id, zdm_state_progress *out, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT done, rows_done, cursor, hi FROM %s WHERE plan_id = $1", ranges_t(db));
    const char *p[] = {plan_id};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 1, p, &r, err);
    if (rc != 0)
        return rc;
    int n = zdm_rows_count(r), ndone = 0;
    int64_t fin = 0;
    for (int i = 0; i < n; i++)
        if (atoi(zdm_rows_get(r, i, 0))) {
            ndone++;
            fin += strtoll(zdm_rows_get(r, i, 1), NULL, 10);
        }
    int64_t left = 0;
    if (ndone == 0) {
        left = out->total_est > out->rows_done ? out->total_est - out->rows_done : 0;
    } else {
        /* per open range: the finished ranges' mean, less its own rows so
         * far (rounded up: a range that is not done has rows left to look
         * at, whatever it found so far) */
        for (int i = 0; i < n; i++) {
            if (atoi(zdm_rows_get(r, i, 0)))
                continue;
            int64_t own = strtoll(zdm_rows_get(r, i, 1), NULL, 10);
            int64_t mean_up = (fin + ndone - 1) / ndone, mine = mean_up > own ? mean_up - own : 0;
            /* never more rows than keys left: a range of the rows a batch
             * passed over (zdm_state_ranges_revisit) or a split's half */
            long long c, h;
            if (zdm_state_key_int(zdm_rows_get(r, i, 2), &c) && zdm_state_key_int(zdm_rows_get(r, i, 3), &h) &&
                h >= c && (unsigned long long)h - (unsigned long long)c < (unsigned long long)mine)
                mine = (int64_t)((unsigned long long)h - (unsigned long long)c);
            left += mine;
        }
    }
    out->rows_left_est = left;
    zdm_rows_free(r);
    return 0;
}

int zdm_state_ranges_progress(zdm_db *db, const char *plan_id, zdm_state_progress *out, zdm_err *err)
{
    memset(out, 0, sizeof *out);
    char sql[700];
    const char *rt = ranges_t(db);
    snprintf(sql, sizeof sql,
             "SELECT b.started_ms, b.total_est, b.paused, "
             "(SELECT count(*) FROM %s r WHERE r.plan_id = b.plan_id), "
             "(SELECT COALESCE(sum(done), 0) FROM %s r WHERE r.plan_id = b.plan_id), "
             "(SELECT COALESCE(sum(rows_done), 0) FROM %s r WHERE r.plan_id = b.plan_id), "
             "(SELECT count(*) FROM %s r WHERE r.plan_id = b.plan_id AND r.owner IS NOT NULL AND r.done = 0 AND r.heartbeat_ms > $2), "
             "(SELECT max(throttle) FROM %s r WHERE r.plan_id = b.plan_id AND r.owner IS NOT NULL AND r.heartbeat_ms > $2) "
             "FROM %s b WHERE b.plan_id = $1",
             rt, rt, rt, rt, rt, backfills_t(db));
    char fresh[32];
    ms_text(fresh, sizeof fresh, zdm_now_ms() - ZDM_RANGE_STALE_MS);
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
    if (rc == 0)
        rc = rows_left(db, plan_id, out, err);
    /* Only live workers count: a dead one's range waits for a new worker. */
    zdm_rows *lw = NULL;
    if (rc == 0 && out->workers > 0 && (rc = zdm_state_ranges_workers(db, plan_id, &lw, err)) == 0)
        out->workers = zdm_rows_count(lw);
    zdm_rows_free(lw);
    return rc;
}
