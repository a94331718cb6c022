/*
 * toml.c -- zdm's TOML 1.0.0 parser.
 *
 * Owns: validating a byte buffer as UTF-8 TOML 1.0.0 and building the
 * toml_value tree declared in toml.h, with the position of every key and
 * value.  One recursive-descent pass over the input after a UTF-8 check;
 * every table keeps a hash index once it grows past a few keys, so large
 * documents parse in linear time.
 *
 * Positions: line and col are 1-based.  col counts BYTES from the start of
 * the line (a multi-byte UTF-8 character advances it by its byte length, a
 * tab by 1); a leading BOM is not counted.
 *
 * Memory: every toml_value is the first member of a private `node` that
 * also holds the table's hash index, key lengths (keys may contain NUL via
 * "\u0000") and the bookkeeping for TOML's redefinition rules.  Only this
 * file allocates values, so toml_free() may cast back.  Nesting of
 * containers (tables, arrays) is limited to TOML_MAX_DEPTH below the root,
 * whichever syntax creates it, so recursion here and in every consumer of
 * the tree is bounded.
 *
 * Floats are converted with strtod(), which honours LC_NUMERIC: callers
 * must not switch the numeric locale away from "C".
 */
#include "toml.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Public for toml_decode_main.c and tests; not in toml.h because toml_kv has
 * no length field.  Returns the byte length of kv's key (kv must be an item
 * of table). */
size_t toml_kv_keylen(const toml_value *table, const toml_kv *kv);

/* ------------------------------------------------------------ the tree */

/* table flags (toml_value.u.table.flags) */
enum {
    TF_HEADER = 1u, /* defined by [header] or as a [[header]] element */
    TF_DOTTED = 2u, /* created or extended by dotted keys (in section `sec`) */
    TF_INLINE = 4u  /* an inline table: complete once written */
};

typedef struct node {
    toml_value v;   /* must stay first: toml_value * <-> node * */
    int depth;      /* containers below the root; root is 0 */
    unsigned sec;   /* TF_DOTTED: the section (header or inline table) */
    size_t *klen;   /* tables: key byte lengths, parallel to items */
    size_t *slots;  /* tables: open-addressing index, item index + 1 */
    size_t nslots;  /* power of two; 0 while the table is small */
} node;

#define NODE(val) ((node *)(void *)(val))
#define HASH_FROM 8 /* tables with more keys than this get an index */

typedef struct kpart {
    char *s;
    size_t len;
    int line, col;
} kpart;

typedef struct kpath {
    kpart *v;
    size_t n, cap;
} kpath;

typedef struct parser {
    const char *s;
    size_t n, i;      /* input, its length, the cursor */
    int line;         /* line of the cursor */
    size_t bol;       /* offset where the cursor's line begins */
    const char *file;
    zdm_err *err;
    int failed;       /* an error was reported: keep the first one */
    int rc;           /* its status */
    unsigned sec;     /* section counter, see TF_DOTTED */
    char *buf;        /* scratch for decoding strings */
    size_t blen, bcap;
} parser;

/* ------------------------------------------------------------ errors */

static int fail_at(parser *p, int line, int col, const char *fmt, ...) ZDM_PRINTF(4, 5);

static int fail_at(parser *p, int line, int col, const char *fmt, ...)
{
    if (p->failed)
        return p->rc;
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->failed = 1;
    p->rc = ZDM_EXIT_USAGE;
    zdm_err_set(p->err, ZDM_EXIT_USAGE, "%s:%d:%d: %s", p->file, line, col, msg);
    if (p->err) {
        p->err->line = line;
        p->err->col = col;
        p->err->sqlstate[0] = '\0';
    }
    return ZDM_EXIT_USAGE;
}

static int col_of(const parser *p, size_t off)
{
    size_t c = off - p->bol + 1;
    return c > INT_MAX ? INT_MAX : (int)c;
}

#define FAIL_HERE(p, ...) fail_at((p), (p)->line, col_of((p), (p)->i), __VA_ARGS__)

static int oom(parser *p)
{
    if (!p->failed) {
        p->failed = 1;
        p->rc = ZDM_EXIT_FAIL;
        zdm_err_set(p->err, ZDM_EXIT_FAIL, "%s: out of memory while parsing TOML", p->file);
        if (p->err) {
            p->err->line = p->line;
            p->err->col = col_of(p, p->i);
        }
    }
    return p->rc;
}

/* ------------------------------------------------------------ characters */

static int peek_at(const parser *p, size_t k)
{
    return p->i + k < p->n ? (unsigned char)p->s[p->i + k] : -1;
}

static int peek(const parser *p) { return peek_at(p, 0); }

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_bare(int c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '-'; }
static int is_ctrl(int c) { return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f; }
static int is_newline(const parser *p)
{
    int c = peek(p);
    return c == '\n' || (c == '\r' && peek_at(p, 1) == '\n');
}

/* Consumes "\n" or "\r\n" at the cursor (caller checked is_newline). */
static void eat_newline(parser *p)
{
    if (p->s[p->i] == '\r')
        p->i++;
    p->i++;
    p->line++;
    p->bol = p->i;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t'))
        p->i++;
}

/* Decodes the (already validated) UTF-8 character at off. */
static unsigned utf8_at(const parser *p, size_t off, size_t *len)
{
    const unsigned char *s = (const unsigned char *)p->s + off;
    size_t avail = p->n - off;
    unsigned c = s[0];
    if (c < 0x80 || avail < 2) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    }
    if (c < 0xF0 || avail < 4) {
        *len = avail < 3 ? 1 : 3;
        return avail < 3 ? c : ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    }
    *len = 4;
    return ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
}

/* Names what is at the cursor, for "found X" in messages. */
static const char *describe(const parser *p, char *buf, size_t cap)
{
    int c = peek(p);
    if (c < 0)
        return "end of file";
    if (is_newline(p))
        return "end of line";
    if (c == '\r')
        return "a carriage return not followed by a line feed";
    if (c >= 0x20 && c < 0x7f) {
        snprintf(buf, cap, "'%c'", c);
        return buf;
    }
    if (c < 0x80) {
        snprintf(buf, cap, "control character U+%04X", (unsigned)c);
        return buf;
    }
    size_t len;
    unsigned cp = utf8_at(p, p->i, &len);
    snprintf(buf, cap, "'%.*s' (U+%04X)", (int)len, p->s + p->i, cp);
    return buf;
}

#define FOUND(p) describe((p), found_buf, sizeof found_buf)

