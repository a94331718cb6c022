/*
 * httpstat.c -- see httpstat.h.
 *
 * Owns: the listening socket, the connections, the request parser and
 * every limit of the endpoint.  A small server of its own rather than
 * libevent's evhttp, whose 2.1 series has no connection limit, logs one
 * line per failed accept() (an EMFILE storm wrote millions of lines) and
 * keeps reading headers without bound.  Here a connection reads at most
 * ZDM_HTTP_MAX_HEADER bytes, gets one answer and is closed; the listener
 * stops accepting while ZDM_HTTP_MAX_CONNS are open or after an accept()
 * error (with backoff), and says so once per interval.
 */
#include "httpstat.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

struct zdm_httpstat {
    struct event_base *base;
    struct evconnlistener *lev;
    struct event *resume; /* re-enables the listener after a backoff */
    zdm_httpstat_fill fill;
    void *arg;
    struct conn *conns; /* open connections, freed by zdm_httpstat_stop */
    int nconns;
    int paused_full, paused_error;
    int backoff_ms;
    long accept_errors, refused_full; /* since the last log line */
    int64_t last_err_log_ms, last_full_log_ms;
    char where[300]; /* "HOST:PORT", for log lines */
};

typedef struct conn {
    zdm_httpstat *h;
    struct bufferevent *bev;
    int answered;
    int closing;      /* answer sent, write side shut: reading to EOF */
    size_t discarded; /* bytes read and dropped while closing */
    struct conn *prev, *next; /* h->conns */
} conn;

/* ---------------------------------------------------------------- parser */

static int line_end(const char *buf, size_t len, size_t from, size_t *eol, size_t *next)
{
    for (size_t i = from; i < len; i++) {
        if (buf[i] == '\n') {
            *eol = i > from && buf[i - 1] == '\r' ? i - 1 : i;
            *next = i + 1;
            return 1;
        }
    }
    return 0;
}

static int is_token_char(unsigned char c)
{
    return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?={}", c);
}

int zdm_http_parse(const char *buf, size_t len, zdm_http_req *req)
{
    memset(req, 0, sizeof *req);
    size_t lim = len < ZDM_HTTP_MAX_HEADER ? len : ZDM_HTTP_MAX_HEADER;
    /* The end of the header block: an empty line. */
    size_t end = 0;
    for (size_t i = 0; i < lim; i++) {
        if (buf[i] == '\0')
            return 400;
        if (buf[i] != '\n')
            continue;
        if ((i >= 1 && buf[i - 1] == '\n') || (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n')) {
            end = i + 1;
            break;
        }
    }
    if (!end)
        return len >= ZDM_HTTP_MAX_HEADER ? 431 : 0;

    /* Request line: METHOD SP TARGET SP HTTP/1.x */
    size_t eol, next;
    if (!line_end(buf, end, 0, &eol, &next) || eol == 0)
        return 400;
    const char *sp1 = memchr(buf, ' ', eol);
    if (!sp1)
        return 400;
    const char *tgt = sp1 + 1;
    const char *sp2 = memchr(tgt, ' ', (size_t)(buf + eol - tgt));
    if (!sp2)
        return 400;
    size_t mlen = (size_t)(sp1 - buf), tlen = (size_t)(sp2 - tgt), vlen = (size_t)(buf + eol - sp2 - 1);
    const char *ver = sp2 + 1;
    if (mlen == 0 || tlen == 0)
        return 400;
    for (size_t i = 0; i < mlen; i++)
        if (!is_token_char((unsigned char)buf[i]))
            return 400;
    if (tlen > ZDM_HTTP_MAX_TARGET)
        return 414;
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)tgt[i] <= 32 || (unsigned char)tgt[i] == 127)
            return 400;
    if (vlen != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1'))
        return vlen >= 5 && memcmp(ver, "HTTP/", 5) == 0 ? 505 : 400;

    int head = mlen == 4 && memcmp(buf, "HEAD", 4) == 0;
    if (!head && !(mlen == 3 && memcmp(buf, "GET", 3) == 0))
        return 405;

    /* Headers: "Name: value"; no body may follow. */
    size_t p = next;
    while (p < end) {
        if (!line_end(buf, end, p, &eol, &next))
            return 400;
        if (eol == p)
            break; /* the empty line */
        const char *colon = memchr(buf + p, ':', eol - p);
        if (!colon || colon == buf + p)
            return 400;
        size_t nlen = (size_t)(colon - (buf + p));
        for (size_t i = 0; i < nlen; i++)
            if (!is_token_char((unsigned char)buf[p + i]))
                return 400;
        const char *v = colon + 1, *ve = buf + eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        if (nlen == 14 && strncasecmp(buf + p, "Content-Length", 14) == 0) {
            if (v == ve)
                return 400;
            unsigned long long n = 0;
            for (const char *q = v; q < ve && *q != ' ' && *q != '\t'; q++) {
                if (*q < '0' || *q > '9')
                    return 400;
                n = n > 1000000000ULL ? n : n * 10 + (unsigned)(*q - '0');
            }
            if (n > ZDM_HTTP_MAX_BODY)
                return 413;
        } else if (nlen == 17 && strncasecmp(buf + p, "Transfer-Encoding", 17) == 0) {
            return 413;
        }
        p = next;
    }

    req->head = head; /* filled only for a whole, good request */
    size_t plen = tlen;
    const char *q = memchr(tgt, '?', tlen);
    if (q)
        plen = (size_t)(q - tgt);
    for (const char *a = q; a && a < tgt + tlen; a = memchr(a + 1, '&', (size_t)(tgt + tlen - a - 1))) {
        size_t rest = (size_t)(tgt + tlen - a - 1);
        if (rest >= 12 && memcmp(a + 1, "deprecated=0", 12) == 0 && (rest == 12 || a[13] == '&'))
            req->no_deprecated = 1;
    }
    if (plen == 7 && memcmp(tgt, "/status", 7) == 0)
        req->route = ZDM_HTTP_STATUS;
    else if (plen == 8 && memcmp(tgt, "/metrics", 8) == 0)
        req->route = ZDM_HTTP_METRICS;
    return 200;
}

