/*
 * backfill_controls.c -- the operator's live controls of a backfill.
 *
 * Owns: zdm pause/resume, zdm set (the live-setting keys, their parsing
 * and the check that the effective settings still make sense, merged in
 * one transaction with the settings row locked), the overrides read back
 * for status, their reset, and applying them to a running worker (read
 * before every batch).
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>

#include "backfill_int.h"

/* ---- controls and health ---- */


/* `workers`: live workers of the plan; max_rows_per_second is the plan's
 * limit, so each worker takes its share. */
void zdm_bf_apply_settings(worker *w, const char *json, int workers)
{
    json_error_t je;
    json_t *o = json_loads(json ? json : "{}", 0, &je);
    if (!o)
        return;
    const char *k;
    json_t *v;
    zdm_throttle *t = &w->th;
    *t = w->plan->backfill->throttle;
    t->pause_query = w->plan->backfill->throttle.pause_query;
    json_object_foreach(o, k, v)
    {
        long long n = json_is_integer(v) ? json_integer_value(v) : 0;
        if (strcmp(k, "batch_size") == 0) {
            /* a new starting size takes effect at once */
            if (n > 0 && n != w->pacer.size)
                w->pacer.size = n;
        } else if (strcmp(k, "target_batch_ms") == 0)
            t->target_batch_ms = n;
        else if (strcmp(k, "min_batch_size") == 0)
            t->min_batch_size = n;
        else if (strcmp(k, "max_batch_size") == 0)
            t->max_batch_size = n;
        else if (strcmp(k, "max_rows_per_second") == 0)
            t->max_rows_per_second = n;
        else if (strcmp(k, "sleep_ms") == 0)
            t->sleep_ms = n;
        else if (strcmp(k, "max_replication_lag_ms") == 0)
            t->max_replication_lag_ms = n;
        else if (strcmp(k, "max_latency_factor") == 0 && json_is_number(v))
            t->max_latency_pct = (int64_t)(json_number_value(v) * 100 + 0.5);
        else if (strcmp(k, "max_lock_ms") == 0)
            t->max_lock_ms = n;
    }
    json_decref(o);
    int64_t rate = t->max_rows_per_second;
    if (rate > 0 && workers > 1)
        rate = rate / workers > 0 ? rate / workers : 1;
    zdm_pacer_update(&w->pacer, t->min_batch_size, t->max_batch_size, t->target_batch_ms, rate, t->sleep_ms);
    zdm_pacer_latency(&w->pacer, t->max_latency_pct, t->max_lock_ms, !w->pg);
}

/* ---- controls ---- */

static int ensure_row(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT INTO %s (plan_id, key_cols, started_ms) VALUES ($1, '', 0) "
                              "ON CONFLICT (plan_id) DO NOTHING", zdm_state_table(db, "backfills"));
    const char *p[] = {plan_id};
    return zdm_db_query(db, sql, 1, p, NULL, err);
}

int zdm_backfill_set_paused(zdm_db *db, const zdm_plan *plan, int paused, zdm_err *err)
{
    int rc = ensure_row(db, plan->id, err);
    if (rc != 0)
        return rc;
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE %s SET paused = $2 WHERE plan_id = $1", zdm_state_table(db, "backfills"));
    const char *p[] = {plan->id, paused ? "1" : "0"};
    rc = zdm_db_query(db, sql, 2, p, NULL, err);
    if (rc == 0) {
        zdm_history_entry h = {plan->id, paused ? "pause" : "resume", NULL, NULL, "ok", NULL};
        rc = zdm_state_history_add(db, &h, NULL, err);
    }
    return rc;
}

static const char *const live_keys[] = {"batch_size", "target_batch_ms", "min_batch_size", "max_batch_size",
                                        "max_rows_per_second", "sleep_ms", "max_replication_lag_ms",
                                        "max_latency_factor", "max_lock_ms"};
#define NLIVE (sizeof live_keys / sizeof live_keys[0])

