/*
 * live_keys.h -- the live-setting keys: the throttle settings `zdm set`
 * changes while workers run.
 *
 * Owns: the one list of them (name, the zdm_throttle field, the form of
 * the value), read by zdm set (which keys, which values), by the workers
 * (overrides applied before every batch), by status and plan show (the
 * effective settings and the overrides); test_cli checks `zdm help set`
 * names each.  Overrides are stored as a JSON object: integers, and
 * max_latency_factor as a number (the throttle keeps it x 100).
 */
#ifndef ZDM_LIVE_KEYS_H
#define ZDM_LIVE_KEYS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"
#include "plan_model.h"

typedef enum zdm_live_form {
    ZDM_LIVE_POSITIVE, /* an integer above 0 (batch sizes) */
    ZDM_LIVE_NONNEG,   /* an integer, 0 or more */
    ZDM_LIVE_FACTOR,   /* 0 (off) or a number from 1 to 100; the field keeps it x 100 */
    ZDM_LIVE_PERCENT,  /* an integer from 1 to 100 */
} zdm_live_form;

typedef struct zdm_live_key {
    const char *name;
    size_t field; /* offsetof(zdm_throttle, ...), an int64_t */
    zdm_live_form form;
    int64_t max;  /* the largest value, as the plan file takes it; 0: none */
} zdm_live_key;

size_t zdm_live_count(void);
const zdm_live_key *zdm_live_at(size_t i);
/* NULL for a key that cannot be changed live. */
const zdm_live_key *zdm_live_find(const char *name);

/* "KEY=VALUE" of zdm set, checked: an unknown key is refused with a
 * did-you-mean and the list, a bad value with its expected form (exit 2).
 * *v: the value as the field keeps it (a factor x 100). */
int zdm_live_parse(const char *kv, const zdm_live_key **key, long long *v, zdm_err *err) ZDM_MUST_CHECK;
/* The override as stored (a factor as a number). */
json_t *zdm_live_json(const zdm_live_key *k, long long v);

/* The plan's throttle `plan` with the overrides in ov (a JSON object, may
 * be NULL) applied to *t; *start_size gets an overridden batch_size (the
 * worker's next size), 0 when none. */
void zdm_live_apply(const zdm_throttle *plan, const json_t *ov, zdm_throttle *t, long long *start_size);
/* The effective settings as JSON (what workers use): every live key with
 * its override or the plan's value. */
json_t *zdm_live_effective(const zdm_throttle *plan, const json_t *ov);
/* One override as text ("1.5", "5000"), for status and plan show. */
void zdm_live_text(const char *name, const json_t *v, char *buf, size_t size);
/* The overrides line of status and plan show: `lead`, then " key=value"
 * for each, then how to drop them; nothing when ov holds none. */
void zdm_live_print_overrides(FILE *f, const char *lead, const json_t *ov, const char *plan_id);

#endif
