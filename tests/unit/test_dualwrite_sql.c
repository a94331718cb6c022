/*
 * test_dualwrite_sql.c -- the dual-write trigger SQL of both dialects
 * (dialect_pg.c, dialect_sqlite.c, dwsql.c), built without a database.
 *
 * What must hold for every trigger, whatever the plan:
 *  - the guard: each trigger steps aside for the plan's own backfill
 *    (PostgreSQL: the zdm.backfill setting, in the WHEN of each trigger
 *    the backfill's UPDATE of the targets can fire, and only there: the
 *    backfill never inserts, and an UPDATE OF sources none of which is a
 *    target never fires for it; SQLite: the zdm_guard row);
 *  - the where: with a `where`, every write the triggers make is limited
 *    to it (PostgreSQL: in each function; SQLite: in each UPDATE), and
 *    without one, no trigger narrows anything;
 *  - quoting: every identifier is quoted by the dialect (a hostile name
 *    never appears unquoted), the plan id goes in as a literal;
 *  - the shape: one-way has the forward pair only, two-way the reverse
 *    pair too; SQLite addresses the row by every key column;
 *  - SQLite's guard row: a body brackets its UPDATE with a zdm_guard row
 *    of its own (a random rowid under the plan's id, deleted by
 *    last_insert_rowid(), never a row under the plan's id alone, which a
 *    failed statement kept) exactly when that UPDATE could fire a trigger
 *    of the plan (two-way, in place, a forward UPDATE trigger OF no column
 *    or OF a target), and the plan's UPDATE triggers step aside for it;
 *    otherwise the body is the bare UPDATE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dialect.h"
#include "dwsql.h"

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The CREATE TRIGGER statements of a script, each up to the next
 * CREATE (or the end), malloc'd. */
static int triggers(const char *sql, char **out, int max)
{
    int n = 0;
    for (const char *p = strstr(sql, "CREATE TRIGGER"); p && n < max;) {
        const char *next = strstr(p + 1, "CREATE ");
        size_t len = next ? (size_t)(next - p) : strlen(p);
        out[n++] = zdm_xstrndup(p, len);
        p = next ? strstr(next, "CREATE TRIGGER") : NULL;
    }
    return n;
}

typedef struct tcase {
    const zdm_dialect *d;
    const char *plan_id, *table, *where;
    zdm_assign set[2], reverse[2];
    size_t nset, nreverse;
    const char *keys[3];
    int in_place;
    const char *srcs[2]; /* dual_write.sources */
    const char *extra;   /* a table column that is neither target nor reverse */
    int bare;            /* SQLite: the bodies carry no guard row */
} tcase;

static zdm_strv cols, key, sources; /* of the last build */

static void build(const tcase *t, char **create, char **drop)
{
    zdm_strv_free(&cols);
    zdm_strv_free(&key);
    zdm_strv_free(&sources);
    for (size_t i = 0; i < t->nset; i++)
        zdm_strv_push(&cols, t->set[i].column);
    for (size_t i = 0; i < t->nreverse; i++)
        zdm_strv_push(&cols, t->reverse[i].column);
    if (t->extra)
        zdm_strv_push(&cols, t->extra);
    for (size_t i = 0; i < 2 && t->srcs[i]; i++)
        zdm_strv_push(&sources, t->srcs[i]);
    for (size_t i = 0; i < 3 && t->keys[i]; i++)
        zdm_strv_push(&key, t->keys[i]);
    zdm_dw_spec s = {
        .plan_id = t->plan_id,
        .table = t->table,
        .base = "zdm_dw_p",
        .set = t->set,
        .nset = t->nset,
        .reverse = t->reverse,
        .nreverse = t->nreverse,
        .sources = &sources,
        .where = t->where,
        .in_place = t->in_place,
        .reverse_on_insert = 0,
        .cols = &cols,
        .key = &key,
    };
    zdm_buf c = {0}, d = {0};
    t->d->dw_triggers(t->d, &s, &c, &d);
    *create = zdm_buf_take(&c);
    *drop = zdm_buf_take(&d);
}


