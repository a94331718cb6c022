/*
 * metrics.h -- the Prometheus text exposition of a backfill worker's
 * /metrics (served by httpstat.c, filled from backfill_progress.c).
 *
 * Conventions (checked by `promtool check metrics` in
 * tests/integration/test_metrics.sh): counters end in _total, durations
 * are in seconds, every family has HELP and TYPE, label values are escaped.
 * To add a metric: a field in zdm_backfill_metrics, filled in
 * backfill_progress.c's zdm_bf_fill_http, and one zdm_metric_gauge/_counter
 * call in metrics.c.
 *
 * The names zdm 0.1 used (zdm_backfill_rows_done, _ms units...) are still
 * served for one release, with "DEPRECATED" in their HELP, unless the
 * scrape asks /metrics?deprecated=0.
 */
#ifndef ZDM_METRICS_H
#define ZDM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* A histogram with fixed bucket bounds (cumulative on output). */
#define ZDM_HIST_MAX 16
typedef struct zdm_histogram {
    size_t n;                        /* bounds in use */
    double bounds[ZDM_HIST_MAX];     /* upper bounds, ascending; +Inf implied */
    uint64_t counts[ZDM_HIST_MAX + 1]; /* per bucket, not cumulative; last is +Inf */
    uint64_t count;
    double sum;
} zdm_histogram;

/* Buckets for batch durations: 5 ms to 60 s. */
void zdm_histogram_init_batch(zdm_histogram *h);
void zdm_histogram_observe(zdm_histogram *h, double v);

/* Writers: one family each (HELP, TYPE, samples).  `labels` is the text
 * inside the braces, already escaped (see zdm_metric_label), or "". */
void zdm_metric_gauge(zdm_buf *out, const char *name, const char *help, const char *labels, double v);
void zdm_metric_counter(zdm_buf *out, const char *name, const char *help, const char *labels, double v);
void zdm_metric_histogram(zdm_buf *out, const char *name, const char *help, const char *labels,
                          const zdm_histogram *h);
/* Appends key="value" (with a leading comma when out is not empty), the
 * value escaped as the exposition format requires. */
void zdm_metric_label(zdm_buf *out, const char *key, const char *value);

/* What the worker knows at the moment of a scrape. */
typedef struct zdm_backfill_metrics {
    const char *plan;
    int64_t rows_done;        /* every worker of the plan */
    int64_t rows_estimate;    /* rows to convert, estimated at the start */
    int64_t worker_rows_done; /* this worker */
    int64_t rows_per_second;  /* this worker, recent window */
    int64_t last_batch_ms;
    int64_t batch_size;       /* rows in the next batch */
    const zdm_histogram *batch_seconds;
    int throttled;            /* 1 while a throttle or pause holds the worker */
    const char *throttle_reason;
    int64_t throttled_for_ms; /* how long the current hold has lasted */
    int64_t replica_lag_ms;
    int64_t probe_ms;         /* the last throttle check (settings, pause_query, health) */
    int64_t last_progress_ms; /* epoch ms of the plan's last committed batch (any worker), 0 before */
    int stalled;              /* no batch for stall_after_ms and nothing pauses this worker */
    int64_t stall_after_ms;
    /* latency pacing (pacer.h); us, 0 when not measured */
    int64_t latency_probe_us;    /* the last probe */
    int64_t latency_p99_us;      /* p99 of the recent probes */
    int64_t latency_baseline_us; /* idle, before the first batch */
    int64_t latency_bound_us;    /* max_latency_factor x baseline; 0 = unthrottled */
    int pacer_state;             /* zdm_pacer_state */
    const char *pacer_state_name;
    int64_t pacer_gap_ms;        /* pause before the next batch */
    int64_t blocked_sessions;    /* sessions seen waiting on a batch's locks (PostgreSQL) */
    /* the probe running during the batches (PostgreSQL): samples, those
     * over the bound, and the batch size cap since the last back-off */
    int64_t latency_samples, latency_slow_samples, latency_batch_cap;
    int64_t busy_share_pct; /* the busy share in force (pacer.h), 0: none */
    /* one writer (SQLite): the last batch's hold on the write lock, and
     * whether other connections' commits were seen (the lock's share kept) */
    int one_writer;
    int64_t write_lock_us;
    int other_writer;
    int have_cost;               /* the fitted batch cost below is known */
    int64_t cost_fixed_us, cost_per_row_ns;
} zdm_backfill_metrics;

/* The whole exposition: zdm_build_info, the backfill families, the
 * deprecated names (unless with_deprecated is 0) and process_* metrics. */
void zdm_metrics_backfill(const zdm_backfill_metrics *m, int with_deprecated, zdm_buf *out);

#endif
