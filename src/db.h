/*
 * db.h -- the driver interface: one small API, two implementations
 * (db_pg.c over libpq, db_sqlite.c over sqlite3), chosen from the URL.
 *
 * Owns: connecting from the --db forms, running statements with parameters,
 * transactions, identifier quoting, lock-timeout settings and the
 * per-plan mutual-exclusion lock.  Dialect differences live behind this
 * interface; callers never branch on the dialect for SQL syntax except by
 * asking the driver (zdm_db_kind_of) where the SQL itself must differ.
 *
 * Placeholders are written $1..$N in both dialects.  Parameter values are
 * text; NULL means SQL NULL.  A password in the URL never leaves this
 * module: zdm_db_safe_url() is the only form to print.
 */
#ifndef ZDM_DB_H
#define ZDM_DB_H

#include "err.h"

typedef enum zdm_db_kind { ZDM_DB_PG = 1, ZDM_DB_SQLITE = 2 } zdm_db_kind;

typedef struct zdm_db zdm_db;
typedef struct zdm_rows zdm_rows;

/* URL forms: postgres://..., postgresql://..., libpq conninfo "k=v ...",
 * sqlite:PATH (sqlite:///abs/path and sqlite://rel also accepted).
 * pg sessions get application_name "zdm" (unless the URL or PGAPPNAME sets
 * one) and client_min_messages = warning; sqlite connections get
 * foreign_keys = ON and a 5000 ms busy timeout.  A failed connection is
 * SQLSTATE 08001, with any password scrubbed from the message. */
int zdm_db_open(const char *url, zdm_db **out, zdm_err *err) ZDM_MUST_CHECK;
/* zdm_db_open with flags.  ZDM_DB_MUST_EXIST: sqlite refuses a missing
 * file (naming the path) instead of creating an empty database there --
 * for every command but init and advance, so a mistyped path is an error,
 * not a new file.  pg ignores it. */
enum { ZDM_DB_MUST_EXIST = 1, ZDM_DB_MISSING_EMPTY = 2 };
/* ZDM_DB_MISSING_EMPTY (with MUST_EXIST): a missing sqlite file opens as an
 * empty in-memory database instead, and zdm_db_missing() says so -- a dry
 * run shows what would run on a new database and creates nothing. */
int zdm_db_open_ex(const char *url, int flags, zdm_db **out, zdm_err *err) ZDM_MUST_CHECK;
/* sqlite: 1 when the last open created the file (else 0). */
int zdm_db_created(const zdm_db *db);
int zdm_db_missing(const zdm_db *db);
void zdm_db_close(zdm_db *db);
/* Replaces db's connection with a new one to url, in place: pointers to db
 * stay valid (its open transaction, if any, is lost with the old one). */
int zdm_db_reopen(zdm_db *db, const char *url, zdm_err *err) ZDM_MUST_CHECK;

/* Which driver a URL selects, without connecting (0 when unrecognised). */
zdm_db_kind zdm_db_kind_of_url(const char *url);
/* The URL or conninfo with any password replaced by "*****"; malloc'd.
 * The one printable form: every message, log line and history row that
 * names a database uses it (and zdm_db_open registers the passwords it
 * finds with zdm_err_add_secret, so anything quoting them is scrubbed). */
char *zdm_db_redact_url(const char *url);
/* The same URL or conninfo with its passwords left out entirely (no
 * "*****", which a tool would send as the password): the form handed to
 * hooks as ZDM_DATABASE_URL, accepted by libpq wherever the input was.
 * A tool then finds the password in PGPASSFILE / ~/.pgpass. */
char *zdm_db_url_without_password(const char *url);

zdm_db_kind zdm_db_kind_of(const zdm_db *db);
const char *zdm_db_dialect_name(const zdm_db *db); /* "postgresql" | "sqlite" */
const char *zdm_db_safe_url(const zdm_db *db);     /* redacted, borrowed */