/* The invariants above, for one case. */
static void check_case(const tcase *t)
{
    char *create, *drop, *trg[8];
    build(t, &create, &drop);
    int pg = t->d == &zdm_dialect_pg;
    int n = triggers(create, trg, 8);
    assert_int_equal(n, t->nreverse ? 4 : 2);
    char *lit = zdm_dwsql_literal(t->plan_id);
    char *guard = pg ? zdm_xasprintf("current_setting('zdm.backfill', true) IS DISTINCT FROM %s", lit)
                     : zdm_xasprintf("NOT EXISTS (SELECT 1 FROM zdm_guard WHERE plan_id = %s)", lit);
    char *g_ins = zdm_xasprintf("BEGIN INSERT INTO zdm_guard (rowid, plan_id) SELECT r, %s || '#' || r FROM "
                                "(SELECT random() & 9223372036854775807 AS r); UPDATE ", lit);
    const char *g_del = "; DELETE FROM zdm_guard WHERE rowid = last_insert_rowid(); END;";
    char *g_when = zdm_xasprintf("NOT EXISTS (SELECT 1 FROM zdm_guard WHERE rowid = last_insert_rowid() AND "
                                 "plan_id = %s || '#' || last_insert_rowid())", lit);
    /* PostgreSQL: the forward UPDATE trigger is OF the sources when
     * there are any; the backfill's UPDATE names the targets */
    int of_target = 0;
    for (size_t k = 0; k < 2 && t->srcs[k]; k++)
        for (size_t j = 0; j < t->nset; j++)
            of_target |= strcmp(t->srcs[k], t->set[j].column) == 0;
    for (int i = 0; i < n; i++) {
        /* the guard, once, in the WHEN of each trigger the backfill's
         * UPDATE can fire (PostgreSQL), of each trigger (SQLite) */
        int fires = !pg || (strstr(trg[i], " BEFORE UPDATE") &&
                            (strstr(trg[i], "_1rev_") || !t->srcs[0] || of_target));
        assert_int_equal(count(trg[i], guard), fires);
        if (pg && !fires)
            assert_int_equal(count(trg[i], "zdm.backfill"), 0);
        if (!pg || !t->in_place || strstr(trg[i], " BEFORE UPDATE"))
            assert_non_null(strstr(trg[i], pg ? "WHEN (" : "WHEN "));
        assert_true(!fires || strstr(trg[i], guard) > strstr(trg[i], "WHEN"));
        if (!pg && t->bare) {
            /* no trigger of the plan can fire from the body: no guard row */
            assert_int_equal(count(trg[i], "INSERT INTO"), 0);
            assert_int_equal(count(trg[i], "DELETE FROM"), 0);
            assert_non_null(strstr(trg[i], "\nBEGIN UPDATE "));
            assert_int_equal(count(trg[i], "last_insert_rowid()"), 0);
        } else if (!pg) {
            /* UPDATE triggers (which a body's UPDATE fires) step aside
             * for the body running now; INSERT triggers need not */
            int upd = strstr(trg[i], " AFTER UPDATE") != NULL;
            assert_int_equal(count(trg[i], g_when), upd);
            assert_true(!upd || strstr(trg[i], g_when) < strstr(trg[i], "\nBEGIN "));
            assert_int_equal(count(trg[i], "INSERT INTO zdm_guard (plan_id)"), 0);
            /* the guard row brackets the trigger's own UPDATE */
            const char *ins = strstr(trg[i], g_ins);
            const char *del = strstr(trg[i], g_del);
            assert_non_null(ins);
            assert_non_null(del);
            assert_true(ins < del);
        }
        if (!pg) {
            /* the row by every key column, then the where (or nothing) */
            zdm_buf w = {0};
            for (int k = 0; k < 3 && t->keys[k]; k++) {
                char *q = zdm_dialect_sqlite.quote_ident(t->keys[k]);
                zdm_buf_printf(&w, "%s%s = NEW.%s", k ? " AND " : " WHERE ", q, q);
                free(q);
            }
            if (t->where)
                zdm_buf_printf(&w, " AND (%s)", t->where);
            zdm_buf_puts(&w, t->bare ? "; END;\n" : "; DELETE FROM zdm_guard");
            assert_non_null(strstr(trg[i], w.data));
            zdm_buf_free(&w);
        } else {
            assert_non_null(strstr(trg[i], " FOR EACH ROW\n"));
            assert_non_null(strstr(trg[i], "EXECUTE FUNCTION zdm.\"zdm_dw_p_"));
        }
        free(trg[i]);
    }
    free(g_ins);
    free(g_when);
    free(guard);
    free(lit);
    if (pg) {
        /* one function a direction, each limited to `where` when given */
        int nfn = t->nreverse ? 2 : 1;
        assert_int_equal(count(create, "CREATE OR REPLACE FUNCTION zdm."), nfn);
        /* the settings of zdm's session, not the application's */
        /* as the caller, unless the settings block makes it the owner's
         * (SECURITY DEFINER only where that gives no one more) */
        assert_int_equal(count(create, "RETURNS trigger LANGUAGE plpgsql\n  " ZDM_PG_DW_SETTINGS "\n"), nfn);
        assert_int_equal(count(create, "() SECURITY DEFINER;"), nfn);
        assert_int_equal(count(create, "has_schema_privilege(r.oid, n.oid, 'CREATE')"), 1);
        /* the search_path they keep: zdm's, schema by schema, not "$user" */
        assert_true(strstr(create, "set_config('search_path'") < strstr(create, "CREATE OR REPLACE FUNCTION"));
        assert_int_equal(count(create, "\"zdm_dw_p_rev\"()") > 0, t->nreverse > 0);
        if (t->where && zdm_dwsql_row_local(t->where, &cols)) {
            /* on the row alone: an expression on NEW, NULL matching nothing */
            char *e = zdm_dwsql_rewrite(&zdm_dialect_pg, t->where, &cols, "NEW");
            char *want = zdm_xasprintf("IF (%s) IS NOT TRUE THEN\n    RETURN NEW;", e);
            assert_int_equal(count(create, want), nfn);
            assert_int_equal(count(create, "IF NOT EXISTS"), 0);
            free(want);
            free(e);
        } else if (t->where) {
            char *alias = zdm_dialect_pg.quote_ident(strrchr(t->table, '.') ? strrchr(t->table, '.') + 1 : t->table);
            char *want = zdm_xasprintf("IF NOT EXISTS (SELECT 1 FROM (SELECT NEW.*) AS %s WHERE (%s)) THEN\n"
                                       "    RETURN NEW;",
                                       alias, t->where);
            assert_int_equal(count(create, want), nfn);
            free(want);
            free(alias);
        } else {
            assert_int_equal(count(create, "IF NOT EXISTS"), 0);
        }
        /* the old triggers go first, so a re-run replaces them */
        assert_true(strstr(create, "DROP TRIGGER IF EXISTS") < strstr(create, "CREATE TRIGGER"));
        assert_int_equal(count(drop, "DROP TRIGGER IF EXISTS"), 4);
        assert_int_equal(count(drop, "DROP FUNCTION IF EXISTS zdm."), 2);
    } else {
        assert_int_equal(count(drop, "DROP TRIGGER IF EXISTS"), 4);
    }
    free(create);
    free(drop);
}

