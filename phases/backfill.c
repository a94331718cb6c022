/*
 * backfill.c -- the backfill worker.
 *
 * The key space of the table, as it was when the backfill started, is cut
 * into ranges stored in zdm's ranges table.  Workers (any number, on any
 * host) claim a range, then walk it in keyset batches: each batch finds
 * its last key with an index scan bounded by LIMIT, converts the rows up
 * to it with one UPDATE that computes the new values itself, and moves
 * the range's cursor, all in one transaction.  Killing a worker at any
 * instant loses only the uncommitted batch, which the next worker redoes;
 * no row is converted twice because the cursor moved in the same commit.
 *
 * Rows inserted after the start lie above the last range's bound and are
 * converted by the dual-write triggers, so a heavy insert load cannot make
 * the backfill chase new rows forever.
 *
 * Files: backfill_sql.c (the statements), backfill_ranges.c (split and
 * claim), backfill_batch.c (one batch), backfill_health.c (throttle
 * signals, latency probe, heartbeat), backfill_probe.c (the probe's own
 * connection and thread, during the batches), backfill_progress.c (progress,
 * /status, /metrics), backfill_finish.c (final check, backfilled,
 * reconnect), backfill_controls.c (pause, resume, set); the worker struct
 * they share is in backfill_int.h.  This file: the loop and zdm_backfill_run.
 *
 * The loop runs on libevent: a timer paces the batches (throttle, rate
 * limit, pauses) and another prints progress.  SIGINT/SIGTERM set a flag
 * checked between batches; a second one cancels the running statement.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill_int.h"
#include "httpstat.h"

/* SIGINT/SIGTERM are the command's (sig.c): the count says whether one
 * came, and the loop also watches its descriptor, so a signal ends a
 * pacing sleep or a pause at once instead of when the timer fires. */
static void on_sig_event(evutil_socket_t fd, short what, void *arg);

/* ---- the loop ---- */

static void schedule(worker *w, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(w->tick, &tv);
}

/* The pause after a batch, in steps of at most PAUSE_RECHECK_MS: a
 * zdm set (sleep_ms, max_rows_per_second) during a long pause takes
 * effect within a second.  A sleep_ms of hours set by mistake held the
 * worker for hours, whatever set --reset said, and its /status stood
 * still. */
static void wait_after_batch(worker *w)
{
    int64_t now = zdm_mono_ms(), d = zdm_pacer_delay(&w->pacer, now);
    w->wait_from_ms = now;
    w->wait_until_ms = now + d;
    schedule(w, d > PAUSE_RECHECK_MS ? PAUSE_RECHECK_MS : d);
}

/* 1 while the pause is still on (rescheduled), its length recomputed
 * from the settings as they are now. */
static int still_waiting(worker *w)
{
    int64_t now = zdm_mono_ms();
    if (!w->wait_until_ms || now >= w->wait_until_ms)
        return 0;
    int found = 0, paused = 0, workers = 0;
    char *settings = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_state_backfill_controls(w->db, w->plan->id, &found, &paused, &settings, &workers, &e) == 0 && found)
        zdm_bf_apply_settings(w, settings, workers);
    free(settings);
    w->wait_until_ms = w->wait_from_ms + zdm_pacer_delay(&w->pacer, w->wait_from_ms);
    if (now >= w->wait_until_ms)
        return 0;
    zdm_bf_publish(w, 0);
    schedule(w, w->wait_until_ms - now > PAUSE_RECHECK_MS ? PAUSE_RECHECK_MS : w->wait_until_ms - now);
    return 1;
}

static void stop(worker *w, int rc)
{
    w->rc = rc;
    event_base_loopbreak(w->base);
}

/* An error in the loop: reconnect and go on when the server went away
 * and the worker owns its connection; stop otherwise. */
