#!/usr/bin/env bash
# test_ops_sqlite.sh -- every structured operation (op = "...") SQLite
# supports, on a real SQLite file: the whole lifecycle with the old
# application writing through the old names and the new one through the
# new names during expand and the backfill (a slow worker, writes while it
# runs); sqlite_master after contract against sqlite_master before plus the
# changes each operation must make (NOT NULL and CHECK as triggers that
# refuse bad rows, UNIQUE as a unique index, no dual-write trigger left);
# rollback before contract restoring sqlite_master exactly; the operations
# SQLite cannot do (change_type, add_foreign_key, drop_constraint) refused
# with exit 3 and the reason, nothing changed; plan show --sql; zdm lint.
# The cases live in tests/lib/ops.sh.  ctest passes ZDM and ZDM_SRC.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/ops.sh
source "$ZDM_SRC/tests/lib/ops.sh"
t_init_dialect test_ops_sqlite sqlite

# rename_column: SQLite's step is static SQL (it cannot read the old
# column's type when it runs), so the plan names the type.
RC_TYPE=text

# ---- what the application is told when it breaks a rule

MSG[no_table]='no such table'
MSG[no_legacy]='no such column: legacy'
MSG[ledger_null]='NOT NULL constraint failed: ledger.qty'
MSG[status_null]='NOT NULL constraint failed: acct.status'
MSG[cents_null]='acct_cents_not_null violated'
MSG[note_null]='acct_note_not_null violated'
MSG[note_null_final]='acct_note_not_null violated'
MSG[check]='acct_amount_nonneg violated'
MSG[unique]='UNIQUE constraint failed: acct.name'

# ---- what plan show --sql --dialect sqlite must print

MSG[show_not_null_cents]='CREATE TRIGGER "acct_cents_not_null_ins" AFTER INSERT ON "acct" BEGIN'
MSG[show_rename_column]='ALTER TABLE "acct" ADD COLUMN "title" text;'
MSG[show_set_not_null]='CREATE TRIGGER "acct_note_not_null_ins" AFTER INSERT ON "acct" BEGIN
  SELECT RAISE(ABORT, '"'acct_note_not_null violated'"') FROM "acct" WHERE rowid = NEW.rowid AND NOT ("note" IS NOT NULL);
END;'
MSG[show_add_check]='CREATE TRIGGER "acct_amount_nonneg_upd" AFTER UPDATE ON "acct" BEGIN'
MSG[show_add_unique]='CREATE UNIQUE INDEX IF NOT EXISTS "acct_name_key" ON "acct" ("name");'
MSG[show_add_index]='CREATE INDEX IF NOT EXISTS "acct_tag_id_amount_idx" ON "acct" ("tag_id", "amount") WHERE amount > 0;'
MSG[show_drop_index]='DROP INDEX IF EXISTS "acct_note_idx";'

# ---- sqlite_master after contract: before expand plus these changes
# ("- " gone, "+ " new: type name on table: sql, newlines as spaces)

EXPECT[create_table]='+ table ledger on ledger: CREATE TABLE "ledger" (     "id" integer NOT NULL,     "acct_id" integer,     "memo" text DEFAULT '"'"'none'"'"',     "qty" integer NOT NULL DEFAULT 0,     PRIMARY KEY ("id") )'
EXPECT[drop_table]='- table tag on tag: CREATE TABLE tag (id integer PRIMARY KEY, label text NOT NULL)'
# no view is left under the old name
EXPECT[rename_table]='- index acct_note_idx on acct: CREATE INDEX acct_note_idx ON acct (note)
- table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)
+ index acct_note_idx on account: CREATE INDEX acct_note_idx ON "account" (note)
+ table account on account: CREATE TABLE "account" (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)'
EXPECT[add_column_nullable]='- table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)
+ table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text, "flag" integer)'
EXPECT[add_column_default]='- table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)
+ table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text, "status" text DEFAULT '"'"'active'"'"' NOT NULL)'
# NOT NULL as triggers refusing NULL (SQLite adds NOT NULL only by a rebuild)
EXPECT[add_column_up]='- table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)
+ table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text, "cents" integer)
+ trigger acct_cents_not_null_ins on acct: CREATE TRIGGER "acct_cents_not_null_ins" AFTER INSERT ON "acct" BEGIN   SELECT RAISE(ABORT, '"'"'acct_cents_not_null violated'"'"') FROM "acct" WHERE rowid = NEW.rowid AND NOT ("cents" IS NOT NULL); END
+ trigger acct_cents_not_null_upd on acct: CREATE TRIGGER "acct_cents_not_null_upd" AFTER UPDATE ON "acct" BEGIN   SELECT RAISE(ABORT, '"'"'acct_cents_not_null violated'"'"') FROM "acct" WHERE rowid = NEW.rowid AND NOT ("cents" IS NOT NULL); END'
EXPECT[drop_column]='- table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)
+ table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0))'
# the new name comes last (expand added it); no dual-write trigger left
EXPECT[rename_column]='- table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)
+ table acct on acct: CREATE TABLE acct (id integer PRIMARY KEY, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text, "title" text)'
# triggers refusing NULL, kept after contract
EXPECT[set_not_null]='+ trigger acct_note_not_null_ins on acct: CREATE TRIGGER "acct_note_not_null_ins" AFTER INSERT ON "acct" BEGIN   SELECT RAISE(ABORT, '"'"'acct_note_not_null violated'"'"') FROM "acct" WHERE rowid = NEW.rowid AND NOT ("note" IS NOT NULL); END
+ trigger acct_note_not_null_upd on acct: CREATE TRIGGER "acct_note_not_null_upd" AFTER UPDATE ON "acct" BEGIN   SELECT RAISE(ABORT, '"'"'acct_note_not_null violated'"'"') FROM "acct" WHERE rowid = NEW.rowid AND NOT ("note" IS NOT NULL); END'
# triggers refusing bad rows, kept after contract
EXPECT[add_check]='+ trigger acct_amount_nonneg_ins on acct: CREATE TRIGGER "acct_amount_nonneg_ins" AFTER INSERT ON "acct" BEGIN   SELECT RAISE(ABORT, '"'"'acct_amount_nonneg violated'"'"') FROM "acct" WHERE rowid = NEW.rowid AND NOT (amount >= 0); END
+ trigger acct_amount_nonneg_upd on acct: CREATE TRIGGER "acct_amount_nonneg_upd" AFTER UPDATE ON "acct" BEGIN   SELECT RAISE(ABORT, '"'"'acct_amount_nonneg violated'"'"') FROM "acct" WHERE rowid = NEW.rowid AND NOT (amount >= 0); END'
# the unique index is the constraint
EXPECT[add_unique]='+ index acct_name_key on acct: CREATE UNIQUE INDEX "acct_name_key" ON "acct" ("name")'
EXPECT[add_index]='+ index acct_tag_id_amount_idx on acct: CREATE INDEX "acct_tag_id_amount_idx" ON "acct" ("tag_id", "amount") WHERE amount > 0'
EXPECT[drop_index]='- index acct_note_idx on acct: CREATE INDEX acct_note_idx ON acct (note)'

