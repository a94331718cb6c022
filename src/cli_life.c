/*
 * cli_life.c -- the lifecycle commands: init, advance, rollback, status,
 * history, stamp, check, unlock.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill.h"
#include "cli.h"
#include "db.h"
#include "httpstat.h"
#include "lifecycle.h"
#include "log.h"
#include "state.h"
#include "util.h"

static int open_db(zdm_cli *cli, zdm_db **db, zdm_err *err)
{
    if (!cli->db_url) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "no database given");
        zdm_err_detail(err, "pass --db URL (postgres://..., a conninfo, or sqlite:PATH) or set ZDM_DATABASE_URL");
        return ZDM_EXIT_USAGE;
    }
    /* Only init and a real advance may create a SQLite file: anything else
     * on a mistyped path must fail, not leave an empty database behind. */
    int flags = cli->db_may_create && !cli->dry_run ? 0 : ZDM_DB_MUST_EXIST;
    if (cli->dry_run)
        flags |= ZDM_DB_MISSING_EMPTY;
    int rc = zdm_db_open_ex(cli->db_url, flags, db, err);
    if (rc == 0 && zdm_db_created(*db) && cli->db_may_create == 1) /* say so: a mistyped path shows here */
        fprintf(cli->errs, "zdm: no database file was at %s; created a new, empty one\n", zdm_db_safe_url(*db));
    if (rc == 0 && zdm_db_missing(*db))
        fprintf(cli->errs, "zdm: no database file at %s: the dry run shows what would run on a new, empty "
                           "database; no file is created\n", zdm_db_safe_url(*db));
    return rc;
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
    int rc2 = open_db(cli, &s->db, err);
    /* Every command, read-only ones too, refuses a layout it cannot read
     * rather than show plans as pending. */
    return rc2 == 0 ? zdm_state_check(s->db, err) : rc2;
}

static int open_session(zdm_cli *cli, session *s, const char *plan_name, zdm_err *err)
{
    return open_session_with(cli, s, plan_name, NULL, err);
}

static void close_session(session *s)
{
    if (s->db)
        zdm_db_close(s->db);
    zdm_project_free(&s->project);
    zdm_plan_set_free(&s->set);
}

int zdm_cmd_init(zdm_cli *cli, zdm_err *err)
{
    zdm_db *db = NULL;
    cli->db_may_create = 2; /* quietly: creating it is init's job */
    int rc = open_db(cli, &db, err);
    int from = ZDM_STATE_VERSION;
    if (rc == 0)
        rc = cli->upgrade ? zdm_state_upgrade(db, &from, err) : zdm_state_init(db, err);
    if (rc == 0) {
        int upgraded = from > 0 && from < ZDM_STATE_VERSION;
        if (cli->json && upgraded)
            fprintf(cli->out, "{\"ok\": true, \"database\": \"%s\", \"state_version\": %d, \"upgraded_from\": %d}\n",
                    zdm_db_dialect_name(db), ZDM_STATE_VERSION, from);
        else if (cli->json)
            fprintf(cli->out, "{\"ok\": true, \"database\": \"%s\", \"state_version\": %d}\n",
                    zdm_db_dialect_name(db), ZDM_STATE_VERSION);
        else if (upgraded)
            fprintf(cli->out, "zdm state in %s (%s) upgraded from layout %d to %d\n", zdm_db_safe_url(db),
                    zdm_db_dialect_name(db), from, ZDM_STATE_VERSION);
        else
            fprintf(cli->out, "zdm state ready in %s (%s, layout version %d)\n", zdm_db_safe_url(db),
                    zdm_db_dialect_name(db), ZDM_STATE_VERSION);
    }
    if (db)
        zdm_db_close(db);
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
    if (rc == 0)
        rc = zdm_state_init(s.db, err);
    if (rc == 0) {
        char holder[256], pid[32], detail[400];
        int removed = 0;
        rc = zdm_state_lock_remove(s.db, s.plan->id, &removed, holder, sizeof holder, pid, sizeof pid, err);
        if (rc == 0) {
            if (removed)
                snprintf(detail, sizeof detail, "removed the lock of %s pid %s", holder, pid);
            else
                snprintf(detail, sizeof detail, "no lock row was held");
            fprintf(cli->out, "%s: %s\n", s.plan->id, detail);
            zdm_history_entry h = {s.plan->id, "unlock", NULL, NULL, "ok", detail};
            rc = zdm_state_history_add(s.db, &h, NULL, err);
        }
    }
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
enum { PM_PHASE, PM_DUE, PM_OVERDUE, PM_WAITING, PM_FAILED, PM_ATTEMPTS, PM_LOCKED, PM_PROGRESS, PM__N };
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
};
/* The plan's throttle with the zdm set overrides applied (what workers use). */
static json_t *effective_settings(const zdm_plan *p, const json_t *ov)
{
    const zdm_throttle *t = &p->backfill->throttle;
    struct { const char *k; int64_t v; } plan[] = {
        {"batch_size", t->batch_size}, {"target_batch_ms", t->target_batch_ms},
        {"min_batch_size", t->min_batch_size}, {"max_batch_size", t->max_batch_size},
        {"max_rows_per_second", t->max_rows_per_second}, {"sleep_ms", t->sleep_ms},
        {"max_replication_lag_ms", t->max_replication_lag_ms}, {"max_lock_ms", t->max_lock_ms},
    };
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        json_t *v = json_object_get(ov, plan[i].k);
        json_object_set_new(o, plan[i].k, json_is_integer(v) ? json_copy(v) : json_integer(plan[i].v));
    }
    json_t *f = json_object_get(ov, "max_latency_factor");
    json_object_set_new(o, "max_latency_factor",
                        json_is_number(f) ? json_real(json_number_value(f)) : json_real((double)t->max_latency_pct / 100.0));
    return o;
}

