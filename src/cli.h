/*
 * cli.h -- the zdm command line: global options, the command table,
 * help text, and dispatch.  Help and dispatch come from the same table.
 *
 * Owns: argument parsing and turning a command's status into the process
 * exit code.  Commands live in cli_*.c, one file per command group, and
 * get a parsed zdm_cli context; they print results to ctx->out and errors
 * through the zdm_err they return.
 */
#ifndef ZDM_CLI_H
#define ZDM_CLI_H

#include <stdio.h>

#include "err.h"
#include "plan.h"
#include "util.h"

#define ZDM_CLI_MAX_POS 32

typedef struct zdm_cli {
    /* global options */
    const char *db_url;      /* --db, else ZDM_DATABASE_URL, else NULL */
    int db_given;            /* --db was on the command line (not only $ZDM_DATABASE_URL) */
    const char *plans_dir;   /* --plans, default "plans" */
    int plans_given;         /* --plans was on the command line */
    int json;                /* --json */
    int verbosity;           /* -1 quiet, 0 normal, 1+ verbose */
    /* command options (each command reads the ones it declares) */
    int dry_run;             /* --dry-run */
    int no_backup;           /* --no-backup */
    int hooks_only;          /* --hooks-only */
    int force;               /* --force */
    int reset;               /* --reset (zdm set) */
    int upgrade;             /* --upgrade (init) */
    int cancel;              /* --cancel (schedule) */
    const char *event;       /* --event ACTION (history) */
    const char *outcome;     /* --outcome OUTCOME (history) */
    const char *since;       /* --since TIME|DURATION (history) */
    const char *until;       /* --until TIME|DURATION (history) */
    const char *limit;       /* --limit N (history) */
    int sql;                 /* --sql */
    const char *dialect;     /* --dialect */
    const char *at;          /* --at TIME */
    const char *after;       /* --after DURATION */
    const char *workers;     /* --workers N */
    const char *allow;       /* --allow RULE[,RULE] */
    const char *listen;      /* --listen [HOST:]PORT */
    int all;                 /* --all (advance) */
    const char *to;          /* --to PHASE (advance --all) */
    int dot;                 /* --dot (plan graph) */
    const char *ops[ZDM_CLI_MAX_POS]; /* --op OP, repeatable (new) */
    int nops;
    const char *format;      /* --format text|json|github|sarif (lint) */
    int db_may_create;       /* init (2, quietly), advance and stamp (1, saying so): a missing sqlite file may be created */
    /* positionals after the command words */
    const char *pos[ZDM_CLI_MAX_POS];
    int npos;
    FILE *out;               /* results */
    FILE *errs;              /* error messages */
    zdm_strv problems;       /* the plan files' problems ("file:line:col: ...") this run
                              * printed: --json's error and lint's sarif/github carry them */
    int json_done;           /* the command printed its one JSON document: under --json
                              * the final error goes to stderr only */
} zdm_cli;

typedef int (*zdm_cli_fn)(zdm_cli *cli, zdm_err *err);

/* Runs zdm with argv (argv[0] is the program name); returns the exit code.
 * Output goes to `out`, errors to `errs`. */
int zdm_cli_main(int argc, char **argv, FILE *out, FILE *errs);

/* Command implementations (cli_plan.c, cli_life.c, ...). */
int zdm_cmd_plan_validate(zdm_cli *cli, zdm_err *err);
int zdm_cmd_plan_show(zdm_cli *cli, zdm_err *err);
int zdm_cmd_init(zdm_cli *cli, zdm_err *err);
int zdm_cmd_advance(zdm_cli *cli, zdm_err *err);
int zdm_cmd_rollback(zdm_cli *cli, zdm_err *err);
int zdm_cmd_status(zdm_cli *cli, zdm_err *err);
int zdm_cmd_history(zdm_cli *cli, zdm_err *err);
int zdm_cmd_stamp(zdm_cli *cli, zdm_err *err);
int zdm_cmd_check(zdm_cli *cli, zdm_err *err);
int zdm_cmd_unlock(zdm_cli *cli, zdm_err *err);
int zdm_cmd_backfill(zdm_cli *cli, zdm_err *err);
int zdm_cmd_pause(zdm_cli *cli, zdm_err *err);
int zdm_cmd_resume(zdm_cli *cli, zdm_err *err);
int zdm_cmd_set(zdm_cli *cli, zdm_err *err);
int zdm_cmd_cutover(zdm_cli *cli, zdm_err *err);
int zdm_cmd_schedule(zdm_cli *cli, zdm_err *err);
int zdm_cmd_run_due(zdm_cli *cli, zdm_err *err);
int zdm_cmd_retry(zdm_cli *cli, zdm_err *err);
int zdm_cmd_lint(zdm_cli *cli, zdm_err *err);
int zdm_cmd_new(zdm_cli *cli, zdm_err *err);            /* cli_new.c */
int zdm_cmd_plan_graph(zdm_cli *cli, zdm_err *err);     /* cli_graph.c */
int zdm_cmd_advance_all(zdm_cli *cli, zdm_err *err);    /* cli_graph.c */
int zdm_cmd_baseline(zdm_cli *cli, zdm_err *err);       /* cli_baseline.c */

/* The command table, read by cli_gen.c (man page, completions).  The
 * zdm_buf members are filled; free them with zdm_buf_free. */
typedef struct zdm_cli_cmd_view {
    const char *group, *name, *args, *summary, *help;
    zdm_buf options;      /* help lines of the command's own options */
    zdm_buf option_names; /* "--dry-run --allow ..." */
    zdm_buf value_option_names; /* those of them that take a value */
} zdm_cli_cmd_view;
size_t zdm_cli_command_count(void);                /* cli.c */
void zdm_cli_command_view(size_t i, zdm_cli_cmd_view *v); /* cli.c */
const char *zdm_cli_global_options(void); /* cli.c: the --help "Options:" lines */
const char *zdm_cli_exit_codes(void);     /* cli.c: the --help "Exit codes:" lines */
int zdm_cmd_completion(zdm_cli *cli, zdm_err *err); /* cli_gen.c */
int zdm_cmd_manpage(zdm_cli *cli, zdm_err *err);    /* cli_gen.c */

/* Shared by commands (cli_plan.c). */
/* Prints each of d's messages to cli->errs and keeps them in cli->problems. */
void zdm_cli_problems(zdm_cli *cli, const zdm_diags *d);
/* Splits a problem "file:line:col: message": 1 with *file (malloc'd),
 * *line, *col and *msg (into s) set; 0 when it names no position. */
int zdm_cli_problem_split(const char *s, char **file, int *line, int *col, const char **msg);
/* Loads --plans (or the given paths) and prints every problem to cli->errs;
 * returns ZDM_EXIT_USAGE when any plan is invalid. */
int zdm_cli_load_plans(zdm_cli *cli, const char *const *paths, size_t npaths,
                       zdm_plan_set *set, zdm_err *err);
/* Finds PLAN (an id in the set, or a path to a plan file already loaded
 * by path); sets a "no such plan" error naming the known ids. */
zdm_plan *zdm_cli_find_plan(zdm_cli *cli, zdm_plan_set *set, const char *name, zdm_err *err);

#endif