static tcase base_case(const zdm_dialect *d)
{
    tcase t;
    memset(&t, 0, sizeof t);
    t.d = d;
    t.plan_id = "p";
    t.table = "t";
    t.set[0] = (zdm_assign){"b", "upper(a)", 0, 0};
    t.nset = 1;
    t.keys[0] = "id";
    return t;
}

/* Every combination: dialect x one/two-way x where x key shape x what
 * the forward UPDATE trigger is OF: 0 no column (the table holds only the
 * target: any UPDATE fires it), 1 every column but the target, 2 the
 * sources, 3 a source that is the target in another case (SQLite's names
 * ignore case; plan.c compares them case-sensitively). */
static void test_every_combination(void **state)
{
    (void)state;
    const zdm_dialect *ds[2] = {&zdm_dialect_pg, &zdm_dialect_sqlite};
    for (int di = 0; di < 2; di++)
        for (int twoway = 0; twoway < 2; twoway++)
            for (int where = 0; where < 3; where++)
                for (int composite = 0; composite < 2; composite++)
                    for (int of = 0; of < 4; of++) {
                        tcase t = base_case(ds[di]);
                        if (of == 1)
                            t.extra = "c";
                        if (of == 2)
                            t.srcs[0] = "a";
                        if (of == 3)
                            t.srcs[0] = "B";
                        t.bare = !twoway && (of == 1 || of == 2);
                        if (twoway) {
                            t.reverse[0] = (zdm_assign){"a", "lower(b)", 0, 0};
                            t.nreverse = 1;
                        }
                        /* 1: a query on NEW (id is not among the columns
                         * given); 2: an expression on NEW */
                        t.where = where == 1 ? "a IS NOT NULL AND id > 3" : where == 2 ? "a IS NOT NULL" : NULL;
                        if (composite) {
                            t.keys[0] = "tenant";
                            t.keys[1] = "id";
                        }
                        check_case(&t);
                    }
}

/* The direction conditions: forward fires on an INSERT that leaves the
 * target NULL, or an UPDATE that leaves it unchanged; reverse on a write
 * of the target (PostgreSQL: named to fire first). */
static void test_directions(void **state)
{
    (void)state;
    tcase t = base_case(&zdm_dialect_pg);
    t.reverse[0] = (zdm_assign){"a", "lower(b)", 0, 0};
    t.nreverse = 1;
    char *create, *drop;
    build(&t, &create, &drop);
    const char *rev_ins = strstr(create, "CREATE TRIGGER \"zdm_dw_p_1rev_ins\" BEFORE INSERT ON \"t\"");
    const char *fwd_ins = strstr(create, "CREATE TRIGGER \"zdm_dw_p_2fwd_ins\" BEFORE INSERT ON \"t\"");
    assert_non_null(rev_ins);
    assert_non_null(fwd_ins);
    assert_non_null(strstr(create, "WHEN (NOT (NEW.\"b\" IS NULL) AND NEW.\"a\" IS NULL)\n  EXECUTE FUNCTION "
                                   "zdm.\"zdm_dw_p_rev\"()"));
    assert_non_null(strstr(create, "WHEN (NEW.\"b\" IS NULL)\n  EXECUTE FUNCTION zdm.\"zdm_dw_p_fwd\"()"));
    assert_non_null(strstr(create, "BEFORE UPDATE OF \"b\" ON \"t\" FOR EACH ROW"));
    assert_non_null(strstr(create, "AND NEW.\"b\" IS NOT DISTINCT FROM OLD.\"b\")\n  EXECUTE FUNCTION "
                                   "zdm.\"zdm_dw_p_fwd\"()"));
    /* the function computes from NEW: a bare column reads NEW.col */
    assert_non_null(strstr(create, "    NEW.\"b\" := (upper(NEW.\"a\"));\n"));
    assert_non_null(strstr(create, "    NEW.\"a\" := (lower(NEW.\"b\"));\n"));
    free(create);
    free(drop);

    t.d = &zdm_dialect_sqlite;
    build(&t, &create, &drop);
    assert_non_null(strstr(create, "CREATE TRIGGER \"zdm_dw_p_fi\" AFTER INSERT ON \"t\"\nWHEN "));
    assert_non_null(strstr(create, " AND NEW.\"b\" IS NULL\nBEGIN"));
    assert_non_null(strstr(create, "CREATE TRIGGER \"zdm_dw_p_ru\" AFTER UPDATE OF \"b\" ON \"t\""));
    /* a row already consistent fires nothing: no trigger loop */
    assert_non_null(strstr(create, "NOT (NEW.\"b\" IS (upper(NEW.\"a\")))"));
    assert_non_null(strstr(create, "NOT (NEW.\"a\" IS (lower(NEW.\"b\")))"));
    /* the UPDATE's SET reads the row as it is (no NEW.) */
    assert_non_null(strstr(create, "UPDATE \"t\" SET \"b\" = (upper(a)) WHERE \"id\" = NEW.\"id\";"));
    free(create);
    free(drop);
}

