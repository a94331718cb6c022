/*
 * test_pacer.c -- batch sizing, cost model, latency pacing and rate
 * limiting arithmetic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pacer.h"

static void test_init_clamps(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 100000, 10, 5000, 200, 0, 0);
    assert_int_equal(p.size, 5000);
    zdm_pacer_init(&p, 1, 10, 5000, 200, 0, 0);
    assert_int_equal(p.size, 10);
    /* a rate limit caps one batch at one second's worth of rows */
    zdm_pacer_init(&p, 1000, 10, 5000, 200, 300, 0);
    assert_int_equal(p.size, 300);
}

static void test_growth_is_capped(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 1000000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 0); /* paced: a latency bound */
    int64_t now = 0;
    /* batches 100x faster than the target: grow, but at most x1.5 per step */
    int64_t prev = p.size;
    for (int i = 0; i < 30; i++) {
        now += 2;
        zdm_pacer_record(&p, p.size, 2, now);
        assert_true(p.size <= prev + prev / 2);
        prev = p.size;
    }
    assert_true(p.size > 1000);
}

/* Unpaced (no latency bound): a batch under an eighth of the target grows
 * up to x4, a slower one by x1.5 at most, and the size settles below the
 * target's worth of rows (1 ms + 1 ms per 1,000 rows: 199,000). */
static void test_unpaced_growth_is_quick(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 1000000, 200, 0, 0);
    int64_t now = 0, prev = p.size;
    int quick = 0, steps = 0;
    while (p.size < 150000 && steps < 30) {
        int64_t ms = 1 + p.size / 1000;
        now += ms;
        zdm_pacer_record(&p, p.size, ms, now);
        assert_true(p.size <= (ms * 8 < 200 ? prev * 4 : prev + prev / 2));
        quick += p.size > prev + prev / 2;
        prev = p.size;
        steps++;
    }
    assert_true(quick >= 2);
    assert_true(steps <= 8); /* x1.5 alone: 12 steps */
    for (int i = 0; i < 20; i++) {
        int64_t ms = 1 + p.size / 1000;
        now += ms;
        zdm_pacer_record(&p, p.size, ms, now);
    }
    assert_true(p.size <= 199000);
    assert_true(p.size >= 150000);
}

static void test_slow_batch_cuts_at_once(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 8000, 10, 100000, 100, 0, 0);
    zdm_pacer_record(&p, 8000, 2400, 2400); /* 24x the target */
    assert_int_equal(p.size, 2000);
    /* cost proportional to the rows: cut again */
    zdm_pacer_record(&p, 2000, 600, 3000);
    assert_int_equal(p.size, 500);
}

static void test_cost_model_separates_fixed_cost(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 1000000, 200, 0, 0);
    int64_t fixed = 0, per_row = 0;
    assert_false(zdm_pacer_cost(&p, &fixed, &per_row));
    /* 40 ms per batch + 0.02 ms per row */
    zdm_pacer_record(&p, 1000, 60, 100);
    assert_false(zdm_pacer_cost(&p, &fixed, &per_row)); /* one size says nothing */
    zdm_pacer_record(&p, 3000, 100, 200);
    assert_true(zdm_pacer_cost(&p, &fixed, &per_row));
    assert_int_equal(fixed, 40000);
    assert_int_equal(per_row, 20000);
}

static void test_fixed_cost_grows_the_batch(void **state)
{
    (void)state;
    zdm_pacer p;
    /* a costly `where`: every batch scans for 300 ms, a row costs 0.01 ms;
     * shrinking (what a duration-only pacer does) never meets the target */
    zdm_pacer_init(&p, 1000, 10, 100000, 200, 0, 0);
    int64_t now = 0;
    for (int i = 0; i < 60; i++) {
        int64_t ms = 300 + p.size / 100;
        now += ms;
        zdm_pacer_record(&p, p.size, ms, now);
        assert_true(p.size >= 10);
    }
    /* grown until the per-row part (size x 0.01 ms) fills the target */
    assert_true(p.size >= 10000);
    assert_true(p.size <= 20000 * 3 / 2);
}

static void test_max_lock_ms_bounds_batches(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 100, 10, 1000000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 50, 0);
    assert_int_equal(zdm_pacer_target(&p), 50);
    int64_t now = 0;
    for (int i = 0; i < 200; i++) { /* 0.05 ms a row: 1000 rows in 50 ms */
        int64_t ms = p.size / 20;
        now += ms;
        zdm_pacer_record(&p, p.size, ms, now);
    }
    assert_true(p.size >= 800);
    assert_true(p.size <= 1200);
}