# rename_table's rollback renames the table back, and SQLite rewrites the
# name in its CREATE TABLE text quoted ("acct"): the same table, but not
# the same text.  zdm cannot write sqlite_master's text itself; anything
# but this one line fails.
OPS_RB_EXPECT_DIFF_RENAME_TABLE='1,2c1,2
< index acct_note_idx ON acct: CREATE INDEX acct_note_idx ON acct (note)
< table acct ON acct: CREATE TABLE acct (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)
---
> index acct_note_idx ON acct: CREATE INDEX acct_note_idx ON "acct" (note)
> table acct ON acct: CREATE TABLE "acct" (id integer PRIMARY KEY, name text, amount integer NOT NULL, note text, tag_id integer CONSTRAINT acct_tag_sane CHECK (tag_id > 0), legacy text)'

case_create_table
case_drop_table
OPS_RB_EXPECT_DIFF=$OPS_RB_EXPECT_DIFF_RENAME_TABLE case_rename_table
case_add_column_nullable
case_add_column_default
case_add_column_up
case_drop_column
case_rename_column
case_set_not_null
case_add_check
case_add_unique
case_add_index
case_drop_index

# ---- what SQLite cannot do: refused before anything changes

refused_at_expand() {
    local op=$1 text=$2 why=$3
    t_section "sqlite: $op: refused at expand"
    ops_fresh "refused_$op"
    ops_plan "0002_$op" "$text"
    ops_show_sql sqlite "not possible on SQLite: $why"
    db_dump "$T_DIR/ref-before.dump"
    zdm_run advance "$OPS_PLAN"
    t_rc "advance $OPS_PLAN on SQLite" 3
    t_has "the reason" "has no SQL for sqlite: $why" "$ZERR"
    t_has "what to do" "run this plan on PostgreSQL, or write the change as raw SQL for SQLite; nothing was changed" "$ZERR"
    db_dump "$T_DIR/ref-after.dump"
    t_same_file "$op: catalog after the refusal" "$T_DIR/ref-before.dump" "$T_DIR/ref-after.dump"
    t_eq "$op: phase after the refusal" pending "$(zdm_phase_of "$OPS_PLAN")"
    t_eq "$op: history records the refusal" "advance refused" \
        "$(db_sql "SELECT action || ' ' || outcome FROM zdm_history WHERE plan_id = '$OPS_PLAN'")"
}
refused_at_expand change_type "$OPS_CT_PLAN" "SQLite changes a column's declared type only by rebuilding the table"
refused_at_expand add_foreign_key "$OPS_FK_PLAN" "SQLite adds a foreign key to an existing table only by rebuilding it"

# drop_constraint has only contract steps, which SQLite cannot run: the plan
# is refused at expand, before anything changes, rather than stranded after
# cutover.
t_section "sqlite: drop_constraint: refused before expand"
ops_fresh refused_drop_constraint
ops_plan 0002_drop_constraint "$OPS_DC_PLAN"
ops_show_sql sqlite "not possible on SQLite: SQLite drops a table constraint only by rebuilding the table"
db_dump "$T_DIR/dc-before.dump"
zdm_run advance "$OPS_PLAN"
t_rc "expand of drop_constraint on SQLite" 3
t_has "the reason" "contract step 1" "$ZERR"
t_has "the reason" "has no SQL for sqlite: SQLite drops a table constraint only by rebuilding the table" "$ZERR"
t_has "what to do" "nothing was changed" "$ZERR"
db_dump "$T_DIR/dc-after.dump"
t_same_file "drop_constraint: catalog after the refusal" "$T_DIR/dc-before.dump" "$T_DIR/dc-after.dump"
t_eq "drop_constraint: phase after the refusal" pending "$(zdm_phase_of "$OPS_PLAN")"
app_refused "the constraint still holds" old "CHECK constraint failed: acct_tag_sane" \
    "INSERT INTO acct (id, name, amount, tag_id) VALUES (100001, 'old', 1, 0)"

t_finish
