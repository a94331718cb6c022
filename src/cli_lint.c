/*
 * cli_lint.c -- "zdm lint [PLAN|PATH|FILE.sql|-...]": the linter's
 * findings for every plan in --plans, or the plans, files and directories
 * named, and plain SQL files or stdin; printed as text, JSON, GitHub
 * workflow annotations or SARIF.
 *
 * Exit 0 when no error remains (warnings are fine), 3 when one does, 2
 * when a plan is invalid or a SQL file holds a statement over the bounds.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "hooks.h"
#include "lint.h"
#include "util.h"

/* Plans to lint, each with the set it came from (for the plans before it). */
typedef struct target {
    const zdm_plan *plan;
    size_t set;          /* index in lint_load.sets (which may move while loading) */
} target;

/* A plain SQL file (or stdin) to lint. */
typedef struct sqlfile {
    char *name;          /* as given; "<stdin>" for - */
    char *text;
} sqlfile;

typedef struct lint_load {
    sqlfile *files;
    size_t nfiles;
    zdm_plan_set *sets;  /* every set loaded, freed at the end */
    size_t nsets;
    int have_dflt;       /* --plans is loaded (once, when a PLAN id is named) */
    target *t;
    size_t nt;
} lint_load;

static zdm_plan_set *new_set(lint_load *L)
{
    L->sets = zdm_xrealloc(L->sets, (L->nsets + 1) * sizeof *L->sets);
    zdm_plan_set *s = &L->sets[L->nsets++];
    memset(s, 0, sizeof *s);
    return s;
}

static void add_target(lint_load *L, const zdm_plan *p, size_t set_index)
{
    L->t = zdm_xrealloc(L->t, (L->nt + 1) * sizeof *L->t);
    L->t[L->nt].plan = p;
    L->t[L->nt].set = set_index;
    L->nt++;
}

static int is_sql_file(const char *arg)
{
    size_t n = strlen(arg);
    return strcmp(arg, "-") == 0 || !(n >= 5 && strcmp(arg + n - 5, ".toml") == 0);
}

static int read_sql(zdm_cli *cli, lint_load *L, const char *arg, zdm_err *err)
{
    char *text = NULL;
    size_t len = 0;
    if (strcmp(arg, "-") == 0) {
        zdm_buf b = {0};
        char chunk[65536];
        size_t n;
        zdm_buf_puts(&b, "");
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            zdm_buf_putn(&b, chunk, n);
        if (ferror(stdin)) {
            zdm_buf_free(&b);
            return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot read the SQL from stdin");
        }
        len = b.len;
        text = zdm_buf_take(&b);
    } else {
        int rc = zdm_read_file(arg, &text, &len, err);
        if (rc != 0)
            return rc;
    }
    (void)cli;
    if (strlen(text) != len) {
        free(text);
        return zdm_err_set(err, ZDM_EXIT_USAGE, "%s: the SQL contains a NUL byte", arg);
    }
    L->files = zdm_xrealloc(L->files, (L->nfiles + 1) * sizeof *L->files);
    L->files[L->nfiles].name = zdm_xstrdup(strcmp(arg, "-") == 0 ? "<stdin>" : arg);
    L->files[L->nfiles].text = text;
    L->nfiles++;
    return 0;
}

