/*
 * test_state_rate.c -- the workers' rates zdm status adds up
 * (zdm_state_worker_rate, zdm_state_workers_rate): rows of
 * zdm_state_ranges_workers' shape (owner, range_id, rows_done,
 * heartbeat_ms, throttle, last_batch_ms, rate_rows, rate_ms), built here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "state_ranges.h"

/* One worker's row: rate_rows / rate_ms NULL when rows < 0. */
static void add(zdm_rows *r, const char *owner, int64_t heartbeat, int64_t rows, int64_t ms)
{
    char hb[32], rr[32], rm[32];
    snprintf(hb, sizeof hb, "%lld", (long long)heartbeat);
    snprintf(rr, sizeof rr, "%lld", (long long)rows);
    snprintf(rm, sizeof rm, "%lld", (long long)ms);
    const char *v[8] = {owner, "0", "0", hb, NULL, hb, rows < 0 ? NULL : rr, rows < 0 ? NULL : rm};
    assert_int_equal(zdm_rows_add(r, v), 0);
}

static void test_unknown(void **state)
{
    (void)state;
    zdm_rows *r = zdm_rows_new(8);
    add(r, "a", 1000, -1, 0);  /* held, or before two batches */
    add(r, "b", 1000, 500, 0); /* a window of no time */
    add(r, "c", 1000, -5, 100);
    double rate = 42;
    for (int i = 0; i < 3; i++)
        assert_int_equal(zdm_state_worker_rate(r, i, 1000, &rate), 0);
    assert_int_equal(zdm_state_workers_rate(r, 1000, &rate), 0);
    assert_true(rate == 0);
    zdm_rows_free(r);
    /* no live worker at all */
    zdm_rows *none = zdm_rows_new(8);
    assert_int_equal(zdm_state_workers_rate(none, 1000, &rate), 0);
    zdm_rows_free(none);
}

/* Within the window's own length after it ended, the window's rate; past
 * it, the rows over the time since: continuous, never rising as the
 * worker stays silent, and toward 0. */
static void test_window_then_fading(void **state)
{
    (void)state;
    zdm_rows *r = zdm_rows_new(8);
    add(r, "a", 100000, 3000, 1500); /* 2000 rows/s over 1.5 s */
    double rate, prev = 1e18;
    for (int64_t since = 0; since <= 60000; since += 50) {
        assert_int_equal(zdm_state_worker_rate(r, 0, 100000 + since, &rate), 1);
        if (since <= 1500)
            assert_true(rate > 1999.999 && rate < 2000.001);
        else
            assert_true(rate > 3000.0 * 1000.0 / (double)since - 0.001 &&
                        rate < 3000.0 * 1000.0 / (double)since + 0.001);
        assert_true(rate <= prev + 1e-9);
        prev = rate;
    }
    assert_true(prev < 51); /* a minute without a batch: 3000 rows / 60 s */
    /* a clock behind the writer's: the window's rate, not more */
    assert_int_equal(zdm_state_worker_rate(r, 0, 99000, &rate), 1);
    assert_true(rate > 1999.999 && rate < 2000.001);
    zdm_rows_free(r);
}

/* Every worker counts once (its newest row), the known ones add up. */
static void test_sum_of_workers(void **state)
{
    (void)state;
    zdm_rows *r = zdm_rows_new(8);
    add(r, "a", 5000, 1000, 1000); /* 1000/s, older row of a */
    add(r, "a", 6000, 3000, 1000); /* 3000/s, a's newest */
    add(r, "b", 6000, 500, 1000);  /* 500/s */
    add(r, "c", 6000, -1, 0);      /* held: not known, adds nothing */
    double rate = 0;
    assert_int_equal(zdm_state_workers_rate(r, 6000, &rate), 1);
    assert_true(rate > 3499.999 && rate < 3500.001);
    zdm_rows_free(r);
    /* the same heartbeat twice: one of them, not both */
    r = zdm_rows_new(8);
    add(r, "a", 6000, 1000, 1000);
    add(r, "a", 6000, 1000, 1000);
    assert_int_equal(zdm_state_workers_rate(r, 6000, &rate), 1);
    assert_true(rate > 999.999 && rate < 1000.001);
    zdm_rows_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_window_then_fading),
        cmocka_unit_test(test_sum_of_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
