/*
 * test_sqlquote.c -- zdm_sql_dollar_quote and zdm_sql_literal (util.c):
 * the quoted text always ends where it was meant to, whatever the body
 * holds, including a body that ends with the start of the tag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

/* Where a PostgreSQL lexer ends the dollar-quoted string starting at s:
 * the tag is s up to its second '$'; the body ends at the tag's next
 * occurrence.  Returns the body's length, or -1. */
static long body_len(const char *s)
{
    const char *t = strchr(s + 1, '$');
    if (s[0] != '$' || !t)
        return -1;
    size_t tl = (size_t)(t - s) + 1;
    char tag[64];
    memcpy(tag, s, tl);
    tag[tl] = '\0';
    const char *end = strstr(s + tl, tag);
    return end ? (long)(end - (s + tl)) : -1;
}

static void test_dollar_quote(void **state)
{
    (void)state;
    const char *bodies[] = {"", "plain", "$zdm$", "a$zdm$b", "$zdm_1$ and $zdm$", "ends with $zdm", "$zdm_",
                            "x$zdm_1", "$$", "$zdm$zdm$zdm_1$zdm_2$", "'$zdm$' || \"c$zdm_1$d\""};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char *q = zdm_sql_dollar_quote(bodies[i]);
        long n = body_len(q);
        if (n != (long)strlen(bodies[i]) || strncmp(strchr(q + 1, '$') + 1, bodies[i], strlen(bodies[i])) != 0)
            fail_msg("body \"%s\" quoted as %s ends after %ld bytes", bodies[i], q, n);
        free(q);
    }
    char *q = zdm_sql_dollar_quote("plain");
    assert_string_equal(q, "$zdm$plain$zdm$");
    free(q);
}

static void test_literal(void **state)
{
    (void)state;
    char *l = zdm_sql_literal("it's \"x\" $zdm$ \\");
    assert_string_equal(l, "'it''s \"x\" $zdm$ \\'");
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dollar_quote),
        cmocka_unit_test(test_literal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