static void test_latency_over_bound_backs_off(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 4000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 0);
    assert_int_equal(zdm_pacer_bound_us(&p), 0); /* no baseline yet */
    zdm_pacer_baseline(&p, 4000); /* 4 ms idle: bound 6 ms */
    assert_int_equal(zdm_pacer_bound_us(&p), 6000);
    zdm_pacer_record(&p, 4000, 100, 100);
    /* one slow probe among quiet ones is noise */
    int64_t noisy[] = {4000, 5000, 9000, 4000, 5000};
    for (int i = 0; i < 5; i++)
        zdm_pacer_probe(&p, noisy[i]);
    assert_int_equal(p.size, 4000);
    /* the median over the bound: back off */
    int64_t slow[] = {7000, 8000, 4000, 9000, 7000};
    for (int i = 0; i < 5; i++)
        zdm_pacer_probe(&p, slow[i]);
    assert_int_equal(p.size, 2000);
    assert_int_equal(p.state, ZDM_PACER_LATENCY);
    assert_true(zdm_pacer_delay(&p, 1000) >= 100); /* at least the batch's length */
    int64_t gap = zdm_pacer_delay(&p, 1000);
    /* while held, fast batches do not grow the size */
    for (int i = 0; i < 10; i++)
        zdm_pacer_record(&p, p.size, 5, 2000 + i);
    assert_int_equal(p.size, 2000);
    /* one probe over 4x the bound acts at once: smaller, longer gap */
    zdm_pacer_probe(&p, 30000);
    assert_int_equal(p.size, 1000);
    assert_true(zdm_pacer_delay(&p, 1000) > gap);
    /* quiet again: the gap shrinks away and growth resumes */
    for (int i = 0; i < 100; i++)
        zdm_pacer_probe(&p, 4000);
    assert_int_equal(zdm_pacer_delay(&p, 1000), 0);
    assert_int_not_equal(p.state, ZDM_PACER_LATENCY);
    zdm_pacer_record(&p, p.size, 5, 5000);
    assert_true(p.size > 1000);
}

static void test_slower_server_becomes_the_baseline(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 4000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 0);
    zdm_pacer_baseline(&p, 2000);
    zdm_pacer_record(&p, 4000, 50, 50);
    /* the server got slower for its own reasons: every probe 20 ms,
     * however little the worker does */
    int i;
    for (i = 0; i < 1000 && p.rebaselined == 0; i++) {
        zdm_pacer_probe(&p, 20000);
        assert_true(zdm_pacer_delay(&p, 0) <= ZDM_PACER_MAX_GAP_MS);
    }
    assert_int_equal(p.rebaselined, 1); /* the backfill still ends */
    assert_int_equal(p.baseline_us, 20000);
    assert_int_equal(zdm_pacer_delay(&p, 0), 0);
    /* and the new normal holds it no more */
    for (int j = 0; j < 20; j++)
        zdm_pacer_probe(&p, 20000);
    assert_int_not_equal(p.state, ZDM_PACER_LATENCY);
    assert_int_equal(p.rebaselined, 1);
}

static void test_blocked_sessions_back_off(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 4000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 0);
    zdm_pacer_record(&p, 4000, 200, 200); /* at the target */
    zdm_pacer_blocked(&p, 0); /* nobody waited: nothing changes */
    assert_int_equal(p.size, 4000);
    assert_int_equal(zdm_pacer_delay(&p, 200), 0);
    zdm_pacer_blocked(&p, 2); /* two sessions waited on the batch's rows */
    assert_int_equal(p.size, 2000);
    assert_int_equal(p.state, ZDM_PACER_LATENCY);
    assert_int_equal(zdm_pacer_delay(&p, 200), 200);
    assert_int_equal(p.blocked_total, 2);
    /* a fixed size (target_batch_ms = 0) stays fixed: only the gap grows */
    zdm_pacer q;
    zdm_pacer_init(&q, 200, 10, 100000, 0, 0, 0);
    zdm_pacer_latency(&q, 150, 0, 0);
    zdm_pacer_record(&q, 200, 30, 30);
    zdm_pacer_blocked(&q, 1);
    assert_int_equal(q.size, 200);
    assert_int_equal(zdm_pacer_delay(&q, 30), 30);
    zdm_pacer_latency(&p, 0, 0, 0); /* unthrottled: counted, no back-off */
    zdm_pacer_blocked(&p, 1);
    assert_int_equal(p.size, 2000);
    assert_int_equal(p.blocked_total, 3);
}

