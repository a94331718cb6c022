/*
 * test_backfill_sql.c -- the backfill's batch SQL (phases/backfill_sql.c)
 * for both dialects, as zdm_backfill_batch_sql hands it to preflight.
 *
 * What must hold whatever the key: a batch reads its keys strictly after
 * the cursor and never past the range's bound, ordered by the key and
 * LIMITed by the batch size ($1); the UPDATE converts only rows up to the
 * batch's last key (the range guard) and only rows the plan's `where`
 * selects, that `where` kept whole in parentheses (an OR in it must not
 * escape the guard); and every $N a statement names is one the worker
 * passes, with no gap.
 *
 * The drivers quote identifiers; no server is needed to build SQL, so the
 * PostgreSQL driver here is the real one with SQLite's (connection-free)
 * quoting, which writes the same "..." form for these names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backfill.h"
#include "db.h"

static zdm_db_ops pg_ops;

/* A database handle of the given driver, not connected. */
static void fake_db(zdm_db *db, zdm_db_kind kind)
{
    memset(db, 0, sizeof *db);
    pg_ops = zdm_db_pg_ops;
    pg_ops.ident = zdm_db_sqlite_ops.ident; /* PQescapeIdentifier needs a connection */
    db->ops = kind == ZDM_DB_PG ? &pg_ops : &zdm_db_sqlite_ops;
}

static void build_key(zdm_db_kind kind, const char *const *key, size_t nkey, int int_key, const char *where,
                      zdm_strv *out)
{
    static zdm_assign set[] = {{.column = "new_total", .expr = "price * qty"}};
    zdm_backfill bf;
    memset(&bf, 0, sizeof bf);
    bf.table = "app.orders";
    bf.where = (char *)where;
    bf.set = set;
    bf.nset = 1;
    zdm_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.id = "0001_totals";
    plan.backfill = &bf;
    zdm_db db;
    fake_db(&db, kind);
    zdm_strv k = {0};
    for (size_t i = 0; i < nkey; i++)
        zdm_strv_push(&k, key[i]);
    memset(out, 0, sizeof *out);
    assert_int_equal(zdm_backfill_batch_sql(&db, &plan, &k, int_key, out), 0);
    zdm_strv_free(&k);
}

/* As the preflight asks where the key's kind changes nothing (PostgreSQL,
 * composite keys): the span statements of one key column included. */
static void build(zdm_db_kind kind, const char *const *key, size_t nkey, const char *where, zdm_strv *out)
{
    build_key(kind, key, nkey, 1, where, out);
}

/* The statement of `out` that contains every needle (exactly one may). */
static const char *find(const zdm_strv *out, const char *a, const char *b)
{
    const char *hit = NULL;
    for (size_t i = 0; i < out->n; i++)
        if (strstr(out->v[i], a) && (!b || strstr(out->v[i], b))) {
            if (hit)
                fail_msg("two statements contain \"%s\"%s%s", a, b ? " and " : "", b ? b : "");
            hit = out->v[i];
        }
    if (!hit) {
        for (size_t i = 0; i < out->n; i++)
            print_message("  [%zu] %s\n", i, out->v[i]);
        fail_msg("no statement contains \"%s\"%s%s", a, b ? " and " : "", b ? b : "");
    }
    return hit;
}

static void has(const char *sql, const char *needle)
{
    if (!strstr(sql, needle))
        fail_msg("expected \"%s\" in:\n  %s", needle, sql);
}

static void lacks(const char *sql, const char *needle)
{
    if (strstr(sql, needle))
        fail_msg("did not expect \"%s\" in:\n  %s", needle, sql);
}

