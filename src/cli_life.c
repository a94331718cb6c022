/*
 * cli_life.c -- the lifecycle commands: init, advance, rollback, status,
 * history, stamp, check, unlock, backfill, pause, resume, set, cutover,
 * schedule, retry, run-due.
 *
 * Owns: each command's arguments, the plans and zdm.toml it loads, and
 * what it prints (text, --json, prometheus).  The work is the lifecycle's
 * (lifecycle.h): these commands reach neither the driver nor zdm's tables
 * nor the phases themselves.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lifecycle.h"
#include "live_keys.h"
#include "log.h"
#include "util.h"

/* The database of --db.  Only init and a real advance may create a SQLite
 * file: anything else on a mistyped path must fail, not leave an empty
 * database behind.  check: refuse a layout this zdm cannot read. */
static int open_db(zdm_cli *cli, int check, zdm_db **db, zdm_err *err)
{
    *db = NULL;
    if (!cli->db_url) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "no database given");
        zdm_err_detail(err, "pass --db URL (postgres://..., a conninfo, or sqlite:PATH) or set ZDM_DATABASE_URL");
        return ZDM_EXIT_USAGE;
    }
    int flags = check ? ZDM_LIFE_OPEN_CHECK : 0;
    if (cli->db_may_create && !cli->dry_run)
        flags |= ZDM_LIFE_OPEN_CREATE;
    if (cli->db_may_create == 1) /* say so: a mistyped path shows here */
        flags |= ZDM_LIFE_OPEN_SAY_CREATED;
    if (cli->dry_run)
        flags |= ZDM_LIFE_OPEN_MISSING_EMPTY;
    return zdm_life_open(cli->db_url, flags, cli->errs,
                         "the dry run shows what would run on a new, empty database; no file is created", db, err);
}

/* Plans + database + the named plan, the start of most commands. */
typedef struct session {
    zdm_plan_set set;
    zdm_project project;
    zdm_db *db;
    zdm_plan *plan;
} session;

/* invalid: NULL, or status's list of plan-file problems: then an invalid
 * plan file does not stop the command, the valid plans are loaded. */
static int open_session_with(zdm_cli *cli, session *s, const char *plan_name, zdm_strv *invalid, zdm_err *err)
{
    memset(s, 0, sizeof *s);
    int rc;
    if (invalid) {
        const char *dirs[] = {cli->plans_dir};
        zdm_diags pd = {0};
        if (zdm_plan_set_load(dirs, 1, &s->set, &pd) != 0)
            for (size_t i = 0; i < pd.msgs.n; i++)
                zdm_strv_push(invalid, pd.msgs.v[i]);
        zdm_diags_free(&pd);
    } else if ((rc = zdm_cli_load_plans(cli, NULL, 0, &s->set, err)) != 0) {
        return rc;
    }
    zdm_diags d = {0};
    rc = zdm_project_load(cli->plans_dir, &s->project, &d);
    for (size_t i = 0; i < d.msgs.n; i++)
        fprintf(cli->errs, "%s\n", d.msgs.v[i]);
    zdm_diags_free(&d);
    if (rc != 0)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "the project file zdm.toml is invalid; nothing was changed");
    zdm_project_apply_defaults(&s->project, &s->set);
    if (plan_name) {
        s->plan = zdm_cli_find_plan(cli, &s->set, plan_name, err);
        if (!s->plan)
            return err->code;
    }
    /* Every command, read-only ones too, refuses a layout it cannot read
     * rather than show plans as pending. */
    return open_db(cli, 1, &s->db, err);
}

static int open_session(zdm_cli *cli, session *s, const char *plan_name, zdm_err *err)
{
    return open_session_with(cli, s, plan_name, NULL, err);
}

static void close_session(session *s)
{
    zdm_life_close(s->db);
    zdm_project_free(&s->project);
    zdm_plan_set_free(&s->set);
}

int zdm_cmd_init(zdm_cli *cli, zdm_err *err)
{
    zdm_db *db = NULL;
    cli->db_may_create = 2; /* quietly: creating it is init's job */
    int rc = open_db(cli, 0, &db, err);
    int from = 0, version = 0;
    if (rc == 0)
        rc = zdm_life_init(db, cli->upgrade, &from, &version, err);
    if (rc == 0) {
        int upgraded = from > 0 && from < version;
        if (cli->json && upgraded)
            fprintf(cli->out, "{\"ok\": true, \"database\": \"%s\", \"state_version\": %d, \"upgraded_from\": %d}\n",
                    zdm_life_db_dialect(db), version, from);
        else if (cli->json)
            fprintf(cli->out, "{\"ok\": true, \"database\": \"%s\", \"state_version\": %d}\n",
                    zdm_life_db_dialect(db), version);
        else if (upgraded)
            fprintf(cli->out, "zdm state in %s (%s) upgraded from layout %d to %d\n", zdm_life_db_name(db),
                    zdm_life_db_dialect(db), from, version);
        else
            fprintf(cli->out, "zdm state ready in %s (%s, layout version %d)\n", zdm_life_db_name(db),
                    zdm_life_db_dialect(db), version);
    }
    zdm_life_close(db);
    return rc;
}

int zdm_cmd_advance(zdm_cli *cli, zdm_err *err)
{
    if (cli->all || cli->to)
        return zdm_cmd_advance_all(cli, err); /* cli_graph.c */
    if (cli->npos != 1) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "usage: zdm advance PLAN");
        zdm_err_detail(err, "or zdm advance --all [--to PHASE] for every plan");
        return ZDM_EXIT_USAGE;
    }
    session s;
    cli->db_may_create = 1;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0) {
        zdm_life_opts o = {cli->dry_run, cli->no_backup, cli->out, cli->db_url, &s.project, cli->hooks_only,
                           cli->allow, 0};
        rc = zdm_life_advance(s.db, &s.set, s.plan, &o, err);
    }
    close_session(&s);
    return rc;
}

