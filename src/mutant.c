/*
 * mutant.c -- the ZDM_MUTANT switch (see mutant.h).
 *
 * Owns: reading ZDM_MUTANT once per call; only compiled with ZDM_MUTANTS.
 */
#include "mutant.h"

#ifdef ZDM_MUTANTS
#include <stdlib.h>
#include <string.h>

int zdm_mutant(const char *name)
{
    const char *m = getenv("ZDM_MUTANT");
    return m && strcmp(m, name) == 0;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int zdm_mutant_unused;
#endif
