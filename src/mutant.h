/*
 * mutant.h -- deliberate bugs for the torture checker's self-test.
 *
 * Owns: the switch zdm_mutant(name), true when the build has mutants
 * (cmake -DZDM_MUTANTS=ON, test builds only) and the environment variable
 * ZDM_MUTANT names this one.  In every other build it is the constant 0,
 * so the compiler removes the deliberate bug and its branch altogether.
 *
 * tests/torture/run.sh --self-test runs the checker against each mutant
 * and fails unless every one of them is caught: a checker that cannot
 * fail proves nothing.  Each hook is one `if (zdm_mutant("name"))` at the
 * place the bug would be, so it stays out of the way of real edits.
 */
#ifndef ZDM_MUTANT_H
#define ZDM_MUTANT_H

#ifdef ZDM_MUTANTS
int zdm_mutant(const char *name);
#else
#define zdm_mutant(name) 0
#endif

#endif
