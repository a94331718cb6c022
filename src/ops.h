/*
 * ops.h -- structured operations: `op = "rename_column"` and friends.
 *
 * Owns: turning each op step of a loaded plan into the raw steps that do
 * it safely on each dialect (PostgreSQL and SQLite SQL side by side, with
 * their downs), the contract steps it implies, and, for the operations
 * that move data (rename_column, change_type, add_column with `up`), the
 * plan's backfill with its dual-write directions.  After zdm_ops_expand()
 * the plan holds raw steps only, so the step runner, dry runs, lint and
 * `plan show --sql` all see exactly the SQL that will run.
 *
 * Where SQLite cannot do an operation without rebuilding the table, the
 * step carries no SQLite SQL and a reason; running it there is refused
 * before anything changes.
 */
#ifndef ZDM_OPS_H
#define ZDM_OPS_H

#include "plan_model.h"

/* One structured operation (op = "NAME" in a step).  One table in ops.c
 * lists them all, each with its expansion: plan.c checks a step's fields
 * and phase against it, zdm_ops_expand() runs its expansion, zdm new
 * writes templates from it, and messages list its names from it. */
typedef struct zdm_op_spec {
    const char *name;
    const char *const *required;  /* NULL-terminated field names */
    const char *const *optional;  /* NULL-terminated field names */
    int expand_ok, contract_ok;
} zdm_op_spec;
const zdm_op_spec *zdm_op_find(const char *name);
/* The i-th operation of the table (0-based); NULL past the last. */
const zdm_op_spec *zdm_op_at(size_t i);
/* Every operation's name, in table order, ", "-separated.  malloc'd. */
char *zdm_op_names(void);

/* Expands p's op steps in place; problems go to diags (file:line:col).
 * Returns the number of errors added. */
int zdm_ops_expand(zdm_plan *p, zdm_diags *diags);

/* "name" quoted as an SQL identifier, each dot-separated part on its own
 * when `path` ("app"."events").  Same output as PQescapeIdentifier and
 * SQLite's %w for the names plans may contain.  malloc'd. */
char *zdm_ops_quote(const char *name, int path);

/* The view schema through which the new application version sees its
 * names during a rename or type change (PostgreSQL): "zdm_v_<plan>". */
void zdm_ops_version_schema(const zdm_plan *p, char *out, size_t size);

/* PostgreSQL: a DO block that rebuilds, without `column`, every view of
 * a zdm view schema (any plan's zdm_v_*) that shows table.column, with
 * its comment and privileges.  Runs before a DROP COLUMN, in its
 * transaction, so another plan's view schema never blocks a contract.
 * malloc'd. */
char *zdm_ops_pg_rebuild_views(const char *table, const char *column);

#endif
