/*
 * sqlkind.h -- statement kinds from PostgreSQL's parser (see sqlkind.c).
 *
 * Owns: which SQL must run outside a transaction, and the index a
 * CREATE INDEX CONCURRENTLY builds.
 */
#ifndef ZDM_SQLKIND_H
#define ZDM_SQLKIND_H

#include "util.h"

/* 1 when sql holds a statement PostgreSQL refuses inside a transaction
 * block (CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM,
 * CREATE/DROP DATABASE or TABLESPACE, ALTER SYSTEM), decided from the
 * parse tree.  SQL the PostgreSQL grammar rejects (SQLite dialect): 1 when
 * a statement starts with VACUUM.  NULL: 0. */
int zdm_sql_needs_autocommit(const char *sql);

/* When sql is one CREATE INDEX CONCURRENTLY statement naming its index:
 * 1 and *name (and *schema, the table's schema or NULL), malloc'd; else 0. */
int zdm_sql_concurrent_index(const char *sql, char **schema, char **name);

/* The columns sql takes away (ALTER TABLE ... DROP COLUMN, and the old
 * name of ALTER TABLE ... RENAME COLUMN): each table ("schema.table" or
 * "table", as written) and column pushed in step onto tables and cols.
 * Returns how many; 0 when sql does not parse. */
int zdm_sql_dropped_columns(const char *sql, zdm_strv *tables, zdm_strv *cols);

#endif