/* ---------------------------------------------------------- connections */

static void listener_update(zdm_httpstat *h)
{
    if (h->paused_full || h->paused_error)
        evconnlistener_disable(h->lev);
    else
        evconnlistener_enable(h->lev);
}

static void conn_close(conn *c)
{
    zdm_httpstat *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
    h->nconns--;
    if (h->paused_full && h->nconns < ZDM_HTTP_MAX_CONNS) {
        h->paused_full = 0;
        listener_update(h);
    }
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static void respond(conn *c, int status, const zdm_http_req *req)
{
    zdm_httpstat *h = c->h;
    zdm_buf body = {0};
    const char *type = "text/plain; charset=utf-8";
    if (status == 200 && req->route == 0)
        status = 404;
    if (status == 200) {
        int metrics = req->route == ZDM_HTTP_METRICS;
        h->fill(h->arg, metrics ? ZDM_HTTP_FILL_METRICS | (req->no_deprecated ? ZDM_HTTP_FILL_NO_DEPRECATED : 0) : 0,
                &body);
        type = metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json";
    } else if (status == 404) {
        zdm_buf_puts(&body, "not found: try /status or /metrics\n");
    } else if (status == 405) {
        zdm_buf_puts(&body, "read-only: GET or HEAD /status or /metrics\n");
    } else {
        zdm_buf_printf(&body, "%s\n", reason_of(status));
    }
    /* The body passes the one scrub of registered passwords (err.h). */
    char *clean = zdm_err_scrub_dup(body.data ? body.data : "");
    if (clean) {
        zdm_buf_free(&body);
        zdm_buf_puts(&body, clean);
        free(clean);
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                        status, reason_of(status), type, body.len,
                        status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!req->head && body.len)
        evbuffer_add(out, body.data, body.len);
    zdm_buf_free(&body);
    c->answered = 1;
    bufferevent_disable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->answered) {
        /* What the client still sends (a body we refused) is read and
         * dropped until it closes, so that closing does not reset the
         * connection before it has read the answer; bounded. */
        c->discarded += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->discarded > 4 * ZDM_HTTP_MAX_HEADER)
            conn_close(c);
        return;
    }
    size_t n = evbuffer_get_length(in);
    size_t look = n < ZDM_HTTP_MAX_HEADER ? n : ZDM_HTTP_MAX_HEADER;
    const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    zdm_http_req req;
    int status = zdm_http_parse(data ? data : "", data ? look : 0, &req);
    if (status == 0)
        return; /* wait for more, up to the limit and the idle timeout */
    if (status != 200)
        memset(&req, 0, sizeof req); /* errors get their text, even to HEAD */
    evbuffer_drain(in, n);
    respond(c, status, &req);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    if (!c->answered || c->closing || evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;
    c->closing = 1;
    shutdown(bufferevent_getfd(bev), SHUT_WR);
    bufferevent_enable(bev, EV_READ); /* to EOF, the idle timeout or the byte bound */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what; /* EOF, error or idle timeout: all end the connection */
    conn_close(arg);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)lev;
    (void)sa;
    (void)salen;
    zdm_httpstat *h = arg;
    h->backoff_ms = 0;
    conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->h = h;
    c->bev = bev;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    struct timeval idle = {ZDM_HTTP_IDLE_MS / 1000, (ZDM_HTTP_IDLE_MS % 1000) * 1000};
    bufferevent_set_timeouts(bev, &idle, &idle);
    /* Stop reading once the header limit is buffered: the parser decides
     * with what it has (431), and a flood stays in the kernel. */
    bufferevent_setwatermark(bev, EV_READ, 0, ZDM_HTTP_MAX_HEADER);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (h->nconns >= ZDM_HTTP_MAX_CONNS) {
        h->paused_full = 1;
        listener_update(h);
        h->refused_full++;
        int64_t now = zdm_mono_ms();
        if (!h->last_full_log_ms || now - h->last_full_log_ms >= ZDM_HTTP_LOG_EVERY_MS) {
            zdm_log(ZDM_LOG_WARN, NULL, NULL,
                    "http %s: %d connections open, the limit; new ones wait until one closes "
                    "(%ld times since the last report)",
                    h->where, h->nconns, h->refused_full);
            h->last_full_log_ms = now;
            h->refused_full = 0;
        }
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    zdm_httpstat *h = arg;
    h->paused_error = 0;
    listener_update(h);
}