/* NEXT for an expand that stopped half-way: how many steps are done, and
 * which one failed when the last run failed (rather than counting a step
 * that failed, or was left "running", as done). */
static int half_done_expand(session *s, const zdm_plan *p, char *next, size_t size, zdm_err *err)
{
    int done = 0, first_open = -1;
    for (size_t i = 0; i < p->nexpand; i++) {
        char st[16] = "";
        int rc = zdm_state_step_status(s->db, p->id, "expand", p->expand[i].index, st, err);
        if (rc != 0)
            return rc;
        if (strcmp(st, "done") == 0)
            done++;
        else if (first_open < 0)
            first_open = p->expand[i].index;
    }
    char outcome[16] = "";
    char *detail = NULL;
    int rc = zdm_state_history_last(s->db, p->id, "advance", outcome, &detail, err);
    if (rc != 0)
        return rc;
    if (strcmp(outcome, "failed") == 0 && first_open >= 0) {
        char line[160];
        snprintf(line, sizeof line, "%s", detail ? detail : "");
        line[strcspn(line, "\n")] = '\0';
        snprintf(next, size, "expand step %d failed (%d of %zu done): %s -- fix it, then zdm advance %s resumes, "
                 "zdm rollback %s undoes", first_open, done, p->nexpand, line, p->id, p->id);
    } else {
        snprintf(next, size, "expand stopped after %d of %zu steps: zdm advance %s resumes it, "
                 "zdm rollback %s undoes it", done, p->nexpand, p->id, p->id);
    }
    free(detail);
    return 0;
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
    int have_state = 0;
    if (rc == 0)
        have_state = zdm_state_exists(s.db);
    json_t *arr = json_array();
    for (size_t i = 0; rc == 0 && i < s.set.n; i++) {
        zdm_plan *p = s.set.plans[i];
        if (s.plan && p != s.plan)
            continue;
        zdm_plan_state st;
        memset(&st, 0, sizeof st);
        if (have_state) {
            rc = zdm_state_get(s.db, p->id, &st, err);
            if (rc != 0)
                break;
        }
        zdm_phase ph = st.known ? st.phase : ZDM_PENDING;
        int changed = st.known && ph != ZDM_PENDING && ph != ZDM_ROLLED_BACK &&
                      strcmp(st.checksum, p->checksum) != 0;
        char next[300], ts[40];
        zdm_life_next_action(p, &st, next, sizeof next);
        /* a half-done expand (a step failed, or the run was killed) */
        int applied = 0;
        if (have_state && st.known && (ph == ZDM_PENDING || ph == ZDM_ROLLED_BACK) &&
            (rc = zdm_state_steps_applied(s.db, p->id, &applied, err)) != 0)
            break;
        if (applied && (rc = half_done_expand(&s, p, next, sizeof next, err)) != 0)
            break;
        if (changed)
            snprintf(next, sizeof next, "plan file changed since %s: restore it or zdm stamp %s %s",
                     zdm_phase_name(ph), p->id, zdm_phase_name(ph));
        /* contract_due: whenever a due time exists (before cutover only a
         * schedule gives one); overdue: run-due (every 5 min) should have
         * contracted it by now -- 15 min of grace. */
        int64_t due = st.known && ph != ZDM_COMPLETE ? zdm_life_contract_due_ms(p, &st) : 0;
        int64_t now = zdm_now_ms();
        int waiting = ph == ZDM_CUT_OVER && !due;
        int overdue = ph == ZDM_CUT_OVER && due && now > due + 15 * 60 * 1000;
        char holder[300] = "";
        if (have_state && st.known && (rc = zdm_state_lock_holder(s.db, p->id, holder, sizeof holder, err)) != 0)
            break;
        zdm_backfill_progress bp;
        memset(&bp, 0, sizeof bp);
        if (have_state && p->backfill && (rc = zdm_backfill_progress_get(s.db, p->id, &bp, err)) != 0)
            break;
        json_t *ov = NULL; /* zdm set overrides */
        if (have_state && p->backfill) {
            char *txt = NULL;
            if ((rc = zdm_backfill_overrides(s.db, p->id, &txt, err)) != 0)
                break;
            json_error_t je;
            ov = json_loads(txt, 0, &je);
            free(txt);
        }
        if (!ov)
            ov = json_object();
        if (ph == ZDM_EXPANDED && bp.workers > 0 && !changed)
            snprintf(next, sizeof next, "wait: %d live backfill worker%s on it; the last one moves the plan to "
                     "backfilled", bp.workers, bp.workers == 1 ? " is" : "s are");
        if (ph == ZDM_EXPANDED && bp.started) {
            int64_t total = bp.total_est > bp.rows_done ? bp.total_est : bp.rows_done;
            char extra[400];
            snprintf(extra, sizeof extra, " -- backfill %lld/%lld rows, %d/%d ranges, %d worker%s%s%s%s",
                     (long long)bp.rows_done, (long long)total, bp.ranges_done, bp.ranges, bp.workers,
                     bp.workers == 1 ? "" : "s", bp.paused ? ", PAUSED" : "", bp.throttle[0] ? ", " : "",
                     bp.throttle);
            strncat(next, extra, sizeof next - strlen(next) - 1);
        }
        int64_t last_progress = 0;
        if (have_state && p->backfill && bp.started &&
            (rc = zdm_backfill_last_progress(s.db, p->id, &last_progress, err)) != 0) {
            json_decref(ov);
            break;
        }
        if (prom) {
            const char *id = p->id; /* plan ids are file names: no quotes or newlines */
            for (int k = 0; k < ZDM_PHASE__COUNT; k++)
                zdm_buf_printf(&pm[PM_PHASE], "zdm_plan_phase{plan=\"%s\",phase=\"%s\"} %d\n", id,
                               zdm_phase_name((zdm_phase)k), k == (int)ph);
            zdm_buf_printf(&pm[PM_DUE], "zdm_plan_contract_due_timestamp_seconds{plan=\"%s\"} %.3f\n", id,
                           (double)due / 1000.0);
            zdm_buf_printf(&pm[PM_OVERDUE], "zdm_plan_contract_overdue{plan=\"%s\"} %d\n", id, overdue);
            zdm_buf_printf(&pm[PM_WAITING], "zdm_plan_waiting_for_schedule{plan=\"%s\"} %d\n", id, waiting);
            zdm_buf_printf(&pm[PM_FAILED], "zdm_plan_failed{plan=\"%s\"} %d\n", id, st.failed_ms != 0);
            zdm_buf_printf(&pm[PM_ATTEMPTS], "zdm_plan_contract_attempts{plan=\"%s\"} %d\n", id, st.attempts);
            zdm_buf_printf(&pm[PM_LOCKED], "zdm_plan_lock_held{plan=\"%s\"} %d\n", id, holder[0] != 0);
            if (p->backfill)
                zdm_buf_printf(&pm[PM_PROGRESS], "zdm_backfill_last_progress_timestamp_seconds{plan=\"%s\"} %.3f\n",
                               id, (double)last_progress / 1000.0);
        } else if (cli->json) {
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(p->id));
            json_object_set_new(o, "phase", json_string(zdm_phase_name(ph)));
            json_object_set_new(o, "since", jtime(st.phase_since_ms));
            json_object_set_new(o, "next", json_string(next));
            json_object_set_new(o, "file", json_string(p->path));
            json_object_set_new(o, "checksum_ok", json_boolean(!changed));
            json_object_set_new(o, "cutover_at", jtime(st.cutover_at_ms));
            json_object_set_new(o, "contract_due", jtime(due));
            json_object_set_new(o, "waiting_for_schedule", json_boolean(waiting));
            json_object_set_new(o, "overdue", json_boolean(overdue));
            json_object_set_new(o, "attempts", json_integer(st.attempts));
            json_object_set_new(o, "last_error", st.last_error[0] ? json_string(st.last_error) : json_null());
            json_object_set_new(o, "last_attempt_at", jtime(st.last_attempt_ms));
            json_object_set_new(o, "failed_at", jtime(st.failed_ms));
            json_object_set_new(o, "lock_holder", holder[0] ? json_string(holder) : json_null());
            if (p->backfill) {
                json_t *b = json_object();
                json_t *wl = json_array();
                zdm_rows *wr = NULL;
                if (bp.started && zdm_backfill_workers(s.db, p->id, &wr, err) == 0) {
                    for (int k = 0; k < zdm_rows_count(wr); k++) {
                        json_t *wo = json_object();
                        json_object_set_new(wo, "worker", json_string(zdm_rows_get(wr, k, 0)));
                        json_object_set_new(wo, "range", json_integer(atoi(zdm_rows_get(wr, k, 1))));
                        json_object_set_new(wo, "range_rows_done", json_integer(strtoll(zdm_rows_get(wr, k, 2), NULL, 10)));
                        json_object_set_new(wo, "heartbeat", jtime(strtoll(zdm_rows_get(wr, k, 3), NULL, 10)));
                        const char *thr = zdm_rows_get(wr, k, 4);
                        json_object_set_new(wo, "throttle", thr ? json_string(thr) : json_null());
                        const char *lb = zdm_rows_get(wr, k, 5);
                        json_object_set_new(wo, "last_batch_at", jtime(lb ? strtoll(lb, NULL, 10) : 0));
                        json_array_append_new(wl, wo);
                    }
                }
                zdm_rows_free(wr);
                json_object_set_new(b, "worker_list", wl);
                json_object_set_new(b, "started", json_boolean(bp.started));
                json_object_set_new(b, "rows_done", json_integer(bp.rows_done));
                json_object_set_new(b, "rows_total_estimate", json_integer(bp.total_est));
                json_object_set_new(b, "ranges", json_integer(bp.ranges));
                json_object_set_new(b, "ranges_done", json_integer(bp.ranges_done));
                json_object_set_new(b, "workers", json_integer(bp.workers));
                json_object_set_new(b, "paused", json_boolean(bp.paused));
                json_object_set_new(b, "throttle", json_string(bp.throttle));
                json_object_set_new(b, "last_progress_at", jtime(last_progress));
                json_object_set_new(b, "settings", effective_settings(p, ov));
                json_object_set(b, "overrides", ov);
                json_object_set_new(o, "backfill", b);
            }
            json_array_append_new(arr, o);
        } else {
            if (i == 0 || (s.plan && p == s.plan))
                fprintf(cli->out, "%-28s %-12s %-21s %s\n", "PLAN", "PHASE", "SINCE", "NEXT");
            fprintf(cli->out, "%-28s %-12s %-21s %s\n", p->id, zdm_phase_name(ph),
                    st.phase_since_ms ? zdm_format_time(st.phase_since_ms, ts, sizeof ts) : "-", next);
            zdm_rows *wr = NULL;
            if (ph == ZDM_EXPANDED && bp.started && zdm_backfill_workers(s.db, p->id, &wr, err) == 0) {
                for (int k = 0; k < zdm_rows_count(wr); k++) {
                    const char *thr = zdm_rows_get(wr, k, 4);
                    fprintf(cli->out, "    worker %s: range %s, %s rows in it so far, heartbeat %s%s%s\n",
                            zdm_rows_get(wr, k, 0), zdm_rows_get(wr, k, 1), zdm_rows_get(wr, k, 2),
                            zdm_format_time(strtoll(zdm_rows_get(wr, k, 3), NULL, 10), ts, sizeof ts),
                            thr ? ", " : "", thr ? thr : "");
                }
            }
            zdm_rows_free(wr);
            if (json_object_size(ov)) {
                const char *k;
                json_t *v;
                fprintf(cli->out, "    zdm set overrides:");
                json_object_foreach(ov, k, v)
                    fprintf(cli->out, " %s=%lld", k, (long long)json_integer_value(v));
                fprintf(cli->out, " (zdm set %s --reset drops them)\n", p->id);
            }
        }
        json_decref(ov);
    }
    if (rc == 0 && prom) {
        for (int k = 0; k < PM__N; k++)
            if (pm[k].len)
                fprintf(cli->out, "%s%s", pm_head[k], pm[k].data);
    } else if (rc == 0 && cli->json) {
        json_t *o = json_object();
        json_object_set(o, "plans", arr);
        json_t *inv = json_array();
        for (size_t k = 0; k < invalid.n; k++)
            json_array_append_new(inv, json_string(invalid.v[k]));
        json_object_set_new(o, "invalid", inv);
        json_dumpf(o, cli->out, JSON_INDENT(2));
        fputc('\n', cli->out);
        json_decref(o);
    } else if (rc == 0 && s.set.n == 0 && !invalid.n) {
        fprintf(cli->out, "no plans in %s\n", cli->plans_dir);
    } else if (rc == 0) {
        for (size_t k = 0; k < invalid.n; k++)
            fprintf(cli->out, "INVALID %s\n", invalid.v[k]);
    }
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
    int rc = open_db(cli, &db, err);
    if (rc == 0)
        rc = zdm_state_check(db, err);
    zdm_history_filter f;
    if (rc == 0)
        rc = history_filter(cli, &f, err);
    zdm_history_list l = {0};
    if (rc == 0 && zdm_state_exists(db))
        rc = zdm_state_history_list(db, &f, &l, err);
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
    zdm_state_history_list_free(&l);
    if (db)
        zdm_db_close(db);
    return rc;
}

