/*
 * state.c -- zdm's tables in the target database (see state.h).
 *
 * The only dialect split here is the DDL (types and the schema); every
 * query below runs unchanged on both, with $N parameters.  Table names are
 * zdm's own constants, never user input, so they are formatted in.
 */
#include "state.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const char *const phase_names[ZDM_PHASE__COUNT] = {
    "pending", "expanded", "backfilled", "cut_over", "complete", "rolled_back"};

const char *zdm_phase_name(zdm_phase p)
{
    return (unsigned)p < ZDM_PHASE__COUNT ? phase_names[p] : "unknown";
}

int zdm_phase_parse(const char *name)
{
    for (int i = 0; i < ZDM_PHASE__COUNT; i++)
        if (strcmp(phase_names[i], name) == 0)
            return i;
    return -1;
}

const char *zdm_state_table(const zdm_db *db, const char *base)
{
    /* A small ring of buffers so a statement can name several tables. */
    static char ring[8][64];
    static unsigned next;
    char *b = ring[next++ % 8];
    snprintf(b, sizeof ring[0], "%s%s", zdm_db_kind_of(db) == ZDM_DB_PG ? "zdm." : "zdm_", base);
    return b;
}

static const char pg_ddl[] =
    "CREATE SCHEMA IF NOT EXISTS zdm;\n"
    "CREATE TABLE IF NOT EXISTS zdm.meta (key text PRIMARY KEY, value text NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS zdm.plans (\n"
    "  id text PRIMARY KEY, phase text NOT NULL, checksum text NOT NULL,\n"
    "  phase_since_ms bigint NOT NULL, created_ms bigint NOT NULL,\n"
    "  cutover_at_ms bigint, contract_after_ms bigint);\n"
    "CREATE TABLE IF NOT EXISTS zdm.steps (\n"
    "  plan_id text NOT NULL, phase text NOT NULL, step_index integer NOT NULL,\n"
    "  status text NOT NULL, updated_ms bigint NOT NULL,\n"
    "  PRIMARY KEY (plan_id, phase, step_index));\n"
    "CREATE TABLE IF NOT EXISTS zdm.history (\n"
    "  id bigserial PRIMARY KEY, plan_id text NOT NULL, at_ms bigint NOT NULL,\n"
    "  who text NOT NULL, pid integer NOT NULL, action text NOT NULL,\n"
    "  from_phase text, to_phase text, outcome text NOT NULL, detail text);\n"
    "CREATE TABLE IF NOT EXISTS zdm.locks (\n"
    "  plan_id text PRIMARY KEY, holder text NOT NULL, host text NOT NULL,\n"
    "  pid integer NOT NULL, since_ms bigint NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS zdm.backfills (\n"
    "  plan_id text PRIMARY KEY, key_cols text NOT NULL, bound text, total_est bigint NOT NULL DEFAULT 0,\n"
    "  started_ms bigint NOT NULL, finished_ms bigint, paused integer NOT NULL DEFAULT 0,\n"
    "  settings text NOT NULL DEFAULT '{}');\n"
    "CREATE TABLE IF NOT EXISTS zdm.ranges (\n"
    "  plan_id text NOT NULL, range_id integer NOT NULL, lo text, hi text, cursor text,\n"
    "  done integer NOT NULL DEFAULT 0, rows_done bigint NOT NULL DEFAULT 0,\n"
    "  batches bigint NOT NULL DEFAULT 0, owner text, owner_host text, owner_pid integer,\n"
    "  owner_backend integer, heartbeat_ms bigint, throttle text,\n"
    "  PRIMARY KEY (plan_id, range_id));\n";

