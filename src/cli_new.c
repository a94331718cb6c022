/*
 * cli_new.c -- `zdm new NAME [--op OP...]`: starts a plan file.
 *
 * Owns: plan file naming (NNNN_NAME.toml, the next 4-digit number in the
 * plans directory) and the templates a new plan starts from: a commented
 * tour of every section, or the skeleton of the named operations with
 * their required fields left empty, so `zdm plan validate` points at
 * each one until it is filled in.  The file is created with O_EXCL: two
 * runs at once never write the same file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_new.h"
#include "ops.h"
#include "toml.h"
#include "util.h"

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100)
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-'))
            return 0;
    return 1;
}

/* "0007_add_x.toml" -> 7 and "add_x"; -1 when the name has no number. */
static int numbered(const char *file, const char **rest)
{
    size_t n = strlen(file);
    if (n < 11 || strcmp(file + n - 5, ".toml") != 0)
        return -1;
    for (int i = 0; i < 4; i++)
        if (file[i] < '0' || file[i] > '9')
            return -1;
    if (file[4] != '_')
        return -1;
    *rest = file + 5;
    return atoi(file);
}

int zdm_new_plan_path(const char *dir, const char *name, char **path, zdm_err *err)
{
    *path = NULL;
    if (!name_ok(name)) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "plan name \"%s\" may only use letters, digits, '_' and '-' (1-100)", name);
        zdm_err_detail(err, "e.g. zdm new add_event_category");
        return ZDM_EXIT_USAGE;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot create the plans directory %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot read the plans directory %s: %s", dir, strerror(errno));
    int max = 0, rc = 0;
    struct dirent *e;
    size_t nlen = strlen(name);
    while ((e = readdir(d)) != NULL) {
        const char *rest;
        int num = numbered(e->d_name, &rest);
        if (num < 0)
            continue;
        if (num > max)
            max = num;
        if (strlen(rest) == nlen + 5 && strncmp(rest, name, nlen) == 0 && rc == 0) {
            rc = zdm_err_set(err, ZDM_EXIT_USAGE, "a plan named %s exists already: %s/%s", name, dir, e->d_name);
            zdm_err_detail(err, "choose another name, or edit that file");
        }
    }
    closedir(d);
    if (rc != 0)
        return rc;
    if (max >= 9999)
        return zdm_err_set(err, ZDM_EXIT_USAGE, "plans directory %s already has plan 9999", dir);
    *path = zdm_xasprintf("%s/%04d_%s.toml", dir, max + 1, name);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids and heads of the plan files in dir, read from each file's id and
 * requires alone: a plan still being written (a fresh `zdm new` does not
 * validate until filled in) must not stop the next `zdm new`.  A file
 * that is not TOML at all is an error: its requires are unknown. */
static int light_heads(zdm_cli *cli, zdm_strv *ids, zdm_strv *heads, zdm_err *err)
{
    DIR *d = opendir(cli->plans_dir);
    if (!d)
        return 0; /* no directory yet: no plans, no heads */
    zdm_strv files = {0}, reqs = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".toml") == 0 && strcmp(e->d_name, "zdm.toml") != 0 &&
            e->d_name[0] != '.')
            zdm_strv_push(&files, e->d_name);
    }
    closedir(d);
    if (files.n)
        qsort(files.v, files.n, sizeof *files.v, cmp_str);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < files.n; i++) {
        char *path = zdm_xasprintf("%s/%s", cli->plans_dir, files.v[i]);
        toml_value *doc = NULL;
        rc = toml_parse_file(path, &doc, err);
        if (rc != 0) {
            zdm_err_detail(err, "fix %s first: a new plan requires the current heads", path);
        } else {
            const toml_value *id = toml_get(doc, "id");
            if (id && id->type == TOML_STRING)
                zdm_strv_push(ids, id->u.str.ptr);
            else
                zdm_strv_push_owned(ids, zdm_xstrndup(files.v[i], strlen(files.v[i]) - 5));
            const toml_value *rq = toml_get(doc, "requires");
            for (size_t k = 0; rq && rq->type == TOML_ARRAY && k < rq->u.array.len; k++)
                if (rq->u.array.items[k]->type == TOML_STRING)
                    zdm_strv_push(&reqs, rq->u.array.items[k]->u.str.ptr);
            toml_free(doc);
        }
        free(path);
    }
    for (size_t i = 0; rc == 0 && i < ids->n; i++) {
        int required = 0;
        for (size_t k = 0; k < reqs.n && !required; k++)
            required = strcmp(reqs.v[k], ids->v[i]) == 0;
        if (!required)
            zdm_strv_push(heads, ids->v[i]);
    }
    zdm_strv_free(&files);
    zdm_strv_free(&reqs);
    return rc;
}

