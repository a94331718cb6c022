/*
 * toml.h -- zdm's TOML 1.0.0 parser.
 *
 * Owns: turning a byte buffer into a tree of toml_value, with the line and
 * column of every key and value kept so that plan validation can point at
 * them.  The whole tree is owned by the root returned from toml_parse() and
 * freed with toml_free(); accessors return borrowed pointers into it.
 *
 * Errors name "file:line:column: sentence" in err->msg and set err->line,
 * err->col and err->code = ZDM_EXIT_USAGE.  Nesting of arrays and inline
 * tables is limited to TOML_MAX_DEPTH so hostile input cannot exhaust the
 * stack.
 */
#ifndef ZDM_TOML_H
#define ZDM_TOML_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define TOML_MAX_DEPTH 128

typedef enum toml_type {
    TOML_TABLE,
    TOML_ARRAY,
    TOML_STRING,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME,       /* offset date-time, e.g. 1979-05-27T07:32:00Z */
    TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
    TOML_DATE_LOCAL,     /* 1979-05-27 */
    TOML_TIME_LOCAL      /* 07:32:00 */
} toml_type;

typedef struct toml_value toml_value;

/* One key of a table, in the order the document defined them. */
typedef struct toml_kv {
    char *key;          /* decoded key (UTF-8, NUL-terminated; may contain no NUL) */
    int line, col;      /* where this key was (first) written */
    toml_value *value;
} toml_kv;

struct toml_value {
    toml_type type;
    int line, col;      /* where the value starts (tables: their header or first key) */
    union {
        struct {
            toml_kv *items;
            size_t len, cap;
            unsigned flags; /* parser bookkeeping (implicit/defined/inline/dotted) */
        } table;
        struct {
            toml_value **items;
            size_t len, cap;
            int of_tables;  /* 1 when built by [[array.of.tables]] */
        } array;
        struct {
            char *ptr;      /* NUL-terminated; len excludes the NUL; may hold \0 from \u0000 */
            size_t len;
        } str;
        int64_t integer;
        double flt;
        int boolean;
        struct {
            /* date/time kinds: the fields, plus a canonical text form
             * (RFC 3339 with 'T', as written otherwise) for printing. */
            int year, month, day;
            int hour, minute, second;
            int nanosecond;
            int offset_minutes; /* TOML_DATETIME only; 'Z' is 0 */
            char text[64];
        } dt;
    } u;
};

/* Parses `len` bytes of `src`.  `filename` is used in messages only (may be
 * NULL: "<input>").  On success *out is a TOML_TABLE root; free with
 * toml_free().  On failure returns ZDM_EXIT_USAGE, *out is NULL. */
int toml_parse(const char *src, size_t len, const char *filename,
               toml_value **out, zdm_err *err) ZDM_MUST_CHECK;

/* Reads and parses a file. I/O errors give ZDM_EXIT_FAIL. */
int toml_parse_file(const char *path, toml_value **out, zdm_err *err) ZDM_MUST_CHECK;

void toml_free(toml_value *v);

/* Borrowed lookups; NULL when absent or not a table. */
toml_value *toml_get(const toml_value *table, const char *key);
const toml_kv *toml_get_kv(const toml_value *table, const char *key);

const char *toml_type_name(toml_type t); /* "string", "integer", "table", ... */

#endif
