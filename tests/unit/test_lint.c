/*
 * test_lint.c -- zdm lint: a table of statements (safe and unsafe) with the
 * rule ids each must raise, run through zdm_lint_sql(); then plans: file
 * lines of findings and parse errors, allow_unsafe and --allow, SQLite-only
 * steps, missing downs, column types known from earlier plans, the
 * example plans in ../../plans, and the gate zdm advance passes.
 *
 * Runs from tests/unit (ctest's working directory).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lint.h"
#include "log.h"
#include "plan.h"
#include "util.h"

#define E ZDM_PHASE_EXPAND
#define C ZDM_PHASE_CONTRACT

/* Rule ids of findings [from, r->n), sorted and joined with ",". */
static char *rules_of(const zdm_lint_result *r, size_t from)
{
    const char *ids[64];
    size_t n = 0;
    for (size_t i = from; i < r->n && n < 64; i++)
        ids[n++] = r->v[i].rule;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(ids[j - 1], ids[j]) > 0; j--) {
            const char *t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    zdm_buf b = {0};
    zdm_buf_puts(&b, "");
    for (size_t i = 0; i < n; i++)
        zdm_buf_printf(&b, "%s%s", i ? "," : "", ids[i]);
    return zdm_buf_take(&b);
}

/* ---- the statement table ---- */

typedef struct lint_case {
    zdm_phase_kind phase;  /* phase of `sql` */
    int tx;                /* does the step run in a transaction */
    const char *prior;     /* SQL of an earlier plan (the table exists, its types are known) */
    const char *before;    /* SQL earlier in the same plan, in expand */
    const char *sql;
    const char *want;      /* rule ids raised by `sql`, sorted, ","-joined; "" when safe */
} lint_case;

#define VC20 "CREATE TABLE t (id bigint PRIMARY KEY, a varchar(20))"

