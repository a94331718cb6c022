/*
 * lifecycle.c -- the plan state machine (see lifecycle.h).
 *
 * Every entry point takes the plan's lock first, writes a history row
 * saying what it is about to do, runs the phase, and then records the new
 * phase and the outcome.  A refusal is written to history too, so the
 * record shows who tried what and why it was refused.
 */
#include "lifecycle.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "backfill.h"
#include "dialect.h"
#include "mutant.h"
#include "lint.h"
#include "mutant.h"
#include "ops.h"
#include "phase.h"
#include "preflight.h"
#include "sqlite_deps.h"
#include "sig.h"
#include "toml.h"
#include "util.h"

typedef struct ctx {
    zdm_db *db;
    const zdm_plan_set *set; /* may be NULL: no requires/dependents known */
    const zdm_plan *plan;
    const zdm_life_opts *o;
    int locked;
    int lock_lost;           /* guard() found the lock gone: run nothing more */
    zdm_plan_state st;
    const zdm_err *failure;  /* what on_failure hooks are told (ZDM_ERROR, ZDM_EXIT_CODE) */
    int64_t refused_hid;     /* the history row refuse() wrote, 0 when none */
    zdm_run run;             /* what the phase's steps run with */
    char detail[1200];       /* the transition's history detail (contract: the backup) */
    zdm_strv owned;     /* SQL built for the phase's steps (phase_steps) */
    const struct due_policy *due; /* run-due: its decision, taken again under the lock */
    int due_skip;            /* run-due: not due after all (another host tried meanwhile) */
    int due_parked;          /* run-due: failed meanwhile: refused, no attempt counted */
    zdm_strv req_locked;     /* required plans whose lock this run holds (expand) */
} ctx;

/* run-due's failure policy (zdm.toml [contract]). */
typedef struct due_policy {
    int max_attempts;
    int64_t retry_after_ms;
} due_policy;

enum { DUE_GO, DUE_WAIT, DUE_PARKED };

/* Whether run-due contracts this cut-over plan now, from the state st
 * says.  DUE_WAIT logs why unless quiet; DUE_PARKED fills e. */
static int due_decision(const zdm_plan *p, const zdm_plan_state *st, const due_policy *pol, int quiet,
                        zdm_err *e);

static int refuse(ctx *c, const char *action, zdm_phase to, zdm_err *err)
{
    /* err already says why; remember it. */
    if (!c->o->dry_run && zdm_state_exists(c->db)) {
        zdm_err e2;
        zdm_err_clear(&e2);
        zdm_history_entry h = {c->plan->id, action, zdm_phase_name(c->st.phase),
                               zdm_phase_name(to), "refused", err->msg};
        if (zdm_state_history_add_now_or_later(c->db, &h, err->reason, &c->refused_hid, &e2) != 0)
            zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "could not record the refusal in history: %s", e2.msg);
    }
    return err->code;
}

static void ctx_init(ctx *c, zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o)
{
    memset(c, 0, sizeof *c);
    c->db = db;
    c->set = set;
    c->plan = plan;
    c->o = o;
    /* SQLite: zdm's own writes (the lock row, state, history) wait for the
     * write lock under the plan's lock_timeout/lock_retries, not a fixed
     * 5 s. */
    if (zdm_db_kind_of(db) == ZDM_DB_SQLITE) {
        zdm_err e;
        zdm_err_clear(&e);
        if (zdm_db_set_timeouts(db, zdm_run_sqlite_wait_ms(plan), 0, &e) != 0) /* sqlite: cannot fail */
            zdm_log(ZDM_LOG_WARN, plan->id, NULL, "%s", e.msg);
    }
}

/* Lock, state, checksum: the gates every changing command passes. */
static int open_ctx(ctx *c, const char *action, int check_sum, zdm_err *err)
{
    if (c->o->dry_run) {
        if (!zdm_state_exists(c->db))
            return 0; /* never seen: everything pending, and we must not create tables */
        return zdm_state_get(c->db, c->plan->id, &c->st, err);
    }
    int rc = zdm_state_init(c->db, err);
    if (rc != 0)
        return rc;
    char holder[512];
    int got = 0;
    zdm_plan_state early = c->st;
    if (zdm_mutant("phase_unlocked") && zdm_state_get(c->db, c->plan->id, &early, err) != 0)
        return err->code;
    zdm_barrier("before_lock"); /* test builds: test_races holds runs here */
    rc = zdm_state_lock(c->db, c->plan->id, &got, holder, sizeof holder, err);
    if (rc != 0)
        return rc;
    if (!got) {
        rc = zdm_state_get(c->db, c->plan->id, &c->st, err);
        if (rc != 0)
            return rc;
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is locked by %s", c->plan->id, holder);
        zdm_err_reason(err, "lock_held");
        zdm_err_detail(err, "wait for that run to finish; if its process is gone for good, "
                            "run \"zdm unlock %s\"", c->plan->id);
        return refuse(c, action, c->st.phase, err);
    }
    c->locked = 1;
    zdm_db_cancel_arm(c->db); /* a second signal cancels the running statement */
    /* Only a holder of this lock writes "running" history rows, so any left
     * now belong to a run that died (kill -9, power loss): say so. */
    rc = zdm_state_history_mark_interrupted(c->db, c->plan->id, err);
    if (rc != 0)
        return rc;
    rc = zdm_state_get(c->db, c->plan->id, &c->st, err);
    if (rc != 0)
        return rc;
    if (zdm_mutant("phase_unlocked")) /* trusts the phase it read before the lock */
        c->st = early;
    /* A changed file is refused once anything of it was applied: after
     * expand, and also half-way through expand (steps recorded while the
     * plan is still pending), where an edited done step would be skipped. */
    int applied = c->st.known && c->st.phase != ZDM_PENDING && c->st.phase != ZDM_ROLLED_BACK;
    if (check_sum && c->st.known && !applied && strcmp(c->st.checksum, c->plan->checksum) != 0) {
        int n = 0;
        rc = zdm_state_steps_applied(c->db, c->plan->id, &n, err);
        if (rc != 0)
            return rc;
        applied = n > 0;
    }
    if (check_sum && applied && strcmp(c->st.checksum, c->plan->checksum) != 0) {
        zdm_err_set(err, ZDM_EXIT_REFUSED,
                    "plan %s changed after it was applied: %s has checksum %.12s, the database "
                    "recorded %.12s when it entered %s",
                    c->plan->id, c->plan->path, c->plan->checksum, c->st.checksum,
                    zdm_phase_name(c->st.phase));
        zdm_err_reason(err, "plan_changed");
        zdm_err_detail(err, "restore the file as it was (git checkout), or, if the database already "
                            "matches the new file, accept it with \"zdm stamp %s %s\"",
                       c->plan->id, zdm_phase_name(c->st.phase));
        return refuse(c, action, c->st.phase, err);
    }
    return 0;
}

static void close_ctx(ctx *c)
{
    if (c->locked)
        zdm_db_cancel_disarm();
    if (c->locked)
        zdm_state_unlock(c->db, c->plan->id);
    c->locked = 0;
    for (size_t i = 0; i < c->req_locked.n; i++)
        zdm_state_unlock(c->db, c->req_locked.v[i]);
    zdm_strv_free(&c->req_locked);
    zdm_strv_free(&c->owned);
}

static int64_t begin_history(ctx *c, const char *action, zdm_phase to)
{
    int64_t id = 0;
    zdm_err e;
    zdm_err_clear(&e);
    zdm_history_entry h = {c->plan->id, action, zdm_phase_name(c->st.phase), zdm_phase_name(to),
                           "running", NULL};
    if (zdm_state_history_add(c->db, &h, &id, &e) != 0)
        zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "could not write history: %s", e.msg);
    return id;
}

static void end_history(ctx *c, int64_t id, int rc, const zdm_err *err, const char *detail)
{
    if (!id)
        return;
    zdm_err e;
    zdm_err_clear(&e);
    const char *outcome = rc == 0                      ? "ok"
                          : rc == ZDM_EXIT_REFUSED     ? "refused"
                          : rc == ZDM_EXIT_INTERRUPTED ? "interrupted"
                                                       : "failed";
    /* Once more on failure: a row left "running" stays so until the next
     * run that takes the lock. */
    if (zdm_state_history_update(c->db, id, outcome, rc == 0 ? detail : err->msg, &e) != 0 &&
        (zdm_err_clear(&e), zdm_state_history_update(c->db, id, outcome, rc == 0 ? detail : err->msg, &e)) != 0)
        zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "could not update history row %lld: %s",
                (long long)id, e.msg);
}

