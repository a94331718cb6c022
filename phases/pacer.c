/*
 * pacer.c -- see pacer.h.
 */
#include "pacer.h"

#include <stdlib.h>
#include <string.h>

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void zdm_pacer_init(zdm_pacer *p, int64_t start_size, int64_t min_size, int64_t max_size,
                    int64_t target_ms, int64_t max_rows_per_second, int64_t sleep_ms)
{
    p->size = start_size;
    p->nsamples = 0;
    p->next_allowed_ms = 0;
    p->ncost = p->cost_pos = 0;
    p->latency_pct = p->max_lock_ms = 0;
    p->single_writer = 0;
    p->baseline_us = 0;
    p->nprobes = 0;
    p->last_probe_us = p->probe_p99_us = 0;
    p->lat_gap_ms = p->last_batch_ms = 0;
    p->lock_us = 0;
    p->writer_seen = p->quiet_probes = 0;
    p->blocked_total = 0;
    p->at_max_gap = p->rebaselined = 0;
    p->state = ZDM_PACER_GROWING;
    p->concurrent = 0;
    p->table_rows = 0;
    p->samples_total = p->slow_total = 0;
    p->nidle = p->idle_pos = 0;
    p->lat_cap = 0;
    p->win_n = p->win_slow = 0;
    p->duty_pct = 100;
    p->app_read = p->app_quiet = 0;
    zdm_pacer_update(p, min_size, max_size, target_ms, max_rows_per_second, sleep_ms);
}

void zdm_pacer_update(zdm_pacer *p, int64_t min_size, int64_t max_size, int64_t target_ms,
                      int64_t max_rows_per_second, int64_t sleep_ms)
{
    p->min_size = min_size < 1 ? 1 : min_size;
    p->max_size = max_size < p->min_size ? p->min_size : max_size;
    p->target_ms = target_ms < 0 ? 0 : target_ms;
    p->max_rows_per_second = max_rows_per_second < 0 ? 0 : max_rows_per_second;
    p->sleep_ms = sleep_ms < 0 ? 0 : sleep_ms;
    p->size = clamp(p->size, p->min_size, p->max_size);
    /* A limit of R rows/s also caps a batch at R rows, or one batch would
     * burst past it. */
    if (p->max_rows_per_second && p->size > p->max_rows_per_second)
        p->size = p->max_rows_per_second < p->min_size ? p->min_size : p->max_rows_per_second;
}

void zdm_pacer_latency(zdm_pacer *p, int64_t latency_pct, int64_t max_lock_ms, int single_writer)
{
    p->latency_pct = latency_pct < 0 ? 0 : latency_pct;
    p->max_lock_ms = max_lock_ms < 0 ? 0 : max_lock_ms;
    p->single_writer = single_writer != 0;
    if (!p->latency_pct) {
        p->lat_gap_ms = 0;
        if (p->state == ZDM_PACER_LATENCY)
            p->state = ZDM_PACER_STEADY;
    }
}

void zdm_pacer_baseline(zdm_pacer *p, int64_t us)
{
    p->baseline_us = us < 1 ? 1 : us;
    p->nprobes = 0;
    p->nidle = p->idle_pos = 0;
}

int64_t zdm_pacer_bound_us(const zdm_pacer *p)
{
    if (!p->latency_pct || !p->baseline_us)
        return 0;
    int64_t b = p->baseline_us * p->latency_pct / 100;
    /* A bound tighter than 1 ms above an idle round trip would trip on
     * the scheduler's noise alone on a busy host. */
    return b > p->baseline_us + 1000 ? b : p->baseline_us + 1000;
}

/* SQLite's default busy handler (sqliteDefaultBusyCallback): the n-th
 * retry of a writer that found the lock taken comes this many ms after
 * its first attempt, then every 100 ms. */
static const int64_t busy_retry_ms[] = {1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228, 328};
#define BUSY_RETRIES ((int)(sizeof busy_retry_ms / sizeof busy_retry_ms[0]))

int64_t zdm_pacer_waiter_us(int64_t held_us)
{
    if (held_us <= 0)
        return 0;
    for (int i = 0; i < BUSY_RETRIES; i++)
        if (busy_retry_ms[i] * 1000 >= held_us)
            return busy_retry_ms[i] * 1000;
    int64_t last = busy_retry_ms[BUSY_RETRIES - 1] * 1000;
    return last + (held_us - last + 99999) / 100000 * 100000;
}

