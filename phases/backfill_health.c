/*
 * backfill_health.c -- what holds a worker back between batches.
 *
 * Owns: the throttle check before each batch (operator pause, pause_query,
 * and where the dialect has them the autovacuum, replica lag and WAL
 * archive signals, read at most once a second while quiet), the latency probe feeding the
 * pacer (pacer.c does the arithmetic; on PostgreSQL the samples of the
 * probe running during the batches, backfill_probe.c), and the range heartbeat that
 * carries the throttle reason to zdm status.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_int.h"

/* Every 20 ms a probe on its own connection: 50 small commits a second,
 * and about ten samples of a 200 ms stretch of batches and gaps. */
#define PROBE_EVERY_MS 20
/* The idle baseline from the running probe: the p95 of this many, taken
 * 5 ms apart (half a second before the first batch).  The p95, not the
 * p99: the p99 of 100 samples is their largest, one unlucky scheduling
 * spike on a loaded host (3.7 ms against 0.6 ms in the next run), and a
 * bound that lax let the batches through at full size. */
#define PROBE_IDLE_SAMPLES 100
#define PROBE_IDLE_EVERY_MS 5

/* The running probe stops: its connection failed (why, logged: the
 * worker probes between batches from now on) or latency pacing was
 * turned off live (why NULL: it may start again when turned back on). */
static void prober_drop(worker *w, const char *why)
{
    zdm_bf_prober_stop(w->prober);
    w->prober = NULL;
    zdm_pacer_concurrent(&w->pacer, 0, 0);
    if (why) {
        w->prober_off = 1;
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill",
                "the latency probe's own connection failed (%s); probing between batches instead", why);
    }
}

/* With more than one writer (PostgreSQL) and a URL to open a connection
 * of its own, the probe runs in a thread during the batches
 * (backfill_probe.c).  Returns 1 when it does. */
static int concurrent_probe(worker *w)
{
    if (w->prober)
        return 1;
    if (w->prober_off || w->d->one_writer || !w->o->url)
        return 0;
    zdm_err e;
    zdm_err_clear(&e);
    /* quick samples for the baseline; at the working pace when it was
     * measured already (latency pacing turned off and on again live) */
    int64_t every = w->pacer.baseline_us ? PROBE_EVERY_MS : PROBE_IDLE_EVERY_MS;
    if (zdm_bf_prober_start(w->o->url, w->th.probe_query, every, &w->prober, &e) != 0) {
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill",
                "the latency probe's own connection failed (%s); probing between batches instead", e.msg);
        w->prober_off = 1;
        return 0;
    }
    int64_t rows = 0;
    zdm_err_clear(&e);
    if (w->d->row_estimate && w->d->row_estimate(w->db, w->plan->backfill->table, &rows, &e) != 0)
        rows = 0; /* unknown: no row-lock share cap, the blocked-session check still backs off */
    zdm_pacer_concurrent(&w->pacer, 1, rows);
    return 1;
}

/* The running probe's samples since the last batch to the pacer; an
 * error on its connection falls back to probes between batches. */
static int concurrent_feed(worker *w)
{
    int64_t us[64];
    char busy[64];
    zdm_err e;
    zdm_err_clear(&e);
    int n;
    int64_t rebaselined = w->pacer.rebaselined;
    while ((n = zdm_bf_prober_take(w->prober, us, busy, 64, &e)) > 0)
        for (int i = 0; i < n; i++) {
            if (busy[i])
                zdm_pacer_sample(&w->pacer, us[i]);
            else
                zdm_pacer_sample_idle(&w->pacer, us[i]);
        }
    if (w->pacer.rebaselined != rebaselined)
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                "latency probe: the server stays slow while this worker hardly runs (between its batches too): "
                "its slowness is not the backfill's; new baseline %.2f ms, batches keep the probe under %.2f ms",
                (double)w->pacer.baseline_us / 1000.0, (double)zdm_pacer_bound_us(&w->pacer) / 1000.0);
    char act[16];
    int na;
    while ((na = zdm_bf_prober_activity(w->prober, act, (int)sizeof act)) > 0)
        for (int i = 0; i < na; i++)
            zdm_pacer_app_activity(&w->pacer, act[i]);
    if (n < 0) {
        prober_drop(w, e.msg);
        return -1;
    }
    return 0;
}

