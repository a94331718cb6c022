/*
 * test_plan.c -- the plan model: loading, validation messages (one test per
 * kind of error, each checking the exact "file:line:col: message"), plan
 * sets (duplicates, requires, cycles, order), and the helpers plans use
 * (durations, command splitting, SHA-256, times, did-you-mean).
 *
 * Runs from tests/unit (ctest's working directory): the example plans are
 * ../../plans.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpdir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops.h"
#include "plan.h"
#include "util.h"

#define PATH "plans/0002.toml"
/* The smallest body that makes a plan do something. */
#define STEP "[[expand.steps]]\nsql = \"SELECT 1\"\n"

/* ---- helpers ---- */

static void dump(const zdm_diags *d)
{
    for (size_t i = 0; i < d->msgs.n; i++)
        fprintf(stderr, "  got[%zu]: %s\n", i, d->msgs.v[i]);
}

/* Loads src and asserts it is refused with exactly the messages `want`
 * (NULL-terminated, in order). */
static void expect_errors(const char *src, const char *const *want)
{
    zdm_plan *p = (zdm_plan *)&p;
    zdm_diags d = {0};
    int rc = zdm_plan_load_buffer(PATH, src, strlen(src), &p, &d);
    size_t n = 0;
    while (want[n])
        n++;
    if (d.msgs.n != n)
        dump(&d);
    assert_int_equal(rc, ZDM_EXIT_USAGE);
    assert_null(p);
    assert_int_equal(d.msgs.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(d.msgs.v[i], want[i]);
    zdm_diags_free(&d);
}
#define EXPECT(src, ...) expect_errors((src), (const char *const[]){__VA_ARGS__, NULL})

/* Loads src and asserts it is valid; the caller frees the plan. */
static zdm_plan *load_ok(const char *src)
{
    zdm_plan *p = NULL;
    zdm_diags d = {0};
    int rc = zdm_plan_load_buffer(PATH, src, strlen(src), &p, &d);
    if (rc != 0)
        dump(&d);
    assert_int_equal(rc, 0);
    assert_int_equal(d.msgs.n, 0);
    assert_non_null(p);
    zdm_diags_free(&d);
    return p;
}

/* Loads the directory; asserts rc and the exact messages (each one a
 * format with %1$s standing for the directory). */
static void expect_set(tmpdir *t, int want_rc, const char *const *want, zdm_plan_set *set)
{
    const char *paths[1] = {t->path};
    zdm_diags d = {0};
    int rc = zdm_plan_set_load(paths, 1, set, &d);
    size_t n = 0;
    while (want[n])
        n++;
    if (d.msgs.n != n || rc != want_rc)
        dump(&d);
    assert_int_equal(rc, want_rc);
    assert_int_equal(d.msgs.n, n);
    for (size_t i = 0; i < n; i++) {
        /* every %s in the expectation is the directory */
        zdm_buf b = {0};
        for (const char *w = want[i]; *w; w++) {
            if (w[0] == '%' && w[1] == 's') {
                zdm_buf_puts(&b, t->path);
                w++;
            } else {
                zdm_buf_putn(&b, w, 1);
            }
        }
        assert_string_equal(d.msgs.v[i], b.data);
        zdm_buf_free(&b);
    }
    zdm_diags_free(&d);
}
#define NO_MSGS ((const char *const[]){NULL})
#define MSGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- errors of one file ---- */

static void test_toml_syntax_error_passes_through(void **state)
{
    (void)state;
    EXPECT("description = \"x\"\nlock_timeout = \n" STEP,
           "plans/0002.toml:2:16: expected a value, found end of line");
    EXPECT("description = \"x\"\n[[expand.steps]]\nsql = \"unterminated\n",
           "plans/0002.toml:3:20: unterminated string (started at 3:7)");
}

static void test_unknown_top_level_key(void **state)
{
    (void)state;
    EXPECT("descripton = \"x\"\n" STEP,
           "plans/0002.toml:1:1: unknown key \"descripton\" in the plan (did you mean \"description\"?)");
    EXPECT("frobnicate = true\n" STEP,
           "plans/0002.toml:1:1: unknown key \"frobnicate\" in the plan");
}

static void test_unknown_key_in_expand(void **state)
{
    (void)state;
    EXPECT("[expand]\nstep = []\n" STEP,
           "plans/0002.toml:2:1: unknown key \"step\" in [expand] (did you mean \"steps\"?)");
}

static void test_unknown_key_in_backfill(void **state)
{
    (void)state;
    EXPECT("[backfill]\ntable = \"events\"\nset.a = \"b\"\ntabel = \"x\"\n",
           "plans/0002.toml:4:1: unknown key \"tabel\" in [backfill] (did you mean \"table\"?)");
}

static void test_unknown_key_in_throttle(void **state)
{
    (void)state;
    EXPECT("[backfill]\ntable = \"events\"\nset.a = \"b\"\n"
           "[backfill.throttle]\nbatchsize = 10\n",
           "plans/0002.toml:5:1: unknown key \"batchsize\" in [backfill.throttle] (did you mean \"batch_size\"?)");
}

static void test_unknown_key_in_dual_write(void **state)
{
    (void)state;
    EXPECT("[backfill]\ntable = \"events\"\nset.a = \"b\"\n"
           "[backfill.dual_write]\nsource = [\"x\"]\n",
           "plans/0002.toml:5:1: unknown key \"source\" in [backfill.dual_write] (did you mean \"sources\"?)");
}

/* dual_write.sources: plain column names, each once, never a target. */
static void test_dual_write_sources_checked(void **state)
{
    (void)state;
    EXPECT("[backfill]\ntable = \"events\"\nset.a = \"b\"\nreverse_ok = 1\n"
           "[backfill.dual_write]\nsources = [\"b\", \"x y\", \"b\", \"a\", \"r\"]\nreverse.r = \"a\"\n",
           "plans/0002.toml:4:1: unknown key \"reverse_ok\" in [backfill]",
           "plans/0002.toml:6:17: [backfill.dual_write] sources: \"x y\" is not a valid column name",
           "plans/0002.toml:6:24: [backfill.dual_write] sources: \"b\" is listed twice",
           "plans/0002.toml:6:29: [backfill.dual_write] sources: \"a\" is a backfill target (set.a); sources are "
           "the columns the old application writes, from which the targets are computed");
    EXPECT("[backfill]\ntable = \"events\"\nset.a = \"b\"\n[backfill.dual_write]\nsources = []\n",
           "plans/0002.toml:5:11: [backfill.dual_write] sources is empty: list the columns whose writes must "
           "update the targets, or leave sources out (every UPDATE then fires the trigger)");
}

static void test_unknown_key_in_contract(void **state)
{
    (void)state;
    EXPECT(STEP "[contract]\nverfy = \"SELECT true\"\n",
           "plans/0002.toml:4:1: unknown key \"verfy\" in [contract] (did you mean \"verify\"?)");
}

static void test_unknown_key_in_hooks(void **state)
{
    (void)state;
    EXPECT(STEP "[hooks]\ncutovr = \"true\"\n",
           "plans/0002.toml:4:1: unknown key \"cutovr\" in [hooks] (did you mean \"cutover\"?)");
}

static void test_unknown_key_in_step(void **state)
{
    (void)state;
    EXPECT("[[expand.steps]]\nsql = \"SELECT 1\"\ndonw = \"SELECT 2\"\n",
           "plans/0002.toml:3:1: unknown key \"donw\" in expand step 1 (did you mean \"down\"?)");
    /* an op step accepts the op's fields, and nothing else */
    EXPECT("[[expand.steps]]\nop = \"add_column\"\ntable = \"t\"\ncolumn = \"c\"\ntype = \"int\"\n"
           "nulable = true\n",
           "plans/0002.toml:6:1: unknown key \"nulable\" in expand step 1 (op \"add_column\") "
           "(did you mean \"nullable\"?)");
}

static void test_wrong_types(void **state)
{
    (void)state;
    EXPECT("description = 5\n" STEP,
           "plans/0002.toml:1:15: the plan.description must be a string, not an integer");
    EXPECT("lock_retries = \"3\"\n" STEP,
           "plans/0002.toml:1:16: the plan.lock_retries must be an integer, not a string");
    EXPECT("requires = \"0001\"\n" STEP,
           "plans/0002.toml:1:12: the plan.requires must be an array of strings, not a string");
    EXPECT("requires = [\"0001\", 2]\n" STEP,
           "plans/0002.toml:1:21: the plan.requires[1] must be a string, not an integer");
    EXPECT("expand = \"x\"\n",
           "plans/0002.toml:1:10: the plan.expand must be a table, not a string");
    EXPECT("expand.steps = 5\n",
           "plans/0002.toml:1:16: expand.steps must be an array of tables ([[expand.steps]]), not an integer");
    EXPECT(STEP "[backfill]\ntable = \"t\"\nset.a = \"b\"\n[backfill.throttle]\ncheck_autovacuum = \"yes\"\n",
           "plans/0002.toml:7:20: [backfill.throttle].check_autovacuum must be a bool, not a string");
    EXPECT("[backfill]\ntable = \"t\"\nset.a = 1\n",
           "plans/0002.toml:3:9: [backfill].set.a must be a SQL expression in a string, not an integer");
    EXPECT("[[expand.steps]]\nsql = \"SELECT 1\"\ntransaction = 1\n",
           "plans/0002.toml:3:15: expand step 1.transaction must be a bool, not an integer");
    EXPECT("expand.steps = [1]\n",
           "plans/0002.toml:1:17: expand.steps[1] must be a table with \"sql\" or \"op\"");
    EXPECT("[backfill]\ntable = \"t\"\nset.a = \"b\"\ndual_write = \"yes\"\n",
           "plans/0002.toml:4:14: [backfill] dual_write must be a table or a boolean");
    EXPECT("[[expand.steps]]\nsql = 1\n",
           "plans/0002.toml:2:7: expand step 1.sql must be SQL in a string, or a table {pg = \"...\", sqlite = \"...\"}");
}

static void test_missing_required_keys(void **state)
{
    (void)state;
    /* a step with neither sql nor op */
    EXPECT("[[expand.steps]]\nname = \"x\"\n",
           "plans/0002.toml:1:1: expand step 1 is missing required key \"sql\"");
    /* backfill without table */
    EXPECT("[backfill]\nset.a = \"b\"\n",
           "plans/0002.toml:1:1: [backfill] is missing required key \"table\"");
    /* backfill without set */
    EXPECT("[backfill]\ntable = \"t\"\n",
           "plans/0002.toml:1:1: [backfill] needs at least one set.COLUMN = \"SQL expression\"");
    /* ... or with an empty one */
    EXPECT("[backfill]\ntable = \"t\"\nset = {}\n",
           "plans/0002.toml:1:1: [backfill] needs at least one set.COLUMN = \"SQL expression\"");
    /* an allow_unsafe table without rule */
    EXPECT("allow_unsafe = [{reason = \"x\"}]\n" STEP,
           "plans/0002.toml:1:17: allow_unsafe entry is missing required key \"rule\"");
}

static void test_unknown_op(void **state)
{
    (void)state;
    EXPECT("[[expand.steps]]\nop = \"add_colum\"\n",
           "plans/0002.toml:2:6: expand step 1: unknown operation \"add_colum\" (did you mean \"add_column\"?)");
    EXPECT("[[expand.steps]]\nop = \"teleport\"\n",
           "plans/0002.toml:2:6: expand step 1: unknown operation \"teleport\"");
}

static void test_op_missing_field(void **state)
{
    (void)state;
    EXPECT("[[expand.steps]]\nop = \"add_column\"\ntable = \"events\"\ncolumn = \"c\"\n",
           "plans/0002.toml:1:1: expand step 1: operation \"add_column\" needs \"type\"");
    EXPECT("[[contract.steps]]\nop = \"drop_index\"\n",
           "plans/0002.toml:1:1: contract step 1: operation \"drop_index\" needs \"index\"");
}

static void test_op_in_wrong_phase(void **state)
{
    (void)state;
    EXPECT("[[expand.steps]]\nop = \"drop_column\"\ntable = \"events\"\ncolumn = \"legacy\"\n",
           "plans/0002.toml:2:6: expand step 1: operation \"drop_column\" removes structure the "
           "running application may still use; it belongs in [[contract.steps]]");
    EXPECT(STEP "[[contract.steps]]\nop = \"add_column\"\ntable = \"events\"\ncolumn = \"c\"\ntype = \"int\"\n",
           "plans/0002.toml:4:6: contract step 1: operation \"add_column\" belongs in [[expand.steps]]");
    /* both-phase ops are fine in either */
    zdm_plan *p = load_ok("[[expand.steps]]\nop = \"add_index\"\ntable = \"t\"\ncolumns = [\"a\"]\n"
                          "[[contract.steps]]\nop = \"add_index\"\ntable = \"t\"\ncolumns = [\"b\"]\n");
    assert_string_equal(p->expand[0].from_op, "add_index");
    assert_string_equal(p->contract[0].from_op, "add_index");
    assert_null(p->expand[0].op);
    assert_non_null(strstr(zdm_step_sql(&p->expand[0], 1), "(\"a\")"));
    assert_non_null(strstr(zdm_step_sql(&p->contract[0], 1), "(\"b\")"));
    zdm_plan_free(p);
}

static void test_ops_rename_column(void **state)
{
    (void)state;
    zdm_plan *p = load_ok("[[expand.steps]]\nop = \"rename_column\"\ntable = \"emp\"\ncolumn = \"name\"\nto = \"full_name\"\n");
    /* new column, view schema; contract drops the old column */
    assert_int_equal(p->nexpand, 2);
    assert_non_null(strstr(zdm_step_sql(&p->expand[0], 2), "ADD COLUMN \"full_name\""));
    assert_non_null(strstr(zdm_step_sql(&p->expand[1], 1), "CREATE SCHEMA IF NOT EXISTS \"zdm_v_0002\""));
    assert_int_equal(p->version_schema, 1);
    /* PostgreSQL: a guard against losing what depends on the old column */
    assert_non_null(strstr(zdm_step_sql(&p->expand[0], 1), "FROM pg_depend d"));
    /* contract: the NOT NULL carried over (when the old column has one),
     * the old column dropped, then the view schema (SQLite has none) */
    assert_int_equal(p->ncontract, 4);
    assert_non_null(strstr(zdm_step_sql(&p->contract[0], 1),
                           "ADD CONSTRAINT \"emp_full_name_not_null\" CHECK (\"full_name\" IS NOT NULL) NOT VALID"));
    assert_non_null(strstr(zdm_step_sql(&p->contract[1], 1), "VALIDATE CONSTRAINT \"emp_full_name_not_null\""));
    assert_non_null(strstr(zdm_step_sql(&p->contract[2], 1),
                           "ALTER COLUMN \"full_name\" SET NOT NULL;\n    ALTER TABLE \"emp\" DROP CONSTRAINT"));
    assert_non_null(strstr(zdm_step_sql(&p->contract[2], 1), "ALTER COLUMN %I SET DEFAULT %s"));
    assert_non_null(strstr(zdm_step_sql(&p->contract[2], 1), "END $zdm$;\nALTER TABLE \"emp\" DROP COLUMN \"name\""));
    assert_string_equal(zdm_step_sql(&p->contract[2], 2), "ALTER TABLE \"emp\" DROP COLUMN \"name\"");
    assert_null(zdm_step_down(&p->contract[2], 1));
    assert_string_equal(zdm_step_sql(&p->contract[3], 1), "DROP SCHEMA IF EXISTS \"zdm_v_0002\" CASCADE");
    assert_non_null(strstr(zdm_step_sql(&p->contract[3], 2), "SELECT 1"));
    /* the implied backfill copies both ways */
    const zdm_backfill *b = p->backfill;
    assert_non_null(b);
    assert_string_equal(b->table, "emp");
    assert_int_equal(b->nset, 1);
    assert_string_equal(b->set[0].column, "full_name");
    assert_string_equal(b->set[0].expr, "\"name\"");
    assert_int_equal(b->nreverse, 1);
    assert_string_equal(b->reverse[0].column, "name");
    assert_string_equal(b->reverse[0].expr, "\"full_name\"");
    assert_int_equal(b->dw_sources.n, 1);
    assert_string_equal(b->dw_sources.v[0], "name");
    zdm_plan_free(p);
}

static void test_ops_change_type(void **state)
{
    (void)state;
    zdm_plan *p = load_ok("[[expand.steps]]\nop = \"change_type\"\ntable = \"t\"\ncolumn = \"amount\"\n"
                          "type = \"numeric(12,2)\"\nup = \"amount / 100.0\"\ndown = \"(amount * 100)::int\"\n");
    /* first a guard: what depends on the old column would go with it at contract */
    assert_non_null(strstr(zdm_step_sql(&p->expand[0], 1), "FROM pg_depend d"));
    assert_non_null(strstr(zdm_step_sql(&p->expand[0], 1),
                           "END $zdm$;\nALTER TABLE \"t\" ADD COLUMN \"_zdm_amount\" numeric(12,2)"));
    /* SQLite cannot: no SQL, and the reason */
    assert_null(zdm_step_sql(&p->expand[0], 2));
    assert_non_null(strstr(p->expand[0].unsupported_for[1], "rebuilding the table"));
    /* down is written with the column's name for the new value */
    assert_string_equal(p->backfill->reverse[0].expr, "(\"_zdm_amount\" * 100)::int");
    assert_string_equal(p->backfill->set[0].expr, "amount / 100.0");
    /* contract: NOT NULL carried over (CHECK, validate, SET NOT NULL in the
     * swap) when the old column has it, the swap, the view schema */
    assert_int_equal(p->ncontract, 4);
    assert_non_null(strstr(zdm_step_sql(&p->contract[0], 1),
                           "ADD CONSTRAINT \"t__zdm_amount_not_null\" CHECK (\"_zdm_amount\" IS NOT NULL) NOT VALID"));
    assert_non_null(strstr(zdm_step_sql(&p->contract[1], 1), "VALIDATE CONSTRAINT \"t__zdm_amount_not_null\""));
    assert_non_null(strstr(zdm_step_sql(&p->contract[2], 1), "ALTER COLUMN \"_zdm_amount\" SET NOT NULL"));
    assert_non_null(strstr(zdm_step_sql(&p->contract[2], 1),
                           "ALTER TABLE \"t\" DROP COLUMN \"amount\";\nALTER TABLE \"t\" RENAME COLUMN \"_zdm_amount\" TO \"amount\""));
    assert_string_equal(zdm_step_sql(&p->contract[3], 1), "DROP SCHEMA IF EXISTS \"zdm_v_0002\" CASCADE");
    for (size_t i = 0; i < p->ncontract; i++)
        assert_null(zdm_step_sql(&p->contract[i], 2));
    zdm_plan_free(p);
}

static void test_ops_errors(void **state)
{
    (void)state;
    /* one backfill per plan */
    EXPECT("[[expand.steps]]\nop = \"rename_column\"\ntable = \"t\"\ncolumn = \"a\"\nto = \"b\"\n"
           "[backfill]\ntable = \"t\"\nset.c = \"1\"\n",
           "plans/0002.toml:1:1: expand step 1 (op \"rename_column\"): this operation copies data, and the plan "
           "already has a backfill; put it in a plan of its own");
    /* NOT NULL needs a way to fill the rows already there */
    EXPECT("[[expand.steps]]\nop = \"add_column\"\ntable = \"t\"\ncolumn = \"a\"\ntype = \"int\"\nnullable = false\n",
           "plans/0002.toml:1:1: expand step 1 (op \"add_column\"): a NOT NULL column without a default needs "
           "up = \"SQL expression\" to fill the existing rows");
    /* a set reading its own target under a where that names no target */
    EXPECT("[backfill]\ntable = \"t\"\nwhere = \"id % 2 = 0\"\nset.n = \"n + 1\"\ndual_write = false\n",
           "plans/0002.toml:4:5: [backfill] set.n reads n itself, and where names none of the targets: a converted "
           "row still matches where, and converting it again changes it again; make where false for a converted "
           "row (name a target the conversion changes, e.g. set.n_fixed = \"true\" with where = \"... AND "
           "n_fixed IS NULL\"), or write the change as a raw sql step");
    zdm_plan_free(load_ok("[backfill]\ntable = \"t\"\nwhere = \"n IS NULL\"\nset.n = \"coalesce(n, 0) + 1\"\n"
            "dual_write = false\n"));
    /* a default and up: the old application's inserts get the default,
     * which the trigger leaves alone (refused at expand, after validate) */
    EXPECT("[[expand.steps]]\nop = \"add_column\"\ntable = \"t\"\ncolumn = \"a\"\ntype = \"text\"\n"
           "default = \"'Other'\"\nup = \"upper(b)\"\n",
           "plans/0002.toml:1:1: expand step 1 (op \"add_column\"): give either default or up, not both: while the "
           "backfill runs, the old application's inserts would get the default instead of up's value; use up "
           "alone (every row gets up's value until contract), and set the default in a contract step of your "
           "own (raw sql)");
    EXPECT("[[expand.steps]]\nop = \"add_foreign_key\"\ntable = \"t\"\ncolumns = [\"a\"]\nreferences = \"u\"\n"
           "references_columns = [\"id\"]\non_delete = \"explode\"\n",
           "plans/0002.toml:1:1: expand step 1 (op \"add_foreign_key\"): \"explode\" is not a foreign key action "
           "(NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT)");
}

/* The fields zdm pastes into the SQL it generates are one piece each:
 * "text; DROP TABLE orders" as a type ran the DROP, and lint never sees
 * generated SQL; a DEFAULT in a type rewrote the table under its lock. */
static void test_ops_pieces(void **state)
{
    (void)state;
#define ADD_COL "[[expand.steps]]\nop = \"add_column\"\ntable = \"t\"\ncolumn = \"a\"\n"
    EXPECT(ADD_COL "type = \"text; DROP TABLE orders\"\n",
           "plans/0002.toml:5:8: expand step 1.type = \"text; DROP TABLE orders\" holds a ';': it is one piece of "
           "the statement zdm generates, not statements of its own (write those as a raw sql step, which lint "
           "checks)");
    EXPECT(ADD_COL "type = \"uuid DEFAULT gen_random_uuid()\"\n",
           "plans/0002.toml:5:8: expand step 1.type = \"uuid DEFAULT gen_random_uuid()\" is not a type alone: "
           "DEFAULT goes in the operation's default field (zdm adds the column without it, then sets it, so no "
           "row is rewritten)");
    EXPECT(ADD_COL "type = \"  \"\n", "plans/0002.toml:5:8: expand step 1.type = \"  \" is empty");
    EXPECT(ADD_COL "type = \"bigserial\"\n",
           "plans/0002.toml:5:8: expand step 1.type = \"bigserial\" is a serial type, whose default (nextval) "
           "fills every existing row: a rewrite of the table under its lock; use integer or bigint and set the "
           "default with the default field");
    EXPECT(ADD_COL "type = \"int\"\nup = \"id -- why\"\n",
           "plans/0002.toml:6:6: expand step 1.up = \"id -- why\" holds a -- comment: it is pasted into the "
           "statement zdm generates, where it would hide the rest of the line");
    EXPECT(ADD_COL "type = \"int\"\ndefault = \"(1\"\n",
           "plans/0002.toml:6:11: expand step 1.default = \"(1\" opens a parenthesis it does not close");
    EXPECT("[[expand.steps]]\nop = \"add_index\"\ntable = \"t\"\ncolumns = [\"a\"]\n"
           "where = \"a > 0) OR (true\"\n",
           "plans/0002.toml:5:9: expand step 1.where = \"a > 0) OR (true\" closes a parenthesis it did not open");
    EXPECT("[[expand.steps]]\nop = \"create_table\"\ntable = \"t\"\n"
           "columns = [{name = \"a\", type = \"text\", default = \"1; DROP TABLE orders\"}]\n",
           "plans/0002.toml:1:1: expand step 1 (op \"create_table\"): column \"a\": its default holds a ';': it "
           "is one piece of the statement zdm generates, not statements of its own (write those as a raw sql "
           "step, which lint checks)");
    EXPECT("[[expand.steps]]\nsql = \"SELECT 1\"\ndown = \"SELECT 1\"\n[backfill]\ntable = \"t\"\n"
           "set.b = \"1); DELETE FROM orders; SELECT (1\"\n",
           "plans/0002.toml:6:9: [backfill] set.b = \"1); DELETE FROM orders; SELECT (1\" closes a parenthesis "
           "it did not open");
    /* what is one piece passes: semicolons, dashes and parentheses in
     * strings and quoted names, block comments, a new table's clauses */
    zdm_plan_free(load_ok(ADD_COL "type = \"character varying(20) COLLATE \\\"C;--\\\"\"\ndefault = \"'a;b--c)'\"\n"));
    zdm_plan_free(load_ok(ADD_COL "type = \"text\"\nup = \"coalesce(b, 'x;') /* the old one */\"\n"));
    zdm_plan_free(load_ok("[[expand.steps]]\nop = \"sql\"\nsql = \"CREATE TABLE a (id int); CREATE TABLE b (id int)\"\n"
            "down = \"DROP TABLE a; DROP TABLE b\"\n"));
    zdm_plan_free(load_ok("[[expand.steps]]\nop = \"create_table\"\ntable = \"t\"\n"
            "columns = [{name = \"a\", type = \"bigserial PRIMARY KEY\"}, {name = \"b\", type = \"int NOT NULL DEFAULT 0\"}]\n"));
#undef ADD_COL
}

static void test_ops_quote(void **state)
{
    (void)state;
    char *q = zdm_ops_quote("we\"ird", 0);
    assert_string_equal(q, "\"we\"\"ird\"");
    free(q);
    q = zdm_ops_quote("app.events", 1);
    assert_string_equal(q, "\"app\".\"events\"");
    free(q);
}

static void test_invalid_identifiers(void **state)
{
    (void)state;
    EXPECT("[[expand.steps]]\nop = \"add_column\"\ntable = \"events;\"\ncolumn = \"c\"\ntype = \"int\"\n",
           "plans/0002.toml:3:9: expand step 1.table = \"events;\" is not a valid name");
    /* a column may not be schema-qualified; a table may */
    EXPECT("[[expand.steps]]\nop = \"add_column\"\ntable = \"app.events\"\ncolumn = \"a.b\"\ntype = \"int\"\n",
           "plans/0002.toml:4:10: expand step 1.column = \"a.b\" is not a valid name");
    EXPECT("[[expand.steps]]\nop = \"rename_table\"\ntable = \"\"\nto = \"x.\"\n",
           "plans/0002.toml:3:9: expand step 1.table = \"\" is not a valid name",
           "plans/0002.toml:4:6: expand step 1.to = \"x.\" is not a valid name");
    EXPECT("[[expand.steps]]\nop = \"rename_table\"\ntable = 5\nto = \"x\"\n",
           "plans/0002.toml:3:9: expand step 1.table must be a string, not an integer");
    EXPECT("[backfill]\ntable = \"a b\"\nset.c = \"1\"\n",
           "plans/0002.toml:2:9: [backfill] table = \"a b\" is not a valid table name");
    EXPECT("[backfill]\ntable = \"t\"\nkey = [\"id\", \"x-y\"]\nset.c = \"1\"\n",
           "plans/0002.toml:3:7: [backfill] key column \"x-y\" is not a valid column name");
    EXPECT("[backfill]\ntable = \"t\"\nset.\"c d\" = \"1\"\n",
           "plans/0002.toml:3:5: [backfill].set: \"c d\" is not a valid column name");
}

static void test_bad_durations(void **state)
{
    (void)state;
    EXPECT("lock_timeout = \"2 parsecs\"\n" STEP,
           "plans/0002.toml:1:16: the plan.lock_timeout: bad duration \"2 parsecs\": unknown unit (use ms, s, m, h or d)");
    EXPECT("statement_timeout = \"soon\"\n" STEP,
           "plans/0002.toml:1:21: the plan.statement_timeout: bad duration \"soon\": expected a number "
           "followed by ms, s, m, h or d (e.g. \"24h\", \"90s\")");
    EXPECT("lock_timeout = -5\n" STEP,
           "plans/0002.toml:1:16: the plan.lock_timeout must not be negative");
    EXPECT("lock_timeout = true\n" STEP,
           "plans/0002.toml:1:16: the plan.lock_timeout must be a duration like \"2s\" or an integer of "
           "milliseconds, not a bool");
    EXPECT("[[expand.steps]]\nsql = \"SELECT 1\"\nlock_timeout = \"\"\n",
           "plans/0002.toml:3:16: expand step 1.lock_timeout: empty duration");
    EXPECT(STEP "[hooks]\ntimeout = \"99999999999999999999s\"\n",
           "plans/0002.toml:4:11: [hooks].timeout: duration \"99999999999999999999s\" is too large");
    /* the sum of parts must not overflow either */
    EXPECT("lock_timeout = \"20000000000d20000000000d20000000000d20000000000d20000000000d20000000000d\"\n" STEP,
           "plans/0002.toml:1:16: the plan.lock_timeout: duration "
           "\"20000000000d20000000000d20000000000d20000000000d20000000000d20000000000d\" is too large");
}

static void test_bad_not_before(void **state)
{
    (void)state;
    EXPECT(STEP "[contract]\nnot_before = \"tomorrow\"\n",
           "plans/0002.toml:4:14: contract.not_before = \"tomorrow\": bad duration \"tomorrow\": expected a "
           "number followed by ms, s, m, h or d (e.g. \"24h\", \"90s\")");
    EXPECT(STEP "[contract]\nnot_before = \"cutover - 1h\"\n",
           "plans/0002.toml:4:14: contract.not_before = \"cutover - 1h\": expected \"cutover + DURATION\" "
           "such as \"cutover + 24h\"");
    EXPECT(STEP "[contract]\nnot_before = \"cutover + \"\n",
           "plans/0002.toml:4:14: contract.not_before = \"cutover + \": empty duration");
    EXPECT(STEP "[contract]\nnot_before = 24\n",
           "plans/0002.toml:4:14: [contract].not_before must be a string, not an integer");
}

static void test_out_of_range_ints(void **state)
{
    (void)state;
    EXPECT("lock_retries = 1001\n" STEP,
           "plans/0002.toml:1:16: the plan.lock_retries = 1001 is out of range (0 to 1000)");
    EXPECT("[[expand.steps]]\nsql = \"SELECT 1\"\nlock_retries = -1\n",
           "plans/0002.toml:3:16: expand step 1.lock_retries = -1 is out of range (0 to 1000)");
    EXPECT("[backfill]\ntable = \"t\"\nset.a = \"b\"\nthrottle = {batch_size = 0, sleep_ms = 3600001}\n",
           "plans/0002.toml:4:26: [backfill.throttle].batch_size = 0 is out of range (1 to 1000000000)",
           "plans/0002.toml:4:40: [backfill.throttle].sleep_ms = 3600001 is out of range (0 to 3600000)");
    EXPECT("[backfill]\ntable = \"t\"\nset.a = \"b\"\n[backfill.throttle]\nmin_batch_size = 500\nmax_batch_size = 100\n",
           "plans/0002.toml:4:1: [backfill.throttle] min_batch_size (500) is larger than max_batch_size (100)");
}

static void test_reverse_set_conflict(void **state)
{
    (void)state;
    EXPECT("[backfill]\ntable = \"t\"\nset.new_col = \"old_col * 2\"\n"
           "[backfill.dual_write]\nreverse.new_col = \"old_col\"\n",
           "plans/0002.toml:5:9: column \"new_col\" is both a backfill target (set.new_col) and a reverse "
           "target; a column can only be written in one direction");
}

/* An expression that reads a column another of its direction writes:
 * with dual-write the trigger and the backfill would compute different
 * values; refused, naming both.  Without dual-write, or a name inside a
 * string, qualified or called, nothing is said. */
static void test_set_reads_other_target(void **state)
{
    (void)state;
    EXPECT("[backfill]\ntable = \"t\"\nset.a = \"upper(src)\"\nset.b = \"coalesce(a, 'none') || '!'\"\n",
           "plans/0002.toml:4:5: set.b reads \"a\", which set.a writes: the dual-write trigger would compute it "
           "from the row as written, the backfill from the row as it was; compute set.b from the columns the "
           "other is computed from (repeat set.a's expression in it)");
    zdm_plan *p = load_ok("[backfill]\ntable = \"t\"\nset.a = \"upper(src)\"\nset.b = \"coalesce(a, 'none')\"\n"
                          "dual_write = false\n");
    zdm_plan_free(p);
    p = load_ok("[backfill]\ntable = \"t\"\nset.a = \"upper(src)\"\nset.b = \"'a' || x.a || a(src)\"\n");
    zdm_plan_free(p);
}

static void test_empty_sql(void **state)
{
    (void)state;
    EXPECT("[[expand.steps]]\nsql = \"  \\n \"\n",
           "plans/0002.toml:2:7: expand step 1 has an empty \"sql\"");
    EXPECT("[[expand.steps]]\nsql = \"SELECT 1\"\ndown = \"\"\n",
           "plans/0002.toml:3:8: expand step 1 has an empty \"down\"");
}

static void test_per_dialect_sql(void **state)
{
    (void)state;
    zdm_plan *p = load_ok("[[expand.steps]]\nsql = {pg = \"SELECT 'pg'\", sqlite = \"SELECT 'lite'\"}\n"
                          "down.pg = \"SELECT 'down pg'\"\n"
                          "[[expand.steps]]\nsql.sqlite = \"SELECT 2\"\ndown = \"SELECT 3\"\n");
    assert_int_equal(p->nexpand, 2);
    const zdm_step *s = &p->expand[0];
    assert_null(s->sql);
    assert_string_equal(zdm_step_sql(s, 1), "SELECT 'pg'");
    assert_string_equal(zdm_step_sql(s, 2), "SELECT 'lite'");
    assert_string_equal(zdm_step_down(s, 1), "SELECT 'down pg'");
    assert_null(zdm_step_down(s, 2));
    assert_null(zdm_step_sql(s, 3));
    s = &p->expand[1];
    assert_null(zdm_step_sql(s, 1)); /* cannot run on PostgreSQL */
    assert_string_equal(zdm_step_sql(s, 2), "SELECT 2");
    assert_string_equal(zdm_step_down(s, 1), "SELECT 3");
    assert_string_equal(zdm_step_down(s, 2), "SELECT 3");
    zdm_plan_free(p);

    EXPECT("[[expand.steps]]\nsql = {pg = \"SELECT 1\", mysql = \"SELECT 1\"}\n",
           "plans/0002.toml:2:25: unknown key \"mysql\" in expand step 1.sql");
    EXPECT("[[expand.steps]]\nsql = {pg = \"SELECT 1\", sqlit = \"SELECT 1\"}\n",
           "plans/0002.toml:2:25: unknown key \"sqlit\" in expand step 1.sql (did you mean \"sqlite\"?)");
    EXPECT("[[expand.steps]]\nsql = {}\n",
           "plans/0002.toml:2:7: expand step 1.sql needs pg = \"...\" and/or sqlite = \"...\"");
    EXPECT("[[expand.steps]]\nsql = {pg = \" \"}\n",
           "plans/0002.toml:2:13: expand step 1.sql has an empty \"pg\"");
    EXPECT("[[expand.steps]]\nsql = {sqlite = 1}\n",
           "plans/0002.toml:2:17: expand step 1.sql.sqlite must be a string, not an integer",
           "plans/0002.toml:2:7: expand step 1.sql needs pg = \"...\" and/or sqlite = \"...\"");
}

static void test_hook_commands(void **state)
{
    (void)state;
    zdm_plan *p = load_ok(STEP "[hooks]\ntimeout = \"90s\"\n"
                          "before_expand = \"./check.sh  --level 'two words' \\\"x y\\\"z\"\n"
                          "cutover = [[\"deploy\", \"it's a b\"], \"notify me\"]\n");
    assert_int_equal(p->hooks.timeout_ms, 90000);
    assert_int_equal(p->hooks.n[ZDM_HOOK_BEFORE_EXPAND], 1);
    const zdm_strv *a = &p->hooks.cmds[ZDM_HOOK_BEFORE_EXPAND][0].argv;
    assert_int_equal(a->n, 4);
    assert_string_equal(a->v[0], "./check.sh");
    assert_string_equal(a->v[1], "--level");
    assert_string_equal(a->v[2], "two words");
    assert_string_equal(a->v[3], "x yz");
    assert_null(a->v[4]);
    assert_int_equal(p->hooks.cmds[ZDM_HOOK_BEFORE_EXPAND][0].line, 5);
    assert_int_equal(p->hooks.cmds[ZDM_HOOK_BEFORE_EXPAND][0].col, 17);
    assert_int_equal(p->hooks.n[ZDM_HOOK_CUTOVER], 2);
    a = &p->hooks.cmds[ZDM_HOOK_CUTOVER][0].argv; /* an array is the exact argv */
    assert_int_equal(a->n, 2);
    assert_string_equal(a->v[0], "deploy");
    assert_string_equal(a->v[1], "it's a b");
    a = &p->hooks.cmds[ZDM_HOOK_CUTOVER][1].argv;
    assert_int_equal(a->n, 2);
    assert_string_equal(a->v[0], "notify");
    assert_string_equal(a->v[1], "me");
    assert_int_equal(p->hooks.n[ZDM_HOOK_AFTER_EXPAND], 0);
    zdm_plan_free(p);

    EXPECT(STEP "[hooks]\ncutover = \"./go 'unfinished\"\n",
           "plans/0002.toml:4:11: hooks.cutover: unterminated ' quote in command \"./go 'unfinished\"");
    EXPECT(STEP "[hooks]\ncutover = \"   \"\n",
           "plans/0002.toml:4:11: hooks.cutover: empty command");
    EXPECT(STEP "[hooks]\ncutover = [[]]\n",
           "plans/0002.toml:4:12: hooks.cutover: empty command");
    EXPECT(STEP "[hooks]\ncutover = [[\"a\", 1]]\n",
           "plans/0002.toml:4:18: hooks.cutover: a command given as an array must hold only strings");
    EXPECT(STEP "[hooks]\ncutover = 7\n",
           "plans/0002.toml:4:11: hooks.cutover must be a command string or an array of commands");
    EXPECT(STEP "[hooks]\ncutover = [true]\n",
           "plans/0002.toml:4:12: hooks.cutover: a command must be a string or an array of strings, not a bool");
}

static void test_allow_unsafe(void **state)
{
    (void)state;
    zdm_plan *p = load_ok("allow_unsafe = [\"add-column-default\", {rule = \"drop-column\", reason = \"unused since v2\"}]\n" STEP);
    assert_int_equal(p->nallow, 2);
    assert_string_equal(p->allow[0].rule, "add-column-default");
    assert_null(p->allow[0].reason);
    assert_string_equal(p->allow[1].rule, "drop-column");
    assert_string_equal(p->allow[1].reason, "unused since v2");
    zdm_plan_free(p);

    EXPECT("allow_unsafe = \"drop-column\"\n" STEP,
           "plans/0002.toml:1:16: allow_unsafe must be an array of rule ids or {rule = \"...\", reason = \"...\"} tables");
    EXPECT("allow_unsafe = [\"a\", 3]\n" STEP,
           "plans/0002.toml:1:22: allow_unsafe entries must be rule ids (strings) or tables");
    EXPECT("allow_unsafe = [{rule = \"a\", reasn = \"b\"}]\n" STEP,
           "plans/0002.toml:1:30: unknown key \"reasn\" in allow_unsafe entry (did you mean \"reason\"?)");
}

static void test_plan_that_does_nothing(void **state)
{
    (void)state;
    EXPECT("description = \"nothing\"\n",
           "plans/0002.toml:1:1: the plan does nothing: add [[expand.steps]], [backfill] or [[contract.steps]]");
    EXPECT("[expand]\nsteps = []\n[contract]\nverify = \"SELECT true\"\n",
           "plans/0002.toml:1:1: the plan does nothing: add [[expand.steps]], [backfill] or [[contract.steps]]");
}

static void test_invalid_plan_id(void **state)
{
    (void)state;
    EXPECT("id = \"has space\"\n" STEP,
           "plans/0002.toml:1:6: plan id \"has space\" may only use letters, digits, '_', '-' and '.'");
    /* the default id comes from the file name */
    zdm_plan *p = (zdm_plan *)&p;
    zdm_diags d = {0};
    const char *src = STEP;
    assert_int_equal(zdm_plan_load_buffer("plans/my plan.toml", src, strlen(src), &p, &d), ZDM_EXIT_USAGE);
    assert_null(p);
    assert_int_equal(d.msgs.n, 1);
    assert_string_equal(d.msgs.v[0],
                        "plans/my plan.toml: plan id \"my plan\" may only use letters, digits, '_', '-' and '.' "
                        "(the id defaults to the file name; set id = \"...\" to choose another)");
    zdm_diags_free(&d);
    /* ...unless set */
    p = NULL;
    assert_int_equal(zdm_plan_load_buffer("plans/my plan.toml", "id = \"mine\"\n" STEP,
                                          strlen("id = \"mine\"\n" STEP), &p, &d), 0);
    assert_string_equal(p->id, "mine");
    assert_int_equal(p->id_line, 1);
    assert_int_equal(p->id_col, 6);
    assert_string_equal(p->dir, "plans");
    zdm_plan_free(p);
    zdm_diags_free(&d);
}

static void test_nul_in_string(void **state)
{
    (void)state;
    EXPECT("description = \"a\\u0000b\"\n" STEP,
           "plans/0002.toml:1:15: the plan.description contains a NUL character");
    EXPECT("[[expand.steps]]\nsql = \"SELECT 1\\u0000; DROP TABLE t\"\n",
           "plans/0002.toml:2:7: expand step 1.sql contains a NUL character");
}

static void test_op_sql_is_a_raw_step(void **state)
{
    (void)state;
    zdm_plan *p = load_ok("[[expand.steps]]\nop = \"sql\"\nsql = \"SELECT 1\"\ndown = \"SELECT 2\"\n");
    assert_null(p->expand[0].op);
    assert_string_equal(p->expand[0].sql, "SELECT 1");
    assert_string_equal(p->expand[0].down, "SELECT 2");
    zdm_plan_free(p);
    EXPECT("[[expand.steps]]\nop = \"sql\"\n",
           "plans/0002.toml:1:1: expand step 1 is missing required key \"sql\"");
}

static void test_plan_paths(void **state)
{
    (void)state;
    const char *src = STEP;
    struct { const char *path, *id, *dir; } cases[] = {
        {"0003_x.toml", "0003_x", "."},
        {"/0003_x.toml", "0003_x", "/"},
        {"a/b/0003_x.toml", "0003_x", "a/b"},
        {"plans/0003_x", "0003_x", "plans"},
        {"plans/v1.2.toml", "v1.2", "plans"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zdm_plan *p = NULL;
        zdm_diags d = {0};
        assert_int_equal(zdm_plan_load_buffer(cases[i].path, src, strlen(src), &p, &d), 0);
        assert_string_equal(p->path, cases[i].path);
        assert_string_equal(p->id, cases[i].id);
        assert_string_equal(p->dir, cases[i].dir);
        assert_int_equal(p->id_line, 0);
        zdm_plan_free(p);
        zdm_diags_free(&d);
    }
    /* ids are at most 200 characters */
    char id[202];
    memset(id, 'x', sizeof id);
    id[201] = '\0';
    char *toml = zdm_xasprintf("id = \"%s\"\n" STEP, id);
    char *want = zdm_xasprintf("plans/0002.toml:1:6: plan id \"%.32s...\" is too long (201 characters, at most 200)", id);
    EXPECT(toml, want);
    free(toml);
    free(want);
    id[200] = '\0';
    toml = zdm_xasprintf("id = \"%s\"\n" STEP, id);
    zdm_plan *p = load_ok(toml);
    assert_string_equal(p->id, id);
    zdm_plan_free(p);
    free(toml);
}

static void test_all_errors_of_a_file(void **state)
{
    (void)state;
    EXPECT("descripton = \"x\"\nlock_retries = 5000\n"
           "[[expand.steps]]\nop = \"drop_colum\"\n",
           "plans/0002.toml:1:1: unknown key \"descripton\" in the plan (did you mean \"description\"?)",
           "plans/0002.toml:2:16: the plan.lock_retries = 5000 is out of range (0 to 1000)",
           "plans/0002.toml:4:6: expand step 1: unknown operation \"drop_colum\" (did you mean \"drop_column\"?)");
}

/* ---- fields of a valid plan ---- */

static void test_fields_parsed(void **state)
{
    (void)state;
    const char *src =
        "id = \"0007_split_name\"\n"
        "description = \"split name\"\n"
        "requires = [\"0001\", \"0002\"]\n"
        "lock_timeout = \"1s500ms\"\n"
        "statement_timeout = 60000\n"
        "lock_retries = 3\n"
        "[[expand.steps]]\n"
        "name = \"first\"\n"
        "sql = \"ALTER TABLE t ADD COLUMN a int\"\n"
        "down = \"ALTER TABLE t DROP COLUMN a\"\n"
        "lock_timeout = \"5s\"\n"
        "lock_retries = 0\n"
        "[[expand.steps]]\n"
        "sql = \"CREATE INDEX CONCURRENTLY i ON t (a)\"\n"
        "[[expand.steps]]\n"
        "sql = \"CREATE INDEX CONCURRENTLY j ON t (a)\"\n"
        "transaction = true\n"
        "[[expand.steps]]\n"
        "op = \"add_index\"\ntable = \"t\"\ncolumns = [\"a\", \"b\"]\n"
        "[backfill]\n"
        "table = \"public.t\"\n"
        "key = \"id\"\n"
        "where = \"a IS NULL\"\n"
        "set.a = \"length(name)\"\n"
        "set.b = \"1\"\n"
        "[backfill.throttle]\n"
        "batch_size = 500\n"
        "max_rows_per_second = 2000\n"
        "pause_query = \"SELECT false\"\n"
        "check_wal_archive = false\n"
        "[contract]\n"
        "not_before = \"cutover + 1h30m\"\n"
        "verify = \"SELECT true\"\n"
        "[[contract.steps]]\n"
        "sql = \"ALTER TABLE t DROP COLUMN name\"\n";
    zdm_plan *p = load_ok(src);
    assert_string_equal(p->id, "0007_split_name");
    assert_string_equal(p->path, PATH);
    assert_string_equal(p->description, "split name");
    assert_int_equal(p->requires.n, 2);
    assert_string_equal(p->requires.v[1], "0002");
    assert_int_equal(p->requires_line[1], 3);
    assert_int_equal(p->requires_col[1], 21);
    assert_int_equal(p->lock_timeout_ms, 1500);
    assert_int_equal(p->statement_timeout_ms, 60000);
    assert_int_equal(p->lock_retries, 3);

    assert_int_equal(p->nexpand, 4);
    const zdm_step *s = p->expand;
    assert_int_equal(s[0].index, 1);
    assert_string_equal(s[0].name, "first");
    assert_string_equal(s[0].sql, "ALTER TABLE t ADD COLUMN a int");
    assert_string_equal(s[0].down, "ALTER TABLE t DROP COLUMN a");
    assert_int_equal(s[0].lock_timeout_ms, 5000);
    assert_int_equal(s[0].statement_timeout_ms, -1);
    assert_int_equal(s[0].lock_retries, 0);
    assert_int_equal(s[0].transaction, -1);
    assert_int_equal(s[0].line, 7);
    assert_int_equal(zdm_step_in_transaction(&s[0], s[0].sql), 1);
    assert_null(s[1].name);
    assert_null(s[1].down);
    assert_int_equal(s[1].lock_timeout_ms, -1);
    assert_int_equal(s[1].lock_retries, -1);
    assert_int_equal(zdm_step_in_transaction(&s[1], s[1].sql), 0);
    assert_int_equal(s[2].transaction, 1); /* explicit wins over detection */
    assert_int_equal(zdm_step_in_transaction(&s[2], s[2].sql), 1);
    /* an op step becomes raw SQL per dialect, remembering its op */
    assert_int_equal(s[3].index, 4);
    assert_null(s[3].op);
    assert_string_equal(s[3].from_op, "add_index");
    assert_null(s[3].sql);
    assert_string_equal(zdm_step_sql(&s[3], 1),
                        "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"t_a_b_idx\" ON \"t\" (\"a\", \"b\")");
    assert_string_equal(zdm_step_down(&s[3], 1), "DROP INDEX CONCURRENTLY IF EXISTS \"t_a_b_idx\"");
    assert_string_equal(zdm_step_sql(&s[3], 2), "CREATE INDEX IF NOT EXISTS \"t_a_b_idx\" ON \"t\" (\"a\", \"b\")");
    assert_int_equal(zdm_step_in_transaction(&s[3], zdm_step_sql(&s[3], 1)), 0);
    assert_int_equal(zdm_step_in_transaction(&s[3], zdm_step_sql(&s[3], 2)), 1);

    const zdm_backfill *b = p->backfill;
    assert_non_null(b);
    assert_string_equal(b->table, "public.t");
    assert_int_equal(b->key.n, 1);
    assert_string_equal(b->key.v[0], "id");
    assert_string_equal(b->where, "a IS NULL");
    assert_int_equal(b->nset, 2);
    assert_string_equal(b->set[0].column, "a");
    assert_string_equal(b->set[0].expr, "length(name)");
    assert_string_equal(b->set[1].column, "b");
    assert_int_equal(b->dual_write, 1); /* default when set is non-empty */
    assert_int_equal(b->nreverse, 0);
    /* overrides */
    assert_int_equal(b->throttle.batch_size, 500);
    assert_int_equal(b->throttle.max_rows_per_second, 2000);
    assert_string_equal(b->throttle.pause_query, "SELECT false");
    assert_int_equal(b->throttle.check_wal_archive, 0);
    /* defaults */
    assert_int_equal(b->throttle.target_batch_ms, 200);
    assert_int_equal(b->throttle.min_batch_size, 10);
    assert_int_equal(b->throttle.max_batch_size, 50000);
    assert_int_equal(b->throttle.sleep_ms, 0);
    assert_int_equal(b->throttle.max_replication_lag_ms, 0);
    assert_int_equal(b->throttle.check_autovacuum, 1);
    assert_int_equal(b->throttle.check_replica_lag, 1);
    assert_int_equal(b->throttle.max_wal_archive_ready, 100);

    assert_string_equal(p->not_before, "cutover + 1h30m");
    assert_int_equal(p->not_before_ms, 5400000);
    assert_string_equal(p->verify, "SELECT true");
    assert_int_equal(p->ncontract, 1);
    assert_int_equal(p->contract[0].index, 1);
    assert_int_equal(p->hooks.timeout_ms, 300000);
    for (int e = 0; e < ZDM_HOOK__COUNT; e++)
        assert_int_equal(p->hooks.n[e], 0);

    char sum[65];
    zdm_sha256_hex(src, strlen(src), sum);
    assert_string_equal(p->checksum, sum);
    zdm_plan_free(p);
}

static void test_plan_defaults(void **state)
{
    (void)state;
    zdm_plan *p = load_ok("[backfill]\ntable = \"t\"\nset.a = \"b\"\n"
                          "dual_write = {sources = [\"name\"], reverse.name = \"a\"}\n"
                          "[contract]\nnot_before = \"48\"\n");
    assert_string_equal(p->id, "0002");
    assert_null(p->description);
    assert_int_equal(p->requires.n, 0);
    assert_int_equal(p->lock_timeout_ms, 2000);
    assert_int_equal(p->statement_timeout_ms, 0);
    assert_int_equal(p->lock_retries, 10);
    assert_int_equal(p->nexpand, 0);
    assert_int_equal(p->ncontract, 0);
    assert_int_equal(p->not_before_ms, 48000); /* a bare number is seconds */
    const zdm_backfill *b = p->backfill;
    assert_int_equal(b->key.n, 0);
    assert_null(b->where);
    assert_int_equal(b->dual_write, 1);
    assert_int_equal(b->dw_sources.n, 1);
    assert_string_equal(b->dw_sources.v[0], "name");
    assert_int_equal(b->nreverse, 1);
    assert_string_equal(b->reverse[0].column, "name");
    assert_string_equal(b->reverse[0].expr, "a");
    zdm_throttle t;
    zdm_throttle_defaults(&t);
    assert_memory_equal(&b->throttle, &t, sizeof t);
    zdm_plan_free(p);

    p = load_ok(STEP "[contract]\nnot_before = \" cutover \"\n[backfill]\ntable = \"t\"\nset.a = \"b\"\ndual_write = false\n");
    assert_int_equal(p->not_before_ms, 0);
    assert_int_equal(p->backfill->dual_write, 0);
    assert_string_equal(p->dir, "plans");
    zdm_plan_free(p);
    p = load_ok(STEP);
    assert_int_equal(p->not_before_ms, -1);
    assert_null(p->backfill);
    zdm_plan_free(p);
}

/* Index of plan `id` in the set's order, or -1. */
static int pos_of(const zdm_plan_set *set, const char *id)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->plans[i]->id, id) == 0)
            return (int)i;
    return -1;
}

