/*
 * db.c -- the driver-independent half of db.h.
 *
 * Owns: choosing a driver from the URL and the zdm_db lifetime
 * (zdm_db_open/close), transactions, quoted identifier paths, the row set
 * (zdm_rows), and every rule about passwords in connection strings.
 * zdm_db_redact_url() builds the only printable form of a URL, and
 * zdm_db_open() scrubs any password out of a driver's connect error before
 * it leaves this module, because libpq echoes parts of a malformed URI
 * (a bad %-escape, an unterminated "[") verbatim in its messages.
 *
 * Self-contained on purpose (no util.c): the driver layer is linked into
 * small test programs on its own.
 */
#include "db.h"
#include "mutant.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define REDACTED "*****"

/* err may be NULL (callers that do not care); sqlstate is always rewritten
 * so a stale code from an earlier error never survives. */
static void set_sqlstate(zdm_err *err, const char *state)
{
    if (err)
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state);
}

/* ---------------------------------------------------------------- buffer */

/* A growable string; `oom` latches so callers check once at the end. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

/* ------------------------------------------------------------- redaction */

/* The redacted text plus every password value met on the way, both as
 * written and decoded, so an error message quoting either can be scrubbed. */
typedef struct redactor {
    sbuf out;
    char **secrets;
    size_t nsecrets, cap;
    int oom;
    int drop;      /* leave secrets out entirely (hook URL) instead of "*****" */
    int malformed; /* a conninfo word that is not keyword=value, or an open quote */
} redactor;

static void add_secret(redactor *r, const char *s, size_t n)
{
    if (n == 0 || r->oom)
        return;
    if (r->nsecrets == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        char **v = realloc(r->secrets, cap * sizeof *v);
        if (!v) {
            r->oom = 1;
            return;
        }
        r->secrets = v;
        r->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) {
        r->oom = 1;
        return;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    r->secrets[r->nsecrets++] = copy;
}

static void redactor_free(redactor *r)
{
    for (size_t i = 0; i < r->nsecrets; i++)
        free(r->secrets[i]);
    free(r->secrets);
    free(r->out.p);
    memset(r, 0, sizeof *r);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %XX-decodes s[0..n) into a malloc'd string; bad escapes are kept as is. */
static char *pct_decode(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            d[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    return d;
}

static void add_secret_decoded(redactor *r, const char *s, size_t n)
{
    add_secret(r, s, n);
    char *d = pct_decode(s, n);
    if (!d) {
        r->oom = 1;
        return;
    }
    add_secret(r, d, strlen(d));
    free(d);
}

/* libpq keywords whose value is a secret ("sslpassword" unlocks a key). */
static int is_secret_key(const char *k, size_t n)
{
    return (n == 8 && strncasecmp(k, "password", 8) == 0) ||
           (n == 11 && strncasecmp(k, "sslpassword", 11) == 0);
}

/* Same, for a URI query key, which libpq %-decodes before matching. */
static int is_secret_uri_key(redactor *r, const char *k, size_t n)
{
    char *d = pct_decode(k, n);
    if (!d) {
        r->oom = 1;
        return 1; /* fail closed */
    }
    int yes = is_secret_key(d, strlen(d));
    free(d);
    return yes;
}

/* A URI query key libpq accepts: a connection keyword (%-decoded), or the
 * URI-only alias "ssl". */
static int uri_key_known(redactor *r, const char *k, size_t n)
{
    char *d = pct_decode(k, n);
    if (!d) {
        r->oom = 1;
        return 0;
    }
    int yes = strcmp(d, "ssl") == 0 || zdm_db_pg_keyword_known(d, strlen(d));
    free(d);
    return yes;
}

static const char *memstr(const char *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, needle, m) == 0)
            return s + i;
    return NULL;
}

/* scheme://[user[:password]@]host.../db?k=v&password=... over s[0..n).
 * The user-info is taken to end at the LAST '@' before the first '/', which
 * hides at least what libpq (first '@') would read as the password even
 * when the password holds an unescaped '@', '?' or ':'. */
static void redact_uri(redactor *r, const char *s, size_t n)
{
    const char *end = s + n;
    const char *sep = memstr(s, n, "://");
    if (!sep) {
        sb_addn(&r->out, s, n);
        return;
    }
    const char *auth = sep + 3;
    const char *slash = memchr(auth, '/', (size_t)(end - auth));
    const char *region_end = slash ? slash : end;
    const char *at = NULL;
    for (const char *p = auth; p < region_end; p++)
        if (*p == '@')
            at = p;

    const char *rest = auth;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon) {
            sb_addn(&r->out, s, (size_t)((r->drop ? colon : colon + 1) - s));
            if (!r->drop)
                sb_adds(&r->out, REDACTED);
            add_secret_decoded(r, colon + 1, (size_t)(at - colon - 1));
            /* libpq ends the user-info at the FIRST '@': the rest of such a
             * password becomes the host name and is quoted in its errors. */
            for (const char *a = colon + 1; a < at; a++)
                if (*a == '@')
                    add_secret_decoded(r, a + 1, (size_t)(at - a - 1));
            s = at;
        }
        rest = at;
    }
    const char *q = memchr(rest, '?', (size_t)(end - rest));
    if (!q) {
        sb_addn(&r->out, s, (size_t)(end - s));
        return;
    }
    sb_addn(&r->out, s, (size_t)(q - s));
    const char *p = q + 1;
    int kept = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        int secret = eq && is_secret_uri_key(r, p, (size_t)(eq - p));
        if (secret)
            add_secret_decoded(r, eq + 1, (size_t)(pe - eq - 1));
        if (!secret && pe > p && !uri_key_known(r, p, eq ? (size_t)(eq - p) : (size_t)(pe - p))) {
            /* libpq quotes an unknown query key in its error */
            r->malformed = 1;
            add_secret_decoded(r, p, (size_t)(pe - p));
            sb_addn(&r->out, kept++ ? "&" : "?", 1);
            sb_adds(&r->out, REDACTED);
            p = amp ? amp + 1 : end;
            continue;
        }
        if (!secret || !r->drop) {
            sb_addn(&r->out, kept++ ? "&" : "?", 1);
            if (secret) {
                sb_addn(&r->out, p, (size_t)(eq + 1 - p));
                sb_adds(&r->out, REDACTED);
            } else {
                sb_addn(&r->out, p, (size_t)(pe - p));
            }
        }
        p = amp ? amp + 1 : end;
    }
    if (!kept && !r->drop)
        sb_addn(&r->out, "?", 1); /* "...db?" stays as written */
}