/* Key text for messages: quoted characters escaped, long keys cut. */
static void fmt_key(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    const size_t limit = 80;
    while (i < n && o + 8 < cap) {
        unsigned char c = (unsigned char)s[i];
        if (o >= limit) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04X", c);
            i++;
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else {
            size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            if (len > n - i)
                len = n - i;
            if (o + len + 8 >= cap)
                break;
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = '\0';
}

static int bare_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_bare((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A dotted path as TOML would write it: a.b."c d" (first `upto` parts),
 * cut with "..." when it does not fit in cap bytes. */
static void fmt_path(const kpath *kp, size_t upto, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < upto; k++) {
        char part[200], tmp[160];
        if (bare_ok(kp->v[k].s, kp->v[k].len) && kp->v[k].len < 80) {
            snprintf(part, sizeof part, "%s%.*s", k ? "." : "", (int)kp->v[k].len, kp->v[k].s);
        } else {
            fmt_key(kp->v[k].s, kp->v[k].len, tmp, sizeof tmp);
            snprintf(part, sizeof part, "%s\"%s\"", k ? "." : "", tmp);
        }
        size_t pl = strlen(part);
        if (o + pl + 4 > cap) {
            if (o + 4 <= cap)
                memcpy(out + o, "...", 4);
            return;
        }
        memcpy(out + o, part, pl + 1);
        o += pl;
    }
}

static const char *with_article(toml_type t)
{
    switch (t) {
    case TOML_TABLE: return "a table";
    case TOML_ARRAY: return "an array";
    case TOML_STRING: return "a string";
    case TOML_INTEGER: return "an integer";
    case TOML_FLOAT: return "a float";
    case TOML_BOOL: return "a boolean";
    case TOML_DATETIME: return "an offset date-time";
    case TOML_DATETIME_LOCAL: return "a local date-time";
    case TOML_DATE_LOCAL: return "a local date";
    case TOML_TIME_LOCAL: return "a local time";
    }
    return "a value";
}

/* ------------------------------------------------------------ nodes */

static node *node_new(parser *p, toml_type t, int line, int col, int depth)
{
    node *x = calloc(1, sizeof *x);
    if (!x) {
        oom(p);
        return NULL;
    }
    x->v.type = t;
    x->v.line = line;
    x->v.col = col;
    x->depth = depth;
    return x;
}

/* A new container at `depth`, or NULL with the nesting error. */
static node *container_new(parser *p, toml_type t, int line, int col, int depth)
{
    if (depth > TOML_MAX_DEPTH) {
        fail_at(p, line, col, "nesting deeper than %d levels", TOML_MAX_DEPTH);
        return NULL;
    }
    return node_new(p, t, line, col, depth);
}

void toml_free(toml_value *v)
{
    if (!v)
        return;
    node *x = NODE(v);
    switch (v->type) {
    case TOML_TABLE:
        for (size_t k = 0; k < v->u.table.len; k++) {
            free(v->u.table.items[k].key);
            toml_free(v->u.table.items[k].value);
        }
        free(v->u.table.items);
        free(x->klen);
        free(x->slots);
        break;
    case TOML_ARRAY:
        for (size_t k = 0; k < v->u.array.len; k++)
            toml_free(v->u.array.items[k]);
        free(v->u.array.items);
        break;
    case TOML_STRING:
        free(v->u.str.ptr);
        break;
    default:
        break;
    }
    free(x);
}

static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k < n; k++) {
        h ^= (unsigned char)s[k];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int tbl_find(const node *t, const char *k, size_t kl, size_t *idx)
{
    const toml_kv *it = t->v.u.table.items;
    if (!t->slots) {
        for (size_t j = 0; j < t->v.u.table.len; j++)
            if (t->klen[j] == kl && memcmp(it[j].key, k, kl) == 0) {
                *idx = j;
                return 1;
            }
        return 0;
    }
    size_t mask = t->nslots - 1;
    for (size_t h = (size_t)key_hash(k, kl) & mask;; h = (h + 1) & mask) {
        size_t s = t->slots[h];
        if (!s)
            return 0;
        s--;
        if (t->klen[s] == kl && memcmp(it[s].key, k, kl) == 0) {
            *idx = s;
            return 1;
        }
    }
}

static void slot_put(node *t, size_t j)
{
    size_t mask = t->nslots - 1;
    const toml_kv *kv = &t->v.u.table.items[j];
    size_t h = (size_t)key_hash(kv->key, t->klen[j]) & mask;
    while (t->slots[h])
        h = (h + 1) & mask;
    t->slots[h] = j + 1;
}

/* Adds key (copied) = val (owned; freed on failure) to table t. */
static int tbl_add(parser *p, node *t, const kpart *kp, node *val)
{
    toml_value *tv = &t->v;
    if (tv->u.table.len == tv->u.table.cap) {
        size_t cap = tv->u.table.cap ? tv->u.table.cap * 2 : 4;
        toml_kv *items = realloc(tv->u.table.items, cap * sizeof *items);
        if (!items)
            goto nomem;
        tv->u.table.items = items;
        size_t *kl = realloc(t->klen, cap * sizeof *kl);
        if (!kl)
            goto nomem;
        t->klen = kl;
        tv->u.table.cap = cap;
    }
    char *key = malloc(kp->len + 1);
    if (!key)
        goto nomem;
    if (kp->len)
        memcpy(key, kp->s, kp->len);
    key[kp->len] = '\0';
    size_t j = tv->u.table.len;
    tv->u.table.items[j].key = key;
    tv->u.table.items[j].line = kp->line;
    tv->u.table.items[j].col = kp->col;
    tv->u.table.items[j].value = &val->v;
    t->klen[j] = kp->len;
    tv->u.table.len++;
    if (tv->u.table.len > HASH_FROM) {
        if (tv->u.table.len * 2 > t->nslots) {
            size_t ns = 32;
            while (ns < tv->u.table.len * 4)
                ns *= 2;
            size_t *slots = calloc(ns, sizeof *slots);
            if (!slots)
                return oom(p); /* the item is in the table: freed with it */
            free(t->slots);
            t->slots = slots;
            t->nslots = ns;
            for (size_t k = 0; k < tv->u.table.len; k++)
                slot_put(t, k);
        } else {
            slot_put(t, j);
        }
    }
    return 0;
nomem:
    toml_free(&val->v);
    return oom(p);
}

static int arr_push(parser *p, node *a, node *val)
{
    toml_value *av = &a->v;
    if (av->u.array.len == av->u.array.cap) {
        size_t cap = av->u.array.cap ? av->u.array.cap * 2 : 4;
        toml_value **items = realloc(av->u.array.items, cap * sizeof *items);
        if (!items) {
            toml_free(&val->v);
            return oom(p);
        }
        av->u.array.items = items;
        av->u.array.cap = cap;
    }
    av->u.array.items[av->u.array.len++] = &val->v;
    return 0;
}

/* Where the thing behind kv was first defined: a header for tables and
 * arrays of tables made by headers, else the key. */
static void def_pos(const toml_kv *kv, int *line, int *col)
{
    const toml_value *v = kv->value;
    if ((v->type == TOML_TABLE && (v->u.table.flags & TF_HEADER)) ||
        (v->type == TOML_ARRAY && v->u.array.of_tables)) {
        *line = v->line;
        *col = v->col;
    } else {
        *line = kv->line;
        *col = kv->col;
    }
}

/* ------------------------------------------------------------ scratch */

static int buf_put(parser *p, const char *s, size_t n)
{
    if (p->bcap - p->blen < n + 1) {
        size_t cap = p->bcap ? p->bcap : 64;
        while (cap - p->blen < n + 1) {
            if (cap > SIZE_MAX / 2)
                return oom(p);
            cap *= 2;
        }
        char *b = realloc(p->buf, cap);
        if (!b)
            return oom(p);
        p->buf = b;
        p->bcap = cap;
    }
    memcpy(p->buf + p->blen, s, n);
    p->blen += n;
    return 0;
}

static int buf_putc(parser *p, char c) { return buf_put(p, &c, 1); }

static int buf_take(parser *p, char **out, size_t *len)
{
    char *s = malloc(p->blen + 1);
    if (!s)
        return oom(p);
    if (p->blen)
        memcpy(s, p->buf, p->blen);
    s[p->blen] = '\0';
    *out = s;
    *len = p->blen;
    return 0;
}

/* ------------------------------------------------------------ UTF-8 */

static int check_utf8(parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    int line = p->line;
    size_t bol = p->bol;
    for (size_t i = p->i; i < p->n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c == '\n') {
                line++;
                bol = i + 1;
            }
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        const char *why = "";
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c == 0xE0) {
            need = 2, lo = 0xA0, why = " (overlong encoding)";
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            need = 2;
        } else if (c == 0xED) {
            need = 2, hi = 0x9F, why = " (UTF-16 surrogate encoded in UTF-8)";
        } else if (c == 0xF0) {
            need = 3, lo = 0x90, why = " (overlong encoding)";
        } else if (c >= 0xF1 && c <= 0xF3) {
            need = 3;
        } else if (c == 0xF4) {
            need = 3, hi = 0x8F, why = " (code point above U+10FFFF)";
        } else {
            const char *what = c < 0xC0   ? " (continuation byte without a lead byte)"
                               : c < 0xC2 ? " (overlong encoding)"
                                          : " (not valid in UTF-8)";
            p->bol = bol;
            return fail_at(p, line, col_of(p, i), "invalid UTF-8 byte 0x%02X%s", c, what);
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= p->n || s[i + k] < 0x80 || s[i + k] > 0xBF) {
                p->bol = bol;
                return fail_at(p, line, col_of(p, i), "invalid UTF-8 byte 0x%02X (incomplete sequence)", c);
            }
            if (k == 1 && (s[i + 1] < lo || s[i + 1] > hi)) {
                p->bol = bol;
                return fail_at(p, line, col_of(p, i), "invalid UTF-8 byte 0x%02X%s", c, why);
            }
        }
        i += need + 1;
    }
    return 0;
}

