/*
 * cli.c -- global options, the command table, help and dispatch.
 *
 * Options may appear anywhere after the program name (before or after the
 * command words), so `zdm --json status` and `zdm status --json` agree.
 * "--" ends option parsing.
 */
#include "cli.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sig.h"
#include "util.h"

/* Option flags a command may accept. */
enum {
    OPT_DRY_RUN = 1 << 0,
    OPT_NO_BACKUP = 1 << 1,
    OPT_HOOKS_ONLY = 1 << 2,
    OPT_FORCE = 1 << 3,
    OPT_SQL = 1 << 4,
    OPT_DIALECT = 1 << 5,
    OPT_AT = 1 << 6,
    OPT_AFTER = 1 << 7,
    OPT_WORKERS = 1 << 8,
    OPT_ALLOW = 1 << 9,
    OPT_LISTEN = 1 << 10,
    OPT_ALL = 1 << 11,
    OPT_TO = 1 << 12,
    OPT_DOT = 1 << 13,
    OPT_OP = 1 << 14,
    OPT_FORMAT = 1 << 15,
    OPT_UPGRADE = 1 << 20,
    OPT_CANCEL = 1 << 21,
    OPT_HISTORY_FILTERS = 1 << 22,
    OPT_RESET = 1 << 24,
    OPT_STATUS_FORMAT = 1 << 25, /* status's --format: its own formats and help line */
};
/* "--format" is parsed once; each command declares which of these it
 * takes, so its help lists its own formats. */
#define OPT_ANY_FORMAT (OPT_FORMAT | OPT_STATUS_FORMAT)

typedef struct cmd {
    const char *group;   /* "plan" for "zdm plan show", NULL for top level */
    const char *name;
    const char *args;    /* usage after the name */
    const char *summary; /* one line for zdm --help */
    const char *help;    /* zdm help COMMAND */
    unsigned opts;
    int min_pos, max_pos;
    zdm_cli_fn fn;
} cmd;

