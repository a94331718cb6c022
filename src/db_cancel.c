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
/* A backfill batch in flight: its transaction only rolls back when
 * cancelled (nothing committed is lost), so the first signal may cancel
 * it -- a batch blocked on a lock would otherwise hold SIGTERM for its
 * whole lock timeout. */
static volatile sig_atomic_t on_first;

void zdm_db_cancel_first(int on)
{
    on_first = on ? 1 : 0;
}

int zdm_db_cancel_is_first(void)
{
    return on_first;
}

void zdm_db_cancel_arm(zdm_db *db)
{
    zdm_db_cancel_disarm();
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
    if (c)
        PQfreeCancel(c);
}

void zdm_db_cancel_now(void)
{
    char buf[256];
    if (armed_pg)
        (void)PQcancel(armed_pg, buf, (int)sizeof buf);
    if (armed_sqlite)
        sqlite3_interrupt(armed_sqlite);
}
