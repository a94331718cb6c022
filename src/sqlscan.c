/*
 * sqlscan.c -- tokens, statements, inline exceptions and bounds of SQL
 * text (see sqlscan.h).
 *
 * One pass over the text, constant stack: the tokenizer never recurses,
 * and the depth estimate keeps its per-parenthesis counters in an array
 * bounded by ZDM_SQL_MAX_DEPTH.
 */
#include "sqlscan.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOK_COMMENT 100 /* internal: a comment (line or block) */

/* Byte classes, one lookup each in the hot loops (the scanner runs over
 * every byte of every SQL text; at -O0 under the sanitizers each test of a
 * byte costs a call): CH_SPACE isspace() in the C locale, CH_IDENT
 * ident_char(), CH_WORD a byte that starts a word and nothing else (a
 * letter that may open a string, E'..', X'..', B'..', N'..', U&'..', is
 * left to the full dispatch). */
enum { CH_SPACE = 1, CH_IDENT = 2, CH_WORD = 4 };
static const unsigned char ch_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0,
    0, 6, 2, 6, 6, 2, 6, 6, 6, 6, 6, 6, 6, 6, 2, 6,
    6, 6, 6, 6, 6, 2, 6, 6, 2, 6, 6, 0, 0, 0, 0, 6,
    0, 6, 2, 6, 6, 2, 6, 6, 6, 6, 6, 6, 6, 6, 2, 6,
    6, 6, 6, 6, 6, 2, 6, 6, 2, 6, 6, 0, 0, 0, 0, 0,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
};

static int ident_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static int ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Skips a quoted run starting at s[*i] (the opening quote) that ends at
 * `close`; a doubled close stands for itself; `bs`: backslash escapes.
 * Returns 0 when it never ends (*i at the end). */
static int skip_quoted(const char *s, size_t *i, char close, int bs)
{
    size_t k = *i + 1;
    for (;;) {
        if (!s[k]) {
            *i = k;
            return 0;
        }
        if (bs && s[k] == '\\' && s[k + 1]) {
            k += 2;
            continue;
        }
        if (s[k] == close) {
            if (s[k + 1] == close && close != ']') {
                k += 2;
                continue;
            }
            *i = k + 1;
            return 1;
        }
        k++;
    }
}

/* PostgreSQL's $tag$ opening a dollar-quoted string at s[i], its length
 * (0 when s[i] does not start one). */
static size_t dollar_tag(const char *s, size_t i)
{
    if (s[i] != '$')
        return 0;
    size_t k = i + 1;
    if (s[k] == '$')
        return 2;
    if (!ident_start((unsigned char)s[k]))
        return 0;
    while (ident_char((unsigned char)s[k]) && s[k] != '$')
        k++;
    return s[k] == '$' ? k - i + 1 : 0;
}

/* The next token or comment from s[*i]; blanks skipped.  Returns 1 with
 * *t filled (t->kind may be TOK_COMMENT), 0 at the end, -1 when a
 * string, identifier or comment never ends (t->off: where it starts). */
