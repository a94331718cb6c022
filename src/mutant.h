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
/* Crash-point injection for tests/integration/test_crashpoints.sh: with
 * ZDM_CRASH_AT=N, the N-th database call of this process (a query, a
 * script, BEGIN or COMMIT) fails (ZDM_CRASH_MODE=fail, the default:
 * returns 1 and the driver layer fails the call) or the process ends
 * there with _exit(137) (ZDM_CRASH_MODE=exit), as kill -9 would. */
int zdm_crashpoint(void);
/* A rendezvous for race tests (tests/integration/test_races.sh): with
 * ZDM_BARRIER=NAME:PATH, the process reaching zdm_barrier(NAME) creates
 * PATH.arrived.PID and waits until PATH exists (at most 120 s), so a test
 * can hold it at exactly this point while other processes move the plan
 * on -- a race forced every time instead of hoped for. */
void zdm_barrier(const char *name);
#else
#define zdm_mutant(name) 0
#define zdm_crashpoint() 0
#define zdm_barrier(name) ((void)0)
#endif

#endif
