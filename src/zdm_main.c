/*
 * zdm_main.c -- the zdm program: everything happens in zdm_cli_main();
 * this is the only place that turns a status into a process exit.
 *
 * Owns: hiding --db from the process arguments.  /proc/PID/cmdline is
 * readable by every local user and by every hook zdm starts, so the
 * command line zdm works on is a private copy, and the original --db
 * value is overwritten with its redacted form before anything else runs.
 * (The short window between exec and this point remains: PGPASSFILE,
 * PGPASSWORD or ZDM_DATABASE_URL keep the password off the command line
 * altogether.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "util.h"

/* Overwrites s (the bytes of one argv string) with its redacted form, cut
 * to the same length; the rest is zeroed. */
static void scrub_arg(char *s)
{
    size_t n = strlen(s);
    char *safe = zdm_db_redact_url(s);
    memset(s, 0, n);
    if (safe) {
        size_t m = strlen(safe);
        memcpy(s, safe, m < n ? m : n);
        free(safe);
    }
}

int main(int argc, char **argv)
{
    char **copy = zdm_xcalloc((size_t)argc + 1, sizeof *copy);
    for (int i = 0; i < argc; i++)
        copy[i] = zdm_xstrdup(argv[i]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
            scrub_arg(argv[++i]);
        else if (strncmp(argv[i], "--db=", 5) == 0)
            scrub_arg(argv[i] + 5);
    }
    int rc = zdm_cli_main(argc, copy, stdout, stderr);
    for (int i = 0; i < argc; i++)
        free(copy[i]);
    free(copy);
    return rc;
}
