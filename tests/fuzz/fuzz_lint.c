/*
 * fuzz_lint.c -- libFuzzer target for the lint entry points and the SQL
 * scanner, with deep expressions.
 *
 * Byte 0 picks the dialect (bit 0), the entry point (bits 1-2: one step's
 * SQL in a transaction, one without, a plain SQL file, the scanner alone)
 * and the phase (bit 3).  When bit 7 is set the rest is a recipe for a
 * large input rather than the input itself: bytes 1-2 give a count N (up
 * to 262,143 after scaling), and the text "PREFIX\x01UNIT\x01SUFFIX" is
 * expanded to PREFIX + N * UNIT + SUFFIX (N cut so that it stays within
 * 128 KiB) -- "SELECT 1" + N * " + 1", or N opening parentheses -- so the
 * fuzzer reaches depths that -max_len would never allow.
 *
 * Checks: nothing crashes or leaks; a text over the bounds is refused
 * (-1 and a parse-error finding) and never reaches libpg_query; every
 * finding names a known rule, has a message and a hint, and a line and
 * column inside the text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lint.h"
#include "sqlscan.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static char *expand(const uint8_t *data, size_t size, size_t *len)
{
    if (size < 3) {
        *len = 0;
        return calloc(1, 1);
    }
    size_t n = ((size_t)data[1] << 8 | data[2]) * 4 + (data[0] & 3);
    const char *t = (const char *)data + 3;
    size_t tl = size - 3;
    const char *a = memchr(t, 1, tl);
    const char *b = a ? memchr(a + 1, 1, tl - (size_t)(a + 1 - t)) : NULL;
    size_t pl = a ? (size_t)(a - t) : tl;
    size_t ul = a ? (b ? (size_t)(b - a - 1) : tl - pl - 1) : 0;
    size_t sl = b ? tl - (size_t)(b + 1 - t) : 0;
    if (ul == 0)
        n = 0;
    /* At most 128 KiB: 128 times the depth bound in one-byte units (and
     * " + 1" 32,000 terms deep), while a text of DDL that size -- every
     * statement parsed and linted, a finding each -- still takes a fraction
     * of a second under ASan.  At 2 MB even linear work took seconds
     * (a 300 KB INSERT 1.5 s, 65,000 DROPs 9 s after the quadratic paths
     * went), and a slow unit failed the CI run.  The byte bound (1 MiB) is
     * tested in test_sqlscan. */
    if (ul > 0 && n > (128u << 10) / ul)
        n = (128u << 10) / ul;
    size_t total = pl + n * ul + sl;
    char *s = malloc(total + 1);
    check(s != NULL);
    memcpy(s, t, pl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + pl + i * ul, a + 1, ul);
    if (sl)
        memcpy(s + pl + n * ul, b + 1, sl);
    s[total] = '\0';
    *len = strlen(s); /* a NUL in the input ends the text, as it would in a file zdm refuses */
    return s;
}

static int count_lines(const char *s)
{
    int n = 1;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    size_t len;
    char *sql;
    if (mode & 0x80) {
        sql = expand(data, size, &len);
    } else {
        sql = malloc(size);
        check(sql != NULL);
        memcpy(sql, data + 1, size - 1);
        sql[size - 1] = '\0';
        len = strlen(sql);
    }
    int dialect = mode & 1 ? ZDM_LINT_DIALECT_SQLITE : ZDM_LINT_DIALECT_PG;
    int entry = (mode >> 1) & 3;
    zdm_phase_kind phase = mode & 8 ? ZDM_PHASE_CONTRACT : ZDM_PHASE_EXPAND;

    int line = 0, col = 0;
    zdm_buf why = {0};
    int over = zdm_sql_check_limits(sql, dialect == ZDM_LINT_DIALECT_SQLITE ? ZDM_SQL_SQLITE : ZDM_SQL_PG,
                                    &line, &col, &why) != 0;
    check(!over || (why.data && line >= 1 && col >= 1));
    zdm_buf_free(&why);
    int lines = count_lines(sql);

    if (entry == 3) {
        zdm_sql_scan sc;
        zdm_sql_scan_text(sql, dialect == ZDM_LINT_DIALECT_SQLITE ? ZDM_SQL_SQLITE : ZDM_SQL_PG, &sc);
        for (size_t i = 0; i < sc.nstmts; i++) {
            const zdm_sql_stmt *st = &sc.stmts[i];
            check(st->off < st->end && st->end <= len && st->tok + st->ntok <= sc.ntoks);
            check(st->line >= 1 && st->line <= lines && st->end_line >= st->line);
            check(i == 0 || sc.stmts[i - 1].end <= st->off);
        }
        for (size_t i = 0; i < sc.ntoks; i++)
            check(sc.toks[i].off + sc.toks[i].len <= len);
        for (size_t i = 0; i < sc.nallows; i++)
            check(sc.allows[i].rules && sc.allows[i].reason &&
                  (sc.allows[i].stmt < sc.nstmts || sc.allows[i].stmt == SIZE_MAX));
        zdm_sql_scan_free(&sc);
        free(sql);
        return 0;
    }

    zdm_lint_ctx *ctx = zdm_lint_ctx_new();
    zdm_lint_result r = {0};
    int rc = entry == 2 ? zdm_lint_sql_file(ctx, sql, dialect, &r)
                        : zdm_lint_sql_dialect(ctx, sql, dialect, phase, entry == 0, &r);
    check(rc == 0 || rc == -1);
    if (over) {
        check(rc == -1 && r.n == 1 && strcmp(r.v[0].rule, "parse-error") == 0);
    }
    for (size_t i = 0; i < r.n; i++) {
        const zdm_lint_finding *f = &r.v[i];
        check(zdm_lint_rule_find(f->rule) != NULL);
        check(f->message && f->message[0] && f->hint);
        check(f->line >= 1 && f->line <= lines);
        check(f->col >= 0);
        check(!f->allowed || f->allowed_by);
    }
    /* The formatter reads every field. */
    for (size_t i = 0; i < r.n; i++) {
        zdm_buf b = {0};
        zdm_lint_format(&r.v[i], &b);
        check(b.data != NULL);
        zdm_buf_free(&b);
    }
    zdm_lint_result_free(&r);
    zdm_lint_ctx_free(ctx);
    free(sql);
    return 0;
}
