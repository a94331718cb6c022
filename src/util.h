/*
 * util.h -- small shared helpers: allocation, a growable string buffer,
 * string lists, durations, edit distance, SHA-256, who-am-I.
 *
 * Allocation failure is the one condition zdm does not try to recover
 * from: the zdm_x* allocators print and abort(), since every caller
 * would otherwise need an error path it could not test.
 */
#ifndef ZDM_UTIL_H
#define ZDM_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

void *zdm_xmalloc(size_t n);
void *zdm_xcalloc(size_t n, size_t size);
void *zdm_xrealloc(void *p, size_t n);
char *zdm_xstrdup(const char *s);
char *zdm_xstrndup(const char *s, size_t n);
char *zdm_xasprintf(const char *fmt, ...) ZDM_PRINTF(1, 2);

/* Growable NUL-terminated buffer. Zero-initialise, free with zdm_buf_free. */
typedef struct zdm_buf {
    char *data;
    size_t len, cap;
} zdm_buf;
void zdm_buf_putn(zdm_buf *b, const char *s, size_t n);
void zdm_buf_puts(zdm_buf *b, const char *s);
void zdm_buf_printf(zdm_buf *b, const char *fmt, ...) ZDM_PRINTF(2, 3);
void zdm_buf_vprintf(zdm_buf *b, const char *fmt, va_list ap);
char *zdm_buf_take(zdm_buf *b); /* returns data (never NULL), resets b */
void zdm_buf_free(zdm_buf *b);

/* A list of owned strings. Zero-initialise, free with zdm_strv_free. */
typedef struct zdm_strv {
    char **v;
    size_t n, cap;
} zdm_strv;
void zdm_strv_push(zdm_strv *l, const char *s);    /* copies */
void zdm_strv_push_owned(zdm_strv *l, char *s);     /* takes */
void zdm_strv_free(zdm_strv *l);

/* Parses "250ms", "2s", "5m", "24h", "7d", "1h30m" into milliseconds.
 * A bare number is taken in `bare_unit_ms` units. */
int zdm_parse_duration_ms(const char *s, int64_t bare_unit_ms, int64_t *out_ms, zdm_err *err);
/* Formats milliseconds as "1d2h", "3m20s", "450ms" into buf. */
const char *zdm_format_duration(int64_t ms, char *buf, size_t size);

size_t zdm_edit_distance(const char *a, const char *b);
/* The candidate within distance 2 of `word` (or a prefix match), or NULL. */
const char *zdm_did_you_mean(const char *word, const char *const *candidates, size_t n);

/* SHA-256 of a buffer as 64 lowercase hex chars + NUL. */
void zdm_sha256_hex(const void *data, size_t len, char out[65]);

/* "user@host" of this process, cached; never NULL. */
const char *zdm_whoami(void);

/* Milliseconds: wall clock since the epoch, and a monotonic clock. */
int64_t zdm_now_ms(void);
int64_t zdm_mono_ms(void);
/* The same clock in microseconds. */
int64_t zdm_mono_us(void);
/* UTC ISO-8601 "2026-11-21T23:32:18Z" (or with .mmm when ms) into buf. */
const char *zdm_format_time(int64_t epoch_ms, char *buf, size_t size);
/* Parses ISO-8601 "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]" (no zone = UTC). */
int zdm_parse_time(const char *s, int64_t *out_ms, zdm_err *err);
/* The same; a time without a zone is local time (TZ, else the system's)
 * when local_default is set, else UTC.  *had_zone says whether s had Z or
 * an offset. */
int zdm_parse_time_zone(const char *s, int local_default, int64_t *out_ms, int *had_zone, zdm_err *err);

/* PostgreSQL dollar quoting: "$tag$" + body + "$tag$" with a tag ("zdm",
 * then "zdm_1", "zdm_2", ...) whose delimiter occurs nowhere in the body,
 * so no identifier or expression pasted into the body can end it early. */
char *zdm_sql_dollar_quote(const char *body);
/* A '...' SQL literal of s (quotes doubled), for text pasted into
 * generated code such as a DO block; values sent to the server go as
 * parameters instead. */
char *zdm_sql_literal(const char *s);

/* Reads a whole file (NUL-terminated, len excludes it). */
int zdm_read_file(const char *path, char **out, size_t *len, zdm_err *err) ZDM_MUST_CHECK;

#endif