static const lint_case cases[] = {
    /* ---- safe ---- */
    {E, 1, NULL, NULL, "CREATE TABLE t (id bigint PRIMARY KEY, a text)", ""},
    {E, 0, NULL, NULL, "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a)", ""},
    {E, 0, NULL, NULL, "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a)", ""},
    {E, 1, NULL, "CREATE TABLE n (a int)", "CREATE INDEX n_a ON n (a)", ""},
    {E, 1, NULL, NULL, "CREATE TABLE n (a int); CREATE INDEX n_a ON n (a); UPDATE n SET a = 1", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c text", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c timestamptz NOT NULL DEFAULT now()", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c integer DEFAULT 0", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c jsonb NOT NULL DEFAULT '{}'::jsonb", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u) REFERENCES u (id) NOT VALID", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t VALIDATE CONSTRAINT t_u", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD CONSTRAINT t_c CHECK (a > 0) NOT VALID", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX t_id_idx", ""},
    {C, 1, NULL, NULL, "ALTER TABLE t DROP COLUMN a", ""},
    {C, 1, NULL, NULL, "DROP TABLE t", ""},
    {C, 1, NULL, NULL, "ALTER TABLE t RENAME COLUMN a TO b", ""},
    {C, 1, NULL, NULL, "UPDATE t SET a = lower(a)", ""},
    {E, 1, NULL, NULL, "UPDATE t SET a = 1 WHERE id = 5", ""},
    {E, 1, NULL, NULL, "DELETE FROM t WHERE created_at < now() - interval '1 year'", ""},
    {E, 0, NULL, NULL, "VACUUM (ANALYZE) t", ""},
    {E, 0, NULL, NULL, "VACUUM (FULL false) t", ""},
    {E, 1, NULL, NULL, "LOCK TABLE t IN ROW EXCLUSIVE MODE", ""},
    {E, 1, VC20, NULL, "ALTER TABLE t ALTER COLUMN a TYPE varchar(50)", ""},
    {E, 1, VC20, NULL, "ALTER TABLE t ALTER COLUMN a TYPE text", ""},
    {E, 1, VC20, NULL, "ALTER TABLE t ALTER COLUMN a SET DATA TYPE character varying", ""},
    {E, 1, "CREATE TABLE t (n numeric(10, 2))", NULL, "ALTER TABLE t ALTER n TYPE numeric(12, 2)", ""},
    {C, 1, NULL,
     "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;"
     "ALTER TABLE t VALIDATE CONSTRAINT t_a_nn",
     "ALTER TABLE t ALTER COLUMN a SET NOT NULL", ""},
    {E, 0, NULL, NULL, "REINDEX INDEX CONCURRENTLY t_a", ""},
    {E, 1, NULL, NULL, "CREATE TABLE x AS SELECT 1 AS a; UPDATE x SET a = 2", ""},
    {E, 1, NULL, NULL, "SELECT 1; INSERT INTO t (a) VALUES ('x')", ""},
    {E, 0, NULL, NULL, "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a); CREATE INDEX CONCURRENTLY IF NOT EXISTS u_b ON u (b)", ""},
    {C, 1, NULL, NULL, "ALTER TABLE t ALTER COLUMN a DROP NOT NULL", ""},
    {E, 1, NULL, NULL, "CREATE VIEW v AS SELECT * FROM t", ""},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c uuid; ALTER TABLE t ALTER COLUMN c SET DEFAULT gen_random_uuid()", ""},
    {E, 0, NULL, NULL, "DROP INDEX CONCURRENTLY IF EXISTS t_a", ""},
    {E, 1, NULL, "CREATE TABLE n (a int)", "ALTER TABLE n RENAME COLUMN a TO b; DROP TABLE n", ""},
    {E, 1, NULL, NULL, "CREATE TRIGGER t_trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", ""},
    {E, 1, NULL, NULL, "-- nothing but a comment", ""},
    {E, 1, NULL, NULL, "ALTER TABLE acct RENAME TO account; CREATE VIEW acct AS SELECT * FROM account", ""},

    /* ---- index-not-concurrent ---- */
    {E, 1, NULL, NULL, "CREATE INDEX t_a ON t (a)", "index-not-concurrent"},
    {E, 1, NULL, NULL, "CREATE UNIQUE INDEX IF NOT EXISTS t_a ON public.t (a)", "index-not-concurrent"},
    {C, 1, NULL, "CREATE TABLE n (a int)", "CREATE INDEX n_a ON n (a)", "index-not-concurrent"},
    {E, 1, "CREATE TABLE n (a int)", NULL, "CREATE INDEX n_a ON n (a)", "index-not-concurrent"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD CONSTRAINT t_a_key UNIQUE (a)", "index-not-concurrent"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD PRIMARY KEY (id)", "index-not-concurrent"},
    /* ---- add-column-volatile-default ---- */
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c double precision DEFAULT random()", "add-column-volatile-default"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT clock_timestamp()", "add-column-volatile-default"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD c uuid NOT NULL DEFAULT gen_random_uuid()", "add-column-volatile-default"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c int DEFAULT (pg_catalog.random() * 10)::int", "add-column-volatile-default"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c bigserial", "add-column-volatile-default,type-serial"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c bigint GENERATED ALWAYS AS IDENTITY", "add-column-volatile-default"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) STORED", "add-column-volatile-default"},
    /* ---- alter-type-rewrite ---- */
    {E, 1, NULL, NULL, "ALTER TABLE t ALTER COLUMN a TYPE bigint", "alter-type-rewrite"},
    {C, 1, NULL, NULL, "ALTER TABLE t ALTER COLUMN a TYPE text", "alter-type-rewrite"},
    {E, 1, "CREATE TABLE t (a varchar(50))", NULL, "ALTER TABLE t ALTER COLUMN a TYPE varchar(20)", "alter-type-rewrite"},
    {E, 1, "CREATE TABLE t (a integer)", NULL, "ALTER TABLE t ALTER COLUMN a TYPE text", "alter-type-rewrite"},
    {E, 1, VC20, NULL, "ALTER TABLE t ALTER COLUMN a TYPE varchar(50) USING a::varchar(50)", "alter-type-rewrite"},
    {E, 1, "CREATE TABLE t (a text)", NULL, "ALTER TABLE t ALTER COLUMN a TYPE varchar(10)", "alter-type-rewrite"},
    /* ---- set-not-null ---- */
    {E, 1, NULL, NULL, "ALTER TABLE t ALTER COLUMN a SET NOT NULL", "set-not-null"},
    {C, 1, NULL, "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID",
     "ALTER TABLE t ALTER COLUMN a SET NOT NULL", "set-not-null"},
    {C, 1, NULL,
     "ALTER TABLE t ADD CONSTRAINT t_b_nn CHECK (b IS NOT NULL) NOT VALID;"
     "ALTER TABLE t VALIDATE CONSTRAINT t_b_nn",
     "ALTER TABLE t ALTER COLUMN a SET NOT NULL", "set-not-null"},
    {C, 1, NULL,
     "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;"
     "ALTER TABLE t VALIDATE CONSTRAINT t_a_nn; ALTER TABLE t DROP CONSTRAINT t_a_nn",
     "ALTER TABLE t ALTER COLUMN a SET NOT NULL", "set-not-null"},
    /* ---- constraint-not-valid ---- */
    {E, 1, NULL, NULL, "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u) REFERENCES u (id)", "constraint-not-valid"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD CONSTRAINT t_c CHECK (a > 0)", "constraint-not-valid"},
    {C, 1, NULL, NULL, "ALTER TABLE t ADD CHECK (a IS NOT NULL)", "constraint-not-valid"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN u_id bigint REFERENCES u (id)", "constraint-not-valid"},
    /* ---- destructive-in-expand ---- */
    {E, 1, NULL, NULL, "ALTER TABLE t DROP COLUMN a", "destructive-in-expand"},
    {E, 1, NULL, NULL, "ALTER TABLE t DROP COLUMN IF EXISTS a CASCADE", "destructive-in-expand"},
    {E, 1, NULL, NULL, "DROP TABLE t", "destructive-in-expand"},
    {E, 1, NULL, NULL, "DROP TABLE IF EXISTS s.t CASCADE", "destructive-in-expand"},
    {E, 1, NULL, NULL, "ALTER TABLE t RENAME TO t2", "destructive-in-expand"},
    {E, 1, NULL, NULL, "ALTER TABLE t RENAME TO t2; CREATE VIEW v AS SELECT * FROM t2", "destructive-in-expand"},
    {E, 1, NULL, NULL, "ALTER TABLE t RENAME COLUMN a TO b", "destructive-in-expand"},
    {E, 1, NULL, NULL, "TRUNCATE t", "destructive-in-expand"},
    /* ---- heavy-lock ---- */
    {E, 0, NULL, NULL, "VACUUM FULL t", "heavy-lock"},
    {C, 0, NULL, NULL, "VACUUM (FULL, ANALYZE) t", "heavy-lock"},
    {E, 1, NULL, NULL, "CLUSTER t USING t_pkey", "heavy-lock"},
    {E, 1, NULL, NULL, "LOCK TABLE t", "heavy-lock"},
    {E, 1, NULL, NULL, "LOCK TABLE t IN SHARE MODE", "heavy-lock"},
    {C, 1, NULL, NULL, "REINDEX TABLE t", "heavy-lock"},
    /* ---- mass-dml-in-expand ---- */
    {E, 1, NULL, NULL, "UPDATE t SET a = lower(a)", "mass-dml-in-expand"},
    {E, 1, NULL, NULL, "DELETE FROM t", "mass-dml-in-expand"},
    {E, 1, NULL, NULL, "UPDATE t SET a = 'x' WHERE 1 = 1", "mass-dml-in-expand"},
    {E, 1, NULL, NULL, "DELETE FROM t WHERE true", "mass-dml-in-expand"},
    /* ---- multi-ddl-no-transaction ---- */
    {E, 0, NULL, NULL, "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a); "
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_b ON t (b)", "multi-ddl-no-transaction"},
    {E, 0, NULL, NULL, "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int; CREATE INDEX CONCURRENTLY IF NOT EXISTS t_c ON t (c)",
     "multi-ddl-no-transaction"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c int; CREATE INDEX t_c ON t (c)", "index-not-concurrent"},
    /* ---- several at once ---- */
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c int DEFAULT random()::int, ALTER COLUMN a SET NOT NULL",
     "add-column-volatile-default,set-not-null"},
    {E, 1, NULL, NULL, "ALTER TABLE t ADD COLUMN c serial UNIQUE", "add-column-volatile-default,index-not-concurrent,type-serial"},
    {E, 1, NULL, NULL, "CREATE INDEX t_a ON t (a); UPDATE t SET a = 0; DROP TABLE u",
     "destructive-in-expand,index-not-concurrent,mass-dml-in-expand"},
    /* ---- parse-error ---- */
    {E, 1, NULL, NULL, "SELEC 1", "parse-error"},
    {E, 1, NULL, NULL, "CREATE TABLE (", "parse-error"},
    {E, 1, NULL, NULL, "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)", "parse-error"},
};

/* ---- the rules added with dialects: PostgreSQL (P) and SQLite (S) ---- */

#define P ZDM_LINT_DIALECT_PG
#define S ZDM_LINT_DIALECT_SQLITE

typedef struct dcase {
    int dialect;
    zdm_phase_kind phase;
    int tx;
    const char *before;    /* SQL earlier in the same plan, in expand */
    const char *sql;
    const char *want;
} dcase;

static const dcase dcases[] = {
    /* add-column-volatile-default: unknown functions count as volatile */
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c text DEFAULT my_func()", "add-column-volatile-default"},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c uuid DEFAULT uuid_generate_v4()", "add-column-volatile-default"},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c text DEFAULT lower('X')", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT statement_timestamp()", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c date DEFAULT CURRENT_DATE", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c jsonb DEFAULT jsonb_build_object('a', 1)", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c text DEFAULT 'a' || 'b'", ""},
    {P, E, 1, "CREATE TABLE n (a int)", "ALTER TABLE n ADD COLUMN c text DEFAULT my_func()", ""},
    /* add-column-not-null-no-default */
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c int NOT NULL", "add-column-not-null-no-default"},
    {P, C, 1, NULL, "ALTER TABLE t ADD COLUMN IF NOT EXISTS c text NOT NULL", "add-column-not-null-no-default"},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL",
     "add-column-volatile-default"},
    {P, E, 1, "CREATE TABLE n (a int)", "ALTER TABLE n ADD COLUMN c int NOT NULL", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c int", ""},
    /* drop-index-not-concurrent */
    {P, E, 1, NULL, "DROP INDEX t_a", "drop-index-not-concurrent"},
    {P, C, 1, NULL, "DROP INDEX IF EXISTS s.t_a", "drop-index-not-concurrent"},
    {P, C, 0, NULL, "DROP INDEX CONCURRENTLY IF EXISTS t_a", ""},
    {P, E, 1, "CREATE INDEX n_a ON t (a)", "DROP INDEX n_a", ""},
    {P, C, 1, "CREATE INDEX n_a ON t (a)", "DROP INDEX n_a", "drop-index-not-concurrent"},
    /* drop-database */
    {P, C, 0, NULL, "DROP DATABASE app", "drop-database"},
    {P, C, 0, NULL, "DROP DATABASE IF EXISTS app", "drop-database"},
    {P, C, 1, NULL, "DROP SCHEMA old_stuff", ""},
    /* transaction-control */
    {P, E, 1, NULL, "BEGIN; ALTER TABLE t ADD COLUMN c int; COMMIT", "transaction-control,transaction-control"},
    {P, E, 1, NULL, "START TRANSACTION", "transaction-control"},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN c int; ROLLBACK", "transaction-control"},
    {P, E, 1, NULL, "END", "transaction-control"},
    {P, E, 1, NULL, "SAVEPOINT a; ALTER TABLE t ADD COLUMN c int; RELEASE SAVEPOINT a", ""},
    {P, E, 1, NULL, "SAVEPOINT a; ROLLBACK TO SAVEPOINT a", ""},
    /* concurrent-in-transaction */
    {P, E, 1, NULL, "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a)", "concurrent-in-transaction"},
    {P, C, 1, NULL, "DROP INDEX CONCURRENTLY IF EXISTS t_a", "concurrent-in-transaction"},
    {P, E, 1, NULL, "REINDEX INDEX CONCURRENTLY t_a", "concurrent-in-transaction"},
    {P, E, 1, NULL, "VACUUM t", "concurrent-in-transaction"},
    {P, E, 0, NULL, "BEGIN; CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a); COMMIT",
     "concurrent-in-transaction,transaction-control,transaction-control"},
    {P, E, 0, NULL, "VACUUM (ANALYZE) t", ""},
    {P, E, 0, NULL, "REINDEX INDEX CONCURRENTLY t_a", ""},
    /* validate-in-same-transaction */
    {P, E, 1, NULL, "ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY (u) REFERENCES u (id) NOT VALID; "
                    "ALTER TABLE t VALIDATE CONSTRAINT c", "validate-in-same-transaction"},
    {P, C, 1, NULL, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID, VALIDATE CONSTRAINT c",
     "validate-in-same-transaction"},
    {P, E, 0, NULL, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT c",
     "multi-ddl-no-transaction"},
    {P, E, 1, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID", "ALTER TABLE t VALIDATE CONSTRAINT c", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT d", ""},
    /* detach-partition-not-concurrent */
    {P, E, 1, NULL, "ALTER TABLE m DETACH PARTITION m_2020", "detach-partition-not-concurrent"},
    {P, C, 0, NULL, "ALTER TABLE m DETACH PARTITION m_2020 FINALIZE", ""}, /* completes a CONCURRENTLY */
    {P, C, 0, NULL, "ALTER TABLE m DETACH PARTITION m_2020 CONCURRENTLY", ""},
    {P, C, 1, NULL, "ALTER TABLE m DETACH PARTITION m_2020 CONCURRENTLY", "concurrent-in-transaction"},
    {P, E, 1, NULL, "ALTER TABLE m ATTACH PARTITION m_2021 FOR VALUES FROM ('2021-01-01') TO ('2022-01-01')", ""},
    /* domain-constraint */
    {P, E, 1, NULL, "CREATE DOMAIN pos AS int CHECK (VALUE > 0)", "domain-constraint"},
    {P, E, 1, NULL, "ALTER DOMAIN pos ADD CONSTRAINT pos_c CHECK (VALUE > 0)", "domain-constraint"},
    {P, E, 1, NULL, "CREATE DOMAIN email AS text", ""},
    {P, E, 1, NULL, "CREATE DOMAIN email AS text NOT NULL", ""},
    {P, E, 1, NULL, "ALTER DOMAIN pos DROP CONSTRAINT pos_c", ""},
    /* drop-not-null */
    {P, E, 1, NULL, "ALTER TABLE t ALTER COLUMN a DROP NOT NULL", "drop-not-null"},
    {P, C, 1, NULL, "ALTER TABLE t ALTER a DROP NOT NULL", ""},
    {P, E, 1, "CREATE TABLE n (a int NOT NULL)", "ALTER TABLE n ALTER COLUMN a DROP NOT NULL", ""},
    /* not-idempotent */
    {P, E, 0, NULL, "CREATE INDEX CONCURRENTLY t_a ON t (a)", "not-idempotent"},
    {P, C, 0, NULL, "DROP INDEX CONCURRENTLY t_a", "not-idempotent"},
    {P, E, 0, NULL, "CREATE TABLE x (id bigint)", "not-idempotent"},
    {P, C, 0, NULL, "DROP TABLE x", "not-idempotent"},
    {P, C, 0, NULL, "ALTER TABLE t DROP COLUMN a", "not-idempotent"},
    {P, E, 0, NULL, "ALTER TABLE t ADD COLUMN c int", "not-idempotent"},
    {P, E, 0, NULL, "CREATE TABLE IF NOT EXISTS x (id bigint)", ""},
    {P, C, 0, NULL, "ALTER TABLE t DROP COLUMN IF EXISTS a", ""},
    {P, E, 0, NULL, "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int", ""},
    {P, E, 1, NULL, "CREATE TABLE x (id bigint)", ""},
    /* type hygiene */
    {P, E, 1, NULL, "CREATE TABLE x (id int PRIMARY KEY)", "type-int-primary-key"},
    {P, E, 1, NULL, "CREATE TABLE x (id smallint PRIMARY KEY)", "type-int-primary-key"},
    {P, E, 1, NULL, "CREATE TABLE x (id serial PRIMARY KEY)", "type-int-primary-key,type-serial"},
    {P, E, 1, NULL, "CREATE TABLE x (id bigserial PRIMARY KEY)", "type-serial"},
    {P, E, 1, NULL, "CREATE TABLE x (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)", ""},
    {P, E, 1, NULL, "CREATE TABLE x (id uuid PRIMARY KEY, n int)", ""},
    {P, E, 1, NULL, "CREATE TABLE x (name varchar(100))", "type-varchar-length"},
    {P, E, 1, NULL, "CREATE TABLE x (name varchar)", ""},
    {P, E, 1, NULL, "CREATE TABLE x (name text)", ""},
    {P, E, 1, NULL, "CREATE TABLE x (code char(2))", "type-char"},
    {P, E, 1, NULL, "CREATE TABLE x (code character(2))", "type-char"},
    {P, E, 1, NULL, "CREATE TABLE x (at timestamp)", "type-timestamp"},
    {P, E, 1, NULL, "CREATE TABLE x (at timestamp(3) without time zone)", "type-timestamp"},
    {P, E, 1, NULL, "CREATE TABLE x (at timestamptz, at2 timestamp with time zone)", ""},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN at timestamp", "type-timestamp"},
    {P, E, 1, NULL, "ALTER TABLE t ADD COLUMN code varchar(3)", "type-varchar-length"},
    {P, E, 1, NULL, "CREATE TABLE x (tags varchar(10)[])", ""},
    /* truncate-cascade */
    {P, C, 1, NULL, "TRUNCATE audit CASCADE", "truncate-cascade"},
    {P, E, 1, NULL, "TRUNCATE t CASCADE", "destructive-in-expand,truncate-cascade"},
    {P, C, 1, NULL, "TRUNCATE audit, audit_detail", ""},
    {P, C, 1, NULL, "TRUNCATE audit RESTRICT", ""},
    /* zdm:allow */
    {P, E, 1, NULL, "-- zdm:allow index-not-concurrent t has 10 rows\nCREATE INDEX t_a ON t (a)", "index-not-concurrent"},
    {P, E, 1, NULL, "CREATE INDEX t_a ON t (a); -- zdm:allow index-not-concurrent\n", "allow-no-reason,index-not-concurrent"},
    {P, E, 1, NULL, "-- zdm:allow index-not-concurent tiny\nCREATE INDEX t_a ON t (a)",
     "allow-unknown-rule,index-not-concurrent"},
    /* ---- SQLite ---- */
    {S, E, 1, NULL, "CREATE INDEX t_a ON t (a)", ""},
    {S, E, 1, NULL, "CREATE UNIQUE INDEX IF NOT EXISTS t_a ON t (a)", ""},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c TEXT", ""},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c INTEGER NOT NULL DEFAULT 0", ""},
    {S, E, 1, NULL, "ALTER TABLE t ADD c TEXT DEFAULT 'x' REFERENCES u (id)", ""},
    {S, E, 1, NULL, "CREATE TABLE x (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT)", ""},
    {S, E, 1, NULL, "CREATE TABLE IF NOT EXISTS [x y] (`id` INTEGER) WITHOUT ROWID", ""},
    {S, E, 1, NULL, "UPDATE t SET a = 1 WHERE id = 5", ""},
    {S, C, 1, NULL, "UPDATE t SET a = lower(a)", ""},
    {S, C, 1, NULL, "ALTER TABLE t DROP COLUMN a", ""},
    {S, E, 1, NULL, "INSERT INTO t (a) VALUES (1), (2)", ""},
    {S, E, 1, NULL, "INSERT OR REPLACE INTO t (a) SELECT a FROM u WHERE a > 10", ""},
    {S, E, 1, NULL, "WITH c(i) AS (SELECT 1) INSERT INTO t SELECT i FROM c", ""},
    {S, E, 1, NULL, "CREATE TABLE n (a INT); INSERT INTO n SELECT a FROM t LIMIT 100", ""},
    {S, E, 1, NULL, "CREATE TRIGGER tr AFTER UPDATE ON t BEGIN UPDATE t SET b = NEW.a WHERE id = NEW.id; END", ""},
    {S, E, 1, NULL, "PRAGMA foreign_keys = ON", "sqlite-pragma-in-transaction"},
    {S, E, 0, NULL, "PRAGMA foreign_keys = OFF", ""},
    {S, E, 1, NULL, "PRAGMA table_info(t)", ""},
    {S, E, 1, NULL, "PRAGMA main.journal_mode = WAL", "sqlite-pragma-in-transaction"},
    {S, E, 1, NULL, "SELECT 1; -- a comment with 'quote\nSELECT [a;b] FROM `c;d`", ""},
    {S, E, 1, NULL, "CREATE VIEW v AS SELECT * FROM t", ""},
    {S, E, 1, NULL, "ALTER TABLE n RENAME TO m", "destructive-in-expand"},
    {S, E, 1, NULL, "ALTER TABLE n RENAME TO m; CREATE VIEW n AS SELECT * FROM m", ""},
    {S, E, 1, NULL, "ALTER TABLE n RENAME TO m; CREATE VIEW o AS SELECT * FROM m", "destructive-in-expand"},
    {S, E, 1, "CREATE TABLE n (a INT)", "ALTER TABLE n RENAME TO m", ""},
    {S, E, 1, NULL, "ALTER TABLE t RENAME COLUMN a TO b", "destructive-in-expand"},
    {S, E, 1, NULL, "ALTER TABLE t RENAME a TO b", "destructive-in-expand"},
    {S, E, 1, NULL, "ALTER TABLE t DROP COLUMN a", "destructive-in-expand"},
    {S, E, 1, NULL, "DROP TABLE IF EXISTS \"t\"", "destructive-in-expand"},
    {S, E, 1, NULL, "DROP VIEW t_v", "destructive-in-expand"},
    {S, E, 1, "CREATE TABLE n (a INT)", "DROP TABLE n", ""},
    {S, E, 1, NULL, "UPDATE t SET a = 1", "mass-dml-in-expand"},
    {S, E, 1, NULL, "UPDATE OR IGNORE main.t SET a = 1", "mass-dml-in-expand"},
    {S, E, 1, NULL, "DELETE FROM t", "mass-dml-in-expand"},
    {S, E, 1, "CREATE TABLE n (a INT)", "DELETE FROM n", ""},
    {S, E, 1, NULL, "BEGIN; CREATE INDEX t_a ON t (a); COMMIT", "transaction-control,transaction-control"},
    {S, E, 1, NULL, "BEGIN IMMEDIATE", "transaction-control"},
    {S, E, 1, NULL, "SAVEPOINT a; ROLLBACK TO a; RELEASE a", ""},
    {S, E, 0, NULL, "VACUUM", "sqlite-vacuum"},
    {S, C, 0, NULL, "VACUUM main", "sqlite-vacuum"},
    {S, E, 1, NULL, "ALTER TABLE t ALTER COLUMN a TYPE INTEGER", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t DROP CONSTRAINT c", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c INTEGER PRIMARY KEY", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c TEXT UNIQUE", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c TEXT NOT NULL", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c TEXT NOT NULL DEFAULT NULL", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c TEXT DEFAULT CURRENT_TIMESTAMP", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c INT DEFAULT (abs(random()))", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c INT AS (a * 2) STORED", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c INT AS (a * 2) VIRTUAL", ""},
    {S, E, 1, "CREATE TABLE n (a INT)", "ALTER TABLE n ADD COLUMN c TEXT NOT NULL", ""},
    {S, E, 1, NULL, "ALTER TABLE t ADD COLUMN c INT, ADD COLUMN d INT", "sqlite-alter-unsupported"},
    {S, E, 1, NULL, "CREATE TABLE t_new (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t_new SELECT id, a FROM t",
     "sqlite-table-rebuild"},
    {S, C, 1, NULL, "CREATE TABLE t_copy AS SELECT * FROM t", "sqlite-table-rebuild"},
    {S, E, 1, NULL, "REPLACE INTO u SELECT * FROM t", "sqlite-table-rebuild"},
    {S, E, 1, NULL, "SELECT 'never ends", "parse-error"},
    {S, E, 1, NULL, "SELECT (1", "parse-error"},
    {S, E, 1, NULL, "/* never closed", "parse-error"},
    /* PostgreSQL-only rules do not apply to SQLite's SQL */
    {S, E, 1, NULL, "DROP INDEX t_a", ""},
    {S, E, 1, NULL, "CREATE TABLE x (id int PRIMARY KEY, a varchar(10), t timestamp)", ""},
    {S, E, 0, NULL, "CREATE TABLE x (id INTEGER)", ""},
    /* zdm:allow in SQLite SQL */
    {S, E, 1, NULL, "VACUUM; -- zdm:allow sqlite-vacuum run at night, offline", "sqlite-vacuum"},
    {S, E, 1, NULL, "-- zdm:allow mass-dml-in-expand\nDELETE FROM t", "allow-no-reason,mass-dml-in-expand"},
};

/* Plain SQL files (zdm lint FILE.sql): their own BEGIN/COMMIT, no step rules. */
static const dcase pcases[] = {
    {P, E, 0, NULL, "BEGIN; ALTER TABLE t ADD COLUMN c int; COMMIT", "missing-lock-timeout"},
    {P, E, 0, NULL, "SET lock_timeout = '2s'; BEGIN; ALTER TABLE t ADD COLUMN c int; COMMIT", ""},
    {P, E, 0, NULL, "SET lock_timeout TO 1000; DROP TABLE t", "destructive-in-expand,not-idempotent"},
    {P, E, 0, NULL, "SET lock_timeout TO 1000; BEGIN; DROP TABLE t; COMMIT", "destructive-in-expand"},
    {P, E, 0, NULL, "BEGIN; CREATE TABLE n (a int); CREATE INDEX n_a ON n (a); ALTER TABLE n ADD COLUMN b int; COMMIT",
     ""},
    {P, E, 0, NULL, "CREATE TABLE n (a int); CREATE INDEX n_a ON n (a)", "not-idempotent,not-idempotent"},
    {P, E, 0, NULL, "CREATE INDEX CONCURRENTLY t_a ON t (a)", "not-idempotent"},
    {P, E, 0, NULL, "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a)", ""},
    {P, E, 0, NULL, "BEGIN; CREATE INDEX CONCURRENTLY t_a ON t (a); COMMIT", "concurrent-in-transaction"},
    {P, E, 0, NULL, "SET lock_timeout = '1s'; BEGIN; SELECT 1; BEGIN; COMMIT", "transaction-control"},
    {P, E, 0, NULL, "SET lock_timeout = '1s';\nBEGIN;\nALTER TABLE t ADD COLUMN c int", "transaction-control"},
    {P, E, 0, NULL, "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN IF NOT EXISTS c int; ALTER TABLE t ADD COLUMN IF NOT EXISTS d int", ""},
    {S, E, 0, NULL, "BEGIN; CREATE INDEX i ON t (a); COMMIT", ""},
    {S, E, 0, NULL, "BEGIN; BEGIN; COMMIT", "transaction-control"},
    {S, E, 0, NULL, "BEGIN IMMEDIATE; UPDATE t SET a = 1 WHERE id = 1", "transaction-control"},
    {S, E, 0, NULL, "BEGIN; PRAGMA foreign_keys = OFF; COMMIT", "sqlite-pragma-in-transaction"},
    {S, E, 0, NULL, "PRAGMA foreign_keys = OFF; BEGIN; COMMIT", ""},
};

static void test_plain_table(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof pcases / sizeof pcases[0]; i++) {
        const dcase *c = &pcases[i];
        zdm_lint_ctx *ctx = zdm_lint_ctx_new();
        zdm_lint_result r = {0};
        zdm_lint_ctx_next_plan(ctx);
        zdm_lint_sql_file(ctx, c->sql, c->dialect, &r);
        char *got = rules_of(&r, 0);
        if (strcmp(got, c->want) != 0) {
            fprintf(stderr, "pcase %zu: %s\n  want: \"%s\"\n  got:  \"%s\"\n", i, c->sql, c->want, got);
            failed++;
        }
        free(got);
        zdm_lint_result_free(&r);
        zdm_lint_ctx_free(ctx);
    }
    assert_int_equal(failed, 0);
}