/* One statement with parameters (both drivers refuse several).  `out` may
 * be NULL when rows are not wanted.  Errors: pg "postgresql: <message>
 * (DETAIL: ...)" with the SQLSTATE, and the server's HINT in err->detail;
 * sqlite "sqlite: <message> (SQLITE_<NAME>)" with sqlstate "", except the
 * marker "SQLBU" for SQLITE_BUSY / SQLITE_LOCKED (see
 * zdm_db_err_is_lock_timeout). */
int zdm_db_query(zdm_db *db, const char *sql, int nparams,
                 const char *const *params, zdm_rows **out,
                 zdm_err *err) ZDM_MUST_CHECK;
/* n statements with parameters, run in order in as few round trips as
 * the driver can (PostgreSQL: one, in libpq's pipeline mode; SQLite: in
 * process anyway), their rows dropped; the first that fails stops the
 * rest.  *failed: its index (err as zdm_db_query fills it), n when all
 * ran.  Inside a transaction a failure leaves it aborted on PostgreSQL:
 * the caller rolls back to a savepoint.  Outside one, PostgreSQL runs
 * them as one implicit transaction (a failure undoes those before it),
 * SQLite commits each: callers that write wrap the call in a transaction.  At most ZDM_DB_QUERY_ALL_MAX
 * statements of a few kB each (pipeline mode sends before it reads). */
#define ZDM_DB_QUERY_ALL_MAX 64
int zdm_db_query_all(zdm_db *db, size_t n, const char *const *sqls, const int *nparams,
                     const char *const *const *params, size_t *failed, zdm_err *err) ZDM_MUST_CHECK;
/* Several statements, no parameters (raw plan steps).  Atomicity differs:
 * pg runs the string as one implicit transaction (unless it holds its own
 * BEGIN/COMMIT), so CREATE INDEX CONCURRENTLY must be sent alone; sqlite
 * commits statement by statement, so wrap the call in zdm_db_begin/commit
 * when a failure must leave nothing behind. */
int zdm_db_exec_script(zdm_db *db, const char *sql, zdm_err *err) ZDM_MUST_CHECK;

/* sqlite BEGINs IMMEDIATE (waits for the write lock up front, bounded by
 * the busy timeout).  A nested BEGIN (25001) or a COMMIT without BEGIN
 * (25P01) is an error.  COMMIT fails with 25P02 when pg rolled the
 * transaction back because a statement in it had failed; after a failed
 * COMMIT no transaction is open, in either dialect.  zdm_db_rollback only
 * acts on a transaction opened by zdm_db_begin. */
int zdm_db_begin(zdm_db *db, zdm_err *err) ZDM_MUST_CHECK;
int zdm_db_commit(zdm_db *db, zdm_err *err) ZDM_MUST_CHECK;
void zdm_db_rollback(zdm_db *db); /* best effort, never fails loudly */
int zdm_db_in_transaction(const zdm_db *db);

/* Quoted identifier, malloc'd: pg via PQescapeIdentifier, sqlite via %w.
 * zdm_db_ident_path quotes each dot-separated part ("app.events"). */
char *zdm_db_ident(zdm_db *db, const char *name);
char *zdm_db_ident_path(zdm_db *db, const char *dotted);

/* pg: SET lock_timeout / statement_timeout for the session (0 = off, i.e.
 * wait as long as it takes); inside a transaction they roll back with it.
 * sqlite: busy timeout = lock_timeout_ms (0 = wait as long as it takes);
 * the statement timeout is not enforced.  Negative values: ZDM_EXIT_USAGE. */
int zdm_db_set_timeouts(zdm_db *db, int lock_timeout_ms,
                        int statement_timeout_ms, zdm_err *err) ZDM_MUST_CHECK;
/* True when err is a lock-wait timeout worth retrying: pg 55P03, or the
 * sqlite marker sqlstate "SQLBU" (SQLITE_BUSY / SQLITE_LOCKED). */
