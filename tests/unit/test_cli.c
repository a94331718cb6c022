/*
 * test_cli.c -- the command line: global options, help, dispatch, exit
 * codes, and the plan commands, through zdm_cli_main() with its output and
 * error streams captured in temporary files.
 *
 * Runs from tests/unit (ctest's working directory): the example plans are
 * ../../plans.  Database commands use a SQLite file in a temporary folder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpdir.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "live_keys.h"
#include "util.h"

#define PLANS "../../plans"

/* The example plans, in dependency order, as the plan loader sees them
 * (test_plan.c checks that order); others may add plans to the folder. */
static zdm_plan_set g_real;
static char *g_ids;   /* "0001_baseline, 0002_event_type, ..." */
static char *g_valid; /* "N plans valid: <g_ids>\n" */

/* ---- helpers ---- */

typedef struct run {
    int rc;
    char *out, *err;
} run;

static char *slurp(FILE *f)
{
    zdm_buf b = {0};
    char chunk[4096];
    size_t n;
    rewind(f);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        zdm_buf_putn(&b, chunk, n);
    fclose(f);
    return zdm_buf_take(&b);
}

/* Runs `zdm ARGS...` (NULL-terminated). */
static run zdm_v(const char *first, va_list ap)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"zdm";
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(argc < 63);
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;
    FILE *out = tmpfile(), *errs = tmpfile();
    assert_non_null(out);
    assert_non_null(errs);
    run r;
    r.rc = zdm_cli_main(argc, argv, out, errs);
    r.out = slurp(out);
    r.err = slurp(errs);
    return r;
}

static run zdm(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    run r = zdm_v(first, ap);
    va_end(ap);
    return r;
}

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

/* Asserts the exit code and both streams exactly. */
static void expect(run r, int rc, const char *out, const char *err)
{
    if (r.rc != rc || strcmp(r.out, out) != 0 || strcmp(r.err, err) != 0)
        fprintf(stderr, "rc %d\n--- out:\n%s--- err:\n%s---\n", r.rc, r.out, r.err);
    assert_int_equal(r.rc, rc);
    assert_string_equal(r.out, out);
    assert_string_equal(r.err, err);
    run_free(&r);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fprintf(stderr, "bad JSON (%s at %d:%d):\n%s\n", je.text, je.line, je.column, text);
    assert_non_null(j);
    return j;
}

static const char *jpath_str(json_t *o, const char *path)
{
    /* "a.b.0.c": objects by key, arrays by index */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("ZDM_DATABASE_URL");
    return 0;
}

/* ---- version and help ---- */

static void test_version(void **state)
{
    (void)state;
    expect(zdm("--version", NULL), 0, "zdm " ZDM_VERSION "\n", "");
    expect(zdm("status", "--version", NULL), 0, "zdm " ZDM_VERSION "\n", "");
}

static void test_help(void **state)
{
    (void)state;
    run r = zdm("--help", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_true(starts_with(r.out, "usage: zdm [--db URL] [--plans DIR] [--json] [-v|-q] COMMAND [ARGS]\n"));
    const char *lines[] = {
        "\n  plan validate [PATH...]    check plan files and report every error\n",
        "\n  plan show PLAN             show a plan's phases and steps\n",
        "\n  init                       create zdm's state tables in the database (idempotent)\n",
        "\n  advance PLAN               move a plan one phase forward\n",
        "\n  rollback PLAN              undo expand (or contract, when it has downs)\n",
        "\n  status [PLAN]              where every plan stands and what to run next\n",
        "\n  history [PLAN]             every transition, refusal and stamp, newest last\n",
        "\n  stamp PLAN PHASE           record a phase without running anything\n",
        "\n  check                      exit 0 when every plan is complete, 3 otherwise\n",
        "\n  unlock PLAN                remove a plan's lock left by a process that is gone\n",
        "\n  help COMMAND               help for one command\n",
        "\nExit codes:\n"
        "  0  success\n"
        "  1  runtime failure (database error, hook crashed, ...)\n"
        "  2  usage error or invalid plan\n"
        "  3  refused by a gate: a hook said no, not yet due, lock held, lint error\n"
        "  4  interrupted, safe to resume\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!strstr(r.out, lines[i]))
            fprintf(stderr, "missing: %s", lines[i]);
        assert_non_null(strstr(r.out, lines[i]));
    }
    char *usage = zdm_xstrdup(r.out);
    run_free(&r);
    /* -h, "help" and --help agree */
    expect(zdm("-h", NULL), 0, usage, "");
    expect(zdm("help", NULL), 0, usage, "");
    /* no command at all: the same text, on errs, exit 2 */
    expect(zdm(NULL), 2, "", usage);
    /* --json: the usage on errs too, and stdout says why in JSON */
    r = zdm("--json", NULL);
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, usage);
    assert_true(starts_with(r.out, "{\"event\":\"error\","));
    assert_non_null(strstr(r.out, "\"message\":\"no command given\""));
    run_free(&r);
    free(usage);
}