static void test_latency_bound_floor_and_off(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 0);
    zdm_pacer_baseline(&p, 100); /* 0.1 ms: x1.5 is below scheduler noise */
    assert_int_equal(zdm_pacer_bound_us(&p), 1100);
    for (int i = 0; i < 10; i++)
        zdm_pacer_probe(&p, 1000);
    assert_int_equal(p.size, 1000);
    zdm_pacer_latency(&p, 0, 0, 0); /* unthrottled: probes change nothing */
    for (int i = 0; i < 10; i++)
        zdm_pacer_probe(&p, 1000000);
    assert_int_equal(p.size, 1000);
    assert_int_equal(zdm_pacer_delay(&p, 0), 0);
}

static void test_single_writer_leaves_lock_free(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 1);
    zdm_pacer_baseline(&p, 100); /* a local write lock: 0.1 ms, a writer's bound 0.15 ms */
    assert_int_equal(zdm_pacer_delay(&p, 0), 0); /* no batch yet */
    zdm_pacer_writer_probe(&p, 1); /* an application writes */
    /* a batch that held the lock 5 ms: any writer that met it waited >= 1 ms,
     * far over the bound, so the lock is held 5 per mille of the time */
    zdm_pacer_record(&p, 1000, 5, 5);
    zdm_pacer_lock_held(&p, 5000);
    assert_int_equal(zdm_pacer_writer_gap_ms(&p), 995);
    assert_int_equal(zdm_pacer_delay(&p, 5), 995);
    zdm_pacer_lock_held(&p, 20000);
    assert_int_equal(zdm_pacer_delay(&p, 5), 3980);
    zdm_pacer_lock_held(&p, 40);                 /* a batch at the end of a range */
    assert_int_equal(zdm_pacer_delay(&p, 5), 10); /* at least 10 ms */
    zdm_pacer_lock_held(&p, 900000);
    assert_int_equal(zdm_pacer_delay(&p, 5), ZDM_PACER_MAX_WRITER_GAP_MS); /* capped */
    /* the lock time in microseconds wins over the batch's milliseconds */
    zdm_pacer_lock_held(&p, 0);
    assert_int_equal(zdm_pacer_delay(&p, 5), 995); /* from last_batch_ms, 5 ms */
    /* a loose bound (a 20 ms probe_query: writers may take 30 ms): a writer
     * that meets an 18 ms batch retries 18 ms after it first failed, inside
     * the bound, so the gap is its turn, not 199x the batch */
    zdm_pacer_baseline(&p, 20000);
    zdm_pacer_lock_held(&p, 15000);
    assert_int_equal(zdm_pacer_delay(&p, 5), 18);
    zdm_pacer_lock_held(&p, 40000); /* a writer waits 53 ms: over the bound */
    assert_int_equal(zdm_pacer_delay(&p, 5), 7960);
    zdm_pacer_latency(&p, 0, 0, 1); /* pacing off: full speed */
    assert_int_equal(zdm_pacer_writer_gap_ms(&p), 0);
    assert_int_equal(zdm_pacer_delay(&p, 5), 0);
    zdm_pacer_latency(&p, 150, 0, 0); /* PostgreSQL: no single-writer gap */
    assert_int_equal(zdm_pacer_writer_gap_ms(&p), 0);
}

static void test_single_writer_alone_takes_turns(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 1);
    zdm_pacer_baseline(&p, 100);
    zdm_pacer_record(&p, 1000, 20, 20);
    zdm_pacer_lock_held(&p, 20000);
    /* nobody else wrote: the lock is left free for a writer's first retry
     * after a 20 ms batch (33 ms), not for 199x the batch */
    assert_int_equal(zdm_pacer_delay(&p, 20), 33);
    zdm_pacer_writer_probe(&p, 0); /* nobody yet */
    assert_int_equal(zdm_pacer_delay(&p, 20), 33);
    zdm_pacer_writer_probe(&p, 1);
    assert_int_equal(zdm_pacer_delay(&p, 20), 3980);
    for (int i = 1; i < ZDM_PACER_WRITER_QUIET_PROBES; i++) {
        zdm_pacer_writer_probe(&p, 0);
        assert_int_equal(zdm_pacer_delay(&p, 20), 3980); /* a writer that writes every few seconds */
    }
    zdm_pacer_writer_probe(&p, 0);
    assert_int_equal(zdm_pacer_delay(&p, 20), 33); /* quiet again */
}

