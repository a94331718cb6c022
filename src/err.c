/*
 * err.c -- filling zdm_err.  Messages are truncated, never overflowed.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
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
}