static const cmd commands[] = {
    {"plan", "validate", "[PATH...]", "check plan files and report every error",
     "Loads every plan (files, or directories of *.toml; default: --plans) and\n"
     "checks keys, types, requires and dependency cycles.  Prints every problem\n"
     "as FILE:LINE:COLUMN: message.  Exit 0 when all plans are valid, 2 when not.\n",
     0, 0, ZDM_CLI_MAX_POS, zdm_cmd_plan_validate},
    {"plan", "show", "PLAN", "show a plan's phases and steps",
     "Shows one plan (an id from --plans, or a path to a .toml file): its\n"
     "expand steps, backfill, cutover hooks, contract and hooks.  --json prints\n"
     "the same as a JSON object.  --sql prints the SQL of every phase for one\n"
     "dialect (--dialect pg|sqlite; default: from --db, else pg), including what\n"
     "structured operations (op = ...) turn into.\n",
     OPT_SQL | OPT_DIALECT, 1, 1, zdm_cmd_plan_show},
    {NULL, "init", "", "create zdm's state tables in the database (idempotent)",
     "Creates zdm's own tables (PostgreSQL: schema zdm; SQLite: zdm_* tables).\n"
     "Every other command does this on first use too.  A layout written by an\n"
     "older zdm is refused by every command (exit 5) until \"zdm init --upgrade\"\n"
     "moves it to this zdm's layout, once, from one host; a newer or damaged one\n"
     "is refused too.\n",
     OPT_UPGRADE, 0, 0, zdm_cmd_init},
    {"plan", "graph", "", "the requires graph, each plan's phase, heads marked",
     "Prints every plan in --plans in requires order with its phase (from --db\n"
     "when given, else without phases), the plans it requires, and marks the\n"
     "heads: plans no other plan requires (what a new plan requires; Alembic's\n"
     "heads).  --dot prints a Graphviz digraph instead; --json prints\n"
     "{\"plans\": [{\"id\", \"phase\", \"requires\", \"head\"}], \"heads\": [...]}.\n",
     OPT_DOT, 0, 0, zdm_cmd_plan_graph},
    {NULL, "new", "NAME", "write plans/NNNN_NAME.toml, requiring the current heads",
     "Writes a new plan file in --plans named with the next 4-digit number,\n"
     "with requires set to the current heads and a commented template of every\n"
     "section; with --op OP (repeatable), the skeleton of those operations\n"
     "instead (required fields left empty for you to fill).  Prints the path.\n"
     "Refuses (exit 2) a NAME a plan already has.  (Alembic: revision.)\n",
     OPT_OP, 1, 1, zdm_cmd_new},
    {NULL, "completion", "bash|zsh", "print the shell completion script",
     "Prints a completion script for bash or zsh, generated from this command\n"
     "table (installed by cmake --install and the .deb).  To try it:\n"
     "  source <(zdm completion bash)\n",
     0, 1, 1, zdm_cmd_completion},
    {NULL, "manpage", "", "print the zdm(1) man page (roff)",
     "Prints the zdm(1) man page, generated from this command table (installed\n"
     "by cmake --install and the .deb).  To read it: zdm manpage | man -l -\n",
     0, 0, 0, zdm_cmd_manpage},
    {NULL, "baseline", "[NAME]", "adopt an existing database: write and stamp a baseline plan",
     "Reads the schema of --db (tables, indexes, constraints, views; on\n"
     "PostgreSQL also extensions and enum types; zdm's own objects left out)\n"
     "and writes plans/NNNN_NAME.toml (NAME default: baseline) with baseline =\n"
     "true and one expand step per object that recreates it on an empty\n"
     "database, then stamps it complete in\n"
     "--db.  When the database has an alembic_version table, its revision goes\n"
     "into the plan's description and the history row.  An empty database\n"
     "gives an empty baseline, which is legal.\n",
     0, 0, 1, zdm_cmd_baseline},
    {NULL, "advance", "PLAN", "move a plan one phase forward",
     "pending -> expanded -> backfilled -> cut_over -> complete.\n"
     "Expand and contract run their steps in order, each in its own transaction\n"
     "unless it cannot be (CONCURRENTLY, or transaction = false), with a short\n"
     "lock_timeout retried with backoff.  A run that stopped half-way resumes at\n"
     "the first step not done.  Refused (exit 3) while another run holds the plan,\n"
     "when required plans are not complete, when the file changed since it was\n"
     "applied, or before the contract is due.  Before expand and contract it runs\n"
     "zdm lint and refuses (exit 3) on an error the plan's allow_unsafe or\n"
     "--allow RULE[,RULE] does not allow.\n"
     "--all advances every plan, in requires order, as far as --to PHASE\n"
     "(default complete) or the first gate it meets, and prints one summary:\n"
     "exit 0 when every plan reached PHASE, 3 when some stopped at a gate (each\n"
     "listed with why), 1 on a failure.  (Alembic: upgrade head.)\n",
     OPT_DRY_RUN | OPT_NO_BACKUP | OPT_HOOKS_ONLY | OPT_ALLOW | OPT_ALL | OPT_TO, 0, 1, zdm_cmd_advance},
    {NULL, "rollback", "PLAN", "undo expand (or contract, when it has downs)",
     "Before contract: runs the down of every applied expand step, newest first,\n"
     "and marks the plan rolled_back.  Refuses before changing anything when an\n"
     "applied step has no down.  After contract: undoes contract back to cut_over\n"
     "only when every contract step has a down.  Refused (exit 3) while a plan\n"
     "that requires it is applied, and on a cut_over plan (traffic already moved)\n"
     "unless --force: then on_rollback (the switch back) runs first.\n",
     OPT_DRY_RUN | OPT_FORCE, 1, 1, zdm_cmd_rollback},
    {NULL, "status", "[PLAN]", "where every plan stands and what to run next",
     "Lists every plan in --plans with its phase (pending when the database has\n"
     "not seen it), since when, and the next action.  --json prints\n"
     "{\"plans\": [{\"id\", \"phase\", \"since\", \"next\", ...}]}.  --format prometheus\n"
     "prints the plans' state as Prometheus metrics (for node_exporter's textfile\n"
     "collector): phase, contract due and overdue, waiting for a schedule, failed,\n"
     "contract attempts, lock held, last backfill progress.\n",
     OPT_STATUS_FORMAT, 0, 1, zdm_cmd_status},
    {NULL, "history", "[PLAN]", "every transition, refusal and stamp, newest last",
     "Prints the history rows: when, plan, action, phases, outcome, who (user@host\n"
     "and pid) and detail.  --json prints {\"history\": [...]}.  Filters combine.\n",
     OPT_HISTORY_FILTERS, 0, 1, zdm_cmd_history},
    {NULL, "stamp", "PLAN PHASE", "record a phase without running anything",
     "For databases changed by hand: records PHASE (pending, expanded, backfilled,\n"
     "cut_over, complete, rolled_back) and the plan file's current checksum.\n",
     0, 2, 2, zdm_cmd_stamp},
    {NULL, "check", "", "exit 0 when every plan is complete, 3 otherwise",
     "A CI gate: lists the plans in --plans that are not complete and exits 3\n"
     "when there are any.\n",
     0, 0, 0, zdm_cmd_check},
    {NULL, "unlock", "PLAN", "remove a plan's lock left by a process that is gone",
     "Removes the lock row of PLAN.  Only for a holder that died on another host:\n"
     "zdm takes over locks of dead processes on the same host by itself.  A\n"
     "holder still alive is refused (exit 3): on this host, a process that exists\n"
     "(--force: its pid is now another program's); on PostgreSQL, a server\n"
     "session that holds the plan's lock, named with what it runs.\n",
     OPT_FORCE, 1, 1, zdm_cmd_unlock},
    {NULL, "backfill", "PLAN", "run a backfill worker (any number, on any host)",
     "Converts the rows of an expanded plan in keyset batches; each batch and its\n"
     "checkpoint commit together, so a worker killed at any moment resumes where\n"
     "it stopped.  Several workers share the table by claiming key ranges.  The\n"
     "last worker to finish moves the plan to backfilled.  SIGINT/SIGTERM finish\n"
     "the current batch and exit 4 (safe to resume); a second signal cancels the\n"
     "running statement.\n"
     "--workers N starts N worker processes, each with its own connection; lines\n"
     "name the worker (worker 2/4).  The parent passes SIGINT/SIGTERM on to them\n"
     "and exits 0 when every worker exited 0, else the worst worker's code: 1\n"
     "(a worker failed or was killed by a signal) before 5, 2, 3, then 4.\n",
     OPT_LISTEN | OPT_WORKERS, 1, 1, zdm_cmd_backfill},
    {NULL, "pause", "PLAN", "pause every backfill worker of a plan",
     "Every worker, on every host, stops before its next batch until resumed.\n",
     0, 1, 1, zdm_cmd_pause},
    {NULL, "resume", "PLAN", "resume a paused backfill", "Undoes zdm pause.\n", 0, 1, 1, zdm_cmd_resume},
    {NULL, "set", "PLAN [--reset] KEY=VALUE...", "change a backfill throttle setting live",
     "Keys: batch_size, target_batch_ms, min_batch_size, max_batch_size,\n"
     "max_rows_per_second, sleep_ms, max_replication_lag_ms, max_latency_factor\n"
     "(0 or 1..100, e.g. 1.5), max_lock_ms, max_duty_percent (1..100),\n"
     "stall_after_ms.  Workers read them\n"
     "before every batch.  All the keys of one command change together, or none\n"
     "(exit 2 when they contradict each other or the plan, e.g. min_batch_size\n"
     "above max_batch_size).  --reset drops every override first (alone: back to\n"
     "the plan's settings); a rollback drops them too.  zdm status and plan show\n"
     "--db show the overrides.\n",
     OPT_RESET, 1, ZDM_CLI_MAX_POS, zdm_cmd_set},
    {NULL, "cutover", "PLAN", "switch traffic: run the cutover hooks, record the time",
     "The same as \"zdm advance PLAN\" on a backfilled plan: runs the cutover hooks\n"
     "(the blue-green switch; a failing hook refuses with exit 3 and changes\n"
     "nothing) and records the cutover time, from which not_before counts.\n",
     OPT_DRY_RUN, 1, 1, zdm_cmd_cutover},
    {NULL, "schedule", "PLAN", "set the earliest contract time",
     "Contract is the one phase zdm schedules (\"zdm schedule PLAN contract\" is\n"
     "accepted too).  --at TIME, --after DURATION, or --cancel.  The later of this and the plan's\n"
     "not_before (counted from cutover) wins.  zdm advance refuses contract before\n"
     "then; zdm run-due contracts only plans with a due time.  A time in the past\n"
     "is refused unless --force.  A rollback removes the schedule.\n",
     OPT_AT | OPT_AFTER | OPT_CANCEL | OPT_FORCE, 1, 2, zdm_cmd_schedule},
    {NULL, "retry", "PLAN", "clear a plan's failed contract state so run-due tries again",
     "run-due gives up on a plan's contract after [contract] max_attempts\n"
     "failures (zdm.toml, default 3): the plan is failed and run-due skips it\n"
     "(exit 3) until an operator runs this, or zdm rollback.  Records it in history.\n",
     0, 1, 1, zdm_cmd_retry},
    {NULL, "run-due", "", "contract every plan whose contract is due",
     "For a systemd timer or cron: advances every cut-over plan whose contract is\n"
     "due.  Safe when several hosts run it at once: each plan is contracted once.\n",
     OPT_NO_BACKUP, 0, 0, zdm_cmd_run_due},
    {NULL, "lint", "[PLAN|PATH|FILE.sql|-...]", "find SQL that would lock or break the running application",
     "Lints the SQL of every raw step of the plans (default: every plan in\n"
     "--plans; or the plan ids, plan files and directories named), and plain\n"
     "SQL files (FILE.sql, or - for stdin, e.g. Alembic's upgrade --sql).\n"
     "PostgreSQL SQL is parsed with PostgreSQL's own grammar; SQLite SQL is\n"
     "tokenized and checked with the SQLite rules.  With --dialect, or a\n"
     "database URL (--db or $ZDM_DATABASE_URL), lint reads the SQL that dialect\n"
     "runs (sql.<dialect>, else sql) with its rules; without, sql.pg/sql with\n"
     "the PostgreSQL rules and sql.sqlite with the SQLite rules.  --db on the\n"
     "command line also reads the database (read-only): table sizes set the\n"
     "severity, pg_proc the volatility of functions, existing checks clear\n"
     "SET NOT NULL, and long-transaction names a session holding a lock on a\n"
     "table the SQL changes.  Reports FILE:LINE:COL: error[RULE]: why -- the\n"
     "safe alternative.  Rules (the README's table says what each catches):\n"
     "  parse-error, index-not-concurrent, add-column-volatile-default,\n"
     "  alter-type-rewrite, set-not-null, constraint-not-valid,\n"
     "  destructive-in-expand, heavy-lock, mass-dml-in-expand,\n"
     "  multi-ddl-no-transaction, add-column-not-null-no-default,\n"
     "  drop-index-not-concurrent, drop-database, transaction-control,\n"
     "  concurrent-in-transaction, validate-in-same-transaction,\n"
     "  detach-partition-not-concurrent, domain-constraint, truncate-cascade,\n"
     "  allow-no-reason, sqlite-alter-unsupported, sqlite-table-rebuild,\n"
     "  sqlite-vacuum (errors); missing-down, drop-not-null, not-idempotent,\n"
     "  type-int-primary-key, type-serial, type-varchar-length, type-char,\n"
     "  type-timestamp, sqlite-pragma-in-transaction, missing-lock-timeout,\n"
     "  long-transaction, allow-unknown-rule, missing-not-before (warnings);\n"
     "  sqlite-only (info).\n"
     "Allow a rule in a plan with allow_unsafe = [{rule = \"RULE\", reason =\n"
     "\"...\"}], on the command line with --allow RULE[,RULE], or in the SQL\n"
     "with a comment on or above the statement: -- zdm:allow RULE reason (the\n"
     "reason is required).  Exit 0 when no error remains (warnings are fine), 3\n"
     "when one does, 2 when a plan is invalid or a statement is over the size or\n"
     "depth limit.  --json prints {\"findings\": [...], \"errors\": N}.\n",
     OPT_ALLOW | OPT_DIALECT | OPT_FORMAT, 0, ZDM_CLI_MAX_POS, zdm_cmd_lint},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* Shared by --help and the generated man page and completions. */
static const char global_options_text[] =
    "  --db URL        target database: postgres://..., postgresql://..., a libpq\n"
    "                  conninfo (\"host=... dbname=...\"), or sqlite:PATH;\n"
    "                  default: $ZDM_DATABASE_URL\n"
    "  --plans DIR     directory of plan files (default: ./plans)\n"
    "  --json          JSON on stdout, errors included; commands that change\n"
    "                  state print one JSON object per event (NDJSON)\n"
    "  --log-format F  stderr log lines as text (default), kv (key=value) or\n"
    "                  json; default: $ZDM_LOG_FORMAT\n"
    "  -v, --verbose   more log detail;  -q, --quiet: warnings and errors only\n"
    "  -h, --help      this help;  --version: print the version\n";
static const char exit_codes_text[] =
    "  0  success\n"
    "  1  runtime failure (database error, hook crashed, ...)\n"
    "  2  usage error or invalid plan\n"
    "  3  refused by a gate: a hook said no, not yet due, lock held, lint error\n"
    "  4  interrupted, safe to resume\n"
    "  5  zdm's state in the database has a layout this zdm cannot use (newer,\n"
    "     older and not yet upgraded with zdm init --upgrade, or damaged)\n";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: zdm [--db URL] [--plans DIR] [--json] [-v|-q] COMMAND [ARGS]\n"
            "\n"
            "zdm runs zero-downtime schema changes as expand, backfill, cutover and\n"
            "contract phases, one TOML plan per change.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s %s", commands[i].group ? commands[i].group : "",
                 commands[i].group ? " " : "", commands[i].name, commands[i].args);
        fprintf(f, "  %-26s %s\n", head, commands[i].summary);
    }
    fprintf(f, "  %-26s %s\n\nOptions:\n%s\nExit codes:\n%s", "help COMMAND", "help for one command",
            global_options_text, exit_codes_text);
}

