/*
 * sqlite_deps.h -- what stands in the way of ALTER TABLE ... DROP COLUMN
 * on SQLite, found before anything changes.
 *
 * Owns: finding the columns a step's SQLite SQL drops, listing what
 * depends on each (indexes, views, triggers, CHECK / FOREIGN KEY /
 * generated columns of the table, foreign keys of other tables), the gate
 * that refuses a phase naming them, and dropping the plain indexes that go
 * with a column (as DROP COLUMN does on PostgreSQL).
 *
 * SQLite refuses DROP COLUMN while anything but a plain index of its own
 * table uses the column, and refuses it with an index too; it would do so
 * half-way through contract or rollback.  The gate replays the phase's
 * steps on a copy of the schema alone (an in-memory database, no rows),
 * so it sees the schema as each DROP COLUMN will, and asks SQLite itself
 * whether each object blocks it: no SQL parsing of views or triggers here.
 */
#ifndef ZDM_SQLITE_DEPS_H
#define ZDM_SQLITE_DEPS_H

#include "db.h"
#include "err.h"
#include "plan.h"

typedef enum zdm_sqdeps_what {
    ZDM_SQDEPS_EXPAND,           /* expand's pending steps, then contract's */
    ZDM_SQDEPS_CONTRACT,         /* contract's pending steps */
    ZDM_SQDEPS_ROLLBACK_EXPAND,  /* the downs of expand's applied steps, newest first */
    ZDM_SQDEPS_ROLLBACK_CONTRACT /* the downs of contract's applied steps, newest first */
} zdm_sqdeps_what;

/* Refuses (ZDM_EXIT_REFUSED) when a DROP COLUMN in the steps `what` runs
 * would fail or break something, naming every dependency and what to do.
 * The plan's own dual-write triggers do not count: zdm removes them first.
 * No-op (0) on PostgreSQL.  no_state: zdm's tables are not there yet
 * (every step pending). */
int zdm_sqdeps_gate(zdm_db *db, const zdm_plan *p, zdm_sqdeps_what what, int no_state,
                    zdm_err *err) ZDM_MUST_CHECK;

/* SQLite, inside the step's transaction, before its SQL: drops the plain
 * indexes on every column `sql` drops, so the column goes with them as on
 * PostgreSQL; one on a column a rename_column of p replaces is rebuilt on
 * the new column (same name).  No-op on PostgreSQL. */
int zdm_sqdeps_before_drop(zdm_db *db, const zdm_plan *p, const char *sql, zdm_err *err) ZDM_MUST_CHECK;

/* SQLite: db's schema as this connection sees it now (the changes of its
 * open transaction included), without rows, into *snap (free it with
 * zdm_sqdeps_schema_free).  A read of sqlite_master only: the copy is
 * made from it later, by zdm_sqdeps_try_on_schema, when no lock need be
 * held.  *snap stays NULL on PostgreSQL.  Returns an error only when the
 * schema cannot be read. */
typedef struct zdm_sqdeps_schema zdm_sqdeps_schema;
int zdm_sqdeps_schema_read(zdm_db *db, zdm_sqdeps_schema **snap, zdm_err *err) ZDM_MUST_CHECK;
void zdm_sqdeps_schema_free(zdm_sqdeps_schema *snap);

/* Runs `sqls` in order on an in-memory copy of snap.  *failed: the index
 * of the first statement that failed (SQLite's message in err), or -1
 * when all ran.  *tried: 0 when nothing was tried (no snap, or the copy
 * could not be made, or lacks an object of the real schema).  Why: on
 * SQLite, ALTER TABLE ... DROP COLUMN rewrites every row of the table
 * under the write lock, so trying a step's down on the real file stalls
 * every writer of the application for as long as the rewrite takes (a
 * table of 500,000 rows: 50-130 ms; of gigabytes: minutes).  On the copy
 * it costs nothing, and made outside the transaction it holds no lock. */
void zdm_sqdeps_try_on_schema(const zdm_sqdeps_schema *snap, const char *const *sqls, size_t n, int *tried,
                              long *failed, zdm_err *err);

/* The (table, column) pairs `sql` drops with ALTER TABLE ... DROP
 * [COLUMN], unquoted, appended to out as "table" then "column". */
void zdm_sqdeps_drops(const char *sql, zdm_strv *out);

#endif