/* Each statement for its dialect: the rule ids it must raise ("" when it
 * must be accepted).  Findings a zdm:allow comment allows still count
 * here; test_inline_allow checks they are marked allowed. */
static void test_dialect_table(void **state)
{
    (void)state;
    size_t nsafe[3] = {0}, nunsafe[3] = {0};
    int failed = 0;
    for (size_t i = 0; i < sizeof dcases / sizeof dcases[0]; i++) {
        const dcase *c = &dcases[i];
        zdm_lint_ctx *ctx = zdm_lint_ctx_new();
        zdm_lint_result r = {0};
        zdm_lint_ctx_next_plan(ctx);
        if (c->before)
            assert_int_equal(zdm_lint_sql_dialect(ctx, c->before, c->dialect, E, 1, &r), 0);
        size_t from = r.n;
        int rc = zdm_lint_sql_dialect(ctx, c->sql, c->dialect, c->phase, c->tx, &r);
        assert_int_equal(rc, strstr(c->want, "parse-error") ? -1 : 0);
        char *got = rules_of(&r, from);
        if (strcmp(got, c->want) != 0) {
            fprintf(stderr, "dcase %zu (%s): %s\n  want: \"%s\"\n  got:  \"%s\"\n", i,
                    c->dialect == P ? "pg" : "sqlite", c->sql, c->want, got);
            for (size_t k = from; k < r.n; k++)
                fprintf(stderr, "    %s: %s\n", r.v[k].rule, r.v[k].message);
            failed++;
        }
        for (size_t k = from; k < r.n; k++) {
            const zdm_lint_rule *ru = zdm_lint_rule_find(r.v[k].rule);
            assert_non_null(ru);
            assert_true(ru->dialects & (unsigned)c->dialect); /* a rule fires only for its dialects */
            assert_non_null(r.v[k].hint);
            assert_int_equal(r.v[k].dialect, c->dialect);
            assert_true(r.v[k].col >= 1);
        }
        *(c->want[0] ? &nunsafe[c->dialect] : &nsafe[c->dialect]) += 1;
        free(got);
        zdm_lint_result_free(&r);
        zdm_lint_ctx_free(ctx);
    }
    assert_int_equal(failed, 0);
    /* With the PostgreSQL table above: at least 150 statements, both
     * dialects, each with statements to flag and to accept. */
    assert_true(sizeof cases / sizeof cases[0] + sizeof dcases / sizeof dcases[0] >= 150);
    assert_true(nsafe[S] >= 20 && nunsafe[S] >= 20);
    assert_true(nsafe[P] >= 20 && nunsafe[P] >= 20);
}

