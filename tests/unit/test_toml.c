/*
 * test_toml.c -- unit tests for the TOML parser (src/toml.c).
 *
 * Values and their positions, every class of error with its exact message
 * and position, the limits (nesting depth, large tables), and robustness:
 * every prefix of a valid document must parse or fail cleanly.
 */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "toml.h"

size_t toml_kv_keylen(const toml_value *table, const toml_kv *kv);

/* ------------------------------------------------------------ helpers */

static toml_value *parse_ok(const char *src)
{
    toml_value *v = NULL;
    zdm_err err;
    zdm_err_clear(&err);
    int rc = toml_parse(src, strlen(src), "t.toml", &v, &err);
    if (rc)
        fail_msg("unexpected parse error: %s", err.msg);
    assert_non_null(v);
    assert_int_equal(v->type, TOML_TABLE);
    return v;
}

/* Parses n bytes that must fail; checks the whole message and position. */
static void expect_err_n(const char *src, size_t n, const char *msg, int line, int col)
{
    toml_value *v = (toml_value *)&v; /* must come back NULL */
    zdm_err err;
    zdm_err_clear(&err);
    int rc = toml_parse(src, n, NULL, &v, &err);
    if (rc == 0)
        toml_free(v);
    assert_int_equal(rc, ZDM_EXIT_USAGE);
    assert_null(v);
    assert_int_equal(err.code, ZDM_EXIT_USAGE);
    assert_string_equal(err.msg, msg);
    assert_int_equal(err.line, line);
    assert_int_equal(err.col, col);
}

static void expect_err(const char *src, const char *msg, int line, int col)
{
    expect_err_n(src, strlen(src), msg, line, col);
}

/* Only checks that src is rejected and that the message contains `part`. */
static void expect_reject(const char *src, const char *part)
{
    toml_value *v = NULL;
    zdm_err err;
    zdm_err_clear(&err);
    int rc = toml_parse(src, strlen(src), NULL, &v, &err);
    if (rc == 0) {
        toml_free(v);
        fail_msg("accepted invalid TOML: %s", src);
    }
    assert_int_equal(rc, ZDM_EXIT_USAGE);
    assert_null(v);
    assert_true(strncmp(err.msg, "<input>:", 8) == 0);
    if (!strstr(err.msg, part))
        fail_msg("message \"%s\" lacks \"%s\" (input: %s)", err.msg, part, src);
}

static const toml_value *path(const toml_value *t, const char *dotted)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", dotted);
    const toml_value *v = t;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        v = toml_get(v, k);
        if (!v)
            fail_msg("no key %s (in %s)", k, dotted);
    }
    return v;
}

/* ------------------------------------------------------------ values */

static void test_scalars(void **state)
{
    (void)state;
    toml_value *r = parse_ok("s = \"a\\tb\\u00e9\\U0001F600\\\\\\\"\"\n"
                             "lit = 'C:\\path'\n"
                             "i = -9_223_372_036_854_775_808\n"
                             "imax = 9223372036854775807\n"
                             "hex = 0xDEAD_beef\n"
                             "oct = 0o755\n"
                             "bin = 0b1101\n"
                             "f = 6.626e-34\n"
                             "f2 = -1_000.5\n"
                             "pinf = +inf\n"
                             "ninf = -inf\n"
                             "nan = -nan\n"
                             "t = true\n"
                             "fl = false\n");
    const toml_value *v = toml_get(r, "s");
    assert_int_equal(v->type, TOML_STRING);
    assert_string_equal(v->u.str.ptr, "a\tb\xc3\xa9\xf0\x9f\x98\x80\\\"");
    assert_int_equal(v->u.str.len, 11);
    assert_string_equal(toml_get(r, "lit")->u.str.ptr, "C:\\path");
    assert_true(toml_get(r, "i")->u.integer == INT64_MIN);
    assert_true(toml_get(r, "imax")->u.integer == INT64_MAX);
    assert_int_equal(toml_get(r, "hex")->u.integer, 0xDEADBEEF);
    assert_int_equal(toml_get(r, "oct")->u.integer, 0755);
    assert_int_equal(toml_get(r, "bin")->u.integer, 13);
    assert_int_equal(toml_get(r, "f")->type, TOML_FLOAT);
    assert_true(toml_get(r, "f")->u.flt == 6.626e-34);
    assert_true(toml_get(r, "f2")->u.flt == -1000.5);
    assert_true(isinf(toml_get(r, "pinf")->u.flt) && toml_get(r, "pinf")->u.flt > 0);
    assert_true(isinf(toml_get(r, "ninf")->u.flt) && toml_get(r, "ninf")->u.flt < 0);
    assert_true(toml_get(r, "nan")->u.flt != toml_get(r, "nan")->u.flt);
    assert_int_equal(toml_get(r, "t")->type, TOML_BOOL);
    assert_int_equal(toml_get(r, "t")->u.boolean, 1);
    assert_int_equal(toml_get(r, "fl")->u.boolean, 0);
    assert_string_equal(toml_type_name(toml_get(r, "fl")->type), "bool");
    toml_free(r);
}

static void test_strings_multiline(void **state)
{
    (void)state;
    toml_value *r = parse_ok("a = \"\"\"\nline1\r\nline2\"\"\"\n"
                             "b = \"\"\"one \\\n     two \\  \n\n  three\"\"\"\n"
                             "c = \"\"\"\"\"quoted\"\"\"\"\"\n"
                             "d = '''\n  raw \\n '' '''\n"
                             "e = ''''''\n"
                             "z = \"nul\\u0000inside\"\n");
    assert_string_equal(toml_get(r, "a")->u.str.ptr, "line1\nline2");
    assert_string_equal(toml_get(r, "b")->u.str.ptr, "one two three");
    assert_string_equal(toml_get(r, "c")->u.str.ptr, "\"\"quoted\"\"");
    assert_string_equal(toml_get(r, "d")->u.str.ptr, "  raw \\n '' ");
    assert_string_equal(toml_get(r, "e")->u.str.ptr, "");
    const toml_value *z = toml_get(r, "z");
    assert_int_equal(z->u.str.len, 10);
    assert_memory_equal(z->u.str.ptr, "nul\0inside", 11);
    /* the positions after a multi-line string are still right */
    const toml_kv *kv = toml_get_kv(r, "z");
    assert_int_equal(kv->line, 12);
    assert_int_equal(kv->col, 1);
    toml_free(r);
}