static const char sqlite_ddl[] =
    "CREATE TABLE IF NOT EXISTS zdm_meta (key text PRIMARY KEY, value text NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS zdm_plans (\n"
    "  id text PRIMARY KEY, phase text NOT NULL, checksum text NOT NULL,\n"
    "  phase_since_ms integer NOT NULL, created_ms integer NOT NULL,\n"
    "  cutover_at_ms integer, contract_after_ms integer);\n"
    "CREATE TABLE IF NOT EXISTS zdm_steps (\n"
    "  plan_id text NOT NULL, phase text NOT NULL, step_index integer NOT NULL,\n"
    "  status text NOT NULL, updated_ms integer NOT NULL,\n"
    "  PRIMARY KEY (plan_id, phase, step_index));\n"
    "CREATE TABLE IF NOT EXISTS zdm_history (\n"
    "  id integer PRIMARY KEY AUTOINCREMENT, plan_id text NOT NULL, at_ms integer NOT NULL,\n"
    "  who text NOT NULL, pid integer NOT NULL, action text NOT NULL,\n"
    "  from_phase text, to_phase text, outcome text NOT NULL, detail text);\n"
    "CREATE TABLE IF NOT EXISTS zdm_locks (\n"
    "  plan_id text PRIMARY KEY, holder text NOT NULL, host text NOT NULL,\n"
    "  pid integer NOT NULL, since_ms integer NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS zdm_backfills (\n"
    "  plan_id text PRIMARY KEY, key_cols text NOT NULL, bound text, total_est integer NOT NULL DEFAULT 0,\n"
    "  started_ms integer NOT NULL, finished_ms integer, paused integer NOT NULL DEFAULT 0,\n"
    "  settings text NOT NULL DEFAULT '{}');\n"
    "CREATE TABLE IF NOT EXISTS zdm_ranges (\n"
    "  plan_id text NOT NULL, range_id integer NOT NULL, lo text, hi text, cursor text,\n"
    "  done integer NOT NULL DEFAULT 0, rows_done integer NOT NULL DEFAULT 0,\n"
    "  batches integer NOT NULL DEFAULT 0, owner text, owner_host text, owner_pid integer,\n"
    "  owner_backend integer, heartbeat_ms integer, throttle text,\n"
    "  PRIMARY KEY (plan_id, range_id));\n"
    "CREATE TABLE IF NOT EXISTS zdm_guard (plan_id text PRIMARY KEY);\n";

/* Upgrades from version N to N+1, in order.  Empty for now: version 1 is
 * the first layout.  A new layout appends its ALTERs here. */
static const char *const upgrades_pg[] = {NULL};
static const char *const upgrades_sqlite[] = {NULL};

static int read_version(zdm_db *db, int *version, zdm_err *err)
{
    /* Ask the catalog first, so a first run does not leave "relation does
     * not exist" errors in the server's log. */
    char *there = NULL;
    int rc0 = zdm_db_query_value(db, zdm_db_kind_of(db) == ZDM_DB_PG
                                         ? "SELECT to_regclass('zdm.meta') IS NOT NULL"
                                         : "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'zdm_meta'",
                                 0, NULL, &there, err);
    if (rc0 != 0)
        return rc0;
    int exists = there && (there[0] == 't' || there[0] == '1');
    free(there);
    if (!exists) {
        *version = 0;
        return 0;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT value FROM %s WHERE key = 'schema_version'",
             zdm_state_table(db, "meta"));
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 0, NULL, &v, err);
    if (rc != 0)
        return rc;
    *version = v ? atoi(v) : 0;
    free(v);
    return 0;
}

int zdm_state_exists(zdm_db *db)
{
    int version = 0;
    zdm_err probe;
    zdm_err_clear(&probe);
    return read_version(db, &version, &probe) == 0 && version > 0;
}