static void failed(worker *w, int rc)
{
    if (zdm_sig_caught()) {
        if (w->err->code == ZDM_EXIT_INTERRUPTED) /* the signal cancelled the batch: say where it was */
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "cancelled: %s", w->err->msg);
        zdm_err_clear(w->err);
        stop(w, ZDM_EXIT_INTERRUPTED);
        return;
    }
    if (w->o->url && zdm_bf_connection_lost(w->err)) {
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "lost the connection: %s", w->err->msg);
        rc = zdm_bf_reconnect(w, w->err);
        if (rc == 0) {
            schedule(w, 0);
            return;
        }
    }
    /* A busy database (SQLite's single writer, a lock held by the
     * application) is a reason to wait, not to stop: the batch was rolled
     * back and is simply tried again, with growing pauses. */
    if (zdm_db_err_is_lock_timeout(w->err) && w->busy_retries < 30) {
        int64_t wait = 100;
        for (int i = 0; i < w->busy_retries && wait < 5000; i++)
            wait *= 2;
        w->busy_retries++;
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "database busy (%s); retrying in %lld ms (%d in a row)",
                w->err->msg, (long long)wait, w->busy_retries);
        zdm_err_clear(w->err);
        schedule(w, wait);
        return;
    }
    stop(w, rc);
}

static void on_sig_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stop(arg, ZDM_EXIT_INTERRUPTED);
}

/* A worker without a range claims one; with none left it finishes the
 * plan (the last worker), waits for the others (advance), or stops.
 * Returns 1 when the worker holds a range now. */
