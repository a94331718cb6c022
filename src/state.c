/*
 * state.c -- zdm's tables in the target database (see state.h).
 *
 * The DDL is written once; the dialect supplies what differs (the table
 * prefix, types, the schema, dialect.h).  Every query below runs
 * unchanged on both, with $N parameters.  Table names are
 * zdm's own constants, never user input, so they are formatted in.
 */
#include "state.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dialect.h"
#include "util.h"

/* How long a deferred refusal record waits for the write lock. */
#define ZDM_REFUSAL_WAIT_MS (10 * 60 * 1000)

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
    snprintf(b, sizeof ring[0], "%s%s", zdm_db_dialect(db)->state_prefix, base);
    return b;
}

/* The state tables, written once: "@" + a word is the dialect's (see
 * zdm_dialect.state_*): @T the table-name prefix (zdm. / zdm_), @BIGINT
 * a 64-bit integer, @SERIAL an auto-numbered 64-bit primary key.  The
 * dialect adds what only it has around this (the schema, zdm_guard). */
static const char state_ddl[] =
    "CREATE TABLE IF NOT EXISTS @Tmeta (key text PRIMARY KEY, value text NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS @Tplans (\n"
    "  id text PRIMARY KEY, phase text NOT NULL, checksum text NOT NULL,\n"
    "  phase_since_ms @BIGINT NOT NULL, created_ms @BIGINT NOT NULL,\n"
    "  cutover_at_ms @BIGINT, contract_after_ms @BIGINT,\n"
    "  attempts integer NOT NULL DEFAULT 0, last_error text, last_attempt_ms @BIGINT, failed_ms @BIGINT);\n"
    "CREATE TABLE IF NOT EXISTS @Tsteps (\n"
    "  plan_id text NOT NULL, phase text NOT NULL, step_index integer NOT NULL,\n"
    "  status text NOT NULL, updated_ms @BIGINT NOT NULL,\n"
    "  PRIMARY KEY (plan_id, phase, step_index));\n"
    "CREATE TABLE IF NOT EXISTS @Thistory (\n"
    "  id @SERIAL, plan_id text NOT NULL, at_ms @BIGINT NOT NULL,\n"
    "  who text NOT NULL, pid integer NOT NULL, action text NOT NULL,\n"
    "  from_phase text, to_phase text, outcome text NOT NULL, detail text, reason text);\n"
    "CREATE TABLE IF NOT EXISTS @Tlocks (\n"
    "  plan_id text PRIMARY KEY, holder text NOT NULL, host text NOT NULL,\n"
    "  pid integer NOT NULL, since_ms @BIGINT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS @Tbackfills (\n"
    "  plan_id text PRIMARY KEY, key_cols text NOT NULL, bound text, total_est @BIGINT NOT NULL DEFAULT 0,\n"
    "  started_ms @BIGINT NOT NULL, finished_ms @BIGINT, paused integer NOT NULL DEFAULT 0,\n"
    "  settings text NOT NULL DEFAULT '{}');\n"
    "CREATE TABLE IF NOT EXISTS @Tranges (\n"
    "  plan_id text NOT NULL, range_id integer NOT NULL, lo text, hi text, cursor text,\n"
    "  done integer NOT NULL DEFAULT 0, rows_done @BIGINT NOT NULL DEFAULT 0,\n"
    "  batches @BIGINT NOT NULL DEFAULT 0, owner text, owner_host text, owner_pid integer,\n"
    "  owner_backend integer, heartbeat_ms @BIGINT, throttle text, last_batch_ms @BIGINT,\n"
    "  rate_rows @BIGINT, rate_ms @BIGINT,\n"
    "  PRIMARY KEY (plan_id, range_id));\n";

/* Upgrades from version N to N+1, in order: upgrades[N - 1], columns
 * added with the dialect's ADD COLUMN (same @ words).  Run only by
 * zdm_state_upgrade ("zdm init --upgrade"), never behind an operator's
 * back by whichever host runs a newer zdm first. */
typedef struct state_column {
    const char *table, *column; /* NULL table: end of this version's list */
} state_column;
static const state_column upgrades[][6] = {
    /* 1 -> 2: the failure policy of run-due */
    {{"@Tplans", "attempts integer NOT NULL DEFAULT 0"},
     {"@Tplans", "last_error text"},
     {"@Tplans", "last_attempt_ms @BIGINT"},
     {"@Tplans", "failed_ms @BIGINT"},
     {"@Tranges", "last_batch_ms @BIGINT"},
     {NULL, NULL}},
    /* 2 -> 3: a refusal's kind, which folds repeats */
    {{"@Thistory", "reason text"},
     {NULL, NULL}},
    /* 3 -> 4: each worker's recent rate, for zdm status's rate and ETA */
    {{"@Tranges", "rate_rows @BIGINT"},
     {"@Tranges", "rate_ms @BIGINT"},
     {NULL, NULL}},
};
_Static_assert(sizeof upgrades / sizeof *upgrades == ZDM_STATE_VERSION - 1, "one upgrade per version");