int zdm_state_init(zdm_db *db, zdm_err *err)
{
    int version = 0;
    zdm_err probe;
    zdm_err_clear(&probe);
    /* Fast path: the tables exist at the current version. */
    if (read_version(db, &version, &probe) == 0 && version == ZDM_STATE_VERSION)
        return 0;
    if (version > ZDM_STATE_VERSION) {
        zdm_err_set(err, ZDM_EXIT_FAIL,
                    "zdm's state tables are at version %d, newer than this zdm understands (%d)",
                    version, ZDM_STATE_VERSION);
        zdm_err_detail(err, "upgrade zdm on this machine to the version that last wrote the database");
        return ZDM_EXIT_FAIL;
    }
    int pg = zdm_db_kind_of(db) == ZDM_DB_PG;
    int rc = zdm_db_begin(db, err);
    if (rc != 0)
        return rc;
    if (pg) {
        /* Two first runs at once must not both CREATE SCHEMA. */
        rc = zdm_db_query(db, "SELECT pg_advisory_xact_lock(4242, 0)", 0, NULL, NULL, err);
        if (rc != 0)
            goto fail;
    }
    rc = zdm_db_exec_script(db, pg ? pg_ddl : sqlite_ddl, err);
    if (rc != 0)
        goto fail;
    rc = read_version(db, &version, err);
    if (rc != 0)
        goto fail;
    if (version == 0) {
        char sql[200], v[16];
        snprintf(sql, sizeof sql, "INSERT INTO %s (key, value) VALUES ('schema_version', $1)",
                 zdm_state_table(db, "meta"));
        snprintf(v, sizeof v, "%d", ZDM_STATE_VERSION);
        const char *params[] = {v};
        rc = zdm_db_query(db, sql, 1, params, NULL, err);
        if (rc != 0)
            goto fail;
    } else {
        const char *const *up = pg ? upgrades_pg : upgrades_sqlite;
        for (int v = version; v >= 1 && v < ZDM_STATE_VERSION; v++) {
            if (!up[v - 1])
                continue;
            rc = zdm_db_exec_script(db, up[v - 1], err);
            if (rc != 0)
                goto fail;
        }
        char sql[200], v[16];
        snprintf(sql, sizeof sql, "UPDATE %s SET value = $1 WHERE key = 'schema_version'",
                 zdm_state_table(db, "meta"));
        snprintf(v, sizeof v, "%d", ZDM_STATE_VERSION);
        const char *params[] = {v};
        rc = zdm_db_query(db, sql, 1, params, NULL, err);
        if (rc != 0)
            goto fail;
    }
    return zdm_db_commit(db, err);
fail:
    zdm_db_rollback(db);
    zdm_err_prefix(err, "creating zdm's state tables: ");
    return rc;
}

static int64_t to_i64(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

int zdm_state_get(zdm_db *db, const char *plan_id, zdm_plan_state *out, zdm_err *err)
{
    memset(out, 0, sizeof *out);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT phase, checksum, phase_since_ms, cutover_at_ms, contract_after_ms "
             "FROM %s WHERE id = $1", zdm_state_table(db, "plans"));
    const char *params[] = {plan_id};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 1, params, &r, err);
    if (rc != 0)
        return rc;
    if (zdm_rows_count(r) == 1) {
        out->known = 1;
        int ph = zdm_phase_parse(zdm_rows_get(r, 0, 0));
        out->phase = ph < 0 ? ZDM_PENDING : (zdm_phase)ph;
        snprintf(out->checksum, sizeof out->checksum, "%s", zdm_rows_get(r, 0, 1));
        out->phase_since_ms = to_i64(zdm_rows_get(r, 0, 2));
        out->cutover_at_ms = to_i64(zdm_rows_get(r, 0, 3));
        out->contract_after_ms = to_i64(zdm_rows_get(r, 0, 4));
        if (ph < 0)
            rc = zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s has unknown phase \"%s\" in the state table",
                             plan_id, zdm_rows_get(r, 0, 0));
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_set_phase(zdm_db *db, const char *plan_id, zdm_phase phase, const char *checksum,
                        zdm_err *err)
{
    char sql[512], now[32];
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (id, phase, checksum, phase_since_ms, created_ms) "
             "VALUES ($1, $2, $3, $4, $4) "
             "ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, "
             "checksum = excluded.checksum, phase_since_ms = excluded.phase_since_ms",
             zdm_state_table(db, "plans"));
    const char *params[] = {plan_id, zdm_phase_name(phase), checksum, now};
    return zdm_db_query(db, sql, 4, params, NULL, err);
}

static int set_time_col(zdm_db *db, const char *plan_id, const char *col, int64_t at_ms, zdm_err *err)
{
    char sql[256], v[32];
    snprintf(sql, sizeof sql, "UPDATE %s SET %s = $2 WHERE id = $1", zdm_state_table(db, "plans"), col);
    snprintf(v, sizeof v, "%lld", (long long)at_ms);
    const char *params[] = {plan_id, at_ms ? v : NULL};
    return zdm_db_query(db, sql, 2, params, NULL, err);
}

int zdm_state_set_cutover(zdm_db *db, const char *plan_id, int64_t at_ms, zdm_err *err)
{
    return set_time_col(db, plan_id, "cutover_at_ms", at_ms, err);
}

