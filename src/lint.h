/*
 * lint.h -- zdm lint: finds SQL in plans and plain SQL files that would
 * block the running application (long locks, table rewrites) or break it
 * (destructive changes in expand), per dialect.
 *
 * Owns: parsing PostgreSQL SQL with libpg_query (the real PostgreSQL
 * grammar) and checking SQLite SQL over sqlscan's tokens; the rules and
 * which dialects each applies to (the table in lint.c, documented in the
 * README); the schema model that follows plans in requires order; inline
 * exceptions (-- zdm:allow RULE reason), the allow list (allow_unsafe in
 * the plan, --allow on the command line); the --db adjustments (sizes,
 * volatility, existing checks, long transactions); and the gate zdm
 * advance passes before expand and contract.
 *
 * Rule ids are a contract with plans' allow_unsafe and zdm:allow comments:
 * add freely, never rename.  zdm_lint_rules() lists them.
 *
 * Tables created earlier in the same plan and phase are empty and unknown
 * to the running application: the lock rules do not apply to them.
 */
#ifndef ZDM_LINT_H
#define ZDM_LINT_H

#include <stddef.h>

#include "err.h"
#include "plan_model.h"
#include "util.h"

typedef enum zdm_lint_severity {
    ZDM_LINT_INFO,
    ZDM_LINT_WARNING,
    ZDM_LINT_ERROR
} zdm_lint_severity;

const char *zdm_lint_severity_name(zdm_lint_severity s); /* "info", "warning", "error" */

/* Dialects a rule applies to (a mask). */
#define ZDM_LINT_DIALECT_PG 1
#define ZDM_LINT_DIALECT_SQLITE 2

typedef struct zdm_lint_rule {
    const char *id;
    zdm_lint_severity severity;
    const char *summary; /* one line, for help and docs */
    unsigned dialects;   /* ZDM_LINT_DIALECT_* mask */
} zdm_lint_rule;

/* Every rule, in a stable order; *n receives the count. */
const zdm_lint_rule *zdm_lint_rules(size_t *n);
const zdm_lint_rule *zdm_lint_rule_find(const char *id);

typedef struct zdm_lint_finding {
    const char *rule;        /* a rule id (static) */
    zdm_lint_severity severity;
    char *message;           /* owned: what is wrong and why */
    const char *hint;        /* static: the safe alternative */
    const char *plan;        /* borrowed from the plan; NULL from zdm_lint_sql() */
    const char *file;        /* borrowed from the plan; NULL from zdm_lint_sql() */
    int line;                /* zdm_lint_sql(): 1-based line in the SQL; plans: line in the file */
    int step;                /* 1-based step index, 0 when not about one step */
    zdm_phase_kind phase;
    int allowed;             /* allowed by allow_unsafe or --allow */
    const char *allowed_by;  /* the allow_unsafe or zdm:allow reason, "allow_unsafe" or "--allow" */
    int col;                 /* 1-based column of the statement in the SQL (0: unknown) */
    int dialect;             /* ZDM_LINT_DIALECT_PG or _SQLITE: which SQL and rules */
    size_t offset;           /* byte offset of the statement in the SQL linted */
    char *reason;            /* owned copy of a zdm:allow reason (allowed_by points here) */
    char *table;             /* owned: the table the statement is about, or NULL */
    char *object;            /* owned: the function (volatile default) or column (SET NOT NULL) */
} zdm_lint_finding;

/* A table some statement takes a lock on for DDL (for --db: who holds it). */
typedef struct zdm_lint_ddl {
    char *table;             /* owned */
    const char *plan, *file; /* as in findings */
    int line, col, step;
    zdm_phase_kind phase;
    int dialect;
} zdm_lint_ddl;

typedef struct zdm_lint_result {
    zdm_lint_finding *v;
    size_t n, cap;
    zdm_lint_ddl *ddl;
    size_t nddl, capddl;
} zdm_lint_result;

void zdm_lint_result_free(zdm_lint_result *r);
/* Findings of `sev`, of one phase (or -1: both), not allowed. */
size_t zdm_lint_count(const zdm_lint_result *r, zdm_lint_severity sev, int phase);

/* What the linter knows while it reads statements in order: tables and
 * column types seen so far, tables created by the plan being linted, and
 * CHECK (col IS NOT NULL) constraints validated by it. */
typedef struct zdm_lint_ctx zdm_lint_ctx;
zdm_lint_ctx *zdm_lint_ctx_new(void);
void zdm_lint_ctx_free(zdm_lint_ctx *c);
/* Starts a new plan: "created in this plan" and validated checks reset,
 * column types are kept. */
void zdm_lint_ctx_next_plan(zdm_lint_ctx *c);

/* Lints one step's SQL (any number of statements) as run in `phase`;
 * `in_transaction`: whether the step runs in a transaction.  Appends
 * findings (line = line within sql) to out and updates ctx.  Returns 0, or
 * -1 when the SQL does not parse (a parse-error finding is appended). */