static int set_phase(ctx *c, zdm_phase to, zdm_err *err)
{
    int rc = zdm_state_set_phase(c->db, c->plan->id, to, c->plan->checksum, err);
    if (rc == 0) {
        c->st.phase = to;
        c->st.known = 1;
    }
    return rc;
}

/* Runs the hooks of one event and writes a history row with their output.
 * from/to is the transition the hooks belong to, whatever the event:
 * ZDM_FROM_PHASE/ZDM_TO_PHASE, and the history row.  ZDM_PHASE and
 * ZDM_NEXT_PHASE say from -> to too, except for hooks that run once the
 * plan is in `to` (after_*, on_rollback of a plain rollback), which are
 * told to -> to, as they always were.
 * Returns 0 or ZDM_EXIT_FAIL (err names the failing hook). */
static int run_hooks(ctx *c, zdm_hook_event ev, zdm_phase from, zdm_phase to, int64_t hid,
                     zdm_err *err)
{
    int after = ev == ZDM_HOOK_AFTER_EXPAND || ev == ZDM_HOOK_AFTER_BACKFILL || ev == ZDM_HOOK_AFTER_CONTRACT ||
                (ev == ZDM_HOOK_ON_ROLLBACK && c->st.phase == to);
    zdm_phase phase = after ? to : from, next = to;
    const zdm_plan *p = c->plan;
    if (!zdm_hooks_count(c->o->project, p, ev))
        return 0;
    if (c->o->dry_run) {
        fprintf(c->o->out, "-- %s hooks run here\n", zdm_hook_event_name(ev));
        return 0;
    }
    char *url = zdm_url_without_password(zdm_db_safe_url(c->db));
    zdm_hook_env env = {zdm_phase_name(phase), zdm_phase_name(next), zdm_db_dialect_name(c->db), url,
                        (long long)hid, NULL, 0, zdm_phase_name(from), zdm_phase_name(to)};
    if (ev == ZDM_HOOK_ON_FAILURE && c->failure) {
        env.error = c->failure->msg;
        env.exit_code = c->failure->code;
    }
    zdm_buf tail = {0};
    int ran = 0;
    int rc = zdm_hooks_run(c->o->project, p, ev, &env, &ran, &tail, err);
    free(url);
    char action[64];
    snprintf(action, sizeof action, "hook %s", zdm_hook_event_name(ev));
    zdm_history_entry h = {p->id, action, zdm_phase_name(from), zdm_phase_name(to),
                           rc == 0 ? "ok" : rc == ZDM_EXIT_INTERRUPTED ? "interrupted" : "failed", tail.data};
    zdm_err e2;
    zdm_err_clear(&e2);
    if (zdm_state_history_add(c->db, &h, NULL, &e2) != 0)
        zdm_log(ZDM_LOG_WARN, p->id, NULL, "could not record the hook run in history: %s", e2.msg);
    zdm_buf_free(&tail);
    return rc;
}

/* The on_failure hooks of a transition that failed or was refused, told
 * why (ZDM_ERROR, ZDM_EXIT_CODE) and pointed at its history row, which
 * is closed by then.  err is left as it was. */
static void on_failure(ctx *c, zdm_phase from, zdm_phase to, int64_t hid, zdm_err *err)
{
    if (c->o->dry_run || err->code == ZDM_EXIT_INTERRUPTED)
        return;
    zdm_err keep = *err, e2;
    zdm_err_clear(&e2);
    c->failure = &keep;
    if (run_hooks(c, ZDM_HOOK_ON_FAILURE, from, to, hid, &e2) != 0)
        zdm_log(ZDM_LOG_WARN, c->plan->id, NULL, "on_failure hook failed too: %s", e2.msg);
    c->failure = NULL;
    *err = keep;
}

/* Expand holds the lock of every plan it requires until it is recorded:
 * otherwise a rollback of one of them could run between the check below
 * and the steps (the plan is not applied yet, so rollback sees no
 * dependent) and leave this plan expanded on top of a plan that is no
 * longer complete. */
static int lock_requires(ctx *c, zdm_err *err)
{
    for (size_t i = 0; i < c->plan->requires.n; i++) {
        const char *req = c->plan->requires.v[i];
        char holder[512];
        int got = 0;
        int rc = zdm_state_lock(c->db, req, &got, holder, sizeof holder, err);
        if (rc != 0)
            return rc;
        if (!got) {
            zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s requires %s, which is locked by %s", c->plan->id, req,
                        holder);
            zdm_err_reason(err, "required_locked");
            zdm_err_detail(err, "wait for that run to finish, then run \"zdm advance %s\" again", c->plan->id);
            return ZDM_EXIT_REFUSED;
        }
        zdm_strv_push(&c->req_locked, req);
    }
    return 0;
}

static int check_requires(ctx *c, const zdm_plan_set *set, zdm_err *err)
{
    zdm_buf missing = {0};
    for (size_t i = 0; i < c->plan->requires.n; i++) {
        const char *req = c->plan->requires.v[i];
        zdm_plan_state st;
        int rc = c->o->dry_run && !zdm_state_exists(c->db)
                     ? (memset(&st, 0, sizeof st), 0)
                     : zdm_state_get(c->db, req, &st, err);
        if (rc != 0) {
            zdm_buf_free(&missing);
            return rc;
        }
        if (st.phase != ZDM_COMPLETE)
            zdm_buf_printf(&missing, "%s%s (%s)", missing.len ? ", " : "", req,
                           zdm_phase_name(st.known ? st.phase : ZDM_PENDING));
    }
    (void)set;
    if (!missing.len)
        return 0;
    zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s requires plans that are not complete: %s",
                c->plan->id, missing.data);
    zdm_err_reason(err, "requires_incomplete");
    zdm_err_detail(err, "advance those plans to complete first (zdm status shows where each stands)");
    zdm_buf_free(&missing);
    return ZDM_EXIT_REFUSED;
}

int64_t zdm_life_contract_due_ms(const zdm_plan *plan, const zdm_plan_state *st)
{
    int64_t due = 0;
    if (plan->not_before_ms >= 0 && st->cutover_at_ms)
        due = st->cutover_at_ms + plan->not_before_ms;
    if (st->contract_after_ms > due)
        due = st->contract_after_ms;
    return due;
}

