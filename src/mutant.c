/*
 * mutant.c -- the ZDM_MUTANT switch (see mutant.h).
 *
 * Owns: reading ZDM_MUTANT once per call; only compiled with ZDM_MUTANTS.
 */
#include "mutant.h"

#ifdef ZDM_MUTANTS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int zdm_mutant(const char *name)
{
    const char *m = getenv("ZDM_MUTANT");
    return m && strcmp(m, name) == 0;
}

int zdm_crashpoint(void)
{
    /* atomic: the latency probe's thread makes database calls too */
    static _Atomic long calls;
    const char *at = getenv("ZDM_CRASH_AT");
    if (!at || ++calls != atol(at))
        return 0;
    const char *mode = getenv("ZDM_CRASH_MODE");
    if (mode && strcmp(mode, "exit") == 0)
        _exit(137);
    return 1;
}

void zdm_barrier(const char *name)
{
    const char *b = getenv("ZDM_BARRIER");
    size_t n = strlen(name);
    if (!b || strncmp(b, name, n) != 0 || b[n] != ':')
        return;
    const char *path = b + n + 1;
    char arrived[4096];
    snprintf(arrived, sizeof arrived, "%s.arrived.%d", path, (int)getpid());
    FILE *f = fopen(arrived, "w");
    if (f)
        fclose(f);
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 12000 && access(path, F_OK) != 0; i++)
        nanosleep(&ts, NULL);
}
#else
/* ISO C forbids an empty translation unit. */
typedef int zdm_mutant_unused;
#endif
