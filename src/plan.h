/*
 * plan.h -- plans: one TOML file describing one schema change, split into
 * expand, backfill, cutover (hooks) and contract.  The data structure is
 * plan_model.h's (included here).
 *
 * Owns: loading plan files and directories and validating them (collecting
 * every error of a file, each with file:line:column); op steps are checked
 * against ops.h's table and expanded by ops.c.  A zdm_plan owns all its
 * strings and the parsed TOML document, which stays private to plan.c:
 * every key a later module needs is a parsed field; only op steps'
 * `fields` point into the document (ops.c expands them; plan show --json
 * prints them).  Free with zdm_plan_free.
 */
#ifndef ZDM_PLAN_H
#define ZDM_PLAN_H

#include "plan_model.h"

/* [contract] of zdm.toml: the project's defaults for contract. */
typedef struct zdm_contract_defaults {
    int64_t not_before_ms;   /* default soak after cutover; -1 when not set */
    int max_attempts;        /* run-due tries before the plan is failed (default 3) */
    int64_t retry_after_ms;  /* run-due's wait after the first failure, doubling (default 10 min) */
} zdm_contract_defaults;
int zdm_project_contract_load(const char *path, const toml_value *doc, zdm_contract_defaults *out,
                              zdm_diags *diags) ZDM_MUST_CHECK;
void zdm_contract_defaults_init(zdm_contract_defaults *d);
/* Validates a project file's document ([hooks]; [contract] is read by
 * zdm_project_contract_load) into h. */
int zdm_hooks_load_doc(const char *path, const toml_value *doc, zdm_hooks *h,
                       zdm_diags *diags) ZDM_MUST_CHECK;
void zdm_hooks_free(zdm_hooks *h);

/* Loads and validates one file.  Returns 0, ZDM_EXIT_USAGE when invalid
 * (every problem appended to diags), or ZDM_EXIT_FAIL on I/O error. */
int zdm_plan_load_file(const char *path, zdm_plan **out, zdm_diags *diags) ZDM_MUST_CHECK;
/* Same, from memory (fuzzing, tests). */
int zdm_plan_load_buffer(const char *path, const char *src, size_t len,
                         zdm_plan **out, zdm_diags *diags) ZDM_MUST_CHECK;
void zdm_plan_free(zdm_plan *p);

/* Loads every path: files, or directories (their *.toml, not recursive;
 * zdm.toml, the project file, is skipped).  Validates each plan and the
 * set: duplicate ids, missing requires, cycles.  Loads every file even
 * after errors, so all problems are reported at once. */
int zdm_plan_set_load(const char *const *paths, size_t npaths,
                      zdm_plan_set *out, zdm_diags *diags) ZDM_MUST_CHECK;
/* The same, where a plan may also require one of `known` (the ids of the
 * plans folder, when some of its files are validated alone). */
int zdm_plan_set_load_known(const char *const *paths, size_t npaths, const zdm_strv *known,
                            zdm_plan_set *out, zdm_diags *diags) ZDM_MUST_CHECK;
void zdm_plan_set_free(zdm_plan_set *s);

/* Splits a hook command line into argv: whitespace separates words,
 * '...' and "..." group; no variables, globs or other shell syntax. */
int zdm_split_command(const char *line, zdm_strv *argv, zdm_err *err) ZDM_MUST_CHECK;

#endif