/* tmpl with the @ words of dialect d, appended to out. */
static void state_sql(const zdm_dialect *d, const char *tmpl, zdm_buf *out)
{
    static const struct {
        const char *word;
        size_t off;
    } words[] = {
        {"@T", offsetof(zdm_dialect, state_prefix)},
        {"@BIGINT", offsetof(zdm_dialect, state_bigint)},
        {"@SERIAL", offsetof(zdm_dialect, state_serial_pk)},
    };
    for (const char *p = tmpl; *p;) {
        size_t k = 0, n = sizeof words / sizeof words[0];
        while (k < n && strncmp(p, words[k].word, strlen(words[k].word)) != 0)
            k++;
        if (k == n) {
            zdm_buf_putn(out, p++, 1);
            continue;
        }
        zdm_buf_puts(out, *(const char *const *)((const char *)d + words[k].off));
        p += strlen(words[k].word);
    }
}

/* "2" -> 2; anything but a plain positive number ("", "0", "abc", "2x") -> -1. */
static int parse_version(const char *v)
{
    if (!v || !*v || strlen(v) > 6)
        return -1;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    int n = atoi(v);
    return n >= 1 ? n : -1;
}

int zdm_state_layout_read(zdm_db *db, zdm_state_layout *out, zdm_err *err)
{
    memset(out, 0, sizeof *out);
    out->version = -1;
    /* Ask the catalog first, so a first run does not leave "relation does
     * not exist" errors in the server's log.  Any of zdm's tables counts:
     * a meta table dropped by hand beside the others is damage, not a
     * fresh database. */
    /* plans before meta: the tables and the version row commit together,
     * but the two questions see two moments.  Asked the other way round, a
     * first run committing between them read as "plans without meta", a
     * damaged state (exit 5 from a concurrent command, test_races).  This
     * way a commit in between is seen as meta without plans: a layout
     * with its version. */
    const zdm_dialect *d = zdm_db_dialect(db);
    int have_meta = 0, have_plans = 0;
    int rc = d->table_exists(db, zdm_state_table(db, "plans"), &have_plans, err);
    if (rc == 0)
        rc = d->table_exists(db, zdm_state_table(db, "meta"), &have_meta, err);
    if (rc != 0)
        return rc;
    if (!have_meta && !have_plans)
        return 0;
    out->exists = 1;
    if (!have_meta)
        return 0;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT key, value FROM %s WHERE key IN ('schema_version', 'layout_written_by')",
             zdm_state_table(db, "meta"));
    zdm_rows *r = NULL;
    rc = zdm_db_query(db, sql, 0, NULL, &r, err);
    if (rc != 0)
        return rc;
    for (int i = 0; i < zdm_rows_count(r); i++) {
        const char *k = zdm_rows_get(r, i, 0), *v = zdm_rows_get(r, i, 1);
        if (strcmp(k, "schema_version") == 0) {
            snprintf(out->raw, sizeof out->raw, "%s", v ? v : "");
            out->version = parse_version(v);
        } else {
            snprintf(out->written_by, sizeof out->written_by, "%s", v ? v : "");
        }
    }
    zdm_rows_free(r);
    return 0;
}

int zdm_state_exists(zdm_db *db)
{
    zdm_state_layout l;
    zdm_err probe;
    zdm_err_clear(&probe);
    return zdm_state_layout_read(db, &l, &probe) == 0 && l.exists;
}

/* The refusal for a layout this zdm cannot use, or 0. */
static int refuse_layout(zdm_db *db, const zdm_state_layout *l, zdm_err *err)
{
    if (!l->exists || l->version == ZDM_STATE_VERSION)
        return 0;
    const char *url = zdm_db_safe_url(db);
    if (l->version < 0) {
        zdm_err_set(err, ZDM_EXIT_STATE,
                    "zdm's state in %s is damaged: its layout version (%s) is %s%s%s; nothing was done", url,
                    zdm_state_table(db, "meta"), l->raw[0] ? "\"" : "missing", l->raw[0] ? l->raw : "",
                    l->raw[0] ? "\", not a version number" : "");
        zdm_err_detail(err, "zdm will not guess: restore %s from a backup, or, if you know which zdm wrote "
                            "it, set key schema_version to its layout (this zdm %s writes %d)",
                       zdm_state_table(db, "meta"), ZDM_VERSION, ZDM_STATE_VERSION);
        return ZDM_EXIT_STATE;
    }
    if (l->version > ZDM_STATE_VERSION) {
        zdm_err_set(err, ZDM_EXIT_STATE,
                    "zdm's state in %s is at layout %d, written by zdm %s; this zdm %s knows layouts up to %d; "
                    "nothing was done", url, l->version, l->written_by[0] ? l->written_by : "(unknown version)",
                    ZDM_VERSION, ZDM_STATE_VERSION);
        zdm_err_detail(err, "run zdm %s or newer on this host (every host that runs zdm on this database)",
                       l->written_by[0] ? l->written_by : "of the same release as the other hosts");
        return ZDM_EXIT_STATE;
    }
    zdm_err_set(err, ZDM_EXIT_STATE,
                "zdm's state in %s is at layout %d (written by zdm %s); this zdm %s needs layout %d; "
                "nothing was done", url, l->version, l->written_by[0] ? l->written_by : "0.1.0 or older",
                ZDM_VERSION, ZDM_STATE_VERSION);
    zdm_err_detail(err, "upgrade it once, from one host, with \"zdm init --upgrade\" (older zdm versions "
                        "then refuse the database: upgrade them all)");
    return ZDM_EXIT_STATE;
}