static void test_datetimes(void **state)
{
    (void)state;
    toml_value *r = parse_ok("odt = 1979-05-27T07:32:00.999999999999-07:30\n"
                             "odt2 = 1979-05-27 07:32:00z\n"
                             "ldt = 1979-05-27t00:32:00.5\n"
                             "ld = 2000-02-29\n"
                             "lt = 23:59:60\n");
    const toml_value *v = toml_get(r, "odt");
    assert_int_equal(v->type, TOML_DATETIME);
    assert_int_equal(v->u.dt.year, 1979);
    assert_int_equal(v->u.dt.month, 5);
    assert_int_equal(v->u.dt.day, 27);
    assert_int_equal(v->u.dt.hour, 7);
    assert_int_equal(v->u.dt.minute, 32);
    assert_int_equal(v->u.dt.second, 0);
    assert_int_equal(v->u.dt.nanosecond, 999999999);
    assert_int_equal(v->u.dt.offset_minutes, -450);
    assert_string_equal(v->u.dt.text, "1979-05-27T07:32:00.999999999-07:30");
    v = toml_get(r, "odt2");
    assert_int_equal(v->type, TOML_DATETIME);
    assert_int_equal(v->u.dt.offset_minutes, 0);
    assert_string_equal(v->u.dt.text, "1979-05-27T07:32:00Z");
    v = toml_get(r, "ldt");
    assert_int_equal(v->type, TOML_DATETIME_LOCAL);
    assert_int_equal(v->u.dt.nanosecond, 500000000);
    assert_string_equal(v->u.dt.text, "1979-05-27T00:32:00.5");
    v = toml_get(r, "ld");
    assert_int_equal(v->type, TOML_DATE_LOCAL);
    assert_string_equal(v->u.dt.text, "2000-02-29");
    v = toml_get(r, "lt");
    assert_int_equal(v->type, TOML_TIME_LOCAL);
    assert_int_equal(v->u.dt.second, 60);
    assert_string_equal(v->u.dt.text, "23:59:60");
    assert_string_equal(toml_type_name(TOML_DATETIME), "datetime");
    assert_string_equal(toml_type_name(TOML_DATETIME_LOCAL), "datetime-local");
    assert_string_equal(toml_type_name(TOML_DATE_LOCAL), "date-local");
    assert_string_equal(toml_type_name(TOML_TIME_LOCAL), "time-local");
    toml_free(r);
}

static void test_tables_and_arrays(void **state)
{
    (void)state;
    toml_value *r = parse_ok("[a.b.c]\n"
                             "z = 1\n"
                             "[a]\n"
                             "b.x = 2\n" /* a.b was only implied by [a.b.c] */
                             "[[fruit]]\n"
                             "name = \"apple\"\n"
                             "[fruit.physical]\n"
                             "color = \"red\"\n"
                             "[[fruit.variety]]\n"
                             "name = \"red delicious\"\n"
                             "[[fruit]]\n"
                             "name = \"banana\"\n"
                             "[x]\n"
                             "mixed = [1, 'two', 3.0, [4], {five = 5}]\n"
                             "inl = { p.q = 1, p.r = 2, \"quoted.key\" = 3 }\n");
    assert_int_equal(path(r, "a.b.c.z")->u.integer, 1);
    assert_int_equal(path(r, "a.b.x")->u.integer, 2);
    const toml_value *fruit = toml_get(r, "fruit");
    assert_int_equal(fruit->type, TOML_ARRAY);
    assert_int_equal(fruit->u.array.of_tables, 1);
    assert_int_equal(fruit->u.array.len, 2);
    assert_string_equal(path(fruit->u.array.items[0], "physical.color")->u.str.ptr, "red");
    assert_string_equal(path(fruit->u.array.items[0], "variety")->u.array.items[0]->u.table.items[0].value->u.str.ptr,
                        "red delicious");
    assert_string_equal(toml_get(fruit->u.array.items[1], "name")->u.str.ptr, "banana");
    assert_null(toml_get(fruit->u.array.items[1], "physical"));
    const toml_value *m = path(r, "x.mixed");
    assert_int_equal(m->u.array.len, 5);
    assert_int_equal(m->u.array.of_tables, 0);
    assert_int_equal(m->u.array.items[1]->type, TOML_STRING);
    assert_int_equal(m->u.array.items[3]->type, TOML_ARRAY);
    assert_int_equal(toml_get(m->u.array.items[4], "five")->u.integer, 5);
    assert_int_equal(path(r, "x.inl.p.r")->u.integer, 2);
    assert_int_equal(toml_get(path(r, "x.inl"), "quoted.key")->u.integer, 3);
    /* keys keep document order */
    const toml_value *x = toml_get(r, "x");
    assert_string_equal(x->u.table.items[0].key, "mixed");
    assert_string_equal(x->u.table.items[1].key, "inl");
    toml_free(r);
}

static void test_lookup_api(void **state)
{
    (void)state;
    toml_value *r = parse_ok("\"\\u0000\" = 1\n\"a\\u0000b\" = 2\na = 3\n");
    assert_null(toml_get(NULL, "a"));
    assert_null(toml_get(r, NULL));
    assert_null(toml_get(r, "missing"));
    assert_null(toml_get(toml_get(r, "a"), "a")); /* not a table */
    assert_int_equal(toml_get(r, "a")->u.integer, 3);
    /* keys holding NUL keep their length and do not match their prefix */
    assert_int_equal(toml_kv_keylen(r, &r->u.table.items[0]), 1);
    assert_int_equal(toml_kv_keylen(r, &r->u.table.items[1]), 3);
    assert_memory_equal(r->u.table.items[1].key, "a\0b", 4);
    assert_null(toml_get(r, ""));
    const toml_kv *kv = toml_get_kv(r, "a");
    assert_non_null(kv);
    assert_ptr_equal(kv, &r->u.table.items[2]);
    assert_string_equal(toml_type_name(TOML_TABLE), "table");
    assert_string_equal(toml_type_name(TOML_ARRAY), "array");
    assert_string_equal(toml_type_name(TOML_STRING), "string");
    assert_string_equal(toml_type_name(TOML_INTEGER), "integer");
    assert_string_equal(toml_type_name(TOML_FLOAT), "float");
    toml_free(r);
    toml_free(NULL);
}

