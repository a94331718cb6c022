/*
 * db_sqlite.c -- the SQLite driver (zdm_db_sqlite_ops) over sqlite3.
 *
 * Owns: the sqlite3 handle of a zdm_db, the sqlite:PATH URL forms,
 * binding the $1..$N placeholders shared with the PostgreSQL driver, and
 * turning sqlite3 errors into zdm_err ("sqlite: <message> (SQLITE_NAME)").
 *
 * sqlite3 has no SQLSTATE.  err->sqlstate stays "" except for a lock wait
 * that gave up (SQLITE_BUSY, SQLITE_LOCKED): those get the marker "SQLBU"
 * so zdm_db_err_is_lock_timeout() answers the same for both dialects; and
 * "no such column" / "no such table", which get PostgreSQL's 42703 / 42P01
 * (sqlstate_of).
 *
 * Also owns what a connection refuses: a library older than
 * ZDM_SQLITE_MIN_VERSION, in-memory and temporary databases (nothing
 * would be kept), and -- with ZDM_DB_MUST_EXIST -- a missing file.
 *
 * Busy waits.  Waiting for the write lock (BEGIN IMMEDIATE takes RESERVED)
 * hurts nobody: readers go on.  Waiting to *commit* does: in rollback-
 * journal mode the committer holds PENDING while it waits for the readers
 * to leave, and no new reader gets in meanwhile.  So a commit -- COMMIT,
 * or a write statement outside a transaction -- waits at most
 * ZDM_SQLITE_COMMIT_WAIT_MS for the lock, then lets PENDING go (rolls
 * back).  A write statement outside a transaction is then retried here
 * with backoff and jitter until the connection's lock timeout has passed;
 * a COMMIT fails as a lock timeout (SQLBU) and the caller retries its
 * transaction under its own lock_timeout/lock_retries.
 */
#include "db.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

/* RETURNING (zdm's state SQL) and ALTER TABLE DROP COLUMN (contract) came
 * in 3.35.0; RENAME COLUMN in 3.25.0. */
#define ZDM_SQLITE_MIN_VERSION 3035000
#define ZDM_SQLITE_MIN_VERSION_TEXT "3.35.0"
#define ZDM_SQLITE_NEEDS "RETURNING in zdm's state tables, ALTER TABLE DROP COLUMN in contract"
#if SQLITE_VERSION_NUMBER < ZDM_SQLITE_MIN_VERSION
#error "zdm needs SQLite 3.35.0 or later (RETURNING, ALTER TABLE DROP COLUMN)"
#endif

#define ZDM_SQLITE_BUSY_MS 5000
#define ZDM_SQLITE_COMMIT_WAIT_MS 25
#define LOCK_WAIT_MARKER "SQLBU" /* see zdm_db_err_is_lock_timeout() */

typedef struct sq_drv {
    int lock_ms;        /* how long a lock wait may last; 0 = as long as it takes */
    int committing;     /* the running statement commits: wait briefly */
    int64_t wait_start; /* of the current busy wait */
    sqlite3 *conn;      /* whose waits a signal may cancel (zdm_db_cancel_pending) */
} sq_drv;

static int busy_cb(void *arg, int count)
{
    sq_drv *d = arg;
    int64_t now = zdm_mono_ms();
    if (count == 0)
        d->wait_start = now;
    int64_t waited = now - d->wait_start;
    int64_t budget = d->committing ? ZDM_SQLITE_COMMIT_WAIT_MS : d->lock_ms;
    if (budget > 0 && waited >= budget)
        return 0;
    if (zdm_db_cancel_pending(d->conn))
        return 0; /* a signal cancelled the statement: stop waiting (sq_query says why) */
    /* Short sleeps first: most locks are held for a few milliseconds. */
    int64_t step = count < 4 ? 1 : count < 10 ? 5 : 20;
    if (budget > 0 && step > budget - waited)
        step = budget - waited;
    sqlite3_sleep((int)step);
    return 1;
}

static void set_sqlstate(zdm_err *err, const char *state)
{
    if (err)
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state);
}

