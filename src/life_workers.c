/*
 * life_workers.c -- zdm backfill --workers N: N worker processes on one
 * host (see lifecycle.h, "Worker processes").
 *
 * Owns: forking the workers, each worker's --listen address, forwarding
 * SIGINT/SIGTERM from the parent to them, reaping them, and the one exit
 * code the parent reports for all of them.
 *
 * Each worker is a process of its own (not a thread): it opens its own
 * connection and runs the ordinary worker loop, so N of them coordinate
 * through claimed ranges exactly as N workers on N hosts do, and a worker
 * killed with kill -9 loses nothing the stale-owner rule does not take
 * over.  The parent opens no connection while they run; it only waits.
 */
#include "lifecycle.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "log.h"
#include "sig.h"

int zdm_life_worker_listen(const char *listen, int index, char *out, size_t size, zdm_err *err)
{
    if (!listen || index <= 1) {
        snprintf(out, size, "%s", listen ? listen : "");
        return 0;
    }
    const char *colon = strrchr(listen, ':');
    const char *port_s = colon ? colon + 1 : listen;
    char *end;
    long port = strtol(port_s, &end, 10);
    if (!*port_s || *end || port < 1) /* zdm_life_check_listen refused it already */
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": expected PORT, HOST:PORT or [IPV6]:PORT", listen);
    long mine = port + index - 1;
    if (mine > 65535) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\" with worker %d: port %ld is past 65535", listen, index,
                    mine);
        zdm_err_detail(err, "worker i serves on PORT+i-1: pick a PORT that leaves room for every worker");
        return ZDM_EXIT_USAGE;
    }
    if ((size_t)snprintf(out, size, "%.*s%ld", (int)(port_s - listen), listen, mine) >= size)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": too long", listen);
    return 0;
}

/* The child's side of the fork: its own process group, so a Ctrl-C on
 * the terminal reaches it once, through the parent (who forwards it),
 * not twice (a second signal cancels the running statement at once); its
 * own self-pipe; and on Linux a SIGTERM when the parent dies (kill -9 of
 * the parent), so no worker goes on unsupervised. */
static void child_setup(pid_t parent, int index, int n)
{
    (void)setpgid(0, 0);
#ifdef __linux__
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (getppid() != parent) /* the parent died before prctl took effect */
        (void)raise(SIGTERM);
    zdm_sig_after_fork();
    char tag[32];
    snprintf(tag, sizeof tag, "%d/%d", index, n);
    zdm_log_set_worker(tag);
}

int zdm_life_workers_fork(zdm_life_workers *w, int n, int *index, zdm_err *err)
{
    memset(w, 0, sizeof *w);
    *index = 0;
    if (n < 1 || n > ZDM_LIFE_MAX_WORKERS)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--workers must be 1 to %d", ZDM_LIFE_MAX_WORKERS);
    w->n = n;
    pid_t parent = getpid();
    /* What the parent buffered must not be written again by every child. */
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        if (zdm_sig_caught()) { /* stopped while starting: start no more */
            w->interrupted = 1;
            break;
        }
        pid_t pid = fork();
        if (pid < 0) {
            zdm_err_set(err, ZDM_EXIT_FAIL, "cannot start backfill worker %d/%d: %s", i + 1, n, strerror(errno));
            w->start_failed = 1;
            break;
        }
        if (pid == 0) {
            child_setup(parent, i + 1, n);
            w->n = 0; /* a child waits for nobody */
            *index = i + 1;
            return 0;
        }
        w->pid[i] = pid;
        w->started++;
        zdm_log(ZDM_LOG_INFO, NULL, NULL, "backfill worker %d/%d started (pid %d)", i + 1, n, (int)pid);
    }
    return 0;
}

/* How bad a worker's exit code is, for the one the parent reports: a
 * failure (1, and a worker killed by a signal) first, then a state layout
 * this zdm cannot use (5), a usage error (2), a refusal (3), interrupted
 * (4), success (0). */
static int severity(int code)
{
    switch (code) {
    case 0: return 0;
    case ZDM_EXIT_INTERRUPTED: return 1;
    case ZDM_EXIT_REFUSED: return 2;
    case ZDM_EXIT_USAGE: return 3;
    case ZDM_EXIT_FAIL: return 5;
    default: return 4; /* 5, the layout, and anything unexpected */
    }
}