static void test_help_command(void **state)
{
    (void)state;
    run r = zdm("help", "advance", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_true(starts_with(r.out, "usage: zdm [global options] advance PLAN\n\npending -> expanded"));
    assert_non_null(strstr(r.out, "\nOptions:\n  --dry-run       print every statement it would run; change nothing\n"
                                  "  --no-backup     sqlite: skip the backup taken before contract\n"));
    char *text = zdm_xstrdup(r.out);
    run_free(&r);
    /* COMMAND --help prints the same */
    expect(zdm("advance", "--help", NULL), 0, text, "");
    free(text);

    expect(zdm("help", "check", NULL), 0,
           "usage: zdm [global options] check\n\n"
           "A CI gate: lists the plans in --plans that are not complete and exits 3\n"
           "when there are any.\n",
           "");
    expect(zdm("help", "plan", "show", NULL), 0,
           "usage: zdm [global options] plan show PLAN\n\n"
           "Shows one plan (an id from --plans, or a path to a .toml file): its\n"
           "expand steps, backfill, cutover hooks, contract and hooks.  --json prints\n"
           "the same as a JSON object.  --sql prints the SQL of every phase for one\n"
           "dialect (--dialect pg|sqlite; default: from --db, else pg), including what\n"
           "structured operations (op = ...) turn into.\n\n"
           "Options:\n"
           "  --sql           print the SQL each step runs\n"
           "  --dialect D     pg or sqlite (with --sql; default: from --db, else pg)\n",
           "");
    expect(zdm("help", "nosuch", NULL), 2, "", "zdm: no such command \"nosuch\"\n");
}

static void test_help_plan(void **state)
{
    (void)state;
    run r = zdm("help", "plan", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    const char *v = strstr(r.out, "usage: zdm [global options] plan validate [PATH...]\n");
    const char *s = strstr(r.out, "usage: zdm [global options] plan show PLAN\n");
    assert_true(v == r.out);
    assert_non_null(s);
    assert_true(s > v);
    assert_null(strstr(r.out, "advance"));
    run_free(&r);
}

/* ---- parsing errors ---- */

static void test_unknown_command(void **state)
{
    (void)state;
    expect(zdm("stauts", NULL), 2, "",
           "zdm: unknown command \"stauts\" (did you mean \"status\"?)\n"
           "  -> run \"zdm --help\" for the list of commands\n");
    expect(zdm("adv", NULL), 2, "",
           "zdm: unknown command \"adv\" (did you mean \"advance\"?)\n"
           "  -> run \"zdm --help\" for the list of commands\n");
    expect(zdm("frobnicate", NULL), 2, "",
           "zdm: unknown command \"frobnicate\"\n"
           "  -> run \"zdm --help\" for the list of commands\n");
    expect(zdm("plan", NULL), 2, "",
           "zdm: \"zdm plan\" needs a subcommand\n  -> run \"zdm help plan\"\n");
    expect(zdm("plan", "shwo", NULL), 2, "",
           "zdm: \"zdm plan\" needs a subcommand, not shwo (did you mean \"show\"?)\n  -> run \"zdm help plan\"\n");
    /* Alembic verbs point at zdm's; a subcommand that is a command of its own too. */
    expect(zdm("upgrade", NULL), 2, "",
           "zdm: unknown command \"upgrade\": zdm advance PLAN moves one plan one phase; zdm advance --all "
           "takes every plan as far as it can go (upgrade head)\n"
           "  -> docs/coming-from-alembic.md maps every Alembic command to zdm's; \"zdm --help\" lists them all\n");
    expect(zdm("plan", "new", "x", NULL), 2, "",
           "zdm: \"zdm plan\" needs a subcommand, not new\n  -> \"new\" is a command of its own: zdm new\n");
}

static void test_unknown_option(void **state)
{
    (void)state;
    expect(zdm("status", "--frobnicate", NULL), 2, "",
           "zdm: unknown option \"--frobnicate\"\n  -> run \"zdm --help\" for the list of options\n");
    expect(zdm("-x", "status", NULL), 2, "",
           "zdm: unknown option \"-x\"\n  -> run \"zdm --help\" for the list of options\n");
    /* a prefix of a real option is not that option */
    expect(zdm("--dry", "advance", "x", NULL), 2, "",
           "zdm: unknown option \"--dry\"\n  -> run \"zdm --help\" for the list of options\n");
}

/* Each command's --format line says that command's formats: status's
 * help once showed lint's (github, sarif), which status refuses. */
static void test_help_format_per_command(void **state)
{
    (void)state;
    run r = zdm("status", "--help", NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "\n  --format F      text (default) or prometheus"));
    assert_null(strstr(r.out, "sarif"));
    run_free(&r);
    r = zdm("help", "lint", NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "github (workflow\n                  annotations) or sarif"));
    assert_null(strstr(r.out, "prometheus"));
    run_free(&r);
    /* both still take --format; a command with neither refuses it */
    expect(zdm("status", "--format", "sarif", NULL), 2, "",
           "zdm: --format sarif: status knows text and prometheus (or --json)\n");
    expect(zdm("--format=json", "check", NULL), 2, "",
           "zdm: option --format does not apply to \"check\"\n  -> run \"zdm help check\"\n");
}