int zdm_state_check(zdm_db *db, zdm_err *err)
{
    zdm_state_layout l;
    int rc = zdm_state_layout_read(db, &l, err);
    if (rc != 0)
        return rc;
    return refuse_layout(db, &l, err);
}

static int set_meta(zdm_db *db, const char *key, const char *value, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             zdm_state_table(db, "meta"));
    const char *params[] = {key, value};
    return zdm_db_query(db, sql, 2, params, NULL, err);
}

/* Creates (version 0) or upgrades, inside the caller's transaction. */
static int create_or_upgrade(zdm_db *db, int from, zdm_err *err)
{
    const zdm_dialect *d = zdm_db_dialect(db);
    zdm_buf sql = {0};
    if (from == 0) {
        zdm_buf_puts(&sql, d->state_ddl_head);
        state_sql(d, state_ddl, &sql);
        zdm_buf_puts(&sql, d->state_ddl_tail);
    }
    for (int v = from; from > 0 && v < ZDM_STATE_VERSION; v++)
        for (const state_column *c = upgrades[v - 1]; c->table; c++) {
            zdm_buf table = {0}, column = {0};
            state_sql(d, c->table, &table);
            state_sql(d, c->column, &column);
            zdm_buf_printf(&sql, d->state_add_column, table.data, column.data);
            zdm_buf_free(&table);
            zdm_buf_free(&column);
        }
    int rc = sql.len ? zdm_db_exec_script(db, sql.data, err) : 0;
    zdm_buf_free(&sql);
    char v[16];
    snprintf(v, sizeof v, "%d", ZDM_STATE_VERSION);
    if (rc == 0)
        rc = set_meta(db, "schema_version", v, err);
    if (rc == 0)
        rc = set_meta(db, "layout_written_by", ZDM_VERSION, err);
    return rc;
}

static int begin_locked(zdm_db *db, zdm_err *err)
{
    int rc = zdm_db_begin(db, err);
    const char *lock = zdm_db_dialect(db)->state_init_lock;
    if (rc == 0 && lock) {
        /* Two first runs (or upgrades) at once must not both create. */
        rc = zdm_db_query(db, lock, 0, NULL, NULL, err);
        if (rc != 0)
            zdm_db_rollback(db);
    }
    return rc;
}

static int state_init_once(zdm_db *db, zdm_err *err)
{
    zdm_state_layout l;
    int rc = zdm_state_layout_read(db, &l, err);
    if (rc != 0)
        return rc;
    if (l.exists)
        return refuse_layout(db, &l, err);
    rc = begin_locked(db, err);
    if (rc != 0)
        return rc;
    /* Another run may have created them while we waited for the lock. */
    rc = zdm_state_layout_read(db, &l, err);
    if (rc == 0 && l.exists) {
        zdm_db_rollback(db);
        return refuse_layout(db, &l, err);
    }
    if (rc == 0)
        rc = create_or_upgrade(db, 0, err);
    if (rc != 0) {
        zdm_db_rollback(db);
        zdm_err_prefix(err, "creating zdm's state tables: ");
        return rc;
    }
    return zdm_db_commit(db, err);
}