/* Every rule has statements in the tables that raise it. */
static void test_every_rule_tested(void **state)
{
    (void)state;
    size_t n;
    const zdm_lint_rule *rules = zdm_lint_rules(&n);
    for (size_t i = 0; i < n; i++) {
        const char *id = rules[i].id;
        int seen = 0;
        for (size_t k = 0; k < sizeof cases / sizeof cases[0] && !seen; k++)
            seen = strstr(cases[k].want, id) != NULL;
        for (size_t k = 0; k < sizeof dcases / sizeof dcases[0] && !seen; k++)
            seen = strstr(dcases[k].want, id) != NULL;
        for (size_t k = 0; k < sizeof pcases / sizeof pcases[0] && !seen; k++)
            seen = strstr(pcases[k].want, id) != NULL;
        /* Plan-level rules are tested with plans below. */
        /* (long-transaction needs a database: test_lint_db.sh.) */
        if (!seen && strcmp(id, "missing-down") != 0 && strcmp(id, "sqlite-only") != 0 &&
            strcmp(id, "missing-not-before") != 0 && /* test_soak */
            strcmp(id, "long-transaction") != 0) {
            fprintf(stderr, "rule %s has no statement in the tables\n", id);
            fail();
        }
        assert_true(rules[i].dialects != 0);
    }
}

static void test_statement_table(void **state)
{
    (void)state;
    size_t nsafe = 0, nunsafe = 0;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const lint_case *c = &cases[i];
        zdm_lint_ctx *ctx = zdm_lint_ctx_new();
        zdm_lint_result r = {0};
        if (c->prior) {
            assert_int_equal(zdm_lint_sql(ctx, c->prior, E, 1, &r), 0);
            zdm_lint_ctx_next_plan(ctx);
        }
        if (c->before)
            assert_int_equal(zdm_lint_sql(ctx, c->before, E, 1, &r), 0);
        size_t from = r.n;
        int rc = zdm_lint_sql(ctx, c->sql, c->phase, c->tx, &r);
        assert_int_equal(rc, strcmp(c->want, "parse-error") == 0 ? -1 : 0);
        char *got = rules_of(&r, from);
        if (strcmp(got, c->want) != 0) {
            fprintf(stderr, "case %zu: %s\n  want: \"%s\"\n  got:  \"%s\"\n", i, c->sql, c->want, got);
            for (size_t k = from; k < r.n; k++)
                fprintf(stderr, "    %s: %s\n", r.v[k].rule, r.v[k].message);
            failed++;
        }
        for (size_t k = from; k < r.n; k++) {
            assert_non_null(r.v[k].hint); /* every finding says what to do instead */
            assert_true(r.v[k].message[0] != '\0');
            assert_int_equal(r.v[k].line, 1);
        }
        *(c->want[0] ? &nunsafe : &nsafe) += 1;
        free(got);
        zdm_lint_result_free(&r);
        zdm_lint_ctx_free(ctx);
    }
    assert_int_equal(failed, 0);
    assert_true(nsafe >= 20);
    assert_true(nunsafe >= 20);
    assert_true(nsafe + nunsafe >= 40);
}

/* Every rule of the table above is in the rule list, with a summary. */
static void test_rules(void **state)
{
    (void)state;
    size_t n;
    const zdm_lint_rule *rules = zdm_lint_rules(&n);
    const char *want[] = {"parse-error", "index-not-concurrent", "add-column-volatile-default",
                          "alter-type-rewrite", "set-not-null", "constraint-not-valid",
                          "destructive-in-expand", "heavy-lock", "missing-down",
                          "mass-dml-in-expand", "multi-ddl-no-transaction"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const zdm_lint_rule *r = zdm_lint_rule_find(want[i]);
        assert_non_null(r);
        assert_true(strlen(r->summary) > 10);
        assert_int_equal(r->severity, strcmp(want[i], "missing-down") == 0 ? ZDM_LINT_WARNING : ZDM_LINT_ERROR);
    }
    assert_true(n >= sizeof want / sizeof want[0]);
    assert_null(zdm_lint_rule_find("no-such-rule"));
    assert_string_equal(rules[0].id, "parse-error");
}

/* Lines within one step's SQL: the statement's first line, after blanks
 * and comments; a parse error's line is where the parser stopped. */
