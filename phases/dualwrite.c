/*
 * dualwrite.c -- the dual-write triggers that keep old and new columns
 * consistent while both application versions write, and the choice of
 * the backfill key.
 *
 * Direction is decided per row from what the statement changed:
 *  - forward (old app): the targets of set.* were not written, so they are
 *    computed from the old columns (on INSERT: when they are NULL);
 *  - reverse (new app): a target was written but the reverse.* columns
 *    were not, so those are computed from the new columns.
 * PostgreSQL does this in one BEFORE ROW trigger (assigning NEW, so no
 * second write and no recursion).  SQLite cannot assign NEW, so it uses
 * AFTER triggers that UPDATE the row; each WHEN clause also requires the
 * row to be inconsistent, so the UPDATE a trigger makes never re-fires the
 * opposite direction (given reverse undoes set, as it must).
 *
 * The backfill itself must never fire the reverse direction: it marks its
 * own transaction (PostgreSQL: the transaction-local setting zdm.backfill;
 * SQLite: a row in zdm_guard that only its own uncommitted transaction can
 * see), and the triggers step aside for it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "backfill.h"
#include "dialect.h"
#include "dwsql.h"
#include "mutant.h"

/* Trigger/function name base, within PostgreSQL's 63-byte names. */
void zdm_dw_name_base(const zdm_plan *plan, char *out, size_t size)
{
    if (strlen(plan->id) <= 40) {
        snprintf(out, size, "zdm_dw_%s", plan->id);
        return;
    }
    char h[65];
    zdm_sha256_hex(plan->id, strlen(plan->id), h);
    snprintf(out, size, "zdm_dw_%.32s_%.8s", plan->id, h);
}

char *zdm_dw_rewrite(zdm_db *db, const char *expr, const zdm_strv *cols, const char *prefix)
{
    return zdm_dwsql_rewrite(zdm_db_dialect(db), expr, cols, prefix);
}

static int listed(const zdm_strv *l, const char *name)
{
    return zdm_dwsql_in_list(l, name, strlen(name), 1);
}

void zdm_dw_columns_add(const zdm_plan *plan, zdm_strv *cols)
{
    const zdm_backfill *b = plan->backfill;
    for (size_t i = 0; i < b->nset; i++)
        if (!listed(cols, b->set[i].column))
            zdm_strv_push(cols, b->set[i].column);
    for (size_t i = 0; i < b->nreverse; i++)
        if (!listed(cols, b->reverse[i].column))
            zdm_strv_push(cols, b->reverse[i].column);
    for (size_t i = 0; i < b->dw_sources.n; i++)
        if (!listed(cols, b->dw_sources.v[i]))
            zdm_strv_push(cols, b->dw_sources.v[i]);
}

int zdm_dw_in_place(const zdm_backfill *b)
{
    return b->where && !b->nreverse && !b->dw_sources.n;
}

const char *zdm_dw_mode(const zdm_backfill *b)
{
    if (!b->dual_write)
        return "off";
    if (zdm_dw_in_place(b))
        return "in_place";
    return b->nreverse ? "two_way" : "one_way";
}

int zdm_dw_names(const char *where, const char *col)
{
    size_t n = strlen(col);
    for (const char *p = where; *p; p++) {
        if (strncasecmp(p, col, n) != 0)
            continue;
        int before = p == where || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        int after = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (before && after)
            return 1;
    }
    return 0;
}