int zdm_state_init(zdm_db *db, zdm_err *err)
{
    /* SQLite gives the commit's lock up quickly (db_sqlite.c) rather than
     * hold readers off; the whole transaction is retried instead, for up
     * to 5 s as the busy wait used to allow. */
    int64_t t0 = zdm_mono_ms();
    for (int attempt = 1;; attempt++) {
        int rc = state_init_once(db, err);
        if (rc == 0 || !zdm_db_err_is_lock_timeout(err) || zdm_mono_ms() - t0 > 5000)
            return rc;
        zdm_err_clear(err);
        struct timespec ts = {0, (attempt < 5 ? 20L << attempt : 500L) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int zdm_state_upgrade(zdm_db *db, int *from, zdm_err *err)
{
    *from = ZDM_STATE_VERSION;
    int rc = begin_locked(db, err);
    if (rc != 0)
        return rc;
    zdm_state_layout l;
    rc = zdm_state_layout_read(db, &l, err);
    if (rc == 0 && l.exists && (l.version < 0 || l.version > ZDM_STATE_VERSION))
        rc = refuse_layout(db, &l, err);
    if (rc != 0 || (l.exists && l.version == ZDM_STATE_VERSION)) {
        zdm_db_rollback(db);
        return rc;
    }
    *from = l.exists ? l.version : 0;
    rc = create_or_upgrade(db, *from, err);
    if (rc == 0 && *from > 0) {
        char detail[200];
        snprintf(detail, sizeof detail, "state layout %d (written by zdm %s) -> %d by zdm %s", *from,
                 l.written_by[0] ? l.written_by : "0.1.0 or older", ZDM_STATE_VERSION, ZDM_VERSION);
        zdm_history_entry h = {"(state)", "upgrade", NULL, NULL, "ok", detail};
        rc = zdm_state_history_add(db, &h, NULL, err);
    }
    if (rc != 0) {
        zdm_db_rollback(db);
        zdm_err_prefix(err, "upgrading zdm's state tables: ");
        return rc;
    }
    return zdm_db_commit(db, err);
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
             "SELECT phase, checksum, phase_since_ms, cutover_at_ms, contract_after_ms, "
             "attempts, last_error, last_attempt_ms, failed_ms "
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
        out->attempts = (int)to_i64(zdm_rows_get(r, 0, 5));
        snprintf(out->last_error, sizeof out->last_error, "%s", zdm_rows_get(r, 0, 6) ? zdm_rows_get(r, 0, 6) : "");
        out->last_attempt_ms = to_i64(zdm_rows_get(r, 0, 7));
        out->failed_ms = to_i64(zdm_rows_get(r, 0, 8));
        if (ph < 0) {
            /* Never read a garbled row as pending: that invites a re-run. */
            rc = zdm_err_set(err, ZDM_EXIT_STATE, "zdm's state is damaged: plan %s has phase \"%s\" in %s, "
                             "which no zdm writes; nothing was done", plan_id, zdm_rows_get(r, 0, 0),
                             zdm_state_table(db, "plans"));
            zdm_err_detail(err, "find the phase in \"zdm history %s\" and record it with \"zdm stamp %s PHASE\"",
                           plan_id, plan_id);
        }
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_set_phase(zdm_db *db, const char *plan_id, zdm_phase phase, const char *checksum,
                        zdm_err *err)
{
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    /* A step back (rollback, or a stamp to an earlier phase) ends the
     * cutover a schedule and a run of contract failures belonged to: the
     * next cutover starts with neither, so an old time cannot contract
     * the plan by surprise.  rolled_back ranks below pending. */
#define RANK(x) "CASE " x " WHEN 'rolled_back' THEN -1 WHEN 'pending' THEN 0 WHEN 'expanded' THEN 1 " \
                "WHEN 'backfilled' THEN 2 WHEN 'cut_over' THEN 3 WHEN 'complete' THEN 4 ELSE 5 END"
#define BACK "(" RANK("excluded.phase") " < " RANK("%s.phase") ")"
    const char *t = zdm_state_table(db, "plans");
    const char *bare = zdm_db_kind_of(db) == ZDM_DB_PG ? "plans" : t;
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (id, phase, checksum, phase_since_ms, created_ms) "
             "VALUES ($1, $2, $3, $4, $4) "
             "ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, "
             "checksum = excluded.checksum, phase_since_ms = excluded.phase_since_ms, "
             "contract_after_ms = CASE WHEN " BACK " THEN NULL ELSE %s.contract_after_ms END, "
             "attempts = CASE WHEN " BACK " THEN 0 ELSE %s.attempts END, "
             "failed_ms = CASE WHEN " BACK " THEN NULL ELSE %s.failed_ms END",
             t, bare, bare, bare, bare, bare, bare);
#undef BACK
#undef RANK
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

int zdm_state_plans_applied(zdm_db *db, zdm_strv *ids, zdm_strv *phases, zdm_err *err)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT p.id, p.phase FROM %s p WHERE p.phase IN ('expanded', 'backfilled', 'cut_over') "
             "OR (p.phase = 'pending' AND EXISTS (SELECT 1 FROM %s s WHERE s.plan_id = p.id "
             "AND s.status IN ('done', 'running'))) ORDER BY p.id",
             zdm_state_table(db, "plans"), zdm_state_table(db, "steps"));
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 0, NULL, &r, err);
    for (int i = 0; rc == 0 && i < zdm_rows_count(r); i++) {
        zdm_strv_push(ids, zdm_rows_get(r, i, 0));
        zdm_strv_push(phases, zdm_rows_get(r, i, 1));
    }
    zdm_rows_free(r);
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

static const char fold_mark[] = " [repeated ";

/* A refusal that repeats the plan's newest one is folded into that row:
 * "[repeated N times, last at T by WHO pid P]" at the end of its detail,
 * so three hosts' run-due colliding on a lock every 5 minutes leave one
 * row, not one per collision.  Repeats means the same action and phases
 * and the same reason code (err.h): "locked by alice pid 4242" and
 * "locked by bob pid 77" are one kind; a refusal without a code (none
 * named) repeats only the same text.  The newest row is taken without the
 * lock holder's rows, which are written between two refusals of the same
 * collision: its own row while it runs, and its hooks' rows.  1 when
 * folded. */
static int fold_refusal(zdm_db *db, const zdm_history_entry *h, const char *reason, int as_pid, int64_t *id,
                        zdm_err *err)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT id, action, from_phase, to_phase, outcome, detail, reason FROM %s WHERE plan_id = $1 "
             "AND outcome <> 'running' AND substr(action, 1, 5) <> 'hook ' ORDER BY id DESC LIMIT 1",
             zdm_state_table(db, "history"));
    const char *params[] = {h->plan_id};
    zdm_rows *r = NULL;
    if (zdm_db_query(db, sql, 1, params, &r, err) != 0 || zdm_rows_count(r) != 1) {
        zdm_rows_free(r);
        zdm_err_clear(err);
        return 0;
    }
#define SAME(a, b) ((!(a) && !(b)) || ((a) && (b) && strcmp((a), (b)) == 0))
    const char *d = zdm_rows_get(r, 0, 5), *was = zdm_rows_get(r, 0, 6);
    int same = SAME(zdm_rows_get(r, 0, 1), h->action) && SAME(zdm_rows_get(r, 0, 2), h->from_phase) &&
               SAME(zdm_rows_get(r, 0, 3), h->to_phase) && SAME(zdm_rows_get(r, 0, 4), "refused") && d;
#undef SAME
    /* The folded text ends at the last mark; the first refusal's stays. */
    size_t base = d ? strlen(d) : 0;
    for (const char *m = d; m && (m = strstr(m, fold_mark)) != NULL; m++)
        base = (size_t)(m - d);
    /* A repeat is the same reason with the same text.  Only a lock
     * collision folds whatever its text: the text names the holder and its
     * start, which differ from one collision to the next while the refusal
     * is the same.  Any other text that changed says something new (a
     * required plan moved from pending to expanded) and gets its own row. */
    int same_text = d && h->detail && base == strlen(h->detail) && strncmp(d, h->detail, base) == 0;
    if (same && reason)
        same = was && strcmp(was, reason) == 0 && (same_text || strcmp(reason, "lock_held") == 0);
    else if (same)
        same = (!was || !*was) && same_text;
    if (!same) {
        zdm_rows_free(r);
        return 0;
    }
    long times = d[base] ? strtol(d + base + sizeof fold_mark - 1, NULL, 10) : 1;
    char ts[40], ids[32];
    snprintf(ids, sizeof ids, "%s", zdm_rows_get(r, 0, 0));
    char *detail = zdm_xasprintf("%.*s%s%ld times, last at %s by %s pid %d]", (int)base, d, fold_mark,
                                 (times > 0 ? times : 1) + 1, zdm_format_time(zdm_now_ms(), ts, sizeof ts),
                                 zdm_whoami(), as_pid);
    zdm_rows_free(r);
    snprintf(sql, sizeof sql, "UPDATE %s SET detail = $2 WHERE id = CAST(CAST($1 AS text) AS bigint)",
             zdm_state_table(db, "history"));
    const char *p2[] = {ids, detail};
    int rc = zdm_db_query(db, sql, 2, p2, NULL, err);
    free(detail);
    if (rc != 0) {
        zdm_err_clear(err);
        return 0;
    }
    if (id)
        *id = to_i64(ids);
    return 1;
}

