/*
 * cli_plan.c -- "zdm plan validate" and "zdm plan show", plus the plan
 * loading shared by every command.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "lifecycle.h"
#include "live_keys.h"
#include "util.h"

void zdm_cli_problems(zdm_cli *cli, const zdm_diags *d)
{
    for (size_t i = 0; i < d->msgs.n; i++) {
        fprintf(cli->errs, "%s\n", d->msgs.v[i]);
        zdm_strv_push(&cli->problems, d->msgs.v[i]);
    }
}

int zdm_cli_problem_split(const char *s, char **file, int *line, int *col, const char **msg)
{
    /* the position is the last ":L:C: " before the message: a path may
     * hold colons of its own */
    for (const char *c = strchr(s, ':'); c; c = strchr(c + 1, ':')) {
        int l = 0, k = 0, n = 0;
        if (sscanf(c, ":%d:%d: %n", &l, &k, &n) == 2 && n > 0 && l > 0) {
            *file = zdm_xstrndup(s, (size_t)(c - s));
            *line = l;
            *col = k;
            *msg = c + n;
            return 1;
        }
    }
    return 0;
}

int zdm_cli_load_plans(zdm_cli *cli, const char *const *paths, size_t npaths,
                       zdm_plan_set *set, zdm_err *err)
{
    const char *dflt[1] = {cli->plans_dir};
    if (npaths == 0) {
        paths = dflt;
        npaths = 1;
    }
    zdm_diags d = {0};
    int rc = zdm_plan_set_load(paths, npaths, set, &d);
    zdm_cli_problems(cli, &d);
    size_t nerr = d.msgs.n;
    zdm_diags_free(&d);
    if (rc != 0) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "%zu problem%s found in plans; nothing was changed",
                    nerr, nerr == 1 ? "" : "s");
        return ZDM_EXIT_USAGE;
    }
    return 0;
}

zdm_plan *zdm_cli_find_plan(zdm_cli *cli, zdm_plan_set *set, const char *name, zdm_err *err)
{
    zdm_plan *p = zdm_plan_set_find(set, name);
    if (p)
        return p;
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->plans[i]->path, name) == 0)
            return set->plans[i];
    zdm_buf b = {0};
    for (size_t i = 0; i < set->n && i < 20; i++)
        zdm_buf_printf(&b, "%s%s", i ? ", " : "", set->plans[i]->id);
    zdm_err_set(err, ZDM_EXIT_USAGE, "no plan \"%s\" in %s", name, cli->plans_dir);
    zdm_err_detail(err, "%s%s", set->n ? "known plans: " : "the directory holds no *.toml plans; set --plans DIR",
                   b.data ? b.data : "");
    zdm_buf_free(&b);
    return NULL;
}