/* Removes conninfo backslash escapes from s[0..n). */
static void add_secret_unescaped(redactor *r, const char *s, size_t n)
{
    add_secret(r, s, n);
    char *d = malloc(n + 1);
    if (!d) {
        r->oom = 1;
        return;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            i++;
        d[j++] = s[i];
    }
    add_secret(r, d, j);
    free(d);
}

/* libpq conninfo: key = value pairs separated by white space; a value is a
 * bare word or '...' with \' and \\ escapes (libpq honours backslashes in
 * bare words too).  Malformed input is copied through: libpq will reject
 * it, and nothing after a password key is ever copied. */
static void redact_conninfo(redactor *r, const char *s)
{
    const char *p = s;
    while (*p) {
        if (isspace((unsigned char)*p)) {
            sb_addn(&r->out, p++, 1);
            continue;
        }
        const char *kw = p;
        while (*p && !isspace((unsigned char)*p) && *p != '=')
            p++;
        size_t kwlen = (size_t)(p - kw);
        const char *after_kw = p;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=') {
            /* Not keyword=value: libpq would refuse it quoting the word,
             * which may be a password written without its keyword. */
            r->malformed = 1;
            sb_adds(&r->out, REDACTED);
            add_secret_unescaped(r, kw, kwlen);
            p = after_kw;
            continue;
        }
        size_t out_mark = r->out.len; /* where this pair starts in out */
        sb_addn(&r->out, kw, kwlen);
        sb_addn(&r->out, after_kw, (size_t)(p - after_kw));
        sb_addn(&r->out, p++, 1);
        while (isspace((unsigned char)*p))
            sb_addn(&r->out, p++, 1);

        int quoted = *p == '\'';
        const char *v = quoted ? p + 1 : p;
        const char *q = v;
        while (*q && (quoted ? *q != '\'' : !isspace((unsigned char)*q))) {
            if (*q == '\\' && q[1])
                q++;
            q++;
        }
        int closed = quoted && *q == '\'';
        const char *tok_end = closed ? q + 1 : q;
        if (quoted && !closed)
            r->malformed = 1;

        if (!is_secret_key(kw, kwlen) && !zdm_db_pg_keyword_known(kw, kwlen)) {
            /* libpq would refuse it quoting the word, which may be a
             * password written without its keyword ("...pw=" ends in "="). */
            r->malformed = 1;
            r->out.len = out_mark;
            if (r->out.p)
                r->out.p[out_mark] = '\0';
            sb_adds(&r->out, REDACTED);
            add_secret_unescaped(r, kw, kwlen);
            add_secret_unescaped(r, v, (size_t)(q - v));
            p = tok_end;
            continue;
        }
        if (is_secret_key(kw, kwlen)) {
            add_secret_unescaped(r, v, (size_t)(q - v));
            if (r->drop) {
                /* the pair and the white space before it */
                while (out_mark > 0 && r->out.p && isspace((unsigned char)r->out.p[out_mark - 1]))
                    out_mark--;
                r->out.len = out_mark;
                if (r->out.p)
                    r->out.p[out_mark] = '\0';
                p = tok_end;
                continue;
            }
            sb_adds(&r->out, REDACTED);
        } else if (quoted && !closed) {
            /* An open quote runs to the end: libpq refuses the string, and
             * whatever follows may be a password. */
            sb_adds(&r->out, REDACTED);
            add_secret_unescaped(r, v, (size_t)(q - v));
        } else if (memstr(v, (size_t)(q - v), "://")) {
            /* A URI nested as a value (dbname=postgres://u:pw@h/db). */
            if (quoted)
                sb_addn(&r->out, "'", 1);
            redact_uri(r, v, (size_t)(q - v));
            if (closed)
                sb_addn(&r->out, "'", 1);
        } else {
            sb_addn(&r->out, p, (size_t)(tok_end - p));
        }
        p = tok_end;
    }
}

static int has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* "scheme://" with an RFC 3986 scheme name. */
static int looks_like_uri(const char *s)
{
    if (!isalpha((unsigned char)*s))
        return 0;
    while (isalnum((unsigned char)*s) || *s == '+' || *s == '-' || *s == '.')
        s++;
    return strncmp(s, "://", 3) == 0;
}

static int redact(const char *url, redactor *r, int drop)
{
    memset(r, 0, sizeof *r);
    r->drop = drop;
    if (has_prefix_ci(url, "sqlite:"))
        sb_adds(&r->out, url); /* a file path: nothing secret */
    else if (looks_like_uri(url))
        redact_uri(r, url, strlen(url));
    else
        redact_conninfo(r, url);
    if (!r->out.p)
        sb_addn(&r->out, "", 0);
    if (r->out.oom || r->oom) {
        redactor_free(r);
        return -1;
    }
    return 0;
}

char *zdm_db_redact_url(const char *url)
{
    if (!url)
        return NULL;
    redactor r;
    if (redact(url, &r, 0) != 0)
        return NULL;
    char *s = r.out.p;
    r.out.p = NULL;
    redactor_free(&r);
    return s;
}