/* The C name of a result code: greppable, and unlike sqlite3_errstr() it
 * does not repeat what sqlite3_errmsg() already said. */
static const char *code_name(int rc, char *buf, size_t size)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_CHECK: return "SQLITE_CONSTRAINT_CHECK";
    case SQLITE_CONSTRAINT_FOREIGNKEY: return "SQLITE_CONSTRAINT_FOREIGNKEY";
    case SQLITE_CONSTRAINT_NOTNULL: return "SQLITE_CONSTRAINT_NOTNULL";
    case SQLITE_CONSTRAINT_PRIMARYKEY: return "SQLITE_CONSTRAINT_PRIMARYKEY";
    case SQLITE_CONSTRAINT_UNIQUE: return "SQLITE_CONSTRAINT_UNIQUE";
    case SQLITE_BUSY_SNAPSHOT: return "SQLITE_BUSY_SNAPSHOT";
    default: break;
    }
    static const char *const primary[] = {
        [SQLITE_OK] = "SQLITE_OK",           [SQLITE_ERROR] = "SQLITE_ERROR",
        [SQLITE_INTERNAL] = "SQLITE_INTERNAL", [SQLITE_PERM] = "SQLITE_PERM",
        [SQLITE_ABORT] = "SQLITE_ABORT",     [SQLITE_BUSY] = "SQLITE_BUSY",
        [SQLITE_LOCKED] = "SQLITE_LOCKED",   [SQLITE_NOMEM] = "SQLITE_NOMEM",
        [SQLITE_READONLY] = "SQLITE_READONLY", [SQLITE_INTERRUPT] = "SQLITE_INTERRUPT",
        [SQLITE_IOERR] = "SQLITE_IOERR",     [SQLITE_CORRUPT] = "SQLITE_CORRUPT",
        [SQLITE_NOTFOUND] = "SQLITE_NOTFOUND", [SQLITE_FULL] = "SQLITE_FULL",
        [SQLITE_CANTOPEN] = "SQLITE_CANTOPEN", [SQLITE_PROTOCOL] = "SQLITE_PROTOCOL",
        [SQLITE_EMPTY] = "SQLITE_EMPTY",     [SQLITE_SCHEMA] = "SQLITE_SCHEMA",
        [SQLITE_TOOBIG] = "SQLITE_TOOBIG",   [SQLITE_CONSTRAINT] = "SQLITE_CONSTRAINT",
        [SQLITE_MISMATCH] = "SQLITE_MISMATCH", [SQLITE_MISUSE] = "SQLITE_MISUSE",
        [SQLITE_NOLFS] = "SQLITE_NOLFS",     [SQLITE_AUTH] = "SQLITE_AUTH",
        [SQLITE_FORMAT] = "SQLITE_FORMAT",   [SQLITE_RANGE] = "SQLITE_RANGE",
        [SQLITE_NOTADB] = "SQLITE_NOTADB",   [SQLITE_NOTICE] = "SQLITE_NOTICE",
        [SQLITE_WARNING] = "SQLITE_WARNING",
    };
    int p = rc & 0xff;
    if (p >= 0 && (size_t)p < sizeof primary / sizeof primary[0] && primary[p])
        return primary[p];
    snprintf(buf, size, "sqlite code %d", rc);
    return buf;
}

/* The SQLSTATE PostgreSQL gives the same error, for the two errors zdm's
 * callers tell apart (preflight: a name an expand step it could not run
 * may add).  SQLite has no code for them, only SQLITE_ERROR and a
 * message, so here -- the one place that knows SQLite's words -- the
 * message is read once and turned into the reason code; nothing above
 * the driver reads a message. */
static const char *sqlstate_of(int rc, const char *msg)
{
    int p = rc & 0xff;
    if (p == SQLITE_BUSY || p == SQLITE_LOCKED)
        return LOCK_WAIT_MARKER;
    if (p == SQLITE_ERROR && msg && strncmp(msg, "no such column:", 15) == 0)
        return "42703"; /* undefined_column */
    if (p == SQLITE_ERROR && msg && strncmp(msg, "no such table:", 14) == 0)
        return "42P01"; /* undefined_table */
    return "";
}