int zdm_cmd_plan_validate(zdm_cli *cli, zdm_err *err)
{
    zdm_plan_set set;
    int rc;
    if (cli->npos) {
        /* Files named alone (a pre-commit hook's changed files) may
         * require plans of --plans: those count as there (their own
         * problems are theirs, not reported here). */
        zdm_plan_set dir;
        zdm_diags dd = {0};
        const char *one[1] = {cli->plans_dir};
        zdm_strv known = {0};
        struct stat st;
        if (stat(cli->plans_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            int dirc = zdm_plan_set_load(one, 1, &dir, &dd); /* its valid plans, whatever the others */
            (void)dirc;
            for (size_t i = 0; i < dir.n; i++)
                zdm_strv_push(&known, dir.plans[i]->id);
            zdm_plan_set_free(&dir);
        }
        zdm_diags_free(&dd);
        zdm_diags d = {0};
        rc = zdm_plan_set_load_known(cli->pos, (size_t)cli->npos, &known, &set, &d);
        zdm_cli_problems(cli, &d);
        if (rc != 0)
            zdm_err_set(err, ZDM_EXIT_USAGE, "%zu problem%s found in plans; nothing was changed", d.msgs.n,
                        d.msgs.n == 1 ? "" : "s");
        zdm_diags_free(&d);
        zdm_strv_free(&known);
    } else {
        rc = zdm_cli_load_plans(cli, NULL, 0, &set, err);
    }
    /* The project file beside --plans is part of what advance loads: a
     * misspelt key there is as much an error as one in a plan. */
    if (rc == 0 && cli->npos == 0) {
        zdm_project proj;
        zdm_diags d = {0};
        if (zdm_project_load(cli->plans_dir, &proj, &d) != 0) {
            zdm_cli_problems(cli, &d);
            rc = zdm_err_set(err, ZDM_EXIT_USAGE, "the project file zdm.toml is invalid");
        } else {
            zdm_project_free(&proj);
        }
        zdm_diags_free(&d);
    }
    if (rc == 0 && cli->verbosity < 0 && !cli->json) {
        /* -q: the exit status says it */
    } else if (rc == 0) {
        if (cli->json) {
            json_t *o = json_object();
            json_t *ids = json_array();
            for (size_t i = 0; i < set.n; i++)
                json_array_append_new(ids, json_string(set.plans[i]->id));
            json_object_set_new(o, "valid", json_true());
            json_object_set_new(o, "plans", ids);
            json_dumpf(o, cli->out, JSON_INDENT(2));
            fputc('\n', cli->out);
            json_decref(o);
        } else {
            fprintf(cli->out, "%zu plan%s valid", set.n, set.n == 1 ? "" : "s");
            for (size_t i = 0; i < set.n; i++)
                fprintf(cli->out, "%s%s", i ? ", " : ": ", set.plans[i]->id);
            fputc('\n', cli->out);
        }
    }
    zdm_plan_set_free(&set);
    return rc;
}

/* Loads the PLAN argument: a path to a file, or an id in --plans. */
static int load_one(zdm_cli *cli, const char *name, zdm_plan_set *set, zdm_plan **out,
                    zdm_err *err)
{
    struct stat st;
    int is_file = strchr(name, '/') || (strlen(name) > 5 && strcmp(name + strlen(name) - 5, ".toml") == 0);
    if (is_file && stat(name, &st) == 0 && S_ISREG(st.st_mode)) {
        /* Only this file: the plans it requires need not be beside it. */
        memset(set, 0, sizeof *set);
        zdm_diags d = {0};
        zdm_plan *p = NULL;
        int rc = zdm_plan_load_file(name, &p, &d);
        zdm_cli_problems(cli, &d);
        size_t nerr = d.msgs.n;
        zdm_diags_free(&d);
        if (rc != 0)
            return zdm_err_set(err, rc, "%zu problem%s found in %s", nerr, nerr == 1 ? "" : "s", name);
        set->plans = zdm_xcalloc(2, sizeof *set->plans);
        set->plans[0] = p;
        set->n = 1;
        *out = p;
        return 0;
    }
    int rc = zdm_cli_load_plans(cli, NULL, 0, set, err);
    if (rc != 0)
        return rc;
    *out = zdm_cli_find_plan(cli, set, name, err);
    return *out ? 0 : err->code;
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *json_of_value(const toml_value *v)
{
    switch (v->type) {
    case TOML_STRING:
        return json_stringn(v->u.str.ptr, v->u.str.len);
    case TOML_INTEGER:
        return json_integer(v->u.integer);
    case TOML_FLOAT:
        return json_real(v->u.flt);
    case TOML_BOOL:
        return json_boolean(v->u.boolean);
    case TOML_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < v->u.array.len; i++)
            json_array_append_new(a, json_of_value(v->u.array.items[i]));
        return a;
    }
    case TOML_TABLE: {
        json_t *o = json_object();
        for (size_t i = 0; i < v->u.table.len; i++)
            json_object_set_new(o, v->u.table.items[i].key, json_of_value(v->u.table.items[i].value));
        return o;
    }
    default:
        return json_string(v->u.dt.text);
    }
}

