/*
 * test_transition.c -- the one transition function and the phase table
 * (lifecycle.c), against a real SQLite file: cutover moves backfilled ->
 * cut_over and nothing else, from any phase; rollback refuses a cut_over
 * plan without --force and a plan an applied plan requires, and forgets
 * the step records of what it undid.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "lifecycle.h"
#include "plan.h"
#include "state.h"
#include "util.h"

typedef struct fixture {
    tmpdir dir;
    zdm_plan_set set;
    zdm_db *db;
    FILE *out;
    zdm_life_opts o;
} fixture;

static const char plan_a[] = "[[expand.steps]]\n"
                             "sql = \"CREATE TABLE ta (id integer)\"\n"
                             "down = \"DROP TABLE ta\"\n"
                             "[[contract.steps]]\n"
                             "sql = \"CREATE TABLE marks_a (x integer)\"\n"
                             "down = \"DROP TABLE marks_a\"\n";
static const char plan_b[] = "requires = [\"a\"]\n"
                             "[[expand.steps]]\n"
                             "sql = \"ALTER TABLE ta ADD COLUMN w integer\"\n"
                             "down = \"ALTER TABLE ta DROP COLUMN w\"\n";

static int setup(void **state)
{
    fixture *f = zdm_xcalloc(1, sizeof *f);
    tmp_make(&f->dir);
    /* the plans and the database file side by side (tmp_rm removes one level) */
    char *plans = zdm_xstrdup(f->dir.path);
    tmp_write(&f->dir, "a.toml", plan_a);
    tmp_write(&f->dir, "b.toml", plan_b);
    const char *paths[] = {plans};
    zdm_diags d = {0};
    assert_int_equal(zdm_plan_set_load(paths, 1, &f->set, &d), 0);
    zdm_diags_free(&d);
    free(plans);
    char *url = zdm_xasprintf("sqlite:%s/app.db", f->dir.path);
    zdm_err err;
    zdm_err_clear(&err);
    assert_int_equal(zdm_db_open(url, &f->db, &err), 0);
    free(url);
    f->out = fopen("/dev/null", "w");
    assert_non_null(f->out);
    zdm_life_opts o = {0, 1, f->out, NULL, NULL, 0, NULL, 0};
    f->o = o;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    zdm_db_close(f->db);
    fclose(f->out);
    zdm_plan_set_free(&f->set);
    tmp_rm(&f->dir);
    free(f);
    return 0;
}

static zdm_phase phase_of(fixture *f, const char *id)
{
    zdm_plan_state st;
    zdm_err err;
    zdm_err_clear(&err);
    assert_int_equal(zdm_state_get(f->db, id, &st, &err), 0);
    return st.known ? st.phase : ZDM_PENDING;
}

static int advance(fixture *f, const char *id)
{
    zdm_err err;
    zdm_err_clear(&err);
    return zdm_life_advance(f->db, &f->set, zdm_plan_set_find(&f->set, id), &f->o, &err);
}

static int cutover(fixture *f, const char *id)
{
    zdm_err err;
    zdm_err_clear(&err);
    return zdm_life_cutover(f->db, &f->set, zdm_plan_set_find(&f->set, id), &f->o, &err);
}

static int rollback(fixture *f, const char *id, int force, zdm_err *err)
{
    zdm_err_clear(err);
    f->o.force = force;
    int rc = zdm_life_rollback(f->db, &f->set, zdm_plan_set_find(&f->set, id), &f->o, err);
    f->o.force = 0;
    return rc;
}

/* From every phase but backfilled, cutover is refused and changes nothing. */
static void test_cutover_only_from_backfilled(void **state)
{
    fixture *f = *state;
    assert_int_equal(cutover(f, "a"), ZDM_EXIT_REFUSED);
    assert_int_equal(phase_of(f, "a"), ZDM_PENDING);
    assert_int_equal(advance(f, "a"), 0);
    assert_int_equal(phase_of(f, "a"), ZDM_EXPANDED);
    assert_int_equal(cutover(f, "a"), ZDM_EXIT_REFUSED);
    assert_int_equal(phase_of(f, "a"), ZDM_EXPANDED);
    assert_int_equal(advance(f, "a"), 0);
    assert_int_equal(phase_of(f, "a"), ZDM_BACKFILLED);
    assert_int_equal(cutover(f, "a"), 0);
    assert_int_equal(phase_of(f, "a"), ZDM_CUT_OVER);
    /* the bug this guards against: a second cutover went on to contract */
    assert_int_equal(cutover(f, "a"), ZDM_EXIT_REFUSED);
    assert_int_equal(phase_of(f, "a"), ZDM_CUT_OVER);
    assert_int_equal(advance(f, "a"), 0);
    assert_int_equal(phase_of(f, "a"), ZDM_COMPLETE);
    assert_int_equal(cutover(f, "a"), ZDM_EXIT_REFUSED);
    assert_int_equal(phase_of(f, "a"), ZDM_COMPLETE);
}

static void test_rollback_rules(void **state)
{
    fixture *f = *state;
    zdm_err err;
    for (int i = 0; i < 4; i++)
        assert_int_equal(advance(f, "a"), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(advance(f, "b"), 0);
    /* b requires a and is applied: a cannot go, --force or not */
    assert_int_equal(rollback(f, "a", 0, &err), ZDM_EXIT_REFUSED);
    assert_non_null(strstr(err.msg, "applied plans require it: b (complete)"));
    assert_int_equal(rollback(f, "a", 1, &err), ZDM_EXIT_REFUSED);
    assert_int_equal(phase_of(f, "a"), ZDM_COMPLETE);
    /* b: contract undone, then cut_over needs --force */
    assert_int_equal(rollback(f, "b", 0, &err), 0);
    assert_int_equal(phase_of(f, "b"), ZDM_CUT_OVER);
    assert_int_equal(rollback(f, "b", 0, &err), ZDM_EXIT_REFUSED);
    assert_non_null(strstr(err.msg, "it is cut_over"));
    assert_int_equal(phase_of(f, "b"), ZDM_CUT_OVER);
    assert_int_equal(rollback(f, "b", 1, &err), 0);
    assert_int_equal(phase_of(f, "b"), ZDM_ROLLED_BACK);
    int n = -1;
    zdm_err_clear(&err);
    assert_int_equal(zdm_state_steps_applied(f->db, "b", &n, &err), 0);
    assert_int_equal(n, 0); /* the undone steps' records are gone */
    /* now a may go: its contract first */
    assert_int_equal(rollback(f, "a", 0, &err), 0);
    assert_int_equal(phase_of(f, "a"), ZDM_CUT_OVER);
    zdm_err_clear(&err);
    assert_int_equal(zdm_state_steps_applied(f->db, "a", &n, &err), 0);
    assert_int_equal(n, 1); /* expand's step; contract's record forgotten */
    /* and it contracts again, running its contract step again */
    assert_int_equal(advance(f, "a"), 0);
    assert_int_equal(phase_of(f, "a"), ZDM_COMPLETE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cutover_only_from_backfilled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