char *zdm_db_url_without_password(const char *url)
{
    if (!url)
        return NULL;
    redactor r;
    if (redact(url, &r, 1) != 0)
        return NULL;
    char *s = r.out.p;
    r.out.p = NULL;
    /* A conninfo that loses its only pair would be "": libpq reads that
     * as "all defaults", which is what the pair-less form means anyway. */
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    redactor_free(&r);
    return s;
}

/* Replaces every occurrence of every secret in buf (NUL-terminated, of
 * `size` bytes) by REDACTED, truncating if the result grows too long. */
static void scrub(char *buf, size_t size, const redactor *r)
{
    for (size_t i = 0; i < r->nsecrets; i++) {
        const char *secret = r->secrets[i];
        size_t slen = strlen(secret);
        if (!strstr(buf, secret))
            continue;
        sbuf out = {0};
        const char *p = buf, *hit;
        while ((hit = strstr(p, secret)) != NULL) {
            sb_addn(&out, p, (size_t)(hit - p));
            sb_adds(&out, REDACTED);
            p = hit + slen;
        }
        sb_adds(&out, p);
        if (out.oom) {
            /* Cannot rebuild it: better no message than a leaked one. */
            snprintf(buf, size, "(message withheld: it quoted a password)");
        } else {
            snprintf(buf, size, "%s", out.p);
        }
        free(out.p);
    }
}

/* ----------------------------------------------------------- connections */

zdm_db_kind zdm_db_kind_of_url(const char *url)
{
    if (!url || !*url)
        return 0;
    /* libpq matches its URI prefixes case-sensitively: "POSTGRESQL://..."
     * would be a database NAME to it, password and all. */
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return ZDM_DB_PG;
    if (has_prefix_ci(url, "sqlite:"))
        return ZDM_DB_SQLITE;
    /* libpq conninfo: starts with "keyword =" */
    const char *p = url;
    while (isspace((unsigned char)*p))
        p++;
    const char *kw = p;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    if (p == kw)
        return 0;
    while (isspace((unsigned char)*p))
        p++;
    return *p == '=' ? ZDM_DB_PG : 0;
}

/* What is wrong with a URL zdm refuses, in words that quote none of it
 * (a scheme name is quoted only when it is a plain short word). */
static void describe_bad_url(const char *url, zdm_db_kind kind, int malformed, char *why, size_t size)
{
    size_t n = strlen(url);
    const char *p = url;
    if (!*url) {
        snprintf(why, size, "it is empty");
        return;
    }
    if (kind == ZDM_DB_PG && malformed) {
        snprintf(why, size, looks_like_uri(url)
                                ? "a query parameter is not a connection option libpq knows (invalid keyword)"
                                : "the conninfo is not a list of keyword=value pairs libpq knows (a word without "
                                  "\"=\", an invalid keyword, or an unterminated quote)");
        return;
    }
    if (isspace((unsigned char)url[0]) || isspace((unsigned char)url[n - 1])) {
        snprintf(why, size, "it starts or ends with white space");
        return;
    }
    if ((url[0] == '"' || url[0] == '\'') && n >= 2 && url[n - 1] == url[0]) {
        snprintf(why, size, "it is wrapped in quotes (as some env files keep them); remove them");
        return;
    }
    size_t scheme = 0;
    while (isalnum((unsigned char)p[scheme]) || p[scheme] == '+' || p[scheme] == '-' || p[scheme] == '.')
        scheme++;
    int pgish = (scheme == 8 && strncasecmp(p, "postgres", 8) == 0) ||
                (scheme == 10 && strncasecmp(p, "postgresql", 10) == 0);
    if (pgish && strncmp(p + scheme, "://", 3) == 0) {
        snprintf(why, size, "write the scheme \"postgresql://\" or \"postgres://\" in lower case "
                            "(libpq would take the whole string for a database name)");
    } else if (pgish && p[scheme] == ':') {
        snprintf(why, size, "\"//\" is missing after \"%.*s:\"", (int)scheme, p);
    } else if (pgish && p[scheme] == '/') {
        snprintf(why, size, "\":\" is missing before \"//\"");
    } else if (scheme > 0 && scheme <= 16 && strncmp(p + scheme, "://", 3) == 0) {
        snprintf(why, size, "scheme \"%.*s\" is not one zdm knows", (int)scheme, p);
    } else {
        snprintf(why, size, "it is neither a postgresql:// URL, a keyword=value conninfo, nor sqlite:PATH");
    }
}

int zdm_db_open(const char *url, zdm_db **out, zdm_err *err)
{
    return zdm_db_open_ex(url, 0, out, err);
}

int zdm_db_created(const zdm_db *db) { return db && db->created; }
int zdm_db_missing(const zdm_db *db) { return db && db->missing; }