/* An in-place fix converts every matching write, whoever wrote it: the
 * forward triggers carry no "target is NULL / unchanged" condition. */
static void test_in_place(void **state)
{
    (void)state;
    for (int di = 0; di < 2; di++) {
        tcase t = base_case(di ? &zdm_dialect_sqlite : &zdm_dialect_pg);
        t.set[0] = (zdm_assign){"a", "trim(a)", 0, 0};
        t.where = "a LIKE ' %'";
        t.in_place = 1;
        t.extra = "c"; /* in place every UPDATE fires the forward trigger: the guard row stays */
        char *create, *drop;
        build(&t, &create, &drop);
        assert_int_equal(count(create, "NEW.\"a\" IS NULL"), 0);
        assert_int_equal(count(create, "IS NOT DISTINCT FROM OLD.\"a\""), 0);
        assert_int_equal(count(create, "NEW.\"a\" IS OLD.\"a\""), 0);
        check_case(&t);
        free(create);
        free(drop);
    }
}

/* PostgreSQL compares a source a second time as text (numeric's 1.5 ->
 * 1.50 is no change to "=") except where "=" holds only for the same text
 * (exact_cmp): there the second comparison repeated the first, and each
 * application write paid for it in the WHEN. */
static void test_exact_sources(void **state)
{
    (void)state;
    zdm_strv exact = {0};
    zdm_strv_push(&exact, "a");
    for (int with = 0; with < 2; with++) {
        tcase t = base_case(&zdm_dialect_pg);
        t.srcs[0] = "a";
        t.srcs[1] = "c";
        t.extra = "c";
        char *create, *drop;
        zdm_strv_free(&cols);
        zdm_strv_free(&key);
        zdm_strv_free(&sources);
        zdm_strv_push(&cols, "b");
        zdm_strv_push(&cols, "c");
        zdm_strv_push(&sources, "a");
        zdm_strv_push(&sources, "c");
        zdm_strv_push(&key, "id");
        zdm_dw_spec s = {.plan_id = "p", .table = "t", .base = "zdm_dw_p", .set = t.set, .nset = 1,
                         .sources = &sources, .exact_cmp = with ? &exact : NULL, .cols = &cols, .key = &key};
        zdm_buf c = {0}, d = {0};
        zdm_dialect_pg.dw_triggers(&zdm_dialect_pg, &s, &c, &d);
        create = zdm_buf_take(&c);
        drop = zdm_buf_take(&d);
        assert_int_equal(count(create, "NEW.\"a\"::text COLLATE \"C\" IS DISTINCT FROM OLD.\"a\"::text COLLATE \"C\""),
                         !with);
        assert_int_equal(count(create, "NEW.\"a\" IS DISTINCT FROM OLD.\"a\""), 1);
        /* c is not exact: compared both ways, as text byte for byte (a
         * nondeterministic collation made a change of case no change) */
        assert_int_equal(count(create, "(NEW.\"c\" IS DISTINCT FROM OLD.\"c\" OR NEW.\"c\"::text COLLATE \"C\" IS "
                                       "DISTINCT FROM OLD.\"c\"::text COLLATE \"C\")"), 1);
        free(create);
        free(drop);
    }
    zdm_strv_free(&exact);
}

/* PostgreSQL: the functions keep search_path alone when created; one
 * block after them asks the server (a temporary view of every set,
 * reverse and where expression) and keeps the five value settings in
 * each function unless it finds none needed; a failure keeps them. */