static int fit(const zdm_pacer *p, double *a, double *b);

/* The bound a writer's wait is judged against: factor x the idle probe,
 * without zdm_pacer_bound_us's 1 ms allowance for the probe's own noise
 * -- on a local database that allowance alone is ten times the
 * application's p99. */
static int64_t writer_bound_us(const zdm_pacer *p)
{
    return p->latency_pct && p->baseline_us ? p->baseline_us * p->latency_pct / 100 : 0;
}

/* One writer: the batch a writer that meets it still waits out inside the
 * bound (the longest retry time within it), but never under 20 ms nor
 * under 10x the fitted fixed cost of a batch: below that the fixed cost
 * (BEGIN, state rows, the commit's fsync) is paid over too few rows, and
 * batches timed in milliseconds steer on noise.  The writer's p99 is kept
 * by the lock's share instead (zdm_pacer_writer_gap_ms); the batch's
 * length only bounds the unlucky writer's wait (33 ms for 20). */
static int64_t single_writer_batch_ms(const zdm_pacer *p)
{
    int64_t bound_ms = writer_bound_us(p) / 1000, w = 0;
    for (int i = 0; i < BUSY_RETRIES && busy_retry_ms[i] <= bound_ms; i++)
        w = busy_retry_ms[i];
    double a, b;
    int64_t floor_ms = 20;
    if (fit(p, &a, &b) && (int64_t)(a * 10.0) > floor_ms)
        floor_ms = a * 10.0 >= 1e6 ? 1000000 : (int64_t)(a * 10.0);
    return w < floor_ms ? floor_ms : w;
}

void zdm_pacer_lock_held(zdm_pacer *p, int64_t us)
{
    p->lock_us = us < 0 ? 0 : us;
}

void zdm_pacer_writer_probe(zdm_pacer *p, int others_wrote)
{
    if (others_wrote) {
        p->writer_seen = 1;
        p->quiet_probes = 0;
    } else if (p->quiet_probes < ZDM_PACER_WRITER_QUIET_PROBES) {
        p->quiet_probes++;
    }
}

int zdm_pacer_writer_quiet(const zdm_pacer *p)
{
    return !p->writer_seen || p->quiet_probes >= ZDM_PACER_WRITER_QUIET_PROBES;
}

int64_t zdm_pacer_writer_gap_ms(const zdm_pacer *p)
{
    if (!p->single_writer || !p->latency_pct)
        return 0;
    int64_t held = p->lock_us > 0 ? p->lock_us : p->last_batch_ms * 1000;
    if (held <= 0)
        return 0;
    int64_t wait = zdm_pacer_waiter_us(held), bound = writer_bound_us(p), gap_us;
    if ((bound > 0 && wait <= bound) || zdm_pacer_writer_quiet(p))
        gap_us = wait; /* a writer that met the batch is inside the bound, or none writes: its turn */
    else /* the share of writes that wait at all is what the p99 sees */
        gap_us = held * (1000 - ZDM_PACER_LOCK_SHARE_PM) / ZDM_PACER_LOCK_SHARE_PM;
    return clamp((gap_us + 999) / 1000, 10, ZDM_PACER_MAX_WRITER_GAP_MS);
}

