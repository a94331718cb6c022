/*
 * backfill_progress.c -- what a backfill tells the operator.
 *
 * Owns: the progress line or bar, the rate windows behind the ETA, the
 * /status and /metrics answers (httpstat.c serves them, metrics.c formats
 * them), and the progress, worker and last-batch readings zdm status uses.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "httpstat.h"
#include "metrics.h"

#include "backfill_int.h"

/* ---- progress ---- */

/* Rows per second of every live worker together: the plan's rows done,
 * sampled by this worker (zdm_bf_progress) over its recent window; this
 * worker's own rate until it has two samples.  Both windows restart after
 * a pause (backfill.c), so paused time is not in the rate. */
static int64_t plan_rate(const worker *w)
{
    if (w->plan_win_n >= 2 && w->plan_win_t[w->plan_win_n - 1] > w->plan_win_t[0]) {
        int64_t dt = w->plan_win_t[w->plan_win_n - 1] - w->plan_win_t[0];
        int64_t dr = w->plan_win_rows[w->plan_win_n - 1] - w->plan_win_rows[0];
        return dr > 0 ? dr * 1000 / dt : 0;
    }
    if (w->win_n >= 2) {
        int64_t dt = w->win_t[w->win_n - 1] - w->win_t[0];
        int64_t dr = w->win_rows[w->win_n - 1] - w->win_rows[0];
        return dt > 0 ? dr * 1000 / dt : 0;
    }
    return 0;
}

void zdm_bf_progress(worker *w, int final)
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
    /* One writer (SQLite): a second worker adds no speed, and with latency
     * pacing each worker reads the others' commits as an application
     * writing (PRAGMA data_version cannot tell them apart), so all of
     * them keep to the lock share meant for a live application. */
    if (w->d->one_writer && w->pacer.latency_pct && pr.workers > 1 && !w->warned_one_writer) {
        w->warned_one_writer = 1;
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill",
                "%d workers on a database with one writer: they add no speed, and with latency pacing each takes "
                "the others' commits for an application's and holds the write lock at most 0.5 %% of the time; "
                "run one worker (zdm backfill %s), or set max_latency_factor = 0 if no application writes",
                pr.workers, w->plan->id);
    }
    /* the plan's rows done, sampled for plan_rate */
    if (w->plan_win_n == 16) {
        memmove(w->plan_win_t, w->plan_win_t + 1, 15 * sizeof w->plan_win_t[0]);
        memmove(w->plan_win_rows, w->plan_win_rows + 1, 15 * sizeof w->plan_win_rows[0]);
        w->plan_win_n = 15;
    }
    w->plan_win_t[w->plan_win_n] = now;
    w->plan_win_rows[w->plan_win_n] = pr.rows_done;
    w->plan_win_n++;
    int64_t rate = plan_rate(w);
    /* the estimate of the rows left, refined as ranges finish (state) */
    int64_t total = zdm_backfill_rows_total(&pr);
    /* a work list that holds every matching key of the only range: what
     * is left is counted, not estimated */
    if (w->worklist && pr.ranges == 1 && pr.ranges_done == 0 && w->wl_left >= 0)
        total = pr.rows_done + w->wl_left;
    double pct = zdm_backfill_percent(&pr, total);
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

void zdm_bf_note_rows(worker *w, int64_t rows)
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

void zdm_bf_rate(const worker *w, int64_t more_rows, zdm_state_rate *out)
{
    out->rows = out->ms = 0;
    if (w->win_n < 1)
        return;
    out->rows = w->rows_mine + more_rows - w->win_rows[0];
    out->ms = zdm_mono_ms() - w->win_t[0];
}

static int64_t recent_rate(const worker *w)
{
    if (w->win_n < 2)
        return 0;
    int64_t dt = w->win_t[w->win_n - 1] - w->win_t[0];
    int64_t dr = w->win_rows[w->win_n - 1] - w->win_rows[0];
    return dt > 0 ? dr * 1000 / dt : 0;
}

/* What /status and /metrics show, read on the worker's thread (its
 * connection is its own) and stored for the HTTP thread. */
