/*
 * pacer.h -- batch sizing, rate limiting and latency pacing for the
 * backfill, pure arithmetic with no I/O so it can be unit-tested.
 *
 * Sizing aims the 90th percentile of recent batch durations at the
 * target: target_batch_ms, or max_lock_ms when that is smaller (a batch
 * holds its row locks, on SQLite the one write lock, until it commits).
 * A batch's cost is modelled as fixed + per_row x rows, fitted by least
 * squares over the last batches of any size; the next size is the one
 * whose modelled cost meets the target.  When the fixed part dominates
 * (a costly `where` scans whatever the batch size) a smaller batch would
 * cost as much and convert less, so the pacer grows the batch instead:
 * the target then bounds the per-row part only.  Sizes change by at most
 * x1.5 up per decision, are cut by 4 at once when one batch takes over
 * 5x the target and the cost is not fixed, and wait for a few fresh
 * samples after every change, so they settle instead of oscillating.
 *
 * Latency: the worker measures a probe (a round trip; on SQLite a write
 * lock taken and released) before its first batch -- the baseline -- and
 * between batches (on PostgreSQL during the batches too: zdm_pacer_sample
 * below).  While the median of five recent probes (or one probe
 * over 4x the bound) exceeds max_latency_factor x baseline (never tighter
 * than baseline + 1 ms, the scheduling noise of a loaded host), the pacer
 * halves the batch and doubles a gap between batches (up to 0.5 s), and
 * grows nothing; quiet probes shrink the gap again.  Still slow after three
 * back-offs at the longest gap, the worker is hardly running: the
 * slowness is the server's, and its median becomes the new baseline, so
 * a backfill on a server that got busier still ends.
 *
 * One writer (SQLite).  A writer that finds the write lock taken sleeps
 * in SQLite's busy-handler steps (retries 1, 3, 8, 18, 33, ... ms after
 * it first failed), so it pays at least 1 ms -- on a local database ten
 * times its idle p99 -- however short the batch.  What keeps the
 * application's p99 is therefore the share of its writes that meet a
 * batch, which is the share of time the batch holds the lock: the pacer
 * keeps that share under ZDM_PACER_LOCK_SHARE_PM per mille (half of the
 * 1 % a p99 allows; the other half is the idle distribution's own tail),
 * the pause after a batch being its measured lock-holding time x
 * (1000 - share) / share.  The pause is only the writer's turn (its wait:
 * the first retry at or after the batch's end) where the bound is loose
 * enough that a writer meeting a whole batch still finishes inside it,
 * and once ZDM_PACER_WRITER_QUIET_PROBES probes in a row saw no other
 * connection commit (the probe reads PRAGMA data_version): nobody waits,
 * nothing to share.  An application writing every few seconds or more
 * often is seen within three pauses, and keeps the share.  The batch itself is sized to
 * the longest such batch, and never under 20 ms nor under 10x the batch's
 * fitted fixed cost (BEGIN, the state rows, the commit's fsync), which
 * would otherwise be paid over too few rows; its length bounds how long
 * one unlucky writer waits, not how many wait.
 *
 * The rate limit spaces batches so rows/s never exceeds
 * max_rows_per_second over any window longer than one batch.
 */
#ifndef ZDM_PACER_H
#define ZDM_PACER_H

#include <stdint.h>

#define ZDM_PACER_WINDOW 8
#define ZDM_PACER_COST_WINDOW 16
#define ZDM_PACER_PROBES 20
/* samples taken while no batch ran that judge whether the server itself
 * got slower (about 1.3 s of them at the probe's 20 ms) */
#define ZDM_PACER_IDLE_WINDOW 64
#define ZDM_PACER_MAX_GAP_MS 500
/* one writer: the write lock held at most this many per mille of the time */
#define ZDM_PACER_LOCK_SHARE_PM 5
/* one writer: the lock's share is kept until this many probes in a row
 * saw no other connection's commit (then a writer's turn after each batch
 * is enough) */
