/*
 * metrics.c -- see metrics.h.
 *
 * Owns: metric names, HELP texts, units and the exposition format.
 * Process metrics are read from /proc (Linux); where /proc is missing
 * they are left out rather than reported as zero.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef ZDM_VERSION
#define ZDM_VERSION "unknown"
#endif

void zdm_histogram_init_batch(zdm_histogram *h)
{
    static const double b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    memset(h, 0, sizeof *h);
    h->n = sizeof b / sizeof b[0];
    memcpy(h->bounds, b, sizeof b);
}

void zdm_histogram_observe(zdm_histogram *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void zdm_metric_label(zdm_buf *out, const char *key, const char *value)
{
    zdm_buf_printf(out, "%s%s=\"", out->len ? "," : "", key);
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\')
            zdm_buf_puts(out, "\\\\");
        else if (*p == '"')
            zdm_buf_puts(out, "\\\"");
        else if (*p == '\n')
            zdm_buf_puts(out, "\\n");
        else
            zdm_buf_putn(out, p, 1);
    }
    zdm_buf_puts(out, "\"");
}

static void head(zdm_buf *out, const char *name, const char *type, const char *help)
{
    /* HELP text escapes: backslash and newline */
    zdm_buf_printf(out, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            zdm_buf_puts(out, "\\\\");
        else if (*p == '\n')
            zdm_buf_puts(out, "\\n");
        else
            zdm_buf_putn(out, p, 1);
    }
    zdm_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

static void sample(zdm_buf *out, const char *name, const char *suffix, const char *labels, const char *extra,
                   double v)
{
    int any = (labels && *labels) || (extra && *extra);
    zdm_buf_printf(out, "%s%s%s%s%s%s%s %.15g\n", name, suffix, any ? "{" : "", labels ? labels : "",
                   labels && *labels && extra && *extra ? "," : "", extra ? extra : "", any ? "}" : "", v);
}

void zdm_metric_gauge(zdm_buf *out, const char *name, const char *help, const char *labels, double v)
{
    head(out, name, "gauge", help);
    sample(out, name, "", labels, NULL, v);
}

void zdm_metric_counter(zdm_buf *out, const char *name, const char *help, const char *labels, double v)
{
    head(out, name, "counter", help);
    sample(out, name, "", labels, NULL, v);
}

void zdm_metric_histogram(zdm_buf *out, const char *name, const char *help, const char *labels,
                          const zdm_histogram *h)
{
    head(out, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        char le[48];
        if (i < h->n)
            snprintf(le, sizeof le, "le=\"%g\"", h->bounds[i]);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        sample(out, name, "_bucket", labels, le, (double)cum);
    }
    sample(out, name, "_sum", labels, NULL, h->sum);
    sample(out, name, "_count", labels, NULL, (double)h->count);
}

/* ---------------------------------------------------------------- process */

static void process_metrics(zdm_buf *out)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return;
    char line[1024];
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* Fields after the command name, which is in parentheses and may hold
     * spaces: state is field 3; utime 14, stime 15, starttime 22, rss 24. */
    const char *p = strrchr(line, ')');
    if (!p)
        return;
    unsigned long long v[32] = {0};
    int field = 2;
    for (char *tok = strtok((char *)p + 1, " "); tok && field < 30; tok = strtok(NULL, " ")) {
        field++;
        if (field < 32)
            v[field] = strtoull(tok, NULL, 10);
    }
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (hz <= 0 || page <= 0)
        return;
    zdm_metric_counter(out, "process_cpu_seconds_total", "User and system CPU time spent in seconds.", "",
                       (double)(v[14] + v[15]) / (double)hz);
    zdm_metric_gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", "",
                     (double)v[24] * (double)page);
    unsigned long long btime = 0;
    FILE *s = fopen("/proc/stat", "r");
    if (s) {
        char l[256];
        while (fgets(l, sizeof l, s))
            if (strncmp(l, "btime ", 6) == 0)
                btime = strtoull(l + 6, NULL, 10);
        fclose(s);
    }
    if (btime)
        zdm_metric_gauge(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                         "", (double)btime + (double)v[22] / (double)hz);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        zdm_metric_gauge(out, "process_open_fds", "Number of open file descriptors.", "", (double)(fds - 1));
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        zdm_metric_gauge(out, "process_max_fds", "Maximum number of open file descriptors.", "", (double)rl.rlim_cur);
}