/* ------------------------------------------------------------ positions */

static void test_positions(void **state)
{
    (void)state;
    toml_value *r = parse_ok("# comment\n"
                             "title = \"x\"\n"
                             "  [server]\n"
                             "\thost.name = 'h'   \n"
                             "ports = [ 8000,\n"
                             "          8001 ]\n"
                             "[[jobs]]\n"
                             "inl = { k = 1 }\n");
    const toml_kv *kv = toml_get_kv(r, "title");
    assert_int_equal(kv->line, 2);
    assert_int_equal(kv->col, 1);
    assert_int_equal(kv->value->line, 2);
    assert_int_equal(kv->value->col, 9);

    kv = toml_get_kv(r, "server");
    assert_int_equal(kv->line, 3); /* the key inside the header */
    assert_int_equal(kv->col, 4);
    assert_int_equal(kv->value->line, 3); /* the table: its header */
    assert_int_equal(kv->value->col, 3);

    const toml_value *server = kv->value;
    kv = toml_get_kv(server, "host");
    assert_int_equal(kv->line, 4);
    assert_int_equal(kv->col, 2); /* after a tab: columns count bytes */
    kv = toml_get_kv(kv->value, "name");
    assert_int_equal(kv->line, 4);
    assert_int_equal(kv->col, 7);
    assert_int_equal(kv->value->col, 14);

    const toml_value *ports = toml_get(server, "ports");
    assert_int_equal(ports->line, 5);
    assert_int_equal(ports->col, 9);
    assert_int_equal(ports->u.array.items[0]->line, 5);
    assert_int_equal(ports->u.array.items[0]->col, 11);
    assert_int_equal(ports->u.array.items[1]->line, 6);
    assert_int_equal(ports->u.array.items[1]->col, 11);

    const toml_value *jobs = toml_get(r, "jobs");
    assert_int_equal(jobs->line, 7);
    assert_int_equal(jobs->col, 1);
    const toml_value *job = jobs->u.array.items[0];
    assert_int_equal(job->line, 7);
    kv = toml_get_kv(job, "inl");
    assert_int_equal(kv->value->col, 7);
    kv = toml_get_kv(kv->value, "k");
    assert_int_equal(kv->line, 8);
    assert_int_equal(kv->col, 9);
    assert_int_equal(kv->value->col, 13);

    /* a bare key cannot hold é, but a value after a quoted one counts bytes */
    toml_free(r);
    expect_err("\xc3\xa9t\xc3\xa9 = 1\n",
               "<input>:1:1: invalid character '\xc3\xa9' (U+00E9) in a key: bare keys may only use A-Z a-z 0-9 _ -, "
               "put other keys in quotes", 1, 1);
    r = parse_ok("\"\xc3\xa9t\xc3\xa9\" = 1\n");
    assert_int_equal(r->u.table.items[0].value->col, 11);
    toml_free(r);
}

static void test_positions_bom_crlf(void **state)
{
    (void)state;
    toml_value *r = parse_ok("\xef\xbb\xbf"
                             "a = 1\r\n"
                             "b = 2\r\n");
    assert_int_equal(toml_get_kv(r, "a")->col, 1); /* the BOM is not a column */
    assert_int_equal(toml_get_kv(r, "b")->line, 2);
    assert_int_equal(toml_get(r, "b")->col, 5);
    toml_free(r);
    expect_err("\xef\xbb\xbf"
               "a = 1\nb = \n",
               "<input>:2:5: expected a value, found end of line", 2, 5);
}

/* ------------------------------------------------------------ redefinitions */

static void test_duplicate_key(void **state)
{
    (void)state;
    const char *src = "# plan\n\n\n\n\n\n\n\n\n\n"
                      "table = 1\n"
                      "x = 2\n"
                      "y = 3\n"
                      "        table = 4\n";
    toml_value *v = NULL;
    zdm_err err;
    zdm_err_clear(&err);
    assert_int_equal(toml_parse(src, strlen(src), "plans/0002.toml", &v, &err), ZDM_EXIT_USAGE);
    assert_null(v);
    assert_string_equal(err.msg, "plans/0002.toml:14:9: duplicate key \"table\" (first defined at 11:1)");
    assert_int_equal(err.line, 14);
    assert_int_equal(err.col, 9);

    expect_err("a = 1\n\"a\" = 2\n", "<input>:2:1: duplicate key \"a\" (first defined at 1:1)", 2, 1);
    expect_err("a = 1\n'\\u0061' = 2\n'a' = 3\n", "<input>:3:1: duplicate key \"a\" (first defined at 1:1)", 3, 1);
    expect_err("a.b = 1\na.b = 2\n", "<input>:2:3: duplicate key \"b\" (first defined at 1:3)", 2, 3);
    expect_err("x = { k = 1, k = 2 }\n", "<input>:1:14: duplicate key \"k\" (first defined at 1:7)", 1, 14);
    expect_err("a.b = 1\na = 2\n", "<input>:2:1: duplicate key \"a\" (first defined at 1:1)", 2, 1);
    expect_err("[t]\n\"q\\\"k\" = 1\n'q\"k' = 2\n", "<input>:3:1: duplicate key \"q\\\"k\" (first defined at 2:1)", 3,
               1);
}