/* The idle baseline from the running probe, before the first batch: the
 * p95 of PROBE_IDLE_SAMPLES (of those taken when the server is too slow
 * to give that many in 100 intervals). */
static int concurrent_baseline(worker *w, long long *p95)
{
    int64_t v[PROBE_IDLE_SAMPLES];
    int have = 0;
    zdm_err e;
    zdm_err_clear(&e);
    for (int waited = 0; have < PROBE_IDLE_SAMPLES; waited += 10) {
        if (zdm_sig_caught())
            return -1;
        if (waited > 100 * PROBE_EVERY_MS && have > 0)
            break;
        if (waited > 500 * PROBE_EVERY_MS)
            return -1; /* not one answer in 10 s: probe between batches for the baseline */
        int n = zdm_bf_prober_take(w->prober, v + have, NULL, PROBE_IDLE_SAMPLES - have, &e);
        if (n < 0) {
            prober_drop(w, e.msg);
            return -1;
        }
        have += n;
        if (have < PROBE_IDLE_SAMPLES)
            zdm_sig_sleep_ms(10);
    }
    for (int i = 1; i < have; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    *p95 = v[(have * 95 - 1) / 100];
    zdm_pacer_baseline(&w->pacer, *p95);
    /* they start the window of idle samples (pacer.h): spread evenly
     * over them (sorted), so the window's p95 is theirs */
    int seed = have < ZDM_PACER_IDLE_WINDOW ? have : ZDM_PACER_IDLE_WINDOW;
    for (int i = 0; i < seed; i++)
        zdm_pacer_idle_seen(&w->pacer, v[(int64_t)i * have / seed]);
    zdm_bf_prober_every(w->prober, PROBE_EVERY_MS);
    return 0;
}

/* The latency probe: before the first batch (the idle baseline, median
 * of five, or the p95 of PROBE_IDLE_SAMPLES of the running probe) and before
 * every batch after it (the running probe's samples since the last). */
int zdm_bf_probe_latency(worker *w, int baseline, zdm_err *err)
{
    if (!w->pacer.latency_pct) {
        if (w->prober) /* turned off live (zdm set): its commits stop too */
            prober_drop(w, NULL);
        return 0;
    }
    if (concurrent_probe(w)) {
        long long idle = 0;
        if (!baseline) {
            if (concurrent_feed(w) == 0)
                return 0;
        } else if (concurrent_baseline(w, &idle) == 0) {
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                    "latency probe idle: %.2f ms; batches keep its p99 under %.2f ms (max_latency_factor %.2g); "
                    "the probe: %s on a connection of its own, every %d ms during the batches too (idle: the "
                    "p95 of %d)%s; while another session works, batches run at most %lld%% of the time",
                    (double)idle / 1000.0, (double)zdm_pacer_bound_us(&w->pacer) / 1000.0,
                    (double)w->pacer.latency_pct / 100.0, w->th.probe_query ? "probe_query" : "a commit",
                    PROBE_EVERY_MS, PROBE_IDLE_SAMPLES,
                    w->th.probe_query ? "" : ", at least the application's mean where pg_stat_statements is",
                    (long long)w->pacer.duty_pct);
            return 0;
        }
        if (zdm_sig_caught())
            return 0; /* the loop stops on it */
    }
    long long us = 0;
    if (!baseline) {
        int rc = zdm_db_probe(w->db, w->th.probe_query, &us, err);
        if (rc == 0 && w->d->one_writer && !w->th.probe_query)
            zdm_pacer_probe_seen(&w->pacer, us); /* pacer.h: the lock's share steers */
        else if (rc == 0)
            zdm_pacer_probe(&w->pacer, us);
        if (rc == 0)
            zdm_pacer_writer_probe(&w->pacer, zdm_db_probe_others_wrote(w->db));
        return rc;
    }
    long long v[5];
    for (int i = 0; i < 5; i++) {
        int rc = zdm_db_probe(w->db, w->th.probe_query, &v[i], err);
        if (rc == 0)
            zdm_pacer_writer_probe(&w->pacer, zdm_db_probe_others_wrote(w->db));
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
            (double)w->pacer.latency_pct / 100.0, w->d->one_writer ? ", the write lock left free between batches" : "");
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

/* The database's health signals the plan asks for (autovacuum on the
 * table, replica lag, WAL archive backlog), where the dialect has them.
 * An unreadable signal holds the worker (fails closed). */
static void health_signals(worker *w, char *why, size_t size, unsigned *hold)
{
    const zdm_dialect *d = w->d;
    const char *table = w->plan->backfill->table;
    size_t before = strlen(why);
    zdm_err e;
    if (w->th.check_autovacuum && d->autovacuum_running) {
        int running = 0;
        zdm_err_clear(&e);
        if (d->autovacuum_running(w->db, table, &running, &e) != 0)
            add_reason(why, size, "autovacuum signal unreadable (%s): failing closed", e.msg);
        else if (running)
            add_reason(why, size, "autovacuum is running on %s", table);
    }
    if (w->th.check_replica_lag && d->replica_lag_ms) {
        int64_t limit = w->th.max_replication_lag_ms > 0 ? w->th.max_replication_lag_ms : 10000, lag = 0;
        zdm_err_clear(&e);
        if (d->replica_lag_ms(w->db, &lag, &e) != 0)
            add_reason(why, size, "replica lag unreadable (%s): failing closed", e.msg);
        else if ((w->replica_lag_ms = lag) > limit)
            add_reason(why, size, "replica replay lag %lld ms > %lld ms", (long long)lag, (long long)limit);
    }
    if (w->th.check_wal_archive && d->wal_archive_ready) {
        int64_t ready = 0;
        zdm_err_clear(&e);
        if (d->wal_archive_ready(w->db, &ready, &e) != 0)
            add_reason(why, size, "WAL archive backlog unreadable (%s): failing closed", e.msg);
        else if (ready > w->th.max_wal_archive_ready)
            add_reason(why, size, "%lld WAL files waiting to be archived (> %lld)", (long long)ready,
                       (long long)w->th.max_wal_archive_ready);
    }
    if (strlen(why) != before)
        *hold |= ZDM_BF_HOLD_HEALTH;
}

/* Reads the operator's controls (every batch) and the health signals
 * (at most once a second); fills why with every tripped signal and *hold
 * with what they are (ZDM_BF_HOLD_*). */
int zdm_bf_check_throttle(worker *w, char *why, size_t size, unsigned *hold, zdm_err *err)
{
    why[0] = '\0';
    *hold = 0;
    int found = 0, paused = 0, workers = 0;
    char *settings = NULL;
    int rc = zdm_state_backfill_controls(w->db, w->plan->id, &found, &paused, &settings, &workers, err);
    if (rc != 0)
        return rc;
    if (found) {
        if (paused) {
            add_reason(why, size, "paused by operator (zdm resume %s)", w->plan->id);
            *hold |= ZDM_BF_HOLD_OPERATOR;
        }
        zdm_bf_apply_settings(w, settings, workers);
    }
    free(settings);

    if (w->th.pause_query) {
        char *v = NULL;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_query_value(w->db, w->th.pause_query, 0, NULL, &v, &e) != 0) {
            add_reason(why, size, "pause_query failed (%s): pausing until it answers", e.msg);
            *hold |= ZDM_BF_HOLD_PAUSE_QUERY;
        } else if (truthy(v)) {
            add_reason(why, size, "pause_query returned true");
            *hold |= ZDM_BF_HOLD_PAUSE_QUERY;
        }
        free(v);
    }
    /* The built-in signals cost three catalog queries: read them at most
     * once a second while they are quiet.  While one of them alone holds
     * the worker, every recheck reads them again (the verdict is not
     * cached). */
    int64_t now = zdm_mono_ms();
    int held_by_health = w->hold && !(w->hold & (ZDM_BF_HOLD_OPERATOR | ZDM_BF_HOLD_PAUSE_QUERY));
    if (now - w->last_health_ms < HEALTH_EVERY_MS && !held_by_health)
        return 0;
    w->last_health_ms = now;
    health_signals(w, why, size, hold);
    return 0;
}

void zdm_bf_heartbeat(worker *w, const char *throttle, int held)
{
    if (w->range_id < 0)
        return;
    zdm_err e;
    zdm_err_clear(&e);
    zdm_state_rate rate = {0, 0};
    if (!held)
        zdm_bf_rate(w, 0, &rate);
    if (zdm_state_ranges_heartbeat(w->db, w->plan->id, w->range_id, w->me, throttle, &rate, &e) != 0)
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "heartbeat failed: %s", e.msg);
}
