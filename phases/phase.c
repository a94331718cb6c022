/*
 * phase.c -- the phase table and what the phases share.
 *
 * Owns: zdm_phases (each phase: its name, the phase it starts from and the
 * one it records, its hooks, gate, run, dry run and undo -- the functions
 * live in expand.c, backfill_phase.c, cutover.c and contract.c) and the
 * steps of a phase as they run (the plan's plus the dual-write step zdm
 * adds), for running and undoing.  The lifecycle's transition() is the
 * only code that runs the table's rows.
 */
#include "phase.h"

#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "dialect.h"
#include "hooks.h"
#include "mutant.h"
#include "ops.h"
#include "sqlkind.h"
#include "util.h"

const zdm_phase_def zdm_phases[] = {
    {"expand", ZDM_PENDING, ZDM_EXPANDED, ZDM_HOOK_BEFORE_EXPAND, ZDM_HOOK_AFTER_EXPAND, zdm_expand_gate,
     zdm_expand_run, zdm_expand_run, zdm_expand_undo},
    {"backfill", ZDM_EXPANDED, ZDM_BACKFILLED, ZDM_HOOK_BEFORE_BACKFILL, ZDM_HOOK_AFTER_BACKFILL, NULL,
     zdm_backfill_phase_run, zdm_backfill_phase_dry, zdm_backfill_phase_undo},
    {"cutover", ZDM_BACKFILLED, ZDM_CUT_OVER, ZDM_HOOK_CUTOVER, -1, NULL, zdm_cutover_run, zdm_cutover_dry,
     zdm_cutover_undo},
    {"contract", ZDM_CUT_OVER, ZDM_COMPLETE, ZDM_HOOK_BEFORE_CONTRACT, ZDM_HOOK_AFTER_CONTRACT,
     zdm_contract_gate, zdm_contract_run, zdm_contract_run, zdm_contract_undo},
};
const size_t zdm_nphases = sizeof zdm_phases / sizeof zdm_phases[0];

const zdm_phase_def *zdm_phase_def_from(zdm_phase from)
{
    if (from == ZDM_ROLLED_BACK)
        from = ZDM_PENDING;
    for (size_t i = 0; i < zdm_nphases; i++)
        if (zdm_phases[i].from == from)
            return &zdm_phases[i];
    return NULL;
}

const zdm_phase_def *zdm_phase_def_to(zdm_phase to)
{
    for (size_t i = 0; i < zdm_nphases; i++)
        if (zdm_phases[i].to == to)
            return &zdm_phases[i];
    return NULL;
}

int zdm_phase_steps(zdm_phase_ctx *c, int contract, zdm_step **list, size_t *n, zdm_step *dw, zdm_err *err)
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
    const zdm_dialect *dl = zdm_db_dialect(c->db);
    int kind = (int)dl->kind;
    size_t merge_at = ns, first_tx = ns;
    for (size_t i = 0; with_dw && contract && i < ns && merge_at == ns; i++) {
        const char *sql = zdm_step_sql(&src[i], kind);
        if (!sql || !zdm_step_in_transaction(&src[i], sql))
            continue;
        if (first_tx == ns)
            first_tx = i;
        if (dl->step_drops_columns(sql))
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
        const char *ssql = zdm_step_sql(&src[i], kind);
        zdm_buf prefix = {0};
        zdm_strv tabs = {0}, cols = {0};
        if (contract && dl->drop_rebuilds_views && ssql && zdm_step_in_transaction(&src[i], ssql) &&
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
            zdm_strv_push_owned(c->owned, full);
            st.sql = full;
            st.down = (char *)down; /* borrowed, like the rest of st */
            if (i == merge_at && down) {
                char *mdown = zdm_xasprintf("%s;\n%s", down, dw->down);
                zdm_strv_push_owned(c->owned, mdown);
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

int zdm_phase_undo_steps(zdm_phase_ctx *c, int contract, zdm_err *err)
{
    zdm_step *steps = NULL, dw;
    size_t nsteps = 0;
    const char *ph = contract ? "contract" : "expand";
    int rc = zdm_phase_steps(c, contract, &steps, &nsteps, &dw, err);
    if (rc == 0)
        rc = zdm_steps_undo(c->run, ph, steps, nsteps, err);
    free(steps);
    zdm_dw_step_free(&dw);
    if (rc == 0 && !c->dry_run && !zdm_mutant("rollback_keeps_steps"))
        rc = zdm_state_steps_clear(c->db, c->plan->id, ph, err);
    return rc;
}