static void test_table_redefinition(void **state)
{
    (void)state;
    expect_err("[a]\nx = 1\n\n[a]\n", "<input>:4:1: table [a] is defined twice (first defined at 1:1)", 4, 1);
    expect_err("[a.b]\n[a]\n[a]\n", "<input>:3:1: table [a] is defined twice (first defined at 2:1)", 3, 1);
    expect_err("[a]\nb.c = 1\n[a.b]\n",
               "<input>:3:1: cannot define table [a.b]: it was already defined with dotted keys (first defined at 2:1)",
               3, 1);
    expect_err("a.b = 1\n[a]\n",
               "<input>:2:1: cannot define table [a]: it was already defined with dotted keys (first defined at 1:1)",
               2, 1);
    expect_err("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n",
               "<input>:4:3: cannot add keys to table \"c\" with dotted keys: it has its own [header] "
               "(first defined at 1:1)", 4, 3);
    expect_err("a = 1\n[a]\n",
               "<input>:2:1: cannot define table [a]: \"a\" already holds an integer (first defined at 1:1)", 2, 1);
    expect_err("a = 1\n[a.b]\n",
               "<input>:2:2: cannot use \"a\" as a table: it already holds an integer (first defined at 1:1)", 2, 2);
    expect_err("a = 'x'\na.b = 1\n",
               "<input>:2:1: cannot use \"a\" as a table: it already holds a string (first defined at 1:1)", 2, 1);
    expect_err("[t]\n[[t]]\n",
               "<input>:2:1: cannot define array of tables [[t]]: \"t\" is already a table (first defined at 1:1)", 2,
               1);
    expect_err("[[t]]\n[t]\n",
               "<input>:2:1: cannot define table [t]: \"t\" is an array of tables (first defined at 1:1)", 2, 1);
    expect_err("[[t.arr]]\n[t]\narr.v = 1\n",
               "<input>:3:1: cannot add keys to array of tables \"arr\" with dotted keys (first defined at 1:1)", 3, 1);
    /* [[fruit.variety]] then [fruit.variety] */
    expect_reject("[[fruit]]\n[[fruit.variety]]\n[fruit.variety]\n", "is an array of tables");
}

static void test_inline_table_immutable(void **state)
{
    (void)state;
    expect_err("a = {b = 1}\na.c = 2\n",
               "<input>:2:1: cannot add keys to inline table \"a\" (first defined at 1:1): "
               "an inline table is complete once written", 2, 1);
    expect_err("a = {b = 1}\n[a]\n",
               "<input>:2:1: cannot define table [a]: \"a\" is an inline table (first defined at 1:1) "
               "and an inline table is complete once written", 2, 1);
    expect_err("a = {b = {}}\n[a.b.c]\n",
               "<input>:2:2: cannot extend inline table \"a\" with a table header (first defined at 1:1): "
               "an inline table is complete once written", 2, 2);
    expect_err("t = { x = { y = 1 }, x.z = 2 }\n",
               "<input>:1:22: cannot add keys to inline table \"x\" (first defined at 1:7): "
               "an inline table is complete once written", 1, 22);
    expect_reject("a = {b.a = 1, b = 2, b.c = 3}\n", "duplicate key \"b\" (first defined at 1:6)");
    expect_reject("[tab.nested]\ninline-t = { nest = {} }\n[tab]\nnested.inline-t.nest = 2\n",
                  "with dotted keys: it has its own [header]");
}

static void test_static_array(void **state)
{
    (void)state;
    expect_err("a = [1, 2]\n[[a]]\n",
               "<input>:2:1: cannot append to static array \"a\" with [[a]] (first defined at 1:1)", 2, 1);
    expect_err("a = [{}]\n[a.b]\n",
               "<input>:2:2: cannot extend array \"a\" with a table header (first defined at 1:1): "
               "it is a static array, not an array of tables", 2, 2);
    expect_err("a = []\na.b = 1\n",
               "<input>:2:1: cannot add keys to array \"a\" with dotted keys (first defined at 1:1)", 2, 1);
    expect_reject("a = true\n[[a]]\n", "already a boolean");
}

/* ------------------------------------------------------------ syntax */

static void test_unterminated(void **state)
{
    (void)state;
    expect_err("k = \"abc\nx = 1\n", "<input>:1:9: unterminated string (started at 1:5)", 1, 9);
    expect_err("k = 'abc", "<input>:1:9: unterminated string (started at 1:5)", 1, 9);
    expect_err("k = \"\"\"abc\n\ndef\n", "<input>:4:1: unterminated multi-line string (started at 1:5)", 4, 1);
    expect_err("\n  k = '''abc''", "<input>:2:15: unterminated multi-line string (started at 2:7)", 2, 15);
    expect_err("\"key = 1\n", "<input>:1:9: unterminated string (started at 1:1)", 1, 9);
    expect_err("k = \"abc\\", "<input>:1:10: unterminated string (started at 1:5)", 1, 10);
    expect_err("a = [1, 2\n\n", "<input>:3:1: unterminated array (opened at 1:5)", 3, 1);
    expect_err("a = {b = 1", "<input>:1:11: unterminated inline table (opened at 1:5)", 1, 11);
    expect_err("a = {b = 1\n}", "<input>:1:11: an inline table (opened at 1:5) must stay on one line", 1, 11);
    expect_err("[a\n", "<input>:1:3: expected ']' to close the table header opened at 1:1, found end of line", 1, 3);
    expect_err("[[a]\n", "<input>:1:5: expected ']]' to close the array-of-tables header opened at 1:1, found end of line",
               1, 5);
    expect_err("[[a] ]\n", "<input>:1:5: expected ']]' to close the array-of-tables header opened at 1:1, found ' '", 1,
               5);
}