static void test_lines_in_sql(void **state)
{
    (void)state;
    zdm_lint_ctx *ctx = zdm_lint_ctx_new();
    zdm_lint_result r = {0};
    assert_int_equal(zdm_lint_sql(ctx, "SELECT 1;\n-- why\n/* more\n why */\n\nCREATE INDEX i ON t (a);\n"
                                       "UPDATE t\n SET a = 1", E, 1, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.v[0].rule, "index-not-concurrent");
    assert_int_equal(r.v[0].line, 6);
    assert_string_equal(r.v[1].rule, "mass-dml-in-expand");
    assert_int_equal(r.v[1].line, 7);
    zdm_lint_result_free(&r);

    assert_int_equal(zdm_lint_sql(ctx, "SELECT 1;\n\nSELECT 'é', 2\n  FROM t WHER x", E, 1, &r), -1);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].rule, "parse-error");
    assert_int_equal(r.v[0].line, 4);
    assert_non_null(strstr(r.v[0].message, "syntax error at or near \"x\""));
    zdm_lint_result_free(&r);

    /* The second DDL on the table is where a transaction-less step goes wrong. */
    assert_int_equal(zdm_lint_sql(ctx, "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (a);\n"
                                       "CREATE INDEX CONCURRENTLY IF NOT EXISTS b ON t (b);", E, 0, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].rule, "multi-ddl-no-transaction");
    assert_int_equal(r.v[0].line, 2);
    zdm_lint_result_free(&r);
    zdm_lint_ctx_free(ctx);
}

/* ---- plans ---- */

static zdm_plan *load(const char *path, const char *src)
{
    zdm_plan *p = NULL;
    zdm_diags d = {0};
    int rc = zdm_plan_load_buffer(path, src, strlen(src), &p, &d);
    for (size_t i = 0; i < d.msgs.n; i++)
        fprintf(stderr, "  %s\n", d.msgs.v[i]);
    assert_int_equal(rc, 0);
    zdm_diags_free(&d);
    return p;
}

static const zdm_lint_finding *find(const zdm_lint_result *r, const char *rule, int nth)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].rule, rule) == 0 && nth-- == 0)
            return &r->v[i];
    return NULL;
}

/* missing-not-before: a plan run-due would never contract (no soak time
 * of its own, none from zdm.toml) is warned about, at its [contract]
 * table; a not_before, zdm.toml's default (applied to not_before_ms),
 * allow_unsafe and a baseline each quiet it. */
static void test_soak(void **state)
{
    (void)state;
    const char *base = "[[expand.steps]]\nsql = \"CREATE TABLE t (a int)\"\ndown = \"DROP TABLE t\"\n";
    zdm_plan *p = load("plans/s1.toml", base);
    zdm_lint_result r = {0};
    zdm_lint_plan_soak(p, 0, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].rule, "missing-not-before");
    assert_int_equal(r.v[0].severity, ZDM_LINT_WARNING);
    assert_int_equal(r.v[0].line, 1);
    assert_string_equal(r.v[0].file, "plans/s1.toml");
    assert_non_null(strstr(r.v[0].message, "plan s1 has no soak time"));
    assert_false(r.v[0].allowed);
    zdm_lint_result_free(&r);
    memset(&r, 0, sizeof r);
    p->not_before_ms = 24 * 3600 * 1000; /* what zdm_project_apply_defaults does */
    zdm_lint_plan_soak(p, 0, &r);
    assert_int_equal(r.n, 0);
    zdm_plan_free(p);

    char *src = zdm_xasprintf("%s\n[contract]\nverify = \"SELECT true\"\n", base);
    p = load("plans/s2.toml", src);
    zdm_lint_plan_soak(p, ZDM_LINT_DIALECT_SQLITE, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].line, 5); /* the [contract] table */
    assert_int_equal(r.v[0].dialect, ZDM_LINT_DIALECT_SQLITE);
    zdm_lint_result_free(&r);
    memset(&r, 0, sizeof r);
    zdm_plan_free(p);
    free(src);

    src = zdm_xasprintf("%s\n[contract]\nnot_before = \"cutover + 1h\"\n", base);
    p = load("plans/s3.toml", src);
    zdm_lint_plan_soak(p, 0, &r);
    assert_int_equal(r.n, 0);
    zdm_plan_free(p);
    free(src);

    src = zdm_xasprintf("allow_unsafe = [{rule = \"missing-not-before\", reason = \"contracted by hand\"}]\n%s", base);
    p = load("plans/s4.toml", src);
    zdm_lint_plan_soak(p, 0, &r);
    assert_int_equal(r.n, 1);
    assert_true(r.v[0].allowed);
    assert_string_equal(r.v[0].allowed_by, "contracted by hand");
    zdm_lint_result_free(&r);
    zdm_plan_free(p);
    free(src);
}

static const char *const LINES_PLAN =
    "description = \"lines\"\n"                           /* 1 */
    "\n"                                                   /* 2 */
    "[[expand.steps]]\n"                                   /* 3 */
    "sql = \"CREATE INDEX a ON t (a)\"\n"                  /* 4 */
    "down = \"DROP INDEX a\"\n"                            /* 5 */
    "\n"                                                   /* 6 */
    "[[expand.steps]]\n"                                   /* 7 */
    "sql.sqlite = \"SELECT 1\"\n"                          /* 8 */
    "sql.pg = \"\"\"\n"                                    /* 9 */
    "SELECT 1;\n"                                          /* 10 */
    "UPDATE t SET a = 1\"\"\"\n"                           /* 11 */
    "down = '''SELECT 1;\n"                                /* 12 */
    "SELECT (;'''\n"                                       /* 13 */
    "\n"                                                   /* 14 */
    "[[expand.steps]]\n"                                   /* 15 */
    "sql = \"\"\"\n"                                       /* 16 */
    "SELECT 1;\n"                                          /* 17 */
    "SELEC 2\"\"\"\n"                                      /* 18 */
    "down = \"SELECT 1\"\n"                                /* 19 */
    "\n"                                                   /* 20 */
    "[[contract.steps]]\n"                                 /* 21 */
    "sql = \"SELECT 1;\\nALTER TABLE t ALTER a TYPE int8\"\n" /* 22: \n is an escape */
    "\n"                                                   /* 23 */
    "[[contract.steps]]\n"                                 /* 24 */
    "sql = \"\"\"ALTER TABLE t\n"                          /* 25 */
    "  ADD CONSTRAINT c CHECK (a > 0);\n"                  /* 26 */
    "CLUSTER t\"\"\"\n";                                   /* 27 */

static void test_plan_lines(void **state)
{
    (void)state;
    zdm_plan *p = load("plans/0009_lines.toml", LINES_PLAN);
    zdm_lint_result r = {0};
    zdm_lint_plan(p, NULL, LINES_PLAN, &r);
    const zdm_lint_finding *f;

    assert_non_null(f = find(&r, "index-not-concurrent", 0));
    assert_int_equal(f->line, 4);
    assert_int_equal(f->step, 1);
    assert_int_equal(f->phase, E);
    assert_string_equal(f->plan, "0009_lines");
    assert_string_equal(f->file, "plans/0009_lines.toml");

    /* """ then a newline: the text starts on the next line. */
    assert_non_null(f = find(&r, "mass-dml-in-expand", 0));
    assert_int_equal(f->line, 11);
    assert_int_equal(f->step, 2);
    /* ''' without a newline: the text starts on that line; downs are
     * parsed too. */
    assert_non_null(f = find(&r, "parse-error", 0));
    assert_int_equal(f->line, 13);
    assert_int_equal(f->step, 2);
    assert_non_null(strstr(f->message, "down"));
    assert_non_null(f = find(&r, "parse-error", 1));
    assert_int_equal(f->line, 18);
    assert_int_equal(f->step, 3);
    assert_non_null(strstr(f->message, "syntax error at or near \"SELEC\""));

    /* A one-line string with an escaped newline stays on its line. */
    assert_non_null(f = find(&r, "alter-type-rewrite", 0));
    assert_int_equal(f->line, 22);
    assert_int_equal(f->phase, C);
    assert_non_null(strstr(f->message, "TYPE bigint"));
    assert_non_null(f = find(&r, "constraint-not-valid", 0));
    assert_int_equal(f->line, 25);
    assert_int_equal(f->step, 2);
    assert_non_null(f = find(&r, "heavy-lock", 0));
    assert_int_equal(f->line, 27);

    /* Expand step 2 has a down for both; step 1 too: no missing-down. */
    assert_null(find(&r, "missing-down", 0));
    assert_int_equal(zdm_lint_count(&r, ZDM_LINT_ERROR, -1), 7);
    assert_int_equal(zdm_lint_count(&r, ZDM_LINT_ERROR, E), 4);
    assert_int_equal(zdm_lint_count(&r, ZDM_LINT_ERROR, C), 3);

    zdm_buf b = {0};
    zdm_lint_format(find(&r, "index-not-concurrent", 0), &b);
    assert_string_equal(b.data, "plans/0009_lines.toml:4:8: error[index-not-concurrent]: CREATE INDEX a on t "
                                "without CONCURRENTLY blocks writes to t until the index is built -- CREATE "
                                "INDEX CONCURRENTLY in a step of its own (zdm runs it outside a transaction)");
    zdm_buf_free(&b);
    zdm_lint_result_free(&r);
    zdm_plan_free(p);
}

static const char *const ALLOW_PLAN =
    "description = \"allowed\"\n"
    "allow_unsafe = [\"index-not-concurrent\", {rule = \"heavy-lock\", reason = \"maintenance window\"},\n"
    "                \"index-not-concurent\"]\n"
    "[[expand.steps]]\n"
    "sql = \"CREATE INDEX a ON t (a)\"\n"
    "down = \"DROP INDEX a\"\n"
    "[[expand.steps]]\n"
    "sql = \"LOCK TABLE t\"\n"
    "down = \"SELECT 1\"\n"
    "[[expand.steps]]\n"
    "sql = \"UPDATE t SET a = 0\"\n"
    "down = \"SELECT 1\"\n"
    "[[contract.steps]]\n"
    "sql = \"VACUUM FULL t\"\n";