/* msg: the text to report, or NULL for the connection's last message. */
static int sq_error(zdm_db *db, int rc, const char *msg, zdm_err *err)
{
    char buf[32];
    if (!msg)
        msg = db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc);
    zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: %s (%s)", msg, code_name(rc, buf, sizeof buf));
    int p = rc & 0xff;
    set_sqlstate(err, sqlstate_of(rc, msg));
    if (p == SQLITE_BUSY || p == SQLITE_LOCKED)
        zdm_err_detail(err, "another connection holds a lock on %s; retry later", db->path);
    return ZDM_EXIT_FAIL;
}

static int sq_misuse(zdm_err *err, const char *msg, const char *what)
{
    zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: %s%s", msg, what ? what : "");
    set_sqlstate(err, "");
    return ZDM_EXIT_FAIL;
}

/* sqlite:PATH, sqlite://PATH (relative), sqlite:///abs/path */
static const char *url_path(const char *url)
{
    const char *p = url + strlen("sqlite:");
    if (p[0] == '/' && p[1] == '/')
        p += 2;
    return p;
}

/* The library zdm runs with, not only the headers it was built against:
 * a distribution may ship an older shared library. */
static int check_version(zdm_err *err)
{
    if (sqlite3_libversion_number() >= ZDM_SQLITE_MIN_VERSION)
        return ZDM_OK;
    zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: the SQLite library is %s; zdm needs %s or later (%s)",
                sqlite3_libversion(), ZDM_SQLITE_MIN_VERSION_TEXT, ZDM_SQLITE_NEEDS);
    set_sqlstate(err, "");
    zdm_err_detail(err, "install a newer libsqlite3 (Debian 12 ships 3.40) or build zdm against one");
    return ZDM_EXIT_FAIL;
}

/* :memory:, "file::memory:", "file:x?mode=memory" and "" (a temporary
 * database) all keep nothing after zdm exits; sqlite3_db_filename() says
 * so for every spelling: an empty name. */
static int refuse_memory(zdm_db *db, sqlite3 *conn, zdm_err *err)
{
    const char *fn = sqlite3_db_filename(conn, "main");
    if (fn && *fn)
        return ZDM_OK;
    zdm_err_set(err, ZDM_EXIT_USAGE, "sqlite: \"%s\" is an in-memory or temporary database: "
                "zdm's state and the migration would vanish when zdm exits", db->safe_url);
    set_sqlstate(err, "");
    zdm_err_detail(err, "name a database file: sqlite:PATH");
    return ZDM_EXIT_USAGE;
}

/* zdm changes a database the application uses at the same time, so its
 * locks must be the ones the application's connections see.  "nolock=1"
 * and the unix-none VFS take none; unix-dotfile and unix-flock take locks
 * the default VFS never looks at; unix-excl holds the file exclusively
 * (the application waits for zdm's whole run).  Seen: with ?nolock=1 the
 * whole lifecycle "succeeded" with no lock against the application's
 * writes, and with ?vfs=unix-dotfile zdm's own second connection found
 * the database locked by its first. */
static int refuse_unlocked(zdm_db *db, sqlite3 *conn, zdm_err *err)
{
    const char *fn = sqlite3_db_filename(conn, "main");
    const char *vfs = fn ? sqlite3_uri_parameter(fn, "vfs") : NULL;
    static const char *const bad[] = {"unix-none", "unix-dotfile", "unix-flock", "unix-excl", "unix-namedsem"};
    const char *why = NULL;
    if (fn && sqlite3_uri_boolean(fn, "nolock", 0))
        why = "nolock";
    for (size_t i = 0; !why && vfs && i < sizeof bad / sizeof bad[0]; i++)
        if (strcmp(vfs, bad[i]) == 0)
            why = "vfs";
    if (!why)
        return ZDM_OK;
    zdm_err_set(err, ZDM_EXIT_USAGE, "sqlite: \"%s\" %s: zdm works beside the application, and with "
                "locks the application does not see, both would write the file at once (corrupting it)",
                db->safe_url, strcmp(why, "nolock") == 0 ? "turns locking off (nolock)" : "uses a VFS whose locking "
                "is not the default one");
    set_sqlstate(err, "");
    zdm_err_detail(err, "drop the nolock/vfs parameter: zdm uses the default locking, as the application does");
    return ZDM_EXIT_USAGE;
}