int zdm_cmd_rollback(zdm_cli *cli, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0) {
        zdm_life_opts o = {cli->dry_run, 0, cli->out, cli->db_url, &s.project, 0, NULL, cli->force};
        rc = zdm_life_rollback(s.db, &s.set, s.plan, &o, err);
    }
    close_session(&s);
    return rc;
}

int zdm_cmd_stamp(zdm_cli *cli, zdm_err *err)
{
    int ph = zdm_phase_parse(cli->pos[1]);
    if (ph < 0) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "unknown phase \"%s\"", cli->pos[1]);
        zdm_err_detail(err, "phases: pending, expanded, backfilled, cut_over, complete, rolled_back");
        return ZDM_EXIT_USAGE;
    }
    session s;
    cli->db_may_create = 1; /* adopting a database built by hand starts here */
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0)
        rc = zdm_life_stamp(s.db, s.plan, (zdm_phase)ph, err);
    if (rc == 0)
        fprintf(cli->out, "%s: stamped %s\n", s.plan->id, cli->pos[1]);
    close_session(&s);
    return rc;
}

int zdm_cmd_unlock(zdm_cli *cli, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    char detail[400] = "";
    if (rc == 0)
        rc = zdm_life_unlock(s.db, s.plan, cli->force, detail, sizeof detail, err);
    if (detail[0]) /* said even when its history row could not be written */
        fprintf(cli->out, "%s: %s\n", s.plan->id, detail);
    close_session(&s);
    return rc;
}

/* A JSON string of stored text.  Rows written before messages were cut on
 * a character boundary (and hook output, which is any bytes) may hold
 * invalid UTF-8, which jansson refuses: such bytes become '?' instead of
 * the whole value vanishing from the output. */