static int load_targets(zdm_cli *cli, lint_load *L, zdm_err *err)
{
    if (cli->npos == 0) {
        zdm_plan_set *s = new_set(L);
        int rc = zdm_cli_load_plans(cli, NULL, 0, s, err);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < s->n; i++)
            add_target(L, s->plans[i], L->nsets - 1);
        return 0;
    }
    int bad = 0;
    size_t dflt_index = 0;
    for (int a = 0; a < cli->npos; a++) {
        const char *arg = cli->pos[a];
        struct stat st;
        size_t al = strlen(arg);
        if (strcmp(arg, "-") != 0 && stat(arg, &st) != 0 &&
            (strchr(arg, '/') || (al > 4 && (!strcmp(arg + al - 4, ".sql") || !strcmp(arg + al - 5, ".toml")))))
            /* a path, not a plan id: "no plan in plans" misled */
            return zdm_err_set(err, ZDM_EXIT_USAGE, "%s: no such file", arg);
        if (strcmp(arg, "-") == 0 || (stat(arg, &st) == 0 && S_ISREG(st.st_mode) && is_sql_file(arg))) {
            int rc = read_sql(cli, L, arg, err);
            if (rc != 0)
                return rc;
        } else if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
            /* One file: the plans it requires need not be beside it. */
            zdm_diags d = {0};
            zdm_plan *p = NULL;
            int rc = zdm_plan_load_file(arg, &p, &d);
            zdm_cli_problems(cli, &d);
            zdm_diags_free(&d);
            if (rc != 0) {
                if (rc != ZDM_EXIT_USAGE)
                    return zdm_err_set(err, rc, "cannot read plan %s", arg);
                bad++;
                continue;
            }
            zdm_plan_set *s = new_set(L);
            s->plans = zdm_xcalloc(2, sizeof *s->plans);
            s->plans[0] = p;
            s->n = 1;
            add_target(L, p, L->nsets - 1);
        } else if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
            zdm_plan_set *s = new_set(L);
            const char *one[1] = {arg};
            zdm_err e;
            zdm_err_clear(&e);
            if (zdm_cli_load_plans(cli, one, 1, s, &e) != 0) {
                bad++;
                continue;
            }
            for (size_t i = 0; i < s->n; i++)
                add_target(L, s->plans[i], L->nsets - 1);
        } else {
            if (!L->have_dflt) {
                zdm_plan_set *s = new_set(L);
                int rc = zdm_cli_load_plans(cli, NULL, 0, s, err);
                if (rc != 0)
                    return rc;
                dflt_index = L->nsets - 1;
                L->have_dflt = 1;
            }
            zdm_plan_set *s = &L->sets[dflt_index];
            zdm_plan *p = zdm_cli_find_plan(cli, s, arg, err);
            if (!p)
                return err->code;
            add_target(L, p, dflt_index);
        }
    }
    if (bad)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "%d of the plans named %s invalid; nothing was linted",
                           bad, bad == 1 ? "is" : "are");
    return 0;
}

/* zdm.toml's [contract] not_before (beside each set's directory, as
 * advance reads it) fills in the plans' soak time, for missing-not-before. */
static int apply_project(zdm_cli *cli, lint_load *L, zdm_err *err)
{
    for (size_t i = 0; i < L->nsets; i++) {
        zdm_plan_set *s = &L->sets[i];
        if (s->n == 0)
            continue;
        zdm_project proj;
        zdm_diags d = {0};
        int rc = zdm_project_load(s->plans[0]->dir, &proj, &d);
        for (size_t k = 0; k < d.msgs.n; k++)
            fprintf(cli->errs, "%s\n", d.msgs.v[k]);
        zdm_diags_free(&d);
        if (rc != 0)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "the project file zdm.toml is invalid; nothing was linted");
        zdm_project_apply_defaults(&proj, s);
        zdm_project_free(&proj);
    }
    return 0;
}

static json_t *finding_json(const zdm_lint_finding *f)
{
    json_t *o = json_object();
    json_object_set_new(o, "plan", f->plan ? json_string(f->plan) : json_null());
    json_object_set_new(o, "file", f->file ? json_string(f->file) : json_null());
    json_object_set_new(o, "line", json_integer(f->line));
    json_object_set_new(o, "step", f->step ? json_integer(f->step) : json_null());
    json_object_set_new(o, "phase", json_string(f->phase == ZDM_PHASE_EXPAND ? "expand" : "contract"));
    json_object_set_new(o, "rule", json_string(f->rule));
    json_object_set_new(o, "severity", json_string(zdm_lint_severity_name(f->severity)));
    json_object_set_new(o, "message", json_string(f->message));
    json_object_set_new(o, "hint", f->hint ? json_string(f->hint) : json_null());
    json_object_set_new(o, "allowed", json_boolean(f->allowed));
    if (f->allowed)
        json_object_set_new(o, "allowed_by", json_string(f->allowed_by ? f->allowed_by : ""));
    json_object_set_new(o, "column", f->col > 0 ? json_integer(f->col) : json_null());
    json_object_set_new(o, "dialect", json_string(f->dialect == ZDM_LINT_DIALECT_SQLITE ? "sqlite" : "pg"));
    return o;
}

/* GitHub workflow commands: % CR LF escaped in the message, and , : too
 * in properties. */
static void gh_escape(FILE *out, const char *s, int property)
{
    for (; *s; s++) {
        if (*s == '%')
            fputs("%25", out);
        else if (*s == '\r')
            fputs("%0D", out);
        else if (*s == '\n')
            fputs("%0A", out);
        else if (property && *s == ':')
            fputs("%3A", out);
        else if (property && *s == ',')
            fputs("%2C", out);
        else
            fputc(*s, out);
    }
}

