/*
 * dwsql.h -- the dialect-neutral pieces of the dual-write trigger SQL.
 *
 * Owns: the clauses both dialects' trigger builders (dialect_pg.c,
 * dialect_sqlite.c) are made of.  Every function appends to a zdm_buf or
 * returns malloc'd text; identifiers are quoted by the dialect given.
 */
#ifndef ZDM_DWSQL_H
#define ZDM_DWSQL_H

#include "dialect.h"

/* 1 + the index of name[0..len) in l (case folded when fold), else 0. */
int zdm_dwsql_in_list(const zdm_strv *l, const char *name, size_t len, int fold);

/* 1 when `expr` holds one of `words` (NULL-terminated) as a whole word,
 * in any case, wherever it is (a string too: a false match only costs). */
int zdm_dwsql_has_word(const char *expr, const char *const *words);

/* `expr` with every bare reference to a column in `cols` reading
 * `prefix.column` (e.g. NEW."project_name").  Strings, quoted identifiers
 * that are not columns, qualified names and function calls are left
 * alone.  malloc'd. */
char *zdm_dwsql_rewrite(const zdm_dialect *d, const char *expr, const zdm_strv *cols, const char *prefix);

/* 1 when the rewrite would read a name of `expr` as one of `cols`
 * (unqualified, not a function's nor a type's name). */
int zdm_dwsql_reads(const char *expr, const zdm_strv *cols);

/* 1 when `expr` reads the row's own columns and nothing else PostgreSQL
 * could resolve differently once rewritten to NEW.col: its words are
 * columns (unqualified, one column each), function names, type names
 * after "::" and operator keywords (AND, IS, IN, LIKE, CASE ...); no
 * subquery, qualified name, typed literal, comment or parameter.  Such a
 * `where` is evaluated in the trigger function as an expression on NEW
 * (zdm_dwsql_rewrite), not as a query on a one-row table. */
int zdm_dwsql_row_local(const char *expr, const zdm_strv *cols);

/* 1 when every expression of the assignments is row-local
 * (zdm_dwsql_row_local) and, when `sequential`, none reads a column an
 * earlier one assigns: then NEW.t1 := (e1'); NEW.t2 := (e2') one after
 * another compute what the backfill's UPDATE t SET t1 = (e1), t2 = (e2)
 * does, whose expressions all read the row as it was.  Otherwise the
 * trigger evaluates them as a query on the row (dialect_pg.c), which
 * resolves names as that UPDATE does: a subquery's own columns first. */
int zdm_dwsql_assign_row_local(const zdm_dialect *d, const zdm_assign *a, size_t n, const zdm_strv *cols,
                               int sequential);

/* fmt (two %s: the quoted column) for each assignment's column, joined. */
void zdm_dwsql_each_col(zdm_buf *b, const zdm_dialect *d, const zdm_assign *a, size_t n, const char *fmt,
                        const char *joiner);
/* "    NEW.t1 := (e1');\n" each (plpgsql), or "t1 = (e1), t2 = (e2)". */
void zdm_dwsql_assignments(zdm_buf *b, const zdm_dialect *d, const zdm_assign *a, size_t n,
                           const zdm_strv *cols, int plpgsql);
/* The row is not yet consistent: "NOT (NEW.t1 IS (e1') AND ...)" when
 * the expressions are row-local, else "NOT EXISTS (SELECT 1 FROM tbl
 * WHERE <key> AND t1 IS (e1) AND ...)", the row read back from the table
 * (an AFTER trigger's row is in it) so names resolve as in the backfill's
 * UPDATE.  tbl: quoted. */
void zdm_dwsql_inconsistent(zdm_buf *b, const zdm_dialect *d, const zdm_assign *a, size_t n,
                            const zdm_strv *cols, const char *tbl, const zdm_strv *key);
/* "k1 = NEW.k1 AND k2 = NEW.k2". */
void zdm_dwsql_key_match(zdm_buf *b, const zdm_dialect *d, const zdm_strv *key);
/* " OF a, b" over names then the assignments' columns, duplicates skipped. */
void zdm_dwsql_of_columns(zdm_buf *c, const zdm_dialect *d, const zdm_strv *names, const zdm_assign *a,
                          size_t na);
/* 's' as a SQL string literal ('' doubled), malloc'd. */
char *zdm_dwsql_literal(const char *s);

#endif
