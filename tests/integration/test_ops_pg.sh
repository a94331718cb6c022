#!/usr/bin/env bash
# test_ops_pg.sh -- every structured operation (op = "...") on a real
# PostgreSQL: the whole lifecycle with the old application writing through
# the old names and the new one through the view schema zdm_v_<plan>
# (search_path) during expand and the backfill (a slow worker, writes while
# it runs); the catalog after contract against the catalog before plus the
# changes each operation must make (NOT NULL set, constraints validated,
# the unique constraint on its index, types converted, the view schema and
# the dual-write triggers gone); rollback before contract restoring
# pg_dump --schema-only exactly; plan show --sql; zdm lint.
# The cases live in tests/lib/ops.sh.  ctest passes ZDM and ZDM_SRC.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/ops.sh
source "$ZDM_SRC/tests/lib/ops.sh"
t_init_dialect test_ops_pg pg

# ---- what the application is told when it breaks a rule

MSG[no_table]='does not exist'
MSG[no_legacy]='column "legacy" does not exist'
MSG[ledger_null]='null value in column "qty" of relation "ledger" violates not-null constraint'
MSG[status_null]='null value in column "status" of relation "acct" violates not-null constraint'
MSG[cents_null]='null value in column "cents" of relation "acct" violates not-null constraint'
MSG[note_null]='new row for relation "acct" violates check constraint "acct_note_not_null"'
MSG[note_null_final]='null value in column "note" of relation "acct" violates not-null constraint'
MSG[check]='violates check constraint "acct_amount_nonneg"'
MSG[unique]='duplicate key value violates unique constraint "acct_name_key"'

# ---- what plan show --sql --dialect pg must print

MSG[show_not_null_cents]='ALTER TABLE "acct" ALTER COLUMN "cents" SET NOT NULL'
MSG[show_rename_column]="format_type(a.atttypid, a.atttypmod)"
MSG[show_set_not_null]='ALTER TABLE "acct" ADD CONSTRAINT "acct_note_not_null" CHECK ("note" IS NOT NULL) NOT VALID;
--   down: ALTER TABLE "acct" DROP CONSTRAINT IF EXISTS "acct_note_not_null"
-- step 2: validate acct.note NOT NULL as a CHECK
ALTER TABLE "acct" VALIDATE CONSTRAINT "acct_note_not_null";'
MSG[show_add_check]='ALTER TABLE "acct" ADD CONSTRAINT "acct_amount_nonneg" CHECK (amount >= 0) NOT VALID;'
MSG[show_add_unique]='CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "acct_name_key" ON "acct" ("name");
--   down: DROP INDEX CONCURRENTLY IF EXISTS "acct_name_key"
-- step 2: unique constraint using index acct_name_key
ALTER TABLE "acct" ADD CONSTRAINT "acct_name_key" UNIQUE USING INDEX "acct_name_key";'
MSG[show_add_index]='CREATE INDEX CONCURRENTLY IF NOT EXISTS "acct_tag_id_amount_idx" ON "acct" ("tag_id", "amount") WHERE amount > 0;'
MSG[show_drop_index]='DROP INDEX CONCURRENTLY IF EXISTS "acct_note_idx";'

# ---- the catalog after contract: the catalog before expand plus these
# changes ("- " gone, "+ " new; see ops_catalog for the line formats)

# NOT NULL and the defaults as given (default = 0 is an integer in the plan)
EXPECT[create_table]="+ column ledger #1 id integer not null
+ column ledger #2 acct_id integer
+ column ledger #3 memo text default 'none'::text
+ column ledger #4 qty integer not null default 0
+ constraint ledger ledger_pkey p validated PRIMARY KEY (id) (index ledger_pkey)
+ index CREATE UNIQUE INDEX ledger_pkey ON public.ledger USING btree (id)"
EXPECT[drop_table]='- column tag #1 id integer not null
- column tag #2 label text not null
- constraint tag tag_pkey p validated PRIMARY KEY (id) (index tag_pkey)
- index CREATE UNIQUE INDEX tag_pkey ON public.tag USING btree (id)'
# the table moves, constraints and indexes keep their names; no view is left
EXPECT[rename_table]='- column acct #1 id integer not null
- column acct #2 name text
- column acct #3 amount integer not null
- column acct #4 note text
- column acct #5 tag_id integer
- column acct #6 legacy text
- constraint acct acct_pkey p validated PRIMARY KEY (id) (index acct_pkey)
- constraint acct acct_tag_sane c validated CHECK ((tag_id > 0))
- index CREATE INDEX acct_note_idx ON public.acct USING btree (note)
- index CREATE UNIQUE INDEX acct_pkey ON public.acct USING btree (id)
+ column account #1 id integer not null
+ column account #2 name text
+ column account #3 amount integer not null
+ column account #4 note text
+ column account #5 tag_id integer
+ column account #6 legacy text
+ constraint account acct_pkey p validated PRIMARY KEY (id) (index acct_pkey)
+ constraint account acct_tag_sane c validated CHECK ((tag_id > 0))
+ index CREATE INDEX acct_note_idx ON public.account USING btree (note)
+ index CREATE UNIQUE INDEX acct_pkey ON public.account USING btree (id)'
EXPECT[add_column_nullable]='+ column acct #7 flag integer'
EXPECT[add_column_default]="+ column acct #7 status text not null default 'active'::text"
# NOT NULL itself (attnotnull), the helper CHECK gone
EXPECT[add_column_up]='+ column acct #7 cents integer not null'
EXPECT[drop_column]='- column acct #6 legacy text'
# the new name comes last (expand added it); no view schema, no trigger left
EXPECT[rename_column]='- column acct #2 name text
+ column acct #7 title text'
# the new type, NOT NULL carried over from the old column
EXPECT[change_type]='- column acct #3 amount integer not null
+ column acct #7 amount numeric(12,2) not null'
# attnotnull; the helper CHECK gone
EXPECT[set_not_null]='- column acct #4 note text
+ column acct #4 note text not null'
# validated
EXPECT[add_check]='+ constraint acct acct_amount_nonneg c validated CHECK ((amount >= 0))'
# validated
EXPECT[add_foreign_key]='+ constraint acct acct_tag_id_fkey f validated FOREIGN KEY (tag_id) REFERENCES tag(id) ON DELETE SET NULL (index tag_pkey)'
# a constraint using the index built concurrently
EXPECT[add_unique]='+ constraint acct acct_name_key u validated UNIQUE (name) (index acct_name_key)
+ index CREATE UNIQUE INDEX acct_name_key ON public.acct USING btree (name)'
EXPECT[add_index]='+ index CREATE INDEX acct_tag_id_amount_idx ON public.acct USING btree (tag_id, amount) WHERE (amount > 0)'
EXPECT[drop_index]='- index CREATE INDEX acct_note_idx ON public.acct USING btree (note)'
EXPECT[drop_constraint]='- constraint acct acct_tag_sane c validated CHECK ((tag_id > 0))'

case_create_table
case_drop_table
case_rename_table
case_add_column_nullable
case_add_column_default
case_add_column_up
case_drop_column
case_rename_column
case_rename_column_keeps
case_change_type
case_set_not_null
case_add_check
case_add_foreign_key
case_add_unique
case_add_index
case_drop_index
case_drop_constraint

t_finish
