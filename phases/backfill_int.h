/*
 * backfill_int.h -- what the backfill worker's files share (private to
 * phases/backfill*.c; everyone else uses backfill.h).
 *
 * Owns: the worker struct (one per zdm_backfill_run: its connection, the
 * SQL built for it, the claimed range, pacing and progress state) and the
 * functions the worker's files call in one another.
 */
#ifndef ZDM_BACKFILL_INT_H
#define ZDM_BACKFILL_INT_H

#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "backfill.h"
#include "dialect.h"
#include "log.h"
#include "metrics.h"
#include "mutant.h"
#include "pacer.h"
#include "sig.h"
#include "state.h"
#include "state_ranges.h"

#define PAUSE_RECHECK_MS 1000
#define HEALTH_EVERY_MS 1000

/* What holds a worker back (bits): the operator's pause, the plan's
 * pause_query, a health signal (autovacuum, replica lag, WAL archive). */
enum {
    ZDM_BF_HOLD_OPERATOR = 1,
    ZDM_BF_HOLD_PAUSE_QUERY = 2,
    ZDM_BF_HOLD_HEALTH = 4,
};

typedef struct worker {
    zdm_db *db;
    const zdm_plan *plan;
    const zdm_backfill_opts *o;
    const zdm_dialect *d;   /* what differs between the databases */
    zdm_strv key;
    char *tbl;              /* quoted table */
    /* each set target's declared type (the dialect's column_type, NULL
     * where unknown): "is it converted?" compares the target with its
     * expression cast to it, as the UPDATE stores it */
    char **set_type;
    /* [0] first batch of a range (no cursor), [1] with cursor */
    char *peek_sql[2];      /* SQLite: the batch's last key and size */
    char *update_sql[2];    /* SQLite: convert up to that key */
    char *combo_sql[2];     /* PostgreSQL: both in one statement */
    int int_key;            /* the key holds only integers (the dialect's integer_key): batches are spans */
    int session_paced;      /* the dialect's paced_session is in effect on w->db (1), unpaced (0), neither (-1) */
    int span_looks;         /* ... and every few look at the keys' spread first (SQLite: span_density) */
    int span_sparse;        /* the keys were sparse at the last look: look for the batch's end first */
    int span_batches;       /* spans since that look (backfill_batch.c span_density) */
    char *span_sql;         /* one integer key: convert a span of key values */
    char *next_key_sql;     /* ... and find the next key after an empty span */
    char *span_skip_sql;    /* ... passing over rows another session holds locked */
    char *span_lock_sql;    /* ... its first look: lock what is free, count what is not */
    int64_t rows_skipped;   /* rows passed over so (left to a revisit range) */
    int64_t locked_wait_ms; /* back-off while a range's rest is locked rows */
    char me[320];           /* owner id: user@host pid N */
    zdm_throttle th;        /* plan settings + live overrides */
    zdm_pacer pacer;
    /* current range */
    int range_id;
    char *cursor;           /* JSON array text, NULL before the first batch */
    char *hi;
    /* progress */
    int64_t start_ms, rows_mine, total_est, done_at_start;
    int64_t win_t[16], win_rows[16];
    int win_n;
    /* every worker's rows (the plan's rows_done) over time, for the ETA */
    int64_t plan_win_t[16], plan_win_rows[16];
    int plan_win_n;
    int64_t last_progress_ms, last_health_ms, pause_since_ms, last_pause_log_ms;
    char pause_reason[512];
    unsigned hold;          /* ZDM_BF_HOLD_*: what pause_reason is made of */
    int tty;
    int warned_one_writer;  /* the several-workers-on-one-writer warning was logged */
    int64_t last_batch_ms, replica_lag_ms;
    int64_t start_wall_ms;  /* epoch ms this worker started: "stalled" counts from here at first */
    zdm_histogram batch_hist; /* batch durations, seconds, for /metrics */
    int64_t probe_ms;         /* the last check_throttle, for /metrics */
    /* the latency probe running during the batches (backfill_probe.c);
     * NULL before the first probe, on SQLite, without a URL of its own
     * or after its connection failed (prober_off): probes between batches */
    struct zdm_bf_prober *prober;
    int prober_off;
    /* /status and /metrics answer from their own thread (httpstat.c),
     * never blocked by a batch: they read what zdm_bf_publish stored
     * last, under snap_mu; "stalled" is worked out at the scrape. */
    pthread_mutex_t snap_mu;
    int snap_ready;
    char *snap_status;            /* the /status body */
    zdm_backfill_metrics snap_m;  /* its strings point into the fields below */
    zdm_histogram snap_hist;
    char snap_reason[512];
    int64_t snap_pause_since_ms;  /* monotonic, while throttled */
    int64_t snap_at_ms;           /* monotonic: when it was published */
    int busy_retries;       /* lock waits in a row (SQLite BUSY, pg lock timeout) */
    int64_t wait_from_ms;   /* the pause after a batch: when it began, */
    int64_t wait_until_ms;  /* and when the next batch is due (0: none) */
    int finished_plan;      /* this worker made the backfilled transition */
    /* the work-list strategy (backfill_worklist.c): matching keys of the
     * claimed range after wl_after, with their row versions */
    int worklist;
    long long *wl_keys, *wl_xmin, wl_after;
    int wl_n, wl_range, wl_has_after, wl_complete;
    int64_t wl_collections, wl_rechecked;
    int64_t wl_collect_ms;  /* of the last batch: its collection, a one-off the pacer leaves out */
    int64_t wl_left;        /* matching keys in the list after the last batch (-1: unknown) */
    /* outcome */
    int rc;
    zdm_err *err;
    struct event_base *base;
    struct event *tick;
} worker;