int zdm_db_err_is_lock_timeout(const zdm_err *err);

/* Cancelling from a signal handler (db_cancel.c): arm a connection, then
 * zdm_db_cancel_now() is async-signal-safe and makes its running
 * statement fail.  Disarm before closing the connection. */
void zdm_db_cancel_arm(zdm_db *db);
void zdm_db_cancel_disarm(void);
void zdm_db_cancel_now(void);
/* While on, the first signal cancels the armed connection's statement as
 * well (sig.c), not only the second: set around a backfill batch, whose
 * transaction a cancel just rolls back. */
void zdm_db_cancel_first(int on);
int zdm_db_cancel_is_first(void);
/* Driver use: the armed connection `conn` (an sqlite3 *) was cancelled, so
 * a wait for its write lock must end now (SQLite's busy loop ignores
 * sqlite3_interrupt). */
int zdm_db_cancel_pending(const void *conn);

/* The backfill's latency probe, timed in microseconds (*us): what an
 * application statement would wait for now.  probe_query when given (its
 * rows are discarded); else pg a round trip (SELECT 1), sqlite the write
 * lock taken and given back (BEGIN IMMEDIATE; ROLLBACK: one writer at a
 * time, so the lock wait is what an application write waits).  Never
 * inside a transaction. */
int zdm_db_probe(zdm_db *db, const char *probe_query, long long *us, zdm_err *err) ZDM_MUST_CHECK;
/* The probe that runs during the batches (phases/backfill_probe.c): on pg
 * without a probe_query, a transaction that takes a transaction id and
 * commits (SELECT txid_current()), so it waits for its WAL flush behind
 * whatever the batch is writing, as an application's commit does; with
 * pg_stat_statements it is also at least the application's mean, as
 * below.  Otherwise zdm_db_probe. */
int zdm_db_probe_commit(zdm_db *db, const char *probe_query, long long *us, zdm_err *err) ZDM_MUST_CHECK;
/* pg, no probe_query, pg_stat_statements readable: the probe is also at
 * least the mean execution time of the application's own statements (top
 * level, in this database, text not naming zdm: the backfill's statements
 * carry a zdm comment), over the time since the last read (at most every
 * 250 ms; the first read: since the statistics were reset, the baseline).
 * This is that mean in microseconds, or -1 when there is none. */
long long zdm_db_probe_app_us(const zdm_db *db);

/* sqlite: whether another connection committed between the last two
 * probes (PRAGMA data_version, read under the probe's write lock; this
 * connection's own commits leave it alone).  pg: 0. */
int zdm_db_probe_others_wrote(const zdm_db *db);

/* How many other sessions wait on a lock this session holds (pg:
 * pg_blocking_pids; sqlite cannot tell: 0).  Run inside a transaction to
 * see who waits on its row locks. */
int zdm_db_blocked_by_me(zdm_db *db, long long *sessions, zdm_err *err) ZDM_MUST_CHECK;
/* PostgreSQL: *active = 1 when a client session other than zdm's
 * (application_name not starting with "zdm") runs a statement, or ran one
 * within the last second, or cannot be told (another role's session
 * without pg_read_all_stats shows no state: counted).  SQLite: 1. */
int zdm_db_others_active(zdm_db *db, int *active, zdm_err *err) ZDM_MUST_CHECK;

/* Up to parts - 1 split points of an integer column that cut its rows
 * into `parts` about equal shares, ascending (*out malloc'd, *n of them):
 * pg from the column's statistics (pg_stats.histogram_bounds, after
 * ANALYZE); sqlite from a sample of about 4096 of its values (one scan).
 * Never fails loudly: no statistics, or a column that is not all
 * integers, is *n = 0 and the caller splits another way. */
int zdm_db_key_quantiles(zdm_db *db, const char *table, const char *column, int parts, long long **out,
                         int *n);