int zdm_db_open_ex(const char *url, int flags, zdm_db **out, zdm_err *err)
{
    *out = NULL;
    if (!url)
        url = "";
    redactor r;
    if (redact(url, &r, 0) != 0) {
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "out of memory opening a database connection");
    }

    /* From here on no message may carry these, whatever quotes them. */
    for (size_t i = 0; i < r.nsecrets; i++)
        zdm_err_add_secret(r.secrets[i], strlen(r.secrets[i]));

    const zdm_db_ops *ops = NULL;
    zdm_db_kind kind = zdm_db_kind_of_url(url);
    switch (kind) {
    case ZDM_DB_PG: ops = &zdm_db_pg_ops; break;
    case ZDM_DB_SQLITE: ops = &zdm_db_sqlite_ops; break;
    default: break;
    }
    if (ops && kind == ZDM_DB_PG && r.malformed)
        ops = NULL; /* a string libpq would refuse quoting a piece of it */
    if (ops && kind == ZDM_DB_PG && looks_like_uri(url) && isspace((unsigned char)url[strlen(url) - 1]))
        ops = NULL; /* libpq would keep the space in the last value: a pasting mistake */
    /* a file name ending in white space (an env file's CRLF, a pasted
     * space) is the same mistake: zdm made that new, empty file and ran
     * the plans there, leaving the real database as it was */
    if (ops && kind == ZDM_DB_SQLITE && isspace((unsigned char)url[strlen(url) - 1]))
        ops = NULL;
    if (!ops) {
        /* Redact first, then complain, and even then describe the string
         * rather than quote it: a string zdm cannot parse is one whose
         * password zdm cannot be sure to have found. */
        char why[400];
        describe_bad_url(url, kind, r.malformed, why, sizeof why);
        zdm_err_set(err, ZDM_EXIT_USAGE, "unrecognised database URL (not shown: it may hold a password): %s", why);
        set_sqlstate(err, "");
        zdm_err_detail(err, "use postgresql://user@host/dbname, a libpq conninfo "
                            "such as \"host=... dbname=...\", or sqlite:PATH; pass the password "
                            "in PGPASSFILE or PGPASSWORD rather than in the URL");
        redactor_free(&r);
        return ZDM_EXIT_USAGE;
    }

    zdm_db *db = calloc(1, sizeof *db);
    if (!db) {
        redactor_free(&r);
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "out of memory opening a database connection");
    }
    db->ops = ops;
    db->flags = flags;
    db->safe_url = r.out.p;
    r.out.p = NULL;

    int rc = ops->connect(db, url, err);
    if (rc != ZDM_OK) {
        if (err) {
            scrub(err->msg, sizeof err->msg, &r);
            scrub(err->detail, sizeof err->detail, &r);
        }
        redactor_free(&r);
        if (db->conn)
            ops->close(db);
        free(db->path);
        free(db->safe_url);
        free(db);
        return rc;
    }
    redactor_free(&r);
    *out = db;
    return ZDM_OK;
}

void zdm_db_close(zdm_db *db)
{
    if (!db)
        return;
    if (db->conn)
        db->ops->close(db); /* closing discards an open transaction */
    free(db->path);
    free(db->safe_url);
    free(db->app_sql);
    free(db);
}

int zdm_db_reopen(zdm_db *db, const char *url, zdm_err *err)
{
    zdm_db *fresh = NULL;
    /* A reconnect never creates: the file was there a moment ago. */
    int rc = zdm_db_open_ex(url, db->flags | ZDM_DB_MUST_EXIST, &fresh, err);
    if (rc != ZDM_OK)
        return rc;
    zdm_db old = *db;
    *db = *fresh;
    *fresh = old;
    zdm_db_close(fresh); /* the old connection */
    return ZDM_OK;
}

long long zdm_db_changes(const zdm_db *db) { return db->changes; }
zdm_db_kind zdm_db_kind_of(const zdm_db *db) { return db->ops->kind; }
const char *zdm_db_dialect_name(const zdm_db *db) { return db->ops->name; }
const char *zdm_db_safe_url(const zdm_db *db) { return db->safe_url; }

int zdm_db_query(zdm_db *db, const char *sql, int nparams,
                 const char *const *params, zdm_rows **out, zdm_err *err)
{
    if (out)
        *out = NULL;
    if (nparams < 0 || (nparams > 0 && !params))
    {
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "%s: bad parameter list (%d)",
                           db->ops->name, nparams);
    }
    if (zdm_crashpoint()) {
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "%s: injected failure (ZDM_CRASH_AT)", db->ops->name);
    }
    return db->ops->query(db, sql, nparams, params, out, err);
}

int zdm_db_query_all(zdm_db *db, size_t n, const char *const *sqls, const int *nparams,
                     const char *const *const *params, size_t *failed, zdm_err *err)
{
    *failed = n;
    if (n > ZDM_DB_QUERY_ALL_MAX) {
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "%s: %zu statements at once (at most %d)", db->ops->name, n,
                           ZDM_DB_QUERY_ALL_MAX);
    }
    /* each statement is a crash point, as a query of its own would be:
     * the ones before an injected failure run */
    size_t upto = n;
    for (size_t i = 0; i < n && upto == n; i++)
        if (zdm_crashpoint())
            upto = i;
    int rc = 0;
    if (upto > 0 && db->ops->query_all)
        rc = db->ops->query_all(db, upto, sqls, nparams, params, failed, err);
    for (size_t i = 0; upto > 0 && !db->ops->query_all && rc == 0 && i < upto; i++)
        if ((rc = db->ops->query(db, sqls[i], nparams[i], params[i], NULL, err)) != 0)
            *failed = i;
    if (rc == 0 && upto < n) {
        *failed = upto;
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "%s: injected failure (ZDM_CRASH_AT)", db->ops->name);
    }
    if (rc == 0)
        *failed = n;
    return rc;
}

int zdm_db_exec_script(zdm_db *db, const char *sql, zdm_err *err)
{
    if (zdm_crashpoint()) {
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "%s: injected failure (ZDM_CRASH_AT)", db->ops->name);
    }
    return db->ops->exec_script(db, sql, err);
}

/* An interval needs a few statements for its mean to say anything; fewer
 * (an idle application) keeps the last mean. */
#define APP_MIN_CALLS 5
#define APP_READ_EVERY_US 250000

/* pg_stat_statements, where it is installed and loaded: the application's
 * own statements' mean execution time (zdm_db_probe_app_us).  Reading the
 * view reads every statement's text, so not more than every 250 ms.  Any
 * failure (not in shared_preload_libraries, no privilege, a version before
 * 1.8 without total_exec_time) turns it off for this connection: the probe
 * is the round trip alone, as without the extension. */