/* Sends sig to every worker still running. */
static void forward(zdm_life_workers *w, int sig)
{
    for (int i = 0; i < w->n; i++)
        if (w->pid[i] > 0 && !w->reaped[i])
            (void)kill(w->pid[i], sig);
}

int zdm_life_workers_wait(zdm_life_workers *w, zdm_err *err)
{
    int forwarded = 0, left = w->started;
    if (w->start_failed) /* a fork failed: the ones started stop as on SIGTERM */
        forward(w, SIGTERM);
    while (left > 0) {
        /* Every signal the parent gets, each worker gets once: the first
         * finishes or cancels its batch, a second cancels at once. */
        int caught = zdm_sig_caught();
        for (; forwarded < caught; forwarded++)
            forward(w, zdm_sig_first());
        int progressed = 0;
        for (int i = 0; i < w->n; i++) {
            if (w->pid[i] <= 0 || w->reaped[i])
                continue;
            int st;
            pid_t r = waitpid(w->pid[i], &st, WNOHANG);
            if (r == 0 || (r < 0 && errno == EINTR))
                continue;
            w->reaped[i] = 1;
            left--;
            progressed = 1;
            if (r < 0) { /* cannot happen to our own child; count it as failed */
                w->code[i] = ZDM_EXIT_FAIL;
                w->sig[i] = 0;
            } else if (WIFSIGNALED(st)) {
                w->code[i] = ZDM_EXIT_FAIL;
                w->sig[i] = WTERMSIG(st);
            } else {
                w->code[i] = WEXITSTATUS(st);
            }
            if (w->sig[i])
                zdm_log(ZDM_LOG_WARN, NULL, NULL,
                        "backfill worker %d/%d (pid %d) was killed by signal %d; its range goes to another "
                        "worker (stale owner)", i + 1, w->n, (int)w->pid[i], w->sig[i]);
            else
                zdm_log(w->code[i] ? ZDM_LOG_WARN : ZDM_LOG_INFO, NULL, NULL,
                        "backfill worker %d/%d (pid %d) exited %d", i + 1, w->n, (int)w->pid[i], w->code[i]);
        }
        if (left > 0 && !progressed) {
            /* The self-pipe wakes this wait on a signal; a worker's exit is
             * seen within the poll's interval. */
            if (zdm_sig_caught() > forwarded)
                continue;
            int fd = zdm_sig_caught() ? -1 : zdm_sig_fd(); /* once signalled the pipe stays readable */
            struct pollfd p = {fd, POLLIN, 0};
            (void)poll(&p, fd >= 0 ? 1 : 0, 100);
        }
    }
    int worst = 0, nbad = 0;
    zdm_buf why = {0};
    for (int i = 0; i < w->n; i++) {
        if (w->pid[i] <= 0)
            continue;
        if (severity(w->code[i]) > severity(worst))
            worst = w->code[i];
        if (w->code[i] == 0)
            continue;
        nbad++;
        if (w->sig[i])
            zdm_buf_printf(&why, "%sworker %d/%d killed by signal %d", why.len ? "; " : "", i + 1, w->n, w->sig[i]);
        else
            zdm_buf_printf(&why, "%sworker %d/%d exited %d", why.len ? "; " : "", i + 1, w->n, w->code[i]);
    }
    if (w->start_failed && worst == 0)
        worst = ZDM_EXIT_FAIL;
    if (w->interrupted && worst == 0) {
        zdm_buf_free(&why);
        return zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "interrupted while starting backfill workers: %d of %d "
                           "started, and stopped", w->started, w->n);
    }
    if (worst != 0 && !(w->start_failed && err->msg[0])) {
        zdm_err_set(err, worst, "%d of %d backfill workers did not finish: %s", nbad, w->n,
                    why.data ? why.data : "");
        zdm_err_detail(err, "each worker's own lines say why; run \"zdm backfill\" again to go on: ranges a "
                            "stopped worker held are taken over");
    }
    zdm_buf_free(&why);
    return worst;
}
