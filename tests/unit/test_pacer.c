/*
 * test_pacer.c -- batch sizing and rate limiting arithmetic.
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

static void test_slow_batch_cuts_at_once(void **state)
{
    (void)state;
    zdm_pacer p;
    zdm_pacer_init(&p, 8000, 10, 100000, 100, 0, 0);
    zdm_pacer_record(&p, 8000, 600, 600); /* 6x the target */
    assert_int_equal(p.size, 2000);
    zdm_pacer_record(&p, 2000, 501, 1200);
    assert_int_equal(p.size, 500);
    zdm_pacer_record(&p, 500, 5000, 7000);
    assert_int_equal(p.size, 125);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_clamps),
        cmocka_unit_test(test_growth_is_capped),
        cmocka_unit_test(test_slow_batch_cuts_at_once),
        cmocka_unit_test(test_converges_without_oscillating),
        cmocka_unit_test(test_short_batches_do_not_steer),
        cmocka_unit_test(test_fixed_size_when_no_target),
        cmocka_unit_test(test_rate_limit_spaces_batches),
        cmocka_unit_test(test_sleep_between_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