/* ---------------------------------------------------------------- backfill */

void zdm_metrics_backfill(const zdm_backfill_metrics *m, int with_deprecated, zdm_buf *out)
{
    zdm_buf l = {0}, lr = {0}, lv = {0};
    zdm_metric_label(&l, "plan", m->plan);
    zdm_metric_label(&lr, "plan", m->plan);
    zdm_metric_label(&lr, "reason", m->throttle_reason);
    zdm_metric_label(&lv, "version", ZDM_VERSION);
    const char *plan = l.data, *plan_reason = lr.data;

    zdm_metric_gauge(out, "zdm_build_info", "The zdm version serving these metrics (always 1).", lv.data, 1);
    zdm_metric_counter(out, "zdm_backfill_rows_done_total", "Rows converted by every worker of the plan.", plan,
                       (double)m->rows_done);
    zdm_metric_counter(out, "zdm_backfill_worker_rows_done_total", "Rows converted by this worker.", plan,
                       (double)m->worker_rows_done);
    zdm_metric_gauge(out, "zdm_backfill_rows_estimate", "Rows to convert, estimated when the backfill started.",
                     plan, (double)m->rows_estimate);
    zdm_metric_gauge(out, "zdm_backfill_rows_per_second", "This worker's recent conversion rate.", plan,
                     (double)m->rows_per_second);
    zdm_metric_histogram(out, "zdm_backfill_batch_duration_seconds", "Duration of this worker's batches.", plan,
                         m->batch_seconds);
    zdm_metric_gauge(out, "zdm_backfill_last_batch_duration_seconds", "Duration of this worker's last batch.",
                     plan, (double)m->last_batch_ms / 1000.0);
    zdm_metric_gauge(out, "zdm_backfill_batch_size", "Rows in this worker's next batch.", plan,
                     (double)m->batch_size);
    zdm_metric_gauge(out, "zdm_backfill_throttled",
                     "1 while a throttle signal or a pause holds the worker; reason names it.", plan_reason,
                     m->throttled ? 1 : 0);
    zdm_metric_gauge(out, "zdm_backfill_throttled_seconds", "How long the current throttle or pause has held "
                     "the worker (0 when running).", plan, m->throttled ? (double)m->throttled_for_ms / 1000.0 : 0);
    zdm_metric_gauge(out, "zdm_backfill_replica_lag_seconds", "Largest replica replay lag at the last reading.",
                     plan, (double)m->replica_lag_ms / 1000.0);
    zdm_metric_gauge(out, "zdm_backfill_throttle_probe_duration_seconds",
                     "Duration of the last throttle check (pause flag, settings, pause_query, health signals).",
                     plan, (double)m->probe_ms / 1000.0);
    zdm_metric_gauge(out, "zdm_backfill_latency_probe_seconds",
                     "The last latency probe (a round trip; PostgreSQL: a commit on a connection of its own, during "
                     "the batches too; SQLite: the write lock taken and given back).", plan,
                     (double)m->latency_probe_us / 1e6);
    zdm_metric_gauge(out, "zdm_backfill_latency_probe_p99_seconds", "99th percentile of the recent latency probes.",
                     plan, (double)m->latency_p99_us / 1e6);
    zdm_metric_gauge(out, "zdm_backfill_latency_baseline_seconds",
                     "The latency probe measured idle, before the first batch.", plan,
                     (double)m->latency_baseline_us / 1e6);
    zdm_metric_gauge(out, "zdm_backfill_latency_bound_seconds",
                     "max_latency_factor x baseline: the probe p99 the pacer keeps under (0: unthrottled).", plan,
                     (double)m->latency_bound_us / 1e6);
    {
        zdm_buf ls = {0};
        zdm_buf_puts(&ls, plan);
        zdm_metric_label(&ls, "state", m->pacer_state_name ? m->pacer_state_name : "");
        zdm_metric_gauge(out, "zdm_backfill_pacer_state",
                         "What sizes the batches now: 0 steady, 1 growing, 2 latency over the bound, 3 rate limit "
                         "(state names it).", ls.data ? ls.data : "", (double)m->pacer_state);
        zdm_buf_free(&ls);
    }
    zdm_metric_counter(out, "zdm_backfill_blocked_sessions_total",
                       "Sessions seen waiting on a batch's row locks just before it committed (PostgreSQL).", plan,
                       (double)m->blocked_sessions);
    zdm_metric_gauge(out, "zdm_backfill_pacer_gap_seconds", "Pause before this worker's next batch.", plan,
                     (double)m->pacer_gap_ms / 1000.0);
    zdm_metric_counter(out, "zdm_backfill_latency_probe_samples_total",
                       "Latency probes timed on the probe's own connection, during the batches too (PostgreSQL).",
                       plan, (double)m->latency_samples);
    zdm_metric_counter(out, "zdm_backfill_latency_probe_slow_total",
                       "Of those, the probes over the latency bound.", plan, (double)m->latency_slow_samples);
    zdm_metric_gauge(out, "zdm_backfill_latency_batch_cap_rows",
                     "Rows a batch may have since the last latency back-off (0: no cap).", plan,
                     (double)m->latency_batch_cap);
    zdm_metric_gauge(out, "zdm_backfill_busy_share_limit",
                     "While another session works: the largest share of the time this worker spends in batches "
                     "(max_duty_percent / 100; 0: no limit now, nobody else works or pacing is off; PostgreSQL).",
                     plan, (double)m->busy_share_pct / 100.0);
    if (m->one_writer) {
        zdm_metric_gauge(out, "zdm_backfill_write_lock_held_seconds",
                         "How long the last batch held the write lock (SQLite).", plan, (double)m->write_lock_us / 1e6);
        zdm_metric_gauge(out, "zdm_backfill_other_writer",
                         "1 while the probes see other connections commit: the write lock is then held at most "
                         "0.5 % of the time (SQLite).",
                         plan, (double)m->other_writer);
    }
    if (m->have_cost) {
        zdm_metric_gauge(out, "zdm_backfill_batch_fixed_cost_seconds",
                         "Fitted fixed cost of one batch, whatever its size.", plan, (double)m->cost_fixed_us / 1e6);
        zdm_metric_gauge(out, "zdm_backfill_batch_row_cost_seconds", "Fitted cost of one more row in a batch.", plan,
                         (double)m->cost_per_row_ns / 1e9);
    }

    zdm_metric_gauge(out, "zdm_backfill_last_progress_timestamp_seconds",
                     "When the plan's last batch committed (any worker); 0 before the first.", plan,
                     (double)m->last_progress_ms / 1000.0);
    char help[160];
    snprintf(help, sizeof help, "1 when no batch has committed for %lld s and nothing pauses this worker.",
             (long long)(m->stall_after_ms / 1000));
    zdm_metric_gauge(out, "zdm_backfill_stalled", help, plan, m->stalled ? 1 : 0);

    if (with_deprecated) {
        /* zdm 0.1's names, kept for one release: the README lists each
         * one with its replacement. */
        zdm_metric_counter(out, "zdm_backfill_rows_done",
                           "DEPRECATED: use zdm_backfill_rows_done_total; removed in the next release.", plan,
                           (double)m->rows_done);
        zdm_metric_gauge(out, "zdm_backfill_rows_total_estimate",
                         "DEPRECATED: use zdm_backfill_rows_estimate; removed in the next release.", plan,
                         (double)m->rows_estimate);
        zdm_metric_counter(out, "zdm_backfill_worker_rows_done",
                           "DEPRECATED: use zdm_backfill_worker_rows_done_total; removed in the next release.",
                           plan, (double)m->worker_rows_done);
        zdm_metric_gauge(out, "zdm_backfill_batch_duration_ms",
                         "DEPRECATED: use zdm_backfill_last_batch_duration_seconds (or the "
                         "zdm_backfill_batch_duration_seconds histogram); removed in the next release.",
                         plan, (double)m->last_batch_ms);
        zdm_metric_gauge(out, "zdm_backfill_replica_lag_ms",
                         "DEPRECATED: use zdm_backfill_replica_lag_seconds; removed in the next release.", plan,
                         (double)m->replica_lag_ms);
    }
    process_metrics(out);
    zdm_buf_free(&l);
    zdm_buf_free(&lr);
    zdm_buf_free(&lv);
}