static int truthy(const char *v)
{
    return v && (strcmp(v, "t") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static int gate_contract(ctx *c, zdm_err *err)
{
    if (c->plan->backfill && !c->o->dry_run) {
        zdm_backfill_progress bp;
        int rc = zdm_backfill_progress_get(c->db, c->plan->id, &bp, err);
        if (rc != 0)
            return rc;
        if (bp.started && (bp.ranges_done < bp.ranges || bp.workers > 0)) {
            zdm_err_set(err, ZDM_EXIT_REFUSED,
                        "contract of %s refused: the backfill is not finished (%d of %d ranges done, %d worker%s active)",
                        c->plan->id, bp.ranges_done, bp.ranges, bp.workers, bp.workers == 1 ? "" : "s");
            zdm_err_reason(err, "backfill_unfinished");
            zdm_err_detail(err, "let \"zdm backfill %s\" finish first", c->plan->id);
            return ZDM_EXIT_REFUSED;
        }
    }
    int64_t due = zdm_life_contract_due_ms(c->plan, &c->st);
    int64_t now = zdm_now_ms();
    if (due > now) {
        char ts[40], d[32];
        zdm_err_set(err, ZDM_EXIT_REFUSED, "contract of %s is not due until %s (in %s)",
                    c->plan->id, zdm_format_time(due, ts, sizeof ts),
                    zdm_format_duration(due - now, d, sizeof d));
        zdm_err_reason(err, "not_due");
        zdm_err_detail(err, "the soak time after cutover has not passed; run again after that time "
                            "(\"zdm run-due\" from a timer does it for you)");
        return ZDM_EXIT_REFUSED;
    }
    if (c->plan->verify) {
        char *v = NULL;
        int rc = zdm_db_query_value(c->db, c->plan->verify, 0, NULL, &v, err);
        if (rc != 0) {
            zdm_err_prefix(err, "contract verify query of %s failed: ", c->plan->id);
            return rc;
        }
        int ok = truthy(v);
        if (!ok) {
            zdm_err_set(err, ZDM_EXIT_REFUSED,
                        "contract of %s refused: the verify query returned %s, not true",
                        c->plan->id, v ? v : "NULL");
            zdm_err_reason(err, "verify_false");
            zdm_err_detail(err, "the data is not ready for contract (verify = \"%s\"); "
                                "fix the rows it checks, then run again", c->plan->verify);
        }
        free(v);
        if (!ok)
            return ZDM_EXIT_REFUSED;
    }
    return 0;
}

/* The steps of a phase as run: the plan's, plus the dual-write trigger
 * step zdm adds (last in expand, first in contract).  *list is malloc'd
 * (the steps are shallow copies); *dw must be freed with zdm_dw_step_free. */
static int phase_steps(ctx *c, int contract, zdm_step **list, size_t *n, zdm_step *dw, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    const zdm_step *src = contract ? p->contract : p->expand;
    size_t ns = contract ? p->ncontract : p->nexpand;
    memset(dw, 0, sizeof *dw);
    int with_dw = p->backfill && p->backfill->dual_write;
    *list = zdm_xcalloc(ns + 2, sizeof **list);
    *n = 0;
    if (with_dw) {
        int rc = zdm_dw_step(c->db, p, contract, dw, err);
        if (rc != 0) {
            free(*list);
            *list = NULL;
            return rc;
        }
    }
    /* Contract: the triggers go in the same transaction as the first
     * step that drops a column (what they write), so a contract that
     * fails before or at it leaves dual-write in place; undoing that step
     * puts them back after its own down.  Failing that, with the first
     * step that runs in a transaction; without one, they are a step of
     * their own, first.  (Merged with the first transactional step, a
     * rename_column's no-op NOT NULL step removed them, and a DROP COLUMN
     * that then failed -- SQLITE_FULL -- left the plan cut_over with both
     * columns and no dual-write.) */
    int kind = zdm_db_kind_of(c->db);
    size_t merge_at = ns, first_tx = ns;
    for (size_t i = 0; with_dw && contract && i < ns && merge_at == ns; i++) {
        const char *sql = zdm_step_sql(&src[i], kind);
        if (!sql || !zdm_step_in_transaction(&src[i], sql))
            continue;
        if (first_tx == ns)
            first_tx = i;
        zdm_strv dt = {0}, dc = {0};
        int drops = 0;
        if (kind == ZDM_DB_SQLITE) {
            zdm_sqdeps_drops(sql, &dt);
            drops = dt.n > 0;
        } else {
            drops = zdm_sql_dropped_columns(sql, &dt, &dc);
        }
        zdm_strv_free(&dt);
        zdm_strv_free(&dc);
        if (drops)
            merge_at = i;
    }
    if (merge_at == ns)
        merge_at = first_tx;
    if (with_dw && contract && merge_at == ns)
        (*list)[(*n)++] = *dw;
    for (size_t i = 0; i < ns; i++) {
        zdm_step st = src[i];
        /* PostgreSQL: a contract step that drops a column first rebuilds,
         * in its own transaction, the view schemas (any plan's) that show
         * it, so another plan in flight on the table never blocks it. */
        zdm_strv tabs = {0}, cols = {0};
        const char *ssql = zdm_step_sql(&src[i], kind);
        zdm_buf prefix = {0};
        if (contract && kind == ZDM_DB_PG && ssql && zdm_step_in_transaction(&src[i], ssql) &&
            zdm_sql_dropped_columns(ssql, &tabs, &cols)) {
            for (size_t k = 0; k < cols.n; k++) {
                char *blk = zdm_ops_pg_rebuild_views(tabs.v[k], cols.v[k]);
                zdm_buf_puts(&prefix, blk);
                free(blk);
            }
        }
        zdm_strv_free(&tabs);
        zdm_strv_free(&cols);
        /* The views first: a query through a view locks the view, then the
         * table; taking them in the same order cannot deadlock with it. */
        if (prefix.len || i == merge_at) {
            const char *down = zdm_step_down(&src[i], kind);
            char *full = zdm_xasprintf("%s%s%s%s", prefix.len ? prefix.data : "", i == merge_at ? dw->sql : "",
                                       i == merge_at ? "\n" : "", ssql);
            zdm_strv_push_owned(&c->owned, full);
            st.sql = full;
            st.down = (char *)down; /* borrowed, like the rest of st */
            if (i == merge_at && down) {
                char *mdown = zdm_xasprintf("%s;\n%s", down, dw->down);
                zdm_strv_push_owned(&c->owned, mdown);
                st.down = mdown;
            }
            st.sql_for[0] = st.sql_for[1] = NULL;
            st.down_for[0] = st.down_for[1] = NULL;
            st.transaction = 1;
        }
        zdm_buf_free(&prefix);
        (*list)[(*n)++] = st;
    }
    if (with_dw && !contract)
        (*list)[(*n)++] = *dw;
    return 0;
}

/* PostgreSQL: the indexes (not unique) on a column that rename_column or
 * change_type drops at contract go with it -- not carried over.  Said at
 * expand, while the operator can still add them on the new column with
 * add_index.  (SQLite moves plain ones itself: sqlite_deps.c.)  Only a
 * warning: a catalog query that fails here changes nothing. */
static void warn_pg_lost_indexes(ctx *c)
{
    const zdm_plan *p = c->plan;
    if (zdm_db_kind_of(c->db) != ZDM_DB_PG)
        return;
    for (size_t i = 0; i < p->nexpand; i++) {
        const zdm_step *st = &p->expand[i];
        const char *op = st->op ? st->op : st->from_op;
        if (!op || (strcmp(op, "rename_column") != 0 && strcmp(op, "change_type") != 0) || !st->fields)
            continue;
        const toml_value *t = toml_get(st->fields, "table"), *col = toml_get(st->fields, "column");
        if (!t || !col || t->type != TOML_STRING || col->type != TOML_STRING)
            continue;
        const char *params[] = {t->u.str.ptr, col->u.str.ptr};
        zdm_rows *rows = NULL;
        zdm_err e = {0};
        if (zdm_db_query(c->db,
                         "SELECT DISTINCT i.indexrelid::regclass::text FROM pg_index i "
                         "JOIN pg_attribute a ON a.attrelid = i.indrelid "
                         " AND (a.attnum = ANY (i.indkey) OR pg_get_indexdef(i.indexrelid) ~ ('\\m' || a.attname || '\\M')) "
                         "WHERE i.indrelid = to_regclass($1) AND a.attname = $2 AND NOT i.indisunique ORDER BY 1",
                         2, params, &rows, &e) != 0) {
            zdm_err_clear(&e);
            continue;
        }
        for (int k = 0; k < zdm_rows_count(rows); k++)
            zdm_log(ZDM_LOG_WARN, p->id, "expand",
                    "index %s on %s.%s goes with the column at contract and is not carried over to the new "
                    "column: if queries need it there, add it with add_index (a later plan)",
                    zdm_rows_get(rows, k, 0), t->u.str.ptr, col->u.str.ptr);
        zdm_rows_free(rows);
        zdm_err_clear(&e);
    }
}

/* A backfill needs a key it can walk; refuse before expand changes
 * anything, when the table is already there to ask. */
static int gate_backfill_key(ctx *c, zdm_err *err)
{
    if (!c->plan->backfill)
        return 0;
    zdm_strv key = {0};
    int rc = zdm_backfill_key(c->db, c->plan, &key, err);
    zdm_strv_free(&key);
    if (rc == ZDM_EXIT_REFUSED && (!strcmp(err->reason, ZDM_KEY_NO_TABLE) || !strcmp(err->reason, ZDM_KEY_NO_COLUMN))) {
        zdm_err_clear(err); /* expand creates it */
        return 0;
    }
    return rc;
}

/* Expand is atomic by default: when a step fails, the steps this run
 * applied are undone (their down, newest first), so the schema is as it
 * was and nothing half-made (a NOT VALID constraint the application's
 * writes trip on) stays live.  on_failure = "stop" keeps them instead.
 * err keeps the failure; its detail says what was done about it. */
static void undo_failed_expand(ctx *c, zdm_run *run, const zdm_step *fresh, size_t n, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    if (p->expand_keep_partial) {
        zdm_err_detail(err, "on_failure = \"stop\": the steps applied so far stay (the plan stays pending); "
                            "fix the cause and run \"zdm advance %s\" to resume, or \"zdm rollback %s\"",
                       p->id, p->id);
        return;
    }
    zdm_err e;
    zdm_err_clear(&e);
    zdm_log(ZDM_LOG_WARN, p->id, "expand", "expand failed: undoing the steps this run applied");
    int rc = zdm_steps_undo(run, "expand", fresh, n, &e);
    if (rc == 0) {
        zdm_err_detail(err, "expand undone: the steps this run applied were rolled back with their down, the "
                            "schema is as before and the plan stays pending; fix the cause and run \"zdm advance "
                            "%s\" again", p->id);
    } else {
        zdm_log(ZDM_LOG_ERROR, p->id, "expand", "could not undo the failed expand: %s", e.msg);
        zdm_err_detail(err, "expand failed and could not be undone (%s); the steps applied so far stay: run "
                            "\"zdm rollback %s\" once that is fixed", e.msg, p->id);
    }
}

/* ---- the phases ----
 *
 * Each phase is a row of `phases` below: the phase it starts from and the
 * one it records, its hooks, a gate (refuses before anything changes), a
 * run, a dry run, and the undo that rollback calls.  transition() is the
 * only code that runs them and the only code that records a new phase
 * after advance or cutover. */

typedef struct phase_def {
    const char *name;        /* log tag: expand, backfill, cutover, contract */
    zdm_phase from, to;
    int before;              /* zdm_hook_event before anything changes (a failure refuses) */
    int after;               /* zdm_hook_event after the phase is recorded, -1 for none */
    int (*gate)(ctx *c, zdm_err *err);
    int (*run)(ctx *c, zdm_err *err);
    int (*dry_run)(ctx *c, zdm_err *err);
    int (*undo)(ctx *c, zdm_err *err);
} phase_def;

/* Before each step, and before recording the phase: the run still holds
 * the plan's lock (a PostgreSQL restart takes the advisory lock with the
 * session; zdm unlock takes an SQLite lock row away) and no signal asked
 * it to stop.  A run that lost its lock never goes on. */
static int guard(void *arg, zdm_err *err)
{
    ctx *c = arg;
    if (c->o->dry_run)
        return 0;
    if (zdm_sig_caught())
        return zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "plan %s: stopped by signal %d before the next step",
                           c->plan->id, zdm_sig_first());
    int held = 0;
    zdm_err e;
    zdm_err_clear(&e);
    int rc = zdm_state_lock_held(c->db, c->plan->id, &held, &e);
    if (rc == 0 && held)
        return 0;
    zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s: this run no longer holds the plan's lock (%s); stopped before "
                "the next step", c->plan->id,
                rc != 0 ? e.msg : "the database session that held it is gone, e.g. the server restarted, "
                                  "or zdm unlock removed it");
    zdm_err_detail(err, "another run may hold the plan now: check \"zdm status %s\" and \"zdm history %s\", "
                        "then run the command again", c->plan->id, c->plan->id);
    c->lock_lost = 1;
    return ZDM_EXIT_FAIL;
}

