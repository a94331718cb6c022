/*
 * cli_graph.c -- commands that look at the plans as a graph: `zdm plan
 * graph` (the requires graph, each plan's phase, the heads) and `zdm
 * advance --all` (every plan, in requires order, as far as a phase).
 *
 * Owns: the heads of a plan set (plans no other plan requires; what `zdm
 * new` makes a new plan require) and the walk of advance --all: which
 * plan moves next, when a plan stops (a gate, a required plan not
 * complete), and the one summary at the end.  Each single step is
 * zdm_life_advance's: this file adds no gate of its own beyond "a required
 * plan did not reach complete", which is the requires gate read ahead of
 * time so a successful run does not write refusals into history.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_graph.h"
#include "lifecycle.h"
#include "log.h"
#include "util.h"

int zdm_plan_is_head(const zdm_plan_set *set, const zdm_plan *p)
{
    for (size_t i = 0; i < set->n; i++)
        for (size_t k = 0; k < set->plans[i]->requires.n; k++)
            if (strcmp(set->plans[i]->requires.v[k], p->id) == 0)
                return 0;
    return 1;
}

void zdm_plan_heads(const zdm_plan_set *set, zdm_strv *out)
{
    for (size_t i = 0; i < set->n; i++)
        if (zdm_plan_is_head(set, set->plans[i]))
            zdm_strv_push(out, set->plans[i]->id);
}

/* Phases of every plan, read once (all pending without a database or
 * without zdm's tables). */
static int read_phases(zdm_db *db, const zdm_plan_set *set, zdm_phase *ph, zdm_err *err)
{
    int have = zdm_life_has_state(db);
    for (size_t i = 0; i < set->n; i++) {
        ph[i] = ZDM_PENDING;
        if (!have)
            continue;
        zdm_plan_state st;
        int rc = zdm_life_plan_state(db, set->plans[i]->id, &st, err);
        if (rc != 0)
            return rc;
        if (st.known)
            ph[i] = st.phase;
    }
    return 0;
}

