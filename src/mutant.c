/*
 * mutant.c -- the ZDM_MUTANT switch (see mutant.h).
 *
 * Owns: reading ZDM_MUTANT once per call; only compiled with ZDM_MUTANTS.
 */
#include "mutant.h"

#ifdef ZDM_MUTANTS
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int zdm_mutant(const char *name)
{
    const char *m = getenv("ZDM_MUTANT");
    return m && strcmp(m, name) == 0;
}

int zdm_crashpoint(void)
{
    static long calls;
    const char *at = getenv("ZDM_CRASH_AT");
    if (!at || ++calls != atol(at))
        return 0;
    const char *mode = getenv("ZDM_CRASH_MODE");
    if (mode && strcmp(mode, "exit") == 0)
        _exit(137);
    return 1;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int zdm_mutant_unused;
#endif