static void test_option_not_for_command(void **state)
{
    (void)state;
    expect(zdm("status", "--dry-run", NULL), 2, "",
           "zdm: option --dry-run does not apply to \"status\"\n  -> run \"zdm help status\"\n");
    expect(zdm("--at", "2026-11-22T03:00:00Z", "plan", "validate", NULL), 2, "",
           "zdm: option --at does not apply to \"validate\"\n  -> run \"zdm help plan validate\"\n");
    expect(zdm("--workers=4", "check", NULL), 2, "",
           "zdm: option --workers does not apply to \"check\"\n  -> run \"zdm help check\"\n");
    /* --op is named too (it once left the message empty: "zdm: ") */
    expect(zdm("check", "--op", "sql", NULL), 2, "",
           "zdm: option --op does not apply to \"check\"\n  -> run \"zdm help check\"\n");
}

/* zdm help set names every key zdm set takes (live_keys.c's one list). */
static void test_set_help_names_live_keys(void **state)
{
    (void)state;
    run r = zdm("help", "set", NULL);
    assert_int_equal(r.rc, 0);
    assert_true(zdm_live_count() >= 9);
    for (size_t i = 0; i < zdm_live_count(); i++) {
        const char *name = zdm_live_at(i)->name;
        if (!strstr(r.out, name))
            fail_msg("zdm help set does not name the live key %s", name);
    }
    run_free(&r);
}

static void test_missing_argument(void **state)
{
    (void)state;
    expect(zdm("advance", NULL), 2, "",
           "zdm: usage: zdm advance PLAN\n  -> or zdm advance --all [--to PHASE] for every plan\n");
    expect(zdm("stamp", "0001_baseline", NULL), 2, "", "zdm: usage: zdm stamp PLAN PHASE\n");
    expect(zdm("plan", "show", NULL), 2, "", "zdm: usage: zdm plan show PLAN\n");
    expect(zdm("status", "a", "b", NULL), 2, "", "zdm: usage: zdm status [PLAN]\n");
    expect(zdm("check", "x", NULL), 2, "", "zdm: usage: zdm check\n");
    /* an option without its value */
    expect(zdm("status", "--db", NULL), 2, "", "zdm: option --db needs a value\n");
    expect(zdm("status", "--plans", NULL), 2, "", "zdm: option --plans needs a value\n");
    expect(zdm("advance", "x", "--dialect", NULL), 2, "", "zdm: option --dialect needs a value\n");
}

static void test_too_many_arguments(void **state)
{
    (void)state;
    char *argv[40];
    int argc = 0;
    argv[argc++] = (char *)"zdm";
    argv[argc++] = (char *)"status";
    char names[34][8];
    for (int i = 0; i < 33; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        argv[argc++] = names[i];
    }
    argv[argc] = NULL;
    FILE *out = tmpfile(), *errs = tmpfile();
    assert_int_equal(zdm_cli_main(argc, argv, out, errs), 2);
    char *o = slurp(out), *e = slurp(errs);
    assert_string_equal(o, "");
    assert_string_equal(e, "zdm: too many arguments\n");
    free(o);
    free(e);
}