static void test_allow_unsafe(void **state)
{
    (void)state;
    zdm_plan *p = load("plans/0010_allowed.toml", ALLOW_PLAN);
    zdm_lint_result r = {0};
    zdm_lint_plan(p, NULL, ALLOW_PLAN, &r);
    const zdm_lint_finding *f;
    assert_non_null(f = find(&r, "index-not-concurrent", 0));
    assert_true(f->allowed);
    assert_string_equal(f->allowed_by, "allow_unsafe");
    assert_non_null(f = find(&r, "heavy-lock", 0));
    assert_true(f->allowed);
    assert_string_equal(f->allowed_by, "maintenance window");
    assert_non_null(f = find(&r, "heavy-lock", 1)); /* VACUUM FULL in contract */
    assert_true(f->allowed);
    assert_non_null(f = find(&r, "mass-dml-in-expand", 0));
    assert_false(f->allowed);
    /* The misspelt id: a warning pointing at it. */
    assert_non_null(f = find(&r, "allow-unknown-rule", 0));
    assert_int_equal(f->severity, ZDM_LINT_WARNING);
    assert_int_equal(f->line, 3);
    assert_non_null(strstr(f->message, "did you mean \"index-not-concurrent\""));
    assert_int_equal(zdm_lint_count(&r, ZDM_LINT_ERROR, -1), 1);
    assert_int_equal(zdm_lint_count(&r, ZDM_LINT_WARNING, -1), 1);

    zdm_buf b = {0};
    zdm_lint_format(find(&r, "heavy-lock", 0), &b);
    assert_non_null(strstr(b.data, " (allowed: maintenance window)"));
    zdm_buf_free(&b);

    /* --allow: the rest, by id, comma-separated. */
    zdm_err err;
    zdm_err_clear(&err);
    assert_int_equal(zdm_lint_allow_list(&r, " mass-dml-in-expand ,missing-down", &err), 0);
    assert_int_equal(zdm_lint_count(&r, ZDM_LINT_ERROR, -1), 0);
    assert_string_equal(find(&r, "mass-dml-in-expand", 0)->allowed_by, "--allow");
    assert_int_equal(zdm_lint_allow_list(&r, "heavy-lok", &err), ZDM_EXIT_USAGE);
    assert_string_equal(err.msg, "--allow: \"heavy-lok\" is not a lint rule (did you mean \"heavy-lock\"?)");
    assert_int_equal(zdm_lint_allow_list(&r, NULL, &err), 0);
    assert_int_equal(zdm_lint_allow_list(&r, "", &err), 0);
    zdm_lint_result_free(&r);
    zdm_plan_free(p);
}

static const char *const DIALECT_PLAN =
    "description = \"dialects\"\n"
    "[[expand.steps]]\n"
    "sql.sqlite = \"CREATE INDEX a ON t (a)\"\n"  /* SQLite only: SQLite rules (fine there) */
    "down.sqlite = \"DROP INDEX a\"\n"
    "[[expand.steps]]\n"
    "sql.sqlite = \"CREATE INDEX b ON t (b)\"\n"   /* the pg variant is the one linted */
    "sql.pg = \"CREATE INDEX CONCURRENTLY b ON t (b)\"\n"
    "[[expand.steps]]\n"
    "sql = \"CREATE TABLE k (id INTEGER PRIMARY KEY AUTOINCREMENT)\"\n" /* generic: pg must parse it */
    "down = \"DROP TABLE k\"\n"
    "[[contract.steps]]\n"
    "sql = \"ALTER TABLE t DROP COLUMN a\"\n";       /* no down in contract: fine */

static void test_dialects_and_downs(void **state)
{
    (void)state;
    zdm_plan *p = load("plans/0011_dialects.toml", DIALECT_PLAN);
    zdm_lint_result r = {0};
    /* A target of each dialect: its SQL with its rules. */
    zdm_lint_plan_dialect(p, NULL, DIALECT_PLAN, ZDM_LINT_DIALECT_SQLITE, &r);
    char *got = rules_of(&r, 0);
    assert_string_equal(got, "missing-down"); /* the plain CREATE INDEX is fine on SQLite */
    free(got);
    assert_int_equal(r.v[0].dialect, ZDM_LINT_DIALECT_SQLITE);
    zdm_lint_result_free(&r);
    /* No target: sql.pg / sql with PostgreSQL's rules, sql.sqlite with SQLite's. */
    zdm_lint_plan(p, NULL, DIALECT_PLAN, &r);
    got = rules_of(&r, 0);
    assert_string_equal(got, "missing-down,not-idempotent,parse-error");
    free(got);
    zdm_lint_result_free(&r);
    zdm_lint_plan_dialect(p, NULL, DIALECT_PLAN, ZDM_LINT_DIALECT_PG, &r);
    got = rules_of(&r, 0);
    assert_string_equal(got, "missing-down,not-idempotent,parse-error,sqlite-only");
    free(got);
    const zdm_lint_finding *f = find(&r, "sqlite-only", 0);
    assert_int_equal(f->severity, ZDM_LINT_INFO);
    assert_int_equal(f->step, 1);
    assert_int_equal(f->line, 2);
    assert_int_equal(find(&r, "missing-down", 0)->step, 2);
    assert_int_equal(find(&r, "missing-down", 0)->line, 5);
    assert_int_equal(find(&r, "missing-down", 0)->severity, ZDM_LINT_WARNING);
    assert_int_equal(find(&r, "parse-error", 0)->line, 9);
    assert_int_equal(zdm_lint_count(&r, ZDM_LINT_ERROR, -1), 1);
    zdm_lint_result_free(&r);
    zdm_plan_free(p);
}

/* Column types known from an earlier plan let a widening pass; the same
 * plan alone cannot tell. */
static void test_types_from_earlier_plans(void **state)
{
    (void)state;
    const char *a = "description = \"a\"\n[[expand.steps]]\n"
                    "sql = \"CREATE TABLE t (id bigint PRIMARY KEY, name varchar(20))\"\n"
                    "down = \"DROP TABLE t\"\n";
    const char *b = "description = \"b\"\nrequires = [\"0001_a\"]\n[[expand.steps]]\n"
                    "sql = \"ALTER TABLE t ALTER COLUMN name TYPE varchar(40)\"\n"
                    "down = \"SELECT 1\"\n"
                    "[[contract.steps]]\n"
                    "sql = \"ALTER TABLE t ALTER COLUMN name TYPE varchar(30)\"\n";
    zdm_plan_set set = {0};
    set.plans = zdm_xcalloc(3, sizeof *set.plans);
    set.plans[0] = load("p/0001_a.toml", a);
    set.plans[1] = load("p/0002_b.toml", b);
    set.n = 2;
    zdm_lint_result r = {0};
    zdm_lint_plan(set.plans[1], &set, b, &r);
    char *got = rules_of(&r, 0);
    assert_string_equal(got, "alter-type-rewrite"); /* only the narrowing, in contract */
    free(got);
    assert_int_equal(r.v[0].phase, C);
    assert_non_null(strstr(r.v[0].message, "(from varchar)"));
    zdm_lint_result_free(&r);

    zdm_lint_plan(set.plans[1], NULL, b, &r);
    got = rules_of(&r, 0);
    assert_string_equal(got, "alter-type-rewrite,alter-type-rewrite");
    free(got);
    zdm_lint_result_free(&r);

    /* The table of an earlier plan exists: an index on it is not "new". */
    zdm_lint_plan(set.plans[0], &set, a, &r);
    got = rules_of(&r, 0);
    assert_string_equal(got, "type-varchar-length");
    free(got);
    zdm_lint_result_free(&r);
    zdm_plan_set_free(&set);
}

/* The example plans have no error, 0004's SET NOT NULL included (type
 * and DROP NOT NULL warnings are fine), for every target. */
static void test_example_plans_clean(void **state)
{
    (void)state;
    const char *dirs[] = {"../../plans"};
    zdm_plan_set set;
    zdm_diags d = {0};
    assert_int_equal(zdm_plan_set_load(dirs, 1, &set, &d), 0);
    zdm_diags_free(&d);
    assert_true(set.n >= 6);
    for (size_t i = 0; i < set.n; i++) {
        for (int mode = 0; mode <= 2; mode++) {
            zdm_lint_result r = {0};
            zdm_lint_plan_dialect(set.plans[i], &set, NULL, mode, &r);
            for (size_t k = 0; k < r.n; k++) {
                if (r.v[k].severity != ZDM_LINT_ERROR)
                    continue;
                zdm_buf b = {0};
                zdm_lint_format(&r.v[k], &b);
                fprintf(stderr, "unexpected (mode %d): %s\n", mode, b.data);
                zdm_buf_free(&b);
            }
            assert_int_equal(zdm_lint_count(&r, ZDM_LINT_ERROR, -1), 0);
            zdm_lint_result_free(&r);
        }
    }
    zdm_plan_set_free(&set);
}

/* Plans read in requires order: a CHECK (col IS NOT NULL) added NOT VALID
 * by one plan and validated by the next lets a third's SET NOT NULL pass;
 * a VALIDATE of an earlier plan's constraint is fine; NOT VALID and its
 * VALIDATE in one step are not. */
static void test_checks_from_earlier_plans(void **state)
{
    (void)state;
    const char *a = "description = \"a\"\n[[expand.steps]]\n"
                    "sql = \"ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID\"\n"
                    "down = \"ALTER TABLE t DROP CONSTRAINT t_a_nn\"\n";
    const char *b = "description = \"b\"\nrequires = [\"0001_a\"]\n[[expand.steps]]\n"
                    "sql = \"ALTER TABLE t VALIDATE CONSTRAINT t_a_nn\"\n"
                    "down = \"SELECT 1\"\n";
    const char *c = "description = \"c\"\nrequires = [\"0002_b\"]\n[[contract.steps]]\n"
                    "sql = \"ALTER TABLE t ALTER COLUMN a SET NOT NULL\"\n";
    const char *d = "description = \"d\"\n[[expand.steps]]\n"
                    "sql = \"\"\"\nALTER TABLE t ADD CONSTRAINT t_b_nn CHECK (b IS NOT NULL) NOT VALID;\n"
                    "ALTER TABLE t VALIDATE CONSTRAINT t_b_nn\"\"\"\n"
                    "down = \"ALTER TABLE t DROP CONSTRAINT t_b_nn\"\n";
    zdm_plan_set set = {0};
    set.plans = zdm_xcalloc(5, sizeof *set.plans);
    set.plans[0] = load("p/0001_a.toml", a);
    set.plans[1] = load("p/0002_b.toml", b);
    set.plans[2] = load("p/0003_c.toml", c);
    set.plans[3] = load("p/0004_d.toml", d);
    set.n = 4;
    zdm_lint_result r = {0};
    zdm_lint_plan(set.plans[1], &set, b, &r);
    assert_int_equal(r.n, 0); /* VALIDATE of a constraint from an earlier plan */
    zdm_lint_plan(set.plans[2], &set, c, &r);
    assert_int_equal(r.n, 0); /* SET NOT NULL after the earlier plans' validated check */
    zdm_lint_plan(set.plans[2], NULL, c, &r);
    char *got = rules_of(&r, 0);
    assert_string_equal(got, "set-not-null"); /* alone, the plan cannot know */
    free(got);
    zdm_lint_result_free(&r);
    zdm_lint_plan(set.plans[3], &set, d, &r);
    got = rules_of(&r, 0);
    assert_string_equal(got, "validate-in-same-transaction");
    free(got);
    assert_int_equal(r.v[0].line, 5);
    zdm_lint_result_free(&r);
    zdm_plan_set_free(&set);
}