static int history_insert(zdm_db *db, const zdm_history_entry *h, const char *reason, int as_pid, int64_t *id,
                          zdm_err *err)
{
    char sql[400], now[32], pid[16];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (plan_id, at_ms, who, pid, action, from_phase, to_phase, outcome, detail, reason) "
             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
             zdm_state_table(db, "history"));
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    snprintf(pid, sizeof pid, "%d", as_pid);
    /* A detail may quote anything (a hook's output): the one scrub first. */
    char *detail = h->detail ? zdm_err_scrub_dup(h->detail) : NULL;
    const char *params[] = {h->plan_id, now, zdm_whoami(), pid, h->action, h->from_phase,
                            h->to_phase, h->outcome, detail, reason};
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, 10, params, &v, err);
    free(detail);
    if (rc == 0 && id)
        *id = to_i64(v);
    free(v);
    return rc;
}

/* A refusal: folded into its repeat, or a new row.  In a transaction of
 * its own (unless the caller's), so two hosts refused at once cannot both
 * miss the other's row and write two: SQLite's BEGIN IMMEDIATE and, on
 * PostgreSQL, a per-plan advisory lock serialize the look and the write. */
static int refusal_add(zdm_db *db, const zdm_history_entry *h, const char *reason, int as_pid, int64_t *id,
                       zdm_err *err)
{
    int own = !zdm_db_in_transaction(db);
    int rc = own ? zdm_db_begin(db, err) : 0;
    if (rc == 0 && own && zdm_db_kind_of(db) == ZDM_DB_PG) {
        const char *params[] = {h->plan_id};
        rc = zdm_db_query(db, "SELECT pg_advisory_xact_lock(4243, hashtext($1))", 1, params, NULL, err);
    }
    if (rc == 0 && !fold_refusal(db, h, reason, as_pid, id, err))
        rc = history_insert(db, h, reason, as_pid, id, err);
    if (own && rc == 0)
        rc = zdm_db_commit(db, err);
    else if (own && zdm_db_in_transaction(db))
        zdm_db_rollback(db);
    return rc;
}