/* A probe that steers nothing (SQLite's default probe, zdm_pacer_probe_seen)
 * is recorded for /metrics, and slow ones neither shrink the batch nor
 * add a gap; the same probes through zdm_pacer_probe back off. */
static void test_probe_seen_steers_nothing(void **state)
{
    (void)state;
    zdm_pacer p, q;
    zdm_pacer_init(&p, 1000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 1);
    zdm_pacer_baseline(&p, 100);
    q = p;
    for (int i = 0; i < 10; i++) {
        zdm_pacer_probe_seen(&p, 50000); /* 500x the baseline: other writers held the lock */
        zdm_pacer_probe(&q, 50000);
    }
    assert_int_equal(p.last_probe_us, 50000);
    assert_int_equal(p.probe_p99_us, 50000);
    assert_int_equal(p.size, 1000);
    assert_int_equal(p.lat_gap_ms, 0);
    assert_int_not_equal(p.state, ZDM_PACER_LATENCY);
    assert_true(q.size < 1000); /* the steering probe backs off */
}

static void test_waiter_follows_busy_handler(void **state)
{
    (void)state;
    /* sqlite3_busy_timeout's retries: 1, 3, 8, 18, 33, ... ms after the
     * first failure, then every 100 ms after 328 */
    assert_int_equal(zdm_pacer_waiter_us(0), 0);
    assert_int_equal(zdm_pacer_waiter_us(1), 1000); /* even a tiny lock costs 1 ms */
    assert_int_equal(zdm_pacer_waiter_us(1000), 1000);
    assert_int_equal(zdm_pacer_waiter_us(1001), 3000);
    assert_int_equal(zdm_pacer_waiter_us(5000), 8000);
    assert_int_equal(zdm_pacer_waiter_us(8000), 8000);
    assert_int_equal(zdm_pacer_waiter_us(100000), 103000);
    assert_int_equal(zdm_pacer_waiter_us(328000), 328000);
    assert_int_equal(zdm_pacer_waiter_us(328001), 428000);
    assert_int_equal(zdm_pacer_waiter_us(1000000), 1028000);
    /* the lock's share: a batch holding 5 per mille of the time */
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 100000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 0, 1);
    zdm_pacer_baseline(&p, 100);
    zdm_pacer_writer_probe(&p, 1);
    for (int64_t held = 1000; held <= 100000; held += 7919) {
        zdm_pacer_lock_held(&p, held);
        int64_t gap_us = zdm_pacer_writer_gap_ms(&p) * 1000;
        assert_true(held * 1000 <= ZDM_PACER_LOCK_SHARE_PM * (held + gap_us));
        assert_true(held * 1000 > ZDM_PACER_LOCK_SHARE_PM * (held + gap_us - 1000)); /* not more than needed */
    }
}

static void test_single_writer_batch_size(void **state)
{
    (void)state;
    zdm_pacer p;
    /* one size allowed: every batch below feeds the cost model */
    zdm_pacer_init(&p, 1000, 1000, 1000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 1);
    assert_int_equal(zdm_pacer_target(&p), 100); /* no baseline yet: max_lock_ms */
    zdm_pacer_baseline(&p, 200);                 /* writers' bound 0.3 ms */
    assert_int_equal(zdm_pacer_target(&p), 20);  /* no batch fits: 20 ms, the share keeps the p99 */
    zdm_pacer_baseline(&p, 20000);               /* bound 30 ms */
    assert_int_equal(zdm_pacer_target(&p), 20);
    zdm_pacer_baseline(&p, 40000);               /* bound 60 ms */
    assert_int_equal(zdm_pacer_target(&p), 53);  /* a writer meeting 53 ms retries at 53 ms */
    zdm_pacer_baseline(&p, 200);
    /* the commit's fsync: a fixed 3 ms a batch, 0.001 ms a row.  Batches
     * of 20 ms would pay 15 % of their lock time for it: 10x the fixed cost */
    int64_t now = 0;
    for (int i = 0; i < 8; i++) {
        int64_t rows = i % 2 ? 1000 : 3000;
        now += 3 + rows / 1000;
        zdm_pacer_record(&p, rows, 3 + rows / 1000, now);
    }
    int64_t fixed = 0, per_row = 0;
    assert_true(zdm_pacer_cost(&p, &fixed, &per_row));
    assert_int_equal(fixed, 3000);
    assert_int_equal(zdm_pacer_target(&p), 30);
    zdm_pacer_latency(&p, 150, 100, 0); /* PostgreSQL: max_lock_ms */
    assert_int_equal(zdm_pacer_target(&p), 100);
}