static int sq_connect(zdm_db *db, const char *url, zdm_err *err)
{
    const char *path = url_path(url);
    if (!*path) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "sqlite: no file name in \"%s\"", db->safe_url);
        set_sqlstate(err, "");
        zdm_err_detail(err, "write sqlite:FILE, sqlite://relative/file or sqlite:///absolute/file");
        return ZDM_EXIT_USAGE;
    }
    if (check_version(err) != ZDM_OK)
        return ZDM_EXIT_FAIL;
    db->path = strdup(path);
    sq_drv *drv = calloc(1, sizeof *drv);
    if (!db->path || !drv) {
        free(drv);
        return sq_misuse(err, "out of memory opening ", path);
    }
    drv->lock_ms = ZDM_SQLITE_BUSY_MS;

    /* Whether the file is there: without CREATE first, so that a command
     * that must not create one never does, and one that may can say so. */
    sqlite3 *conn = NULL;
    int rc = sqlite3_open_v2(path, &conn, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_CANTOPEN && !(db->flags & ZDM_DB_MUST_EXIST)) {
        struct stat st;
        int missing = stat(path, &st) != 0 && errno == ENOENT;
        sqlite3_close(conn);
        conn = NULL;
        rc = sqlite3_open_v2(path, &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
        db->created = rc == SQLITE_OK && missing;
    }
    struct stat st;
    if (rc == SQLITE_CANTOPEN && (db->flags & ZDM_DB_MISSING_EMPTY) && stat(path, &st) != 0 && errno == ENOENT) {
        sqlite3_close(conn);
        conn = NULL;
        rc = sqlite3_open_v2(":memory:", &conn, SQLITE_OPEN_READWRITE, NULL);
        db->missing = rc == SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        char buf[32];
        if (rc == SQLITE_CANTOPEN && (db->flags & ZDM_DB_MUST_EXIST) && stat(path, &st) != 0 &&
            errno == ENOENT) {
            zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: no database file at %s", path);
            zdm_err_detail(err, "check the path in --db / ZDM_DATABASE_URL; to start a new database "
                                "there, run \"zdm init\" first");
        } else {
            zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: cannot open %s: %s (%s)", path,
                        conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc), code_name(rc, buf, sizeof buf));
        }
        set_sqlstate(err, "");
        sqlite3_close(conn); /* the handle exists even when open failed */
        free(drv);
        return ZDM_EXIT_FAIL;
    }
    if (!db->missing && (refuse_memory(db, conn, err) != ZDM_OK || refuse_unlocked(db, conn, err) != ZDM_OK)) {
        sqlite3_close(conn);
        free(drv);
        return ZDM_EXIT_USAGE;
    }
    db->conn = conn;
    db->drv = drv;
    drv->conn = conn;
    sqlite3_extended_result_codes(conn, 1);
    sqlite3_busy_handler(conn, busy_cb, drv);

    /* Foreign keys are off by default in SQLite, for compatibility only.
     * Reading the schema makes a file that is not a database fail here,
     * at connect, rather than at the first real statement. */
    char *msg = NULL;
    rc = sqlite3_exec(conn, "PRAGMA foreign_keys = ON; SELECT count(*) FROM sqlite_master",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sq_error(db, rc, msg, err);
        zdm_err_prefix(err, "opening %s: ", path);
        sqlite3_free(msg);
        sqlite3_close(conn);
        db->conn = NULL;
        db->drv = NULL;
        free(drv);
        return ZDM_EXIT_FAIL;
    }
    return ZDM_OK;
}

static void sq_close(zdm_db *db)
{
    /* _v2: never leaves the handle open because of a forgotten statement. */
    sqlite3_close_v2(db->conn);
    db->conn = NULL;
    free(db->drv);
    db->drv = NULL;
}

