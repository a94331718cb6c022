/*
 * httpstat.h -- the backfill worker's read-only HTTP endpoint:
 *   GET /status   JSON
 *   GET /metrics  Prometheus text exposition
 * served by libevent's HTTP server on the worker's own event loop, so it
 * answers between batches without threads.  Loopback unless told otherwise.
 */
#ifndef ZDM_HTTPSTAT_H
#define ZDM_HTTPSTAT_H

#include <event2/event.h>

#include "err.h"
#include "util.h"

typedef struct zdm_httpstat zdm_httpstat;

/* Fills json (for /status) or metrics text (for /metrics). */
typedef void (*zdm_httpstat_fill)(void *arg, int metrics, zdm_buf *out);

/* listen: "PORT" (127.0.0.1) or "HOST:PORT". */
int zdm_httpstat_start(struct event_base *base, const char *listen, zdm_httpstat_fill fill, void *arg,
                       zdm_httpstat **out, zdm_err *err) ZDM_MUST_CHECK;
void zdm_httpstat_stop(zdm_httpstat *h);

#endif