static int history_add_as(zdm_db *db, const zdm_history_entry *h, const char *reason, int as_pid, int64_t *id,
                          zdm_err *err)
{
    if (reason && !*reason)
        reason = NULL;
    if (h->outcome && strcmp(h->outcome, "refused") == 0 && h->detail)
        return refusal_add(db, h, reason, as_pid, id, err);
    return history_insert(db, h, reason, as_pid, id, err);
}

int zdm_state_history_add(zdm_db *db, const zdm_history_entry *h, int64_t *id, zdm_err *err)
{
    return history_add_as(db, h, NULL, (int)getpid(), id, err);
}

/* SQLite: a refusal while the plan's holder has the database's write lock
 * (a step in its transaction) must neither wait (the busy timeout, 5 s)
 * nor go unrecorded: try once without waiting, else hand the row to a
 * detached process that writes it, as this pid, once the lock is free. */
int zdm_state_history_add_now_or_later(zdm_db *db, const zdm_history_entry *h, const char *reason,
                                       int64_t *id, zdm_err *err)
{
    if (id)
        *id = 0;
    if (zdm_db_kind_of(db) != ZDM_DB_SQLITE || !db->path)
        return history_add_as(db, h, reason, (int)getpid(), id, err);
    zdm_err e;
    zdm_err_clear(&e);
    int rc = zdm_db_set_timeouts(db, 1, 0, &e);
    if (rc == 0)
        rc = history_add_as(db, h, reason, (int)getpid(), id, &e);
    zdm_err e2;
    zdm_err_clear(&e2);
    if (zdm_db_set_timeouts(db, 5000 /* the connection's default (db.h) */, 0, &e2) != 0 && rc == 0)
        rc = e2.code, e = e2;
    if (rc == 0 || !zdm_db_err_is_lock_timeout(&e)) {
        if (rc != 0)
            *err = e;
        return rc;
    }
    int me = (int)getpid();
    char *url = zdm_xasprintf("sqlite:%s", db->path);
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        free(url);
        return zdm_err_set(err, ZDM_EXIT_FAIL, "could not record the refusal: fork: %s", strerror(errno));
    }
    if (child == 0) {
        /* The middle process exits at once; the grandchild, reparented and
         * in a session of its own, holds no terminal and none of our
         * output, so nobody waits for it. */
        setsid();
        if (fork() != 0)
            _exit(0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        zdm_db *mine = NULL;
        zdm_err ce;
        zdm_err_clear(&ce);
        int crc = zdm_db_open(url, &mine, &ce);
        if (crc == 0)
            crc = zdm_db_set_timeouts(mine, ZDM_REFUSAL_WAIT_MS, 0, &ce);
        if (crc == 0)
            crc = history_add_as(mine, h, reason, me, NULL, &ce);
        _exit(crc == 0 ? 0 : 1);
    }
    free(url);
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

int zdm_state_history_update(zdm_db *db, int64_t id, const char *outcome, const char *detail,
                             zdm_err *err)
{
    char sql[200], ids[32];
    snprintf(sql, sizeof sql, "UPDATE %s SET outcome = $2, detail = $3 WHERE id = $1",
             zdm_state_table(db, "history"));
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    char *clean = detail ? zdm_err_scrub_dup(detail) : NULL;
    const char *params[] = {ids, outcome, clean};
    int rc = zdm_db_query(db, sql, 3, params, NULL, err);
    free(clean);
    return rc;
}

static const char *host_part(void)
{
    const char *at = strchr(zdm_whoami(), '@');
    return at ? at + 1 : zdm_whoami();
}

/* "user@host pid N since T", then what the lock is held for when the
 * holder row says (zdm_state_lock_for: "user@host, for the expand of plan
 * X ..."): the pid next to the user, not after the reason. */
static void format_holder(char *out, size_t size, const char *who, const char *pid, const char *ts)
{
    const char *why = strstr(who, ", ");
    int user = why ? (int)(why - who) : (int)strlen(who);
    snprintf(out, size, "%.*s pid %s since %s%s", user, who, pid, ts, why ? why : "");
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
        char pids[16];
        snprintf(pids, sizeof pids, "%d", *pid);
        format_holder(holder, size, zdm_rows_get(r, 0, 0), pids, ts);
    } else {
        snprintf(holder, size, "another zdm session (holder row not yet written)");
    }
    zdm_rows_free(r);
    return 0;
}

