/*
 * dialect_pg.c -- PostgreSQL's dialect table (see dialect.h).
 *
 * Owns: PostgreSQL's answers to every question dialect.h asks: its SQL
 * templates and catalog queries (pg_index, pg_attribute, ...).
 */
#include "dialect.h"

const zdm_dialect zdm_dialect_pg = {
    .kind = ZDM_DB_PG,
    .name = "postgresql",
    .plan_key = "pg",
    .slot = 0,
    /* ---- backfill ---- */
};