/* ---- option forms ---- */

static void test_option_forms(void **state)
{
    (void)state;
    const char *want = g_valid;
    expect(zdm("--plans", PLANS, "plan", "validate", NULL), 0, want, "");
    expect(zdm("--plans=" PLANS, "plan", "validate", NULL), 0, want, "");
    /* global options after the command words */
    expect(zdm("plan", "validate", "--plans", PLANS, NULL), 0, want, "");
    expect(zdm("plan", "--plans=" PLANS, "validate", NULL), 0, want, "");

    run r = zdm("plan", "validate", "--json", "--plans", PLANS, NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    json_t *j = parse_json(r.out);
    assert_true(json_is_true(json_object_get(j, "valid")));
    json_t *ids = json_object_get(j, "plans");
    assert_int_equal(json_array_size(ids), g_real.n);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "0001_baseline");
    for (size_t i = 0; i < g_real.n; i++)
        assert_string_equal(json_string_value(json_array_get(ids, i)), g_real.plans[i]->id);
    json_decref(j);
    run_free(&r);
}

static void test_db_option_forms(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    char *url = zdm_xasprintf("sqlite:%s/state.db", t.path);
    char *eq = zdm_xasprintf("--db=%s", url);
    char *want = zdm_xasprintf("zdm state ready in %s (sqlite, layout version 4)\n", url);
    expect(zdm(eq, "init", NULL), 0, want, "");
    expect(zdm("init", "--db", url, NULL), 0, want, "");
    expect(zdm("--json", "init", "--db", url, NULL), 0,
           "{\"ok\": true, \"database\": \"sqlite\", \"state_version\": 4}\n", "");
    /* --db wins over the environment */
    setenv("ZDM_DATABASE_URL", "sqlite:/nonexistent/zdm/x.db", 1);
    expect(zdm("init", "--db", url, NULL), 0, want, "");
    unsetenv("ZDM_DATABASE_URL");
    free(url);
    free(eq);
    free(want);
    tmp_rm(&t);
}

static void test_double_dash(void **state)
{
    (void)state;
    /* after "--", "--json" is a path, not the option */
    expect(zdm("plan", "validate", "--", "--json", NULL), 2, "",
           "--json: cannot read: No such file or directory\n"
           "zdm: 1 problem found in plans; nothing was changed\n");
    expect(zdm("--plans", PLANS, "--", "plan", "validate", NULL), 0, g_valid, "");
}

/* ---- plan validate ---- */

static void test_plan_validate_paths(void **state)
{
    (void)state;
    expect(zdm("plan", "validate", PLANS, NULL), 0, g_valid, "");
    expect(zdm("plan", "validate", PLANS "/0001_baseline.toml", NULL), 0, "1 plan valid: 0001_baseline\n", "");
    /* a plan given alone still needs what it requires */
    expect(zdm("plan", "validate", PLANS "/0002_event_type.toml", NULL), 2, "",
           PLANS "/0002_event_type.toml:4:13: plan \"0002_event_type\" requires \"0001_baseline\", "
           "which is not among the loaded plans\n"
           "zdm: 1 problem found in plans; nothing was changed\n");
}

static void test_plan_validate_broken(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "0001_ok.toml", "[[expand.steps]]\nsql = \"SELECT 1\"\n");
    tmp_write(&t, "0002_bad.toml",
              "requires = [\"0001_ok\"]\n"
              "descripton = \"typo\"\n"
              "[[expand.steps]]\nop = \"drop_column\"\ntable = \"t\"\ncolumn = \"c\"\n");
    tmp_write(&t, "0003_syntax.toml", "[[expand.steps]\n");
    char *want = zdm_xasprintf(
        "%1$s/0002_bad.toml:2:1: unknown key \"descripton\" in the plan (did you mean \"description\"?)\n"
        "%1$s/0002_bad.toml:4:6: expand step 1: operation \"drop_column\" removes structure the running "
        "application may still use; it belongs in [[contract.steps]]\n"
        "%1$s/0003_syntax.toml:1:16: expected ']]' to close the array-of-tables header opened at 1:1, found end of line\n"
        "zdm: 3 problems found in plans; nothing was changed\n",
        t.path);
    expect(zdm("plan", "validate", t.path, NULL), 2, "", want);
    /* --json: the error is JSON on stdout too (the time varies). */
    run r = zdm("--plans", t.path, "plan", "validate", "--json", NULL);
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, want);
    assert_true(starts_with(r.out, "{\"event\":\"error\",\"time\":"));
    assert_non_null(strstr(r.out, "\"exit_code\":2,\"message\":\"3 problems found in plans; nothing was changed\""));
    run_free(&r);
    free(want);
    tmp_rm(&t);
}