static json_t *jtext(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = zdm_xstrdup(s);
    unsigned char *p = (unsigned char *)copy;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        int ok = n > 0;
        for (int i = 1; ok && i < n; i++)
            ok = (p[i] & 0xC0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

static json_t *jtime(int64_t ms)
{
    char ts[40];
    return ms ? json_string(zdm_format_time(ms, ts, sizeof ts)) : json_null();
}

/* Prometheus families of "status --format prometheus", in output order. */
enum { PM_PHASE, PM_DUE, PM_OVERDUE, PM_WAITING, PM_FAILED, PM_ATTEMPTS, PM_LOCKED, PM_PROGRESS, PM_LEFT, PM_RATE,
       PM_ETA, PM__N };
static const char *const pm_head[PM__N] = {
    "# HELP zdm_plan_phase The plan's phase (1 for the current one).\n# TYPE zdm_plan_phase gauge\n",
    "# HELP zdm_plan_contract_due_timestamp_seconds When contract is due; 0 when no due time.\n"
    "# TYPE zdm_plan_contract_due_timestamp_seconds gauge\n",
    "# HELP zdm_plan_contract_overdue 1 when a cut-over plan is more than 15 min past its due time.\n"
    "# TYPE zdm_plan_contract_overdue gauge\n",
    "# HELP zdm_plan_waiting_for_schedule 1 when a cut-over plan has no due time.\n"
    "# TYPE zdm_plan_waiting_for_schedule gauge\n",
    "# HELP zdm_plan_failed 1 when run-due gave up on the plan's contract (zdm retry PLAN clears it).\n"
    "# TYPE zdm_plan_failed gauge\n",
    "# HELP zdm_plan_contract_attempts Contract attempts by run-due since the last success or retry.\n"
    "# TYPE zdm_plan_contract_attempts gauge\n",
    "# HELP zdm_plan_lock_held 1 while a run holds the plan's lock.\n# TYPE zdm_plan_lock_held gauge\n",
    "# HELP zdm_backfill_last_progress_timestamp_seconds When the plan's last batch committed; 0 before the first.\n"
    "# TYPE zdm_backfill_last_progress_timestamp_seconds gauge\n",
    "# HELP zdm_backfill_rows_left_estimate Rows the backfill still has to convert (estimated, refined as ranges "
    "finish).\n# TYPE zdm_backfill_rows_left_estimate gauge\n",
    "# HELP zdm_backfill_plan_rows_per_second Every live worker's recent rate together (absent while paused, with no live "
    "worker, or before a rate is known).\n# TYPE zdm_backfill_plan_rows_per_second gauge\n",
    "# HELP zdm_backfill_eta_seconds Rows left at that rate (absent when the rate is).\n"
    "# TYPE zdm_backfill_eta_seconds gauge\n",
};
/* One plan's lines of "status --format prometheus", family by family. */
static void status_prom(zdm_buf pm[PM__N], const zdm_plan *p, const zdm_life_status *i)
{
    const char *id = p->id; /* plan ids are file names: no quotes or newlines */
    for (int k = 0; k < ZDM_PHASE__COUNT; k++)
        zdm_buf_printf(&pm[PM_PHASE], "zdm_plan_phase{plan=\"%s\",phase=\"%s\"} %d\n", id,
                       zdm_phase_name((zdm_phase)k), k == (int)i->phase);
    zdm_buf_printf(&pm[PM_DUE], "zdm_plan_contract_due_timestamp_seconds{plan=\"%s\"} %.3f\n", id,
                   (double)i->due_ms / 1000.0);
    zdm_buf_printf(&pm[PM_OVERDUE], "zdm_plan_contract_overdue{plan=\"%s\"} %d\n", id, i->overdue);
    zdm_buf_printf(&pm[PM_WAITING], "zdm_plan_waiting_for_schedule{plan=\"%s\"} %d\n", id, i->waiting);
    zdm_buf_printf(&pm[PM_FAILED], "zdm_plan_failed{plan=\"%s\"} %d\n", id, i->st.failed_ms != 0);
    zdm_buf_printf(&pm[PM_ATTEMPTS], "zdm_plan_contract_attempts{plan=\"%s\"} %d\n", id, i->st.attempts);
    zdm_buf_printf(&pm[PM_LOCKED], "zdm_plan_lock_held{plan=\"%s\"} %d\n", id, i->holder[0] != 0);
    if (!p->backfill)
        return;
    zdm_buf_printf(&pm[PM_PROGRESS], "zdm_backfill_last_progress_timestamp_seconds{plan=\"%s\"} %.3f\n", id,
                   (double)i->last_progress_ms / 1000.0);
    if (!i->bf_started)
        return;
    zdm_buf_printf(&pm[PM_LEFT], "zdm_backfill_rows_left_estimate{plan=\"%s\"} %lld\n", id,
                   (long long)i->bf_rows_left);
    if (i->bf_rate >= 0)
        zdm_buf_printf(&pm[PM_RATE], "zdm_backfill_plan_rows_per_second{plan=\"%s\"} %.1f\n", id, i->bf_rate);
    if (i->bf_eta_s >= 0)
        zdm_buf_printf(&pm[PM_ETA], "zdm_backfill_eta_seconds{plan=\"%s\"} %lld\n", id, (long long)i->bf_eta_s);
}

/* A rate in rows per second, to a tenth (what a reader can use), or null
 * when not known. */
static json_t *jrate(int known, double rate)
{
    return known ? json_real((double)(long long)(rate * 10.0 + 0.5) / 10.0) : json_null();
}

static json_t *status_json_backfill(const zdm_plan *p, const zdm_life_status *i, json_t *ov)
{
    json_t *b = json_object();
    json_t *wl = json_array();
    for (size_t k = 0; k < i->nworkers; k++) {
        const zdm_life_worker *w = &i->worker[k];
        json_t *wo = json_object();
        json_object_set_new(wo, "worker", json_string(w->owner));
        json_object_set_new(wo, "range", json_integer(w->range));
        json_object_set_new(wo, "range_rows_done", json_integer(w->range_rows_done));
        json_object_set_new(wo, "heartbeat", jtime(w->heartbeat_ms));
        json_object_set_new(wo, "throttle", w->throttle ? json_string(w->throttle) : json_null());
        json_object_set_new(wo, "last_batch_at", jtime(w->last_batch_ms));
        json_object_set_new(wo, "rows_per_second", jrate(w->rate_known, w->rows_per_second));
        json_array_append_new(wl, wo);
    }
    json_object_set_new(b, "worker_list", wl);
    json_object_set_new(b, "started", json_boolean(i->bf_started));
    json_object_set_new(b, "rows_done", json_integer(i->bf_rows_done));
    json_object_set_new(b, "rows_total_estimate", json_integer(i->bf_total_est));
    /* the estimate refined as ranges finish; rows_total_estimate stays the
     * one made at the start */
    json_object_set_new(b, "rows_left_estimate", json_integer(i->bf_rows_left));
    json_object_set_new(b, "percent_done", json_real((double)(long long)(i->bf_percent * 10.0 + 0.5) / 10.0)); /* as text shows it */
    json_object_set_new(b, "ranges", json_integer(i->bf_ranges));
    json_object_set_new(b, "ranges_done", json_integer(i->bf_ranges_done));
    json_object_set_new(b, "workers", json_integer(i->bf_workers));
    json_object_set_new(b, "paused", json_boolean(i->bf_paused));
    json_object_set_new(b, "throttle", json_string(i->bf_throttle));
    json_object_set_new(b, "last_progress_at", jtime(i->last_progress_ms));
    /* every live worker's recent rate together, and rows_left_estimate at
     * that pace: null while paused, with no live worker, or before one has
     * a rate */
    json_object_set_new(b, "rows_per_second", jrate(i->bf_rate >= 0, i->bf_rate));
    json_object_set_new(b, "eta_seconds", i->bf_eta_s >= 0 ? json_integer(i->bf_eta_s) : json_null());
    json_object_set_new(b, "settings", zdm_live_effective(&p->backfill->throttle, ov)); /* what workers use */
    json_object_set(b, "overrides", ov);
    return b;
}

static json_t *status_json(const zdm_plan *p, const zdm_life_status *i, json_t *ov)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(p->id));
    json_object_set_new(o, "phase", json_string(zdm_phase_name(i->phase)));
    json_object_set_new(o, "since", jtime(i->st.phase_since_ms));
    json_object_set_new(o, "next", json_string(i->next));
    json_object_set_new(o, "file", json_string(p->path));
    json_object_set_new(o, "checksum_ok", json_boolean(!i->changed));
    json_object_set_new(o, "cutover_at", jtime(i->st.cutover_at_ms));
    json_object_set_new(o, "contract_due", jtime(i->due_ms));
    json_object_set_new(o, "waiting_for_schedule", json_boolean(i->waiting));
    json_object_set_new(o, "overdue", json_boolean(i->overdue));
    json_object_set_new(o, "attempts", json_integer(i->st.attempts));
    json_object_set_new(o, "last_error", i->st.last_error[0] ? json_string(i->st.last_error) : json_null());
    json_object_set_new(o, "last_attempt_at", jtime(i->st.last_attempt_ms));
    json_object_set_new(o, "failed_at", jtime(i->st.failed_ms));
    json_object_set_new(o, "lock_holder", i->holder[0] ? json_string(i->holder) : json_null());
    if (p->backfill)
        json_object_set_new(o, "backfill", status_json_backfill(p, i, ov));
    return o;
}

