/*
 * dialect.h -- what differs between PostgreSQL and SQLite, in one place.
 *
 * Owns: the dialect interface.  Each driver supplies one zdm_dialect
 * (dialect_pg.c, dialect_sqlite.c): the strings and small builders whose
 * text or behaviour differs between the two databases.  Everything above
 * the drivers (phases/, lifecycle, state, ops) asks zdm_db_dialect(db) for
 * the difference instead of branching on zdm_db_kind_of(): adding a third
 * dialect is then one new table here, not a hunt through the phases.
 *
 * A member is either a constant (a keyword, a name) or a builder that
 * appends SQL to a zdm_buf; builders quote identifiers through the
 * driver (zdm_db_ident) and never paste values.
 */
#ifndef ZDM_DIALECT_H
#define ZDM_DIALECT_H

#include "db.h"

typedef struct zdm_dialect {
    zdm_db_kind kind;
    /* "postgresql" | "sqlite": how messages name the database. */
    const char *name;
    /* "pg" | "sqlite": the key of a step's per-dialect SQL in a plan
     * (sql.pg = "...", down.sqlite = "..."). */
    const char *plan_key;
    /* 0 | 1: the index of this dialect in a step's per-dialect arrays
     * (zdm_step.unsupported_for). */
    int slot;

    /* ---- backfill ----
     * The batch SQL's differences (lock-row suffix, IS DISTINCT FROM, row
     * estimates, liveness of a worker, the backfill's own-transaction
     * mark): filled in by the backfill split (phases/backfill_*.c). */
} zdm_dialect;

extern const zdm_dialect zdm_dialect_pg;
extern const zdm_dialect zdm_dialect_sqlite;

/* The dialect of an open database (never NULL). */
const zdm_dialect *zdm_db_dialect(const zdm_db *db);

#endif