static json_t *json_steps(const zdm_plan *p, const zdm_step *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer(s[i].index));
        json_object_set_new(o, "line", json_integer(s[i].line));
        if (s[i].name)
            json_object_set_new(o, "name", json_string(s[i].name));
        if (s[i].from_op) {
            json_object_set_new(o, "op", json_string(s[i].from_op));
            json_object_set_new(o, "fields", json_of_value(s[i].fields));
        }
        json_t *sql = json_object(), *down = json_object();
        json_object_set_new(sql, "pg", jstr(zdm_step_sql(&s[i], 1)));
        json_object_set_new(sql, "sqlite", jstr(zdm_step_sql(&s[i], 2)));
        json_object_set_new(down, "pg", jstr(zdm_step_down(&s[i], 1)));
        json_object_set_new(down, "sqlite", jstr(zdm_step_down(&s[i], 2)));
        json_object_set_new(o, "sql", sql);
        json_object_set_new(o, "down", down);
        if (s[i].unsupported_for[0] || s[i].unsupported_for[1]) {
            json_t *u = json_object();
            json_object_set_new(u, "pg", jstr(s[i].unsupported_for[0]));
            json_object_set_new(u, "sqlite", jstr(s[i].unsupported_for[1]));
            json_object_set_new(o, "unsupported", u);
        }
        const char *any = zdm_step_sql(&s[i], 1) ? zdm_step_sql(&s[i], 1) : zdm_step_sql(&s[i], 2);
        json_object_set_new(o, "transaction", json_boolean(zdm_step_in_transaction(&s[i], any)));
        json_object_set_new(o, "lock_timeout_ms",
                            json_integer(s[i].lock_timeout_ms >= 0 ? s[i].lock_timeout_ms : p->lock_timeout_ms));
        json_object_set_new(o, "lock_retries",
                            json_integer(s[i].lock_retries >= 0 ? s[i].lock_retries : p->lock_retries));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *json_assigns(const zdm_assign *a, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, a[i].column, json_string(a[i].expr));
    return o;
}

static json_t *json_strv(const zdm_strv *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->v[i]));
    return a;
}

static json_t *json_plan(const zdm_plan *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(p->id));
    json_object_set_new(o, "path", json_string(p->path));
    json_object_set_new(o, "checksum", json_string(p->checksum));
    json_object_set_new(o, "description", jstr(p->description));
    json_object_set_new(o, "requires", json_strv(&p->requires));
    json_object_set_new(o, "lock_timeout_ms", json_integer(p->lock_timeout_ms));
    json_object_set_new(o, "statement_timeout_ms", json_integer(p->statement_timeout_ms));
    json_object_set_new(o, "lock_retries", json_integer(p->lock_retries));
    json_t *ex = json_object();
    json_object_set_new(ex, "steps", json_steps(p, p->expand, p->nexpand));
    json_object_set_new(o, "expand", ex);
    if (p->backfill) {
        const zdm_backfill *b = p->backfill;
        json_t *bo = json_object();
        json_object_set_new(bo, "table", json_string(b->table));
        json_object_set_new(bo, "key", json_strv(&b->key));
        json_object_set_new(bo, "where", jstr(b->where));
        json_object_set_new(bo, "set", json_assigns(b->set, b->nset));
        json_t *dw = json_object();
        json_object_set_new(dw, "enabled", json_boolean(b->dual_write));
        json_object_set_new(dw, "sources", json_strv(&b->dw_sources));
        json_object_set_new(dw, "reverse", json_assigns(b->reverse, b->nreverse));
        json_object_set_new(dw, "mode", json_string(zdm_life_dual_write_mode(b)));
        zdm_strv sem = {0};
        zdm_life_dual_write_describe(b, &sem);
        json_object_set_new(dw, "semantics", json_strv(&sem));
        zdm_strv_free(&sem);
        json_object_set_new(bo, "dual_write", dw);
        const zdm_throttle *t = &b->throttle;
        json_t *th = json_object();
        json_object_set_new(th, "batch_size", json_integer(t->batch_size));
        json_object_set_new(th, "target_batch_ms", json_integer(t->target_batch_ms));
        json_object_set_new(th, "min_batch_size", json_integer(t->min_batch_size));
        json_object_set_new(th, "max_batch_size", json_integer(t->max_batch_size));
        json_object_set_new(th, "max_rows_per_second", json_integer(t->max_rows_per_second));
        json_object_set_new(th, "sleep_ms", json_integer(t->sleep_ms));
        json_object_set_new(th, "max_replication_lag_ms", json_integer(t->max_replication_lag_ms));
        json_object_set_new(th, "pause_query", jstr(t->pause_query));
        json_object_set_new(th, "max_latency_factor", json_real((double)t->max_latency_pct / 100.0));
        json_object_set_new(th, "max_lock_ms", json_integer(t->max_lock_ms));
        json_object_set_new(th, "max_duty_percent", json_integer(t->max_duty_percent));
        json_object_set_new(th, "probe_query", jstr(t->probe_query));
        json_object_set_new(th, "stall_after_ms", json_integer(t->stall_after_ms));
        json_object_set_new(bo, "throttle", th);
        json_object_set_new(o, "backfill", bo);
    } else {
        json_object_set_new(o, "backfill", json_null());
    }
    json_t *ct = json_object();
    json_object_set_new(ct, "not_before", jstr(p->not_before));
    json_object_set_new(ct, "verify", jstr(p->verify));
    json_object_set_new(ct, "steps", json_steps(p, p->contract, p->ncontract));
    json_object_set_new(o, "contract", ct);
    json_t *hk = json_object();
    for (int e = 0; e < ZDM_HOOK__COUNT; e++) {
        if (!p->hooks.n[e])
            continue;
        json_t *a = json_array();
        for (size_t i = 0; i < p->hooks.n[e]; i++)
            json_array_append_new(a, json_strv(&p->hooks.cmds[e][i].argv));
        json_object_set_new(hk, zdm_hook_event_name(e), a);
    }
    json_object_set_new(o, "hooks", hk);
    return o;
}

