/*
 * httpstat.c -- see httpstat.h.
 */
#include "httpstat.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

struct zdm_httpstat {
    struct evhttp *http;
    zdm_httpstat_fill fill;
    void *arg;
};

static void handle(struct evhttp_request *req, void *arg)
{
    zdm_httpstat *h = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_send_error(req, 405, "read-only: GET /status or /metrics");
        return;
    }
    const char *uri = evhttp_request_get_uri(req);
    int metrics;
    if (strcmp(uri, "/status") == 0 || strncmp(uri, "/status?", 8) == 0)
        metrics = 0;
    else if (strcmp(uri, "/metrics") == 0 || strncmp(uri, "/metrics?", 9) == 0)
        metrics = 1;
    else {
        evhttp_send_error(req, 404, "try /status or /metrics");
        return;
    }
    zdm_buf b = {0};
    h->fill(h->arg, metrics, &b);
    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, b.data ? b.data : "", b.len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      metrics ? "text/plain; version=0.0.4" : "application/json");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
    zdm_buf_free(&b);
}

int zdm_httpstat_start(struct event_base *base, const char *listen, zdm_httpstat_fill fill, void *arg,
                       zdm_httpstat **out, zdm_err *err)
{
    *out = NULL;
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(listen, ':');
    const char *port_s = listen;
    if (colon) {
        size_t n = (size_t)(colon - listen);
        if (n == 0 || n >= sizeof host)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": expected PORT or HOST:PORT", listen);
        memcpy(host, listen, n);
        host[n] = '\0';
        port_s = colon + 1;
    }
    char *end;
    long port = strtol(port_s, &end, 10);
    if (*end || port < 1 || port > 65535)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": bad port", listen);
    zdm_httpstat *h = zdm_xcalloc(1, sizeof *h);
    h->fill = fill;
    h->arg = arg;
    h->http = evhttp_new(base);
    if (!h->http || evhttp_bind_socket(h->http, host, (unsigned short)port) != 0) {
        if (h->http)
            evhttp_free(h->http);
        free(h);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot listen on %s:%ld (in use, or not a local address)", host, port);
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(h->http, handle, h);
    *out = h;
    return 0;
}

void zdm_httpstat_stop(zdm_httpstat *h)
{
    if (!h)
        return;
    evhttp_free(h->http);
    free(h);
}