static const cmd *find_cmd(const char *group_or_name, const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const cmd *c = &commands[i];
        if (c->group) {
            if (name && strcmp(c->group, group_or_name) == 0 && strcmp(c->name, name) == 0)
                return c;
        } else if (strcmp(c->name, group_or_name) == 0) {
            return c;
        }
    }
    return NULL;
}

static int is_group(const char *word)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].group && strcmp(commands[i].group, word) == 0)
            return 1;
    return 0;
}

/* Every command option, in --help order: its name, the OPT_ bit a command
 * declares in the table above to take it, where its value goes, and its
 * help line(s).  This one table drives parsing, the "does not apply"
 * refusal, zdm help COMMAND, the man page and the completions.  An option
 * listed twice (--format: lint's and status's) is parsed once; a command
 * takes it when it declares either bit, and its help shows its own entry.
 *
 * --workers N is zdm backfill's alone (N worker processes, life_workers.c);
 * every other command refuses it (exit 2, "does not apply"), as test_cli
 * pins. */
enum { K_FLAG, K_VALUE, K_REPEAT };
#define F(field) offsetof(zdm_cli, field)
static const struct opt {
    const char *name;
    unsigned bit;
    int kind;         /* K_FLAG: an int set to 1; K_VALUE: a const char *; K_REPEAT: --op */
    size_t off;       /* the field of zdm_cli */
    const char *text; /* help line(s) */
} options[] = {
    {"--dry-run", OPT_DRY_RUN, K_FLAG, F(dry_run), "  --dry-run       print every statement it would run; change nothing\n"},
    {"--no-backup", OPT_NO_BACKUP, K_FLAG, F(no_backup), "  --no-backup     sqlite: skip the backup taken before contract\n"},
    {"--hooks-only", OPT_HOOKS_ONLY, K_FLAG, F(hooks_only),
     "  --hooks-only    re-run the after_* hooks of the current phase\n"},
    {"--force", OPT_FORCE, K_FLAG, F(force), "  --force         override a safety refusal (see the message that asked)\n"},
    {"--sql", OPT_SQL, K_FLAG, F(sql), "  --sql           print the SQL each step runs\n"},
    {"--dialect", OPT_DIALECT, K_VALUE, F(dialect),
     "  --dialect D     pg or sqlite (with --sql; default: from --db, else pg)\n"},
    {"--at", OPT_AT, K_VALUE, F(at), "  --at TIME       ISO-8601 time, e.g. 2026-11-22T03:00:00Z or ...T03:00+01:00;\n"
                                     "                  without Z or an offset: local time (TZ), and zdm prints\n"
                                     "                  the UTC time it stored\n"},
    {"--after", OPT_AFTER, K_VALUE, F(after), "  --after DUR     a duration from now, with its unit: 90s, 30m, 24h, 7d\n"},
    {"--workers", OPT_WORKERS, K_VALUE, F(workers),
     "  --workers N     start N worker processes (1-64, default 1); with --listen,\n"
     "                  worker i serves on PORT+i-1\n"},
    {"--allow", OPT_ALLOW, K_VALUE, F(allow), "  --allow RULES   lint rule ids to allow, comma-separated\n"},
    {"--all", OPT_ALL, K_FLAG, F(all), "  --all           every plan, in requires order\n"},
    {"--to", OPT_TO, K_VALUE, F(to), "  --to PHASE      with --all: stop at expanded, backfilled, cut_over or complete\n"},
    {"--dot", OPT_DOT, K_FLAG, F(dot), "  --dot           Graphviz output (dot -Tsvg)\n"},
    {"--op", OPT_OP, K_REPEAT, F(ops), "  --op OP         start from operation OP's skeleton (repeatable): sql,\n"
                                       "                  create_table, add_column, rename_column, change_type, ...\n"},
    {"--format", OPT_FORMAT, K_VALUE, F(format),
     "  --format F      text (default), json (the same as --json), github (workflow\n"
     "                  annotations) or sarif (SARIF 2.1.0, for code scanning)\n"},
    {"--format", OPT_STATUS_FORMAT, K_VALUE, F(format),
     "  --format F      text (default) or prometheus (metrics for node_exporter's\n"
     "                  textfile collector); JSON is --json\n"},
    {"--listen", OPT_LISTEN, K_VALUE, F(listen),
     "  --listen ADDR   serve GET /status (JSON) and /metrics (Prometheus) on\n"
     "                  PORT (127.0.0.1), HOST:PORT or [IPV6]:PORT, read-only\n"},
    {"--event", OPT_HISTORY_FILTERS, K_VALUE, F(event),
     "  --event ACTION  only these rows: advance, rollback, schedule, refused, hook\n"
     "                  (every hook row), upgrade, ...\n"},
    {"--outcome", OPT_HISTORY_FILTERS, K_VALUE, F(outcome),
     "  --outcome O     only ok, failed, refused, running or interrupted rows\n"},
    {"--since", OPT_HISTORY_FILTERS, K_VALUE, F(since),
     "  --since T       rows at or after T: a time (2026-11-22T03:00:00Z) or a\n"
     "                  duration back from now (24h)\n"},
    {"--until", OPT_HISTORY_FILTERS, K_VALUE, F(until), "  --until T       rows at or before T (same forms)\n"},
    {"--limit", OPT_HISTORY_FILTERS, K_VALUE, F(limit), "  --limit N       the newest N rows (printed oldest first)\n"},
    {"--cancel", OPT_CANCEL, K_FLAG, F(cancel), "  --cancel        remove the time set with --at or --after\n"},
    {"--reset", OPT_RESET, K_FLAG, F(reset), "  --reset         drop every zdm set override of the plan first\n"},
    {"--upgrade", OPT_UPGRADE, K_FLAG, F(upgrade),
     "  --upgrade       move zdm's state tables from an older layout to this\n"
     "                  zdm's (recorded in history); nothing else does\n"},
};
#undef F
#define NOPTIONS (sizeof options / sizeof options[0])