static void run_init(ctx *c)
{
    zdm_run *r = &c->run;
    memset(r, 0, sizeof *r);
    r->db = c->db;
    r->plan = c->plan;
    r->dry_run = c->o->dry_run;
    r->out = c->o->out;
    r->no_backup = c->o->no_backup;
    r->no_state = c->o->dry_run && !zdm_state_exists(c->db);
    r->before_step = guard;
    r->before_step_arg = c;
}

static int gate_expand(ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    int rc = zdm_lint_gate(p, c->set, ZDM_PHASE_EXPAND, c->o->allow, (int)zdm_db_kind_of(c->db), err);
    if (rc == 0 && !c->o->dry_run && !zdm_mutant("requires_unlocked"))
        rc = lock_requires(c, err);
    if (rc == 0)
        rc = check_requires(c, c->set, err);
    if (rc == 0)
        rc = zdm_steps_check_runnable(&c->run, "expand", p->expand, p->nexpand, err);
    /* A contract step this database cannot run would strand the plan
     * after cutover: refuse it now, before anything changes. */
    if (rc == 0)
        rc = zdm_steps_check_runnable(&c->run, "contract", p->contract, p->ncontract, err);
    if (rc == 0) /* SQLite: what the DROP COLUMNs to come would trip on */
        rc = zdm_sqdeps_gate(c->db, p, ZDM_SQDEPS_EXPAND, c->run.no_state, err);
    if (rc == 0 && !c->o->dry_run)
        warn_pg_lost_indexes(c);
    if (rc == 0)
        rc = gate_backfill_key(c, err);
    /* Every expression compiled by the database, before anything goes live. */
    if (rc == 0 && !c->o->dry_run)
        rc = zdm_preflight(c->db, p, err);
    if (rc == 0 && !c->o->dry_run) /* the other plans in flight on its table */
        rc = zdm_preflight_shared(c->db, p, c->set, 0, err);
    return rc;
}

static int gate_contract_all(ctx *c, zdm_err *err)
{
    int rc = zdm_lint_gate(c->plan, c->set, ZDM_PHASE_CONTRACT, c->o->allow, (int)zdm_db_kind_of(c->db), err);
    if (rc == 0)
        rc = gate_contract(c, err);
    if (rc == 0)
        rc = zdm_steps_check_runnable(&c->run, "contract", c->plan->contract, c->plan->ncontract, err);
    if (rc == 0)
        rc = zdm_sqdeps_gate(c->db, c->plan, ZDM_SQDEPS_CONTRACT, c->run.no_state, err);
    if (rc == 0 && !c->o->dry_run) /* a column another plan's triggers use */
        rc = zdm_preflight_shared(c->db, c->plan, c->set, 1, err);
    return rc;
}

static int run_expand(ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    int rc = 0;
    /* Record the file's checksum before the first step, so an edit made
     * while expand is half-done is caught (open_ctx). */
    if (!c->o->dry_run)
        rc = set_phase(c, ZDM_PENDING, err);
    /* The steps still to do before this run: a failed expand undoes
     * exactly those (unless on_failure = "stop"). */
    zdm_step *fresh = zdm_xcalloc(p->nexpand + 1, sizeof *fresh);
    size_t nfresh = 0;
    for (size_t i = 0; rc == 0 && !c->o->dry_run && i < p->nexpand; i++) {
        char st[16] = "";
        rc = zdm_state_step_status(c->db, p->id, "expand", p->expand[i].index, st, err);
        if (rc == 0 && strcmp(st, "done") != 0)
            fresh[nfresh++] = p->expand[i];
    }
    if (rc == 0)
        rc = zdm_steps_apply(&c->run, "expand", p->expand, p->nexpand, err);
    if (rc == 0 && p->backfill && p->backfill->dual_write) {
        /* After the plan's steps: the trigger reads their new columns. */
        zdm_step *steps = NULL, dw;
        size_t nsteps = 0;
        rc = phase_steps(c, 0, &steps, &nsteps, &dw, err);
        if (rc == 0)
            rc = zdm_steps_apply(&c->run, "expand", &steps[nsteps - 1], 1, err);
        else if (c->o->dry_run) {
            fprintf(c->o->out, "-- then the dual-write triggers (their SQL needs the table first: %s)\n", err->msg);
            zdm_err_clear(err);
            rc = 0;
        }
        free(steps);
        zdm_dw_step_free(&dw);
    }
    /* Never undo without the lock or after a signal: the next run resumes. */
    if (rc != 0 && rc != ZDM_EXIT_INTERRUPTED && !c->lock_lost && !c->o->dry_run)
        undo_failed_expand(c, &c->run, fresh, nfresh, err);
    free(fresh);
    return rc;
}

static int run_backfill(ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    if (!p->backfill)
        return 0;
    zdm_backfill_opts bo = {1, -1, NULL, c->o->url, 0, guard, c};
    int rc = zdm_backfill_run(c->db, p, &bo, err);
    zdm_db_cancel_arm(c->db); /* the worker armed its own connection */
    if (rc == 0) {
        zdm_plan_state st;
        rc = zdm_state_get(c->db, p->id, &st, err);
        if (rc == 0 && st.phase != ZDM_BACKFILLED)
            rc = zdm_err_set(err, ZDM_EXIT_FAIL, "backfill of %s ended but the plan is still %s",
                             p->id, zdm_phase_name(st.phase));
    }
    return rc;
}

static int dry_backfill(ctx *c, zdm_err *err)
{
    (void)err;
    const zdm_plan *p = c->plan;
    if (!p->backfill) {
        fprintf(c->o->out, "-- no [backfill]: the plan passes backfilled at once\n");
        return 0;
    }
    fprintf(c->o->out, "-- backfill of %s in keyset batches of %lld rows (adaptive), each:\n"
                       "UPDATE %s SET ", p->id, (long long)p->backfill->throttle.batch_size,
            p->backfill->table);
    for (size_t i = 0; i < p->backfill->nset; i++)
        fprintf(c->o->out, "%s%s = (%s)", i ? ", " : "", p->backfill->set[i].column, p->backfill->set[i].expr);
    fprintf(c->o->out, "\n  WHERE key > cursor AND key <= batch_end%s%s%s;\n",
            p->backfill->where ? " AND (" : "", p->backfill->where ? p->backfill->where : "",
            p->backfill->where ? ")" : "");
    return 0;
}

static int run_cutover(ctx *c, zdm_err *err)
{
    c->st.cutover_at_ms = zdm_now_ms();
    return zdm_state_set_cutover(c->db, c->plan->id, c->st.cutover_at_ms, err);
}

static int dry_cutover(ctx *c, zdm_err *err)
{
    (void)err;
    fprintf(c->o->out, "-- cutover: no statements; the cutover time is recorded\n");
    return 0;
}

