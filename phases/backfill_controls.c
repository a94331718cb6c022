/*
 * backfill_controls.c -- the operator's live controls of a backfill.
 *
 * Owns: zdm pause/resume, zdm set (merged in one transaction with the
 * settings row locked, refused when the effective settings would not
 * make sense; the keys and their values are src/live_keys.c's), the
 * overrides read back for status, their reset, and applying them to a
 * running worker (read before every batch).
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backfill_int.h"
#include "live_keys.h"

/* ---- applied to a running worker ---- */

/* `workers`: live workers of the plan; max_rows_per_second is the plan's
 * limit, so each worker takes its share. */
void zdm_bf_apply_settings(worker *w, const char *json, int workers)
{
    json_error_t je;
    json_t *o = json_loads(json ? json : "{}", 0, &je);
    if (!o)
        return;
    zdm_throttle *t = &w->th;
    long long start_size = 0;
    zdm_live_apply(&w->plan->backfill->throttle, o, t, &start_size);
    if (start_size > 0 && start_size != w->pacer.size) /* a new starting size takes effect at once */
        w->pacer.size = start_size;
    json_decref(o);
    int64_t rate = t->max_rows_per_second;
    if (rate > 0 && workers > 1)
        rate = rate / workers > 0 ? rate / workers : 1;
    zdm_pacer_update(&w->pacer, t->min_batch_size, t->max_batch_size, t->target_batch_ms, rate, t->sleep_ms);
    zdm_pacer_latency(&w->pacer, t->max_latency_pct, t->max_lock_ms, w->d->one_writer);
    zdm_pacer_duty(&w->pacer, t->max_duty_percent);
    zdm_bf_session_pacing(w);
}

/* ---- controls ---- */

int zdm_backfill_set_paused(zdm_db *db, const zdm_plan *plan, int paused, zdm_err *err)
{
    int rc = zdm_state_backfill_set_paused(db, plan->id, paused, err);
    if (rc == 0) {
        zdm_history_entry h = {plan->id, paused ? "pause" : "resume", NULL, NULL, "ok", NULL};
        rc = zdm_state_history_add(db, &h, NULL, err);
    }
    return rc;
}

static long long eff(const json_t *o, const char *key, long long plan_value)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : plan_value;
}

/* The plan's settings with the overrides in o must still make sense. */
static int check_effective(const zdm_plan *plan, const json_t *o, zdm_err *err)
{
    const zdm_throttle *t = &plan->backfill->throttle;
    long long mn = eff(o, "min_batch_size", t->min_batch_size), mx = eff(o, "max_batch_size", t->max_batch_size);
    long long bs = eff(o, "batch_size", t->batch_size);
    if (mn > mx) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "min_batch_size (%lld) would be larger than max_batch_size (%lld)", mn, mx);
        zdm_err_detail(err, "nothing was changed; set both in one command, e.g. zdm set %s min_batch_size=%lld "
                            "max_batch_size=%lld", plan->id, mx, mn);
        return ZDM_EXIT_USAGE;
    }
    if (bs < mn || bs > mx) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "batch_size (%lld) would be outside min_batch_size..max_batch_size (%lld..%lld)",
                    bs, mn, mx);
        zdm_err_detail(err, "nothing was changed; set the bounds and batch_size together");
        return ZDM_EXIT_USAGE;
    }
    return 0;
}

static int set_many_once(zdm_db *db, const zdm_plan *plan, const char *const *kv, int n, int reset,
                         zdm_err *err)
{
    /* Parse everything first: a bad value changes nothing. */
    const zdm_live_key *key;
    long long v;
    for (int i = 0; i < n; i++)
        if (zdm_live_parse(kv[i], &key, &v, err) != 0)
            return err->code;
    int rc = zdm_state_backfill_ensure(db, plan->id, err);
    if (rc != 0)
        return rc;
    /* Read, merge, write in one transaction with the row locked (SQLite:
     * BEGIN IMMEDIATE holds the write lock), so two zdm set at once never
     * lose one of the changes. */
    rc = zdm_db_begin(db, err);
    if (rc != 0)
        return rc;
    char *cur = NULL;
    rc = zdm_state_backfill_settings_lock(db, plan->id, &cur, err);
    json_t *o = NULL;
    if (rc == 0) {
        json_error_t je;
        o = reset ? NULL : json_loads(cur ? cur : "{}", 0, &je);
        if (!o)
            o = json_object();
    }
    free(cur);
    zdm_buf detail = {0};
    if (reset)
        zdm_buf_printf(&detail, "--reset");
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = zdm_live_parse(kv[i], &key, &v, err);
        if (rc == 0 && key->form == ZDM_LIVE_FACTOR)
            zdm_buf_printf(&detail, "%s%s=%g", detail.len ? " " : "", key->name, (double)v / 100.0);
        else if (rc == 0)
            zdm_buf_printf(&detail, "%s%s=%lld", detail.len ? " " : "", key->name, v);
        if (rc == 0)
            json_object_set_new(o, key->name, zdm_live_json(key, v));
    }
    if (rc == 0)
        rc = check_effective(plan, o, err);
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (rc == 0)
        rc = zdm_state_backfill_settings_put(db, plan->id, txt, err);
    if (rc == 0) {
        zdm_history_entry h = {plan->id, "set", NULL, NULL, "ok", detail.data};
        rc = zdm_state_history_add(db, &h, NULL, err);
    }
    if (rc == 0)
        rc = zdm_db_commit(db, err);
    else
        zdm_db_rollback(db);
    free(txt);
    zdm_buf_free(&detail);
    return rc;
}

/* The transaction above again while the database is busy: on SQLite a
 * commit gives the lock up after a short wait rather than hold PENDING
 * against the application's readers, so under concurrent zdm set (or a
 * busy application) one try may lose the race; it changed nothing, and a
 * later try merges into whatever the others wrote.  Bounded (about 10 s),
 * and a signal ends the wait. */
int zdm_backfill_set_many(zdm_db *db, const zdm_plan *plan, const char *const *kv, int n, int reset,
                          zdm_err *err)
{
    int64_t t0 = zdm_mono_ms(), pause = 10;
    for (;;) {
        int rc = set_many_once(db, plan, kv, n, reset, err);
        if (rc == 0 || !zdm_db_err_is_lock_timeout(err) || zdm_mono_ms() - t0 > 10000)
            return rc;
        /* jitter from the pid and the clock: concurrent sets must not retry in step */
        if (zdm_sig_sleep_ms(pause + (int64_t)(((uint64_t)zdm_mono_ms() * 31u + (uint64_t)getpid()) % (uint64_t)(pause + 1))))
            return zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "zdm set interrupted while the database was busy");
        if (pause < 400)
            pause *= 2;
        zdm_err_clear(err);
    }
}

int zdm_backfill_set(zdm_db *db, const zdm_plan *plan, const char *key, const char *value, zdm_err *err)
{
    char *kv = zdm_xasprintf("%s=%s", key, value);
    const char *one[] = {kv};
    int rc = zdm_backfill_set_many(db, plan, one, 1, 0, err);
    free(kv);
    return rc;
}

int zdm_backfill_overrides(zdm_db *db, const char *plan_id, char **json, zdm_err *err)
{
    return zdm_state_backfill_settings_get(db, plan_id, json, err);
}

int zdm_backfill_settings_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    return zdm_state_backfill_settings_reset(db, plan_id, err);
}

int zdm_backfill_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    return zdm_state_ranges_reset(db, plan_id, err);
}