static void app_stats_read(zdm_db *db)
{
    long long now = zdm_mono_us();
    if (db->app_stats < 0 || (db->app_stats == 1 && now - db->app_read_us < APP_READ_EVERY_US))
        return;
    zdm_err e;
    zdm_err_clear(&e);
    zdm_rows *r = NULL;
    int ok = 0;
    if (db->app_stats == 0) {
        db->app_stats = -1;
        db->app_mean_us = -1;
        if (db->ops->query(db, "SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n "
                               "ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
                           0, NULL, &r, &e) != ZDM_OK || zdm_rows_count(r) != 1) {
            zdm_rows_free(r);
            return;
        }
        const char *ver = zdm_rows_get(r, 0, 1);
        int major = 0, minor = 0;
        if (!ver || sscanf(ver, "%d.%d", &major, &minor) != 2 || major * 100 + minor < 108) {
            zdm_rows_free(r);
            return;
        }
        char *schema = db->ops->ident(db, zdm_rows_get(r, 0, 0));
        zdm_rows_free(r);
        r = NULL;
        /* 1.9 (PostgreSQL 14) has toplevel: a trigger's statements are
         * part of the statement that fired it */
        const char *fmt = "SELECT coalesce(sum(calls), 0)::float8, coalesce(sum(total_exec_time), 0)::float8 "
                          "FROM %s.pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE "
                          "datname = current_database()) AND query NOT LIKE '%%zdm%%'%s";
        const char *top = major * 100 + minor >= 109 ? " AND toplevel" : "";
        size_t len = strlen(fmt) + strlen(schema) + strlen(top);
        db->app_sql = malloc(len);
        if (db->app_sql)
            snprintf(db->app_sql, len, fmt, schema, top);
        free(schema);
        if (!db->app_sql)
            return;
    }
    if (db->ops->query(db, db->app_sql, 0, NULL, &r, &e) == ZDM_OK && zdm_rows_count(r) == 1) {
        double calls = strtod(zdm_rows_get(r, 0, 0), NULL), ms = strtod(zdm_rows_get(r, 0, 1), NULL);
        double dc = db->app_stats == 1 ? calls - db->app_calls : calls;
        double dm = db->app_stats == 1 ? ms - db->app_ms : ms;
        if (dc >= APP_MIN_CALLS && dm >= 0)
            db->app_mean_us = (long long)(dm * 1000.0 / dc);
        else if (dc < 0) /* pg_stat_statements_reset(): start over */
            db->app_mean_us = calls >= APP_MIN_CALLS ? (long long)(ms * 1000.0 / calls) : db->app_mean_us;
        db->app_calls = calls;
        db->app_ms = ms;
        db->app_read_us = now;
        db->app_stats = 1;
        ok = 1;
    }
    zdm_rows_free(r);
    if (!ok) {
        db->app_stats = -1;
        db->app_mean_us = -1;
    }
}

/* sqlite: who else writes (zdm_db_probe_others_wrote): the backfill's
 * pacer leaves the write lock free for a writer it has seen (pacer.h).
 * An unreadable value changes nothing. */
static void others_wrote(zdm_db *db)
{
    zdm_rows *r = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    if (db->ops->query(db, "PRAGMA data_version", 0, NULL, &r, &e) == ZDM_OK && zdm_rows_count(r) == 1 &&
        zdm_rows_get(r, 0, 0)) {
        long long v = strtoll(zdm_rows_get(r, 0, 0), NULL, 10);
        db->others_wrote = db->data_version != 0 && v != db->data_version;
        db->data_version = v;
    }
    zdm_rows_free(r);
}

int zdm_db_probe(zdm_db *db, const char *probe_query, long long *us, zdm_err *err)
{
    long long t0 = zdm_mono_us();
    int rc;
    if (probe_query) {
        zdm_rows *r = NULL;
        rc = db->ops->query(db, probe_query, 0, NULL, &r, err);
        zdm_rows_free(r);
    } else if (db->ops->kind == ZDM_DB_SQLITE) {
        rc = db->ops->query(db, "BEGIN IMMEDIATE", 0, NULL, NULL, err);
        if (rc == ZDM_OK)
            others_wrote(db);
        if (rc == ZDM_OK)
            rc = db->ops->query(db, "ROLLBACK", 0, NULL, NULL, err);
    } else {
        /* named, so that pg_stat_statements' reading leaves it out */
        rc = db->ops->query(db, "SELECT 1 AS zdm_probe", 0, NULL, NULL, err);
    }
    *us = zdm_mono_us() - t0;
    if (rc == ZDM_OK && probe_query && db->ops->kind == ZDM_DB_SQLITE)
        others_wrote(db); /* after the timed part */
    if (rc == ZDM_OK && !probe_query && db->ops->kind == ZDM_DB_PG && !db->in_tx) {
        app_stats_read(db);
        if (db->app_mean_us > *us)
            *us = db->app_mean_us;
    }
    return rc;
}

int zdm_db_probe_commit(zdm_db *db, const char *probe_query, long long *us, zdm_err *err)
{
    if (probe_query || db->ops->kind != ZDM_DB_PG || db->in_tx)
        return zdm_db_probe(db, probe_query, us, err);
    long long t0 = zdm_mono_us();
    /* named, so that pg_stat_statements' reading leaves it out */
    int rc = db->ops->query(db, "SELECT txid_current() AS zdm_probe", 0, NULL, NULL, err);
    *us = zdm_mono_us() - t0;
    if (rc == ZDM_OK) {
        app_stats_read(db);
        if (db->app_mean_us > *us)
            *us = db->app_mean_us;
    }
    return rc;
}

int zdm_db_probe_others_wrote(const zdm_db *db)
{
    return db->others_wrote;
}

long long zdm_db_probe_app_us(const zdm_db *db)
{
    return db->app_stats == 1 ? db->app_mean_us : -1;
}

