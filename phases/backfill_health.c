/*
 * backfill_health.c -- what holds a worker back between batches.
 *
 * Owns: the throttle check before each batch (operator pause, pause_query,
 * and on PostgreSQL the autovacuum, replica lag and WAL archive signals,
 * read at most once a second while quiet), the latency probe feeding the
 * pacer (pacer.c does the arithmetic), and the range heartbeat that
 * carries the throttle reason to zdm status.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backfill_int.h"

/* The latency probe: before the first batch (the idle baseline, median
 * of five) and before every batch after it. */
int zdm_bf_probe_latency(worker *w, int baseline, zdm_err *err)
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
    long long app = w->th.probe_query ? -1 : zdm_db_probe_app_us(w->db);
    char src[96] = "";
    if (app >= 0)
        snprintf(src, sizeof src, " (the application's statements, pg_stat_statements: %.2f ms mean)",
                 (double)app / 1000.0);
    zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
            "latency probe idle: %.2f ms%s; batches keep its p99 under %.2f ms (max_latency_factor %.2g)%s",
            (double)v[2] / 1000.0, src, (double)zdm_pacer_bound_us(&w->pacer) / 1000.0,
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
int zdm_bf_check_throttle(worker *w, char *why, size_t size, zdm_err *err)
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
        zdm_bf_apply_settings(w, zdm_rows_get(r, 0, 1), atoi(zdm_rows_get(r, 0, 2)));
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

void zdm_bf_heartbeat(worker *w, const char *throttle)
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
