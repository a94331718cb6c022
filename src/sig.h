/*
 * sig.h -- SIGINT and SIGTERM for every command.
 *
 * Owns: the process's handlers for SIGINT/SIGTERM while a command runs.
 * The handler only counts the signal and writes a byte to a self-pipe;
 * code that waits (a hook, a backfill's event loop, a backoff sleep) also
 * waits on that pipe, so a signal ends the wait at once.  The second
 * signal cancels the statement running on the armed connection
 * (zdm_db_cancel_now).  Whoever notices the signal stops at the next safe
 * point and returns ZDM_EXIT_INTERRUPTED (exit 4).
 */
#ifndef ZDM_SIG_H
#define ZDM_SIG_H

#include <stdint.h>

/* Installs the handlers (idempotent); zdm_sig_restore puts the previous
 * ones back.  Both are called by the command layer around a command. */
void zdm_sig_install(void);
void zdm_sig_restore(void);
/* How many SIGINT/SIGTERM arrived since zdm_sig_install (0 = none). */
int zdm_sig_caught(void);
/* The signal that arrived first (0 = none). */
int zdm_sig_first(void);
/* A descriptor that becomes readable when a signal arrives (-1 before
 * zdm_sig_install).  Never read it: it stays readable. */
int zdm_sig_fd(void);
/* Sleeps ms milliseconds or until a signal arrives.  Returns 1 when a
 * signal ended (or preceded) the sleep. */
int zdm_sig_sleep_ms(int64_t ms);
/* In a process just forked from one with the handlers installed (zdm
 * backfill --workers): a self-pipe of its own, so the parent's signals
 * do not wake its waits nor its own wake the parent's.  The counts
 * carry over. */
void zdm_sig_after_fork(void);

#endif
