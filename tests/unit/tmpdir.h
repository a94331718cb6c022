/*
 * tmpdir.h -- a temporary directory of files for the unit tests, removed
 * by tmp_rm().  Header-only: each test program is one translation unit.
 * Include after <cmocka.h> (it asserts).
 */
#ifndef ZDM_TEST_TMPDIR_H
#define ZDM_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

typedef struct tmpdir {
    char path[64];
} tmpdir;

static inline void tmp_make(tmpdir *t)
{
    snprintf(t->path, sizeof t->path, "/tmp/zdm-unit.XXXXXX");
    assert_non_null(mkdtemp(t->path));
}

static inline void tmp_write(tmpdir *t, const char *name, const char *text)
{
    char *p = zdm_xasprintf("%s/%s", t->path, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    free(p);
}

static inline void tmp_rm(tmpdir *t)
{
    DIR *d = opendir(t->path);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = zdm_xasprintf("%s/%s", t->path, de->d_name);
        assert_int_equal(unlink(p), 0);
        free(p);
    }
    closedir(d);
    assert_int_equal(rmdir(t->path), 0);
}

#endif