static void test_settings_probe(void **state)
{
    (void)state;
    tcase t = base_case(&zdm_dialect_pg);
    t.reverse[0] = (zdm_assign){"a", "lower(b)", 0, 0};
    t.nreverse = 1;
    t.where = "a IS NOT NULL";
    char *create, *drop;
    build(&t, &create, &drop);
    const char *probe = strstr(create, "\nDO ");
    assert_non_null(probe);
    assert_int_equal(count(create, "\nDO "), 1);
    assert_true(probe > strstr(create, "FUNCTION zdm.\"zdm_dw_p_rev\"()"));
    /* the expressions, then the targets (a value takes its target's type
     * in the application's session) */
    assert_non_null(strstr(probe, "CREATE TEMP VIEW zdm_dw_probe AS SELECT (upper(a)) AS e0, (lower(b)) AS e1, "
                                  "(a IS NOT NULL) AS e2, \"t\".\"b\" AS e3, \"t\".\"a\" AS e4 FROM \"t\" AS \"t\""));
    assert_int_equal(count(probe, "EXCEPTION WHEN OTHERS THEN\n    keep := true;"), 1);
    assert_int_equal(count(probe, "ALTER FUNCTION zdm.\"zdm_dw_p_fwd\"() " ZDM_PG_DW_VALUE_SETTINGS ";"), 1);
    assert_int_equal(count(probe, "ALTER FUNCTION zdm.\"zdm_dw_p_rev\"() " ZDM_PG_DW_VALUE_SETTINGS ";"), 1);
    assert_int_equal(count(create, "TimeZone"), 2); /* in the block's two ALTERs only */
    assert_int_equal(count(probe, "TimeZone"), 2);
    assert_int_equal(count(create, "transform_null_equals"), 0);
    assert_int_equal(count(create, "standard_conforming_strings"), 0);
    free(create);
    free(drop);

    /* read at parse time, so kept by the functions themselves: "= NULL"
     * (transform_null_equals), a backslash or U&'' (standard_conforming_strings) */
    static const struct {
        const char *expr, *setting;
        int kept;
    } lex[] = {
        {"CASE WHEN a = NULL THEN 'x' END", "transform_null_equals", 1},
        {"CASE WHEN NULL=a THEN 'x' END", "transform_null_equals", 1},
        {"CASE WHEN a IS NULL THEN 'x' END", "transform_null_equals", 0},
        {"coalesce(a, nullif(a, 'x'))", "transform_null_equals", 0},
        {"CASE WHEN a <= NULL THEN 'x' END", "transform_null_equals", 0},
        {"CASE WHEN a = (NULL) THEN 'x' END", "transform_null_equals", 1},
        {"CASE WHEN a = /* c */ NULL THEN 'x' END", "transform_null_equals", 1},
        {"CASE WHEN ((NULL)) = a THEN 'x' END", "transform_null_equals", 1},
        {"CASE WHEN a = 'NULL' THEN '= NULL' END", "transform_null_equals", 0},
        {"a || U&'\\0041'", "standard_conforming_strings", 1},
        {"a || u&'!0041' UESCAPE '!'", "standard_conforming_strings", 1},
        {"a || 'x\\y'", "standard_conforming_strings", 1},
        {"a || 'U&x'", "standard_conforming_strings", 0},
    };
    for (size_t i = 0; i < sizeof lex / sizeof lex[0]; i++) {
        tcase u = base_case(&zdm_dialect_pg);
        char *expr = zdm_xstrdup(lex[i].expr);
        u.set[0] = (zdm_assign){"b", expr, 0, 0};
        build(&u, &create, &drop);
        char *want = zdm_xasprintf(" SET %s FROM CURRENT", lex[i].setting);
        assert_int_equal(count(create, want), lex[i].kept);
        free(want);
        free(expr);
        free(create);
        free(drop);
    }
}

/* Removes every occurrence of `quoted` from s (in place). */
static void strip(char *s, const char *quoted)
{
    size_t n = strlen(quoted);
    for (char *p; (p = strstr(s, quoted)) != NULL;)
        memmove(p, p + n, strlen(p + n) + 1);
}

/* Names with quotes, spaces, dots and $: quoted by the dialect wherever
 * they appear; once the quoted forms are taken out, nothing of them is
 * left (no bare, half-quoted or unescaped copy).  The plan id is a
 * literal with its quote doubled. */
static void test_hostile_identifiers(void **state)
{
    (void)state;
    for (int di = 0; di < 2; di++) {
        const zdm_dialect *d = di ? &zdm_dialect_sqlite : &zdm_dialect_pg;
        tcase t = base_case(d);
        t.plan_id = "it's";
        t.table = di ? "we ird\"t" : "s p.we ird\"t";
        t.set[0] = (zdm_assign){"c\"d e", "upper(\"a b\")", 0, 0};
        t.reverse[0] = (zdm_assign){"a b", "lower(\"c\"\"d e\")", 0, 0};
        t.nreverse = 1;
        t.keys[0] = "k\"1";
        t.keys[1] = "k 2";
        t.where = "\"a b\" <> 'x'";
        char *create, *drop;
        build(&t, &create, &drop);
        const char *qtable = di ? "\"we ird\"\"t\"" : "\"s p\".\"we ird\"\"t\"";
        assert_non_null(strstr(create, qtable));
        assert_non_null(strstr(drop, di ? "DROP TRIGGER IF EXISTS \"zdm_dw_p_fi\";" : qtable));
        assert_non_null(strstr(create, "\"c\"\"d e\""));
        assert_non_null(strstr(create, "'it''s'"));
        if (!di) {
            /* the expression's bare column reads NEW."a b" in the function */
            assert_non_null(strstr(create, "NEW.\"c\"\"d e\" := (upper(NEW.\"a b\"));"));
            assert_non_null(strstr(create, "NEW.\"a b\" := (lower(NEW.\"c\"\"d e\"));"));
            /* a where on the row alone reads NEW."a b" in the function */
            assert_non_null(strstr(create, "IF (NEW.\"a b\" <> 'x') IS NOT TRUE THEN"));
        } else {
            assert_non_null(strstr(create, " WHERE \"k\"\"1\" = NEW.\"k\"\"1\" AND \"k 2\" = NEW.\"k 2\" AND "
                                           "(\"a b\" <> 'x');"));
        }
        char *rest = zdm_xstrdup(create);
        const char *quoted[] = {"\"we ird\"\"t\"", "\"s p\"", "\"c\"\"d e\"", "\"a b\"", "\"k\"\"1\"", "\"k 2\"",
                                "'it''s'"};
        for (size_t i = 0; i < sizeof quoted / sizeof quoted[0]; i++)
            strip(rest, quoted[i]);
        assert_null(strstr(rest, "we ird"));
        assert_null(strstr(rest, "d e"));
        assert_null(strstr(rest, "a b"));
        assert_null(strstr(rest, "k 2"));
        assert_null(strstr(rest, "it's"));
        free(rest);
        check_case(&t);
        free(create);
        free(drop);
    }
}