/* ---- plan show ---- */

static void test_plan_show_text(void **state)
{
    (void)state;
    char *src;
    size_t len;
    zdm_err e;
    zdm_err_clear(&e);
    assert_int_equal(zdm_read_file(PLANS "/0002_event_type.toml", &src, &len, &e), 0);
    char sum[65];
    zdm_sha256_hex(src, len, sum);
    free(src);
    char *want = zdm_xasprintf(
        "plan 0002_event_type: Add events.event_type (nullable)\n"
        "  file     " PLANS "/0002_event_type.toml (sha256 %.12s)\n"
        "  requires 0001_baseline\n"
        "  DDL      lock_timeout 2.0s, 10 tries, statement_timeout none\n"
        "\n"
        "expand (1 step)\n"
        "  1. sql (lock_timeout 2.0s, 10 tries)\n"
        "     sql: ALTER TABLE events ADD COLUMN event_type varchar(20)\n"
        "     down: ALTER TABLE events DROP COLUMN event_type\n"
        "\n"
        "backfill\n"
        "  (none: the plan passes backfilled at once)\n"
        "\n"
        "cutover\n"
        "  (no cutover hooks: the cutover is a recorded step)\n"
        "\n"
        "contract (0 steps)\n",
        sum);
    expect(zdm("--plans", PLANS, "plan", "show", "0002_event_type", NULL), 0, want, "");
    /* by path: only that file is loaded, its requires need not be there */
    expect(zdm("plan", "show", PLANS "/0002_event_type.toml", NULL), 0, want, "");
    free(want);

    run r = zdm("--plans", PLANS, "plan", "show", "0003_event_type_index", NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "     [pg]\n     sql (no transaction): CREATE INDEX CONCURRENTLY IF NOT EXISTS "
                                  "events_event_type_idx ON events (event_type)\n"));
    assert_non_null(strstr(r.out, "     [sqlite]\n     sql: CREATE INDEX IF NOT EXISTS events_event_type_idx ON "
                                  "events (event_type)\n"));
    run_free(&r);
}