void zdm_dw_describe(const zdm_backfill *b, zdm_strv *lines)
{
    const char *mode = zdm_dw_mode(b);
    const char *rows = b->where ? "a row whose new values match where" : "a row";
    if (strcmp(mode, "off") == 0) {
        zdm_strv_push(lines, "no triggers: rows the applications write during the backfill are converted "
                             "only if the backfill reaches them after the write");
        return;
    }
    char line[512];
    if (strcmp(mode, "in_place") == 0) {
        zdm_strv_push(lines, "in-place fix: every INSERT and UPDATE whose new row matches where is converted "
                             "by the trigger, whoever wrote it");
    } else {
        snprintf(line, sizeof line, "forward: %s is converted when an INSERT leaves the targets NULL, or an "
                                    "UPDATE%s%s leaves them unchanged",
                 rows, b->dw_sources.n ? " of the sources" : "", b->dw_sources.n ? "" : " of any column");
        zdm_strv_push(lines, line);
        if (!strcmp(mode, "two_way")) {
            snprintf(line, sizeof line, "reverse: when a write gives the targets, %s gets its reverse.* "
                                        "columns derived from them", rows);
            zdm_strv_push(lines, line);
        } else {
            zdm_strv_push(lines, "a write that gives the targets itself keeps them (one-way: no reverse.*)");
        }
    }
    if (b->where) {
        zdm_strv_push(lines, "rows outside where are never written by zdm, whatever the applications do");
        for (size_t i = 0; strcmp(mode, "in_place") != 0 && i < b->nset; i++)
            if (zdm_dw_names(b->where, b->set[i].column)) {
                snprintf(line, sizeof line,
                         "note: where names the target %s: once converted, a row leaves where and later "
                         "writes to it are no longer followed; leave where out to follow every write",
                         b->set[i].column);
                zdm_strv_push(lines, line);
                break;
            }
    }
}

/* A two-way plan without sources: the table's columns that set.* and
 * where read stand for them, where every one of those reads the row alone
 * (else none: the forward UPDATE trigger fires for any column but the
 * targets).  Without them, an UPDATE of any other column (an application
 * trigger touching updated_at after the new version wrote a target, and
 * before the reverse trigger ran: SQLite fires the newest trigger first;
 * PostgreSQL's AFTER triggers run after both BEFORE ones) converted the
 * row forward again, from the old column, over the new version's write. */
static char *folded(const zdm_dialect *d, const char *name)
{
    char *f = zdm_xstrdup(name);
    for (char *c = f; !d->pg_grammar && *c; c++) /* SQLite's names ignore case: Name is name */
        *c = (char)tolower((unsigned char)*c);
    return f;
}

static void derived_sources(const zdm_dialect *d, const zdm_backfill *b, const zdm_table_facts *facts,
                            const zdm_strv *cols, zdm_strv *out)
{
    zdm_strv fcols = {0};
    for (size_t i = 0; i < cols->n; i++)
        zdm_strv_push_owned(&fcols, folded(d, cols->v[i]));
    int local = zdm_dwsql_assign_row_local(d, b->set, b->nset, &fcols, 0) &&
                (!b->where || zdm_dwsql_row_local(b->where, &fcols));
    zdm_strv_free(&fcols);
    if (!b->nreverse || b->dw_sources.n || !local)
        return;
    for (size_t i = 0; i < facts->ncols; i++) {
        zdm_strv one = {0};
        zdm_strv_push_owned(&one, folded(d, facts->cols[i].name));
        int reads = b->where && zdm_dwsql_reads(b->where, &one);
        for (size_t k = 0; !reads && k < b->nset; k++)
            reads = zdm_dwsql_reads(b->set[k].expr, &one);
        for (size_t k = 0; reads && k < b->nset; k++)
            reads = !zdm_dwsql_in_list(&one, b->set[k].column, strlen(b->set[k].column), 1);
        if (reads)
            zdm_strv_push(out, facts->cols[i].name);
        zdm_strv_free(&one);
    }
}