/* $1..$max all named, nothing above max. */
static void params_dense(const char *sql, int max)
{
    for (int i = 1; i <= max + 1; i++) {
        char p[8];
        snprintf(p, sizeof p, "$%d", i);
        /* "$1" is also a prefix of "$10": look for it followed by a non-digit */
        int seen = 0;
        for (const char *s = strstr(sql, p); s && !seen; s = strstr(s + 1, p))
            seen = !(s[strlen(p)] >= '0' && s[strlen(p)] <= '9');
        if (i <= max && !seen)
            fail_msg("$%d missing in:\n  %s", i, sql);
        if (i > max && seen)
            fail_msg("$%d named but the worker passes only %d parameters:\n  %s", i, max, sql);
    }
}

static const char *const INT_KEY[] = {"id"};
static const char *const TEXT_KEY[] = {"code"};
static const char *const COMPOSITE[] = {"tenant", "seq"};
#define WHERE "new_total IS NULL OR new_total = 0"

/* ---- PostgreSQL: one statement finds and converts the batch ---- */

static void check_pg_single(const char *k, const char *where)
{
    char kq[32], first[160], next[200], upd_next[200], span[200];
    const char *key[] = {k};
    zdm_strv out;
    build(ZDM_DB_PG, key, 1, where, &out);
    snprintf(kq, sizeof kq, "\"%s\"", k);
    /* first batch of a range: no cursor, bound $2 */
    snprintf(first, sizeof first, "SELECT %s FROM \"app\".\"orders\" WHERE %s <= $2 ORDER BY %s LIMIT $1", kq, kq,
             kq);
    const char *c0 = find(&out, first, NULL);
    has(c0, "UPDATE \"app\".\"orders\" SET \"new_total\" = (price * qty) WHERE ");
    snprintf(upd_next, sizeof upd_next, "WHERE %s <= (SELECT %s FROM zdm_last)", kq, kq);
    has(c0, upd_next);
    params_dense(c0, 2);
    /* later batches: after the cursor ($2), up to the bound ($3) */
    snprintf(next, sizeof next, "SELECT %s FROM \"app\".\"orders\" WHERE %s > $2 AND %s <= $3 ORDER BY %s LIMIT $1",
             kq, kq, kq, kq);
    const char *c1 = find(&out, next, NULL);
    snprintf(upd_next, sizeof upd_next, "WHERE %s > $2 AND %s <= (SELECT %s FROM zdm_last)", kq, kq, kq);
    has(c1, upd_next);
    has(c1, "RETURNING 1");
    params_dense(c1, 3);
    /* the span of key values (cursor, end] */
    snprintf(span, sizeof span, "UPDATE \"app\".\"orders\" SET \"new_total\" = (price * qty) WHERE %s > $1 AND %s <= $2 AND (",
             kq, kq);
    const char *sp = find(&out, span, NULL);
    params_dense(sp, 2);
    snprintf(span, sizeof span, "SELECT %s FROM \"app\".\"orders\" WHERE %s > $1 AND %s <= $2 ORDER BY %s LIMIT 1", kq,
             kq, kq, kq);
    params_dense(find(&out, span, NULL), 2);
    /* every UPDATE carries the row filter, where kept whole */
    for (size_t i = 0; i < out.n; i++) {
        if (!strstr(out.v[i], "UPDATE "))
            continue;
        if (where) {
            has(out.v[i], " AND (" WHERE ")");
            lacks(out.v[i], "IS DISTINCT FROM");
        } else {
            has(out.v[i], " AND (\"new_total\" IS DISTINCT FROM (price * qty))");
        }
    }
    const char *fin = find(&out, "SELECT count(*) FROM \"app\".\"orders\" WHERE ", NULL);
    if (where)
        has(fin, "WHERE (" WHERE ") AND (\"new_total\" IS DISTINCT FROM (price * qty) OR \"new_total\" IS NULL)");
    else
        has(fin, "WHERE (\"new_total\" IS DISTINCT FROM (price * qty))");
    zdm_strv_free(&out);
}

static void test_pg_integer_key(void **state)
{
    (void)state;
    check_pg_single(INT_KEY[0], NULL);
    check_pg_single(INT_KEY[0], WHERE);
}

