/*
 * pacer.h -- batch sizing and rate limiting for the backfill, pure
 * arithmetic with no I/O so it can be unit-tested.
 *
 * Sizing aims the 90th percentile of recent batch durations at
 * target_batch_ms.  It grows by at most x1.5 per decision, shrinks in
 * proportion, cuts by 4 at once when one batch takes over 5x the target,
 * and waits for a few fresh samples after every change, so it settles
 * instead of oscillating.  The rate limit spaces batches so rows/s never
 * exceeds max_rows_per_second over any window longer than one batch.
 */
#ifndef ZDM_PACER_H
#define ZDM_PACER_H

#include <stdint.h>

#define ZDM_PACER_WINDOW 8

typedef struct zdm_pacer {
    int64_t size;                 /* rows for the next batch */
    int64_t min_size, max_size;
    int64_t target_ms;            /* 0: fixed size */
    int64_t max_rows_per_second;  /* 0: unlimited */
    int64_t sleep_ms;             /* fixed pause between batches */
    int64_t samples[ZDM_PACER_WINDOW];
    int nsamples;                 /* since the last size change */
    int64_t next_allowed_ms;      /* rate limit: earliest start of the next batch */
} zdm_pacer;

void zdm_pacer_init(zdm_pacer *p, int64_t start_size, int64_t min_size, int64_t max_size,
                    int64_t target_ms, int64_t max_rows_per_second, int64_t sleep_ms);
/* Applies live setting changes without losing the learned size. */
void zdm_pacer_update(zdm_pacer *p, int64_t min_size, int64_t max_size, int64_t target_ms,
                      int64_t max_rows_per_second, int64_t sleep_ms);
/* Records a finished batch of `rows` that took `ms`, ending at `now_ms`. */
void zdm_pacer_record(zdm_pacer *p, int64_t rows, int64_t ms, int64_t now_ms);
/* Milliseconds to wait before the next batch may start. */
int64_t zdm_pacer_delay(const zdm_pacer *p, int64_t now_ms);

#endif