static int claim_or_finish(worker *w)
{
    zdm_err *err = w->err;
    int got = 0;
    int rc = zdm_bf_claim(w, &got, err);
    if (rc == 0 && !got)
        rc = zdm_bf_split(w, &got, err);
    if (rc != 0) {
        failed(w, rc);
        return 0;
    }
    if (got)
        return 1;
    int all_done = 0, others = 0;
    rc = zdm_bf_finish(w, &all_done, &others, err);
    /* A busy database at the finishing commit (SQLite) is waited out like
     * a busy batch, not a reason to exit 1 (torture soak, seed 189 SQLite). */
    if (rc != 0 && (zdm_bf_connection_lost(err) || zdm_db_err_is_lock_timeout(err))) {
        failed(w, rc);
        return 0;
    }
    if (rc != 0 || all_done || !w->o->wait_for_others) {
        if (rc == 0 && !all_done)
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill",
                    "no range left for this worker; %d range%s still held by other workers", others,
                    others == 1 ? "" : "s");
        stop(w, rc);
        return 0;
    }
    schedule(w, PAUSE_RECHECK_MS); /* wait for the other workers */
    return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    zdm_err *err = w->err;
    if (zdm_sig_caught()) {
        stop(w, ZDM_EXIT_INTERRUPTED);
        return;
    }
    if (still_waiting(w))
        return;
    w->wait_until_ms = 0;
    zdm_bf_publish(w, 0); /* for /status and /metrics (their own thread) */
    if (w->o->guard && !zdm_mutant("backfill_unguarded")) {
        int grc = w->o->guard(w->o->guard_arg, err);
        if (grc != 0) {
            stop(w, grc);
            return;
        }
    }
    if (w->range_id < 0 && !claim_or_finish(w))
        return;
    char why[512];
    unsigned hold = 0;
    int64_t probe_t0 = zdm_mono_ms();
    int rc = zdm_bf_check_throttle(w, why, sizeof why, &hold, err);
    w->probe_ms = zdm_mono_ms() - probe_t0;
    if (rc != 0) {
        failed(w, rc);
        return;
    }
    if (why[0]) {
        int64_t now = zdm_mono_ms();
        if (!w->pause_reason[0])
            w->pause_since_ms = now;
        snprintf(w->pause_reason, sizeof w->pause_reason, "%s", why);
        w->hold = hold;
        char d[32], line[600];
        snprintf(line, sizeof line, "%s (waiting %s)", why, zdm_format_duration(now - w->pause_since_ms, d, sizeof d));
        zdm_bf_heartbeat(w, line, 1);
        if (now - w->last_pause_log_ms >= 10000 || w->last_pause_log_ms == 0) {
            w->last_pause_log_ms = now;
            zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "throttled: %s", line);
        }
        schedule(w, PAUSE_RECHECK_MS);
        return;
    }
    if (w->pause_reason[0]) {
        char d[32];
        zdm_log(ZDM_LOG_INFO, w->plan->id, "backfill", "resuming after %s (%s)",
                zdm_format_duration(zdm_mono_ms() - w->pause_since_ms, d, sizeof d), w->pause_reason);
        w->pause_reason[0] = '\0';
        w->hold = 0;
        w->last_pause_log_ms = 0;
        w->win_n = w->plan_win_n = 0; /* the pause stays out of the rates */
    }
    /* On SQLite the probe waits for the write lock as a batch does: the
     * first signal cancels that wait too (it changes nothing). */
    zdm_db_cancel_first(1);
    if (w->pacer.baseline_us == 0 && w->pacer.latency_pct)
        rc = zdm_bf_probe_latency(w, 1, err);
    else
        rc = zdm_bf_probe_latency(w, 0, err);
    zdm_db_cancel_first(0);
    if (rc != 0) {
        failed(w, rc);
        return;
    }
    int range_done = 0;
    int64_t scanned = 0, updated = 0, t0 = zdm_mono_ms(), t0_us = zdm_mono_us();
    zdm_bf_prober_batch(w->prober, 1);
    rc = zdm_bf_batch(w, w->pacer.size, &range_done, &scanned, &updated, err);
    zdm_bf_prober_batch(w->prober, 0);
    int64_t t1 = zdm_mono_ms();
    /* one writer: the batch held the write lock from its BEGIN IMMEDIATE
     * to its commit, in microseconds (the pause after it is 199x that:
     * a millisecond's rounding would be 0.2 s) */
    zdm_pacer_lock_held(&w->pacer, zdm_mono_us() - t0_us);
    if (rc != 0) {
        failed(w, rc);
        return;
    }
    w->busy_retries = 0;
    /* a work list's collection is paid once per range, not per row: the
     * batch cost model leaves it out */
    int64_t collect_ms = w->wl_collect_ms < t1 - t0 ? w->wl_collect_ms : t1 - t0;
    w->wl_collect_ms = 0;
    zdm_pacer_record(&w->pacer, scanned, t1 - t0 - collect_ms, t1);
    w->last_batch_ms = t1 - t0;
    zdm_histogram_observe(&w->batch_hist, (double)(t1 - t0) / 1000.0);
    zdm_bf_note_rows(w, updated);
    char lock[96] = "";
    int64_t now = zdm_mono_ms();
    if (w->d->one_writer && w->pacer.latency_pct)
        snprintf(lock, sizeof lock, " (write lock held %lld us; %s)", (long long)w->pacer.lock_us,
                 zdm_pacer_writer_quiet(&w->pacer) ? "no other writer" : "another writer seen");
    else if (zdm_pacer_duty_on(&w->pacer))
        snprintf(lock, sizeof lock, " (another session works: batches at most %lld%% of the time)",
                 (long long)w->pacer.duty_pct);
    zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill",
            "range %d: %lld keys, %lld rows converted in %lld ms; next batch %lld, pacer %s (latency gap %lld ms, "
            "probe p99 %.2f ms); next in %lld ms%s",
            w->range_id, (long long)scanned, (long long)updated, (long long)(t1 - t0), (long long)w->pacer.size,
            zdm_pacer_state_name(w->pacer.state), (long long)w->pacer.lat_gap_ms,
            (double)w->pacer.probe_p99_us / 1000.0, (long long)zdm_pacer_delay(&w->pacer, now), lock);
    if (range_done)
        zdm_bf_release(w);
    /* In the pause, out of the batch's timing (the pacer's cost model and
     * the lock's share would count it as the batch's). */
    if (updated > 0 && w->pacer.latency_pct && w->d->after_batch) {
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_exec_script(w->db, w->d->after_batch, &e) != 0)
            zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "after the batch: %s", e.msg);
    }
    zdm_bf_progress(w, 0);
    wait_after_batch(w);
}

static void session_sql(worker *w, const char *sql)
{
    zdm_err e;
    zdm_err_clear(&e);
    /* a setting that does not take only costs speed */
    if (sql && zdm_db_exec_script(w->db, sql, &e) != 0)
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "worker session settings: %s", e.msg);
}