static void print_github(FILE *out, const zdm_lint_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const zdm_lint_finding *f = &r->v[i];
        if (f->allowed)
            continue;
        fprintf(out, "::%s file=", f->severity == ZDM_LINT_ERROR     ? "error"
                                   : f->severity == ZDM_LINT_WARNING ? "warning"
                                                                     : "notice");
        gh_escape(out, f->file ? f->file : "<sql>", 1);
        if (f->line > 0)
            fprintf(out, ",line=%d", f->line);
        if (f->col > 0)
            fprintf(out, ",col=%d", f->col);
        fputs(",title=", out);
        zdm_buf t = {0};
        zdm_buf_printf(&t, "zdm lint %s", f->rule);
        gh_escape(out, t.data, 1);
        zdm_buf_free(&t);
        fputs("::", out);
        zdm_buf m = {0};
        zdm_buf_printf(&m, "%s", f->message);
        if (f->hint)
            zdm_buf_printf(&m, " -- %s", f->hint);
        gh_escape(out, m.data, 0);
        zdm_buf_free(&m);
        fputc('\n', out);
    }
}

static const char *sarif_level(zdm_lint_severity s)
{
    return s == ZDM_LINT_ERROR ? "error" : s == ZDM_LINT_WARNING ? "warning" : "note";
}

static void print_sarif(FILE *out, const zdm_lint_result *r)
{
    json_t *rules = json_array();
    size_t n;
    const zdm_lint_rule *all = zdm_lint_rules(&n);
    for (size_t i = 0; i < n; i++) {
        json_t *ru = json_pack("{s:s, s:{s:s}, s:{s:s}}", "id", all[i].id, "shortDescription", "text",
                               all[i].summary, "defaultConfiguration", "level",
                               sarif_level(all[i].severity));
        json_array_append_new(rules, ru);
    }
    json_t *results = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const zdm_lint_finding *f = &r->v[i];
        size_t idx = 0;
        for (size_t k = 0; k < n; k++)
            if (strcmp(all[k].id, f->rule) == 0)
                idx = k;
        zdm_buf m = {0};
        zdm_buf_printf(&m, "%s", f->message);
        if (f->hint)
            zdm_buf_printf(&m, " -- %s", f->hint);
        json_t *region = json_object();
        if (f->line > 0)
            json_object_set_new(region, "startLine", json_integer(f->line));
        if (f->col > 0)
            json_object_set_new(region, "startColumn", json_integer(f->col));
        json_t *res = json_pack("{s:s, s:s, s:{s:s}, s:[{s:{s:{s:s}, s:o}}]}", "ruleId", f->rule, "level",
                                sarif_level(f->severity), "message", "text", m.data, "locations",
                                "physicalLocation", "artifactLocation", "uri", f->file ? f->file : "<sql>",
                                "region", region);
        if (idx < n && strcmp(all[idx].id, f->rule) == 0) /* not for plan-invalid */
            json_object_set_new(res, "ruleIndex", json_integer((json_int_t)idx));
        zdm_buf_free(&m);
        if (f->allowed)
            json_object_set_new(res, "suppressions",
                                json_pack("[{s:s, s:s}]", "kind", "inSource", "justification",
                                          f->allowed_by ? f->allowed_by : ""));
        json_array_append_new(results, res);
    }
    json_t *doc = json_pack("{s:s, s:s, s:[{s:{s:{s:s, s:s, s:o}}, s:o}]}", "$schema",
                            "https://json.schemastore.org/sarif-2.1.0.json", "version", "2.1.0", "runs", "tool",
                            "driver", "name", "zdm lint", "version", ZDM_VERSION, "rules", rules, "results",
                            results);
    json_dumpf(doc, out, JSON_INDENT(2));
    fputc('\n', out);
    json_decref(doc);
}

/* --db on the command line: the database's sizes, catalog and current
 * transactions adjust the findings (read-only; a SQLite file must exist). */
static int with_db(zdm_cli *cli, lint_load *L, zdm_lint_result *r, zdm_err *err)
{
    /* The plans' lock_timeout (the smallest): a transaction older than that
     * holding a lock makes the step wait; plain SQL: zdm's default. */
    int64_t lt = 0;
    for (size_t i = 0; i < L->nt; i++)
        if (L->t[i].plan->lock_timeout_ms > 0 && (lt == 0 || L->t[i].plan->lock_timeout_ms < lt))
            lt = L->t[i].plan->lock_timeout_ms;
    return zdm_lint_with_url(r, cli->db_url, lt ? lt : 2000, err);
}

enum { FMT_TEXT, FMT_JSON, FMT_GITHUB, FMT_SARIF };