/* backfill.c: the dialect's worker_session on a worker's own connection,
 * then zdm_bf_session_pacing(). */
void zdm_bf_session(worker *w);
/* The dialect's paced_session or unpaced_session, as latency pacing is
 * now on or off (zdm set may turn it either way); own connection only. */
void zdm_bf_session_pacing(worker *w);
/* backfill_sql.c */
char *zdm_bf_key_json(const zdm_rows *r, int row, int ncols);
int zdm_bf_key_params(const char *txt, json_t **j, const char **params, int *np, size_t nkey, zdm_err *err);
void zdm_bf_cols_list(worker *w, zdm_buf *b, const char *suffix);
/* "UPDATE t SET c = (expr), ...": the assignments of every batch statement. */
void zdm_bf_update_set(worker *w, zdm_buf *b);
void zdm_bf_batch_keys(worker *w, zdm_buf *b, int with_cursor);
void zdm_bf_needs_conversion(worker *w, zdm_buf *b);
void zdm_bf_build_sql(worker *w);
void zdm_bf_free_sql(worker *w);
/* The batch's last key without converting anything (naming a failed batch). */
char *zdm_bf_sql_last_key(worker *w, int with_cursor);
/* The table's first (last = 0) or last key. */
char *zdm_bf_sql_edge(worker *w, int last);
/* The keys after a cursor (with_cursor; else from the start) up to a
 * bound: counted ($cursor..., $bound...), and the one at an offset
 * ($cursor..., $bound..., $offset). */
char *zdm_bf_sql_count_keys(worker *w, int with_cursor);
char *zdm_bf_sql_key_at(worker *w, int with_cursor);
/* The rows still to convert: counted (keys = 0) or their first `keys`
 * keys, in key order. */
char *zdm_bf_sql_unconverted(worker *w, int keys);
/* "UPDATE t SET ... WHERE <needs conversion> AND (key) IN (<nkeys keys>)":
 * rows the final check found, converted by key (backfill_finish.c). */
char *zdm_bf_sql_sweep(worker *w, int nkeys);
/* backfill_ranges.c */
int zdm_bf_init_ranges(worker *w, zdm_err *err);
int zdm_bf_claim(worker *w, int *got, zdm_err *err);
int zdm_bf_split(worker *w, int *got, zdm_err *err);
void zdm_bf_release(worker *w);
/* backfill_batch.c */
int zdm_bf_batch(worker *w, int64_t size, int *range_done, int64_t *scanned, int64_t *updated, zdm_err *err);
/* backfill_health.c */
int zdm_bf_probe_latency(worker *w, int baseline, zdm_err *err);
/* Fills why (and *hold, ZDM_BF_HOLD_*) with every tripped signal. */
int zdm_bf_check_throttle(worker *w, char *why, size_t size, unsigned *hold, zdm_err *err);
/* held: a pause or a throttle signal holds the worker (its pace is not
 * known until it works again); else it waits within its work (rows
 * another session holds locked) and its pace so far stands. */
void zdm_bf_heartbeat(worker *w, const char *throttle, int held);
/* backfill_probe.c: a thread timing the probe every every_ms on its own
 * connection to url, while the batches run. */
typedef struct zdm_bf_prober zdm_bf_prober;
int zdm_bf_prober_start(const char *url, const char *probe_query, int64_t every_ms, zdm_bf_prober **out,
                        zdm_err *err);
/* Moves up to max queued samples (us, oldest first) to us, and to busy
 * (NULL: not wanted) whether a batch ran while each was taken; returns how
 * many, or -1 when the thread stopped on an error (then in *err). */
int zdm_bf_prober_take(zdm_bf_prober *p, int64_t *us, char *busy, int max, zdm_err *err);
/* The worker's batch begins (on 1) or has ended (0). */
void zdm_bf_prober_batch(zdm_bf_prober *p, int on);
/* Moves up to max queued activity readings (oldest first, 1: another
 * client session worked) to out; returns how many. */
int zdm_bf_prober_activity(zdm_bf_prober *p, char *out, int max);
void zdm_bf_prober_every(zdm_bf_prober *p, int64_t every_ms);
void zdm_bf_prober_stop(zdm_bf_prober *p); /* NULL: nothing */
/* backfill_progress.c */
void zdm_bf_progress(worker *w, int final);
/* This worker's pace for the state (zdm status): the rows of its recent
 * window, plus more_rows (a batch about to commit), over the wall-clock
 * time from the window's start to now; not known (ms 0) before two
 * batches since it started or last resumed. */
void zdm_bf_rate(const worker *w, int64_t more_rows, zdm_state_rate *out);
void zdm_bf_note_rows(worker *w, int64_t rows);
/* The worker stores what /status and /metrics show (at most once a second
 * unless forced); zdm_bf_fill_http, on the HTTP thread, reads it. */
void zdm_bf_publish(worker *w, int force);
void zdm_bf_fill_http(void *arg, int metrics, zdm_buf *out);
/* backfill_finish.c */
int zdm_bf_finish(worker *w, int *all_done, int *others, zdm_err *err);
int zdm_bf_connection_lost(const zdm_err *err);
int zdm_bf_reconnect(worker *w, zdm_err *err);
void zdm_bf_revive_caller(zdm_db *db, const char *url, const zdm_plan *plan);
/* backfill_worklist.c */
void zdm_bf_choose_strategy(worker *w);
int zdm_bf_worklist_batch(worker *w, const char *cursor, int64_t size, int *range_done, int64_t *scanned,
                          int64_t *updated, char **last, zdm_err *err);
void zdm_bf_worklist_free(worker *w);
/* backfill_controls.c */
void zdm_bf_apply_settings(worker *w, const char *json, int workers);

#endif