/* The worker's own connection takes the settings its plan's dual-write
 * function keeps (dialect.h, dw_session_settings): a worker started with
 * PGTZ=Asia/Tokyo PGDATESTYLE=German converted src::timestamptz::text to
 * "01.01.2024 21:00:00 JST" while the triggers wrote
 * "2024-01-01 12:00:00+00", and overwrote what they had written. */
static void session_dw_settings(worker *w)
{
    const zdm_backfill *b = w->plan->backfill;
    if (!w->d->dw_session_settings || !b->dual_write || !b->nset)
        return;
    char base[96], fn[128];
    zdm_dw_name_base(w->plan, base, sizeof base);
    snprintf(fn, sizeof fn, "%s_fwd", base);
    char *q = w->d->quote_ident(fn);
    char *sig = zdm_xasprintf("zdm.%s()", q);
    free(q);
    const char *p[] = {sig};
    char *n = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    if (zdm_db_query_value(w->db, w->d->dw_session_settings, 1, p, &n, &e) != 0)
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill",
                "could not take the settings the dual-write triggers keep (%s): %s; this worker converts under "
                "its own session's TimeZone, DateStyle and search_path", sig, e.msg);
    else
        zdm_log(ZDM_LOG_DEBUG, w->plan->id, "backfill", "took %s setting(s) of %s", n ? n : "0", sig);
    free(n);
    free(sig);
}

void zdm_bf_session(worker *w)
{
    session_sql(w, w->d->worker_session);
    session_dw_settings(w);
    w->session_paced = -1;
    zdm_bf_session_pacing(w);
}

void zdm_bf_session_pacing(worker *w)
{
    int paced = w->pacer.latency_pct > 0;
    if (!w->o->url || paced == w->session_paced) /* never the caller's connection */
        return;
    session_sql(w, paced ? w->d->paced_session : w->d->unpaced_session);
    w->session_paced = paced;
}

/* Splitting the keys is a write transaction before the first batch.  On
 * SQLite a reader (the application) holds its COMMIT off past the short
 * wait a commit gets (db_sqlite.c), which fails as a lock timeout and is
 * rolled back: as for a batch (failed()), and as zdm_state_init does, a
 * reason to try again, not to stop.  Found by the torture checker (seed
 * 130, SQLite: a worker exited 1 "database is locked" while the other
 * plan's workers and the application wrote). */
static int init_ranges_waiting(worker *w, zdm_err *err)
{
    int64_t wait = 100;
    for (int tries = 1;; tries++) {
        int rc = zdm_bf_init_ranges(w, err);
        if (rc == 0 || !zdm_db_err_is_lock_timeout(err) || tries >= 30 || zdm_sig_caught())
            return rc;
        zdm_log(ZDM_LOG_WARN, w->plan->id, "backfill", "database busy (%s); retrying in %lld ms (%d in a row)",
                err->msg, (long long)wait, tries);
        zdm_err_clear(err);
        zdm_sig_sleep_ms(wait);
        wait = wait * 2 > 5000 ? 5000 : wait * 2;
    }
}