static void test_converges_without_oscillating(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 100, 10, 1000000, 200, 0, 0);
    /* a table where a row costs 0.05 ms: the ideal batch is 4000 rows */
    int64_t now = 0, sizes[200];
    for (int i = 0; i < 200; i++) {
        int64_t ms = p.size / 20;
        now += ms;
        sizes[i] = p.size;
        zdm_pacer_record(&p, p.size, ms, now);
    }
    for (int i = 150; i < 200; i++) {
        assert_true(sizes[i] >= 3200);
        assert_true(sizes[i] <= 4800);
    }
    /* settled: no change over the last 30 batches */
    for (int i = 170; i < 200; i++)
        assert_int_equal(sizes[i], sizes[199]);
}

static void test_short_batches_do_not_steer(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 100000, 200, 0, 0);
    for (int i = 0; i < 10; i++)
        zdm_pacer_record(&p, 10, 1, i); /* end of a range: few rows */
    assert_int_equal(p.size, 1000);
}

static void test_fixed_size_when_no_target(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 2000, 10, 100000, 0, 0, 0);
    for (int i = 0; i < 20; i++)
        zdm_pacer_record(&p, 2000, 1, i);
    assert_int_equal(p.size, 2000);
}

static void test_rate_limit_spaces_batches(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 100000, 0, 2000, 0);
    /* 1000 rows at 2000 rows/s: the next batch waits until 500 ms after
     * this one started */
    zdm_pacer_record(&p, 1000, 100, 10100);
    assert_int_equal(zdm_pacer_delay(&p, 10100), 400);
    assert_int_equal(zdm_pacer_delay(&p, 10500), 0);
    /* over many batches the average rate equals the limit */
    int64_t now = 10500, rows = 0, start = 10000;
    for (int i = 0; i < 100; i++) {
        now += zdm_pacer_delay(&p, now);
        now += 50;
        zdm_pacer_record(&p, 1000, 50, now);
        rows += 1000;
    }
    int64_t rate = rows * 1000 / (now - start);
    assert_true(rate <= 2000);
    assert_true(rate >= 1900);
}

static void test_sleep_between_batches(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 100000, 0, 0, 250);
    zdm_pacer_record(&p, 1000, 10, 10);
    assert_int_equal(zdm_pacer_delay(&p, 10), 250);
    zdm_pacer_update(&p, 10, 100000, 0, 0, 0);
    assert_int_equal(zdm_pacer_delay(&p, 10), 0);
}

/* The probe running during the batches (zdm_pacer_sample): two samples
 * over the bound halve the batch, cap its growth and open a gap; a clean
 * run of samples closes the gap, then lifts the cap. */
static void test_concurrent_samples_back_off_and_recover(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 8000, 10, 50000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_concurrent(&p, 1, 0);
    zdm_pacer_baseline(&p, 4000); /* idle p99 4 ms: bound 6 ms */
    assert_int_equal(zdm_pacer_bound_us(&p), 6000);
    /* one slow sample is the 1 % the p99 allows */
    zdm_pacer_sample(&p, 7000);
    assert_int_equal(p.size, 8000);
    assert_int_equal(p.lat_gap_ms, 0);
    /* the second one backs off */
    zdm_pacer_sample(&p, 7000);
    assert_int_equal(p.size, 4000);
    assert_int_equal(p.lat_cap, 4000);
    assert_true(p.lat_gap_ms >= 10);
    assert_int_equal(p.state, ZDM_PACER_LATENCY);
    /* batches far under the target would grow it, but not past the cap */
    int64_t now = 0;
    for (int i = 0; i < 20; i++) {
        now += 5;
        zdm_pacer_record(&p, p.size, 5, now);
        assert_true(p.size <= 4000);
    }
    /* quiet samples: the gap closes first, then the cap rises and goes */
    int64_t gap = p.lat_gap_ms, cap = p.lat_cap;
    for (int round = 0; round < 40 && (p.lat_gap_ms || p.lat_cap); round++) {
        for (int i = 0; i < ZDM_PACER_CLEAN; i++)
            zdm_pacer_sample(&p, 1000);
        if (gap > 0) {
            assert_true(p.lat_gap_ms < gap);
            assert_int_equal(p.lat_cap, cap);
        } else if (cap > 0) {
            assert_true(p.lat_cap > cap || p.lat_cap == 0);
        }
        gap = p.lat_gap_ms;
        cap = p.lat_cap;
    }
    assert_int_equal(p.lat_gap_ms, 0);
    assert_int_equal(p.lat_cap, 0);
    assert_int_equal(p.state, ZDM_PACER_STEADY);
}