/* "$N" or "?N" -> N, else 0. */
static long placeholder_number(const char *name)
{
    if (!name || (name[0] != '$' && name[0] != '?') || !name[1])
        return 0;
    long n = 0;
    for (const char *p = name + 1; *p; p++) {
        if (*p < '0' || *p > '9' || n > 100000)
            return 0;
        n = n * 10 + (*p - '0');
    }
    return n;
}

/* Binds by placeholder name rather than position, so "$2 ... $1 ... $2"
 * works as in PostgreSQL: each distinct name is one sqlite parameter. */
static int bind_params(zdm_db *db, sqlite3_stmt *stmt, int nparams,
                       const char *const *params, zdm_err *err)
{
    int count = sqlite3_bind_parameter_count(stmt);
    for (int j = 1; j <= count; j++) {
        const char *name = sqlite3_bind_parameter_name(stmt, j);
        long k = placeholder_number(name);
        if (k < 1 || k > nparams) {
            char what[96];
            snprintf(what, sizeof what, "%s (%d given); placeholders are $1..$N",
                     name ? name : "?", nparams);
            return sq_misuse(err, "no value for parameter ", what);
        }
        const char *v = params[k - 1];
        /* SQLITE_STATIC: params outlive the statement (finalised before
         * we return). */
        int rc = v ? sqlite3_bind_text(stmt, j, v, -1, SQLITE_STATIC)
                   : sqlite3_bind_null(stmt, j);
        if (rc != SQLITE_OK)
            return sq_error(db, rc, NULL, err);
    }
    return ZDM_OK;
}

/* COMMIT or END: the statement that needs the exclusive lock. */
static int is_commit(const char *sql)
{
    while (*sql == ' ' || *sql == '\t' || *sql == '\n')
        sql++;
    return (strncasecmp(sql, "COMMIT", 6) == 0 || strncasecmp(sql, "END", 3) == 0);
}

static int read_row(sqlite3_stmt *stmt, int ncols, const char **vals)
{
    for (int c = 0; c < ncols; c++) {
        if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
            vals[c] = NULL;
            continue;
        }
        vals[c] = (const char *)sqlite3_column_text(stmt, c);
        if (!vals[c]) {
            if (sqlite3_errcode(sqlite3_db_handle(stmt)) == SQLITE_NOMEM)
                return ZDM_EXIT_FAIL;
            vals[c] = ""; /* a zero-length BLOB */
        }
    }
    return ZDM_OK;
}

