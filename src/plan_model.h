/*
 * plan_model.h -- the plan model: the one data structure every phase
 * reads (a plan: expand steps, backfill, hooks, contract), and the small
 * helpers on it that need no loading.
 *
 * Owns: the types of a loaded plan and plan set, the hook event names,
 * the throttle defaults, validation messages (zdm_diags), and a step's
 * SQL per dialect.  Loading and validating files is plan.h's (plan.c),
 * which expands op steps through ops.h; ops.c and lint.c build on this
 * header alone, so plan.c -> ops.c -> plan_model.c has no way back.
 */
#ifndef ZDM_PLAN_MODEL_H
#define ZDM_PLAN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sqlkind.h"
#include "toml.h"
#include "util.h"

/* Hook events, in lifecycle order.  Names are plan keys: never rename. */
typedef enum zdm_hook_event {
    ZDM_HOOK_BEFORE_EXPAND,
    ZDM_HOOK_AFTER_EXPAND,
    ZDM_HOOK_BEFORE_BACKFILL,
    ZDM_HOOK_AFTER_BACKFILL,
    ZDM_HOOK_CUTOVER,
    ZDM_HOOK_BEFORE_CONTRACT,
    ZDM_HOOK_AFTER_CONTRACT,
    ZDM_HOOK_ON_FAILURE,
    ZDM_HOOK_ON_ROLLBACK,
    ZDM_HOOK__COUNT
} zdm_hook_event;

const char *zdm_hook_event_name(zdm_hook_event e);

typedef enum zdm_phase_kind { ZDM_PHASE_EXPAND, ZDM_PHASE_CONTRACT } zdm_phase_kind;

/* One expand or contract step: raw SQL (sql/down) or a structured op. */
typedef struct zdm_step {
    int index;                 /* 1-based position within its phase */
    char *name;                /* optional `name`, else NULL */
    char *sql;                 /* raw SQL for every dialect; NULL for op steps */
    char *down;                /* undo SQL; NULL when absent */
    /* Per-dialect variants, from sql = { pg = "...", sqlite = "..." }
     * (same for down); [0] PostgreSQL, [1] SQLite.  Read them through
     * zdm_step_sql() / zdm_step_down(). */
    char *sql_for[2];
    char *down_for[2];
    char *unsupported_for[2];  /* why a dialect has no SQL for this step (ops), else NULL */
    char *from_op;             /* generated from this structured operation, else NULL */
    char *op;                  /* operation name; NULL for raw steps */
    const toml_value *fields;  /* the step's whole table (borrowed from the plan's doc) */
    int transaction;           /* -1 auto (detect CONCURRENTLY), 0 no, 1 yes */
    /* ops: sql_for[d] runs outside a transaction when `transaction` is -1
     * (SQLite's check of the existing rows: a scan that needs no write
     * lock, so it must not hold one; zdm_step_in_transaction). */
    int autocommit_for[2];
    int64_t lock_timeout_ms;   /* -1: plan default */
    int64_t statement_timeout_ms; /* -1: plan default */
    int lock_retries;          /* -1: plan default */
    int line, col;             /* where the step's table starts */
} zdm_step;

/* column = SQL expression, from set.* and reverse.* */
typedef struct zdm_assign {
    char *column;
    char *expr;
    int line, col;
} zdm_assign;

typedef struct zdm_throttle {
    int64_t batch_size;             /* starting size (1000) */
    int64_t target_batch_ms;        /* adaptive aim (200); 0 = fixed size */
    int64_t min_batch_size;         /* (10) */
    int64_t max_batch_size;         /* (50000) */
    int64_t max_rows_per_second;    /* 0 = unlimited */
    int64_t sleep_ms;               /* pause between batches (0) */
    int64_t max_replication_lag_ms; /* pg: pause above this replay lag (0 = off) */
    char *pause_query;              /* returns true to pause; NULL = none */
    int pause_query_line;           /* where it is written; 0: not in the file */
    int check_autovacuum;           /* pg built-in signals, 1 = on */
    int check_wal_archive;
    int64_t max_wal_archive_ready;  /* .ready WAL files before pausing (100) */
    int check_replica_lag;
    /* latency pacing (pacer.h) */
    int64_t max_latency_pct;        /* max_latency_factor x 100 (150); 0 = unthrottled */
    int64_t max_lock_ms;            /* longest a batch may hold its locks (100); 0 = none */
    int64_t max_duty_percent;       /* share of time in batches while an application works (20); 100 = all */
    char *probe_query;              /* the latency probe; NULL = a round trip (pg), a write lock (sqlite) */
    /* observability */
    int64_t stall_after_ms;         /* no batch committed for this long: /metrics says stalled (5 min) */
} zdm_throttle;

void zdm_throttle_defaults(zdm_throttle *t);