static int run_contract(ctx *c, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    int rc = 0;
    if (p->ncontract) /* nothing to lose when contract removes nothing */
        rc = zdm_backup_sqlite(&c->run, err);
    if (rc == 0 && c->run.backup_path[0])
        snprintf(c->detail, sizeof c->detail, "backup: %s", c->run.backup_path);
    zdm_step *steps = NULL, dw;
    size_t nsteps = 0;
    memset(&dw, 0, sizeof dw);
    if (rc == 0)
        rc = phase_steps(c, 1, &steps, &nsteps, &dw, err);
    if (rc == 0)
        rc = zdm_steps_apply(&c->run, "contract", steps, nsteps, err);
    free(steps);
    zdm_dw_step_free(&dw);
    return rc;
}

/* Undoes the applied steps of one phase ("expand" or "contract", with the
 * dual-write step zdm adds) and then forgets their records, so a later
 * advance runs them all again. */
static int undo_steps(ctx *c, int contract, zdm_err *err)
{
    zdm_step *steps = NULL, dw;
    size_t nsteps = 0;
    const char *ph = contract ? "contract" : "expand";
    int rc = phase_steps(c, contract, &steps, &nsteps, &dw, err);
    if (rc == 0)
        rc = zdm_steps_undo(&c->run, ph, steps, nsteps, err);
    free(steps);
    zdm_dw_step_free(&dw);
    if (rc == 0 && !c->o->dry_run && !zdm_mutant("rollback_keeps_steps"))
        rc = zdm_state_steps_clear(c->db, c->plan->id, ph, err);
    return rc;
}

static int undo_contract(ctx *c, zdm_err *err)
{
    return undo_steps(c, 1, err);
}

/* Expand's undo also undoes what a failed contract did first (it may have
 * removed the dual-write triggers that expand's own undo drops). */
static int undo_expand(ctx *c, zdm_err *err)
{
    int rc = undo_steps(c, 1, err);
    if (rc == 0)
        rc = undo_steps(c, 0, err);
    return rc;
}

static int undo_backfill(ctx *c, zdm_err *err)
{
    if (c->o->dry_run || !c->plan->backfill)
        return 0;
    return zdm_backfill_reset(c->db, c->plan->id, err);
}

static int undo_cutover(ctx *c, zdm_err *err)
{
    /* on_rollback, the switch back, already ran (rollback runs it first). */
    if (c->o->dry_run)
        return 0;
    c->st.cutover_at_ms = 0;
    return zdm_state_set_cutover(c->db, c->plan->id, 0, err);
}

static const phase_def phases[] = {
    {"expand", ZDM_PENDING, ZDM_EXPANDED, ZDM_HOOK_BEFORE_EXPAND, ZDM_HOOK_AFTER_EXPAND, gate_expand,
     run_expand, run_expand, undo_expand},
    {"backfill", ZDM_EXPANDED, ZDM_BACKFILLED, ZDM_HOOK_BEFORE_BACKFILL, ZDM_HOOK_AFTER_BACKFILL, NULL,
     run_backfill, dry_backfill, undo_backfill},
    {"cutover", ZDM_BACKFILLED, ZDM_CUT_OVER, ZDM_HOOK_CUTOVER, -1, NULL, run_cutover, dry_cutover,
     undo_cutover},
    {"contract", ZDM_CUT_OVER, ZDM_COMPLETE, ZDM_HOOK_BEFORE_CONTRACT, ZDM_HOOK_AFTER_CONTRACT,
     gate_contract_all, run_contract, run_contract, undo_contract},
};
#define NPHASES (sizeof phases / sizeof phases[0])

/* The phase that starts from `from` (a rolled back plan expands again). */
static const phase_def *phase_from(zdm_phase from)
{
    if (from == ZDM_ROLLED_BACK)
        from = ZDM_PENDING;
    for (size_t i = 0; i < NPHASES; i++)
        if (phases[i].from == from)
            return &phases[i];
    return NULL;
}

/* The phase that records `to`. */
static const phase_def *phase_to(zdm_phase to)
{
    for (size_t i = 0; i < NPHASES; i++)
        if (phases[i].to == to)
            return &phases[i];
    return NULL;
}

static int hooks_only(ctx *c, zdm_phase from, zdm_err *err)
{
    const phase_def *d = phase_to(from);
    if (!d || d->after < 0) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "plan %s is %s: there are no after_* hooks to re-run", c->plan->id,
                    zdm_phase_name(from));
        return ZDM_EXIT_USAGE;
    }
    zdm_hook_event ev = (zdm_hook_event)d->after;
    int rc = run_hooks(c, ev, d->from, from, 0, err);
    if (rc == 0)
        fprintf(c->o->out, "%s: %zu %s hook%s ran\n", c->plan->id, zdm_hooks_count(c->o->project, c->plan, ev),
                zdm_hook_event_name(ev), zdm_hooks_count(c->o->project, c->plan, ev) == 1 ? "" : "s");
    return rc;
}

/*
 * The one transition function: every phase change by advance, cutover or
 * run-due comes through here.  Under the plan's lock (open_ctx) it reads
 * the phase again, checks that it is `want_from` when the caller asked for
 * one transition only (cutover: backfilled -> cut_over, never anything
 * else), gates, runs the before hooks and the phase with a guard before
 * every step, guards once more, records the phase and the history row,
 * and runs the after hooks.  The caller releases the lock (close_ctx).
 */
static int transition(ctx *c, const char *action, int want_from, zdm_err *err)
{
    const zdm_plan *p = c->plan;
    zdm_phase from = c->st.known ? c->st.phase : ZDM_PENDING;
    c->st.phase = from;
    run_init(c);
    if (c->o->hooks_only)
        return hooks_only(c, from, err);
    if (want_from >= 0 && from != (zdm_phase)want_from) {
        const phase_def *w = phase_from((zdm_phase)want_from);
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is %s; %s follows %s", p->id, zdm_phase_name(from),
                    w ? w->name : action, zdm_phase_name((zdm_phase)want_from));
        zdm_err_reason(err, "wrong_phase");
        if (from > (zdm_phase)want_from && from != ZDM_ROLLED_BACK)
            zdm_err_detail(err, "the %s already happened (zdm history %s shows when)", w ? w->name : action, p->id);
        else
            zdm_err_detail(err, "advance the plan to %s first", zdm_phase_name((zdm_phase)want_from));
        return c->o->dry_run ? err->code : refuse(c, action, w ? w->to : from, err);
    }
    /* run-due decided from state read before the lock; another host may
     * have tried (and failed) since.  Decide again from the state read
     * under the lock, so one backoff window sees one attempt. */
    if (c->due && from == ZDM_CUT_OVER) {
        int dd = due_decision(p, &c->st, c->due, 1, err);
        if (dd == DUE_WAIT) {
            c->due_skip = 1;
            return 0;
        }
        if (dd == DUE_PARKED) {
            c->due_parked = 1;
            return err->code;
        }
    }
    if (from == ZDM_COMPLETE) {
        fprintf(c->o->out, "plan %s is already complete; nothing to do\n", p->id);
        return 0;
    }
    const phase_def *d = phase_from(from);
    if (!d)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s: no phase starts from %s", p->id, zdm_phase_name(from));
    zdm_phase to = d->to;
    if (c->o->dry_run)
        fprintf(c->o->out, "-- zdm %s %s --dry-run on %s: %s -> %s\n\n", action, p->id,
                zdm_db_dialect_name(c->db), zdm_phase_name(from), zdm_phase_name(to));

    /* Gates first: a refusal changes nothing. */
    int rc = d->gate ? d->gate(c, err) : 0;
    if (rc != 0) {
        if (c->o->dry_run || rc != ZDM_EXIT_REFUSED)
            return rc;
        rc = refuse(c, action, to, err);
        on_failure(c, from, to, c->refused_hid, err);
        return rc;
    }

    int64_t hid = c->o->dry_run ? 0 : begin_history(c, action, to);
    int64_t t0 = zdm_mono_ms();
    if (!c->o->dry_run)
        zdm_log(ZDM_LOG_INFO, p->id, d->name, "starting: %s -> %s", zdm_phase_name(from), zdm_phase_name(to));

    /* A failing before_* (or cutover) hook refuses the transition: it runs
     * before anything changes. */
    rc = run_hooks(c, (zdm_hook_event)d->before, from, to, hid, err);
    if (rc != 0) {
        if (rc != ZDM_EXIT_INTERRUPTED) {
            err->code = rc = ZDM_EXIT_REFUSED;
            zdm_err_detail(err, "nothing was changed; fix what the hook checks (or the hook), then run "
                                "\"zdm %s %s\" again", action, p->id);
        } else {
            zdm_err_detail(err, "nothing was recorded; run \"zdm %s %s\" again", action, p->id);
        }
        end_history(c, hid, rc, err, NULL);
        on_failure(c, from, to, hid, err);
        return rc;
    }
    if (c->o->dry_run) {
        rc = d->dry_run(c, err);
        if (rc == 0 && d->after >= 0)
            rc = run_hooks(c, (zdm_hook_event)d->after, from, to, 0, err);
        return rc;
    }
    rc = guard(c, err);
    if (rc == 0)
        rc = d->run(c, err);
    if (rc == 0)
        rc = guard(c, err);
    if (rc == 0)
        rc = set_phase(c, to, err);
    char dur[32];
    if (rc == 0) {
        zdm_log(ZDM_LOG_INFO, p->id, d->name, "done: %s in %s", zdm_phase_name(to),
                zdm_format_duration(zdm_mono_ms() - t0, dur, sizeof dur));
        fprintf(c->o->out, "%s: %s -> %s\n", p->id, zdm_phase_name(from), zdm_phase_name(to));
        end_history(c, hid, rc, err, c->detail[0] ? c->detail : NULL);
        /* After hooks: the phase is done whatever they say; a failure is
         * reported (exit 1) and they can be re-run with --hooks-only.  They
         * are told which transition (its history row). */
        if (d->after >= 0) {
            rc = run_hooks(c, (zdm_hook_event)d->after, from, to, hid, err);
            if (rc != 0 && rc != ZDM_EXIT_INTERRUPTED)
                zdm_err_detail(err, "the plan is %s all the same; re-run the hooks with "
                                    "\"zdm advance %s --hooks-only\"", zdm_phase_name(to), p->id);
        }
        return rc;
    }
    zdm_log(ZDM_LOG_ERROR, p->id, d->name, "failed after %s: %s",
            zdm_format_duration(zdm_mono_ms() - t0, dur, sizeof dur), err->msg);
    if (!err->detail[0])
        zdm_err_detail(err, "the plan stays %s and every completed step is recorded; fix the cause "
                            "and run \"zdm advance %s\" again to resume, or \"zdm rollback %s\"",
                       zdm_phase_name(from), p->id, p->id);
    /* The row first: the hook is pointed at it, closed.  A run that lost
     * its lock runs nothing more, hooks included. */
    end_history(c, hid, rc, err, c->detail[0] ? c->detail : NULL);
    if (!c->lock_lost)
        on_failure(c, from, to, hid, err);
    return rc;
}

