/*
 * dialect_sqlite.c -- SQLite's dialect table (see dialect.h).
 *
 * Owns: SQLite's answers to every question dialect.h asks: its SQL
 * templates and catalog queries (pragma_table_info, pragma_index_list, ...).
 */
#include "dialect.h"

const zdm_dialect zdm_dialect_sqlite = {
    .kind = ZDM_DB_SQLITE,
    .name = "sqlite",
    .plan_key = "sqlite",
    .slot = 1,
    /* ---- backfill ---- */
};