static void test_plan_show_text_full(void **state)
{
    (void)state;
    tmpdir t;
    tmp_make(&t);
    const char *src =
        "[[expand.steps]]\nop = \"add_column\"\nname = \"first name\"\ntable = \"users\"\n"
        "column = \"first\"\ntype = \"text\"\nnullable = true\n"
        "[[expand.steps]]\nsql.pg = \"CREATE INDEX CONCURRENTLY i ON users (first)\"\n"
        "lock_timeout = \"5s\"\nlock_retries = 3\n"
        "[backfill]\ntable = \"users\"\nkey = [\"id\", \"tenant\"]\nwhere = \"first IS NULL\"\n"
        "set.first = \"split_part(name, ' ', 1)\"\n"
        "dual_write = {sources = [\"name\"], reverse.name = \"first\"}\n"
        "[backfill.throttle]\nbatch_size = 250\nmax_rows_per_second = 1000\nsleep_ms = 20\n"
        "max_replication_lag_ms = 5000\npause_query = \"SELECT false\"\n"
        "[contract]\nnot_before = \"cutover + 24h\"\nverify = \"SELECT true\"\n"
        "[[contract.steps]]\nsql = \"\"\"\nALTER TABLE users\n  DROP COLUMN name\"\"\"\n"
        "[hooks]\ntimeout = \"1m\"\ncutover = \"./deploy.sh 'new app'\"\n"
        "after_expand = [[\"echo\", \"a b\"], \"true\"]\n"
        "on_failure = [[\"./page.sh\", \"it's \\\"bad\\\"\", \"\"]]\n";
    tmp_write(&t, "0009_split.toml", src);
    char sum[65];
    zdm_sha256_hex(src, strlen(src), sum);
    char *path = zdm_xasprintf("%s/0009_split.toml", t.path);
    char *want = zdm_xasprintf(
        "plan 0009_split\n"
        "  file     %s (sha256 %.12s)\n"
        "  DDL      lock_timeout 2.0s, 10 tries, statement_timeout none\n"
        "\n"
        "expand (2 steps)\n"
        "  1. first name: add column users.first \xe2\x80\x94 op add_column (lock_timeout 2.0s, 10 tries)\n"
        "     sql: ALTER TABLE \"users\" ADD COLUMN \"first\" text\n"
        "     down: ALTER TABLE \"users\" DROP COLUMN \"first\"\n"
        "  2. sql (lock_timeout 5.0s, 3 tries)\n"
        "     [pg]\n"
        "     sql (no transaction): CREATE INDEX CONCURRENTLY i ON users (first)\n"
        "     down: (none: rollback of this step is refused)\n"
        "     [sqlite]\n"
        "     (no SQL for sqlite: the step cannot run there)\n"
        "\n"
        "backfill\n"
        "  table users, key id, tenant, where first IS NULL\n"
        "  set first = split_part(name, ' ', 1)\n"
        "  dual-write on (sources: name)\n"
        "  reverse name = first\n"
        "    forward: a row whose new values match where is converted when an INSERT leaves the targets NULL, "
        "or an UPDATE of the sources leaves them unchanged\n"
        "    reverse: when a write gives the targets, a row whose new values match where gets its reverse.* "
        "columns derived from them\n"
        "    rows outside where are never written by zdm, whatever the applications do\n"
        "    note: where names the target first: once converted, a row leaves where and later writes to it "
        "are no longer followed; leave where out to follow every write\n"
        "  throttle batch 250 (aim 200 ms, 10..50000), max 1000 rows/s, sleep 20 ms, replica lag < 5000 ms, "
        "probe latency < 1.5x idle, locks held < 100 ms, batches <= 5%% of the time while the application works\n"
        "  pause while: SELECT false\n"
        "\n"
        "cutover\n"
        "  run ./deploy.sh 'new app'\n"
        "\n"
        "contract (1 step, not before cutover + 24h)\n"
        "  verify: SELECT true\n"
        "  1. sql (lock_timeout 2.0s, 10 tries)\n"
        "     sql: ALTER TABLE users\n"
        "            DROP COLUMN name\n"
        "     down: (none: rollback of this step is refused)\n"
        "\n"
        "hooks (timeout 1m0s each)\n"
        "  after_expand     echo 'a b'\n"
        "  after_expand     true\n"
        "  cutover          ./deploy.sh 'new app'\n"
        "  on_failure       ./page.sh 'it'\"'\"'s \"bad\"' ''\n",
        path, sum);
    run r = zdm("plan", "show", path, NULL);
    /* a printed command line reads back as the same argv */
    const char *line = strstr(r.out, "  on_failure       ");
    assert_non_null(line);
    char *cmd = zdm_xstrndup(line + 19, strcspn(line + 19, "\n"));
    zdm_strv argv = {0};
    zdm_err e;
    zdm_err_clear(&e);
    assert_int_equal(zdm_split_command(cmd, &argv, &e), 0);
    assert_int_equal(argv.n, 3);
    assert_string_equal(argv.v[0], "./page.sh");
    assert_string_equal(argv.v[1], "it's \"bad\"");
    assert_string_equal(argv.v[2], "");
    zdm_strv_free(&argv);
    free(cmd);
    expect(r, 0, want, "");
    free(want);
    free(path);
    tmp_rm(&t);
}