/* Up to parts - 1 split points of a key of any type and any number of
 * columns (cols[0..ncols)), ascending in the database's order of the key,
 * as rows of ncols text values (*out, NULL when none): quantiles of a
 * sample (pg: TABLESAMPLE SYSTEM of about 20,000 rows; sqlite: one scan).
 * A range between two split points holds about as many rows as another.
 * Never fails loudly: *out = NULL and the caller keeps one range. */
int zdm_db_key_splits(zdm_db *db, const char *table, const char *const *cols, int ncols, int parts,
                      zdm_rows **out);

/* Rows inserted, updated or deleted by the last zdm_db_query. */
long long zdm_db_changes(const zdm_db *db);

/* Rows: every value as text, NULL for SQL NULL. */
int zdm_rows_count(const zdm_rows *r);
int zdm_rows_cols(const zdm_rows *r);
const char *zdm_rows_get(const zdm_rows *r, int row, int col);
void zdm_rows_free(zdm_rows *r);

/* Convenience: first column of first row as malloc'd text (NULL if none). */
int zdm_db_query_value(zdm_db *db, const char *sql, int nparams,
                       const char *const *params, char **out,
                       zdm_err *err) ZDM_MUST_CHECK;

/* Driver vtable, implemented by db_pg.c and db_sqlite.c. */
typedef struct zdm_db_ops {
    zdm_db_kind kind;
    const char *name;
    int (*connect)(zdm_db *db, const char *url, zdm_err *err);
    void (*close)(zdm_db *db);
    int (*query)(zdm_db *db, const char *sql, int nparams,
                 const char *const *params, zdm_rows **out, zdm_err *err);
    int (*exec_script)(zdm_db *db, const char *sql, zdm_err *err);
    /* NULL: zdm_db_query_all runs query n times */
    int (*query_all)(zdm_db *db, size_t n, const char *const *sqls, const int *nparams,
                     const char *const *const *params, size_t *failed, zdm_err *err);
    char *(*ident)(zdm_db *db, const char *name);
    int (*set_timeouts)(zdm_db *db, int lock_ms, int stmt_ms, zdm_err *err);
} zdm_db_ops;

struct zdm_db {
    const zdm_db_ops *ops;
    void *conn;       /* PGconn * or sqlite3 * */
    char *safe_url;   /* redacted */
    char *path;       /* sqlite: file path; pg: NULL */
    int flags;        /* ZDM_DB_MUST_EXIST ..., read by connect */
    int created;      /* sqlite: connect created the file */
    int missing;      /* sqlite: no file; an empty in-memory stand-in (ZDM_DB_MISSING_EMPTY) */
    void *drv;        /* driver-private state (sqlite: busy-wait policy) */
    int in_tx;
    long long changes; /* rows changed by the last statement (INSERT/UPDATE/DELETE) */
    /* pg probe: pg_stat_statements (0 not looked at yet, 1 read, -1 not
     * available), its totals and time at the last read, and the mean of the
     * application's statements then (-1: none yet) */
    int app_stats;
    char *app_sql;
    double app_calls, app_ms;
    long long app_read_us, app_mean_us;
    /* sqlite probe: PRAGMA data_version at the last probe (0: none yet),
     * and whether it changed since the probe before (another connection
     * committed) */
    long long data_version;
    int others_wrote;
};

/* Rows are built by the drivers through these. */
zdm_rows *zdm_rows_new(int ncols);
int zdm_rows_add(zdm_rows *r, const char *const *values); /* copies; NULL entries allowed */

extern const zdm_db_ops zdm_db_pg_ops;
/* 1 when libpq knows the connection keyword kw[0..n) (PQconndefaults),
 * or cannot tell; 0 when it would refuse it quoting the word. */
int zdm_db_pg_keyword_known(const char *kw, size_t n);
extern const zdm_db_ops zdm_db_sqlite_ops;

#endif
