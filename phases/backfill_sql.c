/*
 * backfill_sql.c -- the SQL a backfill worker runs against the user's
 * table, built once per worker.
 *
 * Owns: key tuples as JSON arrays of text (the cursor and bound format of
 * zdm's ranges table), the batch statements in the two forms a dialect
 * asks for (batch_one_statement: one statement that finds and converts a
 * batch; else a peek at the batch's last key, then the UPDATE up to it),
 * the integer-span statements, the first and last key of the table (the
 * split), the keys of a range counted and its middle key (an idle
 * worker's split), and the "rows still to convert" statements of the
 * final check.
 * Values are always $N parameters; identifiers are quoted by the driver.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_int.h"

/* ---- key tuples as JSON arrays of text ---- */

char *zdm_bf_key_json(const zdm_rows *r, int row, int ncols)
{
    json_t *a = json_array();
    for (int i = 0; i < ncols; i++)
        json_array_append_new(a, json_string(zdm_rows_get(r, row, i)));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

/* Appends the values of a JSON key tuple to params (borrowed from j). */
int zdm_bf_key_params(const char *txt, json_t **j, const char **params, int *np, size_t nkey,
                      zdm_err *err)
{
    json_error_t je;
    *j = json_loads(txt, 0, &je);
    if (!*j || !json_is_array(*j) || json_array_size(*j) != nkey)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "corrupt key tuple %s in zdm's ranges table", txt);
    for (size_t i = 0; i < nkey; i++)
        params[(*np)++] = json_string_value(json_array_get(*j, i));
    return 0;
}

/* ---- SQL built once per worker ---- */

void zdm_bf_cols_list(worker *w, zdm_buf *b, const char *suffix)
{
    for (size_t i = 0; i < w->key.n; i++) {
        char *q = zdm_db_ident(w->db, w->key.v[i]);
        zdm_buf_printf(b, "%s%s%s", i ? ", " : "", q, suffix);
        free(q);
    }
}

/* "(k1, k2) > ($a, $b)" with params starting at `first`.  An integer key
 * takes its bound in the dialect's span_param form, as the span
 * statements do: on SQLite a bound given as text was converted again for
 * every row it was compared with, 400,000 sqlite3AtoF calls in a 1M-row
 * backfill (4 % of its instructions, callgrind). */
static void key_cmp(worker *w, zdm_buf *b, const char *op, int first)
{
    int multi = w->key.n > 1;
    const char *fmt = w->int_key && !multi && w->d->span_param ? w->d->span_param : "$%d";
    zdm_buf_puts(b, multi ? "(" : "");
    zdm_bf_cols_list(w, b, "");
    zdm_buf_printf(b, "%s %s %s", multi ? ")" : "", op, multi ? "(" : "");
    for (size_t i = 0; i < w->key.n; i++) {
        zdm_buf_puts(b, i ? ", " : "");
        zdm_buf_printf(b, fmt, first + (int)i);
    }
    zdm_buf_puts(b, multi ? ")" : "");
}

/* "SELECT k FROM t WHERE [k > cursor AND] k <= bound ORDER BY k LIMIT $1":
 * the keys of the next batch.  Cursor params start at $2. */
void zdm_bf_batch_keys(worker *w, zdm_buf *b, int with_cursor)
{
    zdm_buf_puts(b, "SELECT ");
    zdm_bf_cols_list(w, b, "");
    zdm_buf_printf(b, " FROM %s WHERE ", w->tbl);
    if (with_cursor) {
        key_cmp(w, b, ">", 2);
        zdm_buf_puts(b, " AND ");
    }
    key_cmp(w, b, "<=", with_cursor ? 2 + (int)w->key.n : 2);
    zdm_buf_puts(b, " ORDER BY ");
    zdm_bf_cols_list(w, b, "");
    zdm_buf_puts(b, " LIMIT $1");
}