static void dot_quote(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int zdm_cmd_plan_graph(zdm_cli *cli, zdm_err *err)
{
    zdm_plan_set set = {0};
    int rc = zdm_cli_load_plans(cli, NULL, 0, &set, err);
    if (rc != 0)
        return rc;
    zdm_db *db = NULL;
    /* Phases only when a database is given: the graph itself is the files'. */
    if (cli->db_url) {
        /* Reads only: never creates a file; a missing one shows every
         * plan pending, and says so. */
        /* a layout it cannot read: exit 5, not "pending" */
        rc = zdm_life_open(cli->db_url, ZDM_LIFE_OPEN_MISSING_EMPTY | ZDM_LIFE_OPEN_CHECK, cli->errs,
                           "every plan is shown pending; no file is created", &db, err);
    }
    zdm_phase *ph = zdm_xcalloc(set.n ? set.n : 1, sizeof *ph);
    if (rc == 0)
        rc = read_phases(db, &set, ph, err);
    if (rc == 0 && cli->json) {
        json_t *o = json_object(), *arr = json_array(), *heads = json_array();
        for (size_t i = 0; i < set.n; i++) {
            zdm_plan *p = set.plans[i];
            json_t *po = json_object(), *req = json_array();
            for (size_t k = 0; k < p->requires.n; k++)
                json_array_append_new(req, json_string(p->requires.v[k]));
            int head = zdm_plan_is_head(&set, p);
            json_object_set_new(po, "id", json_string(p->id));
            json_object_set_new(po, "phase", db ? json_string(zdm_phase_name(ph[i])) : json_null());
            json_object_set_new(po, "requires", req);
            json_object_set_new(po, "head", json_boolean(head));
            json_object_set_new(po, "file", json_string(p->path));
            json_array_append_new(arr, po);
            if (head)
                json_array_append_new(heads, json_string(p->id));
        }
        json_object_set_new(o, "plans", arr);
        json_object_set_new(o, "heads", heads);
        json_dumpf(o, cli->out, JSON_INDENT(2));
        fputc('\n', cli->out);
        json_decref(o);
    } else if (rc == 0 && cli->dot) {
        fprintf(cli->out, "digraph zdm {\n  rankdir=LR;\n  node [shape=box];\n");
        for (size_t i = 0; i < set.n; i++) {
            zdm_plan *p = set.plans[i];
            char label[512];
            snprintf(label, sizeof label, "%s%s%s", p->id, db ? "\n" : "", db ? zdm_phase_name(ph[i]) : "");
            fputs("  ", cli->out);
            dot_quote(cli->out, p->id);
            fputs(" [label=", cli->out);
            dot_quote(cli->out, label);
            if (zdm_plan_is_head(&set, p))
                fputs(", peripheries=2", cli->out);
            if (db && ph[i] == ZDM_COMPLETE)
                fputs(", style=filled, fillcolor=\"#dff0d8\"", cli->out);
            fputs("];\n", cli->out);
            /* An edge points from a plan to the plans it requires. */
            for (size_t k = 0; k < p->requires.n; k++) {
                fputs("  ", cli->out);
                dot_quote(cli->out, p->id);
                fputs(" -> ", cli->out);
                dot_quote(cli->out, p->requires.v[k]);
                fputs(";\n", cli->out);
            }
        }
        fprintf(cli->out, "}\n");
    } else if (rc == 0) {
        if (set.n == 0)
            fprintf(cli->out, "no plans in %s\n", cli->plans_dir);
        for (size_t i = 0; i < set.n; i++) {
            zdm_plan *p = set.plans[i];
            zdm_buf req = {0};
            for (size_t k = 0; k < p->requires.n; k++)
                zdm_buf_printf(&req, "%s%s", k ? ", " : "", p->requires.v[k]);
            fprintf(cli->out, "%s %-32s %-12s%s%s\n", zdm_plan_is_head(&set, p) ? "*" : " ", p->id,
                    db ? zdm_phase_name(ph[i]) : "", req.len ? " requires " : "", req.len ? req.data : "");
            zdm_buf_free(&req);
        }
        if (set.n)
            fprintf(cli->out, "(* head: no plan requires it; zdm new requires the heads)\n");
    }
    free(ph);
    zdm_life_close(db);
    zdm_plan_set_free(&set);
    return rc;
}

/* ---- advance --all ---- */

/* Where a plan ended up in this run. */
typedef struct walk {
    zdm_phase from, now;
    int code;        /* 0 reached; ZDM_EXIT_REFUSED stopped at a gate; else failed */
    char why[ZDM_ERR_MSG + ZDM_ERR_DETAIL + 8];
} walk;

static int phase_rank(zdm_phase p)
{
    return p == ZDM_ROLLED_BACK ? -1 : (int)p;
}

static void summary(zdm_cli *cli, const zdm_plan_set *set, const walk *w, size_t upto, zdm_phase target,
                    int rc)
{
    size_t reached = 0, stopped = 0;
    for (size_t i = 0; i < upto; i++)
        w[i].code == 0 ? reached++ : stopped++;
    if (cli->json) {
        json_t *o = json_object(), *arr = json_array();
        for (size_t i = 0; i < upto; i++) {
            json_t *po = json_object();
            json_object_set_new(po, "id", json_string(set->plans[i]->id));
            json_object_set_new(po, "from", json_string(zdm_phase_name(w[i].from)));
            json_object_set_new(po, "phase", json_string(zdm_phase_name(w[i].now)));
            json_object_set_new(po, "reached", json_boolean(w[i].code == 0));
            json_object_set_new(po, "exit_code", json_integer(w[i].code));
            json_object_set_new(po, "stopped", w[i].code ? json_string(w[i].why) : json_null());
            json_array_append_new(arr, po);
        }
        json_object_set_new(o, "event", json_string("summary"));
        json_object_set_new(o, "to", json_string(zdm_phase_name(target)));
        json_object_set_new(o, "ok", json_boolean(rc == 0));
        json_object_set_new(o, "exit_code", json_integer(rc));
        json_object_set_new(o, "plans", arr);
        json_dumpf(o, cli->out, JSON_COMPACT);
        fputc('\n', cli->out);
        json_decref(o);
        return;
    }
    fprintf(cli->out, "== advance --all --to %s: %zu of %zu plan%s reached %s\n", zdm_phase_name(target),
            reached, set->n, set->n == 1 ? "" : "s", zdm_phase_name(target));
    for (size_t i = 0; i < upto; i++) {
        char moved[64];
        if (w[i].from == w[i].now)
            snprintf(moved, sizeof moved, "%s", zdm_phase_name(w[i].now));
        else
            snprintf(moved, sizeof moved, "%s -> %s", zdm_phase_name(w[i].from), zdm_phase_name(w[i].now));
        fprintf(cli->out, "  %-32s %-26s %s%s\n", set->plans[i]->id, moved,
                w[i].code == 0 ? "ok" : w[i].code == ZDM_EXIT_REFUSED ? "stopped: " : "FAILED: ",
                w[i].code ? w[i].why : "");
    }
    if (upto < set->n)
        fprintf(cli->out, "  (%zu later plan%s not tried after the failure)\n", set->n - upto,
                set->n - upto == 1 ? "" : "s");
}

/* --to PHASE (default complete), and the options --all does not take. */
static int advance_all_target(const zdm_cli *cli, zdm_phase *target, zdm_err *err)
{
    if (!cli->all)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--to goes with --all: zdm advance --all --to PHASE");
    if (cli->npos)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "advance --all takes no plan name (it advances every plan)");
    if (cli->hooks_only)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--hooks-only applies to one plan: zdm advance PLAN --hooks-only");
    *target = ZDM_COMPLETE;
    if (cli->to) {
        int t = zdm_phase_parse(cli->to);
        if (t < 0 || t == ZDM_PENDING || t == ZDM_ROLLED_BACK) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "--to %s: not a phase advance can reach", cli->to);
            zdm_err_detail(err, "phases: expanded, backfilled, cut_over, complete");
            return ZDM_EXIT_USAGE;
        }
        *target = (zdm_phase)t;
    }
    if (!cli->db_url) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "no database given");
        zdm_err_detail(err, "pass --db URL (postgres://..., a conninfo, or sqlite:PATH) or set ZDM_DATABASE_URL");
        return ZDM_EXIT_USAGE;
    }
    return 0;
}