int zdm_lint_sql(zdm_lint_ctx *ctx, const char *sql, zdm_phase_kind phase, int in_transaction,
                 zdm_lint_result *out);

/* The same for one dialect (ZDM_LINT_DIALECT_PG or _SQLITE): SQLite's SQL
 * is tokenized, not parsed, and checked with the SQLite rules. */
int zdm_lint_sql_dialect(zdm_lint_ctx *ctx, const char *sql, int dialect, zdm_phase_kind phase,
                         int in_transaction, zdm_lint_result *out);

/* Lints a plain SQL file (not a zdm step: run as it is, its own BEGIN and
 * COMMIT included), as if in expand with the application running. */
int zdm_lint_sql_file(zdm_lint_ctx *ctx, const char *sql, int dialect, zdm_lint_result *out);

/* Lints every raw step of a plan, expand then contract: the PostgreSQL
 * SQL of each (sql.pg, else sql; SQLite-only steps get an info note), and
 * each step's down for parse errors.  `set` (may be NULL) supplies the
 * plans before this one, whose column types the rules use.  `src` is the
 * file's text for line numbers (NULL: read plan->path).  Findings carry
 * file lines and are marked allowed by the plan's allow_unsafe. */
void zdm_lint_plan(const zdm_plan *plan, const zdm_plan_set *set, const char *src,
                   zdm_lint_result *out);

/* The same for one target dialect: mode ZDM_LINT_DIALECT_PG or _SQLITE
 * lints the SQL that dialect runs (sql.<dialect>, else sql) with its
 * rules; mode 0 (zdm_lint_plan) lints sql.pg/sql with the PostgreSQL
 * rules and sql.sqlite with the SQLite rules. */
void zdm_lint_plan_dialect(const zdm_plan *plan, const zdm_plan_set *set, const char *src, int mode,
                           zdm_lint_result *out);

/* missing-not-before: a plan without an explicit soak time, which
 * run-due never contracts.  plan->not_before_ms must already carry
 * zdm.toml's default (zdm_project_apply_defaults); `mode` as above (the
 * finding's dialect only).  zdm lint only: advance does not log it, status
 * and run-due say "waiting for a schedule" instead. */
void zdm_lint_plan_soak(const zdm_plan *plan, int mode, zdm_lint_result *out);

/* --db: what the database holds changes the findings.  Table sizes set
 * the severity of the rules about locks and rewrites (an empty table:
 * info; a small one: warning); pg_proc's volatility clears a default zdm
 * did not know; a validated CHECK (col IS NOT NULL) or a column already
 * NOT NULL clears set-not-null; and a transaction open longer than
 * `lock_timeout_ms` holding a lock on a table the SQL changes is reported
 * (long-transaction), since the DDL would queue behind it right now.
 * Read-only queries.  Returns 0, or the error of a failed query. */
struct zdm_db;
int zdm_lint_with_db(zdm_lint_result *r, struct zdm_db *db, int64_t lock_timeout_ms,
                     zdm_err *err) ZDM_MUST_CHECK;

/* zdm lint --db URL: zdm_lint_with_db on the database at `url`, opened
 * for this and closed (read-only; a SQLite file must exist: lint never
 * creates one).  Returns 0, ZDM_EXIT_USAGE, or the error of the open or a
 * query. */
int zdm_lint_with_url(zdm_lint_result *r, const char *url, int64_t lock_timeout_ms,
                      zdm_err *err) ZDM_MUST_CHECK;

/* The lint dialect (ZDM_LINT_DIALECT_PG or _SQLITE) of a --db URL, from
 * its form alone (nothing is opened); 0 when it names neither. */
int zdm_lint_dialect_of_url(const char *url);

/* A plain SQL file's statements within zdm's bounds (size, nesting) for
 * the lint dialect `mode` (0: PostgreSQL)?  0, or -1 with where (line,
 * col) and why. */
int zdm_lint_sql_limits(const char *sql, int mode, int *line, int *col, zdm_buf *why);

/* Marks findings allowed by a comma-separated list of rule ids (--allow).
 * Returns 0, or ZDM_EXIT_USAGE for an unknown rule id. */
int zdm_lint_allow_list(zdm_lint_result *r, const char *list, zdm_err *err) ZDM_MUST_CHECK;

/* "file:line:col: error[rule]: message -- hint" (+ " (allowed: why)"). */
void zdm_lint_format(const zdm_lint_finding *f, zdm_buf *out);

/* The gate of zdm advance: lints the plan and refuses (ZDM_EXIT_REFUSED)
 * when an error not allowed remains.  Before expand every error of the
 * plan counts (the file cannot change once expand ran); before contract
 * only the contract's.  Findings are logged.  `dialect`: the target's
 * (ZDM_LINT_DIALECT_PG or _SQLITE): its SQL, with its rules. */
int zdm_lint_gate(const zdm_plan *plan, const zdm_plan_set *set, zdm_phase_kind phase,
                  const char *allow, int dialect, zdm_err *err) ZDM_MUST_CHECK;

#endif