static void test_real_plans_load(void **state)
{
    (void)state;
    /* Others may add example plans: every *.toml of the folder must load. */
    size_t nfiles = 0;
    DIR *dir = opendir("../../plans");
    assert_non_null(dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] != '.' && l > 5 && strcmp(de->d_name + l - 5, ".toml") == 0 &&
            strcmp(de->d_name, "zdm.toml") != 0)
            nfiles++;
    }
    closedir(dir);
    const char *paths[1] = {"../../plans"};
    zdm_plan_set set;
    zdm_diags d = {0};
    int rc = zdm_plan_set_load(paths, 1, &set, &d);
    dump(&d);
    assert_int_equal(rc, 0);
    assert_int_equal(d.msgs.n, 0);
    assert_true(nfiles >= 5);
    assert_int_equal(set.n, nfiles);
    /* every plan comes after the plans it requires */
    for (size_t i = 0; i < set.n; i++)
        for (size_t r = 0; r < set.plans[i]->requires.n; r++) {
            int at = pos_of(&set, set.plans[i]->requires.v[r]);
            assert_true(at >= 0 && (size_t)at < i);
        }
    const char *order[] = {"0001_baseline", "0002_event_type", "0003_event_type_index",
                           "0004_employee_email_required", "0005_drop_legacy_flag"};
    assert_int_equal(pos_of(&set, order[0]), 0);
    for (size_t i = 1; i < 5; i++)
        assert_true(pos_of(&set, order[i]) > pos_of(&set, order[i - 1]));
    const zdm_plan *p = zdm_plan_set_find(&set, "0003_event_type_index");
    assert_non_null(p);
    assert_string_equal(p->path, "../../plans/0003_event_type_index.toml");
    assert_string_equal(p->dir, "../../plans");
    assert_int_equal(p->nexpand, 1);
    assert_int_equal(zdm_step_in_transaction(&p->expand[0], zdm_step_sql(&p->expand[0], 1)), 0);
    assert_int_equal(zdm_step_in_transaction(&p->expand[0], zdm_step_sql(&p->expand[0], 2)), 1);
    p = zdm_plan_set_find(&set, "0005_drop_legacy_flag");
    assert_int_equal(p->not_before_ms, 0);
    assert_int_equal(p->ncontract, 1);
    assert_null(zdm_plan_set_find(&set, "0006"));

    /* the checksum is the SHA-256 of the file's bytes */
    char *src;
    size_t len;
    zdm_err err;
    zdm_err_clear(&err);
    assert_int_equal(zdm_read_file("../../plans/0005_drop_legacy_flag.toml", &src, &len, &err), 0);
    char sum[65];
    zdm_sha256_hex(src, len, sum);
    assert_string_equal(p->checksum, sum);
    free(src);
    zdm_plan_set_free(&set);
    zdm_diags_free(&d);
}

