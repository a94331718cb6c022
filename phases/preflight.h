/*
 * preflight.h -- the check before expand goes live (preflight.c).
 *
 * Owns: compiling, in a transaction that is always rolled back, every
 * expression of a plan (set.*, reverse.*, where, sources, verify,
 * pause_query), the dual-write trigger SQL and the backfill's batch
 * statements, against the live database and the columns expand adds;
 * and what a plan must not do to the other plans in flight on its table.
 */
#ifndef ZDM_PREFLIGHT_H
#define ZDM_PREFLIGHT_H

#include "db.h"
#include "err.h"
#include "plan.h"

/* 0 when everything compiles; ZDM_EXIT_REFUSED naming file:line, the
 * expression and the database's message otherwise.  Changes nothing. */
int zdm_preflight(zdm_db *db, const zdm_plan *plan, zdm_err *err) ZDM_MUST_CHECK;

/* Plans in flight on the same table (their dual-write triggers
 * installed: expanded, backfilled, cut_over).  Expand (contract = 0):
 * refuses a plan whose triggers would write a column another in-flight
 * plan's triggers write, or whose expand drops a column those triggers
 * use; logs the other plans on the table.  Contract (contract = 1):
 * refuses a contract that drops a column another in-flight plan's
 * triggers use (the drop would succeed on PostgreSQL, and every write
 * would then fail in the other plan's trigger function).  ZDM_EXIT_REFUSED
 * naming both plans; changes nothing. */
int zdm_preflight_shared(zdm_db *db, const zdm_plan *plan, const zdm_plan_set *set, int contract,
                         zdm_err *err) ZDM_MUST_CHECK;

/* The other plans of `set` with dual-write triggers on plan's backfill
 * table, or on a table plan's steps drop or rename columns of (ids into
 * *out; dialect: a zdm_db_kind, which SQL of a step to read): the plans
 * zdm_preflight_shared compares it with.  Their expand may run at the
 * same moment as plan's expand or contract, each seeing the other not yet
 * in flight; the caller holds their locks through it so that one waits
 * for the other. */
void zdm_preflight_neighbours(const zdm_plan *plan, const zdm_plan_set *set, int dialect, zdm_strv *out);

#endif