/* --format and --dialect (else the kind of --db, not connected). */
static int parse_options(zdm_cli *cli, int *fmt, int *mode, zdm_err *err)
{
    *fmt = cli->json ? FMT_JSON : FMT_TEXT;
    if (cli->format) {
        if (strcmp(cli->format, "json") == 0)
            *fmt = FMT_JSON;
        else if (strcmp(cli->format, "github") == 0)
            *fmt = FMT_GITHUB;
        else if (strcmp(cli->format, "sarif") == 0)
            *fmt = FMT_SARIF;
        else if (strcmp(cli->format, "text") != 0)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "--format %s: not text, json, github or sarif", cli->format);
    }
    *mode = 0;
    if (cli->dialect) {
        if (strcmp(cli->dialect, "pg") == 0 || strcmp(cli->dialect, "postgresql") == 0)
            *mode = ZDM_LINT_DIALECT_PG;
        else if (strcmp(cli->dialect, "sqlite") == 0)
            *mode = ZDM_LINT_DIALECT_SQLITE;
        else
            return zdm_err_set(err, ZDM_EXIT_USAGE, "--dialect %s: not pg or sqlite", cli->dialect);
    } else if (cli->db_url) {
        *mode = zdm_lint_dialect_of_url(cli->db_url);
    }
    return 0;
}

/* Lints every target and SQL file into r, then --db and --allow. */
static int lint_all(zdm_cli *cli, lint_load *L, int mode, zdm_lint_result *r, zdm_err *err)
{
    /* A statement over the bounds is refused like an invalid plan (exit 2). */
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < L->nfiles; i++) {
        int line, col;
        zdm_buf why = {0};
        if (zdm_lint_sql_limits(L->files[i].text, mode, &line, &col, &why) != 0) {
            fprintf(cli->errs, "%s:%d:%d: %s\n", L->files[i].name, line, col, why.data);
            rc = zdm_err_set(err, ZDM_EXIT_USAGE, "%s holds a statement over zdm's limits; nothing was linted",
                             L->files[i].name);
        }
        zdm_buf_free(&why);
    }
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < L->nt; i++)
        zdm_lint_plan_dialect(L->t[i].plan, &L->sets[L->t[i].set], NULL, mode, r);
    /* after the SQL's findings: those come first in every format */
    for (size_t i = 0; i < L->nt; i++)
        zdm_lint_plan_soak(L->t[i].plan, mode, r);
    for (size_t i = 0; i < L->nfiles; i++) {
        zdm_lint_ctx *ctx = zdm_lint_ctx_new();
        size_t from = r->n;
        zdm_lint_sql_file(ctx, L->files[i].text, mode ? mode : ZDM_LINT_DIALECT_PG, r);
        for (size_t k = from; k < r->n; k++)
            r->v[k].file = L->files[i].name;
        for (size_t k = 0; k < r->nddl; k++)
            if (!r->ddl[k].file)
                r->ddl[k].file = L->files[i].name;
        zdm_lint_ctx_free(ctx);
    }
    if (cli->db_given)
        rc = with_db(cli, L, r, err);
    if (rc == 0)
        rc = zdm_lint_allow_list(r, cli->allow, err);
    return rc;
}

static void print_json(FILE *out, const lint_load *L, const zdm_lint_result *r, size_t nerr, size_t nwarn,
                       size_t nallowed)
{
    json_t *o = json_object(), *a = json_array();
    for (size_t i = 0; i < r->n; i++)
        json_array_append_new(a, finding_json(&r->v[i]));
    json_object_set_new(o, "findings", a);
    json_object_set_new(o, "errors", json_integer((json_int_t)nerr));
    json_object_set_new(o, "warnings", json_integer((json_int_t)nwarn));
    json_object_set_new(o, "allowed", json_integer((json_int_t)nallowed));
    json_object_set_new(o, "plans", json_integer((json_int_t)L->nt));
    json_object_set_new(o, "files", json_integer((json_int_t)L->nfiles));
    json_dumpf(o, out, JSON_INDENT(2));
    fputc('\n', out);
    json_decref(o);
}