static void test_plan_show_json(void **state)
{
    (void)state;
    run r = zdm("--json", "--plans", PLANS, "plan", "show", "0004_employee_email_required", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    json_t *j = parse_json(r.out);
    assert_string_equal(jpath_str(j, "id"), "0004_employee_email_required");
    assert_string_equal(jpath_str(j, "path"), PLANS "/0004_employee_email_required.toml");
    assert_string_equal(jpath_str(j, "description"), "employees.email becomes NOT NULL, the safe way");
    assert_string_equal(jpath_str(j, "requires.0"), "0001_baseline");
    assert_int_equal(strlen(jpath_str(j, "checksum")), 64);
    assert_int_equal(json_integer_value(json_object_get(j, "lock_timeout_ms")), 2000);
    assert_int_equal(json_integer_value(json_object_get(j, "lock_retries")), 10);
    json_t *steps = json_object_get(json_object_get(j, "expand"), "steps");
    assert_int_equal(json_array_size(steps), 2);
    assert_string_equal(jpath_str(j, "expand.steps.0.name"), "check, not yet validated");
    assert_string_equal(jpath_str(j, "expand.steps.1.sql.pg"),
                        "ALTER TABLE employees VALIDATE CONSTRAINT employees_email_not_null");
    assert_string_equal(jpath_str(j, "expand.steps.1.sql.sqlite"), "SELECT 1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(steps, 1), "index")), 2);
    assert_true(json_is_true(json_object_get(json_array_get(steps, 1), "transaction")));
    assert_true(json_is_null(json_object_get(j, "backfill")));
    json_t *ct = json_object_get(j, "contract");
    assert_string_equal(jpath_str(ct, "verify"), "SELECT NOT EXISTS (SELECT 1 FROM employees WHERE email IS NULL)");
    assert_true(json_is_null(json_object_get(ct, "not_before")));
    assert_int_equal(json_array_size(json_object_get(ct, "steps")), 2);
    assert_string_equal(jpath_str(ct, "steps.0.down.pg"), "ALTER TABLE employees ALTER COLUMN email DROP NOT NULL");
    assert_true(json_is_object(json_object_get(j, "hooks")));
    assert_int_equal(json_object_size(json_object_get(j, "hooks")), 0);
    json_decref(j);
    run_free(&r);

    /* a plan with a backfill and hooks */
    tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "0009_split.toml",
              "[[expand.steps]]\nop = \"add_column\"\ntable = \"users\"\ncolumn = \"first\"\ntype = \"text\"\n"
              "[backfill]\ntable = \"users\"\nset.first = \"split_part(name, ' ', 1)\"\n"
              "[backfill.throttle]\nbatch_size = 250\n"
              "[contract]\nnot_before = \"cutover + 24h\"\n"
              "[hooks]\ncutover = \"./deploy.sh 'new app'\"\nafter_expand = [[\"echo\", \"a b\"], \"true\"]\n");
    r = zdm("plan", "show", "--json", "--plans", t.path, "0009_split", NULL);
    assert_int_equal(r.rc, 0);
    j = parse_json(r.out);
    assert_string_equal(jpath_str(j, "expand.steps.0.op"), "add_column");
    assert_string_equal(jpath_str(j, "expand.steps.0.fields.column"), "first");
    json_t *bf = json_object_get(j, "backfill");
    assert_string_equal(jpath_str(bf, "table"), "users");
    assert_string_equal(jpath_str(bf, "set.first"), "split_part(name, ' ', 1)");
    assert_true(json_is_true(json_object_get(json_object_get(bf, "dual_write"), "enabled")));
    json_t *th = json_object_get(bf, "throttle");
    assert_int_equal(json_integer_value(json_object_get(th, "batch_size")), 250);
    assert_int_equal(json_integer_value(json_object_get(th, "max_batch_size")), 50000);
    assert_true(json_is_null(json_object_get(th, "pause_query")));
    assert_string_equal(jpath_str(j, "contract.not_before"), "cutover + 24h");
    json_t *hk = json_object_get(j, "hooks");
    assert_int_equal(json_object_size(hk), 2);
    assert_string_equal(jpath_str(hk, "cutover.0.0"), "./deploy.sh");
    assert_string_equal(jpath_str(hk, "cutover.0.1"), "new app");
    assert_int_equal(json_array_size(json_object_get(hk, "after_expand")), 2);
    assert_string_equal(jpath_str(hk, "after_expand.0.1"), "a b");
    assert_string_equal(jpath_str(hk, "after_expand.1.0"), "true");
    json_decref(j);
    run_free(&r);
    tmp_rm(&t);
}

static void test_plan_show_unknown(void **state)
{
    (void)state;
    char *known = zdm_xasprintf("zdm: no plan \"0002_event\" in " PLANS "\n  -> known plans: %s\n", g_ids);
    expect(zdm("--plans", PLANS, "plan", "show", "0002_event", NULL), 2, "", known);
    free(known);
    tmpdir t;
    tmp_make(&t);
    char *want = zdm_xasprintf("zdm: no plan \"x\" in %s\n  -> the directory holds no *.toml plans; set --plans DIR\n",
                               t.path);
    expect(zdm("--plans", t.path, "plan", "show", "x", NULL), 2, "", want);
    free(want);
    tmp_rm(&t);
}

/* ---- the database URL from the environment ---- */

static void test_database_url_env(void **state)
{
    (void)state;
    const char *no_db = "zdm: no database given\n"
                        "  -> pass --db URL (postgres://..., a conninfo, or sqlite:PATH) or set ZDM_DATABASE_URL\n";
    expect(zdm("--plans", PLANS, "advance", "0001_baseline", NULL), 2, "", no_db);
    setenv("ZDM_DATABASE_URL", "", 1); /* empty is the same as unset */
    expect(zdm("--plans", PLANS, "status", NULL), 2, "", no_db);

    tmpdir t;
    tmp_make(&t);
    char *url = zdm_xasprintf("sqlite:%s/state.db", t.path);
    setenv("ZDM_DATABASE_URL", url, 1);
    /* status never creates a database file (a mistyped path must fail) */
    run r = zdm("--plans", PLANS, "status", NULL);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "no database file at"));
    run_free(&r);
    r = zdm("init", NULL);
    assert_int_equal(r.rc, 0);
    run_free(&r);
    r = zdm("--plans", PLANS, "--json", "status", NULL);
    unsetenv("ZDM_DATABASE_URL");
    if (r.rc != 0)
        fprintf(stderr, "%s", r.err);
    assert_int_equal(r.rc, 0);
    json_t *j = parse_json(r.out);
    json_t *plans = json_object_get(j, "plans");
    assert_int_equal(json_array_size(plans), g_real.n);
    for (size_t i = 0; i < g_real.n; i++) {
        json_t *p = json_array_get(plans, i);
        assert_string_equal(json_string_value(json_object_get(p, "id")), g_real.plans[i]->id);
        assert_string_equal(json_string_value(json_object_get(p, "phase")), "pending");
    }
    json_decref(j);
    run_free(&r);
    /* the state file was created where the variable said */
    char *file = zdm_xasprintf("%s/state.db", t.path);
    assert_int_equal(access(file, F_OK), 0);
    free(file);
    free(url);
    tmp_rm(&t);
}

