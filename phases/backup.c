/*
 * backup.c -- the SQLite backup taken before contract.
 *
 * Contract removes structure for good; on the embedded default a copy of
 * the file is cheap insurance.  The sqlite3 backup API copies a live
 * database page by page while other connections keep using it.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "phase.h"
#include "util.h"

int zdm_backup_sqlite(zdm_run *r, zdm_err *err)
{
    r->backup_path[0] = '\0';
    if (zdm_db_kind_of(r->db) != ZDM_DB_SQLITE || r->no_backup || r->dry_run)
        return 0;
    char ts[40];
    zdm_format_time(zdm_now_ms(), ts, sizeof ts);
    for (char *p = ts; *p; p++)
        if (*p == ':')
            *p = '-';
    snprintf(r->backup_path, sizeof r->backup_path, "%s.zdm-backup-%s-%s",
             r->db->path ? r->db->path : "zdm", r->plan->id, ts);
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(r->backup_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "cannot create the backup %s: %s", r->backup_path,
                    dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", (sqlite3 *)r->db->conn, "main");
    if (!b) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "cannot start the backup to %s: %s", r->backup_path,
                    sqlite3_errmsg(dst));
        goto fail;
    }
    /* 256 pages per step, yielding between steps so writers get the lock. */
    do {
        rc = sqlite3_backup_step(b, 256);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(20);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "backup to %s failed: %s", r->backup_path, sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_close(dst);
    zdm_log(ZDM_LOG_INFO, r->plan->id, "contract", "backup written to %s", r->backup_path);
    return 0;
fail:
    if (dst)
        sqlite3_close(dst);
    remove(r->backup_path);
    r->backup_path[0] = '\0';
    zdm_err_detail(err, "free disk space or fix permissions beside the database, or pass --no-backup "
                        "if you have your own backup; nothing was changed");
    return ZDM_EXIT_FAIL;
}
