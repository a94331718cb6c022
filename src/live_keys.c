/*
 * live_keys.c -- the live-setting keys (see live_keys.h).
 */
#include "live_keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(field) offsetof(zdm_throttle, field)
/* In the order zdm set's messages list them. */
static const zdm_live_key keys[] = {
    /* the maxima are the plan file's (plan.c): a sleep_ms of 31 years was
     * taken live that the file refuses */
    {"batch_size", F(batch_size), ZDM_LIVE_POSITIVE, 0},
    {"target_batch_ms", F(target_batch_ms), ZDM_LIVE_NONNEG, ZDM_THROTTLE_MS_MAX},
    {"min_batch_size", F(min_batch_size), ZDM_LIVE_POSITIVE, 0},
    {"max_batch_size", F(max_batch_size), ZDM_LIVE_POSITIVE, 0},
    {"max_rows_per_second", F(max_rows_per_second), ZDM_LIVE_NONNEG, 0},
    {"sleep_ms", F(sleep_ms), ZDM_LIVE_NONNEG, ZDM_THROTTLE_MS_MAX},
    {"max_replication_lag_ms", F(max_replication_lag_ms), ZDM_LIVE_NONNEG, 0},
    {"max_latency_factor", F(max_latency_pct), ZDM_LIVE_FACTOR, 0},
    {"max_lock_ms", F(max_lock_ms), ZDM_LIVE_NONNEG, ZDM_THROTTLE_MS_MAX},
    {"max_duty_percent", F(max_duty_percent), ZDM_LIVE_PERCENT, 0},
    {"stall_after_ms", F(stall_after_ms), ZDM_LIVE_POSITIVE, ZDM_STALL_MS_MAX},
};
#undef F
#define NKEYS (sizeof keys / sizeof keys[0])

size_t zdm_live_count(void)
{
    return NKEYS;
}

const zdm_live_key *zdm_live_at(size_t i)
{
    return i < NKEYS ? &keys[i] : NULL;
}

const zdm_live_key *zdm_live_find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int64_t *field(zdm_throttle *t, const zdm_live_key *k)
{
    return (int64_t *)(void *)((char *)t + k->field);
}

static int64_t value(const zdm_throttle *t, const zdm_live_key *k)
{
    return *(const int64_t *)(const void *)((const char *)t + k->field);
}

static void unknown_key(const char *key, zdm_err *err)
{
    const char *names[NKEYS];
    zdm_buf list = {0};
    for (size_t i = 0; i < NKEYS; i++) {
        names[i] = keys[i].name;
        zdm_buf_printf(&list, "%s%s", i ? ", " : "", keys[i].name);
    }
    const char *hint = zdm_did_you_mean(key, names, NKEYS);
    zdm_err_set(err, ZDM_EXIT_USAGE, "\"%s\" cannot be changed live%s%s%s", key, hint ? " (did you mean \"" : "",
                hint ? hint : "", hint ? "\"?)" : "");
    zdm_err_detail(err, "live settings: %s", list.data);
    zdm_buf_free(&list);
}

int zdm_live_parse(const char *kv, const zdm_live_key **key, long long *v, zdm_err *err)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "expected KEY=VALUE, got \"%s\"", kv);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv);
    const char *val = eq + 1;
    const zdm_live_key *k = *key = zdm_live_find(name);
    if (!k) {
        unknown_key(name, err);
        return ZDM_EXIT_USAGE;
    }
    char *end;
    errno = 0;
    if (k->form == ZDM_LIVE_FACTOR) {
        double f = strtod(val, &end);
        if (!*val || *end || errno || !(f == 0 || (f >= 1 && f <= 100)))
            return zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: expected 0 (off) or a number from 1 to 100, e.g. 1.5",
                               name, val);
        *v = (long long)(f * 100 + 0.5);
        return 0;
    }
    *v = strtoll(val, &end, 10);
    if (k->form == ZDM_LIVE_PERCENT) {
        if (!*val || *end || errno || *v < 1 || *v > 100)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: expected an integer from 1 to 100", name, val);
        return 0;
    }
    int positive = k->form == ZDM_LIVE_POSITIVE;
    if (!*val || *end || errno || *v < 0 || (*v == 0 && positive))
        return zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: expected a %s integer", name, val,
                           positive ? "positive" : "non-negative");
    if (k->max && *v > k->max)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "%s=%s: at most %lld, as in the plan file", name, val,
                           (long long)k->max);
    return 0;
}

json_t *zdm_live_json(const zdm_live_key *k, long long v)
{
    return k->form == ZDM_LIVE_FACTOR ? json_real((double)v / 100.0) : json_integer(v);
}

void zdm_live_apply(const zdm_throttle *plan, const json_t *ov, zdm_throttle *t, long long *start_size)
{
    *t = *plan;
    *start_size = 0;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)ov, name, v) {
        const zdm_live_key *k = zdm_live_find(name);
        if (!k)
            continue;
        long long n = json_is_integer(v) ? json_integer_value(v) : 0;
        if (k->form == ZDM_LIVE_FACTOR) {
            if (json_is_number(v))
                *field(t, k) = (int64_t)(json_number_value(v) * 100 + 0.5);
        } else if (k->field == offsetof(zdm_throttle, batch_size)) {
            *start_size = n; /* a new starting size: the worker's next batch */
        } else {
            *field(t, k) = n;
        }
    }
}

json_t *zdm_live_effective(const zdm_throttle *plan, const json_t *ov)
{
    json_t *o = json_object();
    /* the integers first, then the factors: the order status has always had */
    for (int factors = 0; factors < 2; factors++)
        for (size_t i = 0; i < NKEYS; i++) {
            const zdm_live_key *k = &keys[i];
            if ((k->form == ZDM_LIVE_FACTOR) != factors)
                continue;
            json_t *v = json_object_get(ov, k->name);
            if (!factors)
                json_object_set_new(o, k->name, json_is_integer(v) ? json_copy(v) : json_integer(value(plan, k)));
            else
                json_object_set_new(o, k->name, json_is_number(v) ? json_real(json_number_value(v))
                                                                  : json_real((double)value(plan, k) / 100.0));
        }
    return o;
}

void zdm_live_text(const char *name, const json_t *v, char *buf, size_t size)
{
    const zdm_live_key *k = zdm_live_find(name);
    if (k && k->form == ZDM_LIVE_FACTOR && json_is_number(v))
        snprintf(buf, size, "%g", json_number_value(v));
    else
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
}

void zdm_live_print_overrides(FILE *f, const char *lead, const json_t *ov, const char *plan_id)
{
    if (!ov || !json_object_size(ov))
        return;
    const char *k;
    json_t *v;
    fputs(lead, f);
    json_object_foreach((json_t *)ov, k, v) {
        char text[64];
        zdm_live_text(k, v, text, sizeof text);
        fprintf(f, " %s=%s", k, text);
    }
    fprintf(f, " (zdm set %s --reset drops them)\n", plan_id);
}
