/*
 * cutover.c -- the cutover phase: backfilled -> cut_over.
 *
 * Owns: the cutover time (recorded at cutover, cleared by its undo).  The
 * switch of traffic itself is the operator's cutover hook, which the
 * lifecycle runs before this phase.
 */
#include "phase.h"

#include <stdio.h>

#include "util.h"

int zdm_cutover_run(zdm_phase_ctx *c, zdm_err *err)
{
    c->st->cutover_at_ms = zdm_now_ms();
    return zdm_state_set_cutover(c->db, c->plan->id, c->st->cutover_at_ms, err);
}

int zdm_cutover_dry(zdm_phase_ctx *c, zdm_err *err)
{
    (void)err;
    fprintf(c->out, "-- cutover: no statements; the cutover time is recorded\n");
    return 0;
}

int zdm_cutover_undo(zdm_phase_ctx *c, zdm_err *err)
{
    /* on_rollback, the switch back, already ran (rollback runs it first). */
    if (c->dry_run)
        return 0;
    c->st->cutover_at_ms = 0;
    return zdm_state_set_cutover(c->db, c->plan->id, 0, err);
}
