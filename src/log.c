/*
 * log.c -- see log.h.
 */
#define _GNU_SOURCE /* fopencookie: the --json output stream */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static zdm_log_level min_level = ZDM_LOG_INFO;
static zdm_log_format format = ZDM_LOGF_TEXT;
static FILE *stream;
static FILE *events;
static int journal = -1;
static char *progress_line; /* the bar currently drawn, NULL when none */
static char worker_tag[32];  /* "2/4" in a worker of zdm backfill --workers, else "" */

void zdm_log_set_level(zdm_log_level min) { min_level = min; }
zdm_log_level zdm_log_get_level(void) { return min_level; }
void zdm_log_set_stream(FILE *f) { stream = f; }
FILE *zdm_log_stream(void) { return stream ? stream : stderr; }
void zdm_log_set_format(zdm_log_format f) { format = f; }
void zdm_log_set_events(FILE *f) { events = f; }
zdm_log_format zdm_log_get_format(void) { return format; }
int zdm_log_events_on(void) { return events != NULL; }
void zdm_log_set_journal(int on) { journal = on; }

int zdm_log_parse_format(const char *s)
{
    if (strcmp(s, "text") == 0)
        return ZDM_LOGF_TEXT;
    if (strcmp(s, "kv") == 0 || strcmp(s, "logfmt") == 0 || strcmp(s, "key=value") == 0)
        return ZDM_LOGF_KV;
    if (strcmp(s, "json") == 0)
        return ZDM_LOGF_JSON;
    return -1;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* systemd connects stderr to the journal and names that stream in
 * $JOURNAL_STREAM ("DEV:INODE"); only then do "<N>" prefixes mean
 * anything (and only then are they stripped). */
static int journal_on(FILE *f)
{
    if (journal >= 0)
        return journal;
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(fileno(f), &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* logfmt value: bare when it has no space, quote, '=' or control char. */
static void kv_value(zdm_buf *b, const char *v)
{
    int bare = *v != 0;
    for (const char *c = v; *c && bare; c++)
        if (*c == ' ' || *c == '"' || *c == '=' || *c == '\\' || (unsigned char)*c < 0x20)
            bare = 0;
    if (bare) {
        zdm_buf_puts(b, v);
        return;
    }
    zdm_buf_puts(b, "\"");
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\')
            zdm_buf_printf(b, "\\%c", *c);
        else if (*c == '\n')
            zdm_buf_puts(b, "\\n");
        else if (*c == '\t')
            zdm_buf_puts(b, "\\t");
        else if ((unsigned char)*c < 0x20)
            zdm_buf_printf(b, "\\u%04x", (unsigned char)*c);
        else
            zdm_buf_putn(b, c, 1);
    }
    zdm_buf_puts(b, "\"");
}

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A JSON string from text that may not be valid UTF-8 (hook output). */
static json_t *jtext(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = zdm_xstrdup(s);
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    j = json_string(copy);
    free(copy);
    return j ? j : json_string("");
}

static void progress_clear(FILE *f)
{
    if (progress_line)
        fputs("\r\033[K", f);
}

static void progress_draw(FILE *f)
{
    if (progress_line)
        fputs(progress_line, f);
}

void zdm_log_set_worker(const char *tag)
{
    snprintf(worker_tag, sizeof worker_tag, "%s", tag ? tag : "");
}

const char *zdm_log_worker(void)
{
    return worker_tag;
}

/* The backfill's HTTP thread (httpstat.c) may log while the worker logs or
 * draws its progress bar: one lock keeps lines whole and progress_line
 * owned by one writer at a time. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_event_locked(const char *event, const char *plan, const char *phase, json_t *fields)
{
    if (!events) {
        json_decref(fields);
        return;
    }
    char ts[40];
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string(event));
    json_object_set_new(o, "time", json_string(zdm_format_time(zdm_now_ms(), ts, sizeof ts)));
    json_object_set_new(o, "plan", jstr_or_null(plan));
    json_object_set_new(o, "phase", jstr_or_null(phase));
    if (worker_tag[0])
        json_object_set_new(o, "worker", json_string(worker_tag));
    if (fields)
        json_object_update(o, fields);
    json_decref(fields);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line) {
        fputs(line, events);
        fputc('\n', events);
        fflush(events);
        free(line);
    }
}

void zdm_log_event(const char *event, const char *plan, const char *phase, json_t *fields)
{
    pthread_mutex_lock(&log_mu);
    log_event_locked(event, plan, phase, fields);
    pthread_mutex_unlock(&log_mu);
}

static void log_locked(zdm_log_level lvl, const char *plan, const char *phase, const char *fmt, va_list ap);

void zdm_log(zdm_log_level lvl, const char *plan, const char *phase, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_mu);
    log_locked(lvl, plan, phase, fmt, ap);
    pthread_mutex_unlock(&log_mu);
    va_end(ap);
}

static void log_locked(zdm_log_level lvl, const char *plan, const char *phase, const char *fmt, va_list ap)
{
    zdm_buf msg = {0};
    zdm_buf_vprintf(&msg, fmt, ap);
    /* Every log line passes the one scrub of registered passwords (err.h). */
    char *scrubbed = zdm_err_scrub_dup(msg.data ? msg.data : "");
    const char *m = scrubbed ? scrubbed : "(message withheld: out of memory)";

    char ts[40];
    zdm_format_time(zdm_now_ms(), ts, sizeof ts);
    FILE *f = zdm_log_stream();
    static const int priority[] = {7, 6, 4, 3};
    zdm_buf b = {0};
    if (journal_on(f))
        zdm_buf_printf(&b, "<%d>", priority[lvl]);
    switch (format) {
    case ZDM_LOGF_KV:
        zdm_buf_printf(&b, "time=%s level=%s pid=%d", ts, level_names[lvl], (int)getpid());
        if (worker_tag[0])
            zdm_buf_printf(&b, " worker=%s", worker_tag);
        if (plan) {
            zdm_buf_puts(&b, " plan=");
            kv_value(&b, plan);
        }
        if (phase) {
            zdm_buf_puts(&b, " phase=");
            kv_value(&b, phase);
        }
        zdm_buf_puts(&b, " msg=");
        kv_value(&b, m);
        break;
    case ZDM_LOGF_JSON: {
        json_t *o = json_object();
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "level", json_string(level_names[lvl]));
        json_object_set_new(o, "pid", json_integer(getpid()));
        if (worker_tag[0])
            json_object_set_new(o, "worker", json_string(worker_tag));
        json_object_set_new(o, "plan", jstr_or_null(plan));
        json_object_set_new(o, "phase", jstr_or_null(phase));
        json_object_set_new(o, "message", jtext(m));
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        zdm_buf_puts(&b, s ? s : "{}");
        free(s);
        break;
    }
    default: {
        /* The human form keeps its old shape (scripts parse "zdm[PID] PLAN"):
         * warnings and errors are tagged, info is not; journald gets every
         * level from the priority prefix, and kv/json carry it always. */
        static const char *const tags[] = {"debug: ", "", "warning: ", "error: "};
        zdm_buf_printf(&b, "%s zdm[%d] ", ts, (int)getpid());
        if (plan)
            zdm_buf_printf(&b, "%s%s%s: ", plan, phase ? " " : "", phase ? phase : "");
        if (worker_tag[0])
            zdm_buf_printf(&b, "worker %s: ", worker_tag);
        zdm_buf_puts(&b, tags[lvl]);
        /* One event, one line: a message's own line breaks are indented
         * continuation, never a line of its own. */
        for (const char *c = m; *c; c++) {
            if (*c == '\n')
                zdm_buf_puts(&b, "\n    ");
            else
                zdm_buf_putn(&b, c, 1);
        }
        break;
    }
    }
    zdm_buf_puts(&b, "\n");
    progress_clear(f);
    fputs(b.data, f);
    progress_draw(f);
    fflush(f);
    zdm_buf_free(&b);

    if (events) {
        json_t *fl = json_object();
        json_object_set_new(fl, "level", json_string(level_names[lvl]));
        json_object_set_new(fl, "message", jtext(m));
        log_event_locked("log", plan, phase, fl);
    }
    free(scrubbed); /* m points into it: freed after its last use */
    zdm_buf_free(&msg);
}

