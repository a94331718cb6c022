/*
 * pacer.c -- see pacer.h.
 */
#include "pacer.h"

#include <stdlib.h>

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void zdm_pacer_init(zdm_pacer *p, int64_t start_size, int64_t min_size, int64_t max_size,
                    int64_t target_ms, int64_t max_rows_per_second, int64_t sleep_ms)
{
    p->size = start_size;
    p->nsamples = 0;
    p->next_allowed_ms = 0;
    zdm_pacer_update(p, min_size, max_size, target_ms, max_rows_per_second, sleep_ms);
}

void zdm_pacer_update(zdm_pacer *p, int64_t min_size, int64_t max_size, int64_t target_ms,
                      int64_t max_rows_per_second, int64_t sleep_ms)
{
    p->min_size = min_size < 1 ? 1 : min_size;
    p->max_size = max_size < p->min_size ? p->min_size : max_size;
    p->target_ms = target_ms < 0 ? 0 : target_ms;
    p->max_rows_per_second = max_rows_per_second < 0 ? 0 : max_rows_per_second;
    p->sleep_ms = sleep_ms < 0 ? 0 : sleep_ms;
    p->size = clamp(p->size, p->min_size, p->max_size);
    /* A limit of R rows/s also caps a batch at R rows, or one batch would
     * burst past it. */
    if (p->max_rows_per_second && p->size > p->max_rows_per_second)
        p->size = p->max_rows_per_second < p->min_size ? p->min_size : p->max_rows_per_second;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void resize(zdm_pacer *p, int64_t size)
{
    int64_t cap = p->max_size;
    if (p->max_rows_per_second && p->max_rows_per_second < cap)
        cap = p->max_rows_per_second < p->min_size ? p->min_size : p->max_rows_per_second;
    size = clamp(size, p->min_size, cap);
    if (size != p->size) {
        p->size = size;
        p->nsamples = 0; /* judge the new size on its own batches */
    }
}

void zdm_pacer_record(zdm_pacer *p, int64_t rows, int64_t ms, int64_t now_ms)
{
    if (ms < 0)
        ms = 0;
    /* Rate limit: the next batch starts no earlier than rows/R after the
     * later of this batch's end and the previous allowance. */
    if (p->max_rows_per_second > 0) {
        int64_t base = p->next_allowed_ms > now_ms - ms ? p->next_allowed_ms : now_ms - ms;
        p->next_allowed_ms = base + rows * 1000 / p->max_rows_per_second;
    }
    if (p->target_ms <= 0)
        return;
    /* A batch that was cut short by the end of a range says little about
     * the cost of a full one. */
    if (rows < p->size / 2)
        return;
    if (ms > 5 * p->target_ms) { /* far too slow: back off at once */
        resize(p, p->size / 4);
        return;
    }
    if (p->nsamples < ZDM_PACER_WINDOW)
        p->samples[p->nsamples++] = ms;
    else {
        for (int i = 1; i < ZDM_PACER_WINDOW; i++)
            p->samples[i - 1] = p->samples[i];
        p->samples[ZDM_PACER_WINDOW - 1] = ms;
    }
    /* Far below the target (under half of it) one batch is evidence
     * enough to grow, still by at most x1.5: the start from a small
     * batch_size takes a few batches, not dozens.  Anything closer waits
     * for three samples of the current size. */
    if (p->nsamples < 3 && !(p->nsamples >= 1 && ms * 2 < p->target_ms))
        return;
    int64_t sorted[ZDM_PACER_WINDOW];
    for (int i = 0; i < p->nsamples; i++)
        sorted[i] = p->samples[i];
    qsort(sorted, (size_t)p->nsamples, sizeof sorted[0], cmp64);
    int64_t p90 = sorted[(p->nsamples * 9 - 1) / 10];
    if (p90 < 1)
        p90 = 1;
    /* Dead band of +-20% around the target: close enough, keep the size. */
    if (p90 * 10 < p->target_ms * 8) {
        int64_t want = p->size * p->target_ms / p90;
        int64_t cap = p->size + p->size / 2;
        resize(p, want < cap ? want : cap);
    } else if (p90 * 10 > p->target_ms * 12) {
        resize(p, p->size * p->target_ms / p90);
    }
}

int64_t zdm_pacer_delay(const zdm_pacer *p, int64_t now_ms)
{
    int64_t wait = p->sleep_ms;
    if (p->max_rows_per_second > 0 && p->next_allowed_ms - now_ms > wait)
        wait = p->next_allowed_ms - now_ms;
    return wait < 0 ? 0 : wait;
}