/* The requires gate, read ahead: a pending plan waits for what it
 * requires (w[0..i) are the plans before it). */
static int waits_for_required(const zdm_plan_set *set, walk *w, size_t i)
{
    const zdm_plan *p = set->plans[i];
    for (size_t k = 0; k < p->requires.n; k++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(set->plans[j]->id, p->requires.v[k]) == 0 && w[j].now != ZDM_COMPLETE) {
                w[i].code = ZDM_EXIT_REFUSED;
                snprintf(w[i].why, sizeof w[i].why, "waits for %s (%s; required plans must be complete)",
                         set->plans[j]->id, zdm_phase_name(w[j].now));
                return 1;
            }
    return 0;
}

/* Advances plan i as far as target or its first gate, filling w[i].
 * Returns nonzero (err filled) on a failure that stops the whole run. */
static int walk_plan(zdm_db *db, const zdm_plan_set *set, size_t i, walk *w, const zdm_life_opts *o,
                     zdm_phase target, zdm_err *err)
{
    zdm_plan *p = set->plans[i];
    zdm_plan_state st;
    int rc;
    if ((rc = zdm_life_plan_state(db, p->id, &st, err)) != 0) {
        w[i].code = rc;
        snprintf(w[i].why, sizeof w[i].why, "%s", err->msg);
        return rc;
    }
    w[i].from = w[i].now = st.known ? st.phase : ZDM_PENDING;
    if (w[i].now == ZDM_ROLLED_BACK) {
        w[i].code = ZDM_EXIT_REFUSED;
        snprintf(w[i].why, sizeof w[i].why, "rolled back; zdm advance %s starts it again", p->id);
        return 0;
    }
    if (w[i].now == ZDM_PENDING && waits_for_required(set, w, i))
        return 0;
    while (phase_rank(w[i].now) < phase_rank(target)) {
        zdm_err e;
        zdm_err_clear(&e);
        int r = zdm_life_advance(db, set, p, o, &e);
        if (o->dry_run) {
            /* Nothing moves in a dry run: show the next phase only. */
            w[i].code = r ? r : ZDM_EXIT_REFUSED;
            snprintf(w[i].why, sizeof w[i].why, "%s", r ? e.msg : "dry run: next phase shown above");
            return 0;
        }
        if (r != 0) {
            w[i].code = r;
            snprintf(w[i].why, sizeof w[i].why, "%s%s%s", e.msg, e.detail[0] ? " -- " : "", e.detail);
            if (r == ZDM_EXIT_REFUSED)
                return 0;
            *err = e;
            return r;
        }
        zdm_phase before = w[i].now;
        if ((r = zdm_life_plan_state(db, p->id, &st, err)) != 0) {
            w[i].code = r;
            snprintf(w[i].why, sizeof w[i].why, "%s", err->msg);
            return r;
        }
        w[i].now = st.known ? st.phase : ZDM_PENDING;
        if (w[i].now == before) {
            /* e.g. a backfill that other workers still hold */
            w[i].code = ZDM_EXIT_REFUSED;
            snprintf(w[i].why, sizeof w[i].why, "stayed %s after zdm advance", zdm_phase_name(before));
            return 0;
        }
    }
    return 0;
}