static void print_cmd_help(FILE *f, const cmd *c)
{
    fprintf(f, "usage: zdm [global options] %s%s%s%s%s\n\n%s", c->group ? c->group : "",
            c->group ? " " : "", c->name, c->args[0] ? " " : "", c->args, c->help);
    int any = 0;
    for (size_t i = 0; i < NOPTIONS; i++)
        if (c->opts & options[i].bit) {
            if (!any++)
                fprintf(f, "\nOptions:\n");
            fputs(options[i].text, f);
        }
}

/* Value of an option given as "--opt=value" or "--opt value". */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **out,
                     zdm_err *err)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) == 0 && a[n] == '=') {
        *out = a + n + 1;
        return 1;
    }
    if (strcmp(a, name) == 0) {
        if (*i + 1 >= argc) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "option %s needs a value", name);
            return -1;
        }
        *out = argv[++*i];
        return 1;
    }
    return 0;
}

/* The final error: on stderr in the log format, and under --json on
 * stdout too, as the last JSON line, so a script reading stdout alone
 * learns why. */
/* "file:line:col: message" (the plan loader's diagnostics) as an object;
 * a message without a position is {"message": ...} alone. */
static json_t *problem_json(const char *s)
{
    json_t *o = json_object();
    char *file = NULL;
    int line = 0, col = 0;
    const char *msg = s;
    if (zdm_cli_problem_split(s, &file, &line, &col, &msg)) {
        json_object_set_new(o, "file", json_string(file));
        json_object_set_new(o, "line", json_integer(line));
        json_object_set_new(o, "col", json_integer(col));
    }
    json_object_set_new(o, "message", json_string(msg));
    free(file);
    return o;
}