/* ---- the SQL zdm generates for structured operations ---- */

static const char *const OPS_BASE =
    "description = \"base\"\n"
    "[[expand.steps]]\n"
    "sql = \"\"\"\n"
    "CREATE TABLE tag (id bigint PRIMARY KEY, label text);\n"
    "CREATE TABLE acct (id bigint PRIMARY KEY, name text NOT NULL, amount integer NOT NULL,\n"
    "  note text, tag_id bigint, legacy text);\n"
    "CREATE INDEX acct_note_idx ON acct (note)\"\"\"\n"
    "down = \"SELECT 1\"\n";

/* One plan per operation (the shapes of tests/lib/ops.sh). */
static const char *const OPS_PLANS[][2] = {
    {"create_table", "[[expand.steps]]\nop = \"create_table\"\ntable = \"ledger\"\ncolumns = [\n"
                     "  {name = \"id\", type = \"bigint\", nullable = false},\n"
                     "  {name = \"memo\", type = \"text\", default = \"'none'\"},\n]\nprimary_key = [\"id\"]\n"},
    {"drop_table", "[[contract.steps]]\nop = \"drop_table\"\ntable = \"tag\"\n"},
    {"rename_table", "[[expand.steps]]\nop = \"rename_table\"\ntable = \"acct\"\nto = \"account\"\n"},
    {"add_column", "[[expand.steps]]\nop = \"add_column\"\ntable = \"acct\"\ncolumn = \"flag\"\ntype = \"integer\"\n"},
    {"add_column_default", "[[expand.steps]]\nop = \"add_column\"\ntable = \"acct\"\ncolumn = \"status\"\n"
                           "type = \"text\"\ndefault = \"'active'\"\nnullable = false\n"},
    {"add_column_up", "[[expand.steps]]\nop = \"add_column\"\ntable = \"acct\"\ncolumn = \"name_lc\"\n"
                      "type = \"text\"\nup = \"lower(name)\"\n"},
    {"drop_column", "[[contract.steps]]\nop = \"drop_column\"\ntable = \"acct\"\ncolumn = \"legacy\"\n"},
    {"rename_column", "[[expand.steps]]\nop = \"rename_column\"\ntable = \"acct\"\ncolumn = \"name\"\nto = \"title\"\n"},
    {"change_type", "[[expand.steps]]\nop = \"change_type\"\ntable = \"acct\"\ncolumn = \"amount\"\n"
                    "type = \"numeric(12,2)\"\nup = \"amount / 100.0\"\ndown = \"(amount * 100)::integer\"\n"},
    {"set_not_null", "[[expand.steps]]\nop = \"set_not_null\"\ntable = \"acct\"\ncolumn = \"note\"\n"},
    {"add_check", "[[expand.steps]]\nop = \"add_check\"\ntable = \"acct\"\ncheck = \"amount >= 0\"\n"},
    {"add_foreign_key", "[[expand.steps]]\nop = \"add_foreign_key\"\ntable = \"acct\"\ncolumns = [\"tag_id\"]\n"
                        "references = \"tag\"\nreferences_columns = [\"id\"]\non_delete = \"SET NULL\"\n"},
    {"add_unique", "[[expand.steps]]\nop = \"add_unique\"\ntable = \"acct\"\ncolumns = [\"name\"]\n"},
    {"add_index", "[[expand.steps]]\nop = \"add_index\"\ntable = \"acct\"\ncolumns = [\"tag_id\", \"amount\"]\n"
                  "where = \"amount > 0\"\n"},
    {"drop_index", "[[contract.steps]]\nop = \"drop_index\"\nindex = \"acct_note_idx\"\n"},
    {"drop_constraint", "[[contract.steps]]\nop = \"drop_constraint\"\ntable = \"acct\"\nconstraint = \"acct_c\"\n"},
};

/* What the rules say about zdm's own SQL, per operation, dialect and
 * phase ("op/dialect/phase:rule", errors and warnings).  Every
 * operation's output on both dialects goes through the same rules as
 * hand-written SQL; the list is what they find (nothing, since the SQLite
 * rules learnt that a view under the old name covers rename_table), so a
 * change in generated SQL that trips a rule shows up here. */
static const char *const OPS_KNOWN =
    "";

static void test_generated_sql(void **state)
{
    (void)state;
    zdm_buf got = {0};
    zdm_buf_puts(&got, "");
    size_t nsteps = 0;
    for (size_t i = 0; i < sizeof OPS_PLANS / sizeof OPS_PLANS[0]; i++) {
        char *src = zdm_xasprintf("description = \"%s\"\nrequires = [\"0001_base\"]\n%s", OPS_PLANS[i][0],
                                  OPS_PLANS[i][1]);
        zdm_plan_set set = {0};
        set.plans = zdm_xcalloc(3, sizeof *set.plans);
        set.plans[0] = load("p/0001_base.toml", OPS_BASE);
        set.plans[1] = load("p/0002_op.toml", src);
        set.n = 2;
        const zdm_plan *p = set.plans[1];
        for (int d = ZDM_LINT_DIALECT_PG; d <= ZDM_LINT_DIALECT_SQLITE; d++) {
            zdm_lint_ctx *ctx = zdm_lint_ctx_new();
            zdm_lint_result r = {0};
            assert_int_equal(zdm_lint_sql_dialect(ctx, zdm_step_sql(&set.plans[0]->expand[0], d), d, E, 1, &r), 0);
            zdm_lint_result_free(&r);
            zdm_lint_ctx_next_plan(ctx);
            for (int ph = 0; ph < 2; ph++) {
                const zdm_step *steps = ph == 0 ? p->expand : p->contract;
                size_t n = ph == 0 ? p->nexpand : p->ncontract;
                for (size_t k = 0; k < n; k++) {
                    const char *sql = zdm_step_sql(&steps[k], d);
                    assert_non_null(steps[k].from_op);
                    if (!sql)
                        continue; /* the op refuses this dialect (a reason says why) */
                    nsteps++;
                    size_t from = r.n;
                    int rc = zdm_lint_sql_dialect(ctx, sql, d, ph == 0 ? E : C,
                                                  zdm_step_in_transaction(&steps[k], sql), &r);
                    assert_int_equal(rc, 0); /* zdm's SQL always parses */
                    for (size_t f = from; f < r.n; f++) {
                        if (r.v[f].severity == ZDM_LINT_INFO)
                            continue;
                        char *line = zdm_xasprintf("%s/%s/%s:%s\n", OPS_PLANS[i][0], d == 1 ? "pg" : "sqlite",
                                                   ph == 0 ? "expand" : "contract", r.v[f].rule);
                        if (!strstr(got.data, line))
                            zdm_buf_puts(&got, line);
                        fprintf(stderr, "  %s    %s\n", line, r.v[f].message);
                        free(line);
                    }
                }
            }
            zdm_lint_result_free(&r);
            zdm_lint_ctx_free(ctx);
        }
        zdm_plan_set_free(&set);
        free(src);
    }
    assert_true(nsteps >= 30);
    assert_string_equal(got.data, OPS_KNOWN);
    zdm_buf_free(&got);
}

/* zdm advance's gate: refuses errors not allowed, names the rule and how
 * to allow it; before contract only the contract's findings count. */
static void test_gate(void **state)
{
    (void)state;
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    zdm_log_set_stream(devnull);
    const char *src = "description = \"gate\"\n"
                      "[[expand.steps]]\n"
                      "sql = \"CREATE INDEX a ON t (a)\"\n"
                      "down = \"DROP INDEX a\"\n"
                      "[[contract.steps]]\n"
                      "sql = \"ALTER TABLE t DROP COLUMN b\"\n";
    zdm_plan *p = load("/nonexistent/0012_gate.toml", src);
    zdm_err err;
    zdm_err_clear(&err);
    assert_int_equal(zdm_lint_gate(p, NULL, E, NULL, ZDM_LINT_DIALECT_PG, &err), ZDM_EXIT_REFUSED);
    assert_non_null(strstr(err.msg, "plan 0012_gate: zdm lint found 1 error; the first: "
                                    "/nonexistent/0012_gate.toml:3:8: error[index-not-concurrent]"));
    assert_non_null(strstr(err.detail, "--allow index-not-concurrent"));
    zdm_err_clear(&err);
    assert_int_equal(zdm_lint_gate(p, NULL, E, "index-not-concurrent", ZDM_LINT_DIALECT_PG, &err), 0);
    /* On SQLite the same plain CREATE INDEX is fine. */
    zdm_err_clear(&err);
    assert_int_equal(zdm_lint_gate(p, NULL, E, NULL, ZDM_LINT_DIALECT_SQLITE, &err), 0);
    assert_int_equal(zdm_lint_gate(p, NULL, C, NULL, ZDM_LINT_DIALECT_PG, &err), 0); /* DROP COLUMN in contract: fine */
    assert_int_equal(zdm_lint_gate(p, NULL, E, "nope", ZDM_LINT_DIALECT_PG, &err), ZDM_EXIT_USAGE);
    zdm_plan_free(p);

    const char *src2 = "description = \"gate\"\n"
                       "allow_unsafe = [{rule = \"heavy-lock\", reason = \"empty table\"}]\n"
                       "[[expand.steps]]\n"
                       "sql = \"SELECT 1\"\n"
                       "down = \"SELECT 1\"\n"
                       "[[contract.steps]]\n"
                       "sql = \"CLUSTER t; ALTER TABLE t ALTER a SET NOT NULL\"\n";
    p = load("/nonexistent/0013_gate.toml", src2);
    zdm_err_clear(&err);
    assert_int_equal(zdm_lint_gate(p, NULL, E, NULL, ZDM_LINT_DIALECT_PG, &err), ZDM_EXIT_REFUSED); /* the contract's error counts */
    assert_non_null(strstr(err.msg, "error[set-not-null]"));
    zdm_err_clear(&err);
    assert_int_equal(zdm_lint_gate(p, NULL, C, NULL, ZDM_LINT_DIALECT_PG, &err), ZDM_EXIT_REFUSED);
    assert_non_null(strstr(err.msg, "1 error in contract"));
    assert_int_equal(zdm_lint_gate(p, NULL, C, "set-not-null", ZDM_LINT_DIALECT_PG, &err), 0);
    zdm_plan_free(p);
    zdm_log_set_stream(stderr);
    fclose(devnull);
}