int zdm_cmd_check(zdm_cli *cli, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, NULL, err);
    int have_state = rc == 0 && zdm_state_exists(s.db);
    zdm_buf bad = {0};
    size_t nbad = 0;
    json_t *arr = json_array();
    for (size_t i = 0; rc == 0 && i < s.set.n; i++) {
        zdm_plan_state st;
        memset(&st, 0, sizeof st);
        if (have_state && (rc = zdm_state_get(s.db, s.set.plans[i]->id, &st, err)) != 0)
            break;
        zdm_phase ph = st.known ? st.phase : ZDM_PENDING;
        /* An applied plan whose file changed since is not what the
         * database holds: as bad as an incomplete one (status says so too). */
        int changed = st.known && ph != ZDM_PENDING && ph != ZDM_ROLLED_BACK &&
                      strcmp(st.checksum, s.set.plans[i]->checksum) != 0;
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
    if (rc == 0) {
        if (cli->json) {
            json_t *o = json_object();
            json_object_set_new(o, "ok", json_boolean(nbad == 0));
            json_object_set(o, "incomplete", arr);
            json_dumpf(o, cli->out, JSON_INDENT(2));
            fputc('\n', cli->out);
            json_decref(o);
        } else if (nbad == 0) {
            fprintf(cli->out, "all %zu plans complete\n", s.set.n);
        } else {
            fprintf(cli->out, "%zu of %zu plans not complete or changed:\n%s", nbad, s.set.n, bad.data);
        }
        if (nbad)
            rc = ZDM_EXIT_REFUSED;
    }
    json_decref(arr);
    zdm_buf_free(&bad);
    close_session(&s);
    return rc;
}

