/*
 * test_sqlite_deps.c -- which columns a step's SQL drops (the SQLite
 * DROP COLUMN gate starts from this): quoting forms, schema-qualified
 * names, COLUMN optional, several statements, and text that only looks
 * like a drop (in a string or a comment).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqlite_deps.h"
#include "util.h"

static char *drops(const char *sql)
{
    zdm_strv v = {0};
    zdm_sqdeps_drops(sql, &v);
    zdm_buf b = {0};
    for (size_t i = 0; i + 1 < v.n; i += 2)
        zdm_buf_printf(&b, "%s%s.%s", i ? " " : "", v.v[i], v.v[i + 1]);
    zdm_strv_free(&v);
    return zdm_buf_take(&b);
}

#define EXPECT_DROPS(sql, want)                                                                              \
    do {                                                                                                     \
        char *got_ = drops(sql);                                                                             \
        assert_string_equal(got_, want);                                                                     \
        free(got_);                                                                                          \
    } while (0)

static void test_forms(void **state)
{
    (void)state;
    EXPECT_DROPS("ALTER TABLE emp DROP COLUMN name", "emp.name");
    EXPECT_DROPS("alter table emp drop name", "emp.name");
    EXPECT_DROPS("ALTER TABLE \"e\"\"mp\" DROP COLUMN \"na me\"", "e\"mp.na me");
    EXPECT_DROPS("ALTER TABLE [emp] DROP COLUMN `name`", "emp.name");
    EXPECT_DROPS("ALTER TABLE main.emp DROP COLUMN name", "emp.name");
    EXPECT_DROPS("ALTER TABLE a DROP COLUMN x; ALTER TABLE b ADD COLUMN y int;\nALTER TABLE c DROP z", "a.x c.z");
    EXPECT_DROPS("ALTER TABLE emp /* why */ DROP -- now\n COLUMN name", "emp.name");
}

static void test_not_drops(void **state)
{
    (void)state;
    EXPECT_DROPS("ALTER TABLE emp ADD COLUMN name text", "");
    EXPECT_DROPS("ALTER TABLE emp RENAME COLUMN a TO b", "");
    EXPECT_DROPS("INSERT INTO log VALUES ('ALTER TABLE emp DROP COLUMN name')", "");
    EXPECT_DROPS("-- ALTER TABLE emp DROP COLUMN name\nSELECT 1", "");
    EXPECT_DROPS("/* ALTER TABLE emp DROP COLUMN name */ SELECT 1", "");
    EXPECT_DROPS("DROP TABLE emp", "");
    EXPECT_DROPS("", "");
    EXPECT_DROPS("ALTER TABLE emp DROP", ""); /* cut short */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_not_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
