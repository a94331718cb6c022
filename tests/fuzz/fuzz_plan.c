/*
 * fuzz_plan.c -- libFuzzer target for plan loading and validation.
 *
 * Feeds the input to zdm_plan_load_buffer and frees whatever it returns.
 * Checks the contract of the loader: on success a plan and no messages; on
 * failure no plan, ZDM_EXIT_USAGE, and at least one message, each starting
 * with the file name.  A valid plan is walked (every step, hook and
 * assignment read) so that a dangling pointer shows up under ASan.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

static size_t walk_steps(const zdm_step *s, size_t n)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        check(s[i].index == (int)i + 1);
        sum += touch(s[i].name) + touch(s[i].op);
        for (int d = 1; d <= 2; d++) {
            const char *sql = zdm_step_sql(&s[i], d);
            sum += touch(sql) + touch(zdm_step_down(&s[i], d));
            sum += (size_t)zdm_step_in_transaction(&s[i], sql);
        }
        check(s[i].op || s[i].sql || s[i].sql_for[0] || s[i].sql_for[1]);
        check(s[i].fields && s[i].fields->type == TOML_TABLE);
    }
    return sum;
}

static void walk(const zdm_plan *p)
{
    size_t sum = touch(p->id) + touch(p->path) + touch(p->dir) + touch(p->description);
    check(strlen(p->checksum) == 64);
    for (size_t i = 0; i < p->requires.n; i++)
        sum += touch(p->requires.v[i]) + (size_t)p->requires_line[i];
    sum += walk_steps(p->expand, p->nexpand) + walk_steps(p->contract, p->ncontract);
    check(p->nexpand || p->ncontract || p->backfill);
    if (p->backfill) {
        const zdm_backfill *b = p->backfill;
        sum += touch(b->table) + touch(b->where) + touch(b->throttle.pause_query);
        for (size_t i = 0; i < b->nset; i++)
            sum += touch(b->set[i].column) + touch(b->set[i].expr);
        for (size_t i = 0; i < b->nreverse; i++)
            sum += touch(b->reverse[i].column) + touch(b->reverse[i].expr);
        check(b->throttle.min_batch_size <= b->throttle.max_batch_size);
    }
    for (int e = 0; e < ZDM_HOOK__COUNT; e++)
        for (size_t i = 0; i < p->hooks.n[e]; i++) {
            check(p->hooks.cmds[e][i].argv.n > 0);
            for (size_t k = 0; k < p->hooks.cmds[e][i].argv.n; k++)
                sum += touch(p->hooks.cmds[e][i].argv.v[k]);
        }
    for (size_t i = 0; i < p->nallow; i++)
        sum += touch(p->allow[i].rule) + touch(p->allow[i].reason);
    check(sum < SIZE_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zdm_plan *p = (zdm_plan *)&p; /* must be reset to NULL on failure */
    zdm_diags d = {0};
    int rc = zdm_plan_load_buffer("plans/fuzz.toml", (const char *)data, size, &p, &d);
    if (rc == 0) {
        check(p != NULL && d.msgs.n == 0);
        walk(p);
    } else {
        check(p == NULL && rc == ZDM_EXIT_USAGE && d.msgs.n > 0);
        for (size_t i = 0; i < d.msgs.n; i++)
            check(strncmp(d.msgs.v[i], "plans/fuzz.toml:", 16) == 0);
    }
    zdm_plan_free(p);
    zdm_diags_free(&d);
    return 0;
}