int64_t zdm_pacer_target(const zdm_pacer *p)
{
    int64_t t = p->target_ms;
    if (t == 0)
        return 0; /* a fixed size */
    if (p->max_lock_ms > 0 && p->max_lock_ms < t)
        t = p->max_lock_ms;
    if (p->single_writer && zdm_pacer_bound_us(p) > 0) {
        int64_t w = single_writer_batch_ms(p);
        if (w < t)
            t = w;
    }
    return t;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void resize(zdm_pacer *p, int64_t size)
{
    int64_t cap = p->max_size;
    if (p->max_rows_per_second && p->max_rows_per_second < cap)
        cap = p->max_rows_per_second < p->min_size ? p->min_size : p->max_rows_per_second;
    /* not with target_batch_ms = 0: a fixed size stays fixed */
    if (p->concurrent && p->latency_pct && p->target_ms > 0 && p->table_rows > 0 &&
        p->table_rows / ZDM_PACER_LOCK_SHARE < cap)
        cap = p->table_rows / ZDM_PACER_LOCK_SHARE; /* the row-lock share (pacer.h) */
    size = clamp(size, p->min_size, cap < p->min_size ? p->min_size : cap);
    if (size != p->size) {
        p->size = size;
        p->nsamples = 0; /* judge the new size on its own batches */
    }
}

/* Least squares of ms = a + b x rows over the cost window; a in ms, b in
 * ms per row.  Needs two different sizes. */
static int fit(const zdm_pacer *p, double *a, double *b)
{
    if (p->ncost < 2)
        return 0;
    double mr = 0, mm = 0;
    for (int i = 0; i < p->ncost; i++) {
        mr += (double)p->cost_rows[i];
        mm += (double)p->cost_ms[i];
    }
    mr /= p->ncost;
    mm /= p->ncost;
    double var = 0, cov = 0;
    for (int i = 0; i < p->ncost; i++) {
        double dr = (double)p->cost_rows[i] - mr;
        var += dr * dr;
        cov += dr * ((double)p->cost_ms[i] - mm);
    }
    /* sizes within 5% of each other say nothing about the slope */
    if (var <= (mr * 0.05) * (mr * 0.05) * p->ncost)
        return 0;
    double slope = cov / var;
    if (slope < 0)
        slope = 0;
    double fixed = mm - slope * mr;
    if (fixed < 0) { /* noise: a line through the origin instead */
        fixed = 0;
        slope = mr > 0 ? mm / mr : 0;
    }
    *a = fixed;
    *b = slope;
    return 1;
}

int zdm_pacer_cost(const zdm_pacer *p, int64_t *fixed_us, int64_t *per_row_ns)
{
    double a, b;
    if (!fit(p, &a, &b))
        return 0;
    *fixed_us = (int64_t)(a * 1000.0);
    *per_row_ns = (int64_t)(b * 1000000.0);
    return 1;
}

static void back_off(zdm_pacer *p)
{
    /* less work per batch, more room between batches, judged again on
     * fresh probes */
    if (p->target_ms > 0) { /* target_batch_ms = 0: the size is fixed, only the gap moves */
        int64_t half = p->size / 2;
        if (p->concurrent) {
            /* Not below the size where the fitted fixed cost is as large as
             * the per-row part: a smaller batch pays about as much (its
             * commit, its round trips) and converts less, so only the gap
             * helps there (the bench on a loaded host: 10-row batches at
             * 1-2 ms each, 75 s for 200,000 rows). */
            double a, b;
            if (fit(p, &a, &b) && b > 0) {
                double even = a / b;
                int64_t floor_rows = even >= (double)p->max_size ? p->max_size : (int64_t)even;
                if (half < floor_rows)
                    half = floor_rows < p->size ? floor_rows : p->size;
            }
        }
        resize(p, half);
        if (p->concurrent) /* and it grows back no further than this until the probe is quiet */
            p->lat_cap = p->size;
    }
    p->win_n = p->win_slow = 0;
    int64_t gap = p->lat_gap_ms * 2;
    if (gap < p->last_batch_ms)
        gap = p->last_batch_ms;
    if (gap >= ZDM_PACER_MAX_GAP_MS)
        p->at_max_gap++;
    p->lat_gap_ms = clamp(gap, 10, ZDM_PACER_MAX_GAP_MS);
    p->state = ZDM_PACER_LATENCY;
    p->nprobes = 0;
}

void zdm_pacer_blocked(zdm_pacer *p, int64_t sessions)
{
    if (sessions <= 0)
        return;
    p->blocked_total += sessions;
    if (p->latency_pct)
        back_off(p);
}

void zdm_pacer_probe_seen(zdm_pacer *p, int64_t us)
{
    if (us < 0)
        us = 0;
    p->last_probe_us = us;
    if (p->nprobes < ZDM_PACER_PROBES)
        p->probes[p->nprobes++] = us;
    else {
        for (int i = 1; i < ZDM_PACER_PROBES; i++)
            p->probes[i - 1] = p->probes[i];
        p->probes[ZDM_PACER_PROBES - 1] = us;
    }
    int64_t sorted[ZDM_PACER_PROBES];
    for (int i = 0; i < p->nprobes; i++)
        sorted[i] = p->probes[i];
    qsort(sorted, (size_t)p->nprobes, sizeof sorted[0], cmp64);
    p->probe_p99_us = sorted[(p->nprobes * 99 - 1) / 100];
}

void zdm_pacer_probe(zdm_pacer *p, int64_t us)
{
    zdm_pacer_probe_seen(p, us);
    int64_t bound = zdm_pacer_bound_us(p);
    if (!bound)
        return;
    /* Judged on the median of five probes (one slow probe on a busy host
     * is noise), or at once on one probe over 4x the bound. */
    if (p->nprobes < 5 && us <= 4 * bound)
        return;
    int64_t sorted[ZDM_PACER_PROBES];
    for (int i = 0; i < p->nprobes; i++)
        sorted[i] = p->probes[i];
    qsort(sorted, (size_t)p->nprobes, sizeof sorted[0], cmp64);
    int64_t median = sorted[p->nprobes / 2];
    if (median > bound || us > 4 * bound) {
        if (p->at_max_gap >= 3) {
            /* Still slow after three rounds at the longest gap and the
             * smallest batches: the worker is hardly running, so the
             * slowness is the server's new normal, not the backfill's.
             * Take it as the baseline rather than never finishing. */
            p->baseline_us = median;
            p->rebaselined++;
            p->lat_gap_ms = 0;
            p->state = ZDM_PACER_STEADY;
            p->at_max_gap = 0;
            p->nprobes = 0;
            return;
        }
        back_off(p); /* the application waits longer than the bound */
    } else {
        p->lat_gap_ms /= 4;
        if (p->lat_gap_ms < 5)
            p->lat_gap_ms = 0;
        p->at_max_gap = 0;
        if (!p->lat_gap_ms && p->state == ZDM_PACER_LATENCY)
            p->state = ZDM_PACER_STEADY;
        p->nprobes = 0;
    }
}

void zdm_pacer_record(zdm_pacer *p, int64_t rows, int64_t ms, int64_t now_ms)
{
    if (ms < 0)
        ms = 0;
    p->last_batch_ms = ms;
    /* Rate limit: the next batch starts no earlier than rows/R after the
     * later of this batch's end and the previous allowance. */
    if (p->max_rows_per_second > 0) {
        int64_t base = p->next_allowed_ms > now_ms - ms ? p->next_allowed_ms : now_ms - ms;
        p->next_allowed_ms = base + rows * 1000 / p->max_rows_per_second;
        if (p->next_allowed_ms > now_ms && p->state != ZDM_PACER_LATENCY)
            p->state = ZDM_PACER_RATE;
    }
    int64_t target = zdm_pacer_target(p);
    if (target <= 0)
        return;
    /* A batch that was cut short by the end of a range says little about
     * the cost of a full one. */
    if (rows < p->size / 2)
        return;
    p->cost_rows[p->cost_pos] = rows;
    p->cost_ms[p->cost_pos] = ms;
    p->cost_pos = (p->cost_pos + 1) % ZDM_PACER_COST_WINDOW;
    if (p->ncost < ZDM_PACER_COST_WINDOW)
        p->ncost++;
    double a = 0, b = 0;
    int have_fit = fit(p, &a, &b);
    /* the fixed part alone is half the target: shrinking cannot help */
    int fixed_dominates = have_fit && a * 2 >= (double)target;
    int held = p->state == ZDM_PACER_LATENCY;
    if (ms > 5 * target && !fixed_dominates) { /* far too slow: back off at once */
        resize(p, p->size / 4);
        return;
    }
    if (p->nsamples < ZDM_PACER_WINDOW)
        p->samples[p->nsamples++] = ms;
    else {
        for (int i = 1; i < ZDM_PACER_WINDOW; i++)
            p->samples[i - 1] = p->samples[i];
        p->samples[ZDM_PACER_WINDOW - 1] = ms;
    }
    /* Far below the target (under half of it) one batch is evidence
     * enough to grow, still by at most x1.5 (x4 unpaced, below): the start from a small
     * batch_size takes a few batches, not dozens.  Anything closer waits
     * for three samples of the current size. */
    if (p->nsamples < 3 && !(p->nsamples >= 1 && ms * 2 < target))
        return;
    int64_t sorted[ZDM_PACER_WINDOW];
    for (int i = 0; i < p->nsamples; i++)
        sorted[i] = p->samples[i];
    qsort(sorted, (size_t)p->nsamples, sizeof sorted[0], cmp64);
    int64_t p90 = sorted[(p->nsamples * 9 - 1) / 10];
    if (p90 < 1)
        p90 = 1;
    int in_band = p90 * 10 >= target * 8 && p90 * 10 <= target * 12;
    if (in_band && !fixed_dominates) {
        if (!held && p->state != ZDM_PACER_RATE)
            p->state = ZDM_PACER_STEADY;
        return; /* dead band of +-20% around the target: keep the size */
    }
    int64_t want;
    if (have_fit) {
        /* When the fixed part dominates, the target bounds the per-row
         * part: bigger batches pay the fixed cost over more rows. */
        double budget = fixed_dominates ? (double)target : (double)target - a;
        /* A per-row cost fitted near 0 makes budget / b huge: clamp it
         * before the conversion, undefined out of int64's range (UBSan,
         * torture soak seed 160 PostgreSQL: 1.8e20). */
        double wd = b > 0 ? budget / b : (double)p->size * 2;
        want = wd >= 1e15 ? (int64_t)1e15 : wd <= -1e15 ? -(int64_t)1e15 : (int64_t)wd;
    } else {
        want = p->size * target / p90;
    }
    if (p->concurrent && p->lat_cap > 0 && want > p->lat_cap)
        want = p->lat_cap; /* capped since the last back-off */
    if (want > p->size) {
        if (held && !p->concurrent)
            return; /* latency over the bound: no growth */
        /* Unpaced (no latency bound), a batch far below the target
         * (under an eighth) grows up to x4: from 1,000 rows by x1.5 a
         * backfill takes 10 batches to reach 50,000, a commit and an
         * fsync each, and a tenth of a 1M-row table is done by then
         * (SQLite: 39 batches for 1M rows where 30 do).  With the
         * latency bound on, the probe watches each step: x1.5 still. */
        int64_t cap = p->size + p->size / 2;
        if (!p->latency_pct && ms * 8 < target)
            cap = p->size * 4;
        resize(p, want < cap ? want : cap);
        if (p->state != ZDM_PACER_RATE && !held)
            p->state = ZDM_PACER_GROWING;
    } else if (want < p->size && !(fixed_dominates && in_band)) {
        resize(p, want);
        if (!held && p->state != ZDM_PACER_RATE)
            p->state = ZDM_PACER_STEADY;
    }
}

void zdm_pacer_concurrent(zdm_pacer *p, int on, int64_t table_rows)
{
    p->concurrent = on != 0;
    p->table_rows = table_rows < 0 ? 0 : table_rows;
    /* the activity readings come with the probe's connection: without it
     * (it failed) nothing says the application stopped, so the share holds */
    p->app_read = p->app_quiet = 0;
    p->lat_cap = 0;
    p->win_n = p->win_slow = 0;
    p->nidle = p->idle_pos = 0;
    resize(p, p->size);
}

/* The p95 of the last ZDM_PACER_IDLE_WINDOW samples taken while no batch
 * ran; 0 until that many were taken. */
static int64_t idle_p95(const zdm_pacer *p)
{
    if (p->nidle < ZDM_PACER_IDLE_WINDOW)
        return 0;
    int64_t sorted[ZDM_PACER_IDLE_WINDOW];
    memcpy(sorted, p->idle, sizeof sorted);
    qsort(sorted, ZDM_PACER_IDLE_WINDOW, sizeof sorted[0], cmp64);
    return sorted[(ZDM_PACER_IDLE_WINDOW * 95 - 1) / 100];
}

void zdm_pacer_idle_seen(zdm_pacer *p, int64_t us)
{
    p->idle[p->idle_pos] = us < 0 ? 0 : us;
    p->idle_pos = (p->idle_pos + 1) % ZDM_PACER_IDLE_WINDOW;
    if (p->nidle < ZDM_PACER_IDLE_WINDOW)
        p->nidle++;
}

void zdm_pacer_sample_idle(zdm_pacer *p, int64_t us)
{
    zdm_pacer_idle_seen(p, us);
    zdm_pacer_sample(p, us);
}

void zdm_pacer_sample(zdm_pacer *p, int64_t us)
{
    if (us < 0)
        us = 0;
    zdm_pacer_probe_seen(p, us);
    int64_t bound = zdm_pacer_bound_us(p);
    if (!bound)
        return;
    p->win_n++;
    p->samples_total++;
    if (us > bound) {
        p->win_slow++;
        p->slow_total++;
    }
    if (p->win_slow >= 2 || us > 4 * bound) {
        /* Whose slowness (pacer.h): slow between the batches of a
         * nearly idle worker (its last batch under a tenth of the gap
         * after it), the server's; under the bound between them, the
         * backfill's, however long it backs off; not known yet, three
         * back-offs at the longest gap say it is the server's. */
        int64_t idle95 = idle_p95(p);
        int servers = idle95 > bound && p->lat_gap_ms > 0 && p->last_batch_ms * 10 <= p->lat_gap_ms;
        if (servers || (p->at_max_gap >= 3 && idle95 == 0)) {
            p->baseline_us = servers ? idle95 : p->probe_p99_us;
            p->nidle = p->idle_pos = 0;
            p->rebaselined++;
            p->lat_gap_ms = 0;
            p->lat_cap = 0;
            p->at_max_gap = 0;
            p->win_n = p->win_slow = 0;
            p->state = ZDM_PACER_STEADY;
            return;
        }
        back_off(p);
        return;
    }
    if (p->win_n < ZDM_PACER_CLEAN)
        return;
    if (p->win_slow == 0) {
        /* quiet: the gap first (duty cycle), then the size cap */
        if (p->lat_gap_ms > 0) {
            p->lat_gap_ms = p->lat_gap_ms * 2 / 3;
            if (p->lat_gap_ms < 10)
                p->lat_gap_ms = 0;
        } else if (p->lat_cap > 0) {
            p->lat_cap += p->lat_cap / 2 > 1 ? p->lat_cap / 2 : 1;
            if (p->lat_cap >= p->max_size)
                p->lat_cap = 0;
        }
        p->at_max_gap = 0;
        if (!p->lat_gap_ms && !p->lat_cap && p->state == ZDM_PACER_LATENCY)
            p->state = ZDM_PACER_STEADY;
    }
    p->win_n = p->win_slow = 0;
}

void zdm_pacer_duty(zdm_pacer *p, int64_t pct)
{
    p->duty_pct = pct < 1 ? 1 : pct > 100 ? 100 : pct;
}

void zdm_pacer_app_activity(zdm_pacer *p, int active)
{
    p->app_read = 1;
    if (active)
        p->app_quiet = 0;
    else if (p->app_quiet < ZDM_PACER_APP_QUIET)
        p->app_quiet++;
}

int zdm_pacer_duty_on(const zdm_pacer *p)
{
    return p->latency_pct && !p->single_writer && p->duty_pct < 100 &&
           (!p->app_read || p->app_quiet < ZDM_PACER_APP_QUIET);
}

int64_t zdm_pacer_delay(const zdm_pacer *p, int64_t now_ms)
{
    int64_t wait = p->sleep_ms;
    if (p->max_rows_per_second > 0 && p->next_allowed_ms - now_ms > wait)
        wait = p->next_allowed_ms - now_ms;
    if (p->lat_gap_ms > wait)
        wait = p->lat_gap_ms;
    int64_t gap = zdm_pacer_writer_gap_ms(p); /* one writer: pacer.h */
    if (gap > wait)
        wait = gap;
    if (zdm_pacer_duty_on(p) && p->last_batch_ms > 0) { /* the busy share: pacer.h */
        gap = p->last_batch_ms * (100 - p->duty_pct) / p->duty_pct;
        if (gap > wait)
            wait = gap;
    }
    return wait < 0 ? 0 : wait;
}

const char *zdm_pacer_state_name(zdm_pacer_state s)
{
    switch (s) {
    case ZDM_PACER_STEADY: return "steady";
    case ZDM_PACER_GROWING: return "growing";
    case ZDM_PACER_LATENCY: return "latency";
    case ZDM_PACER_RATE: return "rate";
    }
    return "?";
}