static const char tour[] =
    "# Every section below is optional; a plan needs at least one of expand,\n"
    "# backfill or contract.  Keys: README \"Plan keys\".  Check it with\n"
    "#   zdm plan validate && zdm lint\n"
    "\n"
    "# lock_timeout = \"2s\"       # each DDL statement waits at most this for its lock,\n"
    "# lock_retries = 10         # then retries with backoff\n"
    "# statement_timeout = \"0\"\n"
    "\n"
    "# ---- expand: additive changes the running (old) application tolerates ----\n"
    "# [[expand.steps]]\n"
    "# op = \"add_column\"          # or raw SQL: sql = \"...\" with down = \"...\"\n"
    "# table = \"events\"\n"
    "# column = \"category\"\n"
    "# type = \"text\"\n"
    "#\n"
    "# [[expand.steps]]\n"
    "# sql.pg = \"CREATE INDEX CONCURRENTLY events_category ON events (category)\"\n"
    "# sql.sqlite = \"CREATE INDEX events_category ON events (category)\"\n"
    "# down = \"DROP INDEX events_category\"\n"
    "\n"
    "# ---- backfill: convert existing rows in batches (zdm backfill PLAN) ----\n"
    "# [backfill]\n"
    "# table = \"events\"\n"
    "# set.category = \"lower(project_name)\"          # new column = f(old)\n"
    "# (no where: a row is converted while category differs from it, so later\n"
    "#  writes to project_name are followed; where = \"...\" selects rows for a fix)\n"
    "# [backfill.dual_write]                         # triggers keep old and new in step\n"
    "# sources = [\"project_name\"]                    # while both applications run\n"
    "# [backfill.throttle]\n"
    "# batch_size = 1000\n"
    "# target_batch_ms = 200\n"
    "\n"
    "# ---- cutover and contract: after the new application is live ----\n"
    "# [contract]\n"
    "# not_before = \"cutover + 24h\"                  # soak time before contract\n"
    "# verify = \"SELECT NOT EXISTS (SELECT 1 FROM events WHERE category IS NULL)\"\n"
    "# [[contract.steps]]\n"
    "# op = \"drop_column\"\n"
    "# table = \"events\"\n"
    "# column = \"project_name\"\n"
    "\n"
    "# ---- hooks: commands run without a shell, in the plan's directory ----\n"
    "# [hooks]\n"
    "# cutover = [\"./hooks/switch-traffic.sh\"]\n"
    "# before_contract = [\"./hooks/backup.sh\"]\n";

/* The value a skeleton leaves for a field: empty, of the right type. */
static const char *blank_for(const char *op, const char *field)
{
    if (strcmp(field, "columns") == 0 && strcmp(op, "create_table") == 0)
        return "[ { name = \"id\", type = \"bigint\", primary_key = true }, { name = \"\", type = \"\" } ]";
    if (strcmp(field, "columns") == 0 || strcmp(field, "references_columns") == 0 ||
        strcmp(field, "primary_key") == 0)
        return "[\"\"]";
    if (strcmp(field, "nullable") == 0)
        return "true";
    if (strcmp(field, "unique") == 0)
        return "false";
    return "\"\"";
}