/* ops.c writes one quoted text for both dialects' SQL: they must quote
 * alike, and as standard SQL does. */
static void test_dialects_quote_alike(void **state)
{
    (void)state;
    const char *names[] = {"plain", "a b", "q\"", "\"\"", "it's", "$zdm$", "d.o.t", "\xc3\xa9", ""};
    const char *want[] = {"\"plain\"", "\"a b\"", "\"q\"\"\"", "\"\"\"\"\"\"", "\"it's\"", "\"$zdm$\"",
                          "\"d.o.t\"", "\"\xc3\xa9\"", "\"\""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = zdm_dialect_pg.quote_ident(names[i]), *q = zdm_dialect_sqlite.quote_ident(names[i]);
        assert_string_equal(p, want[i]);
        assert_string_equal(q, want[i]);
        free(p);
        free(q);
    }
    char *path = zdm_dialect_quote_path(&zdm_dialect_pg, "s\"x.t y");
    assert_string_equal(path, "\"s\"\"x\".\"t y\"");
    free(path);
}

/* The expression rewrite: bare columns only. */
static void test_rewrite(void **state)
{
    (void)state;
    zdm_strv cols = {0};
    zdm_strv_push(&cols, "a");
    zdm_strv_push(&cols, "Mixed");
    zdm_strv_push(&cols, "x y");
    char *e = zdm_dwsql_rewrite(&zdm_dialect_pg,
                                "a || 'a' || t.a || mixed || \"x y\" || a(1) || \"a\" || b::a -- a\n", &cols, "NEW");
    assert_string_equal(e, "NEW.\"a\" || 'a' || t.a || NEW.\"Mixed\" || NEW.\"x y\" || a(1) || NEW.\"a\" || "
                           "b::a -- a\n");
    free(e);
    /* what is not a name is left as is: strings of every kind, numbers,
     * a type's name before its literal; a name of non-ASCII letters is one
     * name (PostgreSQL's identifier bytes), and a slice's bound after a
     * single ':' is a column, not a type */
    zdm_strv_push(&cols, "größe");
    zdm_strv_push(&cols, "date");
    zdm_strv_push(&cols, "e5");
    zdm_strv_push(&cols, "n");
    const char *in[] = {"upper(größe) || a",
                        "$$ a $$ || $t$ a $$ a $t$ || a",
                        "E'it\\'s a' || a",
                        "date '2020-01-01' < date",
                        "1e5 + e5",
                        "a[1:n] || a::text[]",
                        "x'1f' || a"};
    const char *want[] = {"upper(NEW.\"größe\") || NEW.\"a\"",
                          "$$ a $$ || $t$ a $$ a $t$ || NEW.\"a\"",
                          "E'it\\'s a' || NEW.\"a\"",
                          "date '2020-01-01' < NEW.\"date\"",
                          "1e5 + NEW.\"e5\"",
                          "NEW.\"a\"[1:NEW.\"n\"] || NEW.\"a\"::text[]",
                          "x'1f' || NEW.\"a\""};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        e = zdm_dwsql_rewrite(&zdm_dialect_pg, in[i], &cols, "NEW");
        assert_string_equal(e, want[i]);
        free(e);
    }
    zdm_strv_free(&cols);
}

/* Which wheres are read as expressions on NEW: the row's own columns,
 * operator words, calls and casts; nothing that could resolve otherwise
 * once rewritten. */