/* ---- sets of plans ---- */

static void test_duplicate_ids(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "a.toml", "id = \"same\"\n" STEP);
    tmp_write(&t, "b.toml", "\nid = \"same\"\n" STEP);
    zdm_plan_set set;
    expect_set(&t, ZDM_EXIT_USAGE,
               MSGS("%s/b.toml:2:6: duplicate plan id \"same\" (also used by %s/a.toml)"), &set);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.plans[0]->path + strlen(t.path), "/a.toml");
    zdm_plan_set_free(&set);
    tmp_rm(&t);
}

static void test_requires_missing(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "0001_base.toml", STEP);
    tmp_write(&t, "0002_next.toml", "requires = [\"0001_bse\", \"zzzz\"]\n" STEP);
    zdm_plan_set set;
    expect_set(&t, ZDM_EXIT_USAGE,
               MSGS("%s/0002_next.toml:1:13: plan \"0002_next\" requires \"0001_bse\", which is not among "
                    "the loaded plans (did you mean \"0001_base\"?)",
                    "%s/0002_next.toml:1:25: plan \"0002_next\" requires \"zzzz\", which is not among "
                    "the loaded plans"),
               &set);
    assert_int_equal(set.n, 2);
    zdm_plan_set_free(&set);
    tmp_rm(&t);
}

