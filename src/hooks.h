/*
 * hooks.h -- running the team's deploy scripts between phases.
 *
 * Owns: the project file zdm.toml (found beside the plans directory) and
 * running a hook: an executable with arguments, no shell, from the plan's
 * directory, in its own process group, with a timeout after which the
 * whole group is killed.  Its output goes to the log line by line with a
 * prefix, and the last lines come back for the history row.
 */
#ifndef ZDM_HOOKS_H
#define ZDM_HOOKS_H

#include "err.h"
#include "plan.h"

/* Project-wide defaults from zdm.toml ([hooks] as in a plan).  A missing
 * file is not an error (*out gets an empty project). */
typedef struct zdm_project {
    zdm_hooks hooks;
    zdm_contract_defaults contract; /* [contract]: default soak, run-due's failure policy */
    char *path;         /* NULL when there is no zdm.toml */
    toml_value *doc;
} zdm_project;

int zdm_project_load(const char *plans_dir, zdm_project *out, zdm_diags *diags) ZDM_MUST_CHECK;
/* Gives every plan without a not_before of its own the project's. */
void zdm_project_apply_defaults(const zdm_project *proj, zdm_plan_set *set);
void zdm_project_free(zdm_project *p);

/* What a hook is told about the moment it runs in. */
typedef struct zdm_hook_env {
    const char *phase;       /* current phase */
    const char *next_phase;  /* the phase being entered ("" when none) */
    const char *dialect;     /* "postgresql" | "sqlite" */
    const char *db_url;      /* URL with the password already removed */
    long long history_id;    /* the history row of the transition (0 when none) */
    /* on_failure: what failed (ZDM_ERROR, one line, passwords already
     * scrubbed) and the exit code it gives (ZDM_EXIT_CODE); NULL / 0
     * for the other events, which get neither variable. */
    const char *error;
    int exit_code;
    /* The transition the hook belongs to, for every event
     * (ZDM_FROM_PHASE, ZDM_TO_PHASE): after_* hooks get ZDM_PHASE = the
     * phase entered, so these are the only place they learn where the
     * plan came from. */
    const char *from_phase;
    const char *to_phase;
} zdm_hook_env;

/* Runs every command for `ev`: the project's first, then the plan's
 * (unless the plan says inherit = false).  Stops at the first failure.
 * After SIGINT/SIGTERM (sig.h) no hook starts, and a running one's group
 * gets SIGTERM, then SIGKILL after the grace: ZDM_EXIT_INTERRUPTED.
 * Returns 0, or ZDM_EXIT_FAIL with err naming the hook, its exit status
 * and its last output lines.  *ran counts the commands run; `tail` (may be
 * NULL) receives the last output lines of every hook. */
int zdm_hooks_run(const zdm_project *proj, const zdm_plan *plan, zdm_hook_event ev,
                  const zdm_hook_env *env, int *ran, zdm_buf *tail, zdm_err *err) ZDM_MUST_CHECK;

/* Number of commands that would run for `ev`. */
size_t zdm_hooks_count(const zdm_project *proj, const zdm_plan *plan, zdm_hook_event ev);

/* The URL without its password (not even "*****"), for hook environments. */
char *zdm_url_without_password(const char *safe_url);

#endif