int zdm_backfill_run(zdm_db *db, const zdm_plan *plan, zdm_backfill_opts *o, zdm_err *err)
{
    if (!plan->backfill)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s has no [backfill]", plan->id);
    worker w;
    memset(&w, 0, sizeof w);
    w.db = db;
    w.plan = plan;
    w.o = o;
    w.err = err;
    w.d = zdm_db_dialect(db);
    w.range_id = -1;
    w.start_ms = zdm_mono_ms();
    w.start_wall_ms = zdm_now_ms();
    zdm_histogram_init_batch(&w.batch_hist);
    w.tty = o->progress_tty >= 0 ? o->progress_tty : isatty(2);
    snprintf(w.me, sizeof w.me, "%s pid %d", zdm_whoami(), (int)getpid());
    w.th = plan->backfill->throttle;
    const zdm_throttle *t = &plan->backfill->throttle;
    zdm_pacer_init(&w.pacer, t->batch_size, t->min_batch_size, t->max_batch_size, t->target_batch_ms,
                   t->max_rows_per_second, t->sleep_ms);
    zdm_pacer_latency(&w.pacer, t->max_latency_pct, t->max_lock_ms, w.d->one_writer);
    zdm_pacer_duty(&w.pacer, t->max_duty_percent);

    zdm_db *own = NULL, *caller = db;
    if (o->url) {
        int orc = zdm_db_open(o->url, &own, err);
        if (orc != 0)
            return orc;
        w.db = db = own;
        zdm_bf_session(&w);
    }
    w.tbl = zdm_db_ident_path(db, plan->backfill->table);
    w.wl_range = -1;
    w.wl_left = -1;
    int rc = zdm_backfill_key(db, plan, &w.key, err);
    if (rc == 0) {
        /* the split cuts integer keys by numbers (backfill_ranges.c) */
        w.int_key = zdm_backfill_int_key(db, plan->backfill->table, &w.key);
        zdm_bf_choose_strategy(&w);
        rc = init_ranges_waiting(&w, err);
    }
    if (rc != 0) {
        zdm_strv_free(&w.key);
        free(w.tbl);
        if (own)
            zdm_db_close(own);
        return rc;
    }
    /* the key the ranges were split on (an earlier worker's, maybe) */
    w.int_key = zdm_backfill_int_key(db, plan->backfill->table, &w.key);
    /* where a batch that looks first is the old two-statement form
     * (SQLite); PostgreSQL's one-statement spans run as measured */
    w.span_looks = w.int_key && !w.d->batch_one_statement;
    zdm_bf_build_sql(&w);

    int own_sig = zdm_sig_fd() < 0; /* called outside a command (tests) */
    if (own_sig)
        zdm_sig_install();
    zdm_db_cancel_arm(w.db);

    w.base = event_base_new();
    w.tick = evtimer_new(w.base, on_tick, &w);
    struct event *sigev = event_new(w.base, zdm_sig_fd(), EV_READ | EV_PERSIST, on_sig_event, &w);
    event_add(sigev, NULL);
    zdm_httpstat_thread *http = NULL;
    pthread_mutex_init(&w.snap_mu, NULL);
    if (o->listen) {
        zdm_bf_publish(&w, 1);
        rc = zdm_httpstat_start_thread(o->listen, zdm_bf_fill_http, &w, &http, err);
        if (rc == 0)
            zdm_log(ZDM_LOG_INFO, plan->id, "backfill", "serving /status and /metrics on %s", o->listen);
    }
    if (rc == 0) {
        schedule(&w, 0);
        event_base_dispatch(w.base);
        rc = w.rc;
        o->finished_plan = w.finished_plan;
    }
    zdm_httpstat_stop_thread(http); /* joined: nothing reads the snapshot any more */
    free(w.snap_status);
    pthread_mutex_destroy(&w.snap_mu);

    zdm_bf_prober_stop(w.prober);
    zdm_db_cancel_disarm();
    event_free(sigev);
    if (own_sig)
        zdm_sig_restore();
    if (w.db && w.range_id >= 0)
        zdm_bf_release(&w);
    if (w.db)
        zdm_bf_progress(&w, 1);
    if (rc == ZDM_EXIT_INTERRUPTED) {
        zdm_err_set(err, ZDM_EXIT_INTERRUPTED,
                    "backfill of %s interrupted after %lld rows by this worker; every committed batch is kept",
                    plan->id, (long long)w.rows_mine);
        zdm_err_detail(err, "safe to resume: run \"zdm backfill %s\" (or zdm advance) again", plan->id);
    } else if (rc != 0 && !err->detail[0]) {
        zdm_err_detail(err, "the failed batch was rolled back and every earlier batch is kept; fix the cause, "
                            "then run \"zdm backfill %s\" again to resume", plan->id);
    }
    event_free(w.tick);
    event_base_free(w.base);
    zdm_bf_free_sql(&w);
    free(w.tbl);
    free(w.cursor);
    free(w.hi);
    zdm_bf_worklist_free(&w);
    zdm_strv_free(&w.key);
    if (o->url && w.db)
        zdm_db_close(w.db);
    if (o->url)
        zdm_bf_revive_caller(caller, o->url, plan);
    return rc;
}