static void test_requires_itself(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "0001_base.toml", STEP);
    tmp_write(&t, "0002_self.toml", "requires = [\"0001_base\", \"0002_self\"]\n" STEP);
    zdm_plan_set set;
    expect_set(&t, ZDM_EXIT_USAGE,
               MSGS("%s/0002_self.toml:1:26: plan \"0002_self\" requires itself"), &set);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.plans[0]->id, "0001_base");
    assert_string_equal(set.plans[1]->id, "0002_self");
    zdm_plan_set_free(&set);
    tmp_rm(&t);
}

static void test_cycle_of_two(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "a.toml", "requires = [\"b\"]\n" STEP);
    tmp_write(&t, "b.toml", "requires = [\"a\"]\n" STEP);
    tmp_write(&t, "c.toml", STEP);
    zdm_plan_set set;
    expect_set(&t, ZDM_EXIT_USAGE,
               MSGS("%s/a.toml:1:13: plan \"a\" is part of a dependency cycle (it requires \"b\", which never comes first)",
                    "%s/b.toml:1:13: plan \"b\" is part of a dependency cycle (it requires \"a\", which never comes first)"),
               &set);
    assert_int_equal(set.n, 3); /* every plan is still in the set */
    assert_string_equal(set.plans[0]->id, "c");
    zdm_plan_set_free(&set);
    tmp_rm(&t);
}

