/*
 * db_sqlite.c -- the SQLite driver (zdm_db_sqlite_ops) over sqlite3.
 *
 * Owns: the sqlite3 handle of a zdm_db, the sqlite:PATH URL forms,
 * binding the $1..$N placeholders shared with the PostgreSQL driver, and
 * turning sqlite3 errors into zdm_err ("sqlite: <message> (SQLITE_NAME)").
 *
 * sqlite3 has no SQLSTATE.  err->sqlstate stays "" except for a lock wait
 * that gave up (SQLITE_BUSY, SQLITE_LOCKED): those get the marker "SQLBU"
 * so zdm_db_err_is_lock_timeout() answers the same for both dialects.
 */
#include "db.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZDM_SQLITE_BUSY_MS 5000
#define LOCK_WAIT_MARKER "SQLBU" /* see zdm_db_err_is_lock_timeout() */

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

/* msg: the text to report, or NULL for the connection's last message. */
static int sq_error(zdm_db *db, int rc, const char *msg, zdm_err *err)
{
    char buf[32];
    if (!msg)
        msg = db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc);
    zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: %s (%s)", msg, code_name(rc, buf, sizeof buf));
    int p = rc & 0xff;
    set_sqlstate(err, p == SQLITE_BUSY || p == SQLITE_LOCKED ? LOCK_WAIT_MARKER : "");
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

static int sq_connect(zdm_db *db, const char *url, zdm_err *err)
{
    const char *path = url_path(url);
    if (!*path) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "sqlite: no file name in \"%s\"", db->safe_url);
        set_sqlstate(err, "");
        zdm_err_detail(err, "write sqlite:FILE, sqlite://relative/file or sqlite:///absolute/file");
        return ZDM_EXIT_USAGE;
    }
    db->path = strdup(path);
    if (!db->path)
        return sq_misuse(err, "out of memory opening ", path);

    sqlite3 *conn = NULL;
    int rc = sqlite3_open_v2(path, &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        char buf[32];
        zdm_err_set(err, ZDM_EXIT_FAIL, "sqlite: cannot open %s: %s (%s)", path,
                    conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc),
                    code_name(rc, buf, sizeof buf));
        set_sqlstate(err, "");
        sqlite3_close(conn); /* the handle exists even when open failed */
        return ZDM_EXIT_FAIL;
    }
    db->conn = conn;
    sqlite3_extended_result_codes(conn, 1);
    sqlite3_busy_timeout(conn, ZDM_SQLITE_BUSY_MS);

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
        return ZDM_EXIT_FAIL;
    }
    return ZDM_OK;
}

static void sq_close(zdm_db *db)
{
    /* _v2: never leaves the handle open because of a forgotten statement. */
    sqlite3_close_v2(db->conn);
    db->conn = NULL;
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

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!rows)
            continue;
        for (int c = 0; c < ncols; c++) {
            if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
                vals[c] = NULL;
                continue;
            }
            vals[c] = (const char *)sqlite3_column_text(stmt, c);
            if (!vals[c]) {
                if (sqlite3_errcode(conn) == SQLITE_NOMEM) {
                    status = sq_misuse(err, "out of memory reading a result", NULL);
                    goto done;
                }
                vals[c] = ""; /* a zero-length BLOB */
            }
        }
        if (zdm_rows_add(rows, vals) != ZDM_OK) {
            status = sq_misuse(err, "out of memory reading a result", NULL);
            goto done;
        }
    }
    if (rc != SQLITE_DONE)
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
    sqlite3_busy_timeout(db->conn, lock_ms > 0 ? lock_ms : INT_MAX);
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