static void test_row_local(void **state)
{
    (void)state;
    zdm_strv cols = {0};
    const char *names[] = {"a", "b", "x y", "Mixed", "dup", "DUP", "n"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        zdm_strv_push(&cols, names[i]);
    const char *yes[] = {
        "a IS NULL",
        "a IS NULL AND b <> 'it''s'",
        "\"x y\" LIKE 'q%' OR b IS DISTINCT FROM a",
        "lower(a) IN ('p', 'q') AND NOT (b BETWEEN 1 AND 2.5e3)",
        "coalesce(a, b)::int > 3",
        "CASE WHEN a IS NULL THEN true ELSE b = ANY ('{1,2}'::int[]) END",
        "\"Mixed\" IS NOT NULL",
        "a[1] = 'x'",
        "n % 3 = 0 AND a !~ 'x'",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!zdm_dwsql_row_local(yes[i], &cols))
            fail_msg("row-local, said not: %s", yes[i]);
    }
    const char *no[] = {
        "k IN (SELECT k FROM t GROUP BY k HAVING count(*) > 1)", /* a subquery */
        "t.a IS NULL",                                          /* qualified */
        "a = other",                                            /* not a column */
        "mixed IS NULL",                                        /* folds to "mixed": no such column */
        "dup IS NULL",                                          /* two columns alike but for case */
        "a = E'x'",                                             /* a typed literal */
        "b > date '2020-01-01'",                                /* ... */
        "a = $1",                                               /* a parameter */
        "a IS NULL -- x",                                       /* a comment */
        "a IS NULL /* x */",
        "a IS NULL; DROP TABLE t",
        "a[1:n] = 'x'",                                         /* a slice: n after ':' */
        "a = 'open",                                            /* unterminated */
        "\"a",
        "my_check(t)",                                          /* a whole row */
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (zdm_dwsql_row_local(no[i], &cols))
            fail_msg("not row-local, said it was: %s", no[i]);
    }
    /* a column named as an operator word: quoted, it is the column; bare,
     * the rewrite would take the word for it */
    zdm_strv_push(&cols, "end");
    assert_true(zdm_dwsql_row_local("\"end\" IS NULL AND a IS NULL", &cols));
    assert_false(zdm_dwsql_row_local("CASE WHEN a IS NULL THEN 1 END = 1", &cols));
    /* a column named as a type, before a literal of it; non-ASCII names */
    zdm_strv_push(&cols, "date");
    zdm_strv_push(&cols, "größe");
    assert_false(zdm_dwsql_row_local("a < date '2020-01-01'", &cols));
    assert_true(zdm_dwsql_row_local("date < now() AND größe IS NULL", &cols));
    assert_false(zdm_dwsql_row_local("grösse IS NULL", &cols));
    /* columns named like keywords: bare, the word is the keyword (user is
     * current_user; precision is part of a type), quoted the column; a
     * column u before &'..' is the U& string's prefix */
    zdm_strv_push(&cols, "user");
    zdm_strv_push(&cols, "precision");
    zdm_strv_push(&cols, "u");
    zdm_strv_push(&cols, "zone");
    assert_false(zdm_dwsql_row_local("coalesce(a, '') || user", &cols));
    assert_true(zdm_dwsql_row_local("coalesce(a, '') || \"user\"", &cols));
    assert_false(zdm_dwsql_row_local("n::double precision > 1", &cols));
    assert_false(zdm_dwsql_row_local("U&'5' || a", &cols));
    assert_false(zdm_dwsql_row_local("u&\"a\" IS NULL", &cols));
    assert_true(zdm_dwsql_row_local("u & 1 = 0", &cols));
    assert_false(zdm_dwsql_row_local("a::timestamp AT TIME ZONE zone", &cols));
    zdm_strv_free(&cols);
}

/* The trigger SQL of one-way plan `set` on table t (key id), the table's
 * columns `tcols` (NULL-ended) besides the targets; malloc'd. */
static char *set_sql(const zdm_dialect *d, const zdm_assign *set, size_t nset, const char *const *tcols)
{
    zdm_strv c = {0}, k = {0}, src = {0};
    for (size_t i = 0; i < nset; i++)
        zdm_strv_push(&c, set[i].column);
    for (size_t i = 0; tcols[i]; i++)
        zdm_strv_push(&c, tcols[i]);
    zdm_strv_push(&k, "id");
    zdm_strv_push(&src, "a");
    zdm_dw_spec s = {.plan_id = "p", .table = "t", .base = "zdm_dw_p", .set = set, .nset = nset,
                     .sources = &src, .cols = &c, .key = &k};
    zdm_buf b = {0}, drop = {0};
    d->dw_triggers(d, &s, &b, &drop);
    zdm_buf_free(&drop);
    zdm_strv_free(&c);
    zdm_strv_free(&k);
    zdm_strv_free(&src);
    /* the functions and triggers, without PostgreSQL's settings probe
     * after them (a PL/pgSQL block of its own) */
    char *sql = zdm_buf_take(&b), *probe = strstr(sql, "\nDO ");
    if (probe)
        probe[1] = '\0';
    return sql;
}

/* How a trigger computes `set`, and how SQLite's UPDATE trigger tells a
 * row still to convert: on NEW's columns when every expression reads the
 * row alone, else as a query that resolves names as the backfill's
 * UPDATE does.  A subquery's unqualified "id" rewritten to NEW."id"
 * compared the row with itself (PostgreSQL: every insert with id =
 * customer_id failed; SQLite: a row whose stored value equalled the wrong
 * one was skipped). */
/* Which settings a PostgreSQL function keeps hangs on these words. */
static void test_has_word(void **state)
{
    (void)state;
    static const char *const w[] = {"to_char", "money", NULL};
    assert_true(zdm_dwsql_has_word("to_char(price, '9D9')", w));
    assert_true(zdm_dwsql_has_word("x || TO_CHAR (d, 'TMMonth')", w));
    assert_true(zdm_dwsql_has_word("price::money::text", w));
    assert_false(zdm_dwsql_has_word("my_to_char(price)", w));
    assert_false(zdm_dwsql_has_word("to_char2(price) || moneybag", w));
    assert_false(zdm_dwsql_has_word("$to_char", w));
    assert_false(zdm_dwsql_has_word(NULL, w));
    assert_false(zdm_dwsql_has_word("", w));
}