/* ---- large texts: what the fuzzer's slow units were made of ----
 * (tests/fuzz/seeds/fuzz_lint/slow_*.bin replay them at full size; these
 * check that the faster paths give the same answers.  Never timed.) */

/* n copies of unit, with %d in it replaced by the copy's index. */
static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    zdm_buf b = {0};
    zdm_buf_puts(&b, head);
    for (size_t i = 0; i < n; i++)
        zdm_buf_printf(&b, unit, (int)i, (int)i, (int)i);
    zdm_buf_puts(&b, tail);
    return zdm_buf_take(&b);
}

static size_t count_rule(const zdm_lint_result *r, const char *rule, int allowed)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += strcmp(r->v[i].rule, rule) == 0 && (allowed < 0 || r->v[i].allowed == allowed);
    return n;
}

static void test_large_texts(void **state)
{
    (void)state;
    const int dialects[] = {ZDM_LINT_DIALECT_PG, ZDM_LINT_DIALECT_SQLITE};
    for (size_t d = 0; d < 2; d++) {
        /* 3,000 statements, each with two zdm:allow comments: the first
         * naming the rule wins, a second reason never replaces it (the
         * first of statement 2 names another rule: its second applies). */
        char *sql = repeat("", "-- zdm:allow destructive-in-expand reason %d\n"
                               "-- zdm:allow destructive-in-expand later %d\n"
                               "DROP TABLE t%d;\n", 3000, "");
        char *wrong = strstr(sql, "-- zdm:allow destructive-in-expand reason 2\n");
        memcpy(wrong + 13, "mass-dml-in-expand   ", 21); /* same length: "destructive-in-expand" */
        zdm_lint_ctx *ctx = zdm_lint_ctx_new();
        zdm_lint_result r = {0};
        assert_int_equal(zdm_lint_sql_dialect(ctx, sql, dialects[d], E, 1, &r), 0);
        assert_int_equal(count_rule(&r, "destructive-in-expand", -1), 3000);
        assert_int_equal(count_rule(&r, "destructive-in-expand", 1), 3000);
        for (size_t i = 0; i < r.n; i++) {
            const zdm_lint_finding *f = &r.v[i];
            if (strcmp(f->rule, "destructive-in-expand") != 0)
                continue;
            int k = f->line / 3 - 1 + (f->line % 3 != 0); /* statement k is on line 3k + 3 */
            char want[64];
            snprintf(want, sizeof want, k == 2 ? "later %d" : "reason %d", k);
            assert_int_equal(f->line, 3 * k + 3);
            assert_string_equal(f->allowed_by, want);
        }
        zdm_lint_result_free(&r);
        zdm_lint_ctx_free(ctx);
        free(sql);

        /* 2,000 renames in expand; views take back the old names of the
         * even ones: only the odd renames' findings stay, in order. */
        sql = repeat("", "ALTER TABLE a%d RENAME TO b%d;\n", 2000, "");
        zdm_buf b = {0};
        zdm_buf_puts(&b, sql);
        for (int i = 1998; i >= 0; i -= 2)
            zdm_buf_printf(&b, "CREATE VIEW a%d AS SELECT 1;\n", i);
        free(sql);
        sql = zdm_buf_take(&b);
        ctx = zdm_lint_ctx_new();
        memset(&r, 0, sizeof r);
        zdm_lint_sql_dialect(ctx, sql, dialects[d], E, 1, &r);
        assert_int_equal(count_rule(&r, "destructive-in-expand", -1), 1000);
        int last = 0;
        for (size_t i = 0; i < r.n; i++) {
            if (strcmp(r.v[i].rule, "destructive-in-expand") != 0)
                continue;
            assert_true(r.v[i].line > last);
            assert_int_equal(r.v[i].line % 2, 0); /* a%d with d odd is on line d + 1 */
            last = r.v[i].line;
        }
        zdm_lint_result_free(&r);
        zdm_lint_ctx_free(ctx);
        free(sql);
    }

    /* PostgreSQL: a check added again and again is one check; VALIDATE of
     * it lets SET NOT NULL skip its scan, DROP CONSTRAINT takes that away. */
    char *sql = repeat("", "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID;\n", 1000,
                       "ALTER TABLE t ALTER a SET NOT NULL;\n"
                       "ALTER TABLE t VALIDATE CONSTRAINT c;\n"
                       "ALTER TABLE t ALTER a SET NOT NULL;\n"
                       "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID;\n"
                       "ALTER TABLE t ALTER a SET NOT NULL;\n"
                       "ALTER TABLE t DROP CONSTRAINT c;\n"
                       "ALTER TABLE t ALTER a SET NOT NULL;\n");
    zdm_lint_ctx *ctx = zdm_lint_ctx_new();
    zdm_lint_result r = {0};
    assert_int_equal(zdm_lint_sql(ctx, sql, C, 0, &r), 0);
    int lines[4], n = 0;
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.v[i].rule, "set-not-null") == 0 && n < 4)
            lines[n++] = r.v[i].line;
    assert_int_equal(n, 2);
    assert_int_equal(lines[0], 1001); /* before VALIDATE */
    assert_int_equal(lines[1], 1007); /* after DROP CONSTRAINT */
    zdm_lint_result_free(&r);
    zdm_lint_ctx_free(ctx);
    free(sql);

    /* PostgreSQL: large INSERTs and SELECTs between DDL (their parse trees
     * are never built): the DDL's findings keep their lines, and a syntax
     * error after them is still found, on its line. */
    sql = repeat("", "INSERT INTO t VALUES (%d), (1), (2), (3);\nSELECT %d, 'a;b', $$;$$ FROM t;\n"
                     "CREATE INDEX i%d ON t (a);\n", 500, "");
    ctx = zdm_lint_ctx_new();
    memset(&r, 0, sizeof r);
    assert_int_equal(zdm_lint_sql(ctx, sql, E, 1, &r), 0);
    assert_int_equal(count_rule(&r, "index-not-concurrent", -1), 500);
    for (size_t i = 0, k = 0; i < r.n; i++)
        if (strcmp(r.v[i].rule, "index-not-concurrent") == 0)
            assert_int_equal(r.v[i].line, 3 * (int)k++ + 3);
    zdm_lint_result_free(&r);
    char *bad = zdm_xasprintf("%sSELECT 1;\nINSERT INTO t VALUES (1;\n", sql);
    memset(&r, 0, sizeof r);
    assert_int_equal(zdm_lint_sql(ctx, bad, E, 1, &r), -1);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.v[0].rule, "parse-error");
    assert_int_equal(r.v[0].line, 1502);
    zdm_lint_result_free(&r);
    zdm_lint_ctx_free(ctx);
    free(bad);
    free(sql);

    /* PostgreSQL: statements whose large parts no rule reads (a view's
     * query, an UPDATE's SET list, an index's columns) are read without
     * them -- strings full of JSON's quotes, escapes and brackets included
     * -- and what the rules do read is still there. */
    char *sel = repeat("", "c%d, 'x\"{[,', E'\\\\\\'}', \"q\"\"{\", $${\"}$$, ", 800, "1");
    char *set = repeat("", "c%d = '}]\\', ", 800, "d = 1");
    char *cols = repeat("", "c%d, ", 800, "c");
    sql = zdm_xasprintf("ALTER TABLE a RENAME TO b;\n"
                        "CREATE VIEW a AS SELECT %s;\n"
                        "UPDATE t SET %s;\n"
                        "UPDATE u SET %s WHERE id = 1;\n"
                        "CREATE INDEX big ON t (%s);\n",
                        sel, set, set, cols);
    free(sel);
    free(set);
    free(cols);
    ctx = zdm_lint_ctx_new();
    memset(&r, 0, sizeof r);
    assert_int_equal(zdm_lint_sql(ctx, sql, E, 1, &r), 0);
    char *got = rules_of(&r, 0);
    assert_string_equal(got, "index-not-concurrent,mass-dml-in-expand"); /* the rename: covered by the view */
    free(got);
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.v[i].rule, "mass-dml-in-expand") == 0)
            assert_int_equal(r.v[i].line, 3);
        else
            assert_non_null(strstr(r.v[i].message, "INDEX big on t"));
    zdm_lint_result_free(&r);
    zdm_lint_ctx_free(ctx);
    free(sql);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_table),
        cmocka_unit_test(test_dialect_table),
        cmocka_unit_test(test_plain_table),
        cmocka_unit_test(test_every_rule_tested),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_lines_in_sql),
        cmocka_unit_test(test_plan_lines),
        cmocka_unit_test(test_allow_unsafe),
        cmocka_unit_test(test_dialects_and_downs),
        cmocka_unit_test(test_types_from_earlier_plans),
        cmocka_unit_test(test_example_plans_clean),
        cmocka_unit_test(test_checks_from_earlier_plans),
        cmocka_unit_test(test_generated_sql),
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_soak),
        cmocka_unit_test(test_large_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