#define ZDM_PACER_WRITER_QUIET_PROBES 3
/* one writer: the longest pause after a batch (a batch over 150 ms) */
#define ZDM_PACER_MAX_WRITER_GAP_MS 30000

/* What holds the worker back now (/metrics zdm_backfill_pacer_state). */
typedef enum zdm_pacer_state {
    ZDM_PACER_STEADY = 0,  /* at the target size */
    ZDM_PACER_GROWING = 1, /* below the target, growing */
    ZDM_PACER_LATENCY = 2, /* probe latency over the bound: backing off */
    ZDM_PACER_RATE = 3,    /* max_rows_per_second spaces the batches */
} zdm_pacer_state;

typedef struct zdm_pacer {
    int64_t size;                 /* rows for the next batch */
    int64_t min_size, max_size;
    int64_t target_ms;            /* 0: fixed size */
    int64_t max_rows_per_second;  /* 0: unlimited */
    int64_t sleep_ms;             /* fixed pause between batches */
    int64_t samples[ZDM_PACER_WINDOW];
    int nsamples;                 /* since the last size change */
    int64_t next_allowed_ms;      /* rate limit: earliest start of the next batch */
    /* cost model: the last full batches, whatever their size */
    int64_t cost_rows[ZDM_PACER_COST_WINDOW], cost_ms[ZDM_PACER_COST_WINDOW];
    int ncost, cost_pos;
    /* latency pacing */
    int64_t latency_pct;          /* max_latency_factor x 100; 0: off */
    int64_t max_lock_ms;          /* bound on one batch's duration; 0: none */
    int single_writer;            /* SQLite: leave the write lock free between batches */
    int64_t baseline_us;          /* idle probe; 0 until measured */
    int64_t probes[ZDM_PACER_PROBES];
    int nprobes;                  /* since the last latency decision */
    int64_t last_probe_us, probe_p99_us;
    int64_t lat_gap_ms;           /* extra pause while latency is over the bound */
    int64_t last_batch_ms;
    int64_t lock_us;              /* one writer: how long the last batch held the write lock */
    int writer_seen;              /* one writer: another connection committed ... */
    int quiet_probes;             /* ... and this many probes since saw none */
    int64_t blocked_total;        /* sessions seen waiting on a batch, all batches */
    int at_max_gap;               /* back-offs in a row at the longest gap */
    int rebaselined;              /* times the baseline was taken again */
    zdm_pacer_state state;
    /* the probe running during the batches (zdm_pacer_sample) */
    int concurrent;
    int64_t lat_cap;              /* rows a batch may have since the last back-off; 0: no cap */
    int win_n, win_slow;          /* samples, and those over the bound, since the last decision */
    int64_t table_rows;           /* the table's estimated rows (the row-lock share); 0: unknown */
    int64_t samples_total, slow_total; /* samples seen, and those over the bound (/metrics) */
    int64_t idle[ZDM_PACER_IDLE_WINDOW]; /* the last samples taken while no batch ran */
    int nidle, idle_pos;
    /* the busy share (ZDM_PACER_APP_QUIET above) */
    int64_t duty_pct;             /* max_duty_percent; 100: no limit */
    int app_read;                 /* an activity reading arrived */
    int app_quiet;                /* readings in a row that saw no other session */
} zdm_pacer;

void zdm_pacer_init(zdm_pacer *p, int64_t start_size, int64_t min_size, int64_t max_size,
                    int64_t target_ms, int64_t max_rows_per_second, int64_t sleep_ms);
/* Applies live setting changes without losing the learned size. */
void zdm_pacer_update(zdm_pacer *p, int64_t min_size, int64_t max_size, int64_t target_ms,
                      int64_t max_rows_per_second, int64_t sleep_ms);
/* Latency settings (live too): factor in percent (150 = 1.5x, 0 = off),
 * max_lock_ms (0 = none), single_writer (SQLite). */
