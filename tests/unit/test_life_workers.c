/*
 * test_life_workers.c -- zdm backfill --workers N's supervisor
 * (life_workers.c): the one exit code the parent reports for N workers
 * (0 only when all exited 0; else the worst, a worker killed by a signal
 * counting as a failure), and each worker's --listen address.  The
 * workers here are forked children that exit at once with a given code
 * or kill themselves; the real ones are in it.test_backfill_workers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lifecycle.h"

/* Forks n workers; worker i (1-based) ends as codes[i - 1] says: 0..255
 * an exit code, -SIG killed by SIG.  Returns the parent's code. */
static int run_workers(int n, const int *codes, zdm_err *err)
{
    zdm_life_workers w;
    int index = 0;
    zdm_err_clear(err);
    assert_int_equal(zdm_life_workers_fork(&w, n, &index, err), 0);
    if (index > 0) { /* a worker: never returns into the test runner */
        int c = codes[index - 1];
        if (c < 0)
            raise(-c);
        _exit(c < 0 ? 99 : c);
    }
    assert_int_equal(w.started, n);
    return zdm_life_workers_wait(&w, err);
}

static void test_exit_code_rule(void **state)
{
    (void)state;
    zdm_err err;
    static const struct {
        int n, codes[4], want;
    } cases[] = {
        {1, {0}, 0},
        {3, {0, 0, 0}, 0},
        {3, {0, 4, 0}, ZDM_EXIT_INTERRUPTED},
        {3, {4, 3, 4}, ZDM_EXIT_REFUSED},
        {3, {3, 2, 4}, ZDM_EXIT_USAGE},
        {3, {2, 5, 0}, 5},
        {3, {5, 1, 4}, ZDM_EXIT_FAIL},
        {4, {0, 4, -SIGKILL, 4}, ZDM_EXIT_FAIL}, /* killed: a failure, never success */
        {2, {0, -SIGKILL}, ZDM_EXIT_FAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run_workers(cases[i].n, cases[i].codes, &err);
        if (rc != cases[i].want)
            fail_msg("case %zu: exit %d, want %d (%s)", i, rc, cases[i].want, err.msg);
        if (rc != 0)
            assert_non_null(strstr(err.msg, "backfill workers did not finish"));
    }
    int killed[] = {0, -SIGKILL, 0};
    assert_int_equal(run_workers(3, killed, &err), ZDM_EXIT_FAIL);
    assert_non_null(strstr(err.msg, "1 of 3 backfill workers did not finish: worker 2/3 killed by signal 9"));
}

static void test_listen_per_worker(void **state)
{
    (void)state;
    zdm_err err;
    char out[300];
    static const struct {
        const char *listen;
        int index;
        const char *want;
    } ok[] = {
        {"9187", 1, "9187"},
        {"9187", 3, "9189"},
        {"0.0.0.0:9187", 2, "0.0.0.0:9188"},
        {"[::1]:9187", 4, "[::1]:9190"},
        {"65535", 1, "65535"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        zdm_err_clear(&err);
        assert_int_equal(zdm_life_worker_listen(ok[i].listen, ok[i].index, out, sizeof out, &err), 0);
        assert_string_equal(out, ok[i].want);
    }
    zdm_err_clear(&err);
    assert_int_equal(zdm_life_worker_listen("65535", 2, out, sizeof out, &err), ZDM_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "port 65536 is past 65535"));
    zdm_err_clear(&err);
    assert_int_equal(zdm_life_worker_listen("[::1]:65000", 537, out, sizeof out, &err), ZDM_EXIT_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_code_rule),
        cmocka_unit_test(test_listen_per_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
