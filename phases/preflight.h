/*
 * preflight.h -- the check before expand goes live (preflight.c).
 *
 * Owns: compiling, in a transaction that is always rolled back, every
 * expression of a plan (set.*, reverse.*, where, sources, verify,
 * pause_query), the dual-write trigger SQL and the backfill's batch
 * statements, against the live database and the columns expand adds.
 */
#ifndef ZDM_PREFLIGHT_H
#define ZDM_PREFLIGHT_H

#include "db.h"
#include "err.h"
#include "plan.h"

/* 0 when everything compiles; ZDM_EXIT_REFUSED naming file:line, the
 * expression and the database's message otherwise.  Changes nothing. */
int zdm_preflight(zdm_db *db, const zdm_plan *plan, zdm_err *err) ZDM_MUST_CHECK;

#endif
