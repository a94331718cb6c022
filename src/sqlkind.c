/*
 * sqlkind.c -- what kind of statements a step holds, from PostgreSQL's own
 * parser (libpg_query), never from words in the text.
 *
 * Owns: deciding whether a step must run outside a transaction, and which
 * index a CREATE INDEX CONCURRENTLY builds (so a run that died after the
 * build but before recording it can tell a finished index from an INVALID
 * one).  SQL that PostgreSQL's grammar does not accept (a SQLite dialect
 * step) falls back to SQLite's one statement that cannot run in a
 * transaction, VACUUM, as the first word of a statement.
 */
#include "sqlkind.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static json_t *parse_tree(const char *sql)
{
    PgQueryParseResult pr = pg_query_parse(sql);
    json_t *tree = NULL;
    if (!pr.error) {
        json_error_t je;
        tree = json_loads(pr.parse_tree, 0, &je);
    }
    pg_query_free_parse_result(pr);
    return tree;
}

/* The one key of a node {"IndexStmt": {...}} and its value. */
static const char *node(const json_t *n, json_t **inner)
{
    *inner = NULL;
    if (!json_is_object(n) || json_object_size(n) != 1)
        return "";
    void *it = json_object_iter((json_t *)n);
    *inner = json_object_iter_value(it);
    return json_object_iter_key(it);
}

static int has_true(const json_t *o, const char *k)
{
    return json_is_true(json_object_get(o, k));
}

static int stmt_needs_autocommit(const json_t *stmt)
{
    json_t *in;
    const char *t = node(stmt, &in);
    if (!strcmp(t, "IndexStmt") || !strcmp(t, "DropStmt"))
        return has_true(in, "concurrent");
    if (!strcmp(t, "VacuumStmt"))
        return has_true(in, "is_vacuumcmd"); /* ANALYZE alone runs in a transaction */
    if (!strcmp(t, "ReindexStmt")) {
        const json_t *params = json_object_get(in, "params");
        for (size_t i = 0; i < json_array_size(params); i++) {
            json_t *d;
            if (!strcmp(node(json_array_get(params, i), &d), "DefElem") &&
                !strcasecmp(json_string_value(json_object_get(d, "defname")) ?: "", "concurrently"))
                return 1;
        }
    }
    if (!strcmp(t, "ReindexStmt") || !strcmp(t, "ClusterStmt")) {
        /* REINDEX SYSTEM/DATABASE and a CLUSTER of every table commit per table */
        const char *kind = json_string_value(json_object_get(in, "kind"));
        if (!strcmp(t, "ClusterStmt"))
            return !json_object_get(in, "relation");
        if (kind && (!strcmp(kind, "REINDEX_OBJECT_SYSTEM") || !strcmp(kind, "REINDEX_OBJECT_DATABASE")))
            return 1;
    }
    if (!strcmp(t, "AlterTableStmt")) { /* DETACH PARTITION ... CONCURRENTLY */
        const json_t *cmds = json_object_get(in, "cmds");
        for (size_t i = 0; i < json_array_size(cmds); i++) {
            json_t *c, *pc;
            if (!strcmp(node(json_array_get(cmds, i), &c), "AlterTableCmd") &&
                !strcmp(node(json_object_get(c, "def"), &pc), "PartitionCmd") && has_true(pc, "concurrent"))
                return 1;
        }
        return 0;
    }
    return !strcmp(t, "CreatedbStmt") || !strcmp(t, "DropdbStmt") || !strcmp(t, "AlterSystemStmt") ||
           !strcmp(t, "CreateTableSpaceStmt") || !strcmp(t, "DropTableSpaceStmt") ||
           !strcmp(t, "CreateSubscriptionStmt") || !strcmp(t, "AlterSubscriptionStmt") ||
           !strcmp(t, "DropSubscriptionStmt");
}

/* Unparseable as PostgreSQL: a statement starting with VACUUM (SQLite). */
static int sqlite_vacuum(const char *sql)
{
    const char *p = sql;
    int start = 1;
    while (*p) {
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && *p != q)
                p++;
            if (*p)
                p++;
            start = 0;
            continue;
        }
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
            continue;
        }
        if (*p == ';') {
            start = 1;
            p++;
            continue;
        }
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        if (start && strncasecmp(p, "VACUUM", 6) == 0 && !(isalnum((unsigned char)p[6]) || p[6] == '_'))
            return 1;
        start = 0;
        p++;
    }
    return 0;
}

