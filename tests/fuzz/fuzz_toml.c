/*
 * fuzz_toml.c -- libFuzzer target for the TOML parser.
 *
 * Parses the input, then walks the tree checking invariants that a bug in
 * the parser's bookkeeping would break: every key is found again through
 * toml_get (the hash index), positions are 1-based, failures leave *out
 * NULL and name "file:line:col:" in the message.  Crashes, leaks and
 * sanitizer reports are found by the sanitizers themselves.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

size_t toml_kv_keylen(const toml_value *table, const toml_kv *kv);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void walk(const toml_value *v, int depth)
{
    check(depth <= TOML_MAX_DEPTH + 1);
    check(v->line >= 1 && v->col >= 1);
    if (v->type == TOML_TABLE) {
        for (size_t i = 0; i < v->u.table.len; i++) {
            const toml_kv *kv = &v->u.table.items[i];
            check(kv->line >= 1 && kv->col >= 1);
            size_t kl = toml_kv_keylen(v, kv);
            if (strlen(kv->key) == kl)
                check(toml_get_kv(v, kv->key) == kv && toml_get(v, kv->key) == kv->value);
            walk(kv->value, depth + 1);
        }
    } else if (v->type == TOML_ARRAY) {
        for (size_t i = 0; i < v->u.array.len; i++)
            walk(v->u.array.items[i], depth + 1);
    } else if (v->type == TOML_STRING) {
        check(v->u.str.ptr[v->u.str.len] == '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    toml_value *root = (toml_value *)&root; /* must be reset to NULL on failure */
    zdm_err err;
    zdm_err_clear(&err);
    int rc = toml_parse((const char *)data, size, "fuzz.toml", &root, &err);
    if (rc == 0) {
        check(root != NULL && root->type == TOML_TABLE);
        walk(root, 0);
        toml_free(root);
    } else {
        check(root == NULL);
        check(rc == ZDM_EXIT_USAGE || rc == ZDM_EXIT_FAIL);
        if (rc == ZDM_EXIT_USAGE)
            check(err.line >= 1 && err.col >= 1 && strncmp(err.msg, "fuzz.toml:", 10) == 0);
    }
    return 0;
}