static void test_bad_syntax(void **state)
{
    (void)state;
    expect_err("a = 1 b = 2\n", "<input>:1:7: expected the end of the line after a value, found 'b'", 1, 7);
    expect_err("a b = 1\n", "<input>:1:3: expected '=' after the key \"a\", found 'b'", 1, 3);
    expect_err("= 1\n", "<input>:1:1: expected a key, found '='", 1, 1);
    expect_err("a = \n", "<input>:1:5: expected a value, found end of line", 1, 5);
    expect_err("a = # no\n", "<input>:1:5: expected a value, found a comment", 1, 5);
    expect_err("a = [1,,2]\n", "<input>:1:8: expected a value in the array, found ','", 1, 8);
    expect_err("a = [1 2]\n", "<input>:1:8: expected ',' or ']' after an array element (array opened at 1:5), found '2'",
               1, 8);
    expect_err("a = {b = 1,}\n", "<input>:1:12: a trailing comma is not allowed in an inline table", 1, 12);
    expect_err("a = {b = 1 c = 2}\n",
               "<input>:1:12: expected ',' or '}' in the inline table opened at 1:5, found 'c'", 1, 12);
    expect_err("[]\n", "<input>:1:2: expected a key, found ']'", 1, 2);
    expect_err("[a..b]\n", "<input>:1:4: expected a key, found '.'", 1, 4);
    expect_err("\"\"\"k\"\"\" = 1\n", "<input>:1:1: a multi-line string cannot be used as a key", 1, 1);
    expect_err("a = value\n", "<input>:1:5: invalid value \"value\": strings must be in quotes", 1, 5);
    expect_err("a = truee\n", "<input>:1:5: invalid value \"truee\": strings must be in quotes", 1, 5);
    expect_err("a = \"x\" \"y\"\n", "<input>:1:9: expected the end of the line after a value, found '\"'", 1, 9);
    expect_err("a = 1\rb = 2\n",
               "<input>:1:6: expected the end of the line after a value, found a carriage return not followed by a "
               "line feed", 1, 6);
    expect_err("a = 1 # x\x01y\n", "<input>:1:10: control character U+0001 is not allowed in a comment", 1, 10);
    expect_err("# x\ry\n", "<input>:1:4: control character U+000D is not allowed in a comment", 1, 4);
    expect_err("a = \"x\x7fy\"\n",
               "<input>:1:7: control character U+007F is not allowed in a string; write it as an escape", 1, 7);
    expect_err("a = 'x\x1fy'\n", "<input>:1:7: control character U+001F is not allowed in a literal string", 1, 7);
    expect_err("a = '''x\ry'''\n", "<input>:1:9: control character U+000D is not allowed in a literal string", 1, 9);
    expect_err_n("a = \"x\0y\"\n", 10,
                 "<input>:1:7: control character U+0000 is not allowed in a string; write it as an escape", 1, 7);
    expect_err_n("a = 1\0\n", 7,
                 "<input>:1:6: expected the end of the line after a value, found control character U+0000", 1, 6);
    expect_err("a = \"\"\"x\"\"\"\"\"\"\n",
               "<input>:1:14: too many quotes: at most two \" may come right before the closing \"\"\"", 1, 14);
    /* tabs are fine everywhere blanks are */
    toml_value *r = parse_ok("\ta\t=\t\"\tx\"\t#\tc\t\n");
    assert_string_equal(toml_get(r, "a")->u.str.ptr, "\tx");
    toml_free(r);
}

static void test_bad_escapes(void **state)
{
    (void)state;
    expect_err("a = \"\\q\"\n", "<input>:1:6: invalid escape sequence: backslash followed by 'q'", 1, 6);
    expect_err("a = \"x\\x41\"\n", "<input>:1:7: invalid escape sequence: backslash followed by 'x'", 1, 7);
    expect_err("a = \"\\e\"\n", "<input>:1:6: invalid escape sequence: backslash followed by 'e'", 1, 6);
    expect_err("a = \"\\ \"\n", "<input>:1:6: invalid escape sequence: backslash followed by ' '", 1, 6);
    expect_err("a = \"\\u12g4\"\n", "<input>:1:6: invalid escape \\u: expected 4 hexadecimal digits, found 'g'", 1, 6);
    expect_err("a = \"\\U0000004\"\n", "<input>:1:6: invalid escape \\U: expected 8 hexadecimal digits, found '\"'", 1,
               6);
    expect_err("a = \"\\uD800\"\n",
               "<input>:1:6: escape \\uD800 is not a Unicode scalar value (a UTF-16 surrogate)", 1, 6);
    expect_err("a = \"\\udfff\"\n",
               "<input>:1:6: escape \\udfff is not a Unicode scalar value (a UTF-16 surrogate)", 1, 6);
    expect_err("a = \"\\U00110000\"\n",
               "<input>:1:6: escape \\U00110000 is not a Unicode scalar value (above U+10FFFF)", 1, 6);
    expect_err("a = \"\"\"\n\\  x\"\"\"\n",
               "<input>:2:1: invalid escape: a backslash followed by whitespace must end the line", 2, 1);
    expect_err("a = \"\"\"\\q\"\"\"\n", "<input>:1:8: invalid escape sequence: backslash followed by 'q'", 1, 8);
    expect_err("\"\\q\" = 1\n", "<input>:1:2: invalid escape sequence: backslash followed by 'q'", 1, 2);
    toml_value *r = parse_ok("a = \"\\U0010FFFF\\uE000\\uD7FF\"\n");
    assert_string_equal(toml_get(r, "a")->u.str.ptr, "\xf4\x8f\xbf\xbf\xee\x80\x80\xed\x9f\xbf");
    toml_free(r);
}