/* A single sample far over the bound backs off at once; samples under
 * the bound, however many, never back off; one slow sample in each
 * window of ZDM_PACER_CLEAN holds (neither backs off nor grows). */
static void test_concurrent_samples_thresholds(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 8000, 10, 50000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_concurrent(&p, 1, 0);
    zdm_pacer_baseline(&p, 4000);
    for (int i = 0; i < 1000; i++)
        zdm_pacer_sample(&p, 6000); /* at the bound, not over it */
    assert_int_equal(p.size, 8000);
    assert_int_equal(p.lat_gap_ms, 0);
    zdm_pacer_sample(&p, 4 * 6000 + 1);
    assert_int_equal(p.size, 4000);
    int64_t gap = p.lat_gap_ms;
    for (int round = 0; round < 5; round++) {
        zdm_pacer_sample(&p, 7000);
        for (int i = 1; i < ZDM_PACER_CLEAN; i++)
            zdm_pacer_sample(&p, 1000);
        assert_int_equal(p.lat_gap_ms, gap);
        assert_int_equal(p.size, 4000);
    }
    /* off (max_latency_factor = 0): samples change nothing */
    zdm_pacer_init(&p, 8000, 10, 50000, 200, 0, 0);
    zdm_pacer_concurrent(&p, 1, 0);
    zdm_pacer_baseline(&p, 4000);
    for (int i = 0; i < 100; i++)
        zdm_pacer_sample(&p, 100000);
    assert_int_equal(p.size, 8000);
    assert_int_equal(p.lat_gap_ms, 0);
    assert_int_equal(p.last_probe_us, 100000);
}

/* Slow with the longest gap, three back-offs running: the server is
 * slower now, not the backfill: its recent p99 becomes the baseline. */
static void test_concurrent_rebaselines(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 8000, 10, 50000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_concurrent(&p, 1, 0);
    zdm_pacer_baseline(&p, 1000);
    for (int i = 0; i < 400 && !p.rebaselined; i++)
        zdm_pacer_sample(&p, 20000);
    assert_int_equal(p.rebaselined, 1);
    assert_int_equal(p.baseline_us, 20000);
    assert_int_equal(p.lat_gap_ms, 0);
    assert_int_equal(p.lat_cap, 0);
}

/* A latency-paced pacer with the probe on its own connection (PostgreSQL)
 * and an idle baseline of baseline_us. */
static void concurrent_pacer(zdm_pacer *p, int64_t baseline_us)
{
    zdm_pacer_init(p, 8000, 10, 50000, 200, 0, 0);
    zdm_pacer_latency(p, 150, 100, 0);
    zdm_pacer_concurrent(p, 1, 0);
    zdm_pacer_baseline(p, baseline_us);
}

/* The server slower between the batches too, the worker nearly idle
 * (its batches under a tenth of the gap): not the backfill's doing, the
 * idle samples' p95 is the baseline at once, long before three back-offs
 * at the longest gap.  Slow only during the batches: backs off, never
 * re-baselines.  Slow between the batches of a worker that works much of
 * the time (its own after-effects, maybe): backs off too. */