int zdm_cmd_advance_all(zdm_cli *cli, zdm_err *err)
{
    zdm_phase target = ZDM_COMPLETE;
    int rc = advance_all_target(cli, &target, err);
    if (rc != 0)
        return rc;
    zdm_plan_set set = {0};
    zdm_project project;
    memset(&project, 0, sizeof project);
    zdm_db *db = NULL;
    walk *w = NULL;
    rc = zdm_cli_load_plans(cli, NULL, 0, &set, err);
    if (rc != 0)
        return rc;
    zdm_diags d = {0};
    rc = zdm_project_load(cli->plans_dir, &project, &d);
    for (size_t i = 0; i < d.msgs.n; i++)
        fprintf(cli->errs, "%s\n", d.msgs.v[i]);
    zdm_diags_free(&d);
    if (rc != 0) {
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "the project file zdm.toml is invalid; nothing was changed");
        goto out;
    }
    zdm_project_apply_defaults(&project, &set);
    /* as advance: a mistyped path shows in the note that the file was created */
    rc = zdm_life_open(cli->db_url, ZDM_LIFE_OPEN_CREATE | ZDM_LIFE_OPEN_INIT | ZDM_LIFE_OPEN_SAY_CREATED, cli->errs,
                       NULL, &db, err);
    if (rc != 0)
        goto out;

    w = zdm_xcalloc(set.n ? set.n : 1, sizeof *w);
    zdm_life_opts o = {cli->dry_run, cli->no_backup, cli->out, cli->db_url, &project, 0, cli->allow, 0};
    size_t i;
    for (i = 0; i < set.n && rc == 0; i++)
        rc = walk_plan(db, &set, i, w, &o, target, err);
    if (rc == 0) {
        for (size_t k = 0; k < set.n; k++)
            if (w[k].code)
                rc = ZDM_EXIT_REFUSED;
        if (rc == ZDM_EXIT_REFUSED && !cli->dry_run) {
            zdm_err_set(err, ZDM_EXIT_REFUSED, "not every plan reached %s", zdm_phase_name(target));
            zdm_err_detail(err, "the summary above says where each one stopped and why");
        }
        if (cli->dry_run)
            rc = 0;
    }
    summary(cli, &set, w, i, target, rc);
out:
    free(w);
    zdm_life_close(db);
    zdm_project_free(&project);
    zdm_plan_set_free(&set);
    return rc;
}