static void test_bad_numbers(void **state)
{
    (void)state;
    expect_err("a = 01\n", "<input>:1:5: invalid number \"01\": leading zeros are not allowed", 1, 5);
    expect_err("a = -0_1\n", "<input>:1:5: invalid number \"-0_1\": leading zeros are not allowed", 1, 5);
    expect_err("a = 00.5\n", "<input>:1:5: invalid number \"00.5\": leading zeros are not allowed", 1, 5);
    expect_err("a = 1__0\n", "<input>:1:5: invalid number \"1__0\": an underscore must sit between two digits", 1, 5);
    expect_err("a = 10_\n", "<input>:1:5: invalid number \"10_\": an underscore must sit between two digits", 1, 5);
    expect_err("a = _10\n", "<input>:1:5: invalid number \"_10\": an underscore must sit between two digits", 1, 5);
    expect_err("a = 1_.5\n", "<input>:1:5: invalid number \"1_.5\": an underscore must sit between two digits", 1, 5);
    expect_err("a = 9223372036854775808\n",
               "<input>:1:5: integer \"9223372036854775808\" does not fit in 64 bits "
               "(-9223372036854775808 to 9223372036854775807)", 1, 5);
    expect_err("a = -9_223_372_036_854_775_809\n",
               "<input>:1:5: integer \"-9_223_372_036_854_775_809\" does not fit in 64 bits "
               "(-9223372036854775808 to 9223372036854775807)", 1, 5);
    expect_err("a = 0x8000000000000000\n",
               "<input>:1:5: integer \"0x8000000000000000\" does not fit in 64 bits (the largest is 9223372036854775807)",
               1, 5);
    expect_err("a = 0x\n", "<input>:1:5: invalid integer \"0x\": expected hexadecimal digits after the prefix", 1, 5);
    expect_err("a = 0b12\n", "<input>:1:5: invalid integer \"0b12\": '2' is not a valid binary digit", 1, 5);
    expect_err("a = 0o8\n", "<input>:1:5: invalid integer \"0o8\": '8' is not a valid octal digit", 1, 5);
    expect_err("a = 0x_1\n", "<input>:1:5: invalid integer \"0x_1\": an underscore must sit between two digits", 1, 5);
    expect_err("a = -0x1\n", "<input>:1:5: invalid integer \"-0x1\": hexadecimal integers cannot have a sign", 1, 5);
    expect_err("a = 0X1\n", "<input>:1:5: invalid number \"0X1\": unexpected 'X'", 1, 5);
    expect_err("a = 1.\n", "<input>:1:5: invalid float \"1.\": expected a digit after the decimal point", 1, 5);
    expect_err("a = .5\n", "<input>:1:5: invalid value \".5\"", 1, 5);
    expect_err("a = 1e\n", "<input>:1:5: invalid float \"1e\": expected digits in the exponent", 1, 5);
    expect_err("a = 1e_5\n", "<input>:1:5: invalid float \"1e_5\": an underscore must sit between two digits", 1, 5);
    expect_err("a = 1.5.2\n", "<input>:1:5: invalid float \"1.5.2\": unexpected '.'", 1, 5);
    expect_err("a = 1e5e5\n", "<input>:1:5: invalid float \"1e5e5\": unexpected 'e'", 1, 5);
    expect_err("a = ++1\n", "<input>:1:5: invalid value \"++1\"", 1, 5);
    expect_err("a = Inf\n", "<input>:1:5: invalid value \"Inf\": strings must be in quotes", 1, 5);
    expect_err("a = nan_\n", "<input>:1:5: invalid value \"nan_\": strings must be in quotes", 1, 5);
    expect_err("a = 1x\n", "<input>:1:5: invalid number \"1x\": unexpected 'x'", 1, 5);
    toml_value *r = parse_ok("a = 0\nb = +0\nc = -0.0\nd = 0e0\ne = 1e0_1\nf = 1E+09\ng = 0.0_1\n");
    assert_int_equal(toml_get(r, "b")->u.integer, 0);
    assert_true(toml_get(r, "e")->u.flt == 1e1);
    assert_true(toml_get(r, "f")->u.flt == 1e9);
    assert_true(toml_get(r, "g")->u.flt == 0.01);
    toml_free(r);
}

static void test_bad_dates(void **state)
{
    (void)state;
    expect_err("d = 2023-02-29\n", "<input>:1:5: invalid date \"2023-02-29\": February 2023 has no day 29", 1, 5);
    expect_err("d = 1900-02-29T00:00:00Z\n", "<input>:1:5: invalid date \"1900-02-29\": February 1900 has no day 29", 1,
               5);
    expect_err("d = 2023-04-31\n", "<input>:1:5: invalid date \"2023-04-31\": April 2023 has no day 31", 1, 5);
    expect_err("d = 2023-01-00\n", "<input>:1:5: invalid date \"2023-01-00\": January 2023 has no day 00", 1, 5);
    expect_err("d = 2023-13-01\n", "<input>:1:5: invalid date \"2023-13-01\": month 13 does not exist", 1, 5);
    expect_err("d = 0000-01-01\n", "<input>:1:5: invalid date \"0000-01-01\": the year must be 0001 or later", 1, 5);
    expect_err("d = 2023-1-01\n", "<input>:1:5: invalid date \"2023-1-01\": expected YYYY-MM-DD", 1, 5);
    expect_err("d = 2023-01-01T\n", "<input>:1:5: invalid date-time \"2023-01-01T\": expected a time after the date", 1,
               5);
    expect_err("d = 2023-01-01T24:00:00\n", "<input>:1:5: invalid time \"24:00:00\": hour out of range", 1, 5);
    expect_err("d = 2023-01-01T23:60:00\n", "<input>:1:5: invalid time \"23:60:00\": minute out of range", 1, 5);
    expect_err("t = 23:59:61\n", "<input>:1:5: invalid time \"23:59:61\": second out of range", 1, 5);
    expect_err("t = 23:59\n", "<input>:1:5: invalid time \"23:59\": expected the time as HH:MM:SS", 1, 5);
    expect_err("t = 1:02:03\n", "<input>:1:5: invalid time \"1:02:03\": expected the time as HH:MM:SS", 1, 5);
    expect_err("t = 01:02:03.\n", "<input>:1:5: invalid time in \"01:02:03.\": expected digits after '.'", 1, 5);
    expect_err("t = 01:02:03Z\n",
               "<input>:1:5: invalid time \"01:02:03Z\": a time without a date cannot have an offset", 1, 5);
    expect_err("d = 2023-01-01T01:02:03+24:00\n",
               "<input>:1:5: invalid date-time \"2023-01-01T01:02:03+24:00\": offset out of range", 1, 5);
    expect_err("d = 2023-01-01T01:02:03+01:60\n",
               "<input>:1:5: invalid date-time \"2023-01-01T01:02:03+01:60\": offset out of range", 1, 5);
    expect_err("d = 2023-01-01T01:02:03+0100\n",
               "<input>:1:5: invalid date-time \"2023-01-01T01:02:03+0100\": expected the offset as +HH:MM", 1, 5);
    expect_err("d = 2023-01-01T01:02:03Zx\n",
               "<input>:1:5: invalid date-time \"2023-01-01T01:02:03Zx\": unexpected text after the offset", 1, 5);
    expect_err("d = 2023-01-01X01:02:03\n",
               "<input>:1:5: invalid date-time \"2023-01-01X01:02:03\": expected 'T' or a space after the date", 1, 5);
    expect_err("d = 2023-01-01  01:02:03\n",
               "<input>:1:17: expected the end of the line after a value, found '0'", 1, 17);
    toml_value *r = parse_ok("a = 2024-02-29\nb = 2000-02-29T23:59:59+23:59\n");
    assert_int_equal(toml_get(r, "b")->u.dt.offset_minutes, 23 * 60 + 59);
    toml_free(r);
}

/* ------------------------------------------------------------ encoding */

