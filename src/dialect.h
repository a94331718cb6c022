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

#include <stdint.h>

#include "db.h"
#include "plan.h"
#include "util.h"

/* What a plan's dual-write triggers do, as a dialect's trigger builder
 * needs it (phases/dualwrite.c fills it from the plan). */
typedef struct zdm_dw_spec {
    const char *plan_id;   /* the backfill's own-transaction mark the triggers step aside for */
    const char *table;     /* as the plan names it (PostgreSQL: may be schema.table) */
    const char *base;      /* trigger and function name base, zdm's own */
    const zdm_assign *set;
    size_t nset;
    const zdm_assign *reverse; /* two-way: the old columns from the new */
    size_t nreverse;
    const zdm_strv *sources;   /* [backfill.dual_write] sources, or empty */
    const char *where;         /* rows the triggers convert; NULL: every row */
    int in_place;              /* convert every matching write, whoever wrote it */
    int reverse_on_insert;     /* an INSERT fills the old columns even when given */
    const zdm_strv *text_cmp;  /* columns of a type without "=", compared
                                * as text (NULL: none) */
    const zdm_strv *exact_cmp; /* columns whose "=" holds only for the same
                                * text: a source's change of text is a
                                * change to "=" (NULL: none) */
    int any_update;            /* the forward UPDATE trigger fires on every
                                * UPDATE, its WHEN comparing the sources (an
                                * application trigger may change them) */
    const zdm_strv *cols;      /* the columns the expressions may name */
    const zdm_strv *key;       /* the row identity (dialects with dw_needs_key) */
} zdm_dw_spec;

/* Why a table's rows cannot be walked by key (zdm_dialect.key_of); the
 * reason goes into the refusal's zdm_err (zdm_err_reason).  The first two
 * name something expand may still create. */
#define ZDM_KEY_NO_TABLE "key_no_table"
#define ZDM_KEY_NO_COLUMN "key_no_column"
#define ZDM_KEY_NO_PRIMARY "key_no_primary"
#define ZDM_KEY_NULLABLE "key_nullable"
#define ZDM_KEY_NOT_UNIQUE "key_not_unique"
typedef struct zdm_key_refusal {
    const char *why;    /* NULL: the key is usable */
    const char *reason; /* ZDM_KEY_* */
} zdm_key_refusal;

/* The settings a PostgreSQL dual-write function keeps from zdm's session
 * (dialect_pg.c says why): search_path always; the settings that change a
 * value's text or a stable function's result where the server finds the
 * plan's expressions can meet them (pg_value_settings). */
#define ZDM_PG_DW_SETTINGS "SET search_path FROM CURRENT"
#define ZDM_PG_DW_VALUE_SETTINGS                                                                               \
    "SET TimeZone FROM CURRENT SET DateStyle FROM CURRENT SET IntervalStyle FROM CURRENT SET "                \
    "extra_float_digits FROM CURRENT SET bytea_output FROM CURRENT SET array_nulls FROM CURRENT SET "         \
    "timezone_abbreviations FROM CURRENT"