static int next_tok(const char *s, size_t *i, int dialect, zdm_tok *t)
{
    size_t k = *i;
    while (ch_class[(unsigned char)s[k]] & CH_SPACE)
        k++;
    if (!s[k]) {
        *i = k;
        return 0;
    }
    unsigned char c = (unsigned char)s[k];
    t->off = k;
    /* The commonest tokens first, each found with one test: the chain
     * below tries a dozen prefixes before it reaches them. */
    switch (c) {
    case '(':
    case ')':
    case ',':
    case ';':
        t->kind = c == '(' ? ZDM_TOK_LPAREN : c == ')' ? ZDM_TOK_RPAREN : c == ',' ? ZDM_TOK_COMMA : ZDM_TOK_SEMI;
        t->len = 1;
        *i = k + 1;
        return 1;
    default:
        break;
    }
    if (ch_class[c] & CH_WORD) {
        k++;
        while (ch_class[(unsigned char)s[k]] & CH_IDENT)
            k++;
        t->kind = ZDM_TOK_WORD;
        t->len = k - t->off;
        *i = k;
        return 1;
    }
    int ok = 1;
    if (c == '-' && s[k + 1] == '-') {
        while (s[k] && s[k] != '\n')
            k++;
        t->kind = TOK_COMMENT;
    } else if (c == '/' && s[k + 1] == '*') {
        /* PostgreSQL nests block comments; SQLite does not. */
        int level = 1;
        k += 2;
        while (s[k] && level > 0) {
            if (s[k] == '*' && s[k + 1] == '/') {
                level--;
                k += 2;
            } else if (dialect == ZDM_SQL_PG && s[k] == '/' && s[k + 1] == '*') {
                level++;
                k += 2;
            } else {
                k++;
            }
        }
        ok = level == 0;
        t->kind = TOK_COMMENT;
    } else if (c == '\'') {
        ok = skip_quoted(s, &k, '\'', 0);
        t->kind = ZDM_TOK_STRING;
    } else if ((c == 'E' || c == 'e') && s[k + 1] == '\'' && dialect == ZDM_SQL_PG) {
        k++;
        ok = skip_quoted(s, &k, '\'', 1);
        t->kind = ZDM_TOK_STRING;
    } else if ((c == 'X' || c == 'x' || c == 'B' || c == 'b' || c == 'N' || c == 'n') && s[k + 1] == '\'') {
        k++;
        ok = skip_quoted(s, &k, '\'', 0);
        t->kind = ZDM_TOK_STRING;
    } else if ((c == 'U' || c == 'u') && s[k + 1] == '&' && (s[k + 2] == '\'' || s[k + 2] == '"')) {
        k += 2;
        t->kind = s[k] == '\'' ? ZDM_TOK_STRING : ZDM_TOK_QIDENT;
        ok = skip_quoted(s, &k, s[k], 0);
    } else if (c == '"') {
        ok = skip_quoted(s, &k, '"', 0);
        t->kind = ZDM_TOK_QIDENT;
    } else if (dialect == ZDM_SQL_SQLITE && c == '`') {
        ok = skip_quoted(s, &k, '`', 0);
        t->kind = ZDM_TOK_QIDENT;
    } else if (dialect == ZDM_SQL_SQLITE && c == '[') {
        ok = skip_quoted(s, &k, ']', 0);
        t->kind = ZDM_TOK_QIDENT;
    } else if (dialect == ZDM_SQL_PG && c == '$' && dollar_tag(s, k)) {
        size_t tl = dollar_tag(s, k);
        const char *tag = s + k;
        k += tl;
        for (;;) {
            const char *e = strchr(s + k, '$');
            if (!e) {
                k += strlen(s + k);
                ok = 0;
                break;
            }
            k = (size_t)(e - s);
            if (strncmp(e, tag, tl) == 0) {
                k += tl;
                break;
            }
            k++;
        }
        t->kind = ZDM_TOK_STRING;
    } else if (ident_start(c)) {
        while (ch_class[(unsigned char)s[k]] & CH_IDENT)
            k++;
        t->kind = ZDM_TOK_WORD;
    } else if (isdigit(c) || (c == '.' && isdigit((unsigned char)s[k + 1]))) {
        while (isalnum((unsigned char)s[k]) || s[k] == '.' || s[k] == '_' ||
               ((s[k] == '+' || s[k] == '-') && (s[k - 1] == 'e' || s[k - 1] == 'E')))
            k++;
        t->kind = ZDM_TOK_NUMBER;
    } else if ((c == '$' || c == '?' || c == ':' || c == '@') && isdigit((unsigned char)s[k + 1])) {
        k++;
        while (isdigit((unsigned char)s[k]))
            k++;
        t->kind = ZDM_TOK_PARAM;
    } else if (c == '?' && dialect == ZDM_SQL_SQLITE) {
        k++;
        t->kind = ZDM_TOK_PARAM;
    } else if (c == '(' || c == ')' || c == ',' || c == ';') {
        k++;
        t->kind = c == '(' ? ZDM_TOK_LPAREN : c == ')' ? ZDM_TOK_RPAREN : c == ',' ? ZDM_TOK_COMMA : ZDM_TOK_SEMI;
    } else {
        /* Operators: a run of operator characters (PostgreSQL's rule,
         * close enough for SQLite's fixed set). */
        static const char opchars[] = "+-*/<>=~!@#%^&|`?:.[]";
        if (strchr(opchars, c) && c) {
            k++;
            while (s[k] && strchr("+-*/<>=~!@#%^&|?", s[k]) && !(s[k] == '-' && s[k + 1] == '-') &&
                   !(s[k] == '/' && s[k + 1] == '*') && c != '.' && c != '[' && c != ']')
                k++;
        } else {
            k++; /* any other byte stands alone */
            while ((s[k] & 0xC0) == 0x80)
                k++;
        }
        t->kind = ZDM_TOK_OP;
    }
    t->len = k - t->off;
    *i = k;
    return ok ? 1 : -1;
}