/* The largest values of the throttle's durations, in the plan file and
 * for zdm set alike (live_keys.c): an hour for a pause or a batch's time,
 * a week for stall_after_ms. */
#define ZDM_THROTTLE_MS_MAX INT64_C(3600000)
#define ZDM_STALL_MS_MAX INT64_C(604800000)

typedef struct zdm_backfill {
    char *table;
    int table_line;             /* where it is written; 0: not in the file */
    zdm_strv key;               /* empty: primary key (sqlite: rowid when none) */
    char *where;                /* rows still to convert; NULL = all */
    int where_line;             /* where it is written; 0: not in the file */
    zdm_assign *set;            /* new column = f(old) */
    size_t nset;
    int dual_write;             /* install triggers (default 1 when set is non-empty) */
    zdm_strv dw_sources;        /* old columns whose writes fire the forward trigger */
    int dw_sources_line;        /* where they are written; 0: not in the file */
    zdm_assign *reverse;        /* old column = g(new) */
    size_t nreverse;
    /* An insert that gives the targets was written by the new application
     * even when the old columns hold a value (their defaults): derive them
     * (reverse) anyway.  Set by the operations whose new application
     * cannot write the old columns (rename_column, change_type). */
    int reverse_on_insert;
    zdm_throttle throttle;
    int line, col;
} zdm_backfill;

typedef struct zdm_hook_cmd {
    zdm_strv argv;              /* argv[0] is the program, run without a shell */
    int line, col;
} zdm_hook_cmd;

typedef struct zdm_hooks {
    zdm_hook_cmd *cmds[ZDM_HOOK__COUNT];
    size_t n[ZDM_HOOK__COUNT];
    int64_t timeout_ms;         /* per hook (300 s) */
    int inherit;                /* run zdm.toml's hooks too (default 1) */
} zdm_hooks;


typedef struct zdm_allow {
    char *rule;
    char *reason;
    int line, col;              /* where the rule id is written */
} zdm_allow;

/* The parsed file behind a plan: private to plan.c. */
typedef struct zdm_plan_tree zdm_plan_tree;

typedef struct zdm_plan {
    char *id;
    char *path;                 /* as given */
    char *dir;                  /* directory holding the file (hooks run here) */
    char *description;
    zdm_strv requires;
    int *requires_line, *requires_col;
    zdm_step *expand;
    size_t nexpand;
    zdm_backfill *backfill;     /* NULL when the plan has none */
    zdm_step *contract;
    size_t ncontract;
    char *not_before;           /* "cutover + 24h", a duration, or a time; NULL */
    int64_t not_before_ms;      /* parsed: delay after cutover (or -1) */
    char *verify;               /* SQL returning true, NULL */
    int verify_line;            /* where it is written; 0: not in the file */
    int contract_line;          /* where [contract] starts; 0: not in the file */
    zdm_hooks hooks;
    int64_t lock_timeout_ms;        /* 2000 */
    int64_t statement_timeout_ms;   /* 0 = none */
    int lock_retries;               /* 10 */
    int backup_keep;                /* sqlite: contract backups kept per plan (3; 0 = all) */
    int64_t backup_timeout_ms;      /* sqlite: the contract backup gives up after (10 min) */
    zdm_allow *allow;
    size_t nallow;
    char checksum[65];          /* SHA-256 of the file bytes */
    int version_schema;         /* ops give the new app a view schema (PostgreSQL) */
    int baseline;               /* baseline = true: describes a schema that exists (zdm baseline); may be empty */
    int expand_keep_partial;    /* on_failure = "stop": a failed expand keeps the steps it applied */
    int id_line, id_col;
    zdm_plan_tree *tree;        /* private to plan.c */
} zdm_plan;

/* Validation messages: every "file:line:col: message" of a load. */
typedef struct zdm_diags {
    zdm_strv msgs;
} zdm_diags;
void zdm_diag_add(zdm_diags *d, const char *file, int line, int col,
                  const char *fmt, ...) ZDM_PRINTF(5, 6);
void zdm_diags_free(zdm_diags *d);

/* A set of plans, sorted so every plan comes after the ones it requires
 * (ties broken by id). */
typedef struct zdm_plan_set {
    zdm_plan **plans;
    size_t n;
} zdm_plan_set;
zdm_plan *zdm_plan_set_find(const zdm_plan_set *s, const char *id);

/* The SQL of a step for a dialect (ZDM_DB_PG = 1, ZDM_DB_SQLITE = 2),
 * or NULL when the step has none for it. */
const char *zdm_step_sql(const zdm_step *s, int dialect);
const char *zdm_step_down(const zdm_step *s, int dialect);

/* Whether `sql` runs in a transaction: the step's transaction key, else
 * a dialect's variant the operation marked autocommit_for (sql is that
 * very string, as zdm_step_sql returns it), else detected from the SQL. */
int zdm_step_in_transaction(const zdm_step *s, const char *sql);

#endif