static void print_block(FILE *f, const char *label, const char *text)
{
    /* Multi-line SQL indented under its label. */
    fprintf(f, "     %s ", label);
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n' && p[1])
            fprintf(f, "     %*s ", (int)strlen(label), "");
    }
    if (!*text || text[strlen(text) - 1] != '\n')
        fputc('\n', f);
}

static int same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void print_steps(FILE *f, const zdm_plan *p, const zdm_step *s, size_t n)
{
    char d1[32];
    for (size_t i = 0; i < n; i++) {
        const zdm_step *st = &s[i];
        int64_t lt = st->lock_timeout_ms >= 0 ? st->lock_timeout_ms : p->lock_timeout_ms;
        int tries = st->lock_retries >= 0 ? st->lock_retries : p->lock_retries;
        fprintf(f, "  %d. %s%s", st->index, st->name ? st->name : "", st->name ? " \xe2\x80\x94 " : "");
        if (st->from_op)
            fprintf(f, "op %s", st->from_op);
        else
            fprintf(f, "sql");
        fprintf(f, " (lock_timeout %s, %d tries)\n", zdm_format_duration(lt, d1, sizeof d1), tries);
        static const char *const dn[] = {"pg", "sqlite"};
        /* one block when both dialects run the same SQL */
        int same = same_text(zdm_step_sql(st, 1), zdm_step_sql(st, 2)) &&
                   same_text(zdm_step_down(st, 1), zdm_step_down(st, 2));
        for (int k = 0; k < (same ? 1 : 2); k++) {
            const char *sql = zdm_step_sql(st, k + 1), *down = zdm_step_down(st, k + 1);
            char label[32];
            if (!same)
                fprintf(f, "     [%s]\n", dn[k]);
            if (!sql) {
                const char *why = st->unsupported_for[k];
                fprintf(f, "     (no SQL for %s: %s)\n", dn[k], why ? why : "the step cannot run there");
                continue;
            }
            snprintf(label, sizeof label, "sql%s:", zdm_step_in_transaction(st, sql) ? "" : " (no transaction)");
            print_block(f, label, sql);
            if (down)
                print_block(f, "down:", down);
            else
                fprintf(f, "     down: (none: rollback of this step is refused)\n");
        }
    }
}