/* ------------------------------------------------------------ strings */

static int put_utf8(parser *p, unsigned cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_put(p, b, n);
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

/* At a backslash inside a basic string started at sl:sc. */
static int parse_escape(parser *p, int sl, int sc)
{
    char found_buf[64];
    int el = p->line, ec = col_of(p, p->i);
    p->i++;
    int c = peek(p);
    char out;
    switch (c) {
    case 'b': out = '\b'; break;
    case 't': out = '\t'; break;
    case 'n': out = '\n'; break;
    case 'f': out = '\f'; break;
    case 'r': out = '\r'; break;
    case '"': out = '"'; break;
    case '\\': out = '\\'; break;
    case 'u':
    case 'U': {
        int nd = c == 'u' ? 4 : 8;
        unsigned long cp = 0;
        p->i++;
        for (int k = 0; k < nd; k++) {
            int h = hexval(peek(p));
            if (h < 0)
                return fail_at(p, el, ec, "invalid escape \\%c: expected %d hexadecimal digits, found %s",
                               c, nd, FOUND(p));
            cp = cp * 16 + (unsigned long)h;
            p->i++;
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return fail_at(p, el, ec, "escape \\%c%.*s is not a Unicode scalar value%s", c, nd,
                           p->s + p->i - nd,
                           cp > 0x10FFFF ? " (above U+10FFFF)" : " (a UTF-16 surrogate)");
        return put_utf8(p, (unsigned)cp);
    }
    default:
        if (c < 0)
            return FAIL_HERE(p, "unterminated string (started at %d:%d)", sl, sc);
        return fail_at(p, el, ec, "invalid escape sequence: backslash followed by %s", FOUND(p));
    }
    p->i++;
    return buf_putc(p, out);
}

/* "..." at the cursor (not a triple quote). */
static int parse_basic(parser *p, char **out, size_t *len)
{
    int sl = p->line, sc = col_of(p, p->i);
    p->i++;
    p->blen = 0;
    for (;;) {
        int c = peek(p);
        if (c < 0 || is_newline(p))
            return FAIL_HERE(p, "unterminated string (started at %d:%d)", sl, sc);
        if (c == '"') {
            p->i++;
            break;
        }
        if (c == '\\') {
            int rc = parse_escape(p, sl, sc);
            if (rc)
                return rc;
            continue;
        }
        if (is_ctrl(c))
            return FAIL_HERE(p, "control character U+%04X is not allowed in a string; write it as an escape",
                             (unsigned)c);
        if (buf_putc(p, (char)c))
            return ZDM_EXIT_FAIL;
        p->i++;
    }
    return buf_take(p, out, len);
}

/* '...' at the cursor (not a triple quote). */
static int parse_literal(parser *p, char **out, size_t *len)
{
    int sl = p->line, sc = col_of(p, p->i);
    size_t st = ++p->i;
    for (;;) {
        int c = peek(p);
        if (c < 0 || is_newline(p))
            return FAIL_HERE(p, "unterminated string (started at %d:%d)", sl, sc);
        if (c == '\'')
            break;
        if (is_ctrl(c))
            return FAIL_HERE(p, "control character U+%04X is not allowed in a literal string", (unsigned)c);
        p->i++;
    }
    p->blen = 0;
    if (buf_put(p, p->s + st, p->i - st))
        return ZDM_EXIT_FAIL;
    p->i++;
    return buf_take(p, out, len);
}

/* """...""" or '''...''' at the cursor. */
static int parse_multiline(parser *p, char q, char **out, size_t *len)
{
    int sl = p->line, sc = col_of(p, p->i);
    p->i += 3;
    p->blen = 0;
    if (is_newline(p))
        eat_newline(p);
    for (;;) {
        int c = peek(p);
        if (c < 0)
            return FAIL_HERE(p, "unterminated multi-line string (started at %d:%d)", sl, sc);
        if (c == q) {
            size_t run = 0;
            while (peek_at(p, run) == q)
                run++;
            if (run < 3) {
                if (buf_put(p, p->s + p->i, run))
                    return ZDM_EXIT_FAIL;
                p->i += run;
                continue;
            }
            if (run > 5)
                return fail_at(p, p->line, col_of(p, p->i + 5),
                               "too many quotes: at most two %c may come right before the closing %c%c%c",
                               q, q, q, q);
            if (buf_put(p, p->s + p->i, run - 3))
                return ZDM_EXIT_FAIL;
            p->i += run;
            break;
        }
        if (c == '\n' || (c == '\r' && peek_at(p, 1) == '\n')) {
            eat_newline(p);
            if (buf_putc(p, '\n')) /* CRLF is kept as LF */
                return ZDM_EXIT_FAIL;
            continue;
        }
        if (c == '\\' && q == '"') {
            /* line-ending backslash: \ [ws] newline, then all blank */
            size_t k = 1;
            while (peek_at(p, k) == ' ' || peek_at(p, k) == '\t')
                k++;
            int nc = peek_at(p, k);
            if (nc == '\n' || (nc == '\r' && peek_at(p, k + 1) == '\n')) {
                p->i += k;
                for (;;) {
                    skip_ws(p);
                    if (!is_newline(p))
                        break;
                    eat_newline(p);
                }
                continue;
            }
            if (k > 1)
                return FAIL_HERE(p, "invalid escape: a backslash followed by whitespace must end the line");
            int rc = parse_escape(p, sl, sc);
            if (rc)
                return rc;
            continue;
        }
        if (is_ctrl(c))
            return FAIL_HERE(p, "control character U+%04X is not allowed in a %sstring%s", (unsigned)c,
                             q == '"' ? "" : "literal ", q == '"' ? "; write it as an escape" : "");
        if (buf_putc(p, (char)c))
            return ZDM_EXIT_FAIL;
        p->i++;
    }
    return buf_take(p, out, len);
}

/* ------------------------------------------------------------ keys */

static void kpath_free(kpath *kp)
{
    for (size_t k = 0; k < kp->n; k++)
        free(kp->v[k].s);
    free(kp->v);
    kp->v = NULL;
    kp->n = kp->cap = 0;
}

static int parse_simple_key(parser *p, kpart *out)
{
    char found_buf[64];
    int c = peek(p);
    out->line = p->line;
    out->col = col_of(p, p->i);
    if (c == '"' || c == '\'') {
        if (peek_at(p, 1) == c && peek_at(p, 2) == c)
            return FAIL_HERE(p, "a multi-line string cannot be used as a key");
        return c == '"' ? parse_basic(p, &out->s, &out->len) : parse_literal(p, &out->s, &out->len);
    }
    if (is_bare(c)) {
        size_t st = p->i;
        while (is_bare(peek(p)))
            p->i++;
        p->blen = 0;
        if (buf_put(p, p->s + st, p->i - st))
            return ZDM_EXIT_FAIL;
        return buf_take(p, &out->s, &out->len);
    }
    if (c >= 0x80 || c == '\\')
        return FAIL_HERE(p, "invalid character %s in a key: bare keys may only use A-Z a-z 0-9 _ -, "
                            "put other keys in quotes", FOUND(p));
    return FAIL_HERE(p, "expected a key, found %s", FOUND(p));
}

/* key ( '.' key )*, with blanks around the dots; leaves trailing blanks eaten. */
static int parse_key(parser *p, kpath *kp)
{
    for (;;) {
        skip_ws(p);
        if (kp->n == kp->cap) {
            size_t cap = kp->cap ? kp->cap * 2 : 4;
            kpart *v = realloc(kp->v, cap * sizeof *v);
            if (!v)
                return oom(p);
            kp->v = v;
            kp->cap = cap;
        }
        kpart *part = &kp->v[kp->n];
        memset(part, 0, sizeof *part);
        int rc = parse_simple_key(p, part);
        if (rc) {
            free(part->s);
            return rc;
        }
        kp->n++;
        if (kp->n > TOML_MAX_DEPTH + 1)
            return fail_at(p, part->line, part->col, "nesting deeper than %d levels", TOML_MAX_DEPTH);
        skip_ws(p);
        if (peek(p) != '.')
            return 0;
        p->i++;
    }
}

/* ------------------------------------------------------------ scalars */

static int dig(const char *t, size_t at, size_t n)
{
    return at < n && is_digit((unsigned char)t[at]);
}

static int num2(const char *t, size_t at) { return (t[at] - '0') * 10 + (t[at + 1] - '0'); }

static int days_in(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* A date, time or date-time token [t, t+n) that starts at line:col. */
static int parse_datetime(parser *p, const char *t, size_t n, int line, int col, int depth, node **out)
{
    static const char *const months[] = {"January", "February", "March", "April", "May", "June", "July",
                                         "August", "September", "October", "November", "December"};
    int shown = n > 60 ? 60 : (int)n;
    size_t j = 0;
    int has_date = 0, has_time = 0, has_off = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ns = 0, off = 0;
    size_t fst = 0, fn = 0;
    char offtext[32] = "";

    if (n >= 5 && dig(t, 0, n) && dig(t, 1, n) && dig(t, 2, n) && dig(t, 3, n) && t[4] == '-') {
        if (n < 10 || !dig(t, 5, n) || !dig(t, 6, n) || t[7] != '-' || !dig(t, 8, n) || !dig(t, 9, n))
            return fail_at(p, line, col, "invalid date \"%.*s\": expected YYYY-MM-DD", shown, t);
        y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + num2(t, 2);
        mo = num2(t, 5);
        d = num2(t, 8);
        if (y < 1)
            return fail_at(p, line, col, "invalid date \"%.10s\": the year must be 0001 or later", t);
        if (mo < 1 || mo > 12)
            return fail_at(p, line, col, "invalid date \"%.10s\": month %02d does not exist", t, mo);
        if (d < 1 || d > days_in(y, mo))
            return fail_at(p, line, col, "invalid date \"%.10s\": %s %04d has no day %02d", t,
                           months[mo - 1], y, d);
        has_date = 1;
        j = 10;
        if (j < n) {
            if (t[j] != 'T' && t[j] != 't' && t[j] != ' ')
                return fail_at(p, line, col, "invalid date-time \"%.*s\": expected 'T' or a space after the date",
                               shown, t);
            j++;
            if (j == n)
                return fail_at(p, line, col, "invalid date-time \"%.*s\": expected a time after the date",
                               shown, t);
        }
    }
    if (j < n) {
        if (n - j < 8 || !dig(t, j, n) || !dig(t, j + 1, n) || t[j + 2] != ':' || !dig(t, j + 3, n) ||
            !dig(t, j + 4, n) || t[j + 5] != ':' || !dig(t, j + 6, n) || !dig(t, j + 7, n))
            return fail_at(p, line, col, "invalid %s \"%.*s\": expected the time as HH:MM:SS",
                           has_date ? "date-time" : "time", shown, t);
        h = num2(t, j);
        mi = num2(t, j + 3);
        s = num2(t, j + 6);
        if (h > 23 || mi > 59 || s > 60)
            return fail_at(p, line, col, "invalid time \"%.8s\": %s out of range", t + j,
                           h > 23 ? "hour" : mi > 59 ? "minute" : "second");
        has_time = 1;
        j += 8;
        if (j < n && t[j] == '.') {
            j++;
            fst = j;
            while (dig(t, j, n))
                j++;
            fn = j - fst;
            if (fn == 0)
                return fail_at(p, line, col, "invalid time in \"%.*s\": expected digits after '.'", shown, t);
            for (size_t k = 0; k < 9; k++)
                ns = ns * 10 + (k < fn ? t[fst + k] - '0' : 0);
        }
        if (j < n) {
            if (!has_date)
                return fail_at(p, line, col, "invalid time \"%.*s\": a time without a date cannot have an offset",
                               shown, t);
            if (t[j] == 'Z' || t[j] == 'z') {
                strcpy(offtext, "Z");
                j++;
            } else if (t[j] == '+' || t[j] == '-') {
                if (n - j < 6 || !dig(t, j + 1, n) || !dig(t, j + 2, n) || t[j + 3] != ':' ||
                    !dig(t, j + 4, n) || !dig(t, j + 5, n))
                    return fail_at(p, line, col, "invalid date-time \"%.*s\": expected the offset as +HH:MM",
                                   shown, t);
                int oh = num2(t, j + 1), om = num2(t, j + 4);
                if (oh > 23 || om > 59)
                    return fail_at(p, line, col, "invalid date-time \"%.*s\": offset out of range", shown, t);
                off = (oh * 60 + om) * (t[j] == '-' ? -1 : 1);
                snprintf(offtext, sizeof offtext, "%c%02d:%02d", t[j], oh, om);
                j += 6;
            } else {
                return fail_at(p, line, col, "invalid date-time \"%.*s\": unexpected '%c' after the time",
                               shown, t, t[j]);
            }
            has_off = 1;
            if (j < n)
                return fail_at(p, line, col, "invalid date-time \"%.*s\": unexpected text after the offset",
                               shown, t);
        }
    }
    (void)has_time;
    toml_type ty = !has_date ? TOML_TIME_LOCAL
                   : j == 10 ? TOML_DATE_LOCAL
                   : has_off ? TOML_DATETIME
                             : TOML_DATETIME_LOCAL;
    node *x = node_new(p, ty, line, col, depth);
    if (!x)
        return ZDM_EXIT_FAIL;
    toml_value *v = &x->v;
    v->u.dt.year = y;
    v->u.dt.month = mo;
    v->u.dt.day = d;
    v->u.dt.hour = h;
    v->u.dt.minute = mi;
    v->u.dt.second = s;
    v->u.dt.nanosecond = ns;
    v->u.dt.offset_minutes = off;
    char *o = v->u.dt.text;
    size_t cap = sizeof v->u.dt.text, w = 0;
    if (has_date)
        w += (size_t)snprintf(o + w, cap - w, "%04d-%02d-%02d%s", y, mo, d, ty == TOML_DATE_LOCAL ? "" : "T");
    if (ty != TOML_DATE_LOCAL) {
        w += (size_t)snprintf(o + w, cap - w, "%02d:%02d:%02d", h, mi, s);
        if (fn)
            w += (size_t)snprintf(o + w, cap - w, ".%.*s", (int)(fn > 9 ? 9 : fn), t + fst);
        snprintf(o + w, cap - w, "%s", offtext);
    }
    *out = x;
    return 0;
}

/* Digits with single underscores between them: [0-9](_?[0-9])*.
 * Returns the digit count, or -1 if an underscore is misplaced. */
static long scan_digits(const char *t, size_t n, size_t *j)
{
    long nd = 0;
    int us = 0;
    while (*j < n) {
        char c = t[*j];
        if (is_digit((unsigned char)c)) {
            nd++;
            us = 0;
        } else if (c == '_') {
            if (nd == 0 || us)
                return -1;
            us = 1;
        } else {
            break;
        }
        (*j)++;
    }
    return us ? -1 : nd;
}

static int parse_number(parser *p, const char *t, size_t n, int line, int col, int depth, node **out)
{
    int shown = n > 60 ? 60 : (int)n;
    size_t j = 0;
    int neg = 0, sign = 0;
    if (t[0] == '+' || t[0] == '-') {
        sign = 1;
        neg = t[0] == '-';
        j++;
    }
    if (j + 1 < n && t[j] == '0' && (t[j + 1] == 'x' || t[j + 1] == 'o' || t[j + 1] == 'b')) {
        int base = t[j + 1] == 'x' ? 16 : t[j + 1] == 'o' ? 8 : 2;
        const char *name = base == 16 ? "hexadecimal" : base == 8 ? "octal" : "binary";
        if (sign)
            return fail_at(p, line, col, "invalid integer \"%.*s\": %s integers cannot have a sign", shown, t,
                           name);
        j += 2;
        uint64_t v = 0;
        int nd = 0, us = 0;
        for (; j < n; j++) {
            char c = t[j];
            if (c == '_') {
                if (nd == 0 || us)
                    return fail_at(p, line, col, "invalid integer \"%.*s\": an underscore must sit between two digits",
                                   shown, t);
                us = 1;
                continue;
            }
            int dv = hexval((unsigned char)c);
            if (dv < 0 || dv >= base)
                return fail_at(p, line, col, "invalid integer \"%.*s\": '%c' is not a valid %s digit", shown, t, c,
                               name);
            if (v > ((uint64_t)INT64_MAX - (uint64_t)dv) / (uint64_t)base)
                return fail_at(p, line, col, "integer \"%.*s\" does not fit in 64 bits (the largest is %" PRId64 ")",
                               shown, t, INT64_MAX);
            v = v * (uint64_t)base + (uint64_t)dv;
            nd++;
            us = 0;
        }
        if (nd == 0)
            return fail_at(p, line, col, "invalid integer \"%.*s\": expected %s digits after the prefix", shown,
                           t, name);
        if (us)
            return fail_at(p, line, col, "invalid integer \"%.*s\": an underscore must sit between two digits",
                           shown, t);
        node *x = node_new(p, TOML_INTEGER, line, col, depth);
        if (!x)
            return ZDM_EXIT_FAIL;
        x->v.u.integer = (int64_t)v;
        *out = x;
        return 0;
    }

    size_t ist = j;
    long nd = scan_digits(t, n, &j);
    if (nd < 0)
        return fail_at(p, line, col, "invalid number \"%.*s\": an underscore must sit between two digits", shown, t);
    if (nd == 0)
        return fail_at(p, line, col, "invalid value \"%.*s\"%s", shown, t,
                       is_alpha((unsigned char)t[0]) ? ": strings must be in quotes" : "");
    if (nd > 1 && t[ist] == '0')
        return fail_at(p, line, col, "invalid number \"%.*s\": leading zeros are not allowed", shown, t);
    int is_float = 0;
    if (j < n && t[j] == '.') {
        is_float = 1;
        j++;
        long fd = scan_digits(t, n, &j);
        if (fd < 0)
            return fail_at(p, line, col, "invalid float \"%.*s\": an underscore must sit between two digits",
                           shown, t);
        if (fd == 0)
            return fail_at(p, line, col, "invalid float \"%.*s\": expected a digit after the decimal point",
                           shown, t);
    }
    if (j < n && (t[j] == 'e' || t[j] == 'E')) {
        is_float = 1;
        j++;
        if (j < n && (t[j] == '+' || t[j] == '-'))
            j++;
        long ed = scan_digits(t, n, &j);
        if (ed < 0)
            return fail_at(p, line, col, "invalid float \"%.*s\": an underscore must sit between two digits",
                           shown, t);
        if (ed == 0)
            return fail_at(p, line, col, "invalid float \"%.*s\": expected digits in the exponent", shown, t);
    }
    if (j != n)
        return fail_at(p, line, col, "invalid %s \"%.*s\": unexpected '%c'", is_float ? "float" : "number",
                       shown, t, t[j]);

    node *x = node_new(p, is_float ? TOML_FLOAT : TOML_INTEGER, line, col, depth);
    if (!x)
        return ZDM_EXIT_FAIL;
    if (is_float) {
        char small[128];
        char *b = n < sizeof small ? small : malloc(n + 1);
        if (!b) {
            free(x);
            return oom(p);
        }
        size_t o = 0;
        for (size_t k = 0; k < n; k++)
            if (t[k] != '_')
                b[o++] = t[k];
        b[o] = '\0';
        x->v.u.flt = strtod(b, NULL);
        if (b != small)
            free(b);
    } else {
        uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
        for (size_t k = ist; k < n; k++) {
            if (t[k] == '_')
                continue;
            uint64_t dv = (uint64_t)(t[k] - '0');
            if (v > (lim - dv) / 10) {
                free(x);
                return fail_at(p, line, col, "integer \"%.*s\" does not fit in 64 bits (%" PRId64 " to %" PRId64 ")",
                               shown, t, INT64_MIN, INT64_MAX);
            }
            v = v * 10 + dv;
        }
        x->v.u.integer = neg ? (v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    }
    *out = x;
    return 0;
}

static int is_tok(int c)
{
    return is_alpha(c) || is_digit(c) || c == '_' || c == '+' || c == '-' || c == '.' || c == ':';
}

/* Booleans, numbers, dates and times. */
static int parse_bare(parser *p, int depth, node **out)
{
    char found_buf[64];
    int line = p->line, col = col_of(p, p->i);
    size_t st = p->i;
    while (is_tok(peek(p)))
        p->i++;
    size_t n = p->i - st;
    const char *t = p->s + st;
    /* a date, a space and a time form one date-time */
    if (n == 10 && is_digit((unsigned char)t[0]) && t[4] == '-' && t[7] == '-' && peek(p) == ' ' &&
        is_digit(peek_at(p, 1)) && is_digit(peek_at(p, 2)) && peek_at(p, 3) == ':') {
        p->i++;
        while (is_tok(peek(p)))
            p->i++;
        n = p->i - st;
    }
    if (n == 0)
        return FAIL_HERE(p, "expected a value, found %s", FOUND(p));
    if ((n == 4 && memcmp(t, "true", 4) == 0) || (n == 5 && memcmp(t, "false", 5) == 0)) {
        node *x = node_new(p, TOML_BOOL, line, col, depth);
        if (!x)
            return ZDM_EXIT_FAIL;
        x->v.u.boolean = n == 4;
        *out = x;
        return 0;
    }
    size_t sg = (t[0] == '+' || t[0] == '-') ? 1 : 0;
    if (n - sg == 3 && (memcmp(t + sg, "inf", 3) == 0 || memcmp(t + sg, "nan", 3) == 0)) {
        node *x = node_new(p, TOML_FLOAT, line, col, depth);
        if (!x)
            return ZDM_EXIT_FAIL;
        int neg = t[0] == '-';
        if (t[sg] == 'i')
            x->v.u.flt = neg ? -HUGE_VAL : HUGE_VAL;
        else
            x->v.u.flt = neg ? -NAN : NAN;
        *out = x;
        return 0;
    }
    if ((n >= 5 && is_digit((unsigned char)t[0]) && is_digit((unsigned char)t[1]) &&
         is_digit((unsigned char)t[2]) && is_digit((unsigned char)t[3]) && t[4] == '-') ||
        (is_digit((unsigned char)t[0]) && memchr(t, ':', n)))
        return parse_datetime(p, t, n, line, col, depth, out);
    return parse_number(p, t, n, line, col, depth, out);
}

/* ------------------------------------------------------------ values */

static int parse_value(parser *p, int depth, node **out);
static int parse_keyval(parser *p, node *tbl, unsigned sec);

static int string_node(parser *p, int line, int col, int depth, char *s, size_t len, node **out)
{
    node *x = node_new(p, TOML_STRING, line, col, depth);
    if (!x) {
        free(s);
        return ZDM_EXIT_FAIL;
    }
    x->v.u.str.ptr = s;
    x->v.u.str.len = len;
    *out = x;
    return 0;
}

/* Blanks, newlines and comments, as allowed between array elements. */
static int skip_comment(parser *p);
static int skip_blank(parser *p)
{
    for (;;) {
        skip_ws(p);
        int c = peek(p);
        if (c == '#') {
            int rc = skip_comment(p);
            if (rc)
                return rc;
        } else if (is_newline(p)) {
            eat_newline(p);
        } else {
            return 0;
        }
    }
}

static int parse_array(parser *p, int depth, node **out)
{
    char found_buf[64];
    int ol = p->line, oc = col_of(p, p->i);
    node *a = container_new(p, TOML_ARRAY, ol, oc, depth);
    if (!a)
        return p->rc;
    int rc;
    p->i++;
    for (;;) {
        if ((rc = skip_blank(p)))
            goto bad;
        int c = peek(p);
        if (c == ']') {
            p->i++;
            break;
        }
        if (c < 0) {
            rc = FAIL_HERE(p, "unterminated array (opened at %d:%d)", ol, oc);
            goto bad;
        }
        if (c == ',') {
            rc = FAIL_HERE(p, "expected a value in the array, found ','");
            goto bad;
        }
        node *v = NULL;
        if ((rc = parse_value(p, depth + 1, &v)))
            goto bad;
        if ((rc = arr_push(p, a, v)))
            goto bad;
        if ((rc = skip_blank(p)))
            goto bad;
        c = peek(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == ']') {
            p->i++;
            break;
        }
        if (c < 0)
            rc = FAIL_HERE(p, "unterminated array (opened at %d:%d)", ol, oc);
        else
            rc = FAIL_HERE(p, "expected ',' or ']' after an array element (array opened at %d:%d), found %s", ol,
                           oc, FOUND(p));
        goto bad;
    }
    *out = a;
    return 0;
bad:
    toml_free(&a->v);
    return rc;
}

static int parse_inline(parser *p, int depth, node **out)
{
    char found_buf[64];
    int ol = p->line, oc = col_of(p, p->i);
    node *t = container_new(p, TOML_TABLE, ol, oc, depth);
    if (!t)
        return p->rc;
    unsigned sec = ++p->sec;
    int rc;
    p->i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->i++;
        goto done;
    }
    for (;;) {
        skip_ws(p);
        if (is_newline(p)) {
            rc = FAIL_HERE(p, "an inline table (opened at %d:%d) must stay on one line", ol, oc);
            goto bad;
        }
        if (peek(p) < 0) {
            rc = FAIL_HERE(p, "unterminated inline table (opened at %d:%d)", ol, oc);
            goto bad;
        }
        if ((rc = parse_keyval(p, t, sec)))
            goto bad;
        skip_ws(p);
        int c = peek(p);
        if (c == ',') {
            p->i++;
            skip_ws(p);
            if (peek(p) == '}') {
                rc = FAIL_HERE(p, "a trailing comma is not allowed in an inline table");
                goto bad;
            }
            continue;
        }
        if (c == '}') {
            p->i++;
            break;
        }
        if (c < 0)
            rc = FAIL_HERE(p, "unterminated inline table (opened at %d:%d)", ol, oc);
        else if (is_newline(p))
            rc = FAIL_HERE(p, "an inline table (opened at %d:%d) must stay on one line", ol, oc);
        else
            rc = FAIL_HERE(p, "expected ',' or '}' in the inline table opened at %d:%d, found %s", ol, oc,
                           FOUND(p));
        goto bad;
    }
done:
    t->v.u.table.flags |= TF_INLINE;
    *out = t;
    return 0;
bad:
    toml_free(&t->v);
    return rc;
}

static int parse_value(parser *p, int depth, node **out)
{
    char found_buf[64];
    int line = p->line, col = col_of(p, p->i);
    int c = peek(p);
    char *s = NULL;
    size_t len = 0;
    int rc;
    switch (c) {
    case '"':
    case '\'':
        if (peek_at(p, 1) == c && peek_at(p, 2) == c)
            rc = parse_multiline(p, (char)c, &s, &len);
        else
            rc = c == '"' ? parse_basic(p, &s, &len) : parse_literal(p, &s, &len);
        if (rc)
            return rc;
        return string_node(p, line, col, depth, s, len, out);
    case '[':
        return parse_array(p, depth, out);
    case '{':
        return parse_inline(p, depth, out);
    default:
        if (c < 0 || c == '#' || is_newline(p))
            return FAIL_HERE(p, "expected a value, found %s", c == '#' ? "a comment" : FOUND(p));
        return parse_bare(p, depth, out);
    }
}

/* ------------------------------------------------------------ structure */

static int skip_comment(parser *p)
{
    p->i++;
    while (p->i < p->n) {
        int c = (unsigned char)p->s[p->i];
        if (c == '\n' || (c == '\r' && peek_at(p, 1) == '\n'))
            break;
        if (is_ctrl(c))
            return FAIL_HERE(p, "control character U+%04X is not allowed in a comment", (unsigned)c);
        p->i++;
    }
    return 0;
}

/* Blanks, an optional comment, then a newline or the end of the input. */
static int expect_eol(parser *p, const char *after)
{
    char found_buf[64];
    skip_ws(p);
    if (peek(p) == '#') {
        int rc = skip_comment(p);
        if (rc)
            return rc;
    }
    if (peek(p) < 0)
        return 0;
    if (is_newline(p)) {
        eat_newline(p);
        return 0;
    }
    return FAIL_HERE(p, "expected the end of the line after %s, found %s", after, FOUND(p));
}

/* Walks one part of a dotted key (a.b = ...) from *tp. */
static int descend_dotted(parser *p, node **tp, const kpart *kp, unsigned sec)
{
    char kb[128];
    node *t = *tp;
    size_t idx;
    if (!tbl_find(t, kp->s, kp->len, &idx)) {
        node *nt = container_new(p, TOML_TABLE, kp->line, kp->col, t->depth + 1);
        if (!nt)
            return p->rc;
        nt->v.u.table.flags = TF_DOTTED;
        nt->sec = sec;
        int rc = tbl_add(p, t, kp, nt);
        if (rc)
            return rc;
        *tp = nt;
        return 0;
    }
    const toml_kv *kv = &t->v.u.table.items[idx];
    node *x = NODE(kv->value);
    int dl, dc;
    def_pos(kv, &dl, &dc);
    fmt_key(kp->s, kp->len, kb, sizeof kb);
    if (x->v.type == TOML_TABLE) {
        unsigned f = x->v.u.table.flags;
        if (f & TF_INLINE)
            return fail_at(p, kp->line, kp->col,
                           "cannot add keys to inline table \"%s\" (first defined at %d:%d): "
                           "an inline table is complete once written", kb, dl, dc);
        if (f & TF_HEADER)
            return fail_at(p, kp->line, kp->col,
                           "cannot add keys to table \"%s\" with dotted keys: it has its own [header] "
                           "(first defined at %d:%d)", kb, dl, dc);
        if ((f & TF_DOTTED) && x->sec != sec)
            return fail_at(p, kp->line, kp->col,
                           "cannot add keys to table \"%s\" from another section: it was defined with "
                           "dotted keys (first defined at %d:%d)", kb, dl, dc);
        if (!(f & TF_DOTTED)) {
            x->v.u.table.flags |= TF_DOTTED;
            x->sec = sec;
        }
        *tp = x;
        return 0;
    }
    if (x->v.type == TOML_ARRAY)
        return fail_at(p, kp->line, kp->col, "cannot add keys to %s \"%s\" with dotted keys (first defined at %d:%d)",
                       x->v.u.array.of_tables ? "array of tables" : "array", kb, dl, dc);
    return fail_at(p, kp->line, kp->col,
                   "cannot use \"%s\" as a table: it already holds %s (first defined at %d:%d)", kb,
                   with_article(x->v.type), dl, dc);
}

/* key = value, into tbl; the key's dotted tables belong to section sec. */
static int parse_keyval(parser *p, node *tbl, unsigned sec)
{
    char found_buf[64], kb[128];
    kpath kp = {0};
    int rc = parse_key(p, &kp);
    if (rc)
        goto out;
    if (peek(p) != '=') {
        fmt_key(kp.v[kp.n - 1].s, kp.v[kp.n - 1].len, kb, sizeof kb);
        rc = FAIL_HERE(p, "expected '=' after the key \"%s\", found %s", kb, FOUND(p));
        goto out;
    }
    p->i++;
    skip_ws(p);
    node *t = tbl;
    for (size_t k = 0; k + 1 < kp.n; k++)
        if ((rc = descend_dotted(p, &t, &kp.v[k], sec)))
            goto out;
    const kpart *last = &kp.v[kp.n - 1];
    size_t idx;
    if (tbl_find(t, last->s, last->len, &idx)) {
        int dl, dc;
        def_pos(&t->v.u.table.items[idx], &dl, &dc);
        fmt_key(last->s, last->len, kb, sizeof kb);
        rc = fail_at(p, last->line, last->col, "duplicate key \"%s\" (first defined at %d:%d)", kb, dl, dc);
        goto out;
    }
    node *val = NULL;
    if ((rc = parse_value(p, t->depth + 1, &val)))
        goto out;
    rc = tbl_add(p, t, last, val);
out:
    kpath_free(&kp);
    return rc;
}

/* [a.b.c] or [[a.b.c]] at the cursor; sets *cur to the table to fill. */
static int parse_header(parser *p, node *root, node **cur)
{
    char found_buf[64], path[400], kb[128];
    int hl = p->line, hc = col_of(p, p->i);
    int aot = peek_at(p, 1) == '[';
    kpath kp = {0};
    int rc;
    p->i += aot ? 2 : 1;
    if ((rc = parse_key(p, &kp)))
        goto out;
    if (peek(p) != ']' || (aot && peek_at(p, 1) != ']')) {
        if (aot && peek(p) == ']')
            p->i++;
        rc = FAIL_HERE(p, "expected '%s' to close the %s header opened at %d:%d, found %s", aot ? "]]" : "]",
                       aot ? "array-of-tables" : "table", hl, hc, FOUND(p));
        goto out;
    }
    p->i += aot ? 2 : 1;

    node *t = root;
    for (size_t k = 0; k + 1 < kp.n; k++) {
        const kpart *part = &kp.v[k];
        size_t idx;
        if (!tbl_find(t, part->s, part->len, &idx)) {
            node *nt = container_new(p, TOML_TABLE, part->line, part->col, t->depth + 1);
            if (!nt) {
                rc = p->rc;
                goto out;
            }
            if ((rc = tbl_add(p, t, part, nt)))
                goto out;
            t = nt;
            continue;
        }
        const toml_kv *kv = &t->v.u.table.items[idx];
        node *x = NODE(kv->value);
        int dl, dc;
        def_pos(kv, &dl, &dc);
        fmt_path(&kp, k + 1, path, sizeof path);
        if (x->v.type == TOML_TABLE && !(x->v.u.table.flags & TF_INLINE)) {
            t = x;
        } else if (x->v.type == TOML_ARRAY && x->v.u.array.of_tables) {
            t = NODE(x->v.u.array.items[x->v.u.array.len - 1]);
        } else if (x->v.type == TOML_TABLE) {
            rc = fail_at(p, part->line, part->col,
                         "cannot extend inline table \"%s\" with a table header (first defined at %d:%d): "
                         "an inline table is complete once written", path, dl, dc);
        } else if (x->v.type == TOML_ARRAY) {
            rc = fail_at(p, part->line, part->col,
                         "cannot extend array \"%s\" with a table header (first defined at %d:%d): "
                         "it is a static array, not an array of tables", path, dl, dc);
        } else {
            rc = fail_at(p, part->line, part->col,
                         "cannot use \"%s\" as a table: it already holds %s (first defined at %d:%d)", path,
                         with_article(x->v.type), dl, dc);
        }
        if (rc)
            goto out;
    }

    const kpart *last = &kp.v[kp.n - 1];
    fmt_path(&kp, kp.n, path, sizeof path);
    size_t idx;
    node *nt = NULL;
    if (!tbl_find(t, last->s, last->len, &idx)) {
        if (aot) {
            node *a = container_new(p, TOML_ARRAY, hl, hc, t->depth + 1);
            if (!a) {
                rc = p->rc;
                goto out;
            }
            a->v.u.array.of_tables = 1;
            if ((rc = tbl_add(p, t, last, a)))
                goto out;
            t = a;
        } else {
            nt = container_new(p, TOML_TABLE, hl, hc, t->depth + 1);
            if (!nt) {
                rc = p->rc;
                goto out;
            }
            nt->v.u.table.flags = TF_HEADER;
            if ((rc = tbl_add(p, t, last, nt)))
                goto out;
        }
    } else {
        const toml_kv *kv = &t->v.u.table.items[idx];
        node *x = NODE(kv->value);
        int dl, dc;
        def_pos(kv, &dl, &dc);
        fmt_key(last->s, last->len, kb, sizeof kb);
        if (aot) {
            if (x->v.type == TOML_ARRAY && x->v.u.array.of_tables) {
                t = x;
            } else if (x->v.type == TOML_ARRAY) {
                rc = fail_at(p, hl, hc, "cannot append to static array \"%s\" with [[%s]] (first defined at %d:%d)",
                             kb, path, dl, dc);
                goto out;
            } else {
                rc = fail_at(p, hl, hc,
                             "cannot define array of tables [[%s]]: \"%s\" is already %s (first defined at %d:%d)",
                             path, kb, with_article(x->v.type), dl, dc);
                goto out;
            }
        } else if (x->v.type == TOML_TABLE) {
            unsigned f = x->v.u.table.flags;
            if (f & TF_INLINE)
                rc = fail_at(p, hl, hc, "cannot define table [%s]: \"%s\" is an inline table (first defined at %d:%d) "
                                        "and an inline table is complete once written", path, kb, dl, dc);
            else if (f & TF_HEADER)
                rc = fail_at(p, hl, hc, "table [%s] is defined twice (first defined at %d:%d)", path, dl, dc);
            else if (f & TF_DOTTED)
                rc = fail_at(p, hl, hc, "cannot define table [%s]: it was already defined with dotted keys "
                                        "(first defined at %d:%d)", path, dl, dc);
            if (rc)
                goto out;
            x->v.u.table.flags |= TF_HEADER;
            x->v.line = hl;
            x->v.col = hc;
            nt = x;
        } else if (x->v.type == TOML_ARRAY && x->v.u.array.of_tables) {
            rc = fail_at(p, hl, hc, "cannot define table [%s]: \"%s\" is an array of tables (first defined at %d:%d)",
                         path, kb, dl, dc);
            goto out;
        } else {
            rc = fail_at(p, hl, hc, "cannot define table [%s]: \"%s\" already holds %s (first defined at %d:%d)",
                         path, kb, with_article(x->v.type), dl, dc);
            goto out;
        }
    }
    if (aot) {
        nt = container_new(p, TOML_TABLE, hl, hc, t->depth + 1);
        if (!nt) {
            rc = p->rc;
            goto out;
        }
        nt->v.u.table.flags = TF_HEADER;
        if ((rc = arr_push(p, t, nt)))
            goto out;
    }
    *cur = nt;
out:
    kpath_free(&kp);
    return rc;
}

/* ------------------------------------------------------------ entry points */

int toml_parse(const char *src, size_t len, const char *filename, toml_value **out, zdm_err *err)
{
    if (out)
        *out = NULL;
    parser P = {0};
    parser *p = &P;
    p->s = src ? src : "";
    p->n = src ? len : 0;
    p->line = 1;
    p->file = filename ? filename : "<input>";
    p->err = err;
    if (p->n >= 3 && memcmp(p->s, "\xEF\xBB\xBF", 3) == 0)
        p->i = p->bol = 3;

    node *root = NULL;
    int rc = check_utf8(p);
    if (rc)
        goto done;
    root = node_new(p, TOML_TABLE, 1, 1, 0);
    if (!root) {
        rc = ZDM_EXIT_FAIL;
        goto done;
    }
    root->v.u.table.flags = TF_HEADER;
    node *cur = root;
    unsigned sec = ++p->sec;
    while (!rc) {
        skip_ws(p);
        int c = peek(p);
        if (c < 0)
            break;
        if (c == '#') {
            rc = expect_eol(p, "a comment");
        } else if (is_newline(p)) {
            eat_newline(p);
        } else if (c == '[') {
            rc = parse_header(p, root, &cur);
            sec = ++p->sec;
            if (!rc)
                rc = expect_eol(p, "a table header");
        } else {
            rc = parse_keyval(p, cur, sec);
            if (!rc)
                rc = expect_eol(p, "a value");
        }
    }
done:
    free(p->buf);
    if (rc || !out) {
        toml_free(root ? &root->v : NULL);
        return rc;
    }
    *out = &root->v;
    return 0;
}

int toml_parse_file(const char *path, toml_value **out, zdm_err *err)
{
    if (out)
        *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot read %s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                int e = errno;
                free(buf);
                fclose(f);
                return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot read %s: %s", path, strerror(e ? e : EIO));
            }
            break;
        }
    }
    fclose(f);
    int rc = toml_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

toml_value *toml_get(const toml_value *table, const char *key)
{
    const toml_kv *kv = toml_get_kv(table, key);
    return kv ? kv->value : NULL;
}

const toml_kv *toml_get_kv(const toml_value *table, const char *key)
{
    if (!table || !key || table->type != TOML_TABLE)
        return NULL;
    size_t idx;
    if (!tbl_find(NODE(table), key, strlen(key), &idx))
        return NULL;
    return &table->u.table.items[idx];
}

size_t toml_kv_keylen(const toml_value *table, const toml_kv *kv)
{
    return NODE(table)->klen[kv - table->u.table.items];
}

const char *toml_type_name(toml_type t)
{
    switch (t) {
    case TOML_TABLE: return "table";
    case TOML_ARRAY: return "array";
    case TOML_STRING: return "string";
    case TOML_INTEGER: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOL: return "bool";
    case TOML_DATETIME: return "datetime";
    case TOML_DATETIME_LOCAL: return "datetime-local";
    case TOML_DATE_LOCAL: return "date-local";
    case TOML_TIME_LOCAL: return "time-local";
    }
    return "unknown";
}
