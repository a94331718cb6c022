/*
 * backfill_probe.c -- the latency probe that runs while the batches run
 * (PostgreSQL, and any database with more than one writer).
 *
 * Owns: a second connection and a thread that times the probe every
 * ZDM_BF_PROBE_EVERY_MS, during the batches as well as between them, and
 * the queue of samples the worker's loop takes before each batch to feed
 * the pacer (pacer.c).
 *
 * Why a thread: a probe timed between batches, on the worker's own
 * connection, runs when the backfill loads nothing; it never sees what a
 * batch does to the application (its row locks, the WAL the application's
 * commits flush behind, the CPU), so the bound was never exceeded and the
 * pacer ran at full speed (application p99 8.4x idle on the zero-downtime
 * bench).  A probe on its own connection, running all the time, is timed
 * as the application is: a share of the samples falls inside batches, as
 * the same share of the application's transactions does.
 *
 * The probe, unless the plan names its own probe_query, is a transaction
 * that takes a transaction id and commits (zdm_db_probe_commit): its
 * commit writes a commit record, as an application commit does.  It does
 * not wait for the record's flush (the dialect's probe_session): fifty
 * flushes a second were a fifth of the application's p99 on their own.
 * Cost: one small asynchronous commit per interval (every 20 ms).
 *
 * Every ZDM_BF_ACTIVITY_EVERY_MS the thread also reads, untimed, whether
 * another client session works (zdm_db_others_active): the busy share
 * (pacer.h) applies only while an application does.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill_int.h"

#define ZDM_BF_PROBE_QUEUE 512
#define ZDM_BF_ACTIVITY_EVERY_MS 250
#define ZDM_BF_ACTIVITY_QUEUE 64

struct zdm_bf_prober {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    zdm_db *db;
    const char *query; /* the plan's probe_query, NULL: the commit probe */
    int64_t every_ms;
    int stop;          /* under mu */
    int failed;        /* under mu: the thread ended on an error, in err */
    zdm_err err;
    int64_t q[ZDM_BF_PROBE_QUEUE]; /* samples not taken yet, us */
    char qbusy[ZDM_BF_PROBE_QUEUE]; /* ... 0: no batch ran while it was taken */
    int nq;
    /* the worker's batches: one running now, and how many began (a batch
     * that began and ended inside one probe) */
    atomic_int in_batch;
    atomic_long batches;
    int64_t taken;     /* samples ever queued (tests, logs) */
    char act[ZDM_BF_ACTIVITY_QUEUE]; /* activity readings not taken yet, in order: 1 busy */
    int nact;
};

static void *run(void *arg)
{
    zdm_bf_prober *p = arg;
    int64_t act_at = 0;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pthread_mutex_unlock(&p->mu);
        long long us = 0;
        zdm_err e;
        zdm_err_clear(&e);
        long began = atomic_load(&p->batches);
        int busy = atomic_load(&p->in_batch);
        int rc = zdm_db_probe_commit(p->db, p->query, &us, &e);
        busy = busy || atomic_load(&p->in_batch) || atomic_load(&p->batches) != began;
        int active = -1;
        if (rc == 0 && zdm_mono_ms() - act_at >= ZDM_BF_ACTIVITY_EVERY_MS) {
            act_at = zdm_mono_ms();
            zdm_err ae;
            zdm_err_clear(&ae);
            if (zdm_db_others_active(p->db, &active, &ae) != 0)
                active = 1; /* cannot tell: as busy */
        }
        pthread_mutex_lock(&p->mu);
        if (active >= 0) {
            if (p->nact == ZDM_BF_ACTIVITY_QUEUE) {
                memmove(p->act, p->act + 1, ZDM_BF_ACTIVITY_QUEUE - 1);
                p->nact--;
            }
            p->act[p->nact++] = (char)active;
        }
        if (rc != 0) {
            p->failed = 1;
            p->err = e;
            break;
        }
        if (p->nq == ZDM_BF_PROBE_QUEUE) { /* nobody took them: keep the newest */
            memmove(p->q, p->q + 1, sizeof p->q[0] * (ZDM_BF_PROBE_QUEUE - 1));
            memmove(p->qbusy, p->qbusy + 1, ZDM_BF_PROBE_QUEUE - 1);
            p->nq--;
        }
        p->qbusy[p->nq] = (char)busy;
        p->q[p->nq++] = us;
        p->taken++;
        /* the next probe ZDM_BF_PROBE_EVERY_MS after this one ended,
         * woken at once by stop */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(p->every_ms % 1000) * 1000000L;
        until.tv_sec += (time_t)(p->every_ms / 1000) + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (!p->stop) {
            int w = pthread_cond_timedwait(&p->cv, &p->mu, &until);
            if (w == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int zdm_bf_prober_start(const char *url, const char *probe_query, int64_t every_ms, zdm_bf_prober **out,
                        zdm_err *err)
{
    *out = NULL;
    zdm_bf_prober *p = calloc(1, sizeof *p);
    if (!p)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "out of memory");
    int rc = zdm_db_open(url, &p->db, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    /* a probe that hangs (a lock, a server that stopped answering) ends
     * in an error within 10 s, so the worker's stop never waits longer
     * for the thread; the worker then probes between batches */
    const char *session = zdm_db_dialect(p->db)->probe_session;
    if ((rc = zdm_db_set_timeouts(p->db, 10000, 10000, err)) != 0 ||
        (session && (rc = zdm_db_exec_script(p->db, session, err)) != 0)) {
        zdm_db_close(p->db);
        free(p);
        return rc;
    }
    p->query = probe_query;
    p->every_ms = every_ms < 1 ? 1 : every_ms;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, run, p) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        zdm_db_close(p->db);
        free(p);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "could not start the latency probe's thread");
    }
    *out = p;
    return 0;
}

int zdm_bf_prober_take(zdm_bf_prober *p, int64_t *us, char *busy, int max, zdm_err *err)
{
    pthread_mutex_lock(&p->mu);
    int n = p->nq < max ? p->nq : max;
    memcpy(us, p->q, sizeof us[0] * (size_t)n);
    if (busy)
        memcpy(busy, p->qbusy, (size_t)n);
    memmove(p->q, p->q + n, sizeof p->q[0] * (size_t)(p->nq - n));
    memmove(p->qbusy, p->qbusy + n, (size_t)(p->nq - n));
    p->nq -= n;
    int failed = p->failed;
    if (failed && err)
        *err = p->err;
    pthread_mutex_unlock(&p->mu);
    return failed ? -1 : n;
}

int zdm_bf_prober_activity(zdm_bf_prober *p, char *out, int max)
{
    pthread_mutex_lock(&p->mu);
    int n = p->nact < max ? p->nact : max;
    memcpy(out, p->act, (size_t)n);
    memmove(p->act, p->act + n, (size_t)(p->nact - n));
    p->nact -= n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void zdm_bf_prober_batch(zdm_bf_prober *p, int on)
{
    if (!p)
        return;
    if (on)
        atomic_fetch_add(&p->batches, 1);
    atomic_store(&p->in_batch, on != 0);
}

void zdm_bf_prober_every(zdm_bf_prober *p, int64_t every_ms)
{
    pthread_mutex_lock(&p->mu);
    p->every_ms = every_ms < 1 ? 1 : every_ms;
    pthread_mutex_unlock(&p->mu);
}

void zdm_bf_prober_stop(zdm_bf_prober *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    zdm_db_close(p->db);
    free(p);
}