void zdm_pacer_latency(zdm_pacer *p, int64_t latency_pct, int64_t max_lock_ms, int single_writer);
/* The idle probe time, measured before the first batch. */
void zdm_pacer_baseline(zdm_pacer *p, int64_t us);
/* A probe taken between batches. */
void zdm_pacer_probe(zdm_pacer *p, int64_t us);
/* A probe recorded (last, p99: /metrics) that steers nothing: on SQLite
 * the default probe, taken between batches, waits only on other writers
 * -- the backfill holds nothing then -- so backing off on it slowed the
 * batches for the application's own contention (torture seed 3, SQLite:
 * 10-key batches of 1 ms, 300 s for 6,000 rows); the lock's share is what
 * keeps the application's p99 there. */
void zdm_pacer_probe_seen(zdm_pacer *p, int64_t us);
/* Multi-writer databases (PostgreSQL): the probe runs on a connection of
 * its own all the time, during the batches too, and every sample goes to
 * zdm_pacer_sample.  Its baseline is the idle probe's p95 (the bound is
 * then max_latency_factor x the idle p95: the application's target is
 * its idle p99, the p95 is a steadier estimate of a tail of 100 samples),
 * and the pacer keeps the share of samples over the bound near 1 %: two
 * slow samples since the last decision (or one over 4x the bound) halve
 * the batch (not below the size whose fitted fixed cost equals its
 * per-row part), cap its growth there and double the gap between batches
 * (20 ms to 0.5 s); ZDM_PACER_CLEAN samples with none slow shrink the gap
 * by a third, and once it is gone raise the cap by half.  Still slow
 * after three back-offs at the longest gap: the p99 of the recent
 * samples becomes the baseline, as with zdm_pacer_probe.
 *
 * Whose slowness: a sample taken while no batch ran (zdm_pacer_sample_idle,
 * the probe's thread tells) is also kept apart.  When the probe is slow
 * between the batches too -- the p95 of the last ZDM_PACER_IDLE_WINDOW
 * such samples over the bound -- while the worker is nearly idle (its
 * batches under a tenth of the time), the server got slower for reasons
 * of its own (other work on the host, a CI machine running tests side by
 * side): backing off further cannot bring the probe back under the
 * bound, it only stalls the backfill (10-row batches 300 ms apart, 20,000
 * rows not done in 120 s).  That p95 becomes the baseline at once.  Under
 * the bound between the batches, the slowness is the backfill's: no new
 * baseline, however long it backs off (the rule of three back-offs at the
 * longest gap applies only while too few such samples were taken).
 *
 * Row locks: an application that writes rows at random meets one of the
 * batch's locked rows in (batch rows / table rows) of its transactions
 * while a batch runs; a 2,000-row batch on a 200,000-row table is 1 %,
 * the whole p99.  The probe cannot see that (it writes no row of the
 * table), so with latency pacing on a batch holds at most 1/1000 of the
 * table's rows (never fewer than min_batch_size; a fixed size, target_ms
 * 0, stays fixed), and sessions seen
 * waiting on a batch (zdm_pacer_blocked) back off as a slow probe does. */
#define ZDM_PACER_CLEAN 50
/* Busy share (PostgreSQL).  The probe is one round trip; an application
 * transaction is several (BEGIN, statements, COMMIT), each of which can
 * meet a batch, so the application's share of slowed transactions is a
 * multiple of the probe's and a probe kept near its own tail bound let
 * the application's p99 reach 4x idle.  What the probe cannot resolve the
 * duty cycle bounds: while an application works, batches run at most
 * max_duty_percent of the time -- after a batch of T ms the worker waits
 * T x (100 - pct) / pct -- so at most that share of the application's
 * transactions overlaps a batch at all.  "An application works": another
 * client session (not zdm's) ran a statement within the last second, in
 * any of the last ZDM_PACER_APP_QUIET readings (zdm_pacer_app_activity,
 * every ZDM_PACER_APP_EVERY_MS on the probe's connection); a database
 * nobody uses gets full-speed batches, and so does a worker that cannot
 * tell (no reading yet counts as busy, not as idle). */