static int group_setup(void **state)
{
    (void)state;
    const char *paths[1] = {PLANS};
    zdm_diags d = {0};
    int rc = zdm_plan_set_load(paths, 1, &g_real, &d);
    for (size_t i = 0; i < d.msgs.n; i++)
        fprintf(stderr, "%s\n", d.msgs.v[i]);
    zdm_diags_free(&d);
    if (rc != 0 || g_real.n < 5)
        return -1;
    zdm_buf b = {0};
    for (size_t i = 0; i < g_real.n; i++)
        zdm_buf_printf(&b, "%s%s", i ? ", " : "", g_real.plans[i]->id);
    g_ids = zdm_buf_take(&b);
    g_valid = zdm_xasprintf("%zu plans valid: %s\n", g_real.n, g_ids);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    zdm_plan_set_free(&g_real);
    free(g_ids);
    free(g_valid);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_version, setup),
        cmocka_unit_test_setup(test_help, setup),
        cmocka_unit_test_setup(test_help_command, setup),
        cmocka_unit_test_setup(test_help_plan, setup),
        cmocka_unit_test_setup(test_unknown_command, setup),
        cmocka_unit_test_setup(test_unknown_option, setup),
        cmocka_unit_test_setup(test_option_not_for_command, setup),
        cmocka_unit_test_setup(test_help_format_per_command, setup),
        cmocka_unit_test_setup(test_missing_argument, setup),
        cmocka_unit_test_setup(test_too_many_arguments, setup),
        cmocka_unit_test_setup(test_option_forms, setup),
        cmocka_unit_test_setup(test_db_option_forms, setup),
        cmocka_unit_test_setup(test_double_dash, setup),
        cmocka_unit_test_setup(test_plan_validate_paths, setup),
        cmocka_unit_test_setup(test_plan_validate_broken, setup),
        cmocka_unit_test(test_set_help_names_live_keys),
        cmocka_unit_test_setup(test_plan_show_text, setup),
        cmocka_unit_test_setup(test_plan_show_text_full, setup),
        cmocka_unit_test_setup(test_plan_show_json, setup),
        cmocka_unit_test_setup(test_plan_show_unknown, setup),
        cmocka_unit_test_setup(test_database_url_env, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