static void print_err(FILE *errs, FILE *json_out, int code, const zdm_err *err, const zdm_strv *problems)
{
    if (errs)
        zdm_log_final_error(errs, err);
    if (!json_out)
        return;
    char ts[40];
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("error"));
    json_object_set_new(o, "time", json_string(zdm_format_time(zdm_now_ms(), ts, sizeof ts)));
    json_object_set_new(o, "exit_code", json_integer(code));
    if (zdm_log_worker()[0])
        json_object_set_new(o, "worker", json_string(zdm_log_worker()));
    json_object_set_new(o, "message", json_string(err->msg));
    json_object_set_new(o, "detail", err->detail[0] ? json_string(err->detail) : json_null());
    json_object_set_new(o, "sqlstate", err->sqlstate[0] ? json_string(err->sqlstate) : json_null());
    if (err->line)
        json_object_set_new(o, "line", json_integer(err->line));
    if (problems && problems->n) {
        json_t *a = json_array();
        for (size_t i = 0; i < problems->n; i++)
            json_array_append_new(a, problem_json(problems->v[i]));
        json_object_set_new(o, "problems", a);
    }
    json_dumpf(o, json_out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', json_out);
    fflush(json_out);
    json_decref(o);
}

/* Commands that change state: under --json they stream their events
 * (log lines, results) on stdout, one JSON object per line. */
