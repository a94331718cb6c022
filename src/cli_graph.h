/*
 * cli_graph.h -- the requires graph of a plan set (cli_graph.c).
 */
#ifndef ZDM_CLI_GRAPH_H
#define ZDM_CLI_GRAPH_H

#include "plan.h"

/* 1 when no plan of the set requires p. */
int zdm_plan_is_head(const zdm_plan_set *set, const zdm_plan *p);
/* Appends the id of every head, in set order, to out. */
void zdm_plan_heads(const zdm_plan_set *set, zdm_strv *out);

#endif