static void test_pg_text_key(void **state)
{
    (void)state;
    check_pg_single(TEXT_KEY[0], NULL);
    check_pg_single(TEXT_KEY[0], WHERE);
}

static void test_pg_composite_key(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        zdm_strv out;
        build(ZDM_DB_PG, COMPOSITE, 2, w ? WHERE : NULL, &out);
        const char *c0 = find(&out, "SELECT \"tenant\", \"seq\" FROM \"app\".\"orders\" WHERE (\"tenant\", \"seq\") "
                                    "<= ($2, $3) ORDER BY \"tenant\", \"seq\" LIMIT $1",
                              NULL);
        has(c0, "WHERE (\"tenant\", \"seq\") <= (SELECT \"tenant\", \"seq\" FROM zdm_last)");
        has(c0, "ORDER BY \"tenant\" DESC, \"seq\" DESC LIMIT 1");
        params_dense(c0, 3);
        const char *c1 = find(&out, "WHERE (\"tenant\", \"seq\") > ($2, $3) AND (\"tenant\", \"seq\") <= ($4, $5) "
                                    "ORDER BY \"tenant\", \"seq\" LIMIT $1",
                              NULL);
        has(c1, "WHERE (\"tenant\", \"seq\") > ($2, $3) AND (\"tenant\", \"seq\") <= (SELECT \"tenant\", \"seq\" FROM "
                "zdm_last)");
        params_dense(c1, 5);
        has(c1, w ? " AND (" WHERE ")" : " AND (\"new_total\" IS DISTINCT FROM (price * qty))");
        /* no integer span for a composite key: two batch statements and the check */
        assert_int_equal(out.n, 3);
        zdm_strv_free(&out);
    }
}

/* ---- SQLite: peek at the batch's last key, then UPDATE up to it ---- */