int zdm_state_contract_attempt(zdm_db *db, const char *plan_id, int ok, const char *error, int max_attempts,
                               int *attempts, int *failed_now, zdm_err *err)
{
    char sql[600], now[32], max[16];
    snprintf(now, sizeof now, "%lld", (long long)zdm_now_ms());
    snprintf(max, sizeof max, "%d", max_attempts);
    *attempts = 0;
    *failed_now = 0;
    if (ok) {
        snprintf(sql, sizeof sql,
                 "UPDATE %s SET attempts = 0, last_error = NULL, failed_ms = NULL, last_attempt_ms = "
                 "CAST(CAST($2 AS text) AS bigint) WHERE id = $1", zdm_state_table(db, "plans"));
        const char *params[] = {plan_id, now};
        return zdm_db_query(db, sql, 2, params, NULL, err);
    }
    /* One statement: two hosts failing at once both count. */
    snprintf(sql, sizeof sql,
             "UPDATE %s SET attempts = attempts + 1, last_error = $2, "
             "last_attempt_ms = CAST(CAST($3 AS text) AS bigint), "
             "failed_ms = CASE WHEN failed_ms IS NULL AND attempts + 1 >= CAST(CAST($4 AS text) AS integer) "
             "THEN CAST(CAST($3 AS text) AS bigint) ELSE failed_ms END "
             "WHERE id = $1 RETURNING attempts, failed_ms", zdm_state_table(db, "plans"));
    const char *params[] = {plan_id, error, now, max};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 4, params, &r, err);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        *attempts = (int)to_i64(zdm_rows_get(r, 0, 0));
        *failed_now = to_i64(zdm_rows_get(r, 0, 1)) == to_i64(now);
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_contract_retry(zdm_db *db, const char *plan_id, int *was_failed, zdm_err *err)
{
    char q[200];
    snprintf(q, sizeof q, "SELECT failed_ms FROM %s WHERE id = $1", zdm_state_table(db, "plans"));
    const char *params[] = {plan_id};
    char *v = NULL;
    int rc = zdm_db_query_value(db, q, 1, params, &v, err);
    *was_failed = v != NULL && to_i64(v) != 0;
    free(v);
    if (rc != 0)
        return rc;
    snprintf(q, sizeof q, "UPDATE %s SET attempts = 0, failed_ms = NULL WHERE id = $1", zdm_state_table(db, "plans"));
    return zdm_db_query(db, q, 1, params, NULL, err);
}

int zdm_state_lock_holder(zdm_db *db, const char *plan_id, char *holder, size_t size, zdm_err *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT holder, pid, since_ms FROM %s WHERE plan_id = $1",
             zdm_state_table(db, "locks"));
    const char *params[] = {plan_id};
    zdm_rows *r = NULL;
    holder[0] = '\0';
    int rc = zdm_db_query(db, sql, 1, params, &r, err);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        char ts[40];
        format_holder(holder, size, zdm_rows_get(r, 0, 0), zdm_rows_get(r, 0, 1),
                      zdm_format_time(to_i64(zdm_rows_get(r, 0, 2)), ts, sizeof ts));
    }
    zdm_rows_free(r);
    return rc;
}

static int write_holder(zdm_db *db, const char *plan_id, const char *who, int upsert, int *inserted, zdm_err *err)
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
    const char *params[] = {plan_id, who, host_part(), pid, now};
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
    return zdm_state_lock_for(db, plan_id, NULL, got, holder, holder_size, err);
}