static void status_text(zdm_cli *cli, const zdm_plan *p, const zdm_life_status *i, int header, json_t *ov)
{
    char ts[40];
    if (header)
        fprintf(cli->out, "%-28s %-12s %-21s %s\n", "PLAN", "PHASE", "SINCE", "NEXT");
    fprintf(cli->out, "%-28s %-12s %-21s %s\n", p->id, zdm_phase_name(i->phase),
            i->st.phase_since_ms ? zdm_format_time(i->st.phase_since_ms, ts, sizeof ts) : "-", i->next);
    if (i->phase == ZDM_EXPANDED && i->bf_started) {
        char eta[32] = "unknown";
        if (i->bf_eta_s >= 0)
            zdm_format_duration(i->bf_eta_s * 1000, eta, sizeof eta);
        if (i->bf_rate >= 0)
            fprintf(cli->out, "    rate %.0f rows/s (%zu live worker%s), ETA %s for ~%lld rows left\n", i->bf_rate,
                    i->nworkers, i->nworkers == 1 ? "" : "s together", eta, (long long)i->bf_rows_left);
        else
            fprintf(cli->out, "    rate - (%s), ETA unknown\n",
                    i->bf_paused ? "paused" : i->nworkers == 0 ? "no live worker" : "not measured yet");
    }
    for (size_t k = 0; i->phase == ZDM_EXPANDED && i->bf_started && k < i->nworkers; k++) {
        const zdm_life_worker *w = &i->worker[k];
        char rate[48] = "";
        if (w->rate_known)
            snprintf(rate, sizeof rate, ", %.0f rows/s", w->rows_per_second);
        fprintf(cli->out, "    worker %s: range %d, %lld rows in it so far%s, heartbeat %s%s%s\n", w->owner, w->range,
                (long long)w->range_rows_done, rate, zdm_format_time(w->heartbeat_ms, ts, sizeof ts),
                w->throttle ? ", " : "", w->throttle ? w->throttle : "");
    }
    zdm_live_print_overrides(cli->out, "    zdm set overrides:", ov, p->id);
}

/* After every plan: the prometheus families, the --json document, or the
 * text's closing lines. */
static void status_end(zdm_cli *cli, const zdm_plan_set *set, zdm_buf pm[PM__N], int prom, json_t *arr,
                       const zdm_strv *invalid, const zdm_strv *gone, const zdm_strv *gone_ph)
{
    if (prom) {
        for (int k = 0; k < PM__N; k++)
            if (pm[k].len)
                fprintf(cli->out, "%s%s", pm_head[k], pm[k].data);
    } else if (cli->json) {
        json_t *o = json_object();
        json_object_set(o, "plans", arr);
        json_t *inv = json_array();
        for (size_t k = 0; k < invalid->n; k++)
            json_array_append_new(inv, json_string(invalid->v[k]));
        json_object_set_new(o, "invalid", inv);
        json_t *mf = json_array();
        for (size_t k = 0; k < gone->n; k++) {
            json_t *g = json_object();
            json_object_set_new(g, "id", json_string(gone->v[k]));
            json_object_set_new(g, "phase", json_string(gone_ph->v[k]));
            json_array_append_new(mf, g);
        }
        json_object_set_new(o, "missing_files", mf);
        json_dumpf(o, cli->out, JSON_INDENT(2));
        fputc('\n', cli->out);
        json_decref(o);
    } else {
        if (set->n == 0 && !invalid->n)
            fprintf(cli->out, "no plans in %s\n", cli->plans_dir);
        for (size_t k = 0; k < invalid->n; k++)
            fprintf(cli->out, "INVALID %s\n", invalid->v[k]);
        /* its triggers and columns are live, and nothing here names it */
        for (size_t k = 0; k < gone->n; k++)
            fprintf(cli->out, "NO FILE %s: %s in the database, no plan file in %s; restore the file (e.g. git "
                              "checkout) to finish it or roll it back\n",
                    gone->v[k], gone_ph->v[k], cli->plans_dir);
    }
}

int zdm_cmd_status(zdm_cli *cli, zdm_err *err)
{
    int prom = cli->format && strcmp(cli->format, "prometheus") == 0;
    if (cli->format && !prom && strcmp(cli->format, "text") != 0)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "--format %s: status knows text and prometheus (or --json)",
                           cli->format);
    zdm_buf pm[PM__N];
    memset(pm, 0, sizeof pm);
    session s;
    zdm_strv invalid = {0};
    int rc = open_session_with(cli, &s, cli->npos ? cli->pos[0] : NULL, &invalid, err);
    int have_state = rc == 0 && zdm_life_has_state(s.db);
    json_t *arr = json_array();
    for (size_t i = 0; rc == 0 && i < s.set.n; i++) {
        zdm_plan *p = s.set.plans[i];
        if (s.plan && p != s.plan)
            continue;
        zdm_life_status info;
        if ((rc = zdm_life_status_of(s.db, have_state, p, &info, err)) != 0) {
            zdm_life_status_free(&info);
            break;
        }
        json_error_t je;
        json_t *ov = info.overrides ? json_loads(info.overrides, 0, &je) : NULL; /* zdm set overrides */
        if (!ov)
            ov = json_object();
        if (prom)
            status_prom(pm, p, &info);
        else if (cli->json)
            json_array_append_new(arr, status_json(p, &info, ov));
        else
            status_text(cli, p, &info, i == 0 || (s.plan && p == s.plan), ov);
        json_decref(ov);
        zdm_life_status_free(&info);
    }
    zdm_strv gone = {0}, gone_ph = {0};
    if (rc == 0 && !s.plan && s.db)
        rc = zdm_life_missing_files(s.db, &s.set, &gone, &gone_ph, err);
    if (rc == 0)
        status_end(cli, &s.set, pm, prom, arr, &invalid, &gone, &gone_ph);
    cli->json_done = rc == 0 && cli->json && !prom;
    zdm_strv_free(&gone);
    zdm_strv_free(&gone_ph);
    for (int k = 0; k < PM__N; k++)
        zdm_buf_free(&pm[k]);
    /* Every valid plan was listed; the exit status still says a plan file
     * is invalid (2), as every other command does. */
    if (rc == 0 && invalid.n) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "%zu problem%s in the plan files (shown above); the other plans are listed",
                    invalid.n, invalid.n == 1 ? "" : "s");
        rc = ZDM_EXIT_USAGE;
    }
    zdm_strv_free(&invalid);
    json_decref(arr);
    close_session(&s);
    return rc;
}