static void write_op(zdm_buf *b, const zdm_op_spec *spec)
{
    const char *where = spec->expand_ok ? "expand" : "contract";
    zdm_buf_printf(b, "[[%s.steps]]\nop = \"%s\"\n", where, spec->name);
    for (const char *const *f = spec->required; f && *f; f++) {
        if (strcmp(spec->name, "sql") == 0 && strcmp(*f, "sql") == 0) {
            zdm_buf_puts(b, "sql = \"\"                     # required\n");
            continue;
        }
        zdm_buf_printf(b, "%s = %s%*s# required\n", *f, blank_for(spec->name, *f),
                       (int)(strlen(*f) + strlen(blank_for(spec->name, *f)) < 26
                                 ? 26 - strlen(*f) - strlen(blank_for(spec->name, *f)) : 1), "");
    }
    for (const char *const *f = spec->optional; f && *f; f++)
        zdm_buf_printf(b, "# %s = %s\n", *f, blank_for(spec->name, *f));
    zdm_buf_puts(b, "\n");
}

int zdm_cmd_new(zdm_cli *cli, zdm_err *err)
{
    const char *name = cli->pos[0];
    for (int i = 0; i < cli->nops; i++)
        if (!zdm_op_find(cli->ops[i])) {
            zdm_err_set(err, ZDM_EXIT_USAGE, "unknown operation \"%s\"", cli->ops[i]);
            char *names = zdm_op_names();
            zdm_err_detail(err, "operations: %s", names);
            free(names);
            return ZDM_EXIT_USAGE;
        }
    zdm_strv ids = {0}, heads = {0};
    char *path = NULL;
    int rc = light_heads(cli, &ids, &heads, err);
    for (size_t i = 0; rc == 0 && i < ids.n; i++)
        if (strcmp(ids.v[i], name) == 0)
            rc = zdm_err_set(err, ZDM_EXIT_USAGE, "a plan with id %s exists already", name);
    if (rc == 0)
        rc = zdm_new_plan_path(cli->plans_dir, name, &path, err);
    zdm_strv_free(&ids);
    if (rc != 0) {
        zdm_strv_free(&heads);
        return rc;
    }

    zdm_buf b = {0};
    zdm_buf_printf(&b, "# %s -- written by zdm new; fill it in, then: zdm plan validate, zdm lint\n", name);
    zdm_buf_printf(&b, "description = \"%s\"\n", name);
    zdm_buf_puts(&b, "requires = [");
    for (size_t i = 0; i < heads.n; i++)
        zdm_buf_printf(&b, "%s\"%s\"", i ? ", " : "", heads.v[i]);
    zdm_buf_puts(&b, "]\n\n");
    if (cli->nops == 0) {
        zdm_buf_puts(&b, tour);
    } else {
        for (int i = 0; i < cli->nops; i++)
            write_op(&b, zdm_op_find(cli->ops[i]));
        zdm_buf_puts(&b, "# more: zdm new --help; plan keys: README \"Plan keys\"\n");
    }

    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = zdm_err_set(err, errno == EEXIST ? ZDM_EXIT_USAGE : ZDM_EXIT_FAIL, "cannot create %s: %s", path,
                         strerror(errno));
    } else {
        ssize_t w = write(fd, b.data, b.len);
        if (w < 0 || (size_t)w != b.len || close(fd) != 0) {
            rc = zdm_err_set(err, ZDM_EXIT_FAIL, "cannot write %s: %s", path, strerror(errno));
            unlink(path);
        }
    }
    if (rc == 0) {
        if (cli->json) {
            json_t *o = json_object(), *req = json_array();
            for (size_t i = 0; i < heads.n; i++)
                json_array_append_new(req, json_string(heads.v[i]));
            json_object_set_new(o, "path", json_string(path));
            json_object_set_new(o, "requires", req);
            json_dumpf(o, cli->out, JSON_COMPACT);
            fputc('\n', cli->out);
            json_decref(o);
        } else {
            fprintf(cli->out, "%s\n", path);
        }
    }
    zdm_buf_free(&b);
    zdm_strv_free(&heads);
    free(path);
    return rc;
}