static int streams_events(const cmd *c)
{
    static const char *const names[] = {"init", "advance", "rollback", "stamp", "unlock", "backfill", "pause",
                                        "resume", "set", "cutover", "schedule", "run-due", "new", "baseline"};
    if (c->group)
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(c->name, names[i]) == 0)
            return 1;
    return 0;
}

/* Alembic and Flask-Migrate verbs a newcomer types first, and the zdm
 * command that does that job. */
static const struct { const char *verb, *zdm; } verb_pointers[] = {
    {"upgrade", "zdm advance PLAN moves one plan one phase; zdm advance --all takes every plan "
                "as far as it can go (upgrade head)"},
    {"downgrade", "zdm rollback PLAN undoes a plan's expand (or its contract, when it has downs)"},
    {"current", "zdm status shows where every plan stands"},
    {"revision", "zdm new NAME writes the next plan file"},
    {"migrate", "zdm new NAME writes the next plan file (zdm does not autogenerate: write the "
                "expand and contract steps, or --op OP skeletons)"},
    {"heads", "zdm plan graph shows the requires graph and marks the heads"},
    {"branches", "zdm plan graph shows the requires graph and marks the heads"},
    {"merge", "zdm new NAME writes a plan that requires every current head"},
    {"show", "zdm plan show PLAN"},
    {"edit", "edit the plan file itself (zdm plan show PLAN names it)"},
};

static void unknown_command(const char *const *words, int nwords, zdm_err *err)
{
    if (is_group(words[0])) {
        /* "zdm plan new": the word may be a top-level command or a
         * misspelt subcommand. */
        const char *sub = nwords > 1 ? words[1] : NULL;
        const char *names[NCOMMANDS];
        size_t n = 0;
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (commands[i].group && strcmp(commands[i].group, words[0]) == 0)
                names[n++] = commands[i].name;
        const char *hint = sub ? zdm_did_you_mean(sub, names, n) : NULL;
        zdm_err_set(err, ZDM_EXIT_USAGE, "\"zdm %s\" needs a subcommand%s%s%s%s%s", words[0],
                    sub ? ", not " : "", sub ? sub : "", hint ? " (did you mean \"" : "",
                    hint ? hint : "", hint ? "\"?)" : "");
        if (sub && !hint && find_cmd(sub, NULL))
            zdm_err_detail(err, "\"%s\" is a command of its own: zdm %s", sub, sub);
        else
            zdm_err_detail(err, "run \"zdm help %s\"", words[0]);
        return;
    }
    /* "zdm db upgrade": Flask-Migrate's commands live under "flask db". */
    if (strcmp(words[0], "db") == 0 && nwords > 1) {
        const cmd *c = find_cmd(words[1], nwords > 2 ? words[2] : NULL);
        if (c || is_group(words[1])) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "unknown command \"db\": zdm has no db group (Flask-Migrate's "
                        "\"flask db\"): run zdm %s", words[1]);
            zdm_err_detail(err, "run \"zdm help %s\"", words[1]);
            return;
        }
        words++, nwords--;
    }
    for (size_t i = 0; i < sizeof verb_pointers / sizeof verb_pointers[0]; i++)
        if (strcmp(words[0], verb_pointers[i].verb) == 0) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "unknown command \"%s\": %s", words[0], verb_pointers[i].zdm);
            zdm_err_detail(err, "docs/coming-from-alembic.md maps every Alembic command to zdm's; "
                                "\"zdm --help\" lists them all");
            return;
        }
    const char *names[NCOMMANDS + 1];
    size_t n = 0;
    for (size_t i = 0; i < NCOMMANDS; i++)
        names[n++] = commands[i].group ? commands[i].group : commands[i].name;
    const char *hint = zdm_did_you_mean(words[0], names, n);
    zdm_err_set(err, ZDM_EXIT_USAGE, "unknown command \"%s\"%s%s%s", words[0],
                hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
    zdm_err_detail(err, "run \"zdm --help\" for the list of commands");
}

/* What the command line holds besides the zdm_cli fields. */
typedef struct parsed {
    const char *words[ZDM_CLI_MAX_POS + 2]; /* command words and positionals */
    int nwords, want_help, want_version, rest;
    unsigned seen;          /* OPT_ bits of the command options given */
    const char *log_format; /* --log-format, else $ZDM_LOG_FORMAT */
} parsed;

/* argv[*i] as a command option of the table: 1 when it is one (its value
 * stored in cli, its bits added to *seen), 0 when not, -1 on an error. */
static int command_option(int argc, char **argv, int *i, zdm_cli *cli, unsigned *seen, zdm_err *err)
{
    for (size_t k = 0; k < NOPTIONS; k++) {
        const struct opt *o = &options[k];
        const char *v = NULL;
        if (o->kind == K_FLAG) {
            if (strcmp(argv[*i], o->name) != 0)
                continue;
            *(int *)(void *)((char *)cli + o->off) = 1;
        } else {
            int r = opt_value(argc, argv, i, o->name, &v, err);
            if (r < 0)
                return -1;
            if (r == 0)
                continue;
            if (o->kind == K_VALUE) {
                *(const char **)(void *)((char *)cli + o->off) = v;
            } else if (cli->nops >= ZDM_CLI_MAX_POS) {
                zdm_err_set(err, ZDM_EXIT_USAGE, "too many --op options");
                return -1;
            } else {
                cli->ops[cli->nops++] = v;
            }
        }
        for (size_t n = k; n < NOPTIONS; n++) /* every entry of that name (--format) */
            if (strcmp(options[n].name, o->name) == 0)
                *seen |= options[n].bit;
        return 1;
    }
    return 0;
}

