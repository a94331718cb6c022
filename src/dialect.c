/*
 * dialect.c -- which dialect a connection speaks (see dialect.h).
 *
 * Owns: the mapping from a driver to its dialect table.  The tables
 * themselves live in dialect_pg.c and dialect_sqlite.c.
 */
#include "dialect.h"

const zdm_dialect *zdm_db_dialect(const zdm_db *db)
{
    return zdm_db_kind_of(db) == ZDM_DB_PG ? &zdm_dialect_pg : &zdm_dialect_sqlite;
}