void zdm_log_final_error(FILE *f, const zdm_err *err)
{
    const char *pri = journal_on(f) ? "<3>" : "";
    char ts[40];
    zdm_format_time(zdm_now_ms(), ts, sizeof ts);
    zdm_buf b = {0};
    switch (format) {
    case ZDM_LOGF_KV:
        zdm_buf_printf(&b, "%stime=%s level=error pid=%d", pri, ts, (int)getpid());
        if (worker_tag[0])
            zdm_buf_printf(&b, " worker=%s", worker_tag);
        zdm_buf_puts(&b, " msg=");
        kv_value(&b, err->msg);
        if (err->detail[0]) {
            zdm_buf_puts(&b, " detail=");
            kv_value(&b, err->detail);
        }
        if (err->sqlstate[0])
            zdm_buf_printf(&b, " sqlstate=%s", err->sqlstate);
        zdm_buf_puts(&b, "\n");
        break;
    case ZDM_LOGF_JSON: {
        json_t *o = json_object();
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "level", json_string("error"));
        json_object_set_new(o, "pid", json_integer(getpid()));
        if (worker_tag[0])
            json_object_set_new(o, "worker", json_string(worker_tag));
        json_object_set_new(o, "plan", json_null());
        json_object_set_new(o, "phase", json_null());
        json_object_set_new(o, "message", jtext(err->msg));
        json_object_set_new(o, "detail", err->detail[0] ? jtext(err->detail) : json_null());
        json_object_set_new(o, "sqlstate", err->sqlstate[0] ? json_string(err->sqlstate) : json_null());
        char *d = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        zdm_buf_printf(&b, "%s%s\n", pri, d ? d : "{}");
        free(d);
        break;
    }
    default:
        zdm_buf_printf(&b, "%szdm: %s%s%s%s\n", pri, worker_tag[0] ? "worker " : "", worker_tag,
                       worker_tag[0] ? ": " : "", err->msg);
        if (err->detail[0])
            zdm_buf_printf(&b, "%s  -> %s\n", pri, err->detail);
    }
    if (f == zdm_log_stream())
        progress_clear(f);
    fputs(b.data, f);
    fflush(f);
    zdm_buf_free(&b);
}