int zdm_cmd_backfill(zdm_cli *cli, zdm_err *err)
{
    /* A malformed --listen is a usage error before anything is opened. */
    if (cli->listen && zdm_httpstat_check_listen(cli->listen, err) != 0)
        return err->code;
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0)
        rc = zdm_state_init(s.db, err);
    zdm_plan_state st;
    if (rc == 0)
        rc = zdm_state_get(s.db, s.plan->id, &st, err);
    if (rc == 0) {
        zdm_phase ph = st.known ? st.phase : ZDM_PENDING;
        if (!s.plan->backfill) {
            rc = zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s has no [backfill]", s.plan->id);
        } else if (ph == ZDM_BACKFILLED || ph == ZDM_CUT_OVER || ph == ZDM_COMPLETE) {
            fprintf(cli->out, "%s: backfill already done (phase %s)\n", s.plan->id, zdm_phase_name(ph));
        } else if (ph != ZDM_EXPANDED) {
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is %s; the backfill runs after expand",
                             s.plan->id, zdm_phase_name(ph));
            zdm_err_detail(err, "run \"zdm advance %s\" first: it adds the new columns and the dual-write triggers",
                           s.plan->id);
        } else if (strcmp(st.checksum, s.plan->checksum) != 0) {
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s changed after it was expanded (%s)", s.plan->id,
                             s.plan->path);
            zdm_err_detail(err, "restore the file as it was, or accept it with \"zdm stamp %s expanded\"", s.plan->id);
        } else {
            zdm_backfill_opts o = {0, -1, cli->listen, cli->db_url, 0, NULL, NULL};
            rc = zdm_backfill_run(s.db, s.plan, &o, err);
            if (rc == 0 && o.finished_plan) {
                /* the worker that finished the backfill runs after_backfill */
                zdm_life_opts lo = {0, 0, cli->out, cli->db_url, &s.project, 0, NULL, 0};
                rc = zdm_life_after_backfill(s.db, s.plan, &lo, err);
            }
            if (rc == 0) {
                rc = zdm_state_get(s.db, s.plan->id, &st, err);
                if (rc == 0)
                    fprintf(cli->out, "%s: %s\n", s.plan->id,
                            st.phase == ZDM_BACKFILLED ? "backfilled" : "this worker is done; other workers hold the remaining ranges");
            }
        }
    }
    close_session(&s);
    return rc;
}