/* 9999-12-31T23:59:59Z: the latest time zdm writes or reads. */
#define ZDM_SCHEDULE_MAX_MS INT64_C(253402300799000)

/* zdm history's filters: --event ACTION ("hook" matches every "hook EVENT"
 * row), --outcome, --since/--until (a time, or a duration back from now),
 * --limit N (the newest N, still printed oldest first). */
static int history_filter(const zdm_cli *cli, zdm_history_filter *f, zdm_err *err)
{
    static const char *const outcomes[] = {"ok", "failed", "refused", "running", "interrupted", NULL};
    memset(f, 0, sizeof *f);
    f->plan_id = cli->npos ? cli->pos[0] : NULL;
    f->action = cli->event;
    f->outcome = cli->outcome;
    if (cli->outcome) {
        int known = 0;
        for (int k = 0; outcomes[k]; k++)
            known |= strcmp(outcomes[k], cli->outcome) == 0;
        if (!known) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "--outcome %s: not an outcome", cli->outcome);
            zdm_err_detail(err, "use ok, failed, refused, running or interrupted");
            return ZDM_EXIT_USAGE;
        }
    }
    const char *tv[2] = {cli->since, cli->until};
    int *has[2] = {&f->has_since, &f->has_until};
    int64_t *at[2] = {&f->since_ms, &f->until_ms};
    for (int k = 0; k < 2; k++) {
        if (!tv[k])
            continue;
        int64_t ms, dur;
        int zone;
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_parse_time_zone(tv[k], 1, &ms, &zone, &e) != 0) {
            size_t len = strlen(tv[k]);
            if (!len || (tv[k][len - 1] >= '0' && tv[k][len - 1] <= '9') ||
                zdm_parse_duration_ms(tv[k], 1000, &dur, &e) != 0 || dur <= 0)
                return zdm_err_set(err, ZDM_EXIT_USAGE, "--%s %s: expected a time (2026-11-22T03:00:00Z) or a "
                                   "duration back from now (24h)", k ? "until" : "since", tv[k]);
            ms = zdm_now_ms() - dur;
        }
        *has[k] = 1;
        *at[k] = ms;
    }
    if (cli->limit) {
        char *end;
        long n = strtol(cli->limit, &end, 10);
        if (*end || n < 1)
            return zdm_err_set(err, ZDM_EXIT_USAGE, "--limit %s: expected a positive number", cli->limit);
        f->limit = n;
    }
    return 0;
}

static json_t *history_json(const zdm_history_row *h)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(h->id));
    json_object_set_new(o, "plan", json_string(h->plan_id));
    json_object_set_new(o, "at", jtime(h->at_ms));
    json_object_set_new(o, "who", json_string(h->who));
    json_object_set_new(o, "pid", json_integer(atoi(h->pid)));
    json_object_set_new(o, "action", json_string(h->action));
    json_object_set_new(o, "from", h->from_phase ? json_string(h->from_phase) : json_null());
    json_object_set_new(o, "to", h->to_phase ? json_string(h->to_phase) : json_null());
    json_object_set_new(o, "outcome", json_string(h->outcome));
    json_object_set_new(o, "detail", jtext(h->detail));
    json_object_set_new(o, "reason", jtext(h->reason));
    return o;
}

/* Columns as wide as their longest value, so long plan ids and actions do
 * not push the rest out of line. */
static void history_text(FILE *out, const zdm_history_list *l)
{
    int wplan = 4, waction = 6, wmove = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *f = l->v[i].from_phase, *t2 = l->v[i].to_phase;
        int lp = (int)strlen(l->v[i].plan_id), la = (int)strlen(l->v[i].action);
        int lm = (int)((f ? strlen(f) : 0) + (f || t2 ? 4 : 0) + (t2 ? strlen(t2) : 0));
        wplan = lp > wplan ? lp : wplan;
        waction = la > waction ? la : waction;
        wmove = lm > wmove ? lm : wmove;
    }
    for (size_t i = 0; i < l->n; i++) {
        const zdm_history_row *h = &l->v[i];
        char ts[40], move[64];
        const char *from = h->from_phase, *to = h->to_phase;
        snprintf(move, sizeof move, "%s%s%s", from ? from : "", from || to ? " -> " : "", to ? to : "");
        fprintf(out, "%s  %-*s  %-*s  %-*s  %-8s %s pid %s%s%s\n", zdm_format_time(h->at_ms, ts, sizeof ts), wplan,
                h->plan_id, waction, h->action, wmove, move, h->outcome, h->who, h->pid, h->detail ? "\n      " : "",
                h->detail ? h->detail : "");
    }
}