int zdm_state_lock_for(zdm_db *db, const char *plan_id, const char *why, int *got, char *holder,
                       size_t holder_size, zdm_err *err)
{
    char who[400];
    snprintf(who, sizeof who, "%s%s%s", zdm_whoami(), why ? ", " : "", why ? why : "");
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
        rc = write_holder(db, plan_id, who, 1, &inserted, err);
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
        rc = write_holder(db, plan_id, who, 0, &inserted, err);
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

int zdm_state_lock_remove(zdm_db *db, const char *plan_id, int *removed, char *holder, size_t hsize, char *pid,
                          size_t psize, zdm_err *err)
{
    *removed = 0;
    if (hsize)
        holder[0] = '\0';
    if (psize)
        pid[0] = '\0';
    char sql[160];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE plan_id = $1 RETURNING holder, pid",
             zdm_state_table(db, "locks"));
    const char *params[] = {plan_id};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 1, params, &r, err);
    if (rc == 0 && zdm_rows_count(r)) {
        *removed = 1;
        snprintf(holder, hsize, "%s", zdm_rows_get(r, 0, 0) ? zdm_rows_get(r, 0, 0) : "(null)");
        snprintf(pid, psize, "%s", zdm_rows_get(r, 0, 1) ? zdm_rows_get(r, 0, 1) : "(null)");
    }
    zdm_rows_free(r);
    return rc;
}

int zdm_state_lock_holder_gone(zdm_db *db, const char *plan_id)
{
    char holder[512], host[256];
    int pid = 0;
    zdm_err e;
    zdm_err_clear(&e);
    if (describe_holder(db, plan_id, holder, sizeof holder, host, sizeof host, &pid, &e) != 0)
        return 0;
    return pid > 0 && pid != (int)getpid() && strcmp(host, host_part()) == 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

int zdm_state_lock_live(zdm_db *db, const char *plan_id, char *live, size_t lsize, zdm_err *err)
{
    live[0] = '\0';
    const char *params[] = {plan_id};
    zdm_rows *r = NULL;
    int rc;
    if (zdm_db_kind_of(db) == ZDM_DB_PG) {
        rc = zdm_db_query(db,
                          /* not its query: a step's SQL may hold a literal a
                           * message (and history) must not carry */
                          "SELECT a.pid, a.state, CAST(extract(epoch FROM now() - a.state_change) AS bigint) "
                          "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                          "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(4242 AS oid) "
                          "AND l.objid = CAST(CAST(hashtext($1) AS bigint) & 4294967295 AS oid) "
                          "AND l.objsubid = 2 AND l.pid <> pg_backend_pid()",
                          1, params, &r, err);
        if (rc == 0 && zdm_rows_count(r) > 0)
            snprintf(live, lsize, "server session %s (%s for %s s; pg_stat_activity shows what it runs)",
                     zdm_rows_get(r, 0, 0), zdm_rows_get(r, 0, 1) ? zdm_rows_get(r, 0, 1) : "?",
                     zdm_rows_get(r, 0, 2) ? zdm_rows_get(r, 0, 2) : "?");
        zdm_rows_free(r);
        return rc;
    }
    char holder[512], host[256];
    int pid = 0;
    rc = describe_holder(db, plan_id, holder, sizeof holder, host, sizeof host, &pid, err);
    if (rc == 0 && pid > 0 && pid != (int)getpid() && strcmp(host, host_part()) == 0 &&
        (kill(pid, 0) == 0 || errno == EPERM))
        snprintf(live, lsize, "%s, whose process %d runs on this host", holder, pid);
    return rc;
}

int zdm_state_lock_held(zdm_db *db, const char *plan_id, int *held, zdm_err *err)
{
    *held = 0;
    char sql[400], pid[16];
    const char *params[] = {plan_id, pid, host_part()};
    int n = 1;
    if (zdm_db_kind_of(db) == ZDM_DB_PG) {
        /* A two-key advisory lock shows as classid = key1, objid = key2
         * (as an unsigned oid), objsubid = 2. */
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                 "AND pid = pg_backend_pid() AND classid = CAST(4242 AS oid) "
                 "AND objid = CAST(CAST(hashtext($1) AS bigint) & 4294967295 AS oid) AND objsubid = 2");
    } else {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE plan_id = $1 AND pid = $2 AND host = $3",
                 zdm_state_table(db, "locks"));
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        n = 3;
    }
    char *v = NULL;
    int rc = zdm_db_query_value(db, sql, n, params, &v, err);
    *held = rc == 0 && v && atoi(v) > 0;
    free(v);
    return rc;
}

int zdm_state_history_last(zdm_db *db, const char *plan_id, const char *action, char outcome[16],
                           char **detail, zdm_err *err)
{
    outcome[0] = '\0';
    *detail = NULL;
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT outcome, detail FROM %s WHERE plan_id = $1 AND action = $2 ORDER BY id DESC LIMIT 1",
             zdm_state_table(db, "history"));
    const char *params[] = {plan_id, action};
    zdm_rows *r = NULL;
    int rc = zdm_db_query(db, sql, 2, params, &r, err);
    if (rc == 0 && zdm_rows_count(r) == 1) {
        snprintf(outcome, 16, "%s", zdm_rows_get(r, 0, 0));
        if (zdm_rows_get(r, 0, 1))
            *detail = zdm_xstrdup(zdm_rows_get(r, 0, 1));
    }
    zdm_rows_free(r);
    return rc;
}