/* accept() failed (EMFILE and friends): pause instead of spinning, and
 * report once per interval with a count. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    zdm_httpstat *h = arg;
    int e = EVUTIL_SOCKET_ERROR();
    h->accept_errors++;
    h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : 100;
    if (h->backoff_ms > ZDM_HTTP_BACKOFF_MAX_MS)
        h->backoff_ms = ZDM_HTTP_BACKOFF_MAX_MS;
    h->paused_error = 1;
    listener_update(h);
    struct timeval tv = {h->backoff_ms / 1000, (h->backoff_ms % 1000) * 1000};
    evtimer_add(h->resume, &tv);
    int64_t now = zdm_mono_ms();
    if (!h->last_err_log_ms || now - h->last_err_log_ms >= ZDM_HTTP_LOG_EVERY_MS) {
        zdm_log(ZDM_LOG_WARN, NULL, NULL,
                "http %s: accept failed: %s; pausing the listener %d ms (%ld errors since the last report)",
                h->where, evutil_socket_error_to_string(e), h->backoff_ms, h->accept_errors);
        h->last_err_log_ms = now;
        h->accept_errors = 0;
    }
}

/* ------------------------------------------------------------- starting */

/* "PORT", "HOST:PORT" or "[V6]:PORT" into host and port strings. */
static int split_listen(const char *listen, char *host, size_t hsize, char *port, size_t psize, zdm_err *err)
{
    const char *port_s;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':' || close == listen + 1 || (size_t)(close - listen - 1) >= hsize)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": expected [IPV6]:PORT, such as [::1]:9187",
                               listen);
        memcpy(host, listen + 1, (size_t)(close - listen - 1));
        host[close - listen - 1] = '\0';
        port_s = close + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon && memchr(listen, ':', (size_t)(colon - listen)))
            return zdm_err_set(err, ZDM_EXIT_USAGE,
                               "--listen \"%s\": an IPv6 address goes in brackets, such as [::1]:9187", listen);
        if (colon) {
            size_t n = (size_t)(colon - listen);
            if (n == 0 || n >= hsize)
                return zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": expected PORT or HOST:PORT", listen);
            memcpy(host, listen, n);
            host[n] = '\0';
            port_s = colon + 1;
        } else {
            snprintf(host, hsize, "127.0.0.1");
            port_s = listen;
        }
    }
    char *end;
    long num = strtol(port_s, &end, 10);
    if (!*port_s || *end || num < 1 || num > 65535)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": the port must be a number from 1 to 65535",
                           listen);
    snprintf(port, psize, "%ld", num);
    return 0;
}

int zdm_httpstat_check_listen(const char *listen, zdm_err *err)
{
    char host[256], port[16];
    int rc = split_listen(listen, host, sizeof host, port, sizeof port, err);
    if (rc != 0)
        zdm_err_detail(err, "--listen PORT serves on 127.0.0.1; HOST:PORT or [::1]:PORT for another address");
    return rc;
}

