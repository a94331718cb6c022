/*
 * test_err.c -- zdm_err: messages cut at the size limit stay valid UTF-8
 * (PostgreSQL refuses a history row that is not), and registered secrets
 * never survive in a message, a detail or a prefixed message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"

/* 1 when s is well-formed UTF-8. */
static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        if (!n)
            return 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

static void test_truncation_on_a_character(void **state)
{
    (void)state;
    /* Every alignment of 2-, 3- and 4-byte characters against the limit. */
    const char *chars[] = {"é", "€", "😀"};
    for (size_t c = 0; c < 3; c++) {
        for (size_t pad = 0; pad < 4; pad++) {
            char big[ZDM_ERR_MSG * 2];
            size_t len = 0;
            for (size_t i = 0; i < pad; i++)
                big[len++] = 'x';
            while (len + strlen(chars[c]) < sizeof big - 1) {
                memcpy(big + len, chars[c], strlen(chars[c]));
                len += strlen(chars[c]);
            }
            big[len] = '\0';
            zdm_err e;
            zdm_err_clear(&e);
            zdm_err_set(&e, 1, "%s", big);
            if (!valid_utf8(e.msg))
                fail_msg("msg cut inside a character (%s, pad %zu)", chars[c], pad);
            assert_true(strlen(e.msg) >= ZDM_ERR_MSG - 5);
            zdm_err_detail(&e, "%s", big);
            assert_true(valid_utf8(e.detail));
            zdm_err_set(&e, 1, "%s", big);
            zdm_err_prefix(&e, "%s: ", big);
            assert_true(valid_utf8(e.msg));
        }
    }
    char s[] = "ab\xC3";
    zdm_err_utf8_trim(s);
    assert_string_equal(s, "ab");
    char t[] = "ab\xE2\x82";
    zdm_err_utf8_trim(t);
    assert_string_equal(t, "ab");
    char u[] = "ab\xE2\x82\xAC";
    zdm_err_utf8_trim(u);
    assert_string_equal(u, "ab\xE2\x82\xAC");
}

static void test_secrets_scrubbed(void **state)
{
    (void)state;
    zdm_err_add_secret("hunter2-pw", 10);
    zdm_err_add_secret("abc", 3); /* too short to scrub everywhere */
    zdm_err e;
    zdm_err_clear(&e);
    zdm_err_set(&e, 1, "could not translate host name \"%s@db\"", "hunter2-pw");
    assert_string_equal(e.msg, "could not translate host name \"*****@db\"");
    zdm_err_detail(&e, "x hunter2-pw y hunter2-pw");
    assert_string_equal(e.detail, "x ***** y *****");
    zdm_err_set(&e, 1, "tail");
    zdm_err_prefix(&e, "hunter2-%s: ", "pw");
    assert_string_equal(e.msg, "*****: tail");
    zdm_err_set(&e, 1, "abc stays");
    assert_string_equal(e.msg, "abc stays");
    char *d = zdm_err_scrub_dup("hunter2-pwhunter2-pw, hunter2-p");
    assert_string_equal(d, "**********, hunter2-p");
    free(d);
    d = zdm_err_scrub_dup(NULL);
    assert_string_equal(d, "");
    free(d);
    char buf[16] = "a hunter2-pw b";
    zdm_err_scrub(buf, sizeof buf);
    assert_string_equal(buf, "a ***** b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncation_on_a_character),
        cmocka_unit_test(test_secrets_scrubbed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