static int pause_resume(zdm_cli *cli, int paused, zdm_err *err)
{
    session s;
    int rc = open_session(cli, &s, cli->pos[0], err);
    if (rc == 0)
        rc = zdm_state_init(s.db, err);
    if (rc == 0 && !s.plan->backfill)
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s has no [backfill] to %s", s.plan->id, paused ? "pause" : "resume");
    if (rc == 0)
        rc = zdm_backfill_set_paused(s.db, s.plan, paused, err);
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
        rc = zdm_state_init(s.db, err);
    if (rc == 0 && !s.plan->backfill)
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s has no [backfill] to tune", s.plan->id);
    if (rc == 0)
        rc = zdm_backfill_set_many(s.db, s.plan, &cli->pos[1], cli->npos - 1, cli->reset, err);
    if (rc == 0 && cli->reset)
        fprintf(cli->out, "%s: every zdm set override dropped\n", s.plan->id);
    for (int i = 1; rc == 0 && i < cli->npos; i++) {
        const char *eq = strchr(cli->pos[i], '=');
        fprintf(cli->out, "%s: %.*s = %s (workers apply it before their next batch)\n", s.plan->id,
                (int)(eq - cli->pos[i]), cli->pos[i], eq + 1);
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
        rc = zdm_state_get(s.db, s.plan->id, &st, err);
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
    zdm_plan_state st;
    memset(&st, 0, sizeof st);
    if (rc == 0 && zdm_state_exists(s.db))
        rc = zdm_state_get(s.db, s.plan->id, &st, err);
    if (rc == 0 && !st.failed_ms && !st.attempts) {
        fprintf(cli->out, "%s: not failed; nothing to clear\n", s.plan->id);
    } else if (rc == 0) {
        int was_failed = 0;
        rc = zdm_state_contract_retry(s.db, s.plan->id, &was_failed, err);
        char detail[700];
        snprintf(detail, sizeof detail, "%s after %d contract attempt%s; last error: %s",
                 was_failed ? "failed state cleared" : "attempt count cleared", st.attempts,
                 st.attempts == 1 ? "" : "s", st.last_error[0] ? st.last_error : "(none)");
        zdm_history_entry h = {s.plan->id, "retry", zdm_phase_name(st.phase), NULL, "ok", detail};
        if (rc == 0)
            rc = zdm_state_history_add(s.db, &h, NULL, err);
        if (rc == 0)
            fprintf(cli->out, "%s: %s; the next zdm run-due tries contract again\n", s.plan->id, detail);
    }
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