int zdm_httpstat_start(struct event_base *base, const char *listen, zdm_httpstat_fill fill, void *arg,
                       zdm_httpstat **out, zdm_err *err)
{
    *out = NULL;
    char host[256], port[16];
    int rc = split_listen(listen, host, sizeof host, port, sizeof port, err);
    if (rc != 0) {
        zdm_err_detail(err, "--listen PORT serves on 127.0.0.1; HOST:PORT or [::1]:PORT for another address");
        return rc;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "--listen \"%s\": cannot resolve \"%s\": %s", listen, host,
                    gai_strerror(gai));
        zdm_err_detail(err, "use an address of this host, such as 127.0.0.1 or [::1]");
        return ZDM_EXIT_USAGE;
    }
    zdm_httpstat *h = zdm_xcalloc(1, sizeof *h);
    h->base = base;
    h->fill = fill;
    h->arg = arg;
    snprintf(h->where, sizeof h->where, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    int last_errno = 0;
    for (struct addrinfo *a = ai; a && !h->lev; a = a->ai_next) {
        h->lev = evconnlistener_new_bind(base, on_accept, h,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 64,
                                         a->ai_addr, (int)a->ai_addrlen);
        if (!h->lev)
            last_errno = errno;
    }
    freeaddrinfo(ai);
    if (!h->lev) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "--listen: cannot listen on %s: %s", h->where,
                    last_errno ? strerror(last_errno) : "no usable address");
        zdm_err_detail(err, last_errno == EADDRINUSE
                                ? "another process holds the port: choose another with --listen"
                                : "use an address of this host (127.0.0.1, [::1], or one of its interfaces)");
        free(h);
        return ZDM_EXIT_FAIL;
    }
    evconnlistener_set_error_cb(h->lev, on_accept_error);
    h->resume = evtimer_new(base, on_resume, h);
    *out = h;
    return 0;
}

void zdm_httpstat_stop(zdm_httpstat *h)
{
    if (!h)
        return;
    while (h->conns)
        conn_close(h->conns);
    evconnlistener_free(h->lev);
    event_free(h->resume);
    free(h);
}

/* ---------------------------------------------------------------- thread */

struct zdm_httpstat_thread {
    struct event_base *base; /* used by the thread alone between start and join */
    zdm_httpstat *h;
    struct event *quit;      /* the read end of wake: ends the loop */
    int wake[2];
    pthread_t tid;
};

static void on_quit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void *serve(void *arg)
{
    zdm_httpstat_thread *t = arg;
    event_base_dispatch(t->base);
    return NULL;
}

static void thread_free(zdm_httpstat_thread *t)
{
    zdm_httpstat_stop(t->h);
    if (t->quit)
        event_free(t->quit);
    if (t->base)
        event_base_free(t->base);
    for (int i = 0; i < 2; i++)
        if (t->wake[i] >= 0)
            close(t->wake[i]);
    free(t);
}

int zdm_httpstat_start_thread(const char *listen, zdm_httpstat_fill fill, void *arg, zdm_httpstat_thread **out,
                              zdm_err *err)
{
    *out = NULL;
    zdm_httpstat_thread *t = zdm_xcalloc(1, sizeof *t);
    t->wake[0] = t->wake[1] = -1;
    t->base = event_base_new();
    if (!t->base || pipe(t->wake) != 0) {
        int e = errno;
        thread_free(t);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "--listen: cannot set up the HTTP thread: %s",
                           e ? strerror(e) : "no event base");
    }
    for (int i = 0; i < 2; i++)
        fcntl(t->wake[i], F_SETFD, FD_CLOEXEC);
    int rc = zdm_httpstat_start(t->base, listen, fill, arg, &t->h, err);
    if (rc != 0) {
        thread_free(t);
        return rc;
    }
    t->quit = event_new(t->base, t->wake[0], EV_READ, on_quit, t->base);
    event_add(t->quit, NULL);
    /* The thread starts with SIGINT and SIGTERM blocked: they are the
     * worker's, whose loop and cancel act on them. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int prc = pthread_create(&t->tid, NULL, serve, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        thread_free(t);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "--listen: cannot start the HTTP thread: %s", strerror(prc));
    }
    *out = t;
    return 0;
}

void zdm_httpstat_stop_thread(zdm_httpstat_thread *t)
{
    if (!t)
        return;
    char b = 1;
    ssize_t w = write(t->wake[1], &b, 1);
    (void)w;
    pthread_join(t->tid, NULL);
    thread_free(t);
}
