/*
 * cli_new.h -- naming new plan files (cli_new.c).
 */
#ifndef ZDM_CLI_NEW_H
#define ZDM_CLI_NEW_H

#include "err.h"

/* DIR/NNNN_NAME.toml with the next free number in DIR (created when
 * missing); refuses (exit 2) a bad NAME or one a file in DIR has already.
 * *path is malloc'd. */
int zdm_new_plan_path(const char *dir, const char *name, char **path, zdm_err *err) ZDM_MUST_CHECK;

#endif
