/*
 * zdm_main.c -- the zdm program: everything happens in zdm_cli_main();
 * this is the only place that turns a status into a process exit.
 */
#include <stdio.h>

#include "cli.h"

int main(int argc, char **argv)
{
    return zdm_cli_main(argc, argv, stdout, stderr);
}