/* What the text between two tokens holds besides white space: the scan
 * keeps neither comments nor the ';' that ends a statement. */
static const char *gap_problem(const char *s, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        /* a block comment is closed inside the piece (else unterminated) */
        if (i + 1 < to && s[i] == '-' && s[i + 1] == '-')
            return "holds a -- comment: it is pasted into the statement zdm generates, where it would hide the "
                   "rest of the line";
        if (s[i] == ';')
            return "holds a ';': it is one piece of the statement zdm generates, not statements of its own "
                   "(write those as a raw sql step, which lint checks)";
    }
    return NULL;
}

const char *zdm_sql_fragment_problem(const char *s, int as_type, int on_existing_table)
{
    /* a column's clauses, each with the operation's own way to say it */
    static const struct {
        const char *word, *why;
    } clauses[] = {
        {"default", "is not a type alone: DEFAULT goes in the operation's default field (zdm adds the column "
                    "without it, then sets it, so no row is rewritten)"},
        {"not", "is not a type alone: say nullable = false"},
        {"null", "is not a type alone: say nullable = true or false"},
        {"generated", "is not a type alone: a generated column is computed for every row, a rewrite of the "
                      "table under its lock; write it as a raw sql step, which lint checks"},
        {"primary", "is not a type alone: a key is its own operation (add_unique, or create_table's primary_key)"},
        {"unique", "is not a type alone: use the add_unique operation"},
        {"references", "is not a type alone: use the add_foreign_key operation"},
        {"check", "is not a type alone: use the add_check operation"},
        {"constraint", "is not a type alone: constraints are operations of their own (add_check, add_unique, "
                       "add_foreign_key)"},
    };
    static const char *const serials[] = {"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"};
    zdm_sql_scan sc;
    zdm_sql_scan_text(s, ZDM_SQL_PG, &sc);
    const char *why = NULL;
    if (sc.unterminated)
        why = "has a string, quoted name or comment that never ends";
    else if (sc.ntoks == 0)
        why = gap_problem(s, 0, strlen(s)) ? gap_problem(s, 0, strlen(s)) : "is empty";
    int depth = 0;
    size_t prev = 0;
    for (size_t i = 0; !why && i < sc.ntoks; i++) {
        const zdm_tok *t = &sc.toks[i];
        if ((why = gap_problem(s, prev, t->off)) != NULL)
            break;
        if (t->kind == ZDM_TOK_LPAREN)
            depth++;
        else if (t->kind == ZDM_TOK_RPAREN && --depth < 0)
            why = "closes a parenthesis it did not open";
        for (size_t k = 0; !why && as_type && k < sizeof clauses / sizeof clauses[0]; k++)
            if (zdm_tok_is(s, t, clauses[k].word))
                why = clauses[k].why;
        for (size_t k = 0; !why && as_type && on_existing_table && k < sizeof serials / sizeof serials[0]; k++)
            if (zdm_tok_is(s, t, serials[k]))
                why = "is a serial type, whose default (nextval) fills every existing row: a rewrite of the table "
                      "under its lock; use integer or bigint and set the default with the default field";
        prev = t->off + t->len;
    }
    if (!why && depth > 0)
        why = "opens a parenthesis it does not close";
    if (!why)
        why = gap_problem(s, prev, strlen(s));
    zdm_sql_scan_free(&sc);
    return why;
}

int zdm_tok_is(const char *sql, const zdm_tok *t, const char *kw)
{
    size_t n = strlen(kw);
    return t->kind == ZDM_TOK_WORD && t->len == n && strncasecmp(sql + t->off, kw, n) == 0;
}

void zdm_sql_pos(const char *sql, size_t off, int *line, int *col)
{
    int l = 1;
    size_t start = 0;
    for (size_t i = 0; i < off && sql[i]; i++)
        if (sql[i] == '\n') {
            l++;
            start = i + 1;
        }
    int c = 1;
    for (size_t i = start; i < off && sql[i]; i++)
        if ((sql[i] & 0xC0) != 0x80)
            c++;
    *line = l;
    *col = c;
}