int zdm_life_advance(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o, zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, set, plan, o);
    int rc = open_ctx(&c, "advance", 1, err);
    if (rc == 0)
        rc = transition(&c, "advance", -1, err);
    close_ctx(&c);
    return rc;
}

int zdm_life_cutover(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan,
                     const zdm_life_opts *o, zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, set, plan, o);
    /* Recorded as "advance", as before: history's action names are kept. */
    int rc = open_ctx(&c, "advance", 1, err);
    if (rc == 0)
        rc = transition(&c, "advance", ZDM_BACKFILLED, err);
    close_ctx(&c);
    return rc;
}

/* The applied plans that require this one (rollback would pull the
 * ground from under them): a comma-separated list in *out. */
static int dependents(ctx *c, zdm_buf *out, zdm_err *err)
{
    if (!c->set || (c->o->dry_run && !zdm_state_exists(c->db)))
        return 0;
    for (size_t i = 0; i < c->set->n; i++) {
        const zdm_plan *q = c->set->plans[i];
        int needs = 0;
        for (size_t k = 0; k < q->requires.n && !needs; k++)
            needs = strcmp(q->requires.v[k], c->plan->id) == 0;
        if (!needs)
            continue;
        zdm_plan_state st;
        int rc = zdm_state_get(c->db, q->id, &st, err);
        if (rc != 0)
            return rc;
        int applied = st.known && st.phase != ZDM_PENDING && st.phase != ZDM_ROLLED_BACK;
        if (st.known && !applied) {
            int n = 0;
            rc = zdm_state_steps_applied(c->db, q->id, &n, err);
            if (rc != 0)
                return rc;
            applied = n > 0;
        }
        if (applied)
            zdm_buf_printf(out, "%s%s (%s)", out->len ? ", " : "", q->id, zdm_phase_name(st.phase));
    }
    return 0;
}

/* Refusals of rollback, checked under the lock before anything runs. */
static int gate_rollback(ctx *c, zdm_phase from, zdm_phase to, zdm_err *err)
{
    const zdm_plan *plan = c->plan;
    zdm_buf deps = {0};
    int rc = dependents(c, &deps, err);
    if (rc == 0 && deps.len) {
        rc = zdm_err_set(err, ZDM_EXIT_REFUSED, "rollback of %s refused: applied plans require it: %s", plan->id,
                         deps.data);
        zdm_err_reason(err, "dependents_applied");
        zdm_err_detail(err, "roll those plans back first (newest first), then roll back %s", plan->id);
    }
    zdm_buf_free(&deps);
    if (rc != 0)
        return rc;
    if (from == ZDM_CUT_OVER && !c->o->force) {
        zdm_err_set(err, ZDM_EXIT_REFUSED,
                    "rollback of %s refused: it is cut_over, so traffic already runs on the new version",
                    plan->id);
        zdm_err_reason(err, "cut_over_needs_force");
        zdm_err_detail(err, "switch traffic back first, or run \"zdm rollback %s --force\": it runs the "
                            "on_rollback hooks (the switch back) first and undoes expand only if they pass",
                       plan->id);
        return ZDM_EXIT_REFUSED;
    }
    if (to == ZDM_CUT_OVER && plan->ncontract) {
        for (size_t i = 0; i < plan->ncontract; i++)
            if (!zdm_step_down(&plan->contract[i], zdm_db_kind_of(c->db)) || plan->contract[i].op) {
                zdm_err_set(err, ZDM_EXIT_REFUSED,
                            "plan %s is complete and contract step %d (%s:%d) has no \"down\": "
                            "the removed structure cannot be restored; rollback refused",
                            plan->id, plan->contract[i].index, plan->path, plan->contract[i].line);
                zdm_err_reason(err, "contract_no_down");
                zdm_err_detail(err, "restore from the backup taken before contract (zdm history %s shows "
                                    "its path), or write a new plan that adds the structure back",
                               plan->id);
                return ZDM_EXIT_REFUSED;
            }
    }
    /* SQLite: a down that drops a column must not stop half-way. */
    return zdm_sqdeps_gate(c->db, plan, to == ZDM_CUT_OVER ? ZDM_SQDEPS_ROLLBACK_CONTRACT : ZDM_SQDEPS_ROLLBACK_EXPAND,
                           c->run.no_state, err);
}

/* Undoes the phases between `to` and `from`, newest first, through the
 * phase table: complete -> cut_over undoes contract; anything else goes
 * back to rolled_back by undoing cutover, backfill and expand. */
static int undo_to(ctx *c, zdm_phase from, zdm_phase to, zdm_err *err)
{
    int rc = 0;
    for (size_t k = NPHASES; rc == 0 && k-- > 0;) {
        const phase_def *d = &phases[k];
        if (to == ZDM_CUT_OVER ? d->to != ZDM_COMPLETE : (d->to == ZDM_COMPLETE || d->from > from))
            continue;
        rc = guard(c, err);
        if (rc == 0)
            rc = d->undo(c, err);
    }
    return rc;
}

