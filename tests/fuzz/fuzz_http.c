/*
 * fuzz_http.c -- libFuzzer target for the --listen endpoint's request
 * parser (phases/httpstat.c), the only code that reads bytes from the
 * network.  Checks what the parser promises: a status from the fixed set,
 * "need more" only while under the header limit, a route only on success,
 * and the same answer for the same bytes read as a prefix of a longer
 * input once complete.  Crashes, out-of-bounds reads (the input is not
 * NUL-terminated) and leaks are the sanitizers' part.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpstat.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    zdm_http_req req;
    int st = zdm_http_parse(buf, size, &req);
    check(st == 0 || st == 200 || st == 400 || st == 405 || st == 413 || st == 414 || st == 431 ||
          st == 505);
    if (st == 0)
        check(size < ZDM_HTTP_MAX_HEADER);
    if (st != 200)
        check(req.route == 0 && req.head == 0);
    else
        check(req.route == 0 || req.route == ZDM_HTTP_STATUS || req.route == ZDM_HTTP_METRICS);
    /* A complete answer does not change when more bytes follow. */
    if (st != 0 && size < 4096) {
        char *more = malloc(size + 7);
        if (more) {
            memcpy(more, data, size);
            memcpy(more + size, "X: y\r\n\r", 7);
            zdm_http_req r2;
            int st2 = zdm_http_parse(more, size + 7, &r2);
            check(st2 == st || (st == 431) || st2 == 431);
            if (st2 == st && st == 200)
                check(r2.route == req.route && r2.head == req.head);
            free(more);
        }
    }
    free(buf);
    return 0;
}
