/*
 * util.c -- see util.h.  Small helpers with no knowledge of plans or
 * databases.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pwd.h>

static void oom(size_t n)
{
    fprintf(stderr, "zdm: out of memory allocating %zu bytes\n", n);
    abort();
}

void *zdm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *zdm_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *zdm_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *zdm_xstrdup(const char *s)
{
    return zdm_xstrndup(s, strlen(s));
}

char *zdm_xstrndup(const char *s, size_t n)
{
    char *p = zdm_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *zdm_xasprintf(const char *fmt, ...)
{
    zdm_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    zdm_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    return zdm_buf_take(&b);
}

static void buf_reserve(zdm_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = zdm_xrealloc(b->data, cap);
    b->cap = cap;
}

void zdm_buf_putn(zdm_buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void zdm_buf_puts(zdm_buf *b, const char *s)
{
    zdm_buf_putn(b, s, strlen(s));
}

void zdm_buf_vprintf(zdm_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void zdm_buf_printf(zdm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    zdm_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *zdm_buf_take(zdm_buf *b)
{
    char *d = b->data ? b->data : zdm_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void zdm_buf_free(zdm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void zdm_strv_push_owned(zdm_strv *l, char *s)
{
    if (l->n + 1 >= l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = zdm_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = s;
    l->v[l->n] = NULL; /* keeps v usable as an argv */
}

void zdm_strv_push(zdm_strv *l, const char *s)
{
    zdm_strv_push_owned(l, zdm_xstrdup(s));
}

void zdm_strv_free(zdm_strv *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int zdm_parse_duration_ms(const char *s, int64_t bare_unit_ms, int64_t *out_ms, zdm_err *err)
{
    const char *p = s;
    int64_t total = 0;
    int parts = 0;
    while (*p == ' ')
        p++;
    if (!*p)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "empty duration");
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return zdm_err_set(err, ZDM_EXIT_USAGE,
                               "bad duration \"%s\": expected a number followed by ms, s, m, h or d (e.g. \"24h\", \"90s\")", s);
        int64_t n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n > INT64_MAX / 10 - 10)
                return zdm_err_set(err, ZDM_EXIT_USAGE, "duration \"%s\" is too large", s);
            n = n * 10 + (*p++ - '0');
        }
        int64_t unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60 * 1000;
            p++;
        } else if (*p == 'h') {
            unit = 3600 * 1000;
            p++;
        } else if (*p == 'd') {
            unit = 86400 * 1000;
            p++;
        } else if (*p == '\0' && parts == 0) {
            unit = bare_unit_ms;
        } else {
            return zdm_err_set(err, ZDM_EXIT_USAGE,
                               "bad duration \"%s\": unknown unit (use ms, s, m, h or d)", s);
        }
        /* The total stays below INT64_MAX / 4, so callers may add it to a
         * timestamp without overflowing. */
        if (n > INT64_MAX / unit / 4 || total > INT64_MAX / 4 - n * unit)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "duration \"%s\" is too large", s);
        total += n * unit;
        parts++;
        while (*p == ' ')
            p++;
    }
    *out_ms = total;
    return 0;
}

const char *zdm_format_duration(int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000) {
        snprintf(buf, size, "%lldms", (long long)ms);
        return buf;
    }
    int64_t s = ms / 1000;
    int64_t d = s / 86400, h = (s / 3600) % 24, m = (s / 60) % 60, sec = s % 60;
    if (d)
        snprintf(buf, size, "%lldd%lldh", (long long)d, (long long)h);
    else if (h)
        snprintf(buf, size, "%lldh%lldm", (long long)h, (long long)m);
    else if (m)
        snprintf(buf, size, "%lldm%llds", (long long)m, (long long)sec);
    else
        snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
    return buf;
}

size_t zdm_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

const char *zdm_did_you_mean(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = zdm_edit_distance(word, cands[i]);
        /* Half the word may differ at most: "a" is not a typo of "c". */
        if (d < best_d && 2 * d <= strlen(word)) {
            best_d = d;
            best = cands[i];
        }
    }
    if (!best && strlen(word) >= 3)
        for (size_t i = 0; i < n; i++)
            if (strncmp(cands[i], word, strlen(word)) == 0)
                return cands[i];
    return best;
}

