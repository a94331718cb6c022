/*
 * err.h -- the one error type of zdm.
 *
 * Every function that can fail returns an int status (0 = ok, otherwise one
 * of the ZDM_EXIT_* codes below, which are also the process exit codes) and
 * takes a `zdm_err *` as its last argument, which it fills with what failed,
 * where and why.  Only main() turns a status into an exit.
 */
#ifndef ZDM_ERR_H
#define ZDM_ERR_H

#include <stddef.h>

/* Exit codes: a contract with users' scripts, never renumber. */
enum {
    ZDM_OK = 0,
    ZDM_EXIT_FAIL = 1,        /* runtime failure */
    ZDM_EXIT_USAGE = 2,       /* usage error or invalid plan */
    ZDM_EXIT_REFUSED = 3,     /* refused by a gate: hook, not due, lock held, lint */
    ZDM_EXIT_INTERRUPTED = 4, /* interrupted, safe to resume */
    ZDM_EXIT_STATE = 5        /* zdm's state in the database has a layout this
                                 zdm cannot use (newer, older and not yet
                                 upgraded, or damaged): nothing was done */
};

#define ZDM_ERR_MSG 2048
#define ZDM_ERR_DETAIL 1024

typedef struct zdm_err {
    int code;                    /* one of the ZDM_EXIT_* codes */
    char sqlstate[6];            /* PostgreSQL SQLSTATE, "" when none */
    int line, col;               /* source position when the error is about a file, else 0 */
    char msg[ZDM_ERR_MSG];       /* one sentence: what failed, where, why */
    char detail[ZDM_ERR_DETAIL]; /* what the operator should do next, may be "" */
    char reason[32];             /* a refusal's kind ("lock_held", "not_due", ...), "" when
                                    unnamed: what history folds repeats by, never the text */
} zdm_err;

#if defined(__GNUC__)
#define ZDM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ZDM_MUST_CHECK __attribute__((warn_unused_result))
#else
#define ZDM_PRINTF(a, b)
#define ZDM_MUST_CHECK
#endif

void zdm_err_clear(zdm_err *err);
/* Sets code and message; returns code so callers can `return zdm_err_set(...)`. */
int zdm_err_set(zdm_err *err, int code, const char *fmt, ...) ZDM_PRINTF(3, 4);
/* Sets the operator-facing "what to do next" line. */
void zdm_err_detail(zdm_err *err, const char *fmt, ...) ZDM_PRINTF(2, 3);
/* Names the kind of failure or refusal (a short snake_case code, kept
 * in history's reason column).  zdm_err_set clears it. */
void zdm_err_reason(zdm_err *err, const char *code);
/* Prepends context ("expand step 2: ") to an existing message. */
void zdm_err_prefix(zdm_err *err, const char *fmt, ...) ZDM_PRINTF(2, 3);

/* Secrets (database passwords) that no message may carry.  zdm_db_open
 * registers every password it finds in a URL, as written and decoded;
 * from then on every zdm_err message and detail, every log line and every
 * history row is passed through zdm_err_scrub, which replaces each
 * registered secret by "*****".  Secrets shorter than 4 bytes are not
 * registered (scrubbing them would mangle every message); the URL itself
 * is still redacted by the URL parser whatever the length.  Copies. */
void zdm_err_add_secret(const char *s, size_t n);
/* In place; truncates to size (on a UTF-8 boundary) when the result grows. */
void zdm_err_scrub(char *buf, size_t size);
/* A malloc'd copy of s with every registered secret replaced, of any
 * length (for log lines, history details, HTTP bodies); NULL only when
 * out of memory. */
char *zdm_err_scrub_dup(const char *s);
/* Cuts a NUL-terminated string back to the last whole UTF-8 character, so
 * a message truncated at a byte limit is still valid UTF-8 (PostgreSQL
 * refuses a text parameter that is not). */
void zdm_err_utf8_trim(char *s);

#endif