static int parse_setting(const char *kv, char *key, size_t ksize, long long *v, zdm_err *err)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "expected KEY=VALUE, got \"%s\"", kv);
    snprintf(key, ksize, "%.*s", (int)(eq - kv), kv);
    const char *value = eq + 1;
    int known = 0;
    for (size_t i = 0; i < NLIVE; i++)
        known |= strcmp(live_keys[i], key) == 0;
    if (!known) {
        const char *hint = zdm_did_you_mean(key, live_keys, NLIVE);
        zdm_err_set(err, ZDM_EXIT_USAGE, "\"%s\" cannot be changed live%s%s%s", key,
                    hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
        zdm_err_detail(err, "live settings: batch_size, target_batch_ms, min_batch_size, max_batch_size, "
                            "max_rows_per_second, sleep_ms, max_replication_lag_ms, max_latency_factor, "
                            "max_lock_ms");
        return ZDM_EXIT_USAGE;
    }
    char *end;
    errno = 0;
    if (strcmp(key, "max_latency_factor") == 0) {
        /* a factor: 0 (no latency pacing) or 1..100, kept x 100 */
        double f = strtod(value, &end);
        if (!*value || *end || errno || !(f == 0 || (f >= 1 && f <= 100))) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: expected 0 (off) or a number from 1 to 100, e.g. 1.5", key,
                        value);
            return ZDM_EXIT_USAGE;
        }
        *v = (long long)(f * 100 + 0.5);
        return 0;
    }
    *v = strtoll(value, &end, 10);
    if (!*value || *end || errno || *v < 0 || (*v == 0 && strstr(key, "batch_size"))) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: expected a %s integer", key, value,
                    strstr(key, "batch_size") ? "positive" : "non-negative");
        return ZDM_EXIT_USAGE;
    }
    return 0;
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
    char key[64];
    long long v;
    for (int i = 0; i < n; i++)
        if (parse_setting(kv[i], key, sizeof key, &v, err) != 0)
            return err->code;
    int rc = ensure_row(db, plan->id, err);
    if (rc != 0)
        return rc;
    /* Read, merge, write in one transaction with the row locked (SQLite:
     * BEGIN IMMEDIATE holds the write lock), so two zdm set at once never
     * lose one of the changes. */
    rc = zdm_db_begin(db, err);
    if (rc != 0)
        return rc;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT settings FROM %s WHERE plan_id = $1%s", zdm_state_table(db, "backfills"),
             zdm_db_kind_of(db) == ZDM_DB_PG ? " FOR UPDATE" : "");
    const char *p[] = {plan->id};
    char *cur = NULL;
    rc = zdm_db_query_value(db, sql, 1, p, &cur, err);
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
        rc = parse_setting(kv[i], key, sizeof key, &v, err);
        if (rc == 0 && strcmp(key, "max_latency_factor") == 0) {
            json_object_set_new(o, key, json_real((double)v / 100.0));
            zdm_buf_printf(&detail, "%s%s=%g", detail.len ? " " : "", key, (double)v / 100.0);
        } else if (rc == 0) {
            json_object_set_new(o, key, json_integer(v));
            zdm_buf_printf(&detail, "%s%s=%lld", detail.len ? " " : "", key, v);
        }
    }
    if (rc == 0)
        rc = check_effective(plan, o, err);
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (rc == 0) {
        snprintf(sql, sizeof sql, "UPDATE %s SET settings = $2 WHERE plan_id = $1", zdm_state_table(db, "backfills"));
        const char *pu[] = {plan->id, txt};
        rc = zdm_db_query(db, sql, 2, pu, NULL, err);
    }
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
    *json = NULL;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT settings FROM %s WHERE plan_id = $1", zdm_state_table(db, "backfills"));
    const char *p[] = {plan_id};
    int rc = zdm_db_query_value(db, sql, 1, p, json, err);
    if (rc == 0 && !*json)
        *json = zdm_xstrdup("{}");
    return rc;
}

int zdm_backfill_settings_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    const char *p[] = {plan_id};
    snprintf(sql, sizeof sql, "UPDATE %s SET settings = '{}' WHERE plan_id = $1", zdm_state_table(db, "backfills"));
    return zdm_db_query(db, sql, 1, p, NULL, err);
}

int zdm_backfill_reset(zdm_db *db, const char *plan_id, zdm_err *err)
{
    char sql[200];
    const char *p[] = {plan_id};
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE plan_id = $1", zdm_state_table(db, "ranges"));
    int rc = zdm_db_query(db, sql, 1, p, NULL, err);
    if (rc == 0) {
        /* keep operator settings and pause; forget the split */
        snprintf(sql, sizeof sql, "UPDATE %s SET started_ms = 0, finished_ms = NULL, key_cols = '', bound = NULL, "
                                  "total_est = 0 WHERE plan_id = $1", zdm_state_table(db, "backfills"));
        rc = zdm_db_query(db, sql, 1, p, NULL, err);
    }
    return rc;
}