void zdm_bf_publish(worker *w, int force)
{
    if (!w->o->listen || (!force && w->snap_ready && zdm_mono_ms() - w->snap_at_ms < 1000))
        return;
    zdm_backfill_progress pr;
    zdm_err e;
    zdm_err_clear(&e);
    if (!w->db || zdm_backfill_progress_get(w->db, w->plan->id, &pr, &e) != 0) {
        if (w->snap_ready)
            return; /* the database did not answer: keep what was shown */
        memset(&pr, 0, sizeof pr);
    }
    int64_t rate = recent_rate(w);
    char *status = NULL;
    {
        json_t *o = json_object();
        json_object_set_new(o, "plan", json_string(w->plan->id));
        json_object_set_new(o, "worker", json_string(w->me));
        json_object_set_new(o, "range", w->range_id >= 0 ? json_integer(w->range_id) : json_null());
        json_object_set_new(o, "rows_done", json_integer(pr.rows_done));
        json_object_set_new(o, "rows_total_estimate", json_integer(pr.total_est));
        json_object_set_new(o, "rows_done_by_worker", json_integer(w->rows_mine));
        /* rows this worker passed over as held locked (SKIP LOCKED), each
         * run left to a revisit range */
        json_object_set_new(o, "rows_passed_over", json_integer(w->rows_skipped));
        json_object_set_new(o, "rows_per_second", json_integer(rate));
        /* the plan's: every live worker's rate, the rows left refined as
         * ranges finish, and the ETA from the two */
        int64_t total = zdm_backfill_rows_total(&pr), prate = plan_rate(w);
        json_object_set_new(o, "rows_left_estimate", json_integer(total - pr.rows_done));
        json_object_set_new(o, "percent_done", json_real(zdm_backfill_percent(&pr, total)));
        json_object_set_new(o, "plan_rows_per_second", json_integer(prate));
        json_object_set_new(o, "eta_seconds",
                            prate > 0 ? json_integer((total - pr.rows_done + prate - 1) / prate) : json_null());
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
        json_object_set_new(o, "busy_share_percent",
                            json_integer(zdm_pacer_duty_on(&w->pacer) ? w->pacer.duty_pct : 0));
        status = json_dumps(o, JSON_INDENT(2));
        json_decref(o);
    }
    /* Last progress: the newest batch any worker committed (the state, so
     * a worker that answers while another is stuck still tells).  Stalled:
     * none for stall_after_ms ([backfill.throttle], zdm set) while this
     * worker is neither paused nor held by a throttle signal -- a batch
     * blocked on a lock, a dead database. */
    int64_t last = 0;
    if (w->db && zdm_backfill_last_progress(w->db, w->plan->id, &last, &e) != 0)
        last = 0;
    zdm_backfill_metrics m = {
        .plan = w->plan->id,
        .rows_done = pr.rows_done,
        .rows_estimate = pr.total_est,
        .worker_rows_done = w->rows_mine,
        .rows_per_second = rate,
        .last_batch_ms = w->last_batch_ms,
        .batch_size = w->pacer.size,
        .batch_seconds = NULL, /* the snapshot's copy */
        .throttled = w->pause_reason[0] != 0,
        .throttle_reason = NULL, /* the snapshot's copy */
        .replica_lag_ms = w->replica_lag_ms,
        .probe_ms = w->probe_ms,
        .last_progress_ms = last,
        .stall_after_ms = w->th.stall_after_ms, /* stalled: at the scrape */
        .latency_probe_us = w->pacer.last_probe_us,
        .latency_p99_us = w->pacer.probe_p99_us,
        .latency_baseline_us = w->pacer.baseline_us,
        .latency_bound_us = zdm_pacer_bound_us(&w->pacer),
        .pacer_state = (int)w->pacer.state,
        .pacer_state_name = zdm_pacer_state_name(w->pacer.state),
        .pacer_gap_ms = zdm_pacer_delay(&w->pacer, zdm_mono_ms()),
        .blocked_sessions = w->pacer.blocked_total,
        .latency_samples = w->pacer.samples_total,
        .latency_slow_samples = w->pacer.slow_total,
        .latency_batch_cap = w->pacer.lat_cap,
        .busy_share_pct = zdm_pacer_duty_on(&w->pacer) ? w->pacer.duty_pct : 0,
    };
    m.one_writer = w->d->one_writer && w->pacer.latency_pct;
    m.write_lock_us = w->pacer.lock_us;
    m.other_writer = !zdm_pacer_writer_quiet(&w->pacer);
    m.have_cost = zdm_pacer_cost(&w->pacer, &m.cost_fixed_us, &m.cost_per_row_ns);
    pthread_mutex_lock(&w->snap_mu);
    free(w->snap_status);
    w->snap_status = status;
    w->snap_m = m;
    w->snap_hist = w->batch_hist;
    snprintf(w->snap_reason, sizeof w->snap_reason, "%s", w->pause_reason);
    w->snap_pause_since_ms = w->pause_since_ms;
    w->snap_at_ms = zdm_mono_ms();
    w->snap_ready = 1;
    pthread_mutex_unlock(&w->snap_mu);
}