static void test_cycle_of_three(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "x.toml", "requires = [\"base\", \"z\"]\n" STEP);
    tmp_write(&t, "y.toml", "requires = [\"x\"]\n" STEP);
    tmp_write(&t, "z.toml", "requires = [\"y\"]\n" STEP);
    tmp_write(&t, "base.toml", STEP);
    /* a plan waiting on the cycle is named, but not as a member */
    tmp_write(&t, "w.toml", "requires = [\"y\"]\n" STEP);
    zdm_plan_set set;
    expect_set(&t, ZDM_EXIT_USAGE,
               MSGS("%s/w.toml:1:13: plan \"w\" requires \"y\", which is part of a dependency cycle",
                    "%s/x.toml:1:21: plan \"x\" is part of a dependency cycle (it requires \"z\", which never comes first)",
                    "%s/y.toml:1:13: plan \"y\" is part of a dependency cycle (it requires \"x\", which never comes first)",
                    "%s/z.toml:1:13: plan \"z\" is part of a dependency cycle (it requires \"y\", which never comes first)"),
               &set);
    assert_int_equal(set.n, 5);
    assert_string_equal(set.plans[0]->id, "base");
    zdm_plan_set_free(&set);
    tmp_rm(&t);
}

static void test_dependency_order(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    /* file names sort differently from the ids and from the dependencies */
    tmp_write(&t, "1.toml", "id = \"d\"\nrequires = [\"b\", \"c\"]\n" STEP);
    tmp_write(&t, "2.toml", "id = \"c\"\nrequires = [\"a\"]\n" STEP);
    tmp_write(&t, "3.toml", "id = \"b\"\nrequires = [\"e\"]\n" STEP);
    tmp_write(&t, "4.toml", "id = \"a\"\n" STEP);
    tmp_write(&t, "5.toml", "id = \"e\"\n" STEP);
    tmp_write(&t, "6.toml", "id = \"f\"\n" STEP);
    tmp_write(&t, "notes.txt", "not a plan");
    tmp_write(&t, "zdm.toml", "this is the project file, not a plan = !\n");
    zdm_plan_set set;
    expect_set(&t, 0, NO_MSGS, &set);
    /* ready first: a, e (smallest id first); then b (needs e) ... */
    const char *order[] = {"a", "c", "e", "b", "d", "f"};
    assert_int_equal(set.n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(set.plans[i]->id, order[i]);
    zdm_plan_set_free(&set);
    tmp_rm(&t);
}

static void test_set_collects_every_file(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "a.toml", "descripton = 1\n" STEP);
    tmp_write(&t, "b.toml", "x = \n");
    tmp_write(&t, "c.toml", "requires = [\"a\"]\n" STEP);
    tmp_write(&t, "zdm.toml", "broken = \n");
    zdm_plan_set set;
    /* a is invalid, so c's requirement is missing too */
    expect_set(&t, ZDM_EXIT_USAGE,
               MSGS("%s/a.toml:1:1: unknown key \"descripton\" in the plan (did you mean \"description\"?)",
                    "%s/b.toml:1:5: expected a value, found end of line",
                    "%s/c.toml:1:13: plan \"c\" requires \"a\", which is not among the loaded plans"),
               &set);
    assert_int_equal(set.n, 1);
    zdm_plan_set_free(&set);

    /* a path that does not exist */
    const char *paths[2] = {"/nonexistent/zdm-plans", t.path};
    zdm_diags d = {0};
    assert_int_equal(zdm_plan_set_load(paths, 1, &set, &d), ZDM_EXIT_USAGE);
    assert_int_equal(d.msgs.n, 1);
    assert_string_equal(d.msgs.v[0], "/nonexistent/zdm-plans: cannot read: No such file or directory");
    assert_int_equal(set.n, 0);
    zdm_plan_set_free(&set);
    zdm_diags_free(&d);
    tmp_rm(&t);
}