static void test_concurrent_idle_slowness_is_the_servers(void **state)
{
    (void)state;
    zdm_pacer p;
    /* nearly idle: 2 ms batches, a gap of 40 ms or more */
    concurrent_pacer(&p, 1000); /* bound 2 ms */
    p.lat_gap_ms = 40;
    p.last_batch_ms = 2;
    for (int i = 0; i < ZDM_PACER_IDLE_WINDOW; i++)
        zdm_pacer_sample_idle(&p, 1500); /* under the bound */
    assert_int_equal(p.rebaselined, 0);
    /* two slow ones: 2 of 64 is under the 5 % a p95 allows: a back-off */
    zdm_pacer_sample_idle(&p, 3000);
    zdm_pacer_sample_idle(&p, 3000);
    assert_int_equal(p.rebaselined, 0);
    assert_int_equal(p.state, ZDM_PACER_LATENCY);
    assert_int_equal(p.at_max_gap, 0);
    /* four: the idle p95 is over the bound, the worker nearly idle */
    zdm_pacer_sample_idle(&p, 3000);
    zdm_pacer_sample_idle(&p, 3000);
    assert_int_equal(p.rebaselined, 1);
    assert_int_equal(p.baseline_us, 3000);
    assert_int_equal(p.lat_gap_ms, 0);
    assert_int_equal(p.at_max_gap, 0);

    /* slow only while the batches run: back-offs, no new baseline */
    concurrent_pacer(&p, 1000);
    p.lat_gap_ms = 40;
    p.last_batch_ms = 2;
    for (int i = 0; i < ZDM_PACER_IDLE_WINDOW; i++)
        zdm_pacer_idle_seen(&p, 900); /* the baseline's own samples */
    for (int i = 0; i < 200; i++) {
        zdm_pacer_sample_idle(&p, 1000);
        zdm_pacer_sample(&p, 3000);
    }
    assert_int_equal(p.rebaselined, 0);
    assert_int_equal(p.baseline_us, 1000);
    assert_int_equal(p.state, ZDM_PACER_LATENCY);
    assert_true(p.lat_gap_ms > 40);

    /* slow between batches that fill much of the time: back off */
    concurrent_pacer(&p, 1000);
    p.last_batch_ms = 200;
    for (int i = 0; i < ZDM_PACER_IDLE_WINDOW; i++)
        zdm_pacer_idle_seen(&p, 900);
    for (int i = 0; i < 4 * ZDM_PACER_IDLE_WINDOW; i++)
        zdm_pacer_sample_idle(&p, 3000);
    assert_int_equal(p.rebaselined, 0);
    assert_true(p.size < 8000);
    assert_int_equal(p.state, ZDM_PACER_LATENCY);

    /* batches under a millisecond back to back (no gap yet): not idle,
     * the first slow pair backs off */
    concurrent_pacer(&p, 1000);
    p.last_batch_ms = 0;
    for (int i = 0; i < ZDM_PACER_IDLE_WINDOW; i++)
        zdm_pacer_idle_seen(&p, 3000);
    zdm_pacer_sample_idle(&p, 3000);
    zdm_pacer_sample_idle(&p, 3000);
    assert_int_equal(p.rebaselined, 0);
    assert_int_equal(p.state, ZDM_PACER_LATENCY);
    assert_true(p.lat_gap_ms > 0);
}

/* With latency pacing and the probe running during batches, a batch
 * holds at most 1/1000 of the table's rows (never under min_batch_size),
 * however fast the batches are; unthrottled it grows as before. */
