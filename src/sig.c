/*
 * sig.c -- SIGINT and SIGTERM for every command (see sig.h).
 *
 * A self-pipe rather than a flag alone: poll() and libevent wake up on a
 * readable descriptor, while a flag set during a long timer wait is only
 * seen when the wait ends (a backfill with sleep_ms = 120000 ignored
 * SIGTERM for two minutes).  Nothing reads the pipe, so once a signal
 * came every later wait ends at once too.
 */
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "util.h"

static volatile sig_atomic_t caught, first;
static int pipefd[2] = {-1, -1};
static int installed;
static struct sigaction old_int, old_term;

static void on_signal(int sig)
{
    int saved = errno;
    if (!first)
        first = sig;
    caught++;
    if (pipefd[1] >= 0) {
        char b = 1;
        ssize_t w = write(pipefd[1], &b, 1); /* a full pipe is as good as a written byte */
        (void)w;
    }
    if (caught >= 2 || zdm_db_cancel_is_first())
        zdm_db_cancel_now();
    errno = saved;
}

void zdm_sig_install(void)
{
    if (installed)
        return;
    if (pipefd[0] < 0 && pipe(pipefd) == 0) {
        for (int i = 0; i < 2; i++) {
            fcntl(pipefd[i], F_SETFL, fcntl(pipefd[i], F_GETFL) | O_NONBLOCK);
            fcntl(pipefd[i], F_SETFD, FD_CLOEXEC);
        }
    }
    caught = 0;
    first = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    installed = 1;
}

/* The pipe is shared with the parent after fork(): nothing reads it, so
 * one signal to either process would leave every later wait of both
 * returning at once (a busy loop in the one that was not signalled). */
void zdm_sig_after_fork(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return; /* keep the shared pipe: waits may wake early, never late */
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    int old[2] = {pipefd[0], pipefd[1]};
    pipefd[0] = fds[0];
    pipefd[1] = fds[1];
    if (caught) {
        char b = 1;
        ssize_t w = write(pipefd[1], &b, 1);
        (void)w;
    }
    for (int i = 0; i < 2; i++)
        if (old[i] >= 0)
            close(old[i]);
}

void zdm_sig_restore(void)
{
    if (!installed)
        return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    installed = 0;
    /* A drained pipe for the next command of this process (tests run
     * several in one). */
    char buf[64];
    while (pipefd[0] >= 0 && read(pipefd[0], buf, sizeof buf) > 0)
        ;
}

int zdm_sig_caught(void)
{
    return caught;
}

int zdm_sig_first(void)
{
    return first;
}

int zdm_sig_fd(void)
{
    return installed ? pipefd[0] : -1;
}

int zdm_sig_sleep_ms(int64_t ms)
{
    int64_t end = zdm_mono_ms() + ms;
    for (;;) {
        if (caught)
            return 1;
        int64_t left = end - zdm_mono_ms();
        if (left <= 0)
            return 0;
        int fd = zdm_sig_fd();
        if (fd >= 0) {
            struct pollfd p = {fd, POLLIN, 0};
            (void)poll(&p, 1, left > 1000 ? 1000 : (int)left);
        } else {
            struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
            (void)nanosleep(&ts, NULL);
        }
    }
}
