/*
 * err.c -- filling zdm_err.  Messages are truncated, never overflowed,
 * and always cut on a UTF-8 character boundary.
 *
 * Owns: the process-wide list of secrets (database passwords) and the one
 * scrub every message goes through before it is stored or printed.  Every
 * zdm_err is scrubbed here as it is filled, so a password quoted by a
 * driver, a server or a hook cannot reach an error message, a log line, a
 * history row or /status, whichever path the text takes.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDACTED "*****"
#define MIN_SECRET 4

static char **secrets;
static size_t nsecrets, capsecrets;

void zdm_err_add_secret(const char *s, size_t n)
{
    if (!s || n < MIN_SECRET)
        return;
    for (size_t i = 0; i < nsecrets; i++)
        if (strlen(secrets[i]) == n && memcmp(secrets[i], s, n) == 0)
            return;
    if (nsecrets == capsecrets) {
        size_t cap = capsecrets ? capsecrets * 2 : 8;
        char **v = realloc(secrets, cap * sizeof *v);
        if (!v)
            abort(); /* a secret we cannot remember could leak: stop */
        secrets = v;
        capsecrets = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy)
        abort();
    memcpy(copy, s, n);
    copy[n] = '\0';
    secrets[nsecrets++] = copy;
}

void zdm_err_utf8_trim(char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return;
    /* Walk back over continuation bytes to the lead byte of the last
     * character, and drop that character if it is incomplete. */
    size_t i = n;
    size_t back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead < 0x80 ? 1 : (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 0;
    if (want == 0) {
        if (lead >= 0x80)
            s[i - 1] = '\0'; /* a stray byte at the end: drop it */
        return;
    }
    if (back + 1 < want)
        s[i - 1] = '\0';
}

void zdm_err_scrub(char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
    for (size_t k = 0; k < nsecrets; k++) {
        const char *secret = secrets[k];
        char *hit = strstr(buf, secret);
        if (!hit)
            continue;
        size_t slen = strlen(secret), rlen = strlen(REDACTED);
        /* Rebuild into a scratch copy, then copy back truncated. */
        size_t len = strlen(buf), count = 0;
        for (const char *p = buf; (p = strstr(p, secret)) != NULL; p += slen)
            count++;
        size_t need = len + count * (rlen > slen ? rlen - slen : 0) + 1;
        char *out = malloc(need);
        if (!out) {
            snprintf(buf, size, "(message withheld: it quoted a password)");
            return;
        }
        char *o = out;
        const char *p = buf;
        while ((hit = strstr(p, secret)) != NULL) {
            memcpy(o, p, (size_t)(hit - p));
            o += hit - p;
            memcpy(o, REDACTED, rlen);
            o += rlen;
            p = hit + slen;
        }
        strcpy(o, p);
        snprintf(buf, size, "%s", out);
        free(out);
    }
    zdm_err_utf8_trim(buf);
}

char *zdm_err_scrub_dup(const char *s)
{
    if (!s)
        s = "";
    size_t len = strlen(s), rlen = strlen(REDACTED);
    /* Room for the worst case: every byte starting a replaced secret. */
    size_t size = len + 1;
    for (size_t k = 0; k < nsecrets; k++) {
        size_t count = 0, slen = strlen(secrets[k]);
        for (const char *p = s; (p = strstr(p, secrets[k])) != NULL; p += slen)
            count++;
        size += count * rlen;
    }
    char *out = malloc(size);
    if (!out)
        return NULL;
    memcpy(out, s, len + 1);
    if (nsecrets)
        zdm_err_scrub(out, size);
    return out;
}

static void finish(char *buf, size_t size)
{
    zdm_err_utf8_trim(buf);
    zdm_err_scrub(buf, size);
}

void zdm_err_clear(zdm_err *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
}

int zdm_err_set(zdm_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->detail[0] = '\0';
    err->reason[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    finish(err->msg, sizeof err->msg);
    return code;
}

void zdm_err_detail(zdm_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    finish(err->detail, sizeof err->detail);
}

void zdm_err_reason(zdm_err *err, const char *code)
{
    if (err)
        snprintf(err->reason, sizeof err->reason, "%s", code ? code : "");
}

void zdm_err_prefix(zdm_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[512], old[ZDM_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    zdm_err_utf8_trim(head); /* cut at 512 bytes, maybe inside a character */
    memcpy(old, err->msg, sizeof old);
    /* Truncation is fine here: the head names the context, the tail the cause. */
    size_t hl = strlen(head);
    if (hl >= sizeof err->msg)
        hl = sizeof err->msg - 1;
    memcpy(err->msg, head, hl);
    size_t room = sizeof err->msg - 1 - hl;
    size_t ol = strnlen(old, room);
    memcpy(err->msg + hl, old, ol);
    err->msg[hl + ol] = '\0';
    finish(err->msg, sizeof err->msg);
}