/* Line and column of increasing offsets in one pass: the scanner asks for
 * the position of every statement and comment in order, and recounting
 * from the start each time made a text of many statements quadratic (the
 * fuzzer's timeout).  An offset behind the cursor starts over.  Lines are
 * skipped with memchr; only the bytes of the last line are counted one by
 * one (for the column). */
void zdm_sql_pos_next(zdm_sql_cursor *c, const char *s, size_t off, int *line, int *col)
{
    if (c->line == 0 || off < c->off) {
        c->off = 0;
        c->line = c->col = 1;
    }
    if (off > c->off)
        off = c->off + strnlen(s + c->off, off - c->off); /* never past the end */
    for (;;) {
        const char *nl = c->off < off ? memchr(s + c->off, '\n', off - c->off) : NULL;
        if (!nl)
            break;
        c->line++;
        c->col = 1;
        c->off = (size_t)(nl - s) + 1;
    }
    for (; c->off < off; c->off++)
        c->col += (s[c->off] & 0xC0) != 0x80;
    *line = c->line;
    *col = c->col;
}

int zdm_sql_count_lines(const char *s, size_t from, size_t to)
{
    int n = 0;
    const char *p = s + from, *e = s + to;
    while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* The keywords the one pass looks at, found once per word: testing each
 * word against every keyword in turn (with strlen and strncasecmp each
 * time) was most of the scanner's time on a large text. */
enum {
    KW_NONE,
    /* after these an operand starts a new, flat list element */
    KW_AND, KW_OR, KW_WHEN, KW_THEN, KW_ELSE, KW_SELECT, KW_FROM, KW_WHERE, KW_SET, KW_VALUES, KW_ON,
    KW_RETURNING, KW_LIMIT, KW_OFFSET, KW_GROUP, KW_ORDER, KW_HAVING, KW_BY, KW_DEFAULT, KW_CHECK, KW_USING,
    KW_LAST_RESET = KW_USING,
    KW_NOT, KW_IS, KW_COLLATE, KW_UNION, KW_INTERSECT, KW_EXCEPT,
    KW_CREATE, KW_TRIGGER, KW_FUNCTION, KW_PROCEDURE, KW_BEGIN, KW_ATOMIC, KW_CASE, KW_END
};

static int word_kw(const char *s, const zdm_tok *t)
{
    /* By length, then first letter: a word is compared with the few
     * keywords of its length alone. */
#define K_(w, k) {w, k}
    static const struct {
        const char *w;
        int kw;
    } kws[] = {
        K_("BY", KW_BY), K_("IS", KW_IS), K_("ON", KW_ON), K_("OR", KW_OR), K_("AND", KW_AND),
        K_("END", KW_END), K_("NOT", KW_NOT), K_("SET", KW_SET), K_("CASE", KW_CASE), K_("ELSE", KW_ELSE),
        K_("FROM", KW_FROM), K_("THEN", KW_THEN), K_("WHEN", KW_WHEN), K_("BEGIN", KW_BEGIN),
        K_("CHECK", KW_CHECK), K_("GROUP", KW_GROUP), K_("LIMIT", KW_LIMIT), K_("ORDER", KW_ORDER),
        K_("UNION", KW_UNION), K_("USING", KW_USING), K_("WHERE", KW_WHERE), K_("ATOMIC", KW_ATOMIC),
        K_("CREATE", KW_CREATE), K_("EXCEPT", KW_EXCEPT), K_("HAVING", KW_HAVING), K_("OFFSET", KW_OFFSET),
        K_("SELECT", KW_SELECT), K_("VALUES", KW_VALUES), K_("COLLATE", KW_COLLATE), K_("DEFAULT", KW_DEFAULT),
        K_("TRIGGER", KW_TRIGGER), K_("FUNCTION", KW_FUNCTION), K_("INTERSECT", KW_INTERSECT),
        K_("PROCEDURE", KW_PROCEDURE), K_("RETURNING", KW_RETURNING)};
#undef K_
    /* kws[from[n] .. from[n + 1]) have n letters */
    static const unsigned char from[11] = {0, 0, 0, 4, 8, 13, 21, 28, 31, 32, 35};
    if (t->kind != ZDM_TOK_WORD || t->len < 2 || t->len > 9)
        return KW_NONE;
    unsigned char c0 = (unsigned char)toupper((unsigned char)s[t->off]);
    for (size_t i = from[t->len]; i < from[t->len + 1]; i++)
        if ((unsigned char)kws[i].w[0] == c0 && strncasecmp(s + t->off, kws[i].w, t->len) == 0)
            return kws[i].kw;
    return KW_NONE;
}

/* ---- the one pass ---- */

typedef struct depth_state {
    int level;                 /* parenthesis depth (may exceed the arrays) */
    int chain[ZDM_SQL_MAX_DEPTH + 2];
    int sum;                   /* of chain[0..level] */
    int max;
} depth_state;

static void depth_reset(depth_state *d)
{
    d->level = 0;
    d->chain[0] = 0;
    d->sum = 0;
    d->max = 0;
}

static void depth_note(depth_state *d)
{
    int cur = d->level + d->sum;
    if (cur > d->max)
        d->max = cur;
}

/* Keywords after which an operand starts a new, flat list element: the
 * parser keeps these as lists (AND/OR are flattened), so they do not nest. */
static int resets_chain(int kw)
{
    return kw >= KW_AND && kw <= KW_LAST_RESET;
}

static void depth_tok(depth_state *d, const char *s, const zdm_tok *t, int kw)
{
    int in = d->level <= ZDM_SQL_MAX_DEPTH;
    switch (t->kind) {
    case ZDM_TOK_LPAREN:
        d->level++;
        if (d->level <= ZDM_SQL_MAX_DEPTH)
            d->chain[d->level] = 0;
        break;
    case ZDM_TOK_RPAREN:
        if (d->level == 0)
            break;
        if (in)
            d->sum -= d->chain[d->level];
        d->level--;
        break;
    case ZDM_TOK_COMMA:
        if (in) {
            d->sum -= d->chain[d->level];
            d->chain[d->level] = 0;
        }
        break;
    case ZDM_TOK_OP:
        if (in && !(t->len == 1 && s[t->off] == '.')) {
            d->chain[d->level]++;
            d->sum++;
        }
        break;
    case ZDM_TOK_WORD:
        if (!in)
            break;
        if (resets_chain(kw)) {
            d->sum -= d->chain[d->level];
            d->chain[d->level] = 0;
        } else if (kw == KW_NOT || kw == KW_IS || kw == KW_COLLATE) {
            d->chain[d->level]++;
            d->sum++;
        } else if (kw == KW_UNION || kw == KW_INTERSECT || kw == KW_EXCEPT) {
            /* A chain of UNIONs nests its left operand; the SELECT after
             * it resets the operand's chain, so it counts as a level. */
            d->level++;
            if (d->level <= ZDM_SQL_MAX_DEPTH)
                d->chain[d->level] = 0;
        }
        break;
    default:
        break;
    }
    depth_note(d);
}

/* Statement-splitting state: a trigger body (BEGIN ... END) and BEGIN
 * ATOMIC keep their semicolons. */
typedef struct split_state {
    int nwords;      /* words seen in the statement (up to 6) */
    int create;      /* first word CREATE */
    int trigger;     /* CREATE [TEMP] TRIGGER */
    int routine;     /* CREATE [OR REPLACE] FUNCTION/PROCEDURE */
    int block;       /* BEGIN ... END nesting (CASE counts too) */
    int prev_begin;  /* the previous token was BEGIN */
} split_state;

static void split_word(split_state *st, const zdm_tok *t, int kw, int dialect)
{
    if (t->kind != ZDM_TOK_WORD) {
        st->prev_begin = 0;
        return;
    }
    if (st->nwords < 6) {
        if (st->nwords == 0)
            st->create = kw == KW_CREATE;
        else if (st->create && kw == KW_TRIGGER)
            st->trigger = 1;
        else if (st->create && (kw == KW_FUNCTION || kw == KW_PROCEDURE))
            st->routine = 1;
        st->nwords++;
    }
    if (dialect == ZDM_SQL_SQLITE && st->trigger) {
        if (kw == KW_BEGIN || (st->block > 0 && kw == KW_CASE))
            st->block++;
        else if (st->block > 0 && kw == KW_END)
            st->block--;
    } else if (dialect == ZDM_SQL_PG && st->routine) {
        if (st->prev_begin && kw == KW_ATOMIC)
            st->block++;
        else if (st->block > 0 && kw == KW_CASE)
            st->block++;
        else if (st->block > 0 && kw == KW_END)
            st->block--;
    }
    st->prev_begin = kw == KW_BEGIN;
}

/* "-- zdm:allow RULES reason": fills a (rules, reason), or returns 0. */
static int parse_allow(const char *s, const zdm_tok *t, zdm_sql_allow *a)
{
    const char *p = s + t->off, *end = s + t->off + t->len;
    if (p[0] == '-')
        p += 2;
    else {
        p += 2;
        end -= 2; /* the closing star-slash */
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if ((size_t)(end - p) < 9 || strncmp(p, "zdm:allow", 9) != 0)
        return 0;
    p += 9;
    if (p < end && !isspace((unsigned char)*p))
        return 0;
    while (p < end && isspace((unsigned char)*p))
        p++;
    const char *r = p;
    while (p < end && !isspace((unsigned char)*p))
        p++;
    a->rules = zdm_xstrndup(r, (size_t)(p - r));
    while (p < end && isspace((unsigned char)*p))
        p++;
    const char *e = end;
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    a->reason = zdm_xstrndup(p, (size_t)(e - p));
    return 1;
}

typedef struct limits {
    int stop;          /* stop at a broken bound even when keeping tokens */
    int bad;
    size_t off;        /* statement that broke a bound */
    size_t bytes;
    int depth;
} limits;

/* Appends statement *x (with its token count, depth and last line) to
 * out; the allows waiting for a statement, from pending_from on, are its.
 * Returns the new pending_from. */
static size_t push_stmt(zdm_sql_scan *out, size_t *cap, const zdm_sql_stmt *x, size_t ntok, int depth,
                        int end_line, size_t pending_from)
{
    if (out->nstmts == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        out->stmts = zdm_xrealloc(out->stmts, *cap * sizeof *out->stmts);
    }
    zdm_sql_stmt *y = &out->stmts[out->nstmts];
    *y = *x;
    y->ntok = ntok;
    y->depth = depth;
    y->end_line = end_line;
    for (size_t k = pending_from; k < out->nallows; k++)
        if (out->allows[k].stmt == SIZE_MAX)
            out->allows[k].stmt = out->nstmts;
    out->nstmts++;
    return out->nallows;
}

static void run(const char *s, int dialect, zdm_sql_scan *out, limits *L)
{
    depth_state *dp = zdm_xmalloc(sizeof *dp); /* 4 KB: off the stack */
    depth_reset(dp);
    split_state st;
    memset(&st, 0, sizeof st);
    size_t i = 0, cap_tok = 0, cap_st = 0, cap_al = 0;
    int open = 0;            /* a statement has tokens */
    size_t st_off = 0, st_tok = 0, last_end = 0;
    int last_stmt_line = -1; /* line of the ';' or last token of the previous statement */
    size_t pending_from = 0; /* allows waiting for the next statement: [pending_from, nallows) */
    zdm_tok t;
    zdm_sql_cursor pc = {0, 0, 0};
    int st_line = 1, st_col = 1; /* where the open statement starts */
    int line = 1;
    size_t line_pos = 0;     /* bytes counted into `line` */
    for (;;) {
        int rc = next_tok(s, &i, dialect, &t);
        if (rc == 0)
            break;
        /* The token's line, counted on from the last token asked about
         * only where it is needed (a comment, a statement's end). */
#define TLINE() (line += zdm_sql_count_lines(s, line_pos, t.off), line_pos = t.off, line)
        if (rc < 0) {
            if (out && !out->unterminated) {
                out->unterminated = 1;
                zdm_sql_pos_next(&pc, s, t.off, &out->un_line, &out->un_col);
            }
            if (t.kind == TOK_COMMENT)
                break;
        }
        if (t.kind == TOK_COMMENT) {
            if (!out)
                continue;
            zdm_sql_allow a;
            memset(&a, 0, sizeof a);
            if (!parse_allow(s, &t, &a))
                continue;
            if (out->nallows == cap_al) {
                cap_al = cap_al ? cap_al * 2 : 4;
                out->allows = zdm_xrealloc(out->allows, cap_al * sizeof *out->allows);
            }
            zdm_sql_pos_next(&pc, s, t.off, &a.line, &a.col);
            if (open)
                a.stmt = out->nstmts; /* inside the statement being read */
            else if (out->nstmts > 0 && TLINE() == last_stmt_line)
                a.stmt = out->nstmts - 1; /* after the previous one, on its line */
            else
                a.stmt = SIZE_MAX; /* the next one, when it comes */
            out->allows[out->nallows++] = a;
            continue;
        }
        int ends = t.kind == ZDM_TOK_SEMI && st.block == 0;
        if (!ends) {
            if (!open) {
                open = 1;
                st_off = t.off;
                zdm_sql_pos_next(&pc, s, st_off, &st_line, &st_col);
                st_tok = out ? out->ntoks : 0;
            }
            int kw = word_kw(s, &t);
            split_word(&st, &t, kw, dialect);
            depth_tok(dp, s, &t, kw);
            last_end = t.off + t.len;
            if (out) {
                if (out->ntoks == cap_tok) {
                    cap_tok = cap_tok ? cap_tok * 2 : 64;
                    out->toks = zdm_xrealloc(out->toks, cap_tok * sizeof *out->toks);
                }
                out->toks[out->ntoks++] = t;
            }
            if (L && !L->bad && (dp->max > ZDM_SQL_MAX_DEPTH || last_end - st_off > ZDM_SQL_MAX_BYTES)) {
                L->bad = 1;
                L->off = st_off;
                L->depth = dp->max;
                L->bytes = last_end - st_off;
            }
            if (L && L->bad && (!out || L->stop))
                break;
            if (rc < 0)
                ends = 1; /* an unterminated string ends the text */
            else
                continue;
        }
        int tline = TLINE();
        last_stmt_line = tline;
        if (!open)
            continue; /* an empty statement */
        if (out) {
            zdm_sql_stmt x = {.off = st_off, .end = last_end, .tok = st_tok, .line = st_line, .col = st_col};
            pending_from = push_stmt(out, &cap_st, &x, out->ntoks - st_tok, dp->max, tline, pending_from);
        }
        open = 0;
        memset(&st, 0, sizeof st);
        depth_reset(dp);
        if (rc < 0)
            break;
    }
#undef TLINE
    if (open && out) {
        /* The last statement, without a ';'. */
        int end_line, cl;
        zdm_sql_pos_next(&pc, s, last_end, &end_line, &cl);
        zdm_sql_stmt x = {.off = st_off, .end = last_end, .tok = st_tok, .line = st_line, .col = st_col};
        push_stmt(out, &cap_st, &x, out->ntoks - st_tok, dp->max, end_line, pending_from);
    }
    free(dp);
}

void zdm_sql_scan_text(const char *sql, int dialect, zdm_sql_scan *out)
{
    memset(out, 0, sizeof *out);
    run(sql ? sql : "", dialect, out, NULL);
}

void zdm_sql_scan_free(zdm_sql_scan *s)
{
    for (size_t i = 0; i < s->nallows; i++) {
        free(s->allows[i].rules);
        free(s->allows[i].reason);
    }
    free(s->allows);
    free(s->toks);
    free(s->stmts);
    memset(s, 0, sizeof *s);
}

/* The refusal of a text that broke a bound (L->bad). */
static int limits_refuse(const char *sql, const limits *L, int *line, int *col, zdm_buf *why)
{
    zdm_sql_pos(sql, L->off, line, col);
    if (L->bytes > ZDM_SQL_MAX_BYTES)
        zdm_buf_printf(why, "a statement longer than %d bytes (the limit); split it into smaller statements",
                       ZDM_SQL_MAX_BYTES);
    else
        zdm_buf_printf(why,
                       "a statement nesting deeper than %d levels (operators chained or parentheses "
                       "nested): zdm refuses it rather than risk the parser's stack; split the expression",
                       ZDM_SQL_MAX_DEPTH);
    return ZDM_EXIT_USAGE;
}

int zdm_sql_check_limits(const char *sql, int dialect, int *line, int *col, zdm_buf *why)
{
    limits L;
    memset(&L, 0, sizeof L);
    run(sql ? sql : "", dialect, NULL, &L);
    return L.bad ? limits_refuse(sql ? sql : "", &L, line, col, why) : 0;
}

int zdm_sql_scan_checked(const char *sql, int dialect, zdm_sql_scan *out, int *line, int *col, zdm_buf *why)
{
    limits L;
    memset(&L, 0, sizeof L);
    L.stop = 1;
    memset(out, 0, sizeof *out);
    run(sql ? sql : "", dialect, out, &L);
    if (!L.bad)
        return 0;
    zdm_sql_scan_free(out);
    return limits_refuse(sql ? sql : "", &L, line, col, why);
}