int zdm_sql_needs_autocommit(const char *sql)
{
    if (!sql)
        return 0;
    json_t *tree = parse_tree(sql);
    if (!tree)
        return sqlite_vacuum(sql);
    const json_t *stmts = json_object_get(tree, "stmts");
    int need = 0;
    for (size_t i = 0; i < json_array_size(stmts) && !need; i++)
        need = stmt_needs_autocommit(json_object_get(json_array_get(stmts, i), "stmt"));
    json_decref(tree);
    return need;
}

int zdm_sql_concurrent_index(const char *sql, char **schema, char **name)
{
    *schema = *name = NULL;
    json_t *tree = sql ? parse_tree(sql) : NULL;
    if (!tree)
        return 0;
    const json_t *stmts = json_object_get(tree, "stmts");
    /* only a step that is that one statement: with more, a valid index
     * does not say the rest ran */
    for (size_t i = 0; json_array_size(stmts) == 1 && i < 1; i++) {
        json_t *in;
        if (strcmp(node(json_object_get(json_array_get(stmts, i), "stmt"), &in), "IndexStmt") != 0 ||
            !has_true(in, "concurrent"))
            continue;
        const char *idx = json_string_value(json_object_get(in, "idxname"));
        if (!idx)
            continue; /* unnamed: PostgreSQL picks the name */
        const char *sch = json_string_value(json_object_get(json_object_get(in, "relation"), "schemaname"));
        *name = zdm_xstrdup(idx);
        *schema = sch ? zdm_xstrdup(sch) : NULL;
    }
    json_decref(tree);
    return *name != NULL;
}

int zdm_sql_dropped_columns(const char *sql, zdm_strv *tables, zdm_strv *cols)
{
    json_t *tree = sql ? parse_tree(sql) : NULL;
    if (!tree)
        return 0;
    int found = 0;
    const json_t *stmts = json_object_get(tree, "stmts");
    for (size_t i = 0; i < json_array_size(stmts); i++) {
        json_t *in;
        const char *kind = node(json_object_get(json_array_get(stmts, i), "stmt"), &in);
        if (strcmp(kind, "RenameStmt") == 0) {
            /* RENAME COLUMN takes the old name away just as a drop does */
            const char *rt = json_string_value(json_object_get(in, "renameType"));
            const json_t *rrel = json_object_get(in, "relation");
            const char *rsch = json_string_value(json_object_get(rrel, "schemaname"));
            const char *rtbl = json_string_value(json_object_get(rrel, "relname"));
            const char *old = json_string_value(json_object_get(in, "subname"));
            if (rt && strcmp(rt, "OBJECT_COLUMN") == 0 && rtbl && old) {
                zdm_strv_push_owned(tables, rsch ? zdm_xasprintf("%s.%s", rsch, rtbl) : zdm_xstrdup(rtbl));
                zdm_strv_push(cols, old);
                found++;
            }
            continue;
        }
        if (strcmp(kind, "AlterTableStmt") != 0)
            continue;
        const json_t *rel = json_object_get(in, "relation");
        const char *sch = json_string_value(json_object_get(rel, "schemaname"));
        const char *tbl = json_string_value(json_object_get(rel, "relname"));
        const json_t *cmds = json_object_get(in, "cmds");
        for (size_t j = 0; tbl && j < json_array_size(cmds); j++) {
            json_t *c;
            if (strcmp(node(json_array_get(cmds, j), &c), "AlterTableCmd") != 0)
                continue;
            const char *sub = json_string_value(json_object_get(c, "subtype"));
            const char *name = json_string_value(json_object_get(c, "name"));
            if (!sub || strcmp(sub, "AT_DropColumn") != 0 || !name)
                continue;
            char *t = sch ? zdm_xasprintf("%s.%s", sch, tbl) : zdm_xstrdup(tbl);
            zdm_strv_push_owned(tables, t);
            zdm_strv_push(cols, name);
            found++;
        }
    }
    json_decref(tree);
    return found;
}