static void print_text(zdm_cli *cli, const lint_load *L, const zdm_lint_result *r, size_t nerr, size_t nwarn,
                       size_t nallowed)
{
    for (size_t i = 0; i < r->n; i++) {
        const zdm_lint_finding *f = &r->v[i];
        if (cli->verbosity < 0 && (f->severity != ZDM_LINT_ERROR || f->allowed))
            continue;
        zdm_buf b = {0};
        zdm_lint_format(f, &b);
        fprintf(cli->out, "%s\n", b.data);
        zdm_buf_free(&b);
    }
    if (cli->verbosity >= 0 && L->nfiles == 0)
        fprintf(cli->out, "%zu plan%s linted: %zu error%s, %zu warning%s, %zu allowed\n", L->nt,
                L->nt == 1 ? "" : "s", nerr, nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s", nallowed);
    else if (cli->verbosity >= 0)
        fprintf(cli->out, "%zu plan%s and %zu SQL file%s linted: %zu error%s, %zu warning%s, %zu allowed\n",
                L->nt, L->nt == 1 ? "" : "s", L->nfiles, L->nfiles == 1 ? "" : "s", nerr,
                nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s", nallowed);
}

/* Prints the findings in the format asked; ZDM_EXIT_REFUSED when an error
 * not allowed remains. */
static int report(zdm_cli *cli, const lint_load *L, const zdm_lint_result *r, int fmt, zdm_err *err)
{
    size_t nerr = zdm_lint_count(r, ZDM_LINT_ERROR, -1);
    size_t nwarn = zdm_lint_count(r, ZDM_LINT_WARNING, -1);
    size_t nallowed = 0;
    for (size_t i = 0; i < r->n; i++)
        nallowed += r->v[i].allowed != 0;
    if (fmt == FMT_GITHUB)
        print_github(cli->out, r);
    else if (fmt == FMT_SARIF)
        print_sarif(cli->out, r);
    else if (fmt == FMT_JSON)
        print_json(cli->out, L, r, nerr, nwarn, nallowed);
    else
        print_text(cli, L, r, nerr, nwarn, nallowed);
    if (!nerr)
        return 0;
    zdm_err_set(err, ZDM_EXIT_REFUSED, "zdm lint found %zu error%s", nerr, nerr == 1 ? "" : "s");
    zdm_err_detail(err, "make the SQL safe, or when it is safe here, allow the rule: in the plan "
                        "allow_unsafe = [{rule = \"RULE\", reason = \"...\"}], or in the SQL a "
                        "comment \"-- zdm:allow RULE reason\" on or above the statement");
    return ZDM_EXIT_REFUSED;
}

static void lint_load_free(lint_load *L)
{
    for (size_t i = 0; i < L->nsets; i++)
        zdm_plan_set_free(&L->sets[i]);
    for (size_t i = 0; i < L->nfiles; i++) {
        free(L->files[i].name);
        free(L->files[i].text);
    }
    free(L->files);
    free(L->sets);
    free(L->t);
}

/* Plan files that do not load, as findings of the formats CI reads (rule
 * plan-invalid): a SARIF file was left empty (its upload failed instead
 * of showing the error) and GitHub got no annotation. */
static void report_problems(zdm_cli *cli, int fmt)
{
    if ((fmt != FMT_SARIF && fmt != FMT_GITHUB) || !cli->problems.n)
        return;
    zdm_lint_result r = {0};
    zdm_strv files = {0};
    r.v = zdm_xcalloc(cli->problems.n, sizeof *r.v);
    for (size_t i = 0; i < cli->problems.n; i++) {
        zdm_lint_finding *f = &r.v[r.n++];
        char *file = NULL;
        const char *msg = cli->problems.v[i];
        f->rule = "plan-invalid";
        f->severity = ZDM_LINT_ERROR;
        if (zdm_cli_problem_split(cli->problems.v[i], &file, &f->line, &f->col, &msg)) {
            zdm_strv_push_owned(&files, file);
            f->file = file;
        }
        f->message = zdm_xstrdup(msg);
    }
    if (fmt == FMT_SARIF)
        print_sarif(cli->out, &r);
    else
        print_github(cli->out, &r);
    zdm_lint_result_free(&r);
    zdm_strv_free(&files);
}

int zdm_cmd_lint(zdm_cli *cli, zdm_err *err)
{
    int fmt, mode;
    int rc = parse_options(cli, &fmt, &mode, err);
    if (rc != 0)
        return rc;
    lint_load L;
    memset(&L, 0, sizeof L);
    zdm_lint_result r = {0};
    rc = load_targets(cli, &L, err);
    if (rc == ZDM_EXIT_USAGE)
        report_problems(cli, fmt);
    if (rc == 0)
        rc = apply_project(cli, &L, err);
    if (rc == 0)
        rc = lint_all(cli, &L, mode, &r, err);
    if (rc == 0)
        rc = report(cli, &L, &r, fmt, err);
    zdm_lint_result_free(&r);
    lint_load_free(&L);
    return rc;
}