int zdm_db_blocked_by_me(zdm_db *db, long long *sessions, zdm_err *err)
{
    *sessions = 0;
    if (db->ops->kind != ZDM_DB_PG)
        return ZDM_OK;
    char *v = NULL;
    int rc = zdm_db_query_value(db, "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                    "AND pg_backend_pid() = ANY (pg_blocking_pids(pid))", 0, NULL, &v, err);
    if (rc == ZDM_OK && v)
        *sessions = strtoll(v, NULL, 10);
    free(v);
    return rc;
}

int zdm_db_others_active(zdm_db *db, int *active, zdm_err *err)
{
    *active = 1;
    if (db->ops->kind != ZDM_DB_PG)
        return ZDM_OK;
    char *v = NULL;
    /* state_change: an idle session that ended a transaction a moment
     * ago is an application between two transactions */
    int rc = zdm_db_query_value(db, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                    "AND pid <> pg_backend_pid() AND coalesce(application_name, '') NOT LIKE 'zdm%' "
                                    "AND (state IS NULL OR state <> 'idle' OR "
                                    "state_change > clock_timestamp() - interval '1 second')",
                                0, NULL, &v, err);
    if (rc == ZDM_OK && v)
        *active = strtoll(v, NULL, 10) > 0;
    free(v);
    return rc;
}

/* sqlite: a sample of the column in key order, about 4096 values, one
 * scan (every row drawn with the same odds, so a dense part of the key
 * space gets as many sampled values as it has rows). */
#define QUANTILE_SAMPLE 4096

static int sqlite_key_sample(zdm_db *db, const char *qt, const char *qc, zdm_rows **r, zdm_err *e)
{
    char *cnt = NULL;
    size_t len = strlen(qt) + 64;
    char *sql = malloc(len);
    if (!sql)
        return ZDM_EXIT_FAIL;
    snprintf(sql, len, "SELECT count(*) FROM %s", qt);
    int rc = zdm_db_query_value(db, sql, 0, NULL, &cnt, e);
    free(sql);
    long long rows = rc == ZDM_OK && cnt ? strtoll(cnt, NULL, 10) : 0;
    free(cnt);
    if (rc != ZDM_OK || rows < 2)
        return rc == ZDM_OK ? ZDM_EXIT_FAIL : rc;
    char every[32];
    snprintf(every, sizeof every, "%lld", rows > QUANTILE_SAMPLE ? rows / QUANTILE_SAMPLE : 1);
    len = strlen(qt) + 2 * strlen(qc) + 96;
    sql = malloc(len);
    if (!sql)
        return ZDM_EXIT_FAIL;
    snprintf(sql, len, "SELECT %s FROM %s WHERE abs(random() %% $1) = 0 ORDER BY %s", qc, qt, qc);
    const char *p[] = {every};
    rc = db->ops->query(db, sql, 1, p, r, e);
    free(sql);
    return rc;
}

int zdm_db_key_quantiles(zdm_db *db, const char *table, const char *column, int parts, long long **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (parts < 2)
        return ZDM_OK;
    char *qt = zdm_db_ident_path(db, table);
    zdm_rows *r = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    int rc;
    if (db->ops->kind == ZDM_DB_SQLITE) {
        char *qc = db->ops->ident(db, column);
        rc = qt && qc ? sqlite_key_sample(db, qt, qc, &r, &e) : ZDM_EXIT_FAIL;
        free(qc);
    } else {
        const char *p[] = {qt, column};
        /* a failure must not abort the caller's transaction */
        int sp = db->in_tx && db->ops->query(db, "SAVEPOINT zdm_quantiles", 0, NULL, NULL, &e) == ZDM_OK;
        /* histogram_bounds is anyarray: through text to numeric, which takes
         * every integer type; a non-integer column fails the cast: no split */
        rc = db->ops->query(db,
                            "SELECT b::bigint FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename "
                            "JOIN pg_namespace ns ON ns.oid = c.relnamespace AND ns.nspname = s.schemaname, "
                            "unnest(s.histogram_bounds::text::numeric[]) WITH ORDINALITY AS u(b, i) "
                            "WHERE c.oid = to_regclass($1) AND s.attname = $2 ORDER BY i",
                            2, p, &r, &e);
        if (sp) {
            zdm_err_clear(&e);
            (void)db->ops->query(db, rc == ZDM_OK ? "RELEASE SAVEPOINT zdm_quantiles"
                                                  : "ROLLBACK TO SAVEPOINT zdm_quantiles", 0, NULL, NULL, &e);
        }
    }
    free(qt);
    int nb = rc == ZDM_OK ? zdm_rows_count(r) : 0;
    /* sqlite: a sample of a column that holds anything but integers (a
     * text key, NULLs) gives no split */
    for (int i = 0; i < nb; i++) {
        const char *v = zdm_rows_get(r, i, 0);
        char *end = NULL;
        if (v)
            (void)strtoll(v, &end, 10);
        if (!v || end == v || *end)
            nb = 0;
    }
    if (nb >= 2) {
        long long *q = malloc(sizeof *q * (size_t)parts);
        int k = 0;
        for (int j = 1; q && j < parts; j++) {
            long long v = strtoll(zdm_rows_get(r, (int)((long long)j * (nb - 1) / parts), 0), NULL, 10);
            if (k == 0 || v > q[k - 1])
                q[k++] = v;
        }
        *out = q;
        *n = q ? k : 0;
    }
    zdm_rows_free(r);
    return ZDM_OK;
}

/* Split points of a key of any type and any number of columns, from a
 * sample: pg TABLESAMPLE SYSTEM (whole pages: cheap, about 20,000 rows),
 * sqlite one scan drawing each row with the same odds. */
#define SPLIT_SAMPLE 20000

int zdm_db_key_splits(zdm_db *db, const char *table, const char *const *cols, int ncols, int parts,
                      zdm_rows **out)
{
    *out = NULL;
    if (parts < 2 || ncols < 1)
        return ZDM_OK;
    char *qt = zdm_db_ident_path(db, table);
    size_t clen = 1;
    char **qc = calloc((size_t)ncols, sizeof *qc);
    for (int i = 0; qc && i < ncols; i++) {
        qc[i] = db->ops->ident(db, cols[i]);
        clen += (qc[i] ? strlen(qc[i]) : 0) + 2;
    }
    char *list = qt && qc ? malloc(clen) : NULL;
    if (list) {
        list[0] = 0;
        for (int i = 0; i < ncols; i++) {
            if (!qc[i]) {
                free(list);
                list = NULL;
                break;
            }
            if (i)
                strcat(list, ", ");
            strcat(list, qc[i]);
        }
    }
    for (int i = 0; qc && i < ncols; i++)
        free(qc[i]);
    free(qc);
    zdm_rows *r = NULL;
    zdm_err e;
    zdm_err_clear(&e);
    int rc = ZDM_EXIT_FAIL;
    char *cnt = NULL;
    size_t len = list ? strlen(qt) + 2 * strlen(list) + 256 : 0;
    char *sql = list ? malloc(len) : NULL;
    if (sql) {
        int pg = db->ops->kind == ZDM_DB_PG;
        /* a failure must not abort the caller's transaction */
        int sp = pg && db->in_tx && db->ops->query(db, "SAVEPOINT zdm_splits", 0, NULL, NULL, &e) == ZDM_OK;
        if (pg) {
            const char *p[] = {qt};
            rc = zdm_db_query_value(db, "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass($1)",
                                    1, p, &cnt, &e);
        } else {
            snprintf(sql, len, "SELECT count(*) FROM %s", qt);
            rc = zdm_db_query_value(db, sql, 0, NULL, &cnt, &e);
        }
        long long rows = rc == ZDM_OK && cnt ? strtoll(cnt, NULL, 10) : 0;
        if (rc == ZDM_OK && rows >= 2) {
            char arg[32];
            if (pg) {
                double pct = rows > SPLIT_SAMPLE ? 100.0 * SPLIT_SAMPLE / (double)rows : 100.0;
                snprintf(arg, sizeof arg, "%.6f", pct);
                snprintf(sql, len, "SELECT %s FROM %s TABLESAMPLE SYSTEM ($1) ORDER BY %s", list, qt, list);
            } else {
                snprintf(arg, sizeof arg, "%lld", rows > SPLIT_SAMPLE ? rows / SPLIT_SAMPLE : 1);
                snprintf(sql, len, "SELECT %s FROM %s WHERE abs(random() %% $1) = 0 ORDER BY %s", list, qt, list);
            }
            const char *p[] = {arg};
            rc = db->ops->query(db, sql, 1, p, &r, &e);
        } else {
            rc = ZDM_EXIT_FAIL;
        }
        if (sp) {
            zdm_err_clear(&e);
            (void)db->ops->query(db, rc == ZDM_OK ? "RELEASE SAVEPOINT zdm_splits" : "ROLLBACK TO SAVEPOINT zdm_splits",
                                 0, NULL, NULL, &e);
        }
    }
    free(cnt);
    free(sql);
    free(list);
    free(qt);
    int nb = rc == ZDM_OK ? zdm_rows_count(r) : 0;
    zdm_rows *o = nb >= 2 ? zdm_rows_new(ncols) : NULL;
    int last = -1;
    for (int j = 1; o && j < parts; j++) {
        int at = (int)((long long)j * (nb - 1) / parts);
        const char *v[64];
        int keep = at != last && ncols <= 64;
        for (int c = 0; keep && c < ncols; c++) {
            v[c] = zdm_rows_get(r, at, c);
            keep = v[c] != NULL; /* a NULL in a key: no split there */
        }
        /* the sample is sorted: a tuple unlike the last one kept is past it */
        if (keep && last >= 0) {
            int same = 1;
            for (int c = 0; c < ncols && same; c++)
                same = strcmp(v[c], zdm_rows_get(r, last, c)) == 0;
            keep = !same;
        }
        if (keep && zdm_rows_add(o, v) == ZDM_OK)
            last = at;
    }
    zdm_rows_free(r);
    if (o && zdm_rows_count(o) == 0) {
        zdm_rows_free(o);
        o = NULL;
    }
    *out = o;
    return ZDM_OK;
}

/* ---------------------------------------------------------- transactions */

int zdm_db_begin(zdm_db *db, zdm_err *err)
{
    if (db->in_tx) {
        /* A nested BEGIN is a caller bug; pg would only warn on stderr. */
        zdm_err_set(err, ZDM_EXIT_FAIL, "%s: BEGIN while a transaction is already open",
                    db->ops->name);
        set_sqlstate(err, "25001");
        return ZDM_EXIT_FAIL;
    }
    /* SQLite: take the write lock up front.  A deferred transaction that
     * reads and later writes can fail with SQLITE_BUSY without ever calling
     * the busy handler; IMMEDIATE waits for the lock at BEGIN instead, so the
     * busy timeout is the one lock_timeout. */
    const char *sql = db->ops->kind == ZDM_DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN";
    int rc = db->ops->query(db, sql, 0, NULL, NULL, err);
    if (rc == ZDM_OK)
        db->in_tx = 1;
    return rc;
}

int zdm_db_commit(zdm_db *db, zdm_err *err)
{
    if (db->in_tx && zdm_crashpoint()) { /* the transaction is lost, as with a failed COMMIT */
        zdm_db_rollback(db);
        set_sqlstate(err, "");
        return zdm_err_set(err, ZDM_EXIT_FAIL, "%s: injected failure at COMMIT (ZDM_CRASH_AT)", db->ops->name);
    }
    if (!db->in_tx) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "%s: COMMIT without a transaction", db->ops->name);
        set_sqlstate(err, "25P01");
        return ZDM_EXIT_FAIL;
    }
    int rc = db->ops->query(db, "COMMIT", 0, NULL, NULL, err);
    if (rc != ZDM_OK && db->ops->kind == ZDM_DB_SQLITE) {
        /* A failed COMMIT ends the transaction in PostgreSQL; SQLite keeps
         * it open (e.g. after SQLITE_BUSY).  Roll back so both dialects
         * leave the connection in the same state: nothing committed. */
        zdm_err ignored;
        zdm_err_clear(&ignored);
        (void)db->ops->query(db, "ROLLBACK", 0, NULL, NULL, &ignored);
    }
    db->in_tx = 0;
    return rc;
}