/* "UPDATE t SET c = (expr), ..." */
void zdm_bf_update_set(worker *w, zdm_buf *b)
{
    const zdm_backfill *bf = w->plan->backfill;
    zdm_buf_printf(b, "UPDATE %s SET ", w->tbl);
    for (size_t i = 0; i < bf->nset; i++) {
        char *q = zdm_db_ident(w->db, bf->set[i].column);
        zdm_buf_printf(b, "%s%s = (%s)", i ? ", " : "", q, bf->set[i].expr);
        free(q);
    }
}

/* "UPDATE t SET c = (expr), ... WHERE " */
static void update_head(worker *w, zdm_buf *b)
{
    zdm_bf_update_set(w, b);
    zdm_buf_puts(b, " WHERE ");
}

/* "(expr)", or "CAST((expr) AS type)" where the target's type is known:
 * the value the UPDATE stores, which is what a converted row holds.  The
 * expression as it is compared unequal to it wherever the assignment
 * converts (a timestamptz stored in a date column, numeric rounded to
 * numeric(5,2)): every such row looked unconverted to the final check, the
 * backfill ended "rows still need conversion" with every row right, and
 * the plan stayed expanded. */
static void set_value(worker *w, zdm_buf *b, size_t i)
{
    const char *expr = w->plan->backfill->set[i].expr;
    if (w->set_type && w->set_type[i])
        zdm_buf_printf(b, "CAST((%s) AS %s)", expr, w->set_type[i]);
    else
        zdm_buf_printf(b, "(%s)", expr);
}

/* The rows a batch converts.  With a `where`, the plan names them itself
 * (typically "target IS NULL", which already leaves out the rows the
 * triggers converted).  Without one, rows whose targets already equal the
 * set expressions -- written by the triggers, or by an earlier run -- are
 * skipped: no dead tuple, no WAL for them.  (Only then is each expression
 * evaluated twice per row.) */
static void update_filter(worker *w, zdm_buf *b)
{
    const zdm_backfill *bf = w->plan->backfill;
    if (bf->where) {
        zdm_buf_printf(b, " AND (%s)", bf->where);
        return;
    }
    zdm_buf_puts(b, " AND (");
    for (size_t i = 0; i < bf->nset; i++) {
        char *q = zdm_db_ident(w->db, bf->set[i].column);
        zdm_buf_printf(b, "%s%s %s ", i ? " OR " : "", q, w->d->distinct);
        set_value(w, b, i);
        free(q);
    }
    zdm_buf_puts(b, ")");
}

/* " WHERE [(where) AND] (t1 IS DISTINCT FROM (e1) OR ...)": the rows that
 * still need conversion under the row rule.  A row matching `where` whose
 * targets already hold their values needs nothing, so a `where` that
 * selects rows (rather than naming the work left) still lets the check
 * pass once they are converted.  With a `where`, a target still NULL
 * counts as not converted even when its expression gives NULL: that is
 * the "where = new IS NULL, set gives NULL for some rows" mistake, which
 * would leave the rows to the contract's verify or NOT NULL. */
void zdm_bf_needs_conversion(worker *w, zdm_buf *b)
{
    const zdm_backfill *bf = w->plan->backfill;
    zdm_buf_puts(b, " WHERE ");
    if (bf->where)
        zdm_buf_printf(b, "(%s) AND ", bf->where);
    zdm_buf_puts(b, "(");
    for (size_t i = 0; i < bf->nset; i++) {
        char *q = zdm_db_ident(w->db, bf->set[i].column);
        zdm_buf_printf(b, "%s%s %s ", i ? " OR " : "", q, w->d->distinct);
        set_value(w, b, i);
        if (bf->where)
            zdm_buf_printf(b, " OR %s IS NULL", q);
        free(q);
    }
    zdm_buf_puts(b, ")");
}

/* One statement: the batch's keys are read once, its rows converted, and
 * its last key and counts returned.  $1 = batch size, then the cursor (if
 * any), then the range's bound. */