int zdm_state_set_contract_after(zdm_db *db, const char *plan_id, int64_t at_ms, zdm_err *err)
{
    return set_time_col(db, plan_id, "contract_after_ms", at_ms, err);
}

int zdm_state_step_status(zdm_db *db, const char *plan_id, const char *phase, int index,
                          char status[16], zdm_err *err)
{
    char sql[256], idx[16];
    snprintf(sql, sizeof sql,
             "SELECT status FROM %s WHERE plan_id = $1 AND phase = $2 AND step_index = $3",
             zdm_state_table(db, "steps"));
    snprintf(idx, sizeof idx, "%d", index);
    const char *params[] = {plan_id, phase, idx};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 3, params, &v, err);
    snprintf(status, 16, "%s", v ? v : "");
    free(v);
    return rc;
}

int zdm_state_step_mark(zdm_db *db, const char *plan_id, const char *phase, int index,
                        const char *status, zdm_err *err)
{
    char sql[400], idx[16], now[32];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (plan_id, phase, step_index, status, updated_ms) VALUES ($1, $2, $3, $4, $5) "
             "ON CONFLICT (plan_id, phase, step_index) DO UPDATE SET status = excluded.status, "
             "updated_ms = excluded.updated_ms",
             zdm_state_table(db, "steps"));
    snprintf(idx, sizeof idx, "%d", index);
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    const char *params[] = {plan_id, phase, idx, status, now};
    return zdm_db_query(db, sql, 5, params, NULL, err);
}

int zdm_state_steps_applied(zdm_db *db, const char *plan_id, int *n, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE plan_id = $1 AND status IN ('done', 'running')",
             zdm_state_table(db, "steps"));
    const char *params[] = {plan_id};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 1, params, &v, err);
    *n = v ? atoi(v) : 0;
    free(v);
    return rc;
}

int zdm_state_steps_clear(zdm_db *db, const char *plan_id, const char *phase, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE plan_id = $1 AND phase = $2",
             zdm_state_table(db, "steps"));
    const char *params[] = {plan_id, phase};
    return zdm_db_query(db, sql, 2, params, NULL, err);
}

int zdm_state_history_add(zdm_db *db, const zdm_history_entry *h, int64_t *id, zdm_err *err)
{
    char sql[400], now[32], pid[16];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (plan_id, at_ms, who, pid, action, from_phase, to_phase, outcome, detail) "
             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
             zdm_state_table(db, "history"));
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *params[] = {h->plan_id, now, zdm_whoami(), pid, h->action, h->from_phase,
                            h->to_phase, h->outcome, h->detail};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 9, params, &v, err);
    if (rc == 0 && id)
        *id = to_i64(v);
    free(v);
    return rc;
}

int zdm_state_history_update(zdm_db *db, int64_t id, const char *outcome, const char *detail,
                             zdm_err *err)
{
    char sql[200], ids[32];
    snprintf(sql, sizeof sql, "UPDATE %s SET outcome = $2, detail = $3 WHERE id = $1",
             zdm_state_table(db, "history"));
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *params[] = {ids, outcome, detail};
    return zdm_db_query(db, sql, 3, params, NULL, err);
}

static const char *host_part(void)
{
    const char *at = strchr(zdm_whoami(), '@');
    return at ? at + 1 : zdm_whoami();
}

static int describe_holder(zdm_db *db, const char *plan_id, char *holder, size_t size,
                           char *host, size_t hsize, int *pid, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT holder, host, pid, since_ms FROM %s WHERE plan_id = $1",
             zdm_state_table(db, "locks"));
    const char *params[] = {plan_id};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 1, params, &r, err);
    if (rc != 0)
        return rc;
    *pid = 0;
    host[0] = '\0';
    if (zdm_rows_count(r) == 1) {
        char ts[40];
        zdm_format_time(to_i64(zdm_rows_get(r, 0, 3)), ts, sizeof ts);
        *pid = atoi(zdm_rows_get(r, 0, 2));
        snprintf(host, hsize, "%s", zdm_rows_get(r, 0, 1));
        snprintf(holder, size, "%s pid %d since %s", zdm_rows_get(r, 0, 0), *pid, ts);
    } else {
        snprintf(holder, size, "another zdm session (holder row not yet written)");
    }
    zdm_rows_free(r);
    return 0;
}