int zdm_life_rollback(zdm_db *db, const zdm_plan_set *set, const zdm_plan *plan, const zdm_life_opts *o,
                      zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, set, plan, o);
    int rc = open_ctx(&c, "rollback", 1, err);
    if (rc != 0) {
        close_ctx(&c);
        return rc;
    }
    run_init(&c);
    zdm_phase from = c.st.known ? c.st.phase : ZDM_PENDING;
    if (from == ZDM_PENDING || from == ZDM_ROLLED_BACK) {
        /* An expand that failed part way (a validation that found bad
         * rows) leaves the plan pending with the steps it finished recorded
         * as done, and its message says to run zdm rollback: those steps
         * are undone like any others. */
        int partial = 0;
        if (!c.run.no_state && (rc = zdm_state_steps_applied(db, plan->id, &partial, err)) != 0) {
            close_ctx(&c);
            return rc;
        }
        if (!partial) {
            fprintf(o->out, "plan %s is %s; nothing to roll back\n", plan->id, zdm_phase_name(from));
            close_ctx(&c);
            return 0;
        }
    }
    zdm_phase to = from == ZDM_COMPLETE ? ZDM_CUT_OVER : ZDM_ROLLED_BACK;
    rc = gate_rollback(&c, from, to, err);
    if (rc != 0) {
        rc = o->dry_run || rc != ZDM_EXIT_REFUSED ? rc : refuse(&c, "rollback", to, err);
        close_ctx(&c);
        return rc;
    }
    if (o->dry_run)
        fprintf(o->out, "-- zdm rollback %s --dry-run on %s: %s -> %s\n\n", plan->id,
                zdm_db_dialect_name(db), zdm_phase_name(from), zdm_phase_name(to));
    int64_t hid = o->dry_run ? 0 : begin_history(&c, "rollback", to);
    /* After cutover the switch back comes first: undoing expand under live
     * traffic on the new version would break it. */
    int switched_back = from == ZDM_CUT_OVER;
    if (switched_back) {
        rc = run_hooks(&c, ZDM_HOOK_ON_ROLLBACK, from, to, hid, err);
        if (rc != 0 && rc != ZDM_EXIT_INTERRUPTED)
            zdm_err_detail(err, "nothing was undone: traffic may still be on the new version; fix the "
                                "switch back, then run \"zdm rollback %s --force\" again", plan->id);
        else if (rc == ZDM_EXIT_INTERRUPTED)
            zdm_err_detail(err, "nothing was undone and the plan is still cut_over, but the switch back was "
                                "stopped part-way: check where traffic goes, then run \"zdm rollback %s --force\" "
                                "again", plan->id);
    }
    if (rc == 0)
        rc = undo_to(&c, from, to, err);
    if (rc == 0 && !o->dry_run && plan->backfill)
        rc = zdm_backfill_settings_reset(db, plan->id, err); /* overrides were for this run of the plan */
    if (!o->dry_run) {
        if (rc == 0)
            rc = guard(&c, err);
        if (rc == 0)
            rc = set_phase(&c, to, err);
        if (rc == 0) {
            fprintf(o->out, "%s: %s -> %s\n", plan->id, zdm_phase_name(from), zdm_phase_name(to));
            if (to == ZDM_CUT_OVER)
                fprintf(o->out, "contract undone; run \"zdm rollback %s\" again to undo expand, with --force: "
                                "the plan is cut_over, so on_rollback switches traffic back first\n", plan->id);
            end_history(&c, hid, rc, err, NULL);
            if (!switched_back)
                rc = run_hooks(&c, ZDM_HOOK_ON_ROLLBACK, from, to, hid, err);
            hid = 0;
        } else if (!err->detail[0] && rc != ZDM_EXIT_REFUSED) {
            zdm_err_detail(err, "the steps undone so far are recorded; fix the cause and run "
                                "\"zdm rollback %s\" again to continue", plan->id);
        }
        end_history(&c, hid, rc, err, NULL);
    }
    close_ctx(&c);
    return rc;
}

int zdm_life_stamp(zdm_db *db, const zdm_plan *plan, zdm_phase phase, zdm_err *err)
{
    zdm_life_opts o = {0, 0, stdout, NULL, NULL, 0, NULL, 0};
    ctx c;
    ctx_init(&c, db, NULL, plan, &o);
    int rc = open_ctx(&c, "stamp", 0, err);
    if (rc == 0) {
        zdm_phase from = c.st.known ? c.st.phase : ZDM_PENDING;
        char detail[200];
        snprintf(detail, sizeof detail, "stamped by hand; checksum %.12s", plan->checksum);
        zdm_history_entry h = {plan->id, "stamp", zdm_phase_name(from), zdm_phase_name(phase), "ok", detail};
        rc = zdm_db_begin(db, err);
        if (rc == 0)
            rc = set_phase(&c, phase, err);
        /* Step records follow the stamp: stamped expanded means expand is done. */
        for (size_t i = 0; rc == 0 && i < plan->nexpand; i++)
            rc = zdm_state_step_mark(db, plan->id, "expand", plan->expand[i].index,
                                     phase == ZDM_PENDING || phase == ZDM_ROLLED_BACK ? "undone" : "done", err);
        for (size_t i = 0; rc == 0 && i < plan->ncontract; i++)
            rc = zdm_state_step_mark(db, plan->id, "contract", plan->contract[i].index,
                                     phase == ZDM_COMPLETE ? "done" : "undone", err);
        /* Stamped back before the backfill: its ranges start over. */
        if (rc == 0 && plan->backfill && (phase <= ZDM_EXPANDED || phase == ZDM_ROLLED_BACK))
            rc = zdm_backfill_reset(db, plan->id, err);
        if (rc == 0 && phase >= ZDM_CUT_OVER && phase != ZDM_ROLLED_BACK && !c.st.cutover_at_ms)
            rc = zdm_state_set_cutover(db, plan->id, zdm_now_ms(), err);
        if (rc == 0)
            rc = zdm_state_history_add(db, &h, NULL, err);
        if (rc == 0)
            rc = zdm_db_commit(db, err);
        else
            zdm_db_rollback(db);
        if (rc == 0)
            zdm_log(ZDM_LOG_INFO, plan->id, NULL, "stamped %s (was %s); nothing was run",
                    zdm_phase_name(phase), zdm_phase_name(from));
    }
    close_ctx(&c);
    return rc;
}

const char *zdm_life_next_action(const zdm_plan *plan, const zdm_plan_state *st, char *buf, size_t size)
{
    zdm_phase ph = st->known ? st->phase : ZDM_PENDING;
    switch (ph) {
    case ZDM_PENDING:
    case ZDM_ROLLED_BACK:
        snprintf(buf, size, "zdm advance %s (expand)", plan->id);
        break;
    case ZDM_EXPANDED:
        snprintf(buf, size, "zdm advance %s (%s)", plan->id, plan->backfill ? "backfill" : "no backfill: passes at once");
        break;
    case ZDM_BACKFILLED:
        snprintf(buf, size, "zdm advance %s (cutover)", plan->id);
        break;
    case ZDM_CUT_OVER: {
        int64_t due = zdm_life_contract_due_ms(plan, st);
        char ts[40];
        if (st->failed_ms)
            snprintf(buf, size, "contract FAILED %d times (%s): fix the cause, then zdm retry %s", st->attempts,
                     st->last_error, plan->id);
        else if (!due)
            snprintf(buf, size, "waiting for a schedule: zdm schedule %s --after DURATION (run-due contracts "
                     "only plans with a due time), or zdm advance %s to contract now", plan->id, plan->id);
        else if (due > zdm_now_ms())
            snprintf(buf, size, "zdm advance %s (contract) after %s", plan->id,
                     zdm_format_time(due, ts, sizeof ts));
        else
            snprintf(buf, size, "zdm advance %s (contract)", plan->id);
        break;
    }
    case ZDM_COMPLETE:
    default:
        snprintf(buf, size, "none");
        break;
    }
    return buf;
}

int zdm_life_schedule(zdm_db *db, const zdm_plan *plan, int64_t at_ms, zdm_err *err)
{
    zdm_life_opts o = {0, 0, stdout, NULL, NULL, 0, NULL, 0};
    ctx c;
    ctx_init(&c, db, NULL, plan, &o);
    int rc = open_ctx(&c, "schedule", 1, err);
    if (rc == 0) {
        zdm_phase ph = c.st.known ? c.st.phase : ZDM_PENDING;
        if (ph == ZDM_COMPLETE) {
            rc = zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s is already complete; nothing to schedule", plan->id);
        } else {
            if (!c.st.known)
                rc = set_phase(&c, ZDM_PENDING, err);
            if (rc == 0)
                rc = zdm_state_set_contract_after(db, plan->id, at_ms, err);
            /* The row says what is now in force and what it replaced:
             * the requested time alone does not tell when contract runs. */
            int64_t prev = c.st.contract_after_ms;
            zdm_plan_state now_st = c.st;
            now_st.contract_after_ms = at_ms;
            int64_t due = zdm_life_contract_due_ms(plan, &now_st);
            char ts[40], pts[40], dts[40], detail[300];
            snprintf(detail, sizeof detail, "%s%s (was %s); contract due: %s",
                     at_ms ? "contract not before " : "schedule cancelled",
                     at_ms ? zdm_format_time(at_ms, ts, sizeof ts) : "",
                     prev ? zdm_format_time(prev, pts, sizeof pts) : "not scheduled",
                     due ? zdm_format_time(due, dts, sizeof dts)
                         : (ph != ZDM_CUT_OVER && plan->not_before_ms >= 0 ? "counted from cutover (not_before)"
                                                                            : "none, waiting for a schedule"));
            zdm_history_entry h = {plan->id, "schedule", zdm_phase_name(ph), NULL, "ok", detail};
            if (rc == 0)
                rc = zdm_state_history_add(db, &h, NULL, err);
        }
    }
    close_ctx(&c);
    return rc;
}

