/*
 * cli_baseline.c -- `zdm baseline [NAME]`: adopts a database whose schema
 * exists already (built by hand, by Alembic, by an ORM).
 *
 * Owns: the command's checks (a new id, an empty plans directory),
 * writing the plan file the lifecycle reads from the catalog
 * (life_baseline.c), loading it back exactly as every later command will,
 * having it stamped complete, and saying what was recorded.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_graph.h"
#include "cli_new.h"
#include "lifecycle.h"
#include "util.h"

int zdm_cmd_baseline(zdm_cli *cli, zdm_err *err)
{
    const char *name = cli->npos ? cli->pos[0] : "baseline";
    if (!cli->db_url) {
        zdm_err_set(err, ZDM_EXIT_USAGE, "no database given");
        zdm_err_detail(err, "zdm baseline reads the schema of --db URL (or ZDM_DATABASE_URL)");
        return ZDM_EXIT_USAGE;
    }
    zdm_plan_set set = {0};
    if (access(cli->plans_dir, F_OK) == 0) {
        int rc = zdm_cli_load_plans(cli, NULL, 0, &set, err);
        if (rc != 0)
            return rc;
    }
    zdm_db *db = NULL;
    zdm_plan *plan = NULL;
    char *path = NULL;
    zdm_buf b = {0};
    zdm_strv heads = {0};
    int fd = -1, n = 0;
    char rev[512];
    int rc = zdm_plan_set_find(&set, name)
                 ? zdm_err_set(err, ZDM_EXIT_USAGE, "a plan with id %s exists already", name)
                 : 0;
    /* A baseline describes the whole schema, so on top of plans it would
     * recreate, on a fresh database, the tables those plans created just
     * before it, and fail there: a baseline only starts a plans directory. */
    if (rc == 0 && set.n > 0) {
        rc = zdm_err_set(err, ZDM_EXIT_USAGE, "%s already has %zu plan%s (first: %s); a baseline only starts an empty plans directory",
                         cli->plans_dir, set.n, set.n == 1 ? "" : "s", set.plans[0]->id);
        zdm_err_detail(err, "a baseline records the whole schema and would recreate those plans' objects on a fresh "
                            "database; write a change on top with \"zdm new NAME\"");
    }
    if (rc == 0) /* adopts a database that exists */
        rc = zdm_life_open(cli->db_url, ZDM_LIFE_OPEN_CHECK, cli->errs, NULL, &db, err);
    if (rc == 0)
        rc = zdm_new_plan_path(cli->plans_dir, name, &path, err);
    if (rc == 0) {
        zdm_plan_heads(&set, &heads);
        rc = zdm_life_baseline_text(db, &heads, &b, &n, rev, sizeof rev, err);
    }
    if (rc != 0)
        goto out;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = zdm_err_set(err, ZDM_EXIT_FAIL, "cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    ssize_t w = write(fd, b.data, b.len);
    if (close(fd) != 0 || w < 0 || (size_t)w != b.len) {
        rc = zdm_err_set(err, ZDM_EXIT_FAIL, "cannot write %s", path);
        unlink(path);
        goto out;
    }
    /* Load what was written, exactly as every later command will. */
    zdm_diags d = {0};
    rc = zdm_plan_load_file(path, &plan, &d);
    for (size_t i = 0; i < d.msgs.n; i++)
        fprintf(cli->errs, "%s\n", d.msgs.v[i]);
    zdm_diags_free(&d);
    if (rc != 0) {
        zdm_err_set(err, rc, "the baseline plan zdm wrote does not load (%s); it was removed", path);
        zdm_err_detail(err, "please report this with the messages above");
        unlink(path);
        goto out;
    }
    rc = zdm_life_baseline_record(db, plan, n, rev, err);
    if (rc != 0) {
        zdm_err_detail(err, "the plan file %s was written; once the database answers: zdm stamp %s complete",
                       path, plan->id);
        goto out;
    }
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "path", json_string(path));
        json_object_set_new(o, "id", json_string(plan->id));
        json_object_set_new(o, "objects", json_integer(n));
        json_object_set_new(o, "alembic_revision", rev[0] ? json_string(rev) : json_null());
        json_object_set_new(o, "phase", json_string("complete"));
        json_dumpf(o, cli->out, JSON_COMPACT);
        fputc('\n', cli->out);
        json_decref(o);
    } else {
        fprintf(cli->out, "%s\n", path);
        fprintf(cli->errs, "baseline: %d object%s recorded%s%s; %s stamped complete in %s\n", n, n == 1 ? "" : "s",
                rev[0] ? ", Alembic revision " : "", rev, plan->id, zdm_life_db_name(db));
    }
out:
    if (plan)
        zdm_plan_free(plan);
    zdm_strv_free(&heads);
    zdm_buf_free(&b);
    free(path);
    zdm_life_close(db);
    zdm_plan_set_free(&set);
    return rc;
}