int zdm_dw_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *key, const zdm_table_facts *given,
               char **create, char **drop, zdm_err *err)
{
    *create = *drop = NULL;
    if (!plan->backfill || !plan->backfill->nset)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s has no backfill to dual-write", plan->id);
    /* the table's columns, and its own triggers, in one catalog read (the
     * preflight's, under expand's lock, where it has read them) */
    zdm_table_facts own = {0};
    if (!given) {
        int rc = zdm_db_dialect(db)->table_facts(db, plan->backfill->table, &own, err);
        if (rc != 0)
            return rc;
    }
    const zdm_table_facts *facts = given ? given : &own;
    zdm_strv cols = {0}, text_cmp = {0}, exact_cmp = {0};
    for (size_t i = 0; i < facts->ncols; i++) {
        zdm_strv_push(&cols, facts->cols[i].name);
        if (facts->cols[i].no_equality)
            zdm_strv_push(&text_cmp, facts->cols[i].name);
        if (facts->cols[i].exact_equality)
            zdm_strv_push(&exact_cmp, facts->cols[i].name);
    }
    zdm_dw_columns_add(plan, &cols);
    char base[80];
    zdm_dw_name_base(plan, base, sizeof base);
    const zdm_backfill *b = plan->backfill;
    zdm_strv derived = {0};
    derived_sources(zdm_db_dialect(db), b, facts, &cols, &derived);
    zdm_dw_spec spec = {
        .plan_id = plan->id,
        .table = b->table,
        .base = base,
        .set = b->set,
        .nset = b->nset,
        .reverse = b->reverse,
        .nreverse = b->nreverse,
        .sources = derived.n ? &derived : &b->dw_sources,
        .where = zdm_mutant("trigger_no_where") ? NULL : b->where,
        .in_place = zdm_dw_in_place(b),
        .reverse_on_insert = b->reverse_on_insert,
        .any_update = facts->before_update,
        .text_cmp = &text_cmp,
        .exact_cmp = &exact_cmp,
        .cols = &cols,
        .key = key,
    };
    zdm_buf c = {0}, d = {0};
    zdm_db_dialect(db)->dw_triggers(zdm_db_dialect(db), &spec, &c, &d);
    zdm_strv_free(&cols);
    zdm_strv_free(&text_cmp);
    zdm_strv_free(&exact_cmp);
    zdm_strv_free(&derived);
    zdm_table_facts_free(&own);
    *create = zdm_buf_take(&c);
    *drop = zdm_buf_take(&d);
    return 0;
}

int zdm_dw_step(zdm_db *db, const zdm_plan *plan, int for_contract, zdm_step *step, zdm_err *err)
{
    memset(step, 0, sizeof *step);
    zdm_strv key = {0};
    int rc = 0;
    /* SQLite's triggers address rows by key; PostgreSQL's do not need it,
     * and the table may not exist yet when a dry run prints the SQL. */
    if (zdm_db_dialect(db)->dw_needs_key)
        rc = zdm_backfill_key(db, plan, &key, err);
    char *create = NULL, *drop = NULL;
    if (rc == 0)
        rc = zdm_dw_sql(db, plan, &key, NULL, &create, &drop, err);
    zdm_strv_free(&key);
    if (rc != 0)
        return rc;
    step->index = for_contract ? 0 : (int)plan->nexpand + 1;
    step->name = zdm_xstrdup(for_contract ? "remove dual-write triggers" : "install dual-write triggers");
    step->sql = for_contract ? drop : create;
    step->down = for_contract ? create : drop;
    step->transaction = 1;
    step->lock_timeout_ms = -1;
    step->statement_timeout_ms = -1;
    step->lock_retries = -1;
    step->line = plan->backfill->line;
    step->col = plan->backfill->col;
    return 0;
}

void zdm_dw_step_free(zdm_step *step)
{
    free(step->name);
    free(step->sql);
    free(step->down);
    memset(step, 0, sizeof *step);
}

/* ---- the backfill key ---- */

static int refuse_key(const zdm_plan *plan, const zdm_key_refusal *why, zdm_err *err)
{
    const zdm_backfill *b = plan->backfill;
    zdm_err_set(err, ZDM_EXIT_REFUSED, "backfill of %s cannot walk table %s: %s", plan->id, b->table, why->why);
    zdm_err_reason(err, why->reason);
    zdm_err_detail(err, "add a primary key (ALTER TABLE %s ADD PRIMARY KEY (id)), or a unique index on "
                        "NOT NULL columns and name them in [backfill] key = [\"...\"]; nothing was changed",
                   b->table);
    return ZDM_EXIT_REFUSED;
}

int zdm_backfill_key(zdm_db *db, const zdm_plan *plan, zdm_strv *key, zdm_err *err)
{
    if (!plan->backfill)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "plan %s has no [backfill]", plan->id);
    zdm_key_refusal refused;
    int rc = zdm_db_dialect(db)->key_of(db, plan->backfill->table, &plan->backfill->key, key, &refused, err);
    if (rc == 0 && refused.why)
        rc = refuse_key(plan, &refused, err);
    return rc;
}