int zdm_cmd_history(zdm_cli *cli, zdm_err *err)
{
    zdm_db *db = NULL;
    int rc = open_db(cli, 1, &db, err);
    zdm_history_filter f;
    if (rc == 0)
        rc = history_filter(cli, &f, err);
    zdm_history_list l = {0};
    if (rc == 0)
        rc = zdm_life_history(db, &f, &l, err);
    if (rc == 0 && l.n == 0 && cli->npos) {
        /* a plan named that is in neither the history nor the plans (a
         * typo) is an error, not "no history rows match" and exit 0 */
        const char *dirs[] = {cli->plans_dir};
        zdm_plan_set set = {0};
        zdm_diags pd = {0};
        if (zdm_plan_set_load(dirs, 1, &set, &pd) != 0) {
            /* the valid plans are enough to know the name */
        }
        zdm_diags_free(&pd);
        if (!zdm_cli_find_plan(cli, &set, cli->pos[0], err))
            rc = err->code;
        zdm_plan_set_free(&set);
    }
    if (rc == 0 && cli->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l.n; i++)
            json_array_append_new(arr, history_json(&l.v[i]));
        json_t *o = json_object();
        json_object_set_new(o, "history", arr);
        json_dumpf(o, cli->out, JSON_INDENT(2));
        fputc('\n', cli->out);
        json_decref(o);
    } else if (rc == 0 && l.n == 0) {
        int filtered = cli->npos || cli->event || cli->outcome || cli->since || cli->until;
        fprintf(cli->out, "%s\n", filtered ? "no history rows match" : "no history yet");
    } else if (rc == 0) {
        history_text(cli->out, &l);
    }
    zdm_life_history_free(&l);
    zdm_life_close(db);
    return rc;
}

int zdm_cmd_check(zdm_cli *cli, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, NULL, err);
    zdm_buf bad = {0};
    size_t nbad = 0;
    json_t *arr = json_array();
    for (size_t i = 0; rc == 0 && i < s.set.n; i++) {
        zdm_plan_state st;
        if ((rc = zdm_life_plan_state(s.db, s.set.plans[i]->id, &st, err)) != 0)
            break;
        zdm_phase ph = st.known ? st.phase : ZDM_PENDING;
        /* An applied plan whose file changed since is not what the
         * database holds: as bad as an incomplete one (status says so too). */
        int changed = zdm_life_plan_changed(s.set.plans[i], &st);
        if (ph != ZDM_COMPLETE || changed) {
            nbad++;
            zdm_buf_printf(&bad, "  %-28s %s%s\n", s.set.plans[i]->id, zdm_phase_name(ph),
                           changed ? " (plan file changed since it was applied)" : "");
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(s.set.plans[i]->id));
            json_object_set_new(o, "phase", json_string(zdm_phase_name(ph)));
            json_object_set_new(o, "checksum_ok", json_boolean(!changed));
            json_array_append_new(arr, o);
        }
    }
    /* applied plans whose file is gone: as incomplete as any */
    zdm_strv gone = {0}, gone_ph = {0};
    if (rc == 0)
        rc = zdm_life_missing_files(s.db, &s.set, &gone, &gone_ph, err);
    json_t *missing = json_array();
    for (size_t i = 0; rc == 0 && i < gone.n; i++) {
        nbad++;
        zdm_buf_printf(&bad, "  %-28s %s (no plan file in %s: restore it to finish or roll it back)\n", gone.v[i],
                       gone_ph.v[i], cli->plans_dir);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(gone.v[i]));
        json_object_set_new(o, "phase", json_string(gone_ph.v[i]));
        json_array_append_new(missing, o);
    }
    if (rc == 0) {
        if (cli->json) {
            json_t *o = json_object();
            json_object_set_new(o, "ok", json_boolean(nbad == 0));
            json_object_set(o, "incomplete", arr);
            json_object_set(o, "missing_files", missing);
            json_dumpf(o, cli->out, JSON_INDENT(2));
            fputc('\n', cli->out);
            json_decref(o);
        } else if (nbad == 0) {
            fprintf(cli->out, "all %zu plans complete\n", s.set.n);
        } else {
            fprintf(cli->out, "%zu of %zu plans not complete or changed:\n%s", nbad, s.set.n + gone.n, bad.data);
        }
        if (nbad)
            rc = ZDM_EXIT_REFUSED;
    }
    json_decref(missing);
    zdm_strv_free(&gone);
    zdm_strv_free(&gone_ph);
    json_decref(arr);
    zdm_buf_free(&bad);
    close_session(&s);
    return rc;
}

/* --workers N: 1 (the default) to ZDM_LIFE_MAX_WORKERS; 0 with *n set,
 * or exit 2. */
static int parse_workers(const char *v, int *n, zdm_err *err)
{
    *n = 1;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < 1 || x > ZDM_LIFE_MAX_WORKERS) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "--workers \"%s\": expected a number of workers from 1 to %d", v,
                    ZDM_LIFE_MAX_WORKERS);
        zdm_err_detail(err, "for more than %d, start more zdm backfill processes (on this host or others): "
                            "they share the table by claiming key ranges", ZDM_LIFE_MAX_WORKERS);
        return ZDM_EXIT_USAGE;
    }
    *n = (int)x;
    return 0;
}

/* One worker: the whole of zdm backfill without --workers, and each
 * process of --workers N (index >= 1), which opens its own session. */
static int backfill_one(zdm_cli *cli, const char *listen, int index, int n, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    zdm_life_backfill_result res = ZDM_LIFE_BF_WORKER_DONE;
    zdm_phase ph = ZDM_PENDING;
    if (rc == 0) {
        zdm_life_opts o = {0, 0, cli->out, cli->db_url, &s.project, 0, NULL, 0};
        rc = zdm_life_backfill(s.db, s.plan, &o, listen, &res, &ph, err);
    }
    char who[48] = "";
    if (index > 0)
        snprintf(who, sizeof who, "worker %d/%d: ", index, n);
    if (rc == 0 && res == ZDM_LIFE_BF_ALREADY_DONE)
        fprintf(cli->out, "%s%s: backfill already done (phase %s)\n", who, s.plan->id, zdm_phase_name(ph));
    else if (rc == 0)
        fprintf(cli->out, "%s%s: %s\n", who, s.plan->id,
                res == ZDM_LIFE_BF_BACKFILLED ? "backfilled" : "this worker is done; other workers hold the remaining ranges");
    close_session(&s);
    return rc;
}