/* /status and /metrics, on the HTTP thread: the published snapshot, with
 * what depends on the clock worked out now -- so a worker whose batch is
 * blocked (a lock, a database that does not answer) is seen stalled. */
void zdm_bf_fill_http(void *arg, int metrics, zdm_buf *out)
{
    worker *w = arg;
    pthread_mutex_lock(&w->snap_mu);
    if (!(metrics & ZDM_HTTP_FILL_METRICS)) {
        zdm_buf_puts(out, w->snap_status ? w->snap_status : "{}");
        zdm_buf_puts(out, "\n");
        pthread_mutex_unlock(&w->snap_mu);
        return;
    }
    zdm_backfill_metrics m = w->snap_m;
    zdm_histogram hist = w->snap_hist;
    char reason[sizeof w->snap_reason];
    memcpy(reason, w->snap_reason, sizeof reason);
    int64_t pause_since = w->snap_pause_since_ms;
    pthread_mutex_unlock(&w->snap_mu);
    m.plan = w->plan->id; /* the plan outlives the worker's thread */
    m.batch_seconds = &hist;
    m.throttle_reason = reason;
    m.throttled = reason[0] != 0;
    m.throttled_for_ms = m.throttled ? zdm_mono_ms() - pause_since : 0;
    int64_t since = m.last_progress_ms > w->start_wall_ms ? m.last_progress_ms : w->start_wall_ms;
    m.stalled = !m.throttled && zdm_now_ms() - since > m.stall_after_ms;
    zdm_metrics_backfill(&m, !(metrics & ZDM_HTTP_FILL_NO_DEPRECATED), out);
}


/* A worker is live while its heartbeat is fresh and its session or its
 * process still exists (state_ranges.c). */
int zdm_backfill_workers(zdm_db *db, const char *plan_id, zdm_rows **out, zdm_err *err)
{
    return zdm_state_ranges_workers(db, plan_id, out, err);
}

int zdm_backfill_last_progress(zdm_db *db, const char *plan_id, int64_t *last_ms, zdm_err *err)
{
    return zdm_state_ranges_last_batch(db, plan_id, last_ms, err);
}

int zdm_backfill_progress_get(zdm_db *db, const char *plan_id, zdm_backfill_progress *out, zdm_err *err)
{
    zdm_state_progress p;
    int rc = zdm_state_ranges_progress(db, plan_id, &p, err);
    memset(out, 0, sizeof *out);
    out->started = p.started;
    out->rows_done = p.rows_done;
    out->total_est = p.total_est;
    out->rows_left = p.rows_left_est;
    out->ranges = p.ranges;
    out->ranges_done = p.ranges_done;
    out->workers = p.workers;
    out->paused = p.paused;
    snprintf(out->throttle, sizeof out->throttle, "%s", p.throttle);
    return rc;
}

int64_t zdm_backfill_rows_total(const zdm_backfill_progress *p)
{
    /* every range done: the rows converted are the total, whatever the
     * estimate said (a planner's estimate of a `where` can be far off) */
    if (p->ranges > 0 && p->ranges_done >= p->ranges)
        return p->rows_done;
    return p->rows_done + (p->rows_left > 0 ? p->rows_left : 0);
}

double zdm_backfill_percent(const zdm_backfill_progress *p, int64_t total)
{
    /* started with no range at all: an empty table, done (it said 0 %) */
    int all_done = (p->ranges > 0 || p->started) && p->ranges_done >= p->ranges;
    if (all_done)
        return 100.0;
    double pct = total > 0 ? 100.0 * (double)p->rows_done / (double)total : 0.0;
    /* ranges still open have keys to look at: not 100 % before the end */
    return pct > 99.9 ? 99.9 : pct;
}
