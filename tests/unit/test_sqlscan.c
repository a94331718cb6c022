/*
 * test_sqlscan.c -- the SQL scanner: statements and their positions in
 * both dialects (quotes, dollar quotes, nested comments, trigger bodies),
 * which statement a "-- zdm:allow" comment belongs to, and the size and
 * depth bounds (a 200,000-term expression is refused; the deepest
 * statement under the bound still parses and lints).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lint.h"
#include "sqlscan.h"
#include "util.h"

static char *stmt_text(const char *sql, const zdm_sql_stmt *st)
{
    return zdm_xstrndup(sql + st->off, st->end - st->off);
}

static void test_split_pg(void **state)
{
    (void)state;
    const char *sql = "SELECT 'a;b', \"c;d\", $$e;f$$, $t$ $$; $t$, E'\\';';\n"
                      "/* x /* nested; */ still; */ CREATE FUNCTION f() RETURNS int\n"
                      "  BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
                      "  -- trailing; comment\n"
                      "UPDATE t SET a = 1";
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql, ZDM_SQL_PG, &sc);
    assert_int_equal(sc.nstmts, 3);
    char *a = stmt_text(sql, &sc.stmts[0]);
    assert_string_equal(a, "SELECT 'a;b', \"c;d\", $$e;f$$, $t$ $$; $t$, E'\\';'");
    free(a);
    assert_int_equal(sc.stmts[1].line, 2);
    assert_int_equal(sc.stmts[1].col, 30);
    char *b = stmt_text(sql, &sc.stmts[1]);
    assert_non_null(strstr(b, "SELECT 2; END"));
    free(b);
    assert_int_equal(sc.stmts[2].line, 5);
    assert_int_equal(sc.stmts[2].col, 1);
    assert_int_equal(sc.unterminated, 0);
    zdm_sql_scan_free(&sc);
}

static void test_split_sqlite(void **state)
{
    (void)state;
    const char *sql = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
                      "  UPDATE t SET b = CASE WHEN NEW.a THEN 1 ELSE 2 END WHERE id = NEW.id;\n"
                      "  INSERT INTO log VALUES ('x;y');\n"
                      "END;\n"
                      "SELECT [a;b], `c;d` FROM t; SELECT $x";
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql, ZDM_SQL_SQLITE, &sc);
    assert_int_equal(sc.nstmts, 3);
    assert_int_equal(sc.stmts[1].line, 5);
    assert_int_equal(sc.stmts[2].col, 29);
    zdm_sql_scan_free(&sc);

    zdm_sql_scan_text("SELECT 1; SELECT 'open", ZDM_SQL_SQLITE, &sc);
    assert_int_equal(sc.unterminated, 1);
    assert_int_equal(sc.un_line, 1);
    assert_int_equal(sc.un_col, 18);
    zdm_sql_scan_free(&sc);
}

/* On the statement's line after it, inside it, or on the lines above. */
static void test_allow_comments(void **state)
{
    (void)state;
    const char *sql = "-- zdm:allow heavy-lock the first\n"
                      "VACUUM FULL a; -- zdm:allow heavy-lock,index-not-concurrent the first too\n"
                      "\n"
                      "-- zdm:allow heavy-lock\n"
                      "CLUSTER b;\n"
                      "CREATE INDEX c\n"
                      "  -- zdm:allow index-not-concurrent inside\n"
                      "  ON t (a);\n"
                      "-- zdm:allowx not one\n"
                      "-- zdm:allow heavy-lock nothing follows\n";
    zdm_sql_scan sc;
    zdm_sql_scan_text(sql, ZDM_SQL_PG, &sc);
    assert_int_equal(sc.nstmts, 3);
    assert_int_equal(sc.nallows, 5);
    assert_int_equal(sc.allows[0].stmt, 0);
    assert_string_equal(sc.allows[0].reason, "the first");
    assert_int_equal(sc.allows[1].stmt, 0);
    assert_string_equal(sc.allows[1].rules, "heavy-lock,index-not-concurrent");
    assert_int_equal(sc.allows[1].line, 2);
    assert_int_equal(sc.allows[1].col, 16);
    assert_int_equal(sc.allows[2].stmt, 1);
    assert_string_equal(sc.allows[2].reason, "");
    assert_int_equal(sc.allows[3].stmt, 2);
    assert_int_equal(sc.allows[4].stmt, SIZE_MAX);
    zdm_sql_scan_free(&sc);

    /* Through the linter: allowed with the reason; no reason allows nothing. */
    zdm_lint_ctx *ctx = zdm_lint_ctx_new();
    zdm_lint_result r = {0};
    assert_int_equal(zdm_lint_sql(ctx, sql, ZDM_PHASE_EXPAND, 0, &r), 0);
    int heavy = 0, noreason = 0;
    for (size_t i = 0; i < r.n; i++) {
        const zdm_lint_finding *f = &r.v[i];
        if (strcmp(f->rule, "heavy-lock") == 0 && f->line == 2) {
            assert_true(f->allowed);
            assert_string_equal(f->allowed_by, "the first");
            heavy++;
        } else if (strcmp(f->rule, "heavy-lock") == 0 && f->line == 5) {
            assert_false(f->allowed);
            heavy++;
        } else if (strcmp(f->rule, "index-not-concurrent") == 0) {
            assert_true(f->allowed);
            assert_string_equal(f->allowed_by, "inside");
        } else if (strcmp(f->rule, "allow-no-reason") == 0) {
            assert_int_equal(f->line, 4);
            noreason++;
        }
    }
    assert_int_equal(heavy, 2);
    assert_int_equal(noreason, 1);
    zdm_lint_result_free(&r);
    zdm_lint_ctx_free(ctx);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, head);
    for (size_t i = 0; i < n; i++)
        zdm_buf_puts(&b, unit);
    zdm_buf_puts(&b, tail);
    return zdm_buf_take(&b);
}