/* argv[*i] as a global option: 1 when it is one, 0 when not, -1 on an error. */
static int global_option(int argc, char **argv, int *i, zdm_cli *cli, parsed *pa, zdm_err *err)
{
    const char *a = argv[*i];
    int r;
    if ((r = opt_value(argc, argv, i, "--db", &cli->db_url, err)) != 0) {
        cli->db_given = r > 0;
        return r;
    }
    if ((r = opt_value(argc, argv, i, "--plans", &cli->plans_dir, err)) != 0) {
        cli->plans_given = r > 0;
        return r;
    }
    if ((r = opt_value(argc, argv, i, "--log-format", &pa->log_format, err)) != 0)
        return r;
    if (strcmp(a, "--json") == 0)
        cli->json = 1;
    else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
        cli->verbosity++;
    else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
        cli->verbosity = -1;
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
        pa->want_help = 1;
    else if (strcmp(a, "--version") == 0)
        pa->want_version = 1;
    else
        return 0;
    return 1;
}

/* Options may come anywhere: before, between and after the command words. */
static int parse_args(int argc, char **argv, zdm_cli *cli, parsed *pa, zdm_err *err)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (pa->rest || a[0] != '-' || strcmp(a, "-") == 0) {
            if (pa->nwords >= ZDM_CLI_MAX_POS + 2)
                return zdm_err_set(err, ZDM_EXIT_USAGE, "too many arguments");
            pa->words[pa->nwords++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            pa->rest = 1;
            continue;
        }
        int r = global_option(argc, argv, &i, cli, pa, err);
        if (r == 0)
            r = command_option(argc, argv, &i, cli, &pa->seen, err);
        if (r < 0)
            return ZDM_EXIT_USAGE;
        if (r > 0)
            continue;
        /* "zdm migrate -m x", "zdm downgrade -1": an Alembic command line
         * as typed; the command is what is wrong, say so. */
        if (pa->nwords > 0 && !is_group(pa->words[0]) && strcmp(pa->words[0], "help") != 0 &&
            !find_cmd(pa->words[0], NULL)) {
            unknown_command(pa->words, pa->nwords, err);
            return ZDM_EXIT_USAGE;
        }
        zdm_err_set(err, ZDM_EXIT_USAGE, "unknown option \"%s\"", a);
        zdm_err_detail(err, "run \"zdm --help\" for the list of options");
        return ZDM_EXIT_USAGE;
    }
    return 0;
}

/* zdm help [GROUP] [COMMAND]: 0, or -1 with err set. */
static int help_command(FILE *out, const parsed *pa, zdm_err *err)
{
    if (pa->nwords == 1) {
        usage(out);
        return 0;
    }
    const cmd *c = find_cmd(pa->words[1], pa->nwords > 2 ? pa->words[2] : NULL);
    if (!c && is_group(pa->words[1])) {
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (commands[i].group && strcmp(commands[i].group, pa->words[1]) == 0)
                print_cmd_help(out, &commands[i]), fputc('\n', out);
        return 0;
    }
    if (!c) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "no such command \"%s\"", pa->words[1]);
        return -1;
    }
    print_cmd_help(out, c);
    return 0;
}

/* Refuses an option the command does not take, and positionals out of its
 * range; fills cli->pos.  0, or -1 with err set. */
static int command_args(const cmd *c, const parsed *pa, zdm_cli *cli, zdm_err *err)
{
    unsigned seen = pa->seen;
    if ((seen & OPT_ANY_FORMAT) && (c->opts & OPT_ANY_FORMAT))
        seen &= ~OPT_ANY_FORMAT | c->opts; /* --format as this command reads it */
    if (seen & ~c->opts) {
        /* named: the last such option of the table, values before flags */
        for (int pass = 0; pass < 2; pass++)
            for (size_t k = 0; k < NOPTIONS; k++)
                if ((options[k].kind == K_FLAG) == pass && (seen & options[k].bit & ~c->opts))
                    zdm_err_set(err, ZDM_EXIT_USAGE, "option %s does not apply to \"%s\"", options[k].name,
                                c->name);
        zdm_err_detail(err, "run \"zdm help %s%s%s\"", c->group ? c->group : "", c->group ? " " : "", c->name);
        return -1;
    }
    int used = c->group ? 2 : 1;
    if (pa->nwords - used > ZDM_CLI_MAX_POS) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "too many arguments");
        return -1;
    }
    for (int i = used; i < pa->nwords; i++)
        cli->pos[cli->npos++] = pa->words[i];
    if (cli->npos < c->min_pos || cli->npos > c->max_pos) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "usage: zdm %s%s%s%s%s", c->group ? c->group : "", c->group ? " " : "",
                    c->name, c->args[0] ? " " : "", c->args);
        return -1;
    }
    return 0;
}

/* Runs the command with its output streams and signal handlers set up;
 * returns the exit code, err filled when it is not 0. */
