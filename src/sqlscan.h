/*
 * sqlscan.h -- SQL text as tokens and statements, without parsing it, for
 * PostgreSQL and SQLite; and the size and depth bounds every SQL text zdm
 * reads must keep.
 *
 * Owns: the tokenizer (strings, quoted identifiers, dollar quotes and
 * nested comments of PostgreSQL; [ident] and `ident` of SQLite), splitting
 * a text into statements (a trigger's BEGIN ... END and PostgreSQL's BEGIN
 * ATOMIC stay in one), file positions of statements, the inline
 * exceptions "-- zdm:allow RULE[,RULE] reason", and the bounds.
 *
 * Why the bounds: libpg_query turns its parse tree into JSON recursively,
 * so a statement like "SELECT 1 + 1 + ..." with 200,000 terms overflows
 * the stack.  The scan estimates the nesting depth a statement's parse
 * tree can reach from its tokens alone (an upper bound: every operator in
 * a run of operands may nest once, every parenthesis once), in constant
 * stack, so plan validation and lint refuse such a statement before any
 * parser sees it.
 */
#ifndef ZDM_SQLSCAN_H
#define ZDM_SQLSCAN_H

#include <stddef.h>

#include "util.h"

/* Dialects (the same numbers as zdm_step_sql()'s). */
#define ZDM_SQL_PG 1
#define ZDM_SQL_SQLITE 2

/* A statement longer than this many bytes is refused. */
#define ZDM_SQL_MAX_BYTES (1024 * 1024)
/* A statement whose estimated parse-tree depth is above this is refused. */
#define ZDM_SQL_MAX_DEPTH 1000

typedef enum zdm_tok_kind {
    ZDM_TOK_WORD,    /* keyword or bare identifier */
    ZDM_TOK_QIDENT,  /* "ident", [ident], `ident` */
    ZDM_TOK_STRING,  /* '...', E'...', $tag$...$tag$, X'..' */
    ZDM_TOK_NUMBER,
    ZDM_TOK_PARAM,   /* $1, ?, :name */
    ZDM_TOK_OP,      /* operators, ::, . */
    ZDM_TOK_LPAREN,
    ZDM_TOK_RPAREN,
    ZDM_TOK_COMMA,
    ZDM_TOK_SEMI
} zdm_tok_kind;

typedef struct zdm_tok {
    zdm_tok_kind kind;
    size_t off, len;       /* bytes in the text */
} zdm_tok;

typedef struct zdm_sql_stmt {
    size_t off, end;       /* first byte of the first token .. after the last (';' excluded) */
    size_t tok, ntok;      /* its tokens in zdm_sql_scan.toks, without the ';' */
    int line, col;         /* 1-based, of off */
    int end_line;          /* line of the last token */
    int depth;             /* estimated parse-tree depth */
} zdm_sql_stmt;

/* "-- zdm:allow RULE[,RULE] reason" */
typedef struct zdm_sql_allow {
    char *rules;           /* owned: "rule" or "a,b" */
    char *reason;          /* owned: "" when missing */
    int line, col;
    size_t stmt;           /* index of the statement it applies to; SIZE_MAX: none follows */
} zdm_sql_allow;

typedef struct zdm_sql_scan {
    zdm_tok *toks;
    size_t ntoks;
    zdm_sql_stmt *stmts;
    size_t nstmts;
    zdm_sql_allow *allows;
    size_t nallows;
    int unterminated;      /* a string, quoted identifier or comment never ends */
    int un_line, un_col;   /* where it starts */
} zdm_sql_scan;

/* Scans sql (NUL-terminated) for `dialect`.  Free with zdm_sql_scan_free. */
void zdm_sql_scan_text(const char *sql, int dialect, zdm_sql_scan *out);
void zdm_sql_scan_free(zdm_sql_scan *s);

/* 1-based line and column (in characters) of byte `off` of sql. */
void zdm_sql_pos(const char *sql, size_t off, int *line, int *col);
/* Newlines in s[from, to) (memchr: callers that count line numbers as
 * they walk a text pay once per byte). */
int zdm_sql_count_lines(const char *s, size_t from, size_t to);
/* The same for offsets asked in increasing order, in one pass over the
 * text: a cursor zeroed before the first call remembers where it is (an
 * offset behind it starts over). */
typedef struct {
    size_t off;
    int line, col;
} zdm_sql_cursor;
void zdm_sql_pos_next(zdm_sql_cursor *c, const char *sql, size_t off, int *line, int *col);

/* What is wrong with `s` as one piece of a statement zdm generates (an
 * operation's type, default or expression, pasted as written): NULL when
 * nothing is, else why ("holds a ';' ..."), a static string.  A piece is
 * not empty, holds no ';' and no -- comment outside its strings, and its
 * parentheses close.  as_type: it is a column's type alone, without the
 * column's other clauses (DEFAULT, NOT NULL, GENERATED, a constraint);
 * on_existing_table too: no serial type (its default fills every row). */
const char *zdm_sql_fragment_problem(const char *s, int as_type, int on_existing_table);

/* Is token t the keyword `kw` (case-insensitive)? */
int zdm_tok_is(const char *sql, const zdm_tok *t, const char *kw);

/* Checks the bounds without keeping tokens.  Returns 0 when every
 * statement of sql keeps them; else ZDM_EXIT_USAGE, with *line and *col
 * (1-based within sql) of the statement and why (e.g. "a statement nests
 * about 200000 levels deep (the limit is 1000)") in `why`. */
int zdm_sql_check_limits(const char *sql, int dialect, int *line, int *col, zdm_buf *why);

/* zdm_sql_check_limits and zdm_sql_scan_text in one pass over sql: 0 with
 * *out filled (free with zdm_sql_scan_free), or what zdm_sql_check_limits
 * returns, with *out empty. */
int zdm_sql_scan_checked(const char *sql, int dialect, zdm_sql_scan *out, int *line, int *col, zdm_buf *why);

#endif