static void test_limits(void **state)
{
    (void)state;
    int line, col;
    zdm_buf why = {0};
    /* The report's 200,000-term expression: refused before any parser. */
    char *deep = repeat("SELECT 1;\n  SELECT 1", " + 1", 200000, ";");
    assert_int_equal(zdm_sql_check_limits(deep, ZDM_SQL_PG, &line, &col, &why), ZDM_EXIT_USAGE);
    assert_int_equal(line, 2);
    assert_int_equal(col, 3);
    assert_non_null(strstr(why.data, "deeper than 1000 levels"));
    zdm_buf_free(&why);
    zdm_lint_ctx *ctx = zdm_lint_ctx_new();
    zdm_lint_result r = {0};
    assert_int_equal(zdm_lint_sql(ctx, deep, ZDM_PHASE_EXPAND, 1, &r), -1);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].rule, "parse-error");
    zdm_lint_result_free(&r);
    free(deep);

    /* Parentheses, NOT chains, UNION chains, in both dialects. */
    const char *units[][3] = {{"SELECT ", "(", "1"}, {"SELECT ", "NOT ", "true"},
                              {"SELECT 1", " UNION SELECT 1", ""}, {"SELECT 'a'", " || 'a'", ""}};
    for (size_t u = 0; u < 4; u++)
        for (int d = ZDM_SQL_PG; d <= ZDM_SQL_SQLITE; d++) {
            char *s = repeat(units[u][0], units[u][1], 5000, units[u][2]);
            assert_int_equal(zdm_sql_check_limits(s, d, &line, &col, &why), ZDM_EXIT_USAGE);
            zdm_buf_free(&why);
            free(s);
        }

    /* Under the bound: 999 operators parse and lint (libpg_query and
     * jansson handle this depth). */
    char *ok = repeat("SELECT 1", " + 1", ZDM_SQL_MAX_DEPTH - 1, "");
    assert_int_equal(zdm_sql_check_limits(ok, ZDM_SQL_PG, &line, &col, &why), 0);
    assert_int_equal(zdm_lint_sql(ctx, ok, ZDM_PHASE_EXPAND, 1, &r), 0);
    assert_int_equal(r.n, 0);
    free(ok);

    /* Wide is fine: 100,000 rows of VALUES, a long AND list, negative numbers. */
    char *wide = repeat("INSERT INTO t VALUES (0)", ", (-1 + 2)", 100000, "");
    assert_int_equal(zdm_sql_check_limits(wide, ZDM_SQL_PG, &line, &col, &why), 0);
    free(wide);
    char *ands = repeat("DELETE FROM t WHERE a = 0", " AND a = 1", 20000, "");
    assert_int_equal(zdm_sql_check_limits(ands, ZDM_SQL_PG, &line, &col, &why), 0);
    free(ands);

    /* Size: one statement over 1 MiB. */
    char *big = repeat("SELECT '", "x", ZDM_SQL_MAX_BYTES, "'");
    assert_int_equal(zdm_sql_check_limits(big, ZDM_SQL_PG, &line, &col, &why), ZDM_EXIT_USAGE);
    assert_non_null(strstr(why.data, "longer than"));
    zdm_buf_free(&why);
    free(big);
    zdm_lint_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_pg),
        cmocka_unit_test(test_split_sqlite),
        cmocka_unit_test(test_allow_comments),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