int zdm_cmd_backfill(zdm_cli *cli, zdm_err *err)
{
    int n;
    if (parse_workers(cli->workers, &n, err) != 0)
        return err->code;
    /* A malformed --listen is a usage error before anything is opened;
     * with N workers, worker i serves on PORT+i-1: each port is checked. */
    if (zdm_life_check_listen(cli->listen, err) != 0)
        return err->code;
    char addr[ZDM_LIFE_MAX_WORKERS][300];
    for (int i = 1; cli->listen && i <= n; i++)
        if (zdm_life_worker_listen(cli->listen, i, addr[i - 1], sizeof addr[i - 1], err) != 0)
            return err->code;
    if (n == 1)
        return backfill_one(cli, cli->listen, 0, 1, err);
    /* The parent checks the plan, the database and the gates once (one
     * refusal, not N), closes its connection, then only supervises. */
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    zdm_life_backfill_result res = ZDM_LIFE_BF_WORKER_DONE;
    zdm_phase ph = ZDM_PENDING;
    if (rc == 0)
        rc = zdm_life_backfill_gate(s.db, s.plan, &res, &ph, err);
    if (rc == 0 && res == ZDM_LIFE_BF_ALREADY_DONE)
        fprintf(cli->out, "%s: backfill already done (phase %s)\n", s.plan->id, zdm_phase_name(ph));
    char plan_id[256];
    snprintf(plan_id, sizeof plan_id, "%s", rc == 0 ? s.plan->id : "");
    close_session(&s);
    if (rc != 0 || res == ZDM_LIFE_BF_ALREADY_DONE)
        return rc;
    zdm_life_workers w;
    int index = 0;
    rc = zdm_life_workers_fork(&w, n, &index, err);
    if (index > 0) /* a worker process: runs and returns its own status */
        return backfill_one(cli, cli->listen ? addr[index - 1] : NULL, index, n, err);
    if (rc != 0)
        return rc;
    rc = zdm_life_workers_wait(&w, err);
    if (rc == 0)
        fprintf(cli->out, "%s: all %d backfill workers done\n", plan_id, n);
    return rc;
}

static int pause_resume(zdm_cli *cli, int paused, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0)
        rc = zdm_life_backfill_pause(s.db, s.plan, paused, err);
    if (rc == 0)
        fprintf(cli->out, "%s: backfill %s; every worker obeys before its next batch\n", s.plan->id,
                paused ? "paused" : "resumed");
    close_session(&s);
    return rc;
}

int zdm_cmd_pause(zdm_cli *cli, zdm_err *err)
{
    return pause_resume(cli, 1, err);
}

int zdm_cmd_resume(zdm_cli *cli, zdm_err *err)
{
    return pause_resume(cli, 0, err);
}

int zdm_cmd_set(zdm_cli *cli, zdm_err *err)
{
    if (cli->npos < 2 && !cli->reset) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "usage: zdm set PLAN [--reset] KEY=VALUE...");
        zdm_err_detail(err, "give at least one KEY=VALUE, or --reset to go back to the plan's settings");
        return ZDM_EXIT_USAGE;
    }
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0)
        rc = zdm_life_backfill_set(s.db, s.plan, &cli->pos[1], cli->npos - 1, cli->reset, err);
    if (rc == 0 && cli->reset)
        fprintf(cli->out, "%s: every zdm set override dropped\n", s.plan->id);
    for (int i = 1; rc == 0 && i < cli->npos; i++) {
        /* the value as stored ("010" is 10), in status's form */
        const zdm_live_key *key;
        long long v;
        if (zdm_live_parse(cli->pos[i], &key, &v, err) != 0) { /* parsed once already */
            rc = err->code;
            break;
        }
        json_t *j = zdm_live_json(key, v);
        char text[64];
        zdm_live_text(key->name, j, text, sizeof text);
        json_decref(j);
        fprintf(cli->out, "%s: %s = %s (workers apply it before their next batch)\n", s.plan->id, key->name, text);
    }
    close_session(&s);
    return rc;
}

int zdm_cmd_cutover(zdm_cli *cli, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0) {
        /* The phase is checked by the lifecycle under the plan's lock: a
         * check here, before the lock, let a concurrent cutover go on to
         * contract. */
        zdm_life_opts o = {cli->dry_run, 0, cli->out, cli->db_url, &s.project, 0, NULL, 0};
        rc = zdm_life_cutover(s.db, &s.set, s.plan, &o, err);
    }
    close_session(&s);
    return rc;
}