static int write_holder(zdm_db *db, const char *plan_id, int upsert, int *inserted, zdm_err *err)
{
    char sql[400], now[32], pid[16];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (plan_id, holder, host, pid, since_ms) VALUES ($1, $2, $3, $4, $5) "
             "ON CONFLICT (plan_id) DO %s RETURNING plan_id",
             zdm_state_table(db, "locks"),
             upsert ? "UPDATE SET holder = excluded.holder, host = excluded.host, "
                      "pid = excluded.pid, since_ms = excluded.since_ms"
                    : "NOTHING");
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *params[] = {plan_id, zdm_whoami(), host_part(), pid, now};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 5, params, &r, err);
    if (rc == 0)
        *inserted = zdm_rows_count(r) == 1;
    zdm_rows_free(r);
    return rc;
}

int zdm_state_lock(zdm_db *db, const char *plan_id, int *got, char *holder, size_t holder_size,
                   zdm_err *err)
{
    *got = 0;
    holder[0] = '\0';
    int rc, inserted = 0, pid = 0;
    char host[256];
    if (zdm_db_kind_of(db) == ZDM_DB_PG) {
        const char *params[] = {plan_id};
        char *v = NULL;
        rc = zdm_db_query_value(db, "SELECT pg_try_advisory_lock(4242, hashtext($1))", 1, params, &v, err);
        if (rc != 0)
            return rc;
        int ok = v && (v[0] == 't' || v[0] == '1');
        free(v);
        if (!ok)
            return describe_holder(db, plan_id, holder, holder_size, host, sizeof host, &pid, err);
        rc = write_holder(db, plan_id, 1, &inserted, err);
        if (rc != 0) {
            zdm_state_unlock(db, plan_id);
            return rc;
        }
        *got = 1;
        return 0;
    }
    /* SQLite: the row is the lock.  A holder on this host whose pid is gone
     * died without cleaning up (kill -9, power loss): take it over.
     *
     * Read before writing: a live holder running a step in a transaction
     * has the database's write lock, so our INSERT would wait out the busy
     * timeout and fail with "database is locked" instead of naming it. */
    rc = describe_holder(db, plan_id, holder, holder_size, host, sizeof host, &pid, err);
    if (rc != 0)
        return rc;
    if (pid > 0) {
        /* Our own pid on our host is a previous run that died: this process
         * takes a plan's lock once, and containers reuse pids (pid 1). */
        int gone = strcmp(host, host_part()) == 0 &&
                   (pid == (int)getpid() || (kill(pid, 0) != 0 && errno == ESRCH));
        if (!gone)
            return 0;
    }
    holder[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = write_holder(db, plan_id, 0, &inserted, err);
        if (rc != 0)
            return rc;
        if (inserted) {
            *got = 1;
            return 0;
        }
        rc = describe_holder(db, plan_id, holder, holder_size, host, sizeof host, &pid, err);
        if (rc != 0)
            return rc;
        int stale = strcmp(host, host_part()) == 0 && pid > 0 &&
                    (pid == (int)getpid() || (kill(pid, 0) != 0 && errno == ESRCH));
        if (!stale)
            return 0;
        char sql[200], pids[16];
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE plan_id = $1 AND pid = $2 AND host = $3",
                 zdm_state_table(db, "locks"));
        snprintf(pids, sizeof pids, "%d", pid);
        const char *params[] = {plan_id, pids, host};
        rc = zdm_db_query(db, sql, 3, params, NULL, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void zdm_state_unlock(zdm_db *db, const char *plan_id)
{
    zdm_err e;
    zdm_err_clear(&e);
    char sql[200], pid[16];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE plan_id = $1 AND pid = $2 AND host = $3",
             zdm_state_table(db, "locks"));
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *params[] = {plan_id, pid, host_part()};
    if (zdm_db_query(db, sql, 3, params, NULL, &e) != 0)
        return; /* connection gone: the session's advisory lock went with it */
    if (zdm_db_kind_of(db) == ZDM_DB_PG) {
        const char *p2[] = {plan_id};
        if (zdm_db_query(db, "SELECT pg_advisory_unlock(4242, hashtext($1))", 1, p2, NULL, &e) != 0)
            return;
    }
}