void zdm_db_rollback(zdm_db *db)
{
    /* Only when we opened one: a stray ROLLBACK makes PostgreSQL print a
     * WARNING on stderr. */
    if (!db || !db->in_tx)
        return;
    zdm_err ignored;
    zdm_err_clear(&ignored);
    (void)db->ops->query(db, "ROLLBACK", 0, NULL, NULL, &ignored);
    db->in_tx = 0;
}

int zdm_db_in_transaction(const zdm_db *db) { return db && db->in_tx; }

/* ----------------------------------------------------------- identifiers */

char *zdm_db_ident(zdm_db *db, const char *name)
{
    if (!name)
        return NULL;
    return db->ops->ident(db, name);
}

char *zdm_db_ident_path(zdm_db *db, const char *dotted)
{
    if (!dotted)
        return NULL;
    sbuf out = {0};
    const char *p = dotted;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char *part = malloc(n + 1);
        if (!part) {
            free(out.p);
            return NULL;
        }
        memcpy(part, p, n);
        part[n] = '\0';
        char *q = db->ops->ident(db, part);
        free(part);
        if (!q) {
            free(out.p);
            return NULL;
        }
        sb_adds(&out, q);
        free(q);
        if (!dot)
            break;
        sb_addn(&out, ".", 1);
        p = dot + 1;
    }
    if (out.oom) {
        free(out.p);
        return NULL;
    }
    return out.p;
}

