/*
 * cli_lint.c -- "zdm lint [PLAN|PATH...]": the linter's findings for every
 * plan in --plans, or the plans, files and directories named.
 *
 * Exit 0 when no error remains (warnings are fine), 3 when one does, 2
 * when a plan is invalid.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "lint.h"
#include "util.h"

/* Plans to lint, each with the set it came from (for the plans before it). */
typedef struct target {
    const zdm_plan *plan;
    size_t set;          /* index in lint_load.sets (which may move while loading) */
} target;

typedef struct lint_load {
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
        if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
            /* One file: the plans it requires need not be beside it. */
            zdm_diags d = {0};
            zdm_plan *p = NULL;
            int rc = zdm_plan_load_file(arg, &p, &d);
            for (size_t i = 0; i < d.msgs.n; i++)
                fprintf(cli->errs, "%s\n", d.msgs.v[i]);
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
    return o;
}

int zdm_cmd_lint(zdm_cli *cli, zdm_err *err)
{
    lint_load L;
    memset(&L, 0, sizeof L);
    zdm_lint_result r = {0};
    int rc = load_targets(cli, &L, err);
    if (rc == 0) {
        for (size_t i = 0; i < L.nt; i++)
            zdm_lint_plan(L.t[i].plan, &L.sets[L.t[i].set], NULL, &r);
        rc = zdm_lint_allow_list(&r, cli->allow, err);
    }
    if (rc == 0) {
        size_t nerr = zdm_lint_count(&r, ZDM_LINT_ERROR, -1);
        size_t nwarn = zdm_lint_count(&r, ZDM_LINT_WARNING, -1);
        size_t nallowed = 0;
        for (size_t i = 0; i < r.n; i++)
            nallowed += r.v[i].allowed != 0;
        if (cli->json) {
            json_t *o = json_object(), *a = json_array();
            for (size_t i = 0; i < r.n; i++)
                json_array_append_new(a, finding_json(&r.v[i]));
            json_object_set_new(o, "findings", a);
            json_object_set_new(o, "errors", json_integer((json_int_t)nerr));
            json_object_set_new(o, "warnings", json_integer((json_int_t)nwarn));
            json_object_set_new(o, "allowed", json_integer((json_int_t)nallowed));
            json_object_set_new(o, "plans", json_integer((json_int_t)L.nt));
            json_dumpf(o, cli->out, JSON_INDENT(2));
            fputc('\n', cli->out);
            json_decref(o);
        } else {
            for (size_t i = 0; i < r.n; i++) {
                const zdm_lint_finding *f = &r.v[i];
                if (cli->verbosity < 0 && (f->severity != ZDM_LINT_ERROR || f->allowed))
                    continue;
                zdm_buf b = {0};
                zdm_lint_format(f, &b);
                fprintf(cli->out, "%s\n", b.data);
                zdm_buf_free(&b);
            }
            if (cli->verbosity >= 0)
                fprintf(cli->out, "%zu plan%s linted: %zu error%s, %zu warning%s, %zu allowed\n", L.nt,
                        L.nt == 1 ? "" : "s", nerr, nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s",
                        nallowed);
        }
        if (nerr) {
            zdm_err_set(err, ZDM_EXIT_REFUSED, "zdm lint found %zu error%s", nerr, nerr == 1 ? "" : "s");
            zdm_err_detail(err, "make the SQL safe, or when it is safe here, allow the rule in the plan: "
                                "allow_unsafe = [{rule = \"RULE\", reason = \"...\"}]");
            rc = ZDM_EXIT_REFUSED;
        }
    }
    zdm_lint_result_free(&r);
    for (size_t i = 0; i < L.nsets; i++)
        zdm_plan_set_free(&L.sets[i]);
    free(L.sets);
    free(L.t);
    return rc;
}