static void test_invalid_utf8(void **state)
{
    (void)state;
    expect_err("a = 1\nb = \"x\xff\"\n", "<input>:2:7: invalid UTF-8 byte 0xFF (not valid in UTF-8)", 2, 7);
    expect_err("# \x80\n", "<input>:1:3: invalid UTF-8 byte 0x80 (continuation byte without a lead byte)", 1, 3);
    expect_err("a = 'x\xc3'\n", "<input>:1:7: invalid UTF-8 byte 0xC3 (incomplete sequence)", 1, 7);
    expect_err("a = 'x\xe2\x82'", "<input>:1:7: invalid UTF-8 byte 0xE2 (incomplete sequence)", 1, 7);
    expect_err("a = '\xc0\xaf'\n", "<input>:1:6: invalid UTF-8 byte 0xC0 (overlong encoding)", 1, 6);
    expect_err("a = '\xe0\x80\xaf'\n", "<input>:1:6: invalid UTF-8 byte 0xE0 (overlong encoding)", 1, 6);
    expect_err("a = '\xf0\x80\x80\xaf'\n", "<input>:1:6: invalid UTF-8 byte 0xF0 (overlong encoding)", 1, 6);
    expect_err("a = '\xed\xa0\x80'\n",
               "<input>:1:6: invalid UTF-8 byte 0xED (UTF-16 surrogate encoded in UTF-8)", 1, 6);
    expect_err("a = '\xf4\x90\x80\x80'\n",
               "<input>:1:6: invalid UTF-8 byte 0xF4 (code point above U+10FFFF)", 1, 6);
    expect_err("\xfe\xff\x00a", "<input>:1:1: invalid UTF-8 byte 0xFE (not valid in UTF-8)", 1, 1);
    /* a BOM anywhere but the start is not whitespace */
    expect_reject("a = 1\n\xef\xbb\xbf" "b = 2\n", "U+FEFF");
    toml_value *r = parse_ok("a = '\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf'\n");
    toml_free(r);
}

/* ------------------------------------------------------------ limits */

static void test_deep_nesting(void **state)
{
    (void)state;
    size_t n = 100000;
    char *s = malloc(n + 8);
    assert_non_null(s);
    memcpy(s, "x = ", 4);
    memset(s + 4, '[', n);
    expect_err_n(s, n + 4, "<input>:1:133: nesting deeper than 128 levels", 1, 133);
    memset(s + 4, '{', n);
    expect_err(s, "<input>:1:6: expected a key, found '{'", 1, 6); /* "{{" is not even a key */
    for (size_t i = 0; i + 3 <= n; i += 3)
        memcpy(s + 4 + i, "{a=", 3);
    s[4 + n - n % 3] = '\0';
    expect_err_n(s, 4 + n - n % 3, "<input>:1:389: nesting deeper than 128 levels", 1, 389);
    memset(s, '[', n);
    expect_reject(s, "expected a key, found '['");
    free(s);

    /* dotted keys and headers count too */
    char buf[2048];
    size_t o = 0;
    for (int i = 0; i < 200; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%sa", i ? "." : "");
    snprintf(buf + o, sizeof buf - o, " = 1\n");
    expect_reject(buf, "nesting deeper than 128 levels");

    /* exactly 128 levels is fine */
    o = (size_t)snprintf(buf, sizeof buf, "x = ");
    for (int i = 0; i < 128; i++)
        buf[o++] = '[';
    for (int i = 0; i < 128; i++)
        buf[o++] = ']';
    buf[o] = '\0';
    toml_value *r = parse_ok(buf);
    toml_free(r);
    o = (size_t)snprintf(buf, sizeof buf, "[");
    for (int i = 0; i < 127; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%sa", i ? "." : "");
    o += (size_t)snprintf(buf + o, sizeof buf - o, "]\nx = [1]\n");
    r = parse_ok(buf);
    toml_free(r);
    buf[o - 3] = '['; /* x = [[] : one more level */
    snprintf(buf + o - 2, sizeof buf - (o - 2), "]]\n");
    expect_reject(buf, "nesting deeper than 128 levels");
}

static void test_large_table_is_linear(void **state)
{
    (void)state;
    const int n = 100000;
    size_t cap = (size_t)n * 24;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t o = 0;
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "key_%d = %d\n", i, i);
    clock_t t0 = clock();
    toml_value *r = NULL;
    zdm_err err;
    assert_int_equal(toml_parse(s, o, "big.toml", &r, &err), 0);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_int_equal(r->u.table.len, (size_t)n);
    char key[32];
    for (int i = 0; i < n; i += 997) {
        snprintf(key, sizeof key, "key_%d", i);
        assert_int_equal(toml_get(r, key)->u.integer, i);
    }
    assert_null(toml_get(r, "key_100000"));
    toml_free(r);
    /* a duplicate at the end is still found, with its first position */
    o += (size_t)snprintf(s + o, cap - o, "key_4242 = 0\n");
    expect_err_n(s, o, "<input>:100001:1: duplicate key \"key_4242\" (first defined at 4243:1)", 100001, 1);
    free(s);
    /* quadratic behaviour would take minutes here, even under sanitizers */
    assert_true(secs < 10.0);
}

/* ------------------------------------------------------------ robustness */

static const char sample[] =
    "\xef\xbb\xbf# sample\n"
    "title = \"TOML \\u00e9 \\U0001F600 \\\"q\\\"\"\n"
    "lit = 'C:\\x'\n"
    "ml = \"\"\"\r\nl1 \\\n   l2\"\"\"\n"
    "mll = '''\nraw ''\n'''\n"
    "ints = [ 1, -2, 0x1f, 0o7, 0b1, 1_000 ]\n"
    "floats = [ 1.5, -2e-3, inf, -nan, 3.0E+2 ]\n"
    "dates = [ 1979-05-27T07:32:00Z, 1979-05-27 00:32:00.999999-07:00, 1979-05-27T07:32:00, 1979-05-27, 07:32:00.5 ]\n"
    "bools = [true,false]\n"
    "inl = { a.b = 1, c = { d = [ {e = 'f'} ] } }\n"
    "\"quoted key\".x = 1\n"
    "[server.\"alpha beta\"]\n"
    "ip = \"10.0.0.1\" # comment\n"
    "[[products]]\n"
    "name = \"Hammer\"\n"
    "[[products.colors]]\n"
    "c = 'red'\n"
    "[[products]]\n"
    "[products.dims]\n"
    "w = 1\n";

static void test_every_prefix(void **state)
{
    (void)state;
    size_t n = sizeof sample - 1;
    toml_value *r = NULL;
    zdm_err err;
    assert_int_equal(toml_parse(sample, n, NULL, &r, &err), 0);
    assert_int_equal(path(r, "server.alpha beta.ip")->type, TOML_STRING);
    assert_int_equal(toml_get(r, "products")->u.array.len, 2);
    assert_string_equal(toml_get(r, "ml")->u.str.ptr, "l1 l2");
    toml_free(r);
    int ok = 0, bad = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        /* a copy of exactly `cut` bytes, so ASan sees any read past the end */
        char *c = malloc(cut ? cut : 1);
        assert_non_null(c);
        memcpy(c, sample, cut);
        r = (toml_value *)&r;
        zdm_err_clear(&err);
        int rc = toml_parse(c, cut, "cut.toml", &r, &err);
        if (rc == 0) {
            assert_non_null(r);
            toml_free(r);
            ok++;
        } else {
            assert_int_equal(rc, ZDM_EXIT_USAGE);
            assert_null(r);
            assert_true(strncmp(err.msg, "cut.toml:", 9) == 0);
            assert_true(err.line >= 1 && err.col >= 1);
            bad++;
        }
        free(c);
    }
    assert_true(ok > 20);
    assert_true(bad > 100);
}