/* One argv word, quoted when it needs to be so that zdm_split_command()
 * would read the printed line back as the same argv. */
static void print_word(FILE *f, const char *w)
{
    if (*w && !strpbrk(w, " \t'\"")) {
        fputs(w, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = w; *p; p++) {
        if (*p == '\'')
            fputs("'\"'\"'", f); /* close, a quoted quote, reopen */
        else
            fputc(*p, f);
    }
    fputc('\'', f);
}

static void print_argv(FILE *f, const zdm_strv *argv)
{
    for (size_t k = 0; k < argv->n; k++) {
        fputc(' ', f);
        print_word(f, argv->v[k]);
    }
}

/* proj: zdm.toml's hooks, which the plan runs too unless inherit = false
 * (NULL when there is no project file). */
static void print_plan(FILE *f, const zdm_plan *p, const zdm_hooks *proj)
{
    if (proj && !p->hooks.inherit)
        proj = NULL;
    char d[32];
    fprintf(f, "plan %s%s%s\n", p->id, p->description ? ": " : "", p->description ? p->description : "");
    fprintf(f, "  file     %s (sha256 %.12s)\n", p->path, p->checksum);
    if (p->requires.n) {
        fprintf(f, "  requires");
        for (size_t i = 0; i < p->requires.n; i++)
            fprintf(f, "%s%s", i ? ", " : " ", p->requires.v[i]);
        fputc('\n', f);
    }
    fprintf(f, "  DDL      lock_timeout %s, %d tries, statement_timeout %s\n",
            zdm_format_duration(p->lock_timeout_ms, d, sizeof d), p->lock_retries,
            p->statement_timeout_ms ? zdm_format_duration(p->statement_timeout_ms, (char[32]){0}, 32) : "none");

    fprintf(f, "\nexpand (%zu step%s)\n", p->nexpand, p->nexpand == 1 ? "" : "s");
    print_steps(f, p, p->expand, p->nexpand);

    fprintf(f, "\nbackfill\n");
    if (!p->backfill) {
        fprintf(f, "  (none: the plan passes backfilled at once)\n");
    } else {
        const zdm_backfill *b = p->backfill;
        fprintf(f, "  table %s, key ", b->table);
        if (!b->key.n)
            fprintf(f, "(primary key)");
        for (size_t i = 0; i < b->key.n; i++)
            fprintf(f, "%s%s", i ? ", " : "", b->key.v[i]);
        fprintf(f, "%s%s\n", b->where ? ", where " : "", b->where ? b->where : "");
        for (size_t i = 0; i < b->nset; i++)
            fprintf(f, "  set %s = %s\n", b->set[i].column, b->set[i].expr);
        fprintf(f, "  dual-write %s", b->dual_write ? "on" : "off");
        if (b->dw_sources.n) {
            fprintf(f, " (sources:");
            for (size_t i = 0; i < b->dw_sources.n; i++)
                fprintf(f, " %s", b->dw_sources.v[i]);
            fprintf(f, ")");
        }
        fputc('\n', f);
        for (size_t i = 0; i < b->nreverse; i++)
            fprintf(f, "  reverse %s = %s\n", b->reverse[i].column, b->reverse[i].expr);
        zdm_strv sem = {0};
        zdm_life_dual_write_describe(b, &sem);
        for (size_t i = 0; i < sem.n; i++)
            fprintf(f, "    %s\n", sem.v[i]);
        zdm_strv_free(&sem);
        const zdm_throttle *t = &b->throttle;
        fprintf(f, "  throttle batch %lld (aim %lld ms, %lld..%lld), ", (long long)t->batch_size,
                (long long)t->target_batch_ms, (long long)t->min_batch_size, (long long)t->max_batch_size);
        if (t->max_rows_per_second)
            fprintf(f, "max %lld rows/s", (long long)t->max_rows_per_second);
        else
            fprintf(f, "no rate limit");
        if (t->sleep_ms)
            fprintf(f, ", sleep %lld ms", (long long)t->sleep_ms);
        if (t->max_replication_lag_ms)
            fprintf(f, ", replica lag < %lld ms", (long long)t->max_replication_lag_ms);
        if (t->max_latency_pct)
            fprintf(f, ", probe latency < %.2gx idle", (double)t->max_latency_pct / 100.0);
        else
            fprintf(f, ", no latency pacing");
        if (t->max_lock_ms)
            fprintf(f, ", locks held < %lld ms", (long long)t->max_lock_ms);
        if (t->max_latency_pct && t->max_duty_percent < 100)
            fprintf(f, ", batches <= %lld%% of the time while the application works", (long long)t->max_duty_percent);
        fputc('\n', f);
        if (t->pause_query)
            fprintf(f, "  pause while: %s\n", t->pause_query);
    }

    fprintf(f, "\ncutover\n");
    if (!p->hooks.n[ZDM_HOOK_CUTOVER] && !(proj && proj->n[ZDM_HOOK_CUTOVER]))
        fprintf(f, "  (no cutover hooks: the cutover is a recorded step)\n");
    for (size_t i = 0; proj && i < proj->n[ZDM_HOOK_CUTOVER]; i++) {
        fprintf(f, "  run");
        print_argv(f, &proj->cmds[ZDM_HOOK_CUTOVER][i].argv);
        fprintf(f, "  (zdm.toml)\n");
    }
    for (size_t i = 0; i < p->hooks.n[ZDM_HOOK_CUTOVER]; i++) {
        fprintf(f, "  run");
        print_argv(f, &p->hooks.cmds[ZDM_HOOK_CUTOVER][i].argv);
        fputc('\n', f);
    }

    fprintf(f, "\ncontract (%zu step%s", p->ncontract, p->ncontract == 1 ? "" : "s");
    if (p->not_before)
        fprintf(f, ", not before %s", p->not_before);
    fprintf(f, ")\n");
    if (p->verify)
        fprintf(f, "  verify: %s\n", p->verify);
    print_steps(f, p, p->contract, p->ncontract);

    int any = 0;
    for (int e = 0; e < ZDM_HOOK__COUNT; e++) {
        for (size_t i = 0; proj && i < proj->n[e]; i++) {
            if (!any++)
                fprintf(f, "\nhooks (timeout %s each)\n", zdm_format_duration(p->hooks.timeout_ms, d, sizeof d));
            fprintf(f, "  %-16s", zdm_hook_event_name(e));
            print_argv(f, &proj->cmds[e][i].argv);
            fprintf(f, "  (zdm.toml)\n");
        }
        for (size_t i = 0; i < p->hooks.n[e]; i++) {
            if (!any++)
                fprintf(f, "\nhooks (timeout %s each)\n", zdm_format_duration(p->hooks.timeout_ms, d, sizeof d));
            fprintf(f, "  %-16s", zdm_hook_event_name(e));
            print_argv(f, &p->hooks.cmds[e][i].argv);
            fputc('\n', f);
        }
    }
}

/* The SQL each phase runs on one dialect, in order, as a script a DBA can
 * read (dual-write triggers are generated from the live catalog and shown
 * by "zdm advance --dry-run" instead). */
static void print_sql(FILE *f, const zdm_plan *p, int dialect)
{
    const char *dn = dialect == 1 ? "PostgreSQL" : "SQLite";
    fprintf(f, "-- plan %s, SQL for %s\n", p->id, dn);
    const char *phases[2] = {"expand", "contract"};
    const zdm_step *lists[2] = {p->expand, p->contract};
    size_t ns[2] = {p->nexpand, p->ncontract};
    for (int ph = 0; ph < 2; ph++) {
        if (ph == 1) {
            fprintf(f, "\n-- backfill\n");
            if (p->backfill) {
                const zdm_backfill *b = p->backfill;
                fprintf(f, "-- dual-write triggers on %s keep", b->table);
                for (size_t i = 0; i < b->nset; i++)
                    fprintf(f, " %s = %s;", b->set[i].column, b->set[i].expr);
                for (size_t i = 0; i < b->nreverse; i++)
                    fprintf(f, " %s = %s (reverse);", b->reverse[i].column, b->reverse[i].expr);
                fprintf(f, "\n-- then, batch by batch over the key:\nUPDATE %s SET ", b->table);
                for (size_t i = 0; i < b->nset; i++)
                    fprintf(f, "%s%s = (%s)", i ? ", " : "", b->set[i].column, b->set[i].expr);
                fprintf(f, "\n WHERE key > cursor AND key <= batch_end%s%s%s;\n", b->where ? " AND (" : "",
                        b->where ? b->where : "", b->where ? ")" : "");
            } else {
                fprintf(f, "-- (none)\n");
            }
        }
        fprintf(f, "\n-- %s\n", phases[ph]);
        for (size_t i = 0; i < ns[ph]; i++) {
            const zdm_step *st = &lists[ph][i];
            const char *sql = zdm_step_sql(st, dialect), *down = zdm_step_down(st, dialect);
            fprintf(f, "-- step %d%s%s\n", st->index, st->name ? ": " : "", st->name ? st->name : "");
            if (!sql) {
                const char *why = st->unsupported_for[dialect - 1];
                fprintf(f, "--   not possible on %s%s%s\n", dn, why ? ": " : "", why ? why : "");
                continue;
            }
            if (!zdm_step_in_transaction(st, sql))
                fprintf(f, "--   (outside a transaction)\n");
            fprintf(f, "%s;\n", sql);
            if (down)
                fprintf(f, "--   down: %s\n", down);
        }
    }
}

int zdm_cmd_plan_show(zdm_cli *cli, zdm_err *err)
{
    int dialect = 1;
    if (cli->dialect) {
        if (strcmp(cli->dialect, "pg") == 0 || strcmp(cli->dialect, "postgresql") == 0)
            dialect = 1;
        else if (strcmp(cli->dialect, "sqlite") == 0)
            dialect = 2;
        else
            return zdm_err_set(err, ZDM_EXIT_USAGE, "--dialect must be pg or sqlite, not \"%s\"", cli->dialect);
    } else if (cli->db_url && strncmp(cli->db_url, "sqlite:", 7) == 0) {
        dialect = 2;
    }
    zdm_plan_set set;
    zdm_plan *p = NULL;
    int rc = load_one(cli, cli->pos[0], &set, &p, err);
    if (rc == 0 && cli->sql) {
        print_sql(cli->out, p, dialect);
    } else if (rc == 0) {
        /* With --db: the zdm set overrides in force (they beat the file). */
        char *ovtxt = NULL;
        zdm_err e2;
        zdm_err_clear(&e2);
        if (cli->db_url && p->backfill && zdm_life_overrides(cli->db_url, p, &ovtxt, &e2) != 0)
            fprintf(cli->errs, "zdm: the plan as written; its zdm set overrides are unknown: %s\n", e2.msg);
        json_error_t je;
        json_t *ov = ovtxt ? json_loads(ovtxt, 0, &je) : NULL;
        free(ovtxt);
        if (cli->json) {
            json_t *o = json_plan(p);
            if (ov && json_is_object(json_object_get(o, "backfill")))
                json_object_set(json_object_get(o, "backfill"), "overrides", ov);
            json_dumpf(o, cli->out, JSON_INDENT(2));
            fputc('\n', cli->out);
            json_decref(o);
        } else {
            /* what the plan runs includes zdm.toml's hooks */
            zdm_project proj;
            zdm_diags d = {0};
            int have = zdm_project_load(cli->plans_dir, &proj, &d) == 0;
            zdm_diags_free(&d);
            print_plan(cli->out, p, have ? &proj.hooks : NULL);
            if (have)
                zdm_project_free(&proj);
            zdm_live_print_overrides(cli->out, "\nzdm set overrides in the database:", ov, p->id);
        }
        json_decref(ov);
    }
    zdm_plan_set_free(&set);
    return rc;
}
