/*
 * httpstat.h -- the backfill worker's read-only HTTP endpoint:
 *   GET|HEAD /status   JSON
 *   GET|HEAD /metrics  Prometheus text exposition
 * served on an event loop of its own: the caller's (zdm_httpstat_start)
 * or a thread's (zdm_httpstat_start_thread, the backfill worker's: it
 * answers while a batch waits for a lock).  Loopback unless told
 * otherwise.
 *
 * Bounded by construction (an endpoint on a worker must never hurt the
 * worker): each limit below has a default, documented in the README's
 * security section.  One request per connection (Connection: close).
 */
#ifndef ZDM_HTTPSTAT_H
#define ZDM_HTTPSTAT_H

#include <event2/event.h>
#include <stddef.h>

#include "err.h"
#include "util.h"

/* Request line plus headers; more is answered 431 and the connection
 * closed, without reading further. */
#define ZDM_HTTP_MAX_HEADER 8192
/* The request target (path and query); longer is 414. */
#define ZDM_HTTP_MAX_TARGET 1024
/* Requests carry no body here: any Content-Length above this, or any
 * Transfer-Encoding, is 413. */
#define ZDM_HTTP_MAX_BODY 0
/* Connections open at once; while full, the listener stops accepting
 * (new clients wait in the kernel's backlog) until one closes. */
#define ZDM_HTTP_MAX_CONNS 32
/* A connection that sends nothing (or reads nothing) for this long is
 * closed: slow clients cannot pin a slot. */
#define ZDM_HTTP_IDLE_MS 5000
/* After an accept() error (EMFILE, ENFILE, ENOBUFS, ...) the listener
 * pauses, from 100 ms doubling up to this, and logs one line per
 * ZDM_HTTP_LOG_EVERY_MS with the count of errors since the last line. */
#define ZDM_HTTP_BACKOFF_MAX_MS 2000
#define ZDM_HTTP_LOG_EVERY_MS 10000

typedef struct zdm_httpstat zdm_httpstat;

/* Fills json (for /status: what is 0) or metrics text (for /metrics:
 * what has ZDM_HTTP_FILL_METRICS, and ZDM_HTTP_FILL_NO_DEPRECATED when the
 * scrape asked /metrics?deprecated=0). */
#define ZDM_HTTP_FILL_METRICS 1
#define ZDM_HTTP_FILL_NO_DEPRECATED 2
typedef void (*zdm_httpstat_fill)(void *arg, int what, zdm_buf *out);

/* listen: "PORT" (127.0.0.1), "HOST:PORT", or "[IPv6]:PORT" such as
 * "[::1]:9187".  Errors are usage errors (exit 2) for a malformed value
 * and ZDM_EXIT_FAIL, naming the system's reason, when binding fails. */
int zdm_httpstat_start(struct event_base *base, const char *listen, zdm_httpstat_fill fill, void *arg,
                       zdm_httpstat **out, zdm_err *err) ZDM_MUST_CHECK;
void zdm_httpstat_stop(zdm_httpstat *h);
/* The same served from a thread of its own, with its own event base, so
 * that a caller blocked in a database call (a batch waiting for a lock)
 * never holds an answer up.  fill then runs on that thread: it must only
 * read what the caller published under its own lock.  Binding errors are
 * returned here, as above.  SIGINT and SIGTERM stay with the caller's
 * thread.  _stop_thread ends the thread and frees everything. */
typedef struct zdm_httpstat_thread zdm_httpstat_thread;
int zdm_httpstat_start_thread(const char *listen, zdm_httpstat_fill fill, void *arg, zdm_httpstat_thread **out,
                              zdm_err *err) ZDM_MUST_CHECK;
void zdm_httpstat_stop_thread(zdm_httpstat_thread *t);

/* Checks the form of a --listen value without binding (usage error). */
int zdm_httpstat_check_listen(const char *listen, zdm_err *err) ZDM_MUST_CHECK;

/* The request parser, on its own so that it can be fuzzed
 * (tests/fuzz/fuzz_http.c).  Looks at buf[0..len): */
typedef enum zdm_http_route { ZDM_HTTP_STATUS = 1, ZDM_HTTP_METRICS = 2 } zdm_http_route;
typedef struct zdm_http_req {
    int head;             /* HEAD: headers only */
    zdm_http_route route; /* 0 when the path is neither: 404 */
    int no_deprecated;    /* the query has deprecated=0 */
} zdm_http_req;
/* Returns 0 when more bytes are needed, 200 when a whole request was read
 * (req filled), or the HTTP status to answer with: 400 malformed, 405
 * method, 413 body, 414 target too long, 431 headers too large, 505
 * version. */
int zdm_http_parse(const char *buf, size_t len, zdm_http_req *req);

#endif