static void test_sqlite_keys(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        const char *const *keys[] = {INT_KEY, TEXT_KEY};
        for (int k = 0; k < 2; k++) {
            const char *kn = keys[k][0];
            /* an integer key's bounds are cast once, not compared as text
             * with every row's key; a text key's are given as they are */
            const char *b1 = k ? "$1" : "CAST($1 AS INTEGER)", *b2 = k ? "$2" : "CAST($2 AS INTEGER)",
                       *b3 = k ? "$3" : "CAST($3 AS INTEGER)";
            char buf[400];
            zdm_strv out;
            build_key(ZDM_DB_SQLITE, keys[k], 1, !k, w ? WHERE : NULL, &out);
            /* two peeks, two UPDATEs, the check; an integer key's span and
             * its next key too */
            assert_int_equal(out.n, k ? 5 : 7);
            snprintf(buf, sizeof buf, "FROM (SELECT \"%s\" FROM \"app\".\"orders\" WHERE \"%s\" <= %s ORDER BY \"%s\" "
                                      "LIMIT $1) zdm_batch HAVING count(*) > 0", kn, kn, b2, kn);
            params_dense(find(&out, buf, NULL), 2);
            snprintf(buf, sizeof buf, "FROM (SELECT \"%s\" FROM \"app\".\"orders\" WHERE \"%s\" > %s AND \"%s\" <= %s "
                                      "ORDER BY \"%s\" LIMIT $1) zdm_batch", kn, kn, b2, kn, b3, kn);
            params_dense(find(&out, buf, NULL), 3);
            /* the UPDATEs: up to the peeked last key, from the cursor */
            snprintf(buf, sizeof buf, "UPDATE \"app\".\"orders\" SET \"new_total\" = (price * qty) WHERE \"%s\" <= %s AND (",
                     kn, b1);
            const char *u0 = find(&out, buf, NULL);
            params_dense(u0, 1);
            snprintf(buf, sizeof buf, "UPDATE \"app\".\"orders\" SET \"new_total\" = (price * qty) WHERE \"%s\" > %s AND "
                                      "\"%s\" <= %s AND (", kn, b1, kn, b2);
            /* (an integer key's is the span statement but for the span's
             * comment: the one that starts with UPDATE) */
            const char *u1 = NULL;
            for (size_t i = 0; i < out.n; i++)
                if (strncmp(out.v[i], buf, strlen(buf)) == 0)
                    u1 = out.v[i];
            assert_non_null(u1);
            params_dense(u1, 2);
            const char *sp = NULL;
            if (!k) {
                /* the span of key values (cursor, end] */
                snprintf(buf, sizeof buf, "/* zdm backfill */ UPDATE \"app\".\"orders\" SET \"new_total\" = (price * qty) "
                                          "WHERE \"%s\" > CAST($1 AS INTEGER) AND \"%s\" <= CAST($2 AS INTEGER) AND (", kn, kn);
                sp = find(&out, buf, NULL);
                params_dense(sp, 2);
                snprintf(buf, sizeof buf, "SELECT \"%s\" FROM \"app\".\"orders\" WHERE \"%s\" > CAST($1 AS INTEGER) AND "
                                          "\"%s\" <= CAST($2 AS INTEGER) ORDER BY \"%s\" LIMIT 1", kn, kn, kn, kn);
                params_dense(find(&out, buf, NULL), 2);
            } else {
                for (size_t i = 0; i < out.n; i++)
                    lacks(out.v[i], "CAST(");
            }
            for (int i = 0; i < 3; i++) {
                const char *u = i == 2 ? sp : i ? u1 : u0;
                if (!u)
                    continue;
                if (w)
                    has(u, " AND (" WHERE ")");
                else
                    has(u, " AND (\"new_total\" IS NOT (price * qty))");
                lacks(u, "IS DISTINCT FROM");
            }
            const char *fin = find(&out, "SELECT count(*) FROM \"app\".\"orders\" WHERE ", NULL);
            has(fin, w ? "WHERE (" WHERE ") AND (\"new_total\" IS NOT (price * qty) OR \"new_total\" IS NULL)"
                       : "WHERE (\"new_total\" IS NOT (price * qty))");
            zdm_strv_free(&out);
        }
    }
}

static void test_sqlite_composite_key(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        zdm_strv out;
        build(ZDM_DB_SQLITE, COMPOSITE, 2, w ? WHERE : NULL, &out);
        assert_int_equal(out.n, 5);
        params_dense(find(&out, "WHERE (\"tenant\", \"seq\") <= ($2, $3) ORDER BY \"tenant\", \"seq\" LIMIT $1) "
                                "zdm_batch ORDER BY \"tenant\" DESC, \"seq\" DESC LIMIT 1",
                          NULL),
                     3);
        params_dense(find(&out, "WHERE (\"tenant\", \"seq\") > ($2, $3) AND (\"tenant\", \"seq\") <= ($4, $5) ORDER BY "
                                "\"tenant\", \"seq\" LIMIT $1) zdm_batch",
                          NULL),
                     5);
        const char *u0 = find(&out, "SET \"new_total\" = (price * qty) WHERE (\"tenant\", \"seq\") <= ($1, $2) AND (", NULL);
        params_dense(u0, 2);
        const char *u1 = find(&out, "SET \"new_total\" = (price * qty) WHERE (\"tenant\", \"seq\") > ($1, $2) AND "
                                    "(\"tenant\", \"seq\") <= ($3, $4) AND (",
                              NULL);
        params_dense(u1, 4);
        has(u1, w ? " AND (" WHERE ")" : " AND (\"new_total\" IS NOT (price * qty))");
        zdm_strv_free(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_integer_key),   cmocka_unit_test(test_pg_text_key),
        cmocka_unit_test(test_pg_composite_key), cmocka_unit_test(test_sqlite_keys),
        cmocka_unit_test(test_sqlite_composite_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