static int sq_query(zdm_db *db, const char *sql, int nparams,
                    const char *const *params, zdm_rows **out, zdm_err *err)
{
    sqlite3 *conn = db->conn;
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    zdm_rows *rows = NULL;
    const char **vals = NULL;
    int status = ZDM_OK;

    int rc = sqlite3_prepare_v2(conn, sql, -1, &stmt, &tail);
    if (rc != SQLITE_OK)
        return sq_error(db, rc, NULL, err);

    /* One statement per query, as PQexecParams enforces: a second one
     * would be silently ignored by sqlite3_prepare.  A tail that prepares
     * to nothing is white space or comments. */
    if (tail && *tail) {
        sqlite3_stmt *extra = NULL;
        rc = sqlite3_prepare_v2(conn, tail, -1, &extra, NULL);
        sqlite3_finalize(extra);
        if (rc != SQLITE_OK || extra) {
            sqlite3_finalize(stmt);
            return sq_misuse(err, "more than one statement in a query; "
                                  "run several statements as a script", NULL);
        }
    }

    int ncols = stmt ? sqlite3_column_count(stmt) : 0;
    if (out) {
        rows = zdm_rows_new(ncols);
        vals = ncols > 0 ? calloc((size_t)ncols, sizeof *vals) : NULL;
        if (!rows || (ncols > 0 && !vals)) {
            status = sq_misuse(err, "out of memory reading a result", NULL);
            goto done;
        }
    }
    if (!stmt) /* empty statement */
        goto done;

    status = bind_params(db, stmt, nparams, params, err);
    if (status != ZDM_OK)
        goto done;

    sq_drv *drv = db->drv;
    /* See the header: a commit waits briefly, and a write outside a
     * transaction is retried whole after letting its locks go. */
    int autocommit_write = sqlite3_get_autocommit(conn) && !sqlite3_stmt_readonly(stmt);
    drv->committing = autocommit_write || is_commit(sql);
    int64_t deadline = drv->lock_ms > 0 ? zdm_mono_ms() + drv->lock_ms : INT64_MAX;
    for (int attempt = 1;; attempt++) {
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            if (!rows)
                continue;
            if (read_row(stmt, ncols, vals) != ZDM_OK || zdm_rows_add(rows, vals) != ZDM_OK) {
                drv->committing = 0;
                status = sq_misuse(err, "out of memory reading a result", NULL);
                goto done;
            }
        }
        if ((rc & 0xff) != SQLITE_BUSY || !autocommit_write || zdm_db_cancel_pending(conn))
            break;
        int64_t now = zdm_mono_ms();
        if (now >= deadline)
            break;
        /* Nothing of the statement was committed: let every lock go and
         * start it again, with rows read so far discarded. */
        sqlite3_reset(stmt);
        if (!sqlite3_get_autocommit(conn))
            (void)sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
        if (rows) {
            zdm_rows_free(rows);
            rows = zdm_rows_new(ncols);
            if (!rows) {
                drv->committing = 0;
                status = sq_misuse(err, "out of memory reading a result", NULL);
                goto done;
            }
        }
        int64_t wait = attempt < 6 ? (int64_t)5 << attempt : 200;
        wait += rand() % (wait / 2 + 1); /* jitter: waiting writers do not retry in step */
        if (wait > deadline - now)
            wait = deadline - now;
        sqlite3_sleep((int)wait);
    }
    drv->committing = 0;
    if (rc != SQLITE_DONE && ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_INTERRUPT) &&
        zdm_db_cancel_pending(conn)) {
        /* As PostgreSQL's 57014 (query_canceled), not a lock timeout to
         * retry: the caller was told to stop. */
        status = zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "sqlite: cancelled by a signal while %s",
                             (rc & 0xff) == SQLITE_BUSY ? "waiting for the database's write lock (another "
                                                          "connection holds it)" : "running");
        set_sqlstate(err, "57014");
    } else if (rc != SQLITE_DONE)
        status = sq_error(db, rc, NULL, err);
    else
        db->changes = sqlite3_changes(conn);

done:
    sqlite3_finalize(stmt);
    free(vals);
    if (status == ZDM_OK && out)
        *out = rows;
    else
        zdm_rows_free(rows);
    return status;
}

static int sq_exec_script(zdm_db *db, const char *sql, zdm_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->conn, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return ZDM_OK;
    sq_error(db, rc, msg, err);
    sqlite3_free(msg);
    return ZDM_EXIT_FAIL;
}

static char *sq_ident(zdm_db *db, const char *name)
{
    (void)db;
    char *q = sqlite3_mprintf("\"%w\"", name);
    if (!q)
        return NULL;
    char *copy = strdup(q); /* callers free() it, not sqlite3_free() */
    sqlite3_free(q);
    return copy;
}

static int sq_set_timeouts(zdm_db *db, int lock_ms, int stmt_ms, zdm_err *err)
{
    (void)err;
    /* 0 means "no timeout" as in PostgreSQL, i.e. wait as long as it
     * takes; sqlite3_busy_timeout(0) would instead mean "never wait".
     *
     * The statement timeout is not enforced: SQLite runs in this process,
     * so a slow statement delays only us (and writers, whose wait is
     * bounded by their own busy timeout).  Enforcing it would need
     * per-connection state (a deadline for sqlite3_progress_handler) that
     * struct zdm_db has no place for. */
    (void)stmt_ms;
    ((sq_drv *)db->drv)->lock_ms = lock_ms > 0 ? lock_ms : 0;
    return ZDM_OK;
}

const zdm_db_ops zdm_db_sqlite_ops = {
    .kind = ZDM_DB_SQLITE,
    .name = "sqlite",
    .connect = sq_connect,
    .close = sq_close,
    .query = sq_query,
    .exec_script = sq_exec_script,
    .ident = sq_ident,
    .set_timeouts = sq_set_timeouts,
};