/* ---- SHA-256 (FIPS 180-4), used for plan checksums ---- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void zdm_sha256_hex(const void *data, size_t len, char out[65])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t full = len / 64;
    for (size_t i = 0; i < full; i++)
        sha_block(h, p + 64 * i);
    unsigned char tail[128] = {0};
    size_t rest = len % 64;
    if (rest)
        memcpy(tail, p + 64 * full, rest);
    tail[rest] = 0x80;
    size_t tl = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha_block(h, tail);
    if (tl == 128)
        sha_block(h, tail + 64);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", h[i]);
}

const char *zdm_whoami(void)
{
    static char who[300];
    if (who[0])
        return who;
    const char *user = NULL;
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name)
        user = pw->pw_name;
    if (!user)
        user = getenv("USER");
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(who, sizeof who, "%s@%s", user ? user : "unknown", host);
    return who;
}

int64_t zdm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t zdm_mono_ms(void)
{
    return zdm_mono_us() / 1000;
}

int64_t zdm_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *zdm_format_time(int64_t epoch_ms, char *buf, size_t size)
{
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Exactly `n` ASCII digits at s (no sign, no blanks) into *out. */
static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int zdm_parse_time(const char *s, int64_t *out_ms, zdm_err *err)
{
    int had_zone;
    return zdm_parse_time_zone(s, 0, out_ms, &had_zone, err);
}

int zdm_parse_time_zone(const char *s, int local_default, int64_t *out_ms, int *had_zone, zdm_err *err)
{
    *had_zone = 0;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, sec = 0;
    const char *p = s;
    if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d))
        goto bad;
    p += 10;
    int64_t ms = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi))
            goto bad;
        p += 5;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec))
                goto bad;
            p += 3;
            if (*p == '.') {
                p++;
                int ndig = 0;
                while (isdigit((unsigned char)*p)) {
                    if (ndig < 3)
                        ms = ms * 10 + (*p - '0');
                    ndig++;
                    p++;
                }
                if (!ndig)
                    goto bad;
                for (; ndig < 3; ndig++)
                    ms *= 10;
            }
        }
    }
    int off = 0;
    *had_zone = 1;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            goto bad;
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        *had_zone = 0;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        goto bad;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        goto bad;
    if (!*had_zone && local_default) {
        /* The wall-clock time in TZ (or the system's zone).  A time that
         * does not exist there (skipped by a DST change) is refused rather
         * than moved; mktime normalises it, so compare the fields back. */
        struct tm tm = {0};
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec > 59 ? 59 : sec;
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        if (t == (time_t)-1 || tm.tm_hour != h || tm.tm_min != mi || tm.tm_mday != d)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "time \"%s\" does not exist in the local time zone%s%s "
                               "(a daylight-saving change skips it); give an offset or Z", s,
                               getenv("TZ") ? " TZ=" : "", getenv("TZ") ? getenv("TZ") : "");
        *out_ms = (int64_t)t * 1000 + ms;
        return 0;
    }
    *out_ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - off * 60) * 1000 + ms;
    return 0;
bad:
    return zdm_err_set(err, ZDM_EXIT_USAGE,
                       "bad time \"%s\": expected ISO-8601 like 2026-11-22T03:00:00Z", s);
}

int zdm_read_file(const char *path, char **out, size_t *len, zdm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
    zdm_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        zdm_buf_putn(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        zdm_buf_free(&b);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot read %s: I/O error", path);
    }
    *len = b.len;
    *out = zdm_buf_take(&b);
    return 0;
}

char *zdm_sql_dollar_quote(const char *body)
{
    char tag[32];
    for (unsigned n = 0;; n++) {
        if (n == 0)
            snprintf(tag, sizeof tag, "$zdm$");
        else
            snprintf(tag, sizeof tag, "$zdm_%u$", n);
        /* Searched in body + tag, not body alone: a body ending in "$zdm"
         * would otherwise complete the closing delimiter early. */
        char *all = zdm_xasprintf("%s%s", body, tag);
        const char *hit = strstr(all, tag);
        int clean = (size_t)(hit - all) == strlen(body);
        free(all);
        if (clean)
            return zdm_xasprintf("%s%s%s", tag, body, tag);
    }
}

char *zdm_sql_literal(const char *s)
{
    zdm_buf b = {0};
    zdm_buf_putn(&b, "'", 1);
    for (; *s; s++) {
        if (*s == '\'')
            zdm_buf_putn(&b, "''", 2);
        else
            zdm_buf_putn(&b, s, 1);
    }
    zdm_buf_putn(&b, "'", 1);
    return zdm_buf_take(&b);
}