static void test_load_file(void **state)
{
    (void)state;
    zdm_plan *p = (zdm_plan *)&p;
    zdm_diags d = {0};
    assert_int_equal(zdm_plan_load_file("/nonexistent/x.toml", &p, &d), ZDM_EXIT_FAIL);
    assert_null(p);
    assert_int_equal(d.msgs.n, 1);
    assert_string_equal(d.msgs.v[0], "cannot read /nonexistent/x.toml: No such file or directory");
    zdm_diags_free(&d);
    assert_int_equal(zdm_plan_load_file("../../plans/0002_event_type.toml", &p, &d), 0);
    assert_string_equal(p->id, "0002_event_type");
    assert_string_equal(p->description, "Add events.event_type (nullable)");
    assert_int_equal(p->requires.n, 1);
    assert_string_equal(p->requires.v[0], "0001_baseline");
    assert_string_equal(p->expand[0].sql, "ALTER TABLE events ADD COLUMN event_type varchar(20)");
    assert_string_equal(p->expand[0].down, "ALTER TABLE events DROP COLUMN event_type");
    zdm_plan_free(p);
    zdm_diags_free(&d);
}

/* ---- helpers used by plans ---- */

static void test_sha256_vectors(void **state)
{
    (void)state;
    char out[65];
    zdm_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    zdm_sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: two blocks */
    zdm_sha256_hex(two, strlen(two), out);
    assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char a[1000];
    memset(a, 'a', sizeof a);
    zdm_sha256_hex(a, sizeof a, out);
    assert_string_equal(out, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

static void test_sql_needs_autocommit(void **state)
{
    (void)state;
    assert_int_equal(zdm_sql_needs_autocommit(NULL), 0);
    assert_int_equal(zdm_sql_needs_autocommit("CREATE INDEX i ON t (a)"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("create index concurrently i on t (a)"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("DROP INDEX CONCURRENTLY IF EXISTS i"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("VACUUM ANALYZE t"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("ALTER SYSTEM SET work_mem = '1MB'"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("CREATE DATABASE x"), 1);
    /* not as part of a longer word, nor in strings, identifiers or comments */
    assert_int_equal(zdm_sql_needs_autocommit("CREATE TABLE concurrently_log (a int)"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("SELECT 'CONCURRENTLY'"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("SELECT \"vacuum\" FROM t"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("SELECT 1 -- VACUUM\n"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("SELECT /* CONCURRENTLY */ 1"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("SELECT /* unterminated CONCURRENTLY"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("SELECT 'unterminated VACUUM"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("ALTER TABLE system_x ADD c int"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("SELECT 1; VACUUM"), 1);
    /* from the parse tree, not words: a column named database, ANALYZE */
    assert_int_equal(zdm_sql_needs_autocommit("CREATE TABLE accounts (id int, database text)"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("ALTER TABLE t ADD COLUMN system text; CREATE VIEW v AS SELECT 1"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("ANALYZE t"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("REINDEX (CONCURRENTLY) INDEX i"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("CREATE TABLE vacuum_log (a int)"), 0);
    /* every statement PostgreSQL refuses inside a transaction block */
    assert_int_equal(zdm_sql_needs_autocommit("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("ALTER TABLE p DETACH PARTITION p1"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("ALTER TABLE p ADD c int, DETACH PARTITION p1 FINALIZE"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("REINDEX DATABASE app"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("REINDEX SYSTEM app"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("REINDEX TABLE t"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("CLUSTER"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("CLUSTER t USING t_pkey"), 0);
    assert_int_equal(zdm_sql_needs_autocommit("CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("ALTER SUBSCRIPTION s REFRESH PUBLICATION"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("DROP SUBSCRIPTION s"), 1);
    /* SQLite dialect (not PostgreSQL grammar): only VACUUM */
    assert_int_equal(zdm_sql_needs_autocommit("CREATE TABLE t (a) STRICT; VACUUM"), 1);
    assert_int_equal(zdm_sql_needs_autocommit("CREATE TABLE t (a) STRICT"), 0);
    char *sch = NULL, *nm = NULL;
    assert_int_equal(zdm_sql_concurrent_index("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"Idx\" ON app.t (a)",
                                              &sch, &nm), 1);
    assert_string_equal(nm, "Idx");
    assert_string_equal(sch, "app");
    free(sch);
    free(nm);
    assert_int_equal(zdm_sql_concurrent_index("CREATE INDEX i ON t (a)", &sch, &nm), 0);
    assert_null(nm);
}

static void test_parse_duration(void **state)
{
    (void)state;
    struct { const char *s; int64_t bare, ms; } ok[] = {
        {"250ms", 1, 250},     {"2s", 1, 2000},         {"5m", 1, 300000},
        {"24h", 1, 86400000},  {"7d", 1, 604800000},    {"1h30m", 1, 5400000},
        {"1h 30m", 1, 5400000}, {" 90s", 1, 90000},     {"42", 1, 42},
        {"42", 1000, 42000},   {"0", 1, 0},             {"1m1ms", 1, 60001},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -7;
        zdm_err e;
        zdm_err_clear(&e);
        assert_int_equal(zdm_parse_duration_ms(ok[i].s, ok[i].bare, &ms, &e), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    struct { const char *s, *msg; } bad[] = {
        {"", "empty duration"},
        {"   ", "empty duration"},
        {"2 parsecs", "bad duration \"2 parsecs\": unknown unit (use ms, s, m, h or d)"},
        {"1h30", "bad duration \"1h30\": unknown unit (use ms, s, m, h or d)"},
        {"-5s", "bad duration \"-5s\": expected a number followed by ms, s, m, h or d (e.g. \"24h\", \"90s\")"},
        {"1.5h", "bad duration \"1.5h\": unknown unit (use ms, s, m, h or d)"},
        {"h", "bad duration \"h\": expected a number followed by ms, s, m, h or d (e.g. \"24h\", \"90s\")"},
        {"99999999999999999999", "duration \"99999999999999999999\" is too large"},
        {"9223372036854775d", "duration \"9223372036854775d\" is too large"},
        {"2000000000000000000ms2000000000000000000ms", "duration \"2000000000000000000ms2000000000000000000ms\" is too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -7;
        zdm_err e;
        zdm_err_clear(&e);
        assert_int_equal(zdm_parse_duration_ms(bad[i].s, 1, &ms, &e), ZDM_EXIT_USAGE);
        assert_string_equal(e.msg, bad[i].msg);
        assert_int_equal(ms, -7);
    }
    char buf[32];
    assert_string_equal(zdm_format_duration(450, buf, sizeof buf), "450ms");
    assert_string_equal(zdm_format_duration(2000, buf, sizeof buf), "2.0s");
    assert_string_equal(zdm_format_duration(200000, buf, sizeof buf), "3m20s");
    assert_string_equal(zdm_format_duration(5400000, buf, sizeof buf), "1h30m");
    assert_string_equal(zdm_format_duration(93600000, buf, sizeof buf), "1d2h");
    assert_string_equal(zdm_format_duration(-5, buf, sizeof buf), "0ms");
}

static void test_split_command(void **state)
{
    (void)state;
    struct { const char *line; const char *argv[6]; } ok[] = {
        {"true", {"true"}},
        {"  a\tb  c ", {"a", "b", "c"}},
        {"./x.sh 'one two' \"three 'four'\"", {"./x.sh", "one two", "three 'four'"}},
        {"a'b c'd", {"ab cd"}},
        {"say '' x", {"say", "", "x"}},
        {"echo $HOME *.c", {"echo", "$HOME", "*.c"}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        zdm_strv argv = {0};
        zdm_err e;
        zdm_err_clear(&e);
        assert_int_equal(zdm_split_command(ok[i].line, &argv, &e), 0);
        size_t n = 0;
        while (ok[i].argv[n])
            n++;
        assert_int_equal(argv.n, n);
        for (size_t k = 0; k < n; k++)
            assert_string_equal(argv.v[k], ok[i].argv[k]);
        assert_null(argv.v[n]);
        zdm_strv_free(&argv);
    }
    struct { const char *line, *msg; } bad[] = {
        {"", "empty command"},
        {" \t ", "empty command"},
        {"a 'b", "unterminated ' quote in command \"a 'b\""},
        {"a \"b'", "unterminated \" quote in command \"a \"b'\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zdm_strv argv = {0};
        zdm_err e;
        zdm_err_clear(&e);
        assert_int_equal(zdm_split_command(bad[i].line, &argv, &e), ZDM_EXIT_USAGE);
        assert_string_equal(e.msg, bad[i].msg);
        zdm_strv_free(&argv);
    }
}

static void test_did_you_mean(void **state)
{
    (void)state;
    const char *const c[] = {"description", "requires", "lock_timeout", "lock_retries", "expand"};
    assert_string_equal(zdm_did_you_mean("descripton", c, 5), "description");
    assert_string_equal(zdm_did_you_mean("requries", c, 5), "requires");
    assert_string_equal(zdm_did_you_mean("lock_retres", c, 5), "lock_retries");
    assert_string_equal(zdm_did_you_mean("lock_t", c, 5), "lock_timeout"); /* prefix */
    assert_string_equal(zdm_did_you_mean("exp", c, 5), "expand");          /* prefix */
    assert_null(zdm_did_you_mean("contract", c, 5));
    assert_null(zdm_did_you_mean("ex", c, 5)); /* too short for a prefix match */
    assert_null(zdm_did_you_mean("anything", c, 0));
    /* a short word is not a typo of everything near it */
    const char *const ids[] = {"c", "ab", "0001_base"};
    assert_null(zdm_did_you_mean("a", ids, 3));
    assert_null(zdm_did_you_mean("b", ids, 3));
    assert_string_equal(zdm_did_you_mean("abc", ids, 3), "ab");
    assert_null(zdm_did_you_mean("xy", ids, 3));
    assert_string_equal(zdm_did_you_mean("0001_bse", ids, 3), "0001_base");
    assert_int_equal(zdm_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(zdm_edit_distance("", "abc"), 3);
    assert_int_equal(zdm_edit_distance("same", "same"), 0);
}

static void test_parse_format_time(void **state)
{
    (void)state;
    struct { const char *s; int64_t ms; } ok[] = {
        {"1970-01-01", 0},
        {"1970-01-01T00:00:00Z", 0},
        {"2026-11-22T03:00:00Z", INT64_C(1795316400000)},
        {"2026-11-22T03:00Z", INT64_C(1795316400000)},
        {"2026-11-22 03:00:00", INT64_C(1795316400000)},
        {"2026-11-22T04:30:00+01:30", INT64_C(1795316400000)},
        {"2026-11-21T22:00:00-05:00", INT64_C(1795316400000)},
        {"2026-11-22T03:00:00.25Z", INT64_C(1795316400250)},
        {"2026-11-22T03:00:00.123456Z", INT64_C(1795316400123)},
        {"2000-02-29T12:00:00Z", INT64_C(951825600000)},
        {"1969-12-31T23:59:59Z", -1000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -7;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_parse_time(ok[i].s, &ms, &e) != 0)
            fprintf(stderr, "parse_time(\"%s\"): %s\n", ok[i].s, e.msg);
        assert_int_equal(zdm_parse_time(ok[i].s, &ms, &e), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {
        "", "tomorrow", "2026-13-01", "2026-00-10", "2026-11-32", "2026-11-22T24:00:00Z",
        "2026-11-22T03:60Z", "2026-11-22T03:00:00+1", "2026-11-22T03:00:00.Z", "2026-11-22T03",
        "2026-11-22Tx", "2026-11-22T03:00:00Zjunk", "26-11-22",
        /* signs and spaces where digits belong */
        "2026-11-22T-1:00Z", "2026-11-22T03:-5Z", "2026-11-22T03:00:-1Z", "2026- 1-22",
        "+202-11-22", "2026-11-22T03:00:00+-1:00",
        /* days the month does not have */
        "2026-02-29", "2026-04-31", "1900-02-29",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -7;
        zdm_err e;
        zdm_err_clear(&e);
        int rc = zdm_parse_time(bad[i], &ms, &e);
        if (rc == 0)
            fprintf(stderr, "parse_time(\"%s\") accepted: %lld\n", bad[i], (long long)ms);
        assert_int_equal(rc, ZDM_EXIT_USAGE);
        char want[200];
        snprintf(want, sizeof want, "bad time \"%s\": expected ISO-8601 like 2026-11-22T03:00:00Z", bad[i]);
        assert_string_equal(e.msg, want);
        assert_int_equal(ms, -7);
    }
    /* round trip */
    char buf[64];
    assert_string_equal(zdm_format_time(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
    assert_string_equal(zdm_format_time(INT64_C(1795316400000), buf, sizeof buf), "2026-11-22T03:00:00Z");
    const int64_t samples[] = {0, INT64_C(951825600000), INT64_C(1795316400000), INT64_C(4102444799000),
                               INT64_C(1234567890000)};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        int64_t back = -7;
        zdm_err e;
        zdm_err_clear(&e);
        zdm_format_time(samples[i], buf, sizeof buf);
        assert_int_equal(zdm_parse_time(buf, &back, &e), 0);
        assert_int_equal(back, samples[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toml_syntax_error_passes_through),
        cmocka_unit_test(test_unknown_top_level_key),
        cmocka_unit_test(test_unknown_key_in_expand),
        cmocka_unit_test(test_unknown_key_in_backfill),
        cmocka_unit_test(test_unknown_key_in_throttle),
        cmocka_unit_test(test_unknown_key_in_dual_write),
        cmocka_unit_test(test_dual_write_sources_checked),
        cmocka_unit_test(test_unknown_key_in_contract),
        cmocka_unit_test(test_unknown_key_in_hooks),
        cmocka_unit_test(test_unknown_key_in_step),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_missing_required_keys),
        cmocka_unit_test(test_unknown_op),
        cmocka_unit_test(test_op_missing_field),
        cmocka_unit_test(test_op_in_wrong_phase),
        cmocka_unit_test(test_invalid_identifiers),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_bad_not_before),
        cmocka_unit_test(test_out_of_range_ints),
        cmocka_unit_test(test_reverse_set_conflict),
        cmocka_unit_test(test_set_reads_other_target),
        cmocka_unit_test(test_empty_sql),
        cmocka_unit_test(test_per_dialect_sql),
        cmocka_unit_test(test_hook_commands),
        cmocka_unit_test(test_allow_unsafe),
        cmocka_unit_test(test_plan_that_does_nothing),
        cmocka_unit_test(test_invalid_plan_id),
        cmocka_unit_test(test_nul_in_string),
        cmocka_unit_test(test_op_sql_is_a_raw_step),
        cmocka_unit_test(test_plan_paths),
        cmocka_unit_test(test_all_errors_of_a_file),
        cmocka_unit_test(test_fields_parsed),
        cmocka_unit_test(test_ops_rename_column),
        cmocka_unit_test(test_ops_change_type),
        cmocka_unit_test(test_ops_errors),
        cmocka_unit_test(test_ops_quote),
        cmocka_unit_test(test_ops_pieces),
        cmocka_unit_test(test_plan_defaults),
        cmocka_unit_test(test_real_plans_load),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_duplicate_ids),
        cmocka_unit_test(test_requires_missing),
        cmocka_unit_test(test_requires_itself),
        cmocka_unit_test(test_cycle_of_two),
        cmocka_unit_test(test_cycle_of_three),
        cmocka_unit_test(test_dependency_order),
        cmocka_unit_test(test_set_collects_every_file),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sql_needs_autocommit),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_split_command),
        cmocka_unit_test(test_did_you_mean),
        cmocka_unit_test(test_parse_format_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