static int due_decision(const zdm_plan *p, const zdm_plan_state *st, const due_policy *pol, int quiet,
                        zdm_err *e)
{
    int64_t due = zdm_life_contract_due_ms(p, st);
    if (!due) {
        /* No soak time anywhere (plan, zdm.toml, zdm schedule): run-due
         * never picks the moment on its own. */
        if (!quiet)
            zdm_log(ZDM_LOG_INFO, p->id, "contract",
                    "waiting for a schedule: no not_before and no zdm schedule; not contracted");
        return DUE_WAIT;
    }
    if (due > zdm_now_ms()) {
        char ts[40];
        if (!quiet)
            zdm_log(ZDM_LOG_INFO, p->id, "contract", "not due until %s", zdm_format_time(due, ts, sizeof ts));
        return DUE_WAIT;
    }
    if (st->failed_ms) {
        /* Parked: a person must look.  Exit 3 every run until then, but
         * no new history row each time: status and history say it. */
        zdm_err_set(e, ZDM_EXIT_REFUSED, "contract of %s failed %d time%s and is not tried again (last: %s)",
                    p->id, st->attempts, st->attempts == 1 ? "" : "s", st->last_error);
        zdm_err_detail(e, "fix the cause, then \"zdm retry %s\" (or \"zdm rollback %s\")", p->id, p->id);
        return DUE_PARKED;
    }
    if (st->attempts > 0) {
        int shift = st->attempts - 1 < 20 ? st->attempts - 1 : 20;
        int64_t next = st->last_attempt_ms + (pol->retry_after_ms << shift);
        if (zdm_now_ms() < next) {
            char ts[40];
            if (!quiet)
                zdm_log(ZDM_LOG_INFO, p->id, "contract", "attempt %d of %d failed (%s); next try after %s",
                        st->attempts, pol->max_attempts, st->last_error, zdm_format_time(next, ts, sizeof ts));
            return DUE_WAIT;
        }
    }
    return DUE_GO;
}

int zdm_life_run_due(zdm_db *db, const zdm_plan_set *set, const zdm_life_opts *o, int *advanced,
                     zdm_err *err)
{
    *advanced = 0;
    int rc = zdm_state_init(db, err);
    int failures = 0;
    zdm_err first;
    zdm_err_clear(&first);
    /* The failure policy (zdm.toml [contract]): after a failed or refused
     * contract, wait retry_after, then twice that, ...; after
     * max_attempts, the plan is failed and waits for "zdm retry".  So a
     * broken contract does not run its before_contract backup every 5
     * minutes forever. */
    const zdm_contract_defaults *cd = o->project ? &o->project->contract : NULL;
    due_policy pol;
    pol.max_attempts = cd && cd->max_attempts > 0 ? cd->max_attempts : 3;
    pol.retry_after_ms = cd && cd->retry_after_ms > 0 ? cd->retry_after_ms : 10 * 60 * 1000;
    int max_attempts = pol.max_attempts;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const zdm_plan *p = set->plans[i];
        zdm_plan_state st;
        rc = zdm_state_get(db, p->id, &st, err);
        if (rc != 0)
            break;
        if (!st.known || st.phase != ZDM_CUT_OVER)
            continue;
        zdm_err e;
        zdm_err_clear(&e);
        /* A first look without the lock, so plans not due take no lock
         * (and leave no "locked" refusal); transition() decides again
         * under the lock. */
        int dd = due_decision(p, &st, &pol, 0, &e);
        if (dd == DUE_WAIT)
            continue;
        if (dd == DUE_PARKED) {
            zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", e.msg);
            if (!failures++)
                first = e;
            continue;
        }
        /* cut_over -> complete only: the phase read above may be stale by
         * the time the lock is ours (rolled back meanwhile). */
        ctx c;
        ctx_init(&c, db, set, p, o);
        c.due = &pol;
        int r = open_ctx(&c, "advance", 1, &e);
        /* the one refusal open_ctx returns before holding the lock */
        int lock_busy = r == ZDM_EXIT_REFUSED && !c.locked;
        if (r == 0 && c.st.phase == ZDM_COMPLETE)
            fprintf(o->out, "plan %s is already complete; nothing to do\n", p->id);
        else if (r == 0)
            r = transition(&c, "advance", ZDM_CUT_OVER, &e);
        /* The attempt is counted before the lock is released: a host that
         * takes the lock next reads it, and waits out the backoff. */
        int counted = 0, n = 0, failed_now = 0;
        zdm_err e2;
        zdm_err_clear(&e2);
        if (r != 0 && !lock_busy && !c.due_parked && r != ZDM_EXIT_INTERRUPTED) {
            if (zdm_state_contract_attempt(db, p->id, 0, e.msg, max_attempts, &n, &failed_now, &e2) != 0)
                zdm_log(ZDM_LOG_WARN, p->id, "contract", "could not record the attempt: %s", e2.msg);
            else
                counted = 1;
        }
        zdm_plan_state locked_st = c.st;
        int skipped = c.due_skip, parked = c.due_parked;
        close_ctx(&c);
        if (r == 0 && skipped) {
            zdm_log(ZDM_LOG_INFO, p->id, "contract", "not contracted: another run tried it meanwhile");
        } else if (r == 0) {
            /* Another host may have contracted it between our read and our
             * lock ("already complete"): count only what this process did. */
            int mine = 0;
            if (zdm_state_history_count_mine(db, p->id, "advance", "complete", "ok", &mine, &e) == 0 && mine > 0)
                (*advanced)++;
            if ((locked_st.attempts || locked_st.last_error[0]) &&
                zdm_state_contract_attempt(db, p->id, 1, NULL, max_attempts, &n, &failed_now, &e2) != 0)
                zdm_log(ZDM_LOG_WARN, p->id, "contract", "could not clear the attempt count: %s", e2.msg);
        } else if (lock_busy) {
            /* another host got there first: it does the contract */
            zdm_log(ZDM_LOG_INFO, p->id, "contract", "skipped: %s", e.msg);
        } else if (r == ZDM_EXIT_INTERRUPTED) {
            /* stopped by a signal: not the contract's fault */
            if (!failures++)
                first = e;
            break;
        } else if (parked) {
            zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", e.msg);
            if (!failures++)
                first = e;
        } else {
            zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", e.msg);
            if (counted && failed_now) {
                char detail[ZDM_ERR_MSG + 100];
                snprintf(detail, sizeof detail, "contract failed %d times; run-due stops trying until "
                         "\"zdm retry %s\"; last error: %s", n, p->id, e.msg);
                zdm_history_entry h = {p->id, "failed", zdm_phase_name(ZDM_CUT_OVER), NULL, "failed", detail};
                if (zdm_state_history_add(db, &h, NULL, &e2) != 0)
                    zdm_log(ZDM_LOG_WARN, p->id, "contract", "could not record the failed state: %s", e2.msg);
                zdm_log(ZDM_LOG_ERROR, p->id, "contract", "%s", detail);
            } else if (counted) {
                char ts[40];
                int shift = n - 1 < 20 ? n - 1 : 20;
                zdm_log(ZDM_LOG_INFO, p->id, "contract", "attempt %d of %d failed; next try after %s", n,
                        max_attempts, zdm_format_time(zdm_now_ms() + (pol.retry_after_ms << shift), ts, sizeof ts));
            }
            if (!failures++)
                first = e;
        }
    }
    if (rc == 0 && failures) {
        *err = first;
        zdm_err_prefix(err, "%d due plan%s could not be contracted; first: ", failures, failures == 1 ? "" : "s");
        rc = first.code == ZDM_EXIT_REFUSED || first.code == ZDM_EXIT_INTERRUPTED ? first.code : ZDM_EXIT_FAIL;
        err->code = rc;
    }
    return rc;
}

int zdm_life_after_backfill(zdm_db *db, const zdm_plan *plan, const zdm_life_opts *o, zdm_err *err)
{
    ctx c;
    ctx_init(&c, db, NULL, plan, o);
    int rc = run_hooks(&c, ZDM_HOOK_AFTER_BACKFILL, ZDM_EXPANDED, ZDM_BACKFILLED, 0, err);
    if (rc != 0)
        zdm_err_detail(err, "the plan is backfilled all the same; re-run the hooks with "
                            "\"zdm advance %s --hooks-only\"", plan->id);
    return rc;
}

int zdm_life_overrides(const char *url, const zdm_plan *plan, char **json, zdm_err *err)
{
    *json = NULL;
    if (!plan->backfill)
        return 0;
    zdm_db *db = NULL;
    int rc = zdm_db_open(url, &db, err);
    if (rc == 0 && zdm_state_exists(db))
        rc = zdm_backfill_overrides(db, plan->id, json, err);
    if (db)
        zdm_db_close(db);
    return rc;
}