static int run_command(const cmd *c, zdm_cli *cli, FILE *out, zdm_err *err)
{
    zdm_log_set_level(cli->verbosity < 0 ? ZDM_LOG_WARN : cli->verbosity > 0 ? ZDM_LOG_DEBUG : ZDM_LOG_INFO);
    /* --json: stdout carries JSON only.  A command's own JSON document
     * passes through; its text lines become {"event": "output"} lines;
     * a state-changing command's log events are JSON lines too. */
    FILE *jout = NULL;
    if (cli->json) {
        jout = zdm_json_out_open(out);
        if (jout)
            cli->out = jout;
        if (streams_events(c))
            zdm_log_set_events(out);
    }
    /* Every command stops on SIGINT/SIGTERM at its next safe point and
     * exits 4; one that finished anyway still says it was interrupted. */
    zdm_sig_install();
    int rc = c->fn(cli, err);
    int sig = zdm_sig_caught() ? zdm_sig_first() : 0;
    zdm_sig_restore();
    if (jout)
        fclose(jout);
    zdm_log_set_events(NULL);
    if (sig && rc != ZDM_EXIT_INTERRUPTED) {
        if (rc == 0 || !err->msg[0]) {
            zdm_err_clear(err);
            zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "interrupted by signal %d", sig);
        }
        rc = ZDM_EXIT_INTERRUPTED;
    }
    return rc;
}

int zdm_cli_main(int argc, char **argv, FILE *out, FILE *errs)
{
    zdm_cli cli;
    memset(&cli, 0, sizeof cli);
    cli.out = out;
    cli.errs = errs;
    cli.plans_dir = "plans";
    zdm_err err;
    zdm_err_clear(&err);
    parsed pa;
    memset(&pa, 0, sizeof pa);
    pa.log_format = getenv("ZDM_LOG_FORMAT");
    zdm_log_set_format(ZDM_LOGF_TEXT);
    if (parse_args(argc, argv, &cli, &pa, &err) != 0)
        goto fail;
    if (pa.log_format && *pa.log_format) {
        int lf = zdm_log_parse_format(pa.log_format);
        if (lf < 0) {
            zdm_err_set(&err, ZDM_EXIT_USAGE, "unknown log format \"%s\"", pa.log_format);
            zdm_err_detail(&err, "--log-format (or ZDM_LOG_FORMAT) is text, kv or json");
            goto fail;
        }
        zdm_log_set_format((zdm_log_format)lf);
    }
    if (pa.want_version) {
        if (cli.json)
            fprintf(out, "{\"version\": \"%s\"}\n", ZDM_VERSION);
        else
            fprintf(out, "zdm %s\n", ZDM_VERSION);
        return 0;
    }
    if (pa.nwords == 0) {
        if (pa.want_help) {
            usage(out);
            return 0;
        }
        usage(errs);
        if (cli.json) {
            zdm_err_set(&err, ZDM_EXIT_USAGE, "no command given");
            zdm_err_detail(&err, "run \"zdm --help\" for the list of commands");
            print_err(NULL, out, ZDM_EXIT_USAGE, &err, NULL);
        }
        return ZDM_EXIT_USAGE;
    }
    if (strcmp(pa.words[0], "help") == 0) {
        if (help_command(out, &pa, &err) != 0)
            goto fail;
        return 0;
    }
    const cmd *c = find_cmd(pa.words[0], pa.nwords > 1 ? pa.words[1] : NULL);
    if (!c) {
        unknown_command(pa.words, pa.nwords, &err);
        goto fail;
    }
    if (pa.want_help) {
        print_cmd_help(out, c);
        return 0;
    }
    if (command_args(c, &pa, &cli, &err) != 0)
        goto fail;
    if (!cli.db_url) {
        const char *env = getenv("ZDM_DATABASE_URL");
        if (env && *env)
            cli.db_url = env;
    }
    int rc = run_command(c, &cli, out, &err);
    /* The command's status is the exit code, whatever err.code says.  A
     * command that printed its JSON document already said it there (a
     * second document after it made stdout unreadable as JSON). */
    if (rc != 0 && err.msg[0])
        print_err(errs, cli.json && !cli.json_done ? out : NULL, rc, &err, &cli.problems);
    zdm_strv_free(&cli.problems);
    return rc;

fail:
    print_err(errs, cli.json ? out : NULL, err.code ? err.code : ZDM_EXIT_USAGE, &err, &cli.problems);
    zdm_strv_free(&cli.problems);
    return err.code ? err.code : ZDM_EXIT_USAGE;
}

/* ---- the command table, for cli_gen.c (man page, completions) ---- */

size_t zdm_cli_command_count(void)
{
    return NCOMMANDS;
}

void zdm_cli_command_view(size_t i, zdm_cli_cmd_view *v)
{
    const cmd *c = &commands[i];
    memset(v, 0, sizeof *v);
    v->group = c->group;
    v->name = c->name;
    v->args = c->args;
    v->summary = c->summary;
    v->help = c->help;
    for (size_t k = 0; k < NOPTIONS; k++)
        if (c->opts & options[k].bit) {
            const struct opt *o = &options[k];
            zdm_buf_puts(&v->options, o->text);
            zdm_buf_printf(&v->option_names, "%s%s", v->option_names.len ? " " : "", o->name);
            if (o->kind != K_FLAG)
                zdm_buf_printf(&v->value_option_names, "%s%s", v->value_option_names.len ? " " : "", o->name);
        }
}

const char *zdm_cli_global_options(void)
{
    return global_options_text;
}

const char *zdm_cli_exit_codes(void)
{
    return exit_codes_text;
}