#define ZDM_PACER_APP_QUIET 8
#define ZDM_PACER_LOCK_SHARE 1000
/* on: samples come from zdm_pacer_sample; table_rows: the estimate of the
 * table's rows (0: unknown, no row-lock share cap). */
void zdm_pacer_concurrent(zdm_pacer *p, int on, int64_t table_rows);
void zdm_pacer_sample(zdm_pacer *p, int64_t us);
/* A sample taken while no batch ran (between two batches): steers as
 * zdm_pacer_sample does, and tells the server's own slowness apart. */
void zdm_pacer_sample_idle(zdm_pacer *p, int64_t us);
/* An idle sample that steers nothing: the ones the baseline was taken
 * from (after zdm_pacer_baseline), so that whose slowness it is can be
 * told from the first batch on. */
void zdm_pacer_idle_seen(zdm_pacer *p, int64_t us);
/* Sessions found waiting on the batch's locks just before it committed
 * (PostgreSQL): the application waited on the backfill, so back off as
 * for a slow probe. */
void zdm_pacer_blocked(zdm_pacer *p, int64_t sessions);
/* max_duty_percent (live): 1..100, 100 or more: no limit. */
void zdm_pacer_duty(zdm_pacer *p, int64_t pct);
/* An activity reading: whether another client session ran a statement
 * within the last second (or could not be told apart: counts as 1). */
void zdm_pacer_app_activity(zdm_pacer *p, int active);
/* The busy share applies now: latency pacing on, several writers, a
 * limit under 100 and an application seen recently (or nothing known). */
int zdm_pacer_duty_on(const zdm_pacer *p);
/* The latency bound in microseconds (0 while off or without a baseline). */
int64_t zdm_pacer_bound_us(const zdm_pacer *p);
/* The size target: target_ms, or max_lock_ms when smaller. */
int64_t zdm_pacer_target(const zdm_pacer *p);
/* The fitted cost model: fixed cost in microseconds per batch and per-row
 * cost in nanoseconds.  0 (and both untouched) until batches of at least
 * two different sizes were seen. */
int zdm_pacer_cost(const zdm_pacer *p, int64_t *fixed_us, int64_t *per_row_ns);
/* Records a finished batch of `rows` that took `ms`, ending at `now_ms`. */
void zdm_pacer_record(zdm_pacer *p, int64_t rows, int64_t ms, int64_t now_ms);
/* One writer: the last batch held the write lock for `us` microseconds
 * (from its BEGIN IMMEDIATE to its commit). */
void zdm_pacer_lock_held(zdm_pacer *p, int64_t us);
/* How long, at worst, a writer waits that finds the write lock taken for
 * `held_us`, under SQLite's default busy handler (sqlite3_busy_timeout):
 * its first retry at or after the lock's release. */
int64_t zdm_pacer_waiter_us(int64_t held_us);
/* One writer: what a probe found, whether another connection committed
 * since the probe before (an application writes). */
void zdm_pacer_writer_probe(zdm_pacer *p, int others_wrote);
/* One writer: no other writer seen, or not in the last
 * ZDM_PACER_WRITER_QUIET_PROBES probes. */
int zdm_pacer_writer_quiet(const zdm_pacer *p);
/* One writer: the pause after the last batch that leaves the write lock
 * free long enough (0 while pacing is off or before the first batch). */
int64_t zdm_pacer_writer_gap_ms(const zdm_pacer *p);
/* Milliseconds to wait before the next batch may start. */
int64_t zdm_pacer_delay(const zdm_pacer *p, int64_t now_ms);
/* "steady", "growing", "latency", "rate". */
const char *zdm_pacer_state_name(zdm_pacer_state s);

#endif