/* Found by the fuzzer: long keys in header messages overflowed a buffer. */
static void test_long_keys_in_messages(void **state)
{
    (void)state;
    char src[4096], longkey[200];
    memset(longkey, 'k', 79);
    longkey[79] = '\0';
    int o = snprintf(src, sizeof src, "[[");
    for (int i = 0; i < 8; i++)
        o += snprintf(src + o, sizeof src - (size_t)o, "%s%s", i ? "." : "", longkey);
    snprintf(src + o, sizeof src - (size_t)o, "]]\nx = 1\n[");
    /* redefine the same path as a plain table */
    char *p = src + strlen(src);
    for (int i = 0; i < 8; i++)
        p += sprintf(p, "%s%s", i ? "." : "", longkey);
    strcpy(p, "]\n");
    toml_value *r = NULL;
    zdm_err err;
    assert_int_equal(toml_parse(src, strlen(src), NULL, &r, &err), ZDM_EXIT_USAGE);
    assert_null(r);
    assert_non_null(strstr(err.msg, "<input>:3:1: cannot define table [kkkk"));
    assert_non_null(strstr(err.msg, "...]: \""));
    assert_non_null(strstr(err.msg, "\" is an array of tables (first defined at 1:1)"));

    /* long and odd keys are cut and escaped in messages */
    memset(longkey, 'q', 150);
    longkey[150] = '\0';
    snprintf(src, sizeof src, "\"%s\\t\" = 1\n\"%s\\t\" = 2\n", longkey, longkey);
    assert_int_equal(toml_parse(src, strlen(src), NULL, &r, &err), ZDM_EXIT_USAGE);
    assert_true(strncmp(err.msg, "<input>:2:1: duplicate key \"qqqq", 32) == 0);
    assert_non_null(strstr(err.msg, "q...\" (first defined at 1:1)"));
    expect_err("\"a\\u0001\\\"\" = 1\n\"a\\u0001\\\"\" = 2\n",
               "<input>:2:1: duplicate key \"a\\u0001\\\"\" (first defined at 1:1)", 2, 1);
}

static void test_parse_file(void **state)
{
    (void)state;
    toml_value *r = (toml_value *)&r;
    zdm_err err;
    zdm_err_clear(&err);
    assert_int_equal(toml_parse_file("/nonexistent/zdm/plan.toml", &r, &err), ZDM_EXIT_FAIL);
    assert_null(r);
    assert_string_equal(err.msg, "cannot read /nonexistent/zdm/plan.toml: No such file or directory");

    char tmpl[] = "/tmp/test_toml_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    const char *doc = "a = 1\nb = [\n";
    assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
    close(fd);
    zdm_err_clear(&err);
    assert_int_equal(toml_parse_file(tmpl, &r, &err), ZDM_EXIT_USAGE);
    char want[128];
    snprintf(want, sizeof want, "%s:3:1: unterminated array (opened at 2:5)", tmpl);
    assert_string_equal(err.msg, want);

    fd = open(tmpl, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    doc = "a = 1\n";
    assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
    close(fd);
    assert_int_equal(toml_parse_file(tmpl, &r, &err), 0);
    assert_int_equal(toml_get(r, "a")->u.integer, 1);
    toml_free(r);
    unlink(tmpl);

    zdm_err_clear(&err);
    assert_int_equal(toml_parse_file("/", &r, &err), ZDM_EXIT_FAIL);
    assert_string_equal(err.msg, "cannot read /: Is a directory");
}

static void test_empty_and_null(void **state)
{
    (void)state;
    toml_value *r = NULL;
    zdm_err err;
    assert_int_equal(toml_parse(NULL, 0, NULL, &r, &err), 0);
    assert_int_equal(r->u.table.len, 0);
    toml_free(r);
    assert_int_equal(toml_parse("\xef\xbb\xbf", 3, NULL, &r, &err), 0);
    toml_free(r);
    assert_int_equal(toml_parse(" \t\n# c\n\r\n", 9, NULL, &r, &err), 0);
    toml_free(r);
    expect_err("\xef\xbb\xbf\xef\xbb\xbf",
               "<input>:1:1: invalid character '\xef\xbb\xbf' (U+FEFF) in a key: bare keys may only use A-Z a-z "
               "0-9 _ -, put other keys in quotes", 1, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_strings_multiline),
        cmocka_unit_test(test_datetimes),
        cmocka_unit_test(test_tables_and_arrays),
        cmocka_unit_test(test_lookup_api),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_positions_bom_crlf),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_table_redefinition),
        cmocka_unit_test(test_inline_table_immutable),
        cmocka_unit_test(test_static_array),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_bad_syntax),
        cmocka_unit_test(test_bad_escapes),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_bad_dates),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_large_table_is_linear),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_long_keys_in_messages),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_empty_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
