/*
 * toml_decode_main.c -- the `toml-decode` program: a toml-test decoder.
 *
 * Reads one TOML document on stdin and prints it on stdout as toml-test
 * "tagged JSON" (tables are objects, arrays are arrays, every leaf is
 * {"type": T, "value": "text"}), exit 0.  Invalid input: the parser's
 * message on stderr, exit 1.  Used by the conformance test and fuzzing.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "toml.h"

/* From toml.c: the byte length of a key (keys may contain NUL). */
size_t toml_kv_keylen(const toml_value *table, const toml_kv *kv);

static json_t *leaf(const char *type, const char *text, size_t len)
{
    json_t *o = json_object();
    json_t *v = json_stringn(text, len);
    if (!o || !v || json_object_set_new(o, "type", json_string(type)) ||
        json_object_set_new(o, "value", v)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *to_json(const toml_value *v)
{
    char num[64];
    switch (v->type) {
    case TOML_TABLE: {
        json_t *o = json_object();
        if (!o)
            return NULL;
        for (size_t i = 0; i < v->u.table.len; i++) {
            const toml_kv *kv = &v->u.table.items[i];
            json_t *child = to_json(kv->value);
            if (!child || json_object_setn_new(o, kv->key, toml_kv_keylen(v, kv), child)) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case TOML_ARRAY: {
        json_t *a = json_array();
        if (!a)
            return NULL;
        for (size_t i = 0; i < v->u.array.len; i++) {
            json_t *child = to_json(v->u.array.items[i]);
            if (!child || json_array_append_new(a, child)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case TOML_STRING:
        return leaf("string", v->u.str.ptr, v->u.str.len);
    case TOML_INTEGER:
        snprintf(num, sizeof num, "%" PRId64, v->u.integer);
        return leaf("integer", num, strlen(num));
    case TOML_FLOAT:
        if (isnan(v->u.flt))
            snprintf(num, sizeof num, "nan");
        else if (isinf(v->u.flt))
            snprintf(num, sizeof num, "%s", v->u.flt < 0 ? "-inf" : "inf");
        else /* shortest text that reads back as the same double */
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(num, sizeof num, "%.*g", prec, v->u.flt);
                if (strtod(num, NULL) == v->u.flt)
                    break;
            }
        return leaf("float", num, strlen(num));
    case TOML_BOOL:
        return leaf("bool", v->u.boolean ? "true" : "false", v->u.boolean ? 4 : 5);
    case TOML_DATETIME:
    case TOML_DATETIME_LOCAL:
    case TOML_DATE_LOCAL:
    case TOML_TIME_LOCAL:
        return leaf(toml_type_name(v->type), v->u.dt.text, strlen(v->u.dt.text));
    }
    return NULL;
}

int main(void)
{
    size_t len = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                fprintf(stderr, "toml-decode: out of memory\n");
                free(buf);
                return 1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "toml-decode: cannot read standard input\n");
        free(buf);
        return 1;
    }

    zdm_err err;
    zdm_err_clear(&err);
    toml_value *root = NULL;
    int rc = toml_parse(buf, len, "<stdin>", &root, &err);
    free(buf);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    json_t *j = to_json(root);
    toml_free(root);
    if (!j) {
        fprintf(stderr, "toml-decode: out of memory\n");
        return 1;
    }
    int bad = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) != 0;
    json_decref(j);
    if (bad || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "toml-decode: cannot write standard output\n");
        return 1;
    }
    return 0;
}
