/*
 * db_cancel.c -- cancelling the running statement from a signal handler.
 *
 * A worker blocked in a long statement cannot run its event loop, so the
 * second Ctrl-C must act from the handler itself: PQcancel() and
 * sqlite3_interrupt() are the calls their libraries document as safe for
 * that.  One connection at a time is armed (the worker's).
 */
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>

#include "db.h"

static PGcancel *volatile armed_pg;
static sqlite3 *volatile armed_sqlite;
/* The armed SQLite connection was cancelled: sqlite3_interrupt() stops a
 * running statement, but not a wait for the write lock (SQLite's busy
 * loop never looks at it), so the driver's busy handler and its retry
 * loop read this and give up the wait.  Cleared at arm, disarm and the
 * end of a cancellable batch. */
static volatile sig_atomic_t sqlite_cancelled;
/* A backfill batch in flight: its transaction only rolls back when
 * cancelled (nothing committed is lost), so the first signal may cancel
 * it -- a batch blocked on a lock would otherwise hold SIGTERM for its
 * whole lock timeout. */
static volatile sig_atomic_t on_first;

void zdm_db_cancel_first(int on)
{
    on_first = on ? 1 : 0;
    if (!on)
        sqlite_cancelled = 0;
}

int zdm_db_cancel_pending(const void *conn)
{
    return sqlite_cancelled && conn && conn == (const void *)armed_sqlite;
}

int zdm_db_cancel_is_first(void)
{
    return on_first;
}

void zdm_db_cancel_arm(zdm_db *db)
{
    zdm_db_cancel_disarm();
    sqlite_cancelled = 0;
    if (!db)
        return;
    if (zdm_db_kind_of(db) == ZDM_DB_PG)
        armed_pg = PQgetCancel((PGconn *)db->conn);
    else
        armed_sqlite = (sqlite3 *)db->conn;
}

void zdm_db_cancel_disarm(void)
{
    PGcancel *c = armed_pg;
    armed_pg = NULL;
    armed_sqlite = NULL;
    sqlite_cancelled = 0;
    if (c)
        PQfreeCancel(c);
}

void zdm_db_cancel_now(void)
{
    char buf[256];
    if (armed_pg)
        (void)PQcancel(armed_pg, buf, (int)sizeof buf);
    if (armed_sqlite) {
        sqlite_cancelled = 1;
        sqlite3_interrupt(armed_sqlite);
    }
}