static char *one_statement(worker *w, int with_cursor)
{
    int multi = w->key.n > 1;
    zdm_buf b = {0};
    zdm_buf_puts(&b, "WITH zdm_batch AS MATERIALIZED (");
    zdm_bf_batch_keys(w, &b, with_cursor);
    zdm_buf_puts(&b, "), zdm_last AS (SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, " FROM zdm_batch ORDER BY ");
    zdm_bf_cols_list(w, &b, " DESC");
    zdm_buf_puts(&b, " LIMIT 1), zdm_upd AS (");
    update_head(w, &b);
    if (with_cursor) {
        key_cmp(w, &b, ">", 2);
        zdm_buf_puts(&b, " AND ");
    }
    zdm_buf_puts(&b, multi ? "(" : "");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, multi ? ")" : "");
    zdm_buf_puts(&b, " <= (SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, " FROM zdm_last)");
    update_filter(w, &b);
    zdm_buf_puts(&b, " RETURNING 1) SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, ", (SELECT count(*) FROM zdm_batch), (SELECT count(*) FROM zdm_upd) FROM zdm_last");
    return zdm_buf_take(&b);
}

/* The span batch that never waits on the application's row locks: the
 * rows of ($1, $2] to convert are locked with the dialect's SKIP LOCKED
 * suffix and converted.  The rows it passed over (there, in the statement's
 * snapshot, and not locked by it) come back as runs: keys in a row with no
 * converted row between them, so a revisit of (first - 1, last] of a run
 * writes no row this batch converted (exactly once even when converted
 * rows still match the filter, as with set n = n + 1).  Rows: first
 * (0, rows converted, NULL, NULL), then one (1, rows, first, last) a run. */
static void span_skip_statement(worker *w)
{
    zdm_buf b = {0};
    char *k = zdm_db_ident(w->db, w->key.v[0]);
    zdm_buf_puts(&b, "/* zdm backfill */ WITH zdm_mine AS MATERIALIZED (SELECT ");
    zdm_buf_printf(&b, "%s FROM %s WHERE ", k, w->tbl);
    key_cmp(w, &b, ">", 1);
    zdm_buf_puts(&b, " AND ");
    key_cmp(w, &b, "<=", 2);
    update_filter(w, &b);
    zdm_buf_printf(&b, "%s), zdm_upd AS (", w->d->lock_row_skip_locked);
    zdm_bf_update_set(w, &b);
    /* the span again: the rows are found by the key's index, never by a
     * scan of the table joined to zdm_mine */
    zdm_buf_puts(&b, " WHERE ");
    key_cmp(w, &b, ">", 1);
    zdm_buf_puts(&b, " AND ");
    key_cmp(w, &b, "<=", 2);
    zdm_buf_printf(&b, " AND %s IN (SELECT %s FROM zdm_mine) RETURNING 1), ", k, k);
    zdm_buf_printf(&b, "zdm_seen AS (SELECT %s AS k, %s NOT IN (SELECT %s FROM zdm_mine) AS passed FROM %s WHERE ", k, k,
                   k, w->tbl);
    key_cmp(w, &b, ">", 1);
    zdm_buf_puts(&b, " AND ");
    key_cmp(w, &b, "<=", 2);
    update_filter(w, &b);
    zdm_buf_puts(&b, "), zdm_runs AS (SELECT k, passed, count(*) FILTER (WHERE NOT passed) OVER (ORDER BY k) AS run "
                     "FROM zdm_seen) "
                     "SELECT 0 AS o, (SELECT count(*) FROM zdm_upd), NULL, NULL UNION ALL "
                     "SELECT 1, count(*), min(k), max(k) FROM zdm_runs WHERE passed GROUP BY run ORDER BY 1");
    free(k);
    w->span_skip_sql = zdm_buf_take(&b);
    /* The cheap first look: lock the span's rows to convert, passing over
     * those held, and count both.  Equal (the usual case): every row is
     * this batch's, and the plain span_sql converts them without waiting;
     * a join of the UPDATE to the locked keys, as above, doubles a batch. */
    zdm_buf_puts(&b, "/* zdm backfill */ WITH zdm_mine AS MATERIALIZED (SELECT 1 FROM ");
    zdm_buf_printf(&b, "%s WHERE ", w->tbl);
    key_cmp(w, &b, ">", 1);
    zdm_buf_puts(&b, " AND ");
    key_cmp(w, &b, "<=", 2);
    update_filter(w, &b);
    zdm_buf_printf(&b, "%s) SELECT (SELECT count(*) FROM zdm_mine), count(*) FROM %s WHERE ", w->d->lock_row_skip_locked,
                   w->tbl);
    key_cmp(w, &b, ">", 1);
    zdm_buf_puts(&b, " AND ");
    key_cmp(w, &b, "<=", 2);
    update_filter(w, &b);
    w->span_lock_sql = zdm_buf_take(&b);
}

/* "k > $1 AND k <= $2" of a span statement, each bound in the dialect's
 * span_param form. */
static void span_cmp(worker *w, zdm_buf *b)
{
    const char *fmt = w->d->span_param ? w->d->span_param : "$%d";
    char *k = zdm_db_ident(w->db, w->key.v[0]);
    zdm_buf_printf(b, "%s > ", k);
    zdm_buf_printf(b, fmt, 1);
    zdm_buf_printf(b, " AND %s <= ", k);
    zdm_buf_printf(b, fmt, 2);
    free(k);
}

/* One key column, past a range's first batch: convert the span of key
 * values ($1, $2], and find the next key after an empty span. */
static void span_statements(worker *w)
{
    zdm_buf b = {0};
    /* the comment names zdm: the latency probe's reading of
     * pg_stat_statements leaves zdm's statements out (the one-statement
     * batch names zdm_batch already) */
    zdm_buf_puts(&b, "/* zdm backfill */ ");
    update_head(w, &b);
    span_cmp(w, &b);
    update_filter(w, &b);
    w->span_sql = zdm_buf_take(&b);
    zdm_buf_puts(&b, "/* zdm backfill */ SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_printf(&b, " FROM %s WHERE ", w->tbl);
    span_cmp(w, &b);
    zdm_buf_puts(&b, " ORDER BY ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, " LIMIT 1");
    w->next_key_sql = zdm_buf_take(&b);
    if (w->d->lock_row_skip_locked && w->d->lock_row_skip_locked[0])
        span_skip_statement(w);
}

/* "SELECT k[, extra] FROM (the batch's keys) zdm_batch ORDER BY k DESC
 * LIMIT 1": where a batch ends. */
static char *last_key(worker *w, int with_cursor, const char *extra)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, "SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_printf(&b, "%s FROM (", extra);
    zdm_bf_batch_keys(w, &b, with_cursor);
    zdm_buf_puts(&b, ") zdm_batch ORDER BY ");
    zdm_bf_cols_list(w, &b, " DESC");
    zdm_buf_puts(&b, " LIMIT 1");
    return zdm_buf_take(&b);
}

/* One key column: where the batch's size-th key is, found by stepping
 * over the keys (LIMIT 1 OFFSET size - 1: SQLite reads no column but the
 * key, stores and sorts nothing); only where fewer keys are left (the
 * range's last batch) are they counted, streamed through max()/count()
 * (the compound's LIMIT 1 stops before that part when the first found
 * its key).  On SQLite a ninth of the window form's time (1M rows: 0.05
 * s against 0.49 s), which was a third of the whole backfill's.  max()
 * orders as ORDER BY does. */
static char *last_key_one(worker *w, int with_cursor)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, "SELECT * FROM (SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, ", $1 FROM (");
    zdm_bf_batch_keys(w, &b, with_cursor);
    zdm_buf_puts(&b, " OFFSET $1 - 1) UNION ALL SELECT max(");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, "), count(*) FROM (");
    zdm_bf_batch_keys(w, &b, with_cursor);
    zdm_buf_puts(&b, ") zdm_batch HAVING count(*) > 0) LIMIT 1");
    return zdm_buf_take(&b);
}

/* Two statements (no data-modifying WITH): peek at the batch's last key
 * and size, then update every row from the cursor up to it. */
static void peek_update(worker *w, int with_cursor)
{
    w->peek_sql[with_cursor] = w->key.n == 1 ? last_key_one(w, with_cursor)
                                             : last_key(w, with_cursor, ", count(*) OVER ()");
    zdm_buf b = {0};
    update_head(w, &b);
    if (with_cursor) {
        key_cmp(w, &b, ">", 1);
        zdm_buf_puts(&b, " AND ");
    }
    key_cmp(w, &b, "<=", with_cursor ? 1 + (int)w->key.n : 1);
    update_filter(w, &b);
    w->update_sql[with_cursor] = zdm_buf_take(&b);
}

void zdm_bf_build_sql(worker *w)
{
    const zdm_backfill *bf = w->plan->backfill;
    if (w->d->column_type && !w->set_type) {
        w->set_type = calloc(bf->nset ? bf->nset : 1, sizeof *w->set_type);
        for (size_t i = 0; w->set_type && i < bf->nset; i++)
            w->set_type[i] = w->d->column_type(w->db, bf->table, bf->set[i].column);
    }
    for (int with_cursor = 0; with_cursor < 2; with_cursor++) {
        if (w->d->batch_one_statement)
            w->combo_sql[with_cursor] = one_statement(w, with_cursor);
        else
            peek_update(w, with_cursor);
    }
    /* the span of key values: for a key that holds only integers
     * (w->int_key, the dialect's integer_key) */
    if (w->key.n == 1 && w->int_key)
        span_statements(w);
}

void zdm_bf_free_sql(worker *w)
{
    for (int i = 0; i < 2; i++) {
        free(w->peek_sql[i]);
        free(w->update_sql[i]);
        free(w->combo_sql[i]);
        w->peek_sql[i] = w->update_sql[i] = w->combo_sql[i] = NULL;
    }
    for (size_t i = 0; w->set_type && i < w->plan->backfill->nset; i++)
        free(w->set_type[i]);
    free(w->set_type);
    w->set_type = NULL;
    free(w->span_sql);
    free(w->next_key_sql);
    free(w->span_skip_sql);
    free(w->span_lock_sql);
    w->span_sql = w->next_key_sql = w->span_skip_sql = w->span_lock_sql = NULL;
}

char *zdm_bf_sql_last_key(worker *w, int with_cursor)
{
    return last_key(w, with_cursor, "");
}

/* "[k > cursor AND] k <= bound": cursor params from $first, then the
 * bound's. */
static void key_span(worker *w, zdm_buf *b, int with_cursor, int first)
{
    if (with_cursor) {
        key_cmp(w, b, ">", first);
        zdm_buf_puts(b, " AND ");
    }
    key_cmp(w, b, "<=", with_cursor ? first + (int)w->key.n : first);
}

char *zdm_bf_sql_count_keys(worker *w, int with_cursor)
{
    zdm_buf b = {0};
    zdm_buf_printf(&b, "SELECT count(*) FROM %s WHERE ", w->tbl);
    key_span(w, &b, with_cursor, 1);
    return zdm_buf_take(&b);
}

char *zdm_bf_sql_key_at(worker *w, int with_cursor)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, "SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_printf(&b, " FROM %s WHERE ", w->tbl);
    key_span(w, &b, with_cursor, 1);
    zdm_buf_puts(&b, " ORDER BY ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_printf(&b, " LIMIT 1 OFFSET $%d", (with_cursor ? 2 : 1) * (int)w->key.n + 1);
    return zdm_buf_take(&b);
}

char *zdm_bf_sql_edge(worker *w, int last)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, "SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_printf(&b, " FROM %s ORDER BY ", w->tbl);
    zdm_bf_cols_list(w, &b, last ? " DESC" : "");
    zdm_buf_puts(&b, " LIMIT 1");
    return zdm_buf_take(&b);
}

char *zdm_bf_sql_unconverted(worker *w, int keys)
{
    zdm_buf b = {0};
    if (!keys) {
        zdm_buf_printf(&b, "SELECT count(*) FROM %s", w->tbl);
        zdm_bf_needs_conversion(w, &b);
        return zdm_buf_take(&b);
    }
    zdm_buf_puts(&b, "SELECT ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_printf(&b, " FROM %s", w->tbl);
    zdm_bf_needs_conversion(w, &b);
    zdm_buf_puts(&b, " ORDER BY ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_printf(&b, " LIMIT %d", keys);
    return zdm_buf_take(&b);
}

char *zdm_bf_sql_sweep(worker *w, int nkeys)
{
    const zdm_backfill *bf = w->plan->backfill;
    int multi = w->key.n > 1, n = 0;
    zdm_buf b = {0};
    zdm_buf_puts(&b, "/* zdm backfill */ ");
    zdm_bf_update_set(w, &b);
    zdm_bf_needs_conversion(w, &b);
    /* with a where, a NULL target is still to convert: a row whose
     * expression gives NULL would be written for nothing */
    for (size_t i = 0; bf->where && i < bf->nset; i++)
        zdm_buf_printf(&b, " AND (%s) IS NOT NULL", bf->set[i].expr);
    zdm_buf_puts(&b, multi ? " AND (" : " AND ");
    zdm_bf_cols_list(w, &b, "");
    zdm_buf_puts(&b, multi ? ") IN (" : " IN (");
    for (int i = 0; i < nkeys; i++) {
        zdm_buf_puts(&b, i ? ", " : "");
        zdm_buf_puts(&b, multi ? "(" : "");
        for (size_t c = 0; c < w->key.n; c++)
            zdm_buf_printf(&b, "%s$%d", c ? ", " : "", ++n);
        zdm_buf_puts(&b, multi ? ")" : "");
    }
    zdm_buf_puts(&b, ")");
    return zdm_buf_take(&b);
}

int zdm_backfill_int_key(zdm_db *db, const char *table, const zdm_strv *key)
{
    const zdm_dialect *d = zdm_db_dialect(db);
    return key->n == 1 && d->integer_key && d->integer_key(db, table, key->v[0]);
}

int zdm_backfill_batch_sql(zdm_db *db, const zdm_plan *plan, const zdm_strv *key, int int_key, zdm_strv *out)
{
    worker w;
    memset(&w, 0, sizeof w);
    w.db = db;
    w.plan = plan;
    w.d = zdm_db_dialect(db);
    for (size_t i = 0; i < key->n; i++)
        zdm_strv_push(&w.key, key->v[i]);
    w.tbl = zdm_db_ident_path(db, plan->backfill->table);
    /* every statement a worker with this key runs */
    w.int_key = int_key && key->n == 1;
    zdm_bf_build_sql(&w);
    const char *all[] = {w.combo_sql[0], w.combo_sql[1], w.peek_sql[0], w.peek_sql[1], w.update_sql[0],
                         w.update_sql[1], w.span_sql, w.next_key_sql, w.span_skip_sql, w.span_lock_sql};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            zdm_strv_push(out, all[i]);
    zdm_strv_push_owned(out, zdm_bf_sql_unconverted(&w, 0));
    zdm_bf_free_sql(&w);
    free(w.tbl);
    zdm_strv_free(&w.key);
    return 0;
}