/* A table as the dual-write preflight sees it (zdm_dialect.table_facts). */
typedef struct zdm_column_fact {
    char *name;
    char *def;                 /* its default as SQL text; NULL: none */
    int unreadable_generated;  /* generated, and a dual-write trigger sees
                                * it NULL (PostgreSQL: a BEFORE ROW trigger
                                * runs before stored ones are computed) */
    int partition_key;         /* in a partition key of the table, of a
                                * partition below it or a table above it
                                * (PostgreSQL refuses a BEFORE trigger that
                                * moves the row) */
    int no_equality;           /* of a type whose "=" is missing or may fail
                                * when it runs (PostgreSQL: json, xml,
                                * geometric, composite, arrays of them):
                                * compared as text */
    int exact_equality;        /* of a type whose "=" holds only between
                                * values of the same text (PostgreSQL:
                                * integers, text under a deterministic
                                * collation, uuid, timestamps...; not
                                * numeric, where 1.5 = 1.50) */
    int unique_inherits;       /* in a unique index, where the trigger's
                                * write of it takes the conflict policy of
                                * the application's statement (SQLite: OR
                                * REPLACE deletes the other row holding the
                                * value, OR IGNORE skips the conversion) */
} zdm_column_fact;
typedef struct zdm_table_facts {
    zdm_column_fact *cols;     /* in order; none when the table does not exist */
    size_t ncols;
    int inherited;             /* other tables inherit from it (PostgreSQL's
                                * INHERITS): its triggers do not fire for
                                * their rows, which its UPDATE still reaches */
    int before_update;         /* the application's own BEFORE ROW UPDATE
                                * triggers are on it or a partition
                                * (disabled ones too): they may change a
                                * source the statement does not SET */
    char *after_ours;          /* its BEFORE ROW triggers that fire after
                                * zdm's (name order), ", "-joined; NULL: none */
    zdm_strv upd_triggers;     /* the application's UPDATE triggers where
                                * zdm's triggers fire them (SQLite: they
                                * convert by an UPDATE of the row, an
                                * INSERT's too), and for each the columns
                                * of its UPDATE OF, ","-joined ("": any) */
    zdm_strv upd_triggers_of;
} zdm_table_facts;
void zdm_table_facts_free(zdm_table_facts *f);

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

    /* A quoted identifier, malloc'd (never NULL): what zdm_db_ident
     * returns, without a connection (plans expand to SQL offline). */
    char *(*quote_ident)(const char *name);

    /* ---- schema questions ---- */
    /* The columns of `table` now, in order (none when it does not exist). */
    int (*table_columns)(zdm_db *db, const char *table, zdm_strv *cols, zdm_err *err);
    /* The backfill key of `table`: `named` when it is NOT NULL with a
     * unique index on exactly those columns, else (named empty) the
     * primary key (SQLite: else rowid).  A table that cannot be walked is
     * not an error: rc is 0 and *refused says why (static text), its kind
     * one of the ZDM_KEY_* reason codes below. */
    int (*key_of)(zdm_db *db, const char *table, const zdm_strv *named, zdm_strv *key,
                  zdm_key_refusal *refused, zdm_err *err);
    /* An expression naming one row of `table` under `alias`, appended to
     * out: for the samples in a refusal (primary key, ctid or rowid). */
    void (*row_label)(zdm_db *db, const char *table, const char *alias, zdm_buf *out);

    /* ---- running steps ---- */
    /* The INVALID indexes named schema.name (schema NULL: on the search
     * path) an interrupted CREATE INDEX CONCURRENTLY left: rows (schema,
     * name).  NULL when the dialect builds no index concurrently. */
    int (*invalid_indexes)(zdm_db *db, const char *schema, const char *name, zdm_rows **out,
                           zdm_err *err);
    /* *built = 1 when a valid, ready index schema.name exists. */
    int (*index_built)(zdm_db *db, const char *schema, const char *name, int *built, zdm_err *err);
    /* A dry run's lines for a step's lock and statement timeouts. */
    void (*dry_timeouts)(zdm_buf *out, const char *lock, const char *stmt, int tries);
    /* Between steps zdm's own writes wait for the database's write lock
     * (SQLite's busy timeout = the plan's budget); else no timeout. */
    int idle_busy_wait;
    /* The timeouts of the current transaction only (SET LOCAL); NULL
     * where the driver's session settings are all there is. */
    int (*set_local_timeouts)(zdm_db *db, long long lock_ms, long long stmt_ms, zdm_err *err);
    /* Where the operator finds the session that holds a lock. */
    const char *lock_holder_hint;
    /* 1 when a quoted name is matched with its case (PostgreSQL: zdm
     * quotes "PUBLIC.USERS" as "PUBLIC"."USERS", which is not
     * public.users); 0 where case never matters (SQLite). */
    int quoted_names_case_sensitive;
    /* Run before the preflight's transaction, errors ignored: loads what
     * its first use would otherwise load while the preflight holds the
     * table's lock (PostgreSQL: PL/pgSQL, ~1.5 ms); NULL: nothing. */
    const char *preflight_warm;
    /* 1 when libpg_query's grammar is this dialect's: SQL it rejects is
     * wrong, not the dialect's own syntax. */
    int pg_grammar;
    /* contract copies the database file first (zdm_backup_sqlite): the
     * only undo of a dropped column on a database without PITR. */
    int file_backup;

    /* ---- zdm's state tables (state.c) ---- */
    const char *state_prefix;    /* before a state table's name: "zdm." | "zdm_" */
    const char *state_bigint;    /* a 64-bit integer column */
    const char *state_serial_pk; /* an auto-numbered 64-bit primary key */
    const char *state_ddl_head;  /* before the tables (the schema) */
    const char *state_ddl_tail;  /* after them (tables only this dialect has) */
    /* ALTER TABLE adding a column, as a format: the table, then the column. */
    const char *state_add_column;
    /* Taken in the transaction that creates or upgrades the tables, so two
     * first runs do not both create; NULL when BEGIN already excludes
     * other writers (SQLite's BEGIN IMMEDIATE). */
    const char *state_init_lock;
    /* *exists = 1 when the table (as zdm_state_table names it) exists;
     * asked of the catalog, so a first run leaves no "relation does not
     * exist" errors in the server's log. */
    int (*table_exists)(zdm_db *db, const char *table, int *exists, zdm_err *err);

    /* ---- dual-write triggers ---- */
    /* The triggers' SQL addresses rows by the backfill key. */
    int dw_needs_key;
    /* The trigger's expressions live in a function compiled only when it
     * first runs: preflight compiles them on their own. */
    int dw_body_in_function;
    /* Trigger bodies are compiled into the statements that fire them:
     * preflight compiles an UPDATE and an INSERT of the table. */
    int dw_compiled_on_write;
    /* The CREATE script (create) and the DROP script (drop) of the
     * triggers and their functions. */
    void (*dw_triggers)(const struct zdm_dialect *d, const zdm_dw_spec *s, zdm_buf *create, zdm_buf *drop);

    /* ---- phases (phases/phase.c, expand.c) ---- */
    /* 1 when a step's SQL drops a column (contract puts the removal of
     * the dual-write triggers in that step's transaction). */
    int (*step_drops_columns)(const char *sql);
    /* A contract step that drops a column first rebuilds the view schemas
     * (any plan's) that show it (zdm_ops_pg_rebuild_views). */
    int drop_rebuilds_views;
    /* The non-unique indexes ($1 table, $2 column) that go with a column
     * rename_column or change_type drops at contract: expand warns.  NULL
     * where the dialect carries them over itself (SQLite, sqlite_deps.c). */
    const char *lost_indexes_sql;
    /* ---- backfill ----
     * What the backfill worker (phases/backfill_*.c) and its state verbs
     * (state_ranges.c) need from the database. */
    /* Appended to a SELECT of one row to hold it until commit: " FOR
     * UPDATE"; "" where the write transaction already holds the whole
     * database (SQLite). */
    const char *lock_row;
    /* The same, passing over rows another transaction holds (claiming). */
    const char *lock_row_skip_locked;
    /* "differs from, NULL equal to NULL": IS DISTINCT FROM | IS NOT. */
    const char *distinct;
    /* An expression naming this connection's session that another
     * session can check (pg_backend_pid()); NULL when sessions cannot be
     * seen from another connection: then a worker is known by host and
     * process id. */
    const char *session_id;
    /* True while the session in r.owner_backend (zdm's ranges table,
     * alias r; a session_id) exists: a backend killed with kill -9 is gone
     * at once.  NULL with session_id. */
    const char *session_alive;
    /* Run first in the transaction of a step (NULL: nothing).
     * PostgreSQL: synchronous_commit off.  A step's DDL holds its table
     * lock (ADD COLUMN, CREATE or DROP TRIGGER) through its commit, and
     * every query of the application queues behind that lock; not waiting
     * for the commit's WAL flush shortens the wait by a disk sync.  The
     * step's state row is in the same commit, so a crash that loses it
     * loses both and the step runs again; the commit that records the
     * phase waits as usual and flushes every step before it. */
    const char *step_begin;
    /* The first statement of a batch's transaction, $1 the plan id: the
     * backfill's own-transaction mark the dual-write triggers step aside
     * for (and on PostgreSQL the batch's lock timeout, so a batch blocked
     * by another session's lock gives up and is retried). */
    const char *batch_begin;
    /* Undoes the mark before the batch commits; NULL when it is local to
     * the transaction. */
    const char *batch_end;
    /* 1: a batch finds and converts its rows in one statement (a
     * data-modifying WITH ... RETURNING); 0: it reads its last key, then
     * updates up to it. */
    int batch_one_statement;
    /* 1 when `column` of `table` holds only integers, so a batch may be
     * a span of key values (backfill_batch.c span_batch) rather than a
     * look for its last key first: PostgreSQL's integer types; SQLite's
     * rowid (or the INTEGER PRIMARY KEY that names it; any other column
     * may hold text whatever its declared type).  A text key of digits
     * orders as text: spans of numbers would walk it out of order. */
    int (*integer_key)(zdm_db *db, const char *table, const char *column);
    /* A span statement's bound $N, as a printf format of N: where a bound
     * value given as text would be converted again for every row it is
     * compared with (SQLite, "CAST($%d AS INTEGER)"); NULL: "$%d". */
    const char *span_param;
    /* Run once on a backfill worker's own connection (NULL: nothing).
     * SQLite: a batch's UPDATE whose set calls a function keeps a
     * statement journal (a multi-row write that may fail halfway, inside
     * the batch's transaction), spilled past 64 KiB to a temporary file:
     * a 50,000-row batch wrote 730 pages to it, 2 system calls each (7 %
     * of a 1M-row backfill).  In memory instead, with a page cache of 1 MB
     * (not 2) so the worker's peak RSS grows by about 2 MiB, not 3.4. */
    const char *worker_session;
    /* Run once on a backfill worker's own connection, $1 the signature of
     * the plan's forward dual-write function (zdm."zdm_dw_p_fwd"()): the
     * settings that function keeps, taken by the session, so the worker
     * converts as the triggers do whatever its host's environment says
     * (PGTZ, PGDATESTYLE, PGOPTIONS); NULL: nothing to take. */
    const char *dw_session_settings;
    /* Run on a backfill worker's own connection while latency pacing is
     * on (paced) and when it is turned off (unpaced); NULL: nothing.
     * PostgreSQL: no parallel workers for the worker's scans.  The final
     * check (a scan of the whole table) and the work list's collection
     * planned as a Parallel Seq Scan: three processes on every core of a
     * 2-core server for the scan's length, and the application's p99 rose
     * to 5-15 ms at the end of every paced backfill.  Unthrottled, the
     * server is the backfill's to use. */
    const char *paced_session, *unpaced_session;
    /* Run once on the latency probe's own connection (backfill_probe.c;
     * NULL: nothing).  PostgreSQL: its commits do not wait for their WAL
     * flush.  Fifty flushed commits a second are a load of their own: on
     * pgbench at 400 TPS (fsync on, 2 cores) they alone raised the
     * application's p99 by about a fifth (1.18-1.44 ms to 1.40-1.75 ms,
     * three runs side by side), a third of the 1.5x budget spent on the
     * instrument; asynchronous, nothing measurable (1.34-1.63 against
     * 1.36-1.62).  The probe still takes a transaction id, inserts its
     * commit record and meets the batches' locks and CPU. */
    const char *probe_session;
    /* Run by a latency-paced worker after each batch that wrote rows,
     * outside any transaction (NULL: nothing); its failure only costs the
     * application.  SQLite (WAL): the batch's pages are checkpointed into
     * the database file by the worker, in its pause.  Otherwise the next
     * commit that finds the WAL past its autocheckpoint size (1000 pages)
     * copies them -- an application's commit as often as not: a write of
     * the application took 20-70 ms instead of 0.3 every few seconds of a
     * paced backfill.  A PASSIVE checkpoint takes no lock that writers
     * wait for. */
    const char *after_batch;
    /* One writer at a time: the pacer leaves the write lock free between
     * batches, so the application's writes get in. */
    int one_writer;
    /* Rows of `table` now, estimated (PostgreSQL's statistics) or counted. */
    int (*row_estimate)(zdm_db *db, const char *table, int64_t *rows, zdm_err *err);
    /* Rows of `tbl` (quoted) that `where` matches, estimated (the
     * planner's, nothing runs) or counted; nonzero when unknown. */
    int (*where_estimate)(zdm_db *db, const char *tbl, const char *where, int64_t *rows);
    /* The work-list strategy for a costly `where` (backfill_worklist.c;
     * its statements use PostgreSQL's row versions): NULL where the
     * dialect has none.  The planner's total cost of `sql` (nothing runs),
     * -1 when it gives none; the type of `column` as declared, with its
     * modifier (malloc'd, NULL when unknown). */
    double (*plan_cost)(zdm_db *db, const char *sql, int np, const char *const *p);
    char *(*column_type)(zdm_db *db, const char *table, const char *column);
    /* What the dual-write preflight asks of `table` and each of its
     * columns, in one catalog read (it runs under expand's lock, where the
     * application waits for every round trip): free with
     * zdm_table_facts_free. */
    int (*table_facts)(zdm_db *db, const char *table, zdm_table_facts *out, zdm_err *err);
    /* The health signals a backfill can pause on (NULL: the database has
     * none).  *running: autovacuum works on `table`; *ms: the largest
     * replica replay lag; *files: WAL segments waiting for the archiver. */
    int (*autovacuum_running)(zdm_db *db, const char *table, int *running, zdm_err *err);
    int (*replica_lag_ms)(zdm_db *db, int64_t *ms, zdm_err *err);
    int (*wal_archive_ready)(zdm_db *db, int64_t *files, zdm_err *err);
} zdm_dialect;

extern const zdm_dialect zdm_dialect_pg;
extern const zdm_dialect zdm_dialect_sqlite;

/* The dialect of an open database (never NULL). */
const zdm_dialect *zdm_db_dialect(const zdm_db *db);

/* Quoting shared by dialects that quote as standard SQL does ("a""b"). */
char *zdm_dialect_quote_std(const char *name);
/* d's quoting of each dot-separated part ("app"."events"). */
char *zdm_dialect_quote_path(const zdm_dialect *d, const char *dotted);
/* "a,b,c": the names of l sorted bytewise, comma-joined (the form the
 * catalog queries compare an index's columns with). */
void zdm_dialect_join_sorted(const zdm_strv *l, zdm_buf *out);

#endif