static void test_concurrent_row_lock_share(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 1000, 10, 50000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_concurrent(&p, 1, 200000);
    assert_int_equal(p.size, 200);
    int64_t now = 0;
    for (int i = 0; i < 30; i++) {
        now += 2;
        zdm_pacer_record(&p, p.size, 2, now);
        assert_true(p.size <= 200);
    }
    zdm_pacer_init(&p, 1000, 50, 50000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_concurrent(&p, 1, 20000); /* 20 rows: min_batch_size wins */
    assert_int_equal(p.size, 50);
    zdm_pacer_init(&p, 1000, 10, 50000, 0, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_concurrent(&p, 1, 200000); /* target_batch_ms = 0: a fixed size stays fixed */
    assert_int_equal(p.size, 1000);
    zdm_pacer_init(&p, 1000, 10, 50000, 200, 0, 0);
    zdm_pacer_latency(&p, 0, 0, 0); /* unthrottled: no share cap */
    zdm_pacer_concurrent(&p, 1, 200000);
    for (int i = 0; i < 30; i++) {
        now += 2;
        zdm_pacer_record(&p, p.size, 2, now);
    }
    assert_true(p.size > 1000);
}

/* Backing off, the batch is not halved below the size whose fitted
 * fixed cost equals its per-row part (there a smaller batch costs about
 * as much and converts less): only the gap grows. */
static void test_concurrent_backoff_keeps_fixed_cost_floor(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 400, 10, 50000, 200, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_concurrent(&p, 1, 0);
    zdm_pacer_baseline(&p, 1000);
    /* batches: 2 ms fixed + 0.01 ms a row (200 rows: fixed = per-row) */
    int64_t now = 0;
    int64_t sizes[] = {400, 300, 400, 300, 400, 300};
    for (int i = 0; i < 6; i++) {
        p.size = sizes[i];
        now += 10;
        zdm_pacer_record(&p, sizes[i], 2 + sizes[i] / 100, now);
    }
    int64_t fixed_us = 0, per_row_ns = 0;
    assert_true(zdm_pacer_cost(&p, &fixed_us, &per_row_ns));
    p.size = 400;
    int64_t gap = 0;
    for (int i = 0; i < 8; i++) {
        zdm_pacer_sample(&p, 50000); /* over 4x the bound: back off */
        assert_true(p.size >= 150);
        assert_true(p.lat_gap_ms >= gap);
        gap = p.lat_gap_ms;
    }
    assert_true(p.size < 400);
    assert_int_equal(p.lat_gap_ms, ZDM_PACER_MAX_GAP_MS);
}

/* The busy share: while another session works (or before anything is
 * known), a batch of T ms is followed by T x (100 - pct) / pct; lifted
 * after ZDM_PACER_APP_QUIET quiet readings, back at the first busy one;
 * never without latency pacing, never for one writer, never at 100. */
static void test_busy_share(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 200, 10, 50000, 0, 0, 0);
    zdm_pacer_latency(&p, 150, 100, 0);
    zdm_pacer_duty(&p, 20);
    zdm_pacer_record(&p, 200, 10, 1000);
    assert_true(zdm_pacer_duty_on(&p)); /* nothing read yet: as busy */
    assert_int_equal(zdm_pacer_delay(&p, 1000), 40);
    zdm_pacer_app_activity(&p, 1);
    assert_int_equal(zdm_pacer_delay(&p, 1000), 40);
    for (int i = 0; i < ZDM_PACER_APP_QUIET - 1; i++)
        zdm_pacer_app_activity(&p, 0);
    assert_true(zdm_pacer_duty_on(&p));
    zdm_pacer_app_activity(&p, 0);
    assert_false(zdm_pacer_duty_on(&p)); /* nobody works: full speed */
    assert_int_equal(zdm_pacer_delay(&p, 1000), 0);
    zdm_pacer_app_activity(&p, 1);
    assert_int_equal(zdm_pacer_delay(&p, 1000), 40);
    zdm_pacer_duty(&p, 50);
    assert_int_equal(zdm_pacer_delay(&p, 1000), 10);
    zdm_pacer_duty(&p, 100);
    assert_false(zdm_pacer_duty_on(&p));
    zdm_pacer_duty(&p, 0); /* clamped to 1 */
    assert_int_equal(zdm_pacer_delay(&p, 1000), 990);
    zdm_pacer_duty(&p, 20);
    for (int i = 0; i < ZDM_PACER_APP_QUIET; i++)
        zdm_pacer_app_activity(&p, 0);
    assert_false(zdm_pacer_duty_on(&p));
    zdm_pacer_concurrent(&p, 0, 0); /* the probe's connection failed: nothing known any more */
    assert_true(zdm_pacer_duty_on(&p));
    zdm_pacer_latency(&p, 0, 100, 0);
    assert_int_equal(zdm_pacer_delay(&p, 1000), 0);
    zdm_pacer_latency(&p, 150, 100, 1); /* one writer: the lock's share instead */
    assert_false(zdm_pacer_duty_on(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_clamps),
        cmocka_unit_test(test_growth_is_capped),
        cmocka_unit_test(test_unpaced_growth_is_quick),
        cmocka_unit_test(test_slow_batch_cuts_at_once),
        cmocka_unit_test(test_cost_model_separates_fixed_cost),
        cmocka_unit_test(test_fixed_cost_grows_the_batch),
        cmocka_unit_test(test_max_lock_ms_bounds_batches),
        cmocka_unit_test(test_latency_over_bound_backs_off),
        cmocka_unit_test(test_slower_server_becomes_the_baseline),
        cmocka_unit_test(test_blocked_sessions_back_off),
        cmocka_unit_test(test_latency_bound_floor_and_off),
        cmocka_unit_test(test_single_writer_leaves_lock_free),
        cmocka_unit_test(test_waiter_follows_busy_handler),
        cmocka_unit_test(test_single_writer_alone_takes_turns),
        cmocka_unit_test(test_probe_seen_steers_nothing),
        cmocka_unit_test(test_single_writer_batch_size),
        cmocka_unit_test(test_converges_without_oscillating),
        cmocka_unit_test(test_short_batches_do_not_steer),
        cmocka_unit_test(test_fixed_size_when_no_target),
        cmocka_unit_test(test_rate_limit_spaces_batches),
        cmocka_unit_test(test_sleep_between_batches),
        cmocka_unit_test(test_concurrent_samples_back_off_and_recover),
        cmocka_unit_test(test_concurrent_samples_thresholds),
        cmocka_unit_test(test_concurrent_rebaselines),
        cmocka_unit_test(test_concurrent_idle_slowness_is_the_servers),
        cmocka_unit_test(test_concurrent_row_lock_share),
        cmocka_unit_test(test_concurrent_backoff_keeps_fixed_cost_floor),
        cmocka_unit_test(test_busy_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