void zdm_progress_show(const char *line)
{
    FILE *f = zdm_log_stream();
    pthread_mutex_lock(&log_mu);
    free(progress_line);
    progress_line = zdm_xasprintf("\r%s\033[K", line);
    fputs(progress_line, f);
    fflush(f);
    pthread_mutex_unlock(&log_mu);
}

void zdm_progress_end(void)
{
    FILE *f = zdm_log_stream();
    pthread_mutex_lock(&log_mu);
    progress_clear(f);
    fflush(f);
    free(progress_line);
    progress_line = NULL;
    pthread_mutex_unlock(&log_mu);
}

/* ---- --json: a command's text output as JSON events ---- */

typedef struct json_out {
    FILE *real;
    zdm_buf pend;   /* a JSON document in progress, or a partial line */
    size_t scanned; /* pend[0..scanned) holds no line end worth a parse */
} json_out;

static int starts_document(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    return *s == '{' || *s == '[';
}

static void emit_lines(json_out *j, const char *s, size_t n)
{
    while (n) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl ? (size_t)(nl - s) : n;
        if (len) {
            char *line = zdm_xstrndup(s, len);
            json_t *o = json_object();
            json_object_set_new(o, "event", json_string("output"));
            if (worker_tag[0])
                json_object_set_new(o, "worker", json_string(worker_tag));
            json_object_set_new(o, "message", jtext(line));
            char *d = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (d) {
                fputs(d, j->real);
                fputc('\n', j->real);
                free(d);
            }
            json_decref(o);
            free(line);
        }
        if (!nl)
            break;
        n -= len + 1;
        s = nl + 1;
    }
    fflush(j->real);
}

static void pend_consume(json_out *j, size_t used)
{
    memmove(j->pend.data, j->pend.data + used, j->pend.len - used + 1);
    j->pend.len -= used;
    j->scanned = 0;
}

/* Moves every finished unit of pend out: whole JSON documents as they are,
 * whole text lines as events.  Linear in the output: a document is parsed
 * only at a line that can end it (one starting with '}' or ']', as
 * json_dumpf's indented form ends, or its first line, for a compact one). */
static void json_out_drain(json_out *j, int at_close)
{
    while (j->pend.len) {
        if (starts_document(j->pend.data)) {
            size_t used = 0;
            json_t *doc = NULL;
            while (!doc) {
                char *nl = memchr(j->pend.data + j->scanned, '\n', j->pend.len - j->scanned);
                size_t end = nl ? (size_t)(nl - j->pend.data) + 1 : j->pend.len;
                if (!nl && !at_close)
                    break;
                size_t line = j->scanned; /* where the line just ended began */
                char c = j->pend.data[line];
                if (line == 0 || c == '}' || c == ']' || !nl) {
                    json_error_t e;
                    doc = json_loadb(j->pend.data, end, JSON_DISABLE_EOF_CHECK, &e);
                    if (doc)
                        used = end;
                }
                j->scanned = end;
                if (!nl)
                    break;
            }
            if (doc) {
                fwrite(j->pend.data, 1, used, j->real);
                if (j->pend.data[used - 1] != '\n')
                    fputc('\n', j->real);
                fflush(j->real);
                json_decref(doc);
                pend_consume(j, used);
                continue;
            }
            if (!at_close && j->pend.len < (16u << 20))
                return; /* more of the document to come */
            /* not JSON after all: plain lines */
        }
        char *nl = memchr(j->pend.data, '\n', j->pend.len);
        if (!nl && !at_close)
            return;
        size_t len = nl ? (size_t)(nl - j->pend.data) + 1 : j->pend.len;
        emit_lines(j, j->pend.data, len);
        pend_consume(j, len);
    }
}

static ssize_t json_out_write(void *cookie, const char *buf, size_t size)
{
    json_out *j = cookie;
    zdm_buf_putn(&j->pend, buf, size);
    json_out_drain(j, 0);
    return (ssize_t)size;
}

static int json_out_close(void *cookie)
{
    json_out *j = cookie;
    json_out_drain(j, 1);
    zdm_buf_free(&j->pend);
    free(j);
    return 0;
}

FILE *zdm_json_out_open(FILE *real)
{
    json_out *j = zdm_xcalloc(1, sizeof *j);
    j->real = real;
    cookie_io_functions_t io = {NULL, json_out_write, NULL, json_out_close};
    FILE *f = fopencookie(j, "w", io);
    if (!f) {
        free(j);
        return NULL;
    }
    setvbuf(f, NULL, _IONBF, 0);
    return f;
}
