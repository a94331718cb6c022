/*
 * life_db.c -- the lifecycle verbs a command needs around the database it
 * names (see lifecycle.h, "Commands' verbs").
 *
 * Owns: opening the database of --db with the rules of each command (may
 * a missing SQLite file be created, and is that said; does a dry run see
 * a missing file as an empty database; is the layout checked or created),
 * the printable name of that database, zdm init / init --upgrade, a plan's
 * recorded state (pending when zdm's tables are not there yet), zdm
 * unlock and zdm retry with their history rows, and the history listing.
 * The commands in cli_*.c parse and print; they reach the driver and
 * zdm's tables only through these verbs.
 */
#include "lifecycle.h"

#include <stdio.h>
#include <string.h>

int zdm_life_open(const char *url, int flags, FILE *notes, const char *missing_note, zdm_db **db,
                  zdm_err *err)
{
    int dflags = flags & ZDM_LIFE_OPEN_CREATE ? 0 : ZDM_DB_MUST_EXIST;
    if (flags & ZDM_LIFE_OPEN_MISSING_EMPTY)
        dflags |= ZDM_DB_MISSING_EMPTY;
    int rc = zdm_db_open_ex(url, dflags, db, err);
    /* advance --all says it created the file only once its tables are in */
    if (rc == 0 && (flags & ZDM_LIFE_OPEN_INIT))
        rc = zdm_state_init(*db, err);
    if (rc == 0 && zdm_db_created(*db) && (flags & ZDM_LIFE_OPEN_SAY_CREATED)) /* a mistyped path shows here */
        fprintf(notes, "zdm: no database file was at %s; created a new, empty one\n", zdm_db_safe_url(*db));
    if (rc == 0 && zdm_db_missing(*db))
        fprintf(notes, "zdm: no database file at %s: %s\n", zdm_db_safe_url(*db),
                missing_note ? missing_note : "it reads as a new, empty database; no file is created");
    /* Every command, read-only ones too, refuses a layout it cannot read
     * rather than show plans as pending. */
    if (rc == 0 && (flags & ZDM_LIFE_OPEN_CHECK))
        rc = zdm_state_check(*db, err);
    if (rc != 0 && *db) {
        zdm_db_close(*db);
        *db = NULL;
    }
    return rc;
}

void zdm_life_close(zdm_db *db)
{
    if (db)
        zdm_db_close(db);
}

const char *zdm_life_db_name(const zdm_db *db)
{
    return zdm_db_safe_url(db);
}

const char *zdm_life_db_dialect(const zdm_db *db)
{
    return zdm_db_dialect_name(db);
}

int zdm_life_has_state(zdm_db *db)
{
    return db && zdm_state_exists(db);
}

int zdm_life_init(zdm_db *db, int upgrade, int *from, int *version, zdm_err *err)
{
    *from = ZDM_STATE_VERSION;
    *version = ZDM_STATE_VERSION;
    return upgrade ? zdm_state_upgrade(db, from, err) : zdm_state_init(db, err);
}

int zdm_life_plan_state(zdm_db *db, const char *plan_id, zdm_plan_state *st, zdm_err *err)
{
    memset(st, 0, sizeof *st);
    return zdm_life_has_state(db) ? zdm_state_get(db, plan_id, st, err) : 0;
}

int zdm_life_unlock(zdm_db *db, const zdm_plan *plan, int force, char *detail, size_t size, zdm_err *err)
{
    int rc = zdm_state_init(db, err);
    char holder[256], pid[32], live[600];
    int removed = 0;
    /* A holder that is alive is a run in progress: taking its lock away
     * let a second cutover run its hook beside the first.  On PostgreSQL
     * the server session keeps the advisory lock whatever its zdm became
     * (kill -9 during a long statement): removing the row changed nothing
     * but what status showed. */
    if (rc == 0)
        rc = zdm_state_lock_live(db, plan->id, live, sizeof live, err);
    if (rc == 0 && live[0] && (zdm_db_kind_of(db) == ZDM_DB_PG || !force)) {
        int pg = zdm_db_kind_of(db) == ZDM_DB_PG;
        zdm_err_set(err, ZDM_EXIT_REFUSED, "plan %s's lock is held by %s: that run is still going, nothing "
                    "was removed", plan->id, live);
        zdm_err_reason(err, "lock_live");
        if (pg)
            zdm_err_detail(err, "wait for it to finish; if it must stop, end that session with SELECT "
                                "pg_terminate_backend(PID) (its transaction is rolled back and the lock goes with "
                                "it), then run the command again");
        else
            zdm_err_detail(err, "wait for it to finish, or stop that process (kill PID: a run stopped by a "
                                "signal resumes safely); if that pid is now another program's, run \"zdm unlock "
                                "%s --force\"", plan->id);
        return ZDM_EXIT_REFUSED;
    }
    if (rc == 0)
        rc = zdm_state_lock_remove(db, plan->id, &removed, holder, sizeof holder, pid, sizeof pid, err);
    if (rc != 0)
        return rc;
    if (removed)
        snprintf(detail, size, "removed the lock of %s pid %s", holder, pid);
    else
        snprintf(detail, size, "no lock row was held");
    zdm_history_entry h = {plan->id, "unlock", NULL, NULL, "ok", detail};
    return zdm_state_history_add(db, &h, NULL, err);
}

int zdm_life_retry(zdm_db *db, const zdm_plan *plan, int *cleared, char *detail, size_t size, zdm_err *err)
{
    *cleared = 0;
    zdm_plan_state st;
    int rc = zdm_life_plan_state(db, plan->id, &st, err);
    if (rc != 0 || (!st.failed_ms && !st.attempts))
        return rc;
    int was_failed = 0;
    rc = zdm_state_contract_retry(db, plan->id, &was_failed, err);
    snprintf(detail, size, "%s after %d contract attempt%s; last error: %s",
             was_failed ? "failed state cleared" : "attempt count cleared", st.attempts,
             st.attempts == 1 ? "" : "s", st.last_error[0] ? st.last_error : "(none)");
    zdm_history_entry h = {plan->id, "retry", zdm_phase_name(st.phase), NULL, "ok", detail};
    if (rc == 0)
        rc = zdm_state_history_add(db, &h, NULL, err);
    *cleared = rc == 0;
    return rc;
}

int zdm_life_history(zdm_db *db, const zdm_history_filter *f, zdm_history_list *out, zdm_err *err)
{
    memset(out, 0, sizeof *out);
    return zdm_life_has_state(db) ? zdm_state_history_list(db, f, out, err) : 0;
}

void zdm_life_history_free(zdm_history_list *l)
{
    zdm_state_history_list_free(l);
}