static void test_set_forms(void **state)
{
    (void)state;
    const char *tcols[] = {"id", "a", "name", NULL};
    zdm_assign local[] = {{"b", "upper(a)", 0, 0}};
    zdm_assign sub[] = {{"b", "(SELECT name FROM c WHERE id = a)", 0, 0}};
    /* c reads b, which the first assignment writes: the backfill's
     * UPDATE reads b as it was */
    zdm_assign chained[] = {{"b", "upper(a)", 0, 0}, {"c", "lower(b)", 0, 0}};
    zdm_assign apart[] = {{"c", "lower(b)", 0, 0}, {"b", "upper(a)", 0, 0}};

    char *sql = set_sql(&zdm_dialect_pg, local, 1, tcols);
    assert_non_null(strstr(sql, "    NEW.\"b\" := (upper(NEW.\"a\"));\n"));
    assert_null(strstr(sql, "INTO NEW."));
    free(sql);
    sql = set_sql(&zdm_dialect_pg, sub, 1, tcols);
    assert_non_null(strstr(sql, "  SELECT ((SELECT name FROM c WHERE id = a))\n    INTO NEW.\"b\"\n"
                                "    FROM (SELECT NEW.*) AS \"t\";\n"));
    assert_null(strstr(sql, ":="));
    assert_null(strstr(sql, "NEW.\"id\""));
    free(sql);
    sql = set_sql(&zdm_dialect_pg, chained, 2, tcols);
    assert_non_null(strstr(sql, "  SELECT (upper(a)), (lower(b))\n    INTO NEW.\"b\", NEW.\"c\"\n"));
    assert_null(strstr(sql, ":="));
    free(sql);
    sql = set_sql(&zdm_dialect_pg, apart, 2, tcols);
    assert_non_null(strstr(sql, "    NEW.\"c\" := (lower(NEW.\"b\"));\n    NEW.\"b\" := (upper(NEW.\"a\"));\n"));
    free(sql);

    sql = set_sql(&zdm_dialect_sqlite, local, 1, tcols);
    assert_non_null(strstr(sql, "NOT (NEW.\"b\" IS (upper(NEW.\"a\")))"));
    free(sql);
    sql = set_sql(&zdm_dialect_sqlite, sub, 1, tcols);
    assert_non_null(strstr(sql, "NOT EXISTS (SELECT 1 FROM \"t\" WHERE \"id\" = NEW.\"id\" AND \"b\" IS "
                                "((SELECT name FROM c WHERE id = a)))"));
    assert_null(strstr(sql, "NEW.\"name\""));
    free(sql);
    /* SQLite's test reads every expression on the stored row at once:
     * an expression reading another target is still row-local there */
    sql = set_sql(&zdm_dialect_sqlite, chained, 2, tcols);
    assert_non_null(strstr(sql, "NOT (NEW.\"b\" IS (upper(NEW.\"a\")) AND NEW.\"c\" IS (lower(NEW.\"b\")))"));
    free(sql);

    zdm_strv c = {0};
    zdm_strv_push(&c, "a");
    zdm_strv_push(&c, "b");
    zdm_strv_push(&c, "c");
    assert_true(zdm_dwsql_assign_row_local(&zdm_dialect_pg, chained, 2, &c, 0));
    assert_false(zdm_dwsql_assign_row_local(&zdm_dialect_pg, chained, 2, &c, 1));
    assert_true(zdm_dwsql_assign_row_local(&zdm_dialect_pg, apart, 2, &c, 1));
    assert_false(zdm_dwsql_assign_row_local(&zdm_dialect_pg, sub, 1, &c, 0));
    /* SQLite's [name] and `name` quotes, which the rewrite does not read:
     * not row-local there; PostgreSQL's a[1] is a subscript */
    zdm_assign brackets[] = {{"b", "upper([a])", 0, 0}}, ticks[] = {{"b", "upper(`a`)", 0, 0}};
    zdm_assign subscript[] = {{"b", "a[1]", 0, 0}};
    assert_false(zdm_dwsql_assign_row_local(&zdm_dialect_sqlite, brackets, 1, &c, 0));
    assert_false(zdm_dwsql_assign_row_local(&zdm_dialect_sqlite, ticks, 1, &c, 0));
    assert_true(zdm_dwsql_assign_row_local(&zdm_dialect_pg, subscript, 1, &c, 0));
    zdm_strv_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_combination),
        cmocka_unit_test(test_directions),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_exact_sources),
        cmocka_unit_test(test_settings_probe),
        cmocka_unit_test(test_hostile_identifiers),
        cmocka_unit_test(test_dialects_quote_alike),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_row_local),
        cmocka_unit_test(test_set_forms),
        cmocka_unit_test(test_has_word),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zdm_strv_free(&cols);
    zdm_strv_free(&key);
    zdm_strv_free(&sources);
    return rc;
}