/* -------------------------------------------------------------- timeouts */

int zdm_db_set_timeouts(zdm_db *db, int lock_timeout_ms, int statement_timeout_ms,
                        zdm_err *err)
{
    if (lock_timeout_ms < 0 || statement_timeout_ms < 0) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "%s: negative timeout (lock %d ms, statement %d ms)",
                    db->ops->name, lock_timeout_ms, statement_timeout_ms);
        set_sqlstate(err, "");
        return ZDM_EXIT_USAGE;
    }
    return db->ops->set_timeouts(db, lock_timeout_ms, statement_timeout_ms, err);
}

int zdm_db_err_is_lock_timeout(const zdm_err *err)
{
    if (!err)
        return 0;
    /* 55P03 lock_not_available (lock_timeout, NOWAIT); "SQLBU" is the
     * marker db_sqlite.c stores for SQLITE_BUSY / SQLITE_LOCKED. */
    return strcmp(err->sqlstate, "55P03") == 0 || strcmp(err->sqlstate, "SQLBU") == 0;
}

int zdm_db_query_value(zdm_db *db, const char *sql, int nparams,
                       const char *const *params, char **out, zdm_err *err)
{
    *out = NULL;
    zdm_rows *rows = NULL;
    int rc = zdm_db_query(db, sql, nparams, params, &rows, err);
    if (rc != ZDM_OK)
        return rc;
    const char *v = zdm_rows_get(rows, 0, 0);
    if (v) {
        *out = strdup(v);
        if (!*out) {
            zdm_rows_free(rows);
            set_sqlstate(err, "");
            return zdm_err_set(err, ZDM_EXIT_FAIL, "%s: out of memory reading a result",
                               db->ops->name);
        }
    }
    zdm_rows_free(rows);
    return ZDM_OK;
}

/* ------------------------------------------------------------------ rows */

/* Row-major: value (r, c) is v[r * ncols + c]; each owned, NULL = SQL NULL. */
struct zdm_rows {
    int ncols, nrows;
    size_t cap; /* rows allocated */
    char **v;
};

zdm_rows *zdm_rows_new(int ncols)
{
    if (ncols < 0)
        return NULL;
    zdm_rows *r = calloc(1, sizeof *r);
    if (r)
        r->ncols = ncols;
    return r;
}

int zdm_rows_add(zdm_rows *r, const char *const *values)
{
    size_t nc = (size_t)r->ncols;
    if (nc > 0 && (size_t)r->nrows == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        if (cap > (size_t)-1 / sizeof(char *) / nc)
            return ZDM_EXIT_FAIL;
        char **v = realloc(r->v, cap * nc * sizeof *v);
        if (!v)
            return ZDM_EXIT_FAIL;
        r->v = v;
        r->cap = cap;
    }
    if (r->nrows == 2147483647)
        return ZDM_EXIT_FAIL;
    char **row = nc ? r->v + (size_t)r->nrows * nc : NULL;
    for (size_t c = 0; c < nc; c++) {
        row[c] = NULL;
        if (values && values[c]) {
            row[c] = strdup(values[c]);
            if (!row[c]) {
                while (c-- > 0)
                    free(row[c]);
                return ZDM_EXIT_FAIL;
            }
        }
    }
    r->nrows++;
    return ZDM_OK;
}

int zdm_rows_count(const zdm_rows *r) { return r ? r->nrows : 0; }
int zdm_rows_cols(const zdm_rows *r) { return r ? r->ncols : 0; }

const char *zdm_rows_get(const zdm_rows *r, int row, int col)
{
    if (!r || row < 0 || col < 0 || row >= r->nrows || col >= r->ncols)
        return NULL;
    return r->v[(size_t)row * (size_t)r->ncols + (size_t)col];
}

void zdm_rows_free(zdm_rows *r)
{
    if (!r)
        return;
    size_t n = (size_t)r->nrows * (size_t)r->ncols;
    for (size_t i = 0; i < n; i++)
        free(r->v[i]);
    free(r->v);
    free(r);
}