/* "2026-12-01T03:00 EST (-0500)": how a zone-less --at was read. */
static void local_reading(int64_t at_ms, char *buf, size_t size)
{
    time_t t = (time_t)(at_ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%S %Z (%z)", &tm))
        snprintf(buf, size, "local time");
}

int zdm_cmd_schedule(zdm_cli *cli, zdm_err *err)
{
    if (cli->npos == 2 && strcmp(cli->pos[1], "contract") != 0)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "only contract can be scheduled, not \"%s\"", cli->pos[1]);
    if (!!cli->at + !!cli->after + !!cli->cancel != 1) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "give exactly one of --at TIME, --after DURATION or --cancel");
        zdm_err_detail(err, "e.g. zdm schedule %s --after 24h, or --at 2026-11-22T03:00:00Z", cli->pos[0]);
        return ZDM_EXIT_USAGE;
    }
    int64_t at = 0, now = zdm_now_ms();
    int had_zone = 1;
    char ts[40], ts2[40], local[80] = "";
    if (cli->at) {
        if (zdm_parse_time_zone(cli->at, 1, &at, &had_zone, err) != 0)
            return ZDM_EXIT_USAGE;
        if (!had_zone)
            local_reading(at, local, sizeof local);
    } else if (cli->after) {
        /* "--after 90" once meant 90 seconds without a word: a unit is required. */
        size_t n = strlen(cli->after);
        if (n && cli->after[n - 1] >= '0' && cli->after[n - 1] <= '9') {
            zdm_err_set(err, ZDM_EXIT_USAGE, "--after %s: give a unit", cli->after);
            zdm_err_detail(err, "e.g. --after %ss, %sm, %sh or %sd", cli->after, cli->after, cli->after, cli->after);
            return ZDM_EXIT_USAGE;
        }
        int64_t ms;
        if (zdm_parse_duration_ms(cli->after, 1000, &ms, err) != 0)
            return ZDM_EXIT_USAGE;
        /* a time --at, status and history can write: before year 10000
         * ("--after 99999999d" scheduled year 275817) */
        if (ms > ZDM_SCHEDULE_MAX_MS - now) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "--after %s: that is after the year 9999", cli->after);
            zdm_err_detail(err, "give a shorter duration, or --cancel to leave the contract to not_before");
            return ZDM_EXIT_USAGE;
        }
        at = now + ms;
    }
    if (!cli->cancel && at < now && !cli->force) {
        char d[32];
        zdm_err_set(err, ZDM_EXIT_USAGE, "--at %s is %s in the past (%s)%s%s", cli->at,
                    zdm_format_duration(now - at, d, sizeof d), zdm_format_time(at, ts, sizeof ts),
                    local[0] ? ", read as local time " : "", local);
        zdm_err_detail(err, "give a later time, or add --force to make the contract due at once");
        return ZDM_EXIT_USAGE;
    }
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0)
        rc = zdm_life_schedule(s.db, s.plan, cli->cancel ? 0 : at, err);
    if (rc == 0) {
        zdm_plan_state st;
        rc = zdm_life_plan_state(s.db, s.plan->id, &st, err);
        if (rc == 0) {
            int64_t due = zdm_life_contract_due_ms(s.plan, &st);
            zdm_phase ph = st.known ? st.phase : ZDM_PENDING;
            /* Scheduling ahead is allowed, but never silently: the time
             * only matters once the plan is cut over. */
            if (!cli->cancel && ph != ZDM_CUT_OVER)
                zdm_log(ZDM_LOG_WARN, s.plan->id, NULL,
                        "the plan is %s, not cut over: %s", zdm_phase_name(ph),
                        ph == ZDM_ROLLED_BACK ? "the schedule counts only if it is advanced and cut over again"
                                                 : "the schedule counts once it is cut over");
            if (cli->json) {
                json_t *o = json_object();
                json_object_set_new(o, "id", json_string(s.plan->id));
                json_object_set_new(o, "phase", json_string(zdm_phase_name(ph)));
                json_object_set_new(o, "contract_after", at && !cli->cancel ? json_string(zdm_format_time(at, ts, sizeof ts)) : json_null());
                json_object_set_new(o, "contract_due", due ? json_string(zdm_format_time(due, ts2, sizeof ts2)) : json_null());
                json_object_set_new(o, "cancelled", json_boolean(cli->cancel));
                if (local[0])
                    json_object_set_new(o, "read_as_local_time", json_string(local));
                char *j = json_dumps(o, 0);
                fprintf(cli->out, "%s\n", j);
                free(j);
                json_decref(o);
            } else if (cli->cancel) {
                fprintf(cli->out, "%s: schedule cancelled; %s%s\n", s.plan->id,
                        due ? "contract due at " : "contract waits for a schedule (zdm schedule) or an operator's zdm advance",
                        due ? zdm_format_time(due, ts2, sizeof ts2) : "");
            } else {
                fprintf(cli->out, "%s: contract not before %s%s%s%s%s%s\n", s.plan->id,
                        zdm_format_time(at, ts, sizeof ts), local[0] ? " (UTC; given as local time " : "", local,
                        local[0] ? ")" : "", due > at ? "; the plan's not_before makes it due at " : "",
                        due > at ? zdm_format_time(due, ts2, sizeof ts2) : "");
            }
        }
    }
    close_session(&s);
    return rc;
}

int zdm_cmd_retry(zdm_cli *cli, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    int cleared = 0;
    char detail[700];
    if (rc == 0)
        rc = zdm_life_retry(s.db, s.plan, &cleared, detail, sizeof detail, err);
    if (rc == 0 && !cleared)
        fprintf(cli->out, "%s: not failed; nothing to clear\n", s.plan->id);
    else if (rc == 0)
        fprintf(cli->out, "%s: %s; the next zdm run-due tries contract again\n", s.plan->id, detail);
    close_session(&s);
    return rc;
}

int zdm_cmd_run_due(zdm_cli *cli, zdm_err *err)
{
    session s;
    /* One broken plan file must not hold every other plan's contract
     * back: the valid plans are handled, the run still exits 2 naming
     * the problems.  A plan whose file is broken is not contracted. */
    zdm_strv invalid = {0};
    int rc = open_session_with(cli, &s, NULL, &invalid, err);
    int advanced = 0;
    for (size_t k = 0; k < invalid.n; k++)
        fprintf(cli->errs, "%s\n", invalid.v[k]);
    if (rc == 0) {
        zdm_life_opts o = {0, cli->no_backup, cli->out, cli->db_url, &s.project, 0, NULL, 0};
        rc = zdm_life_run_due(s.db, &s.set, &o, &advanced, err);
    }
    if (rc == 0 && invalid.n) {
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "%zu problem%s in the plan files; the valid plans were handled, "
                         "the plans with problems were not", invalid.n, invalid.n == 1 ? "" : "s");
        zdm_err_detail(err, "fix them (zdm plan validate lists them)");
    }
    zdm_strv_free(&invalid);
    if (rc == 0 || advanced) {
        if (cli->json)
            fprintf(cli->out, "{\"contracted\": %d}\n", advanced);
        else
            fprintf(cli->out, "%d plan%s contracted\n", advanced, advanced == 1 ? "" : "s");
    }
    close_session(&s);
    return rc;
}
