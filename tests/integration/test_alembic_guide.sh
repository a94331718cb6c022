#!/usr/bin/env bash
# docs/coming-from-alembic.md, run: an Alembic project on SQLite is
# adopted with zdm baseline (revision recorded), a zdm plan (the guide's
# own TOML) goes through every phase, a boot-time `alembic upgrade head`
# stays a no-op, autogenerate with the guide's include_object filter sees
# nothing to do (and without it would drop zdm's tables), Alembic's
# offline SQL is linted by zdm, and the verb pointer the guide shows is
# what zdm prints.  Needs python3-alembic (skips without it).
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init alembic_guide
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if ! "$py" -c 'import alembic, sqlalchemy' 2>/dev/null; then
    echo "alembic_guide: python3-alembic is not installed: skipping" >&2
    exit 77
fi
guide=$ZDM_SRC/docs/coming-from-alembic.md
# The first fenced block after a "<!-- tested: NAME -->" marker.
block() { awk -v m="<!-- tested: $1 -->" '$0 == m {f = 1; next} f && /^```/ {if (in_b) exit; in_b = 1; next} in_b {print}' "$guide"; }
alembic() { (cd "$T_DIR/app" && "$py" -m alembic "$@"); }

t_section "an Alembic project"
mkdir -p "$T_DIR/app" && cd "$T_DIR/app" || exit 1
alembic init migrations >/dev/null
sed -i "s|^sqlalchemy.url = .*|sqlalchemy.url = sqlite:///$T_DIR/app/app.db|" alembic.ini
cat >models.py <<'PY'
import sqlalchemy as sa
metadata = sa.MetaData()
users = sa.Table("users", metadata,
                 sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("email", sa.String(255), nullable=False))
PY
block include_object >filter.py
t_has "the guide's filter is there" "def include_object" "$(cat filter.py)"
"$py" - <<'PY'
import re
p = "migrations/env.py"
s = open(p).read()
s = s.replace("target_metadata = None",
              "import sys, os\nsys.path.insert(0, os.getcwd())\nfrom models import metadata as target_metadata\n"
              "from filter import include_object\nUSE_FILTER = os.environ.get('NO_FILTER') is None")
s = re.sub(r"target_metadata=target_metadata\b",
           "target_metadata=target_metadata, include_object=include_object if USE_FILTER else None", s)
open(p, "w").write(s)
PY
cat >migrations/versions/1a2b3c4d5e6f_users.py <<'PY'
"""users"""
from alembic import op
import sqlalchemy as sa
revision = "1a2b3c4d5e6f"
down_revision = None
branch_labels = None
depends_on = None
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("email", sa.String(255), nullable=False))
def downgrade():
    op.drop_table("users")
PY
alembic upgrade head >/dev/null 2>&1
t_eq "alembic upgraded" "1a2b3c4d5e6f" "$(sqlite3 app.db 'SELECT version_num FROM alembic_version')"
sqlite3 app.db "INSERT INTO users (email) VALUES ('Ada@Example.com'), ('GRACE@example.com')"

t_section "zdm baseline adopts it"
T_DB="sqlite:$T_DIR/app/app.db"; T_DIALECT=sqlite; T_SQLITE_FILE=$T_DIR/app/app.db
T_PLANS=$T_DIR/app/plans
zdm_run baseline
t_rc "baseline" 0
t_eq "the plan" "$T_PLANS/0001_baseline.toml" "$ZOUT"
t_has "the message the guide shows" "Alembic revision 1a2b3c4d5e6f; 0001_baseline stamped complete" "$ZERR"
zdm_run status
t_match "status" '0001_baseline +complete' "$ZOUT"
zdm_run history
t_has "history" "Alembic revision 1a2b3c4d5e6f" "$ZOUT"

t_section "the guide's plan, through every phase"
zdm_run new users_email_lower --op add_column
t_rc "zdm new --op add_column" 0
block plan >"$ZOUT"
t_has "the guide's plan" 'op = "set_not_null"' "$(cat "$ZOUT")"
cp "$ZOUT" "$T_PLANS/0002_users_email_lower.toml"
zdm_run plan validate
t_rc "plan validate" 0
zdm_run lint
t_rc "lint" 0
zdm_run advance --all --to backfilled
t_rc "advance --all --to backfilled" 0
zdm_run advance --all --to cut_over
t_rc "advance --all --to cut_over" 0
sqlite3 app.db "INSERT INTO users (email) VALUES ('Old@App.example')"
t_eq "the old application's write is followed" "old@app.example" "$(sqlite3 app.db "SELECT email_lower FROM users WHERE email = 'Old@App.example'")"
zdm_run advance --all
t_rc "advance --all (contract)" 0
zdm_run check
t_rc "check" 0
t_eq "filled" "ada@example.com,grace@example.com,old@app.example" "$(sqlite3 app.db "SELECT group_concat(email_lower) FROM (SELECT email_lower FROM users ORDER BY id)")"

t_section "Alembic frozen at its head: a boot-time upgrade is a no-op"
before=$(sqlite3 app.db .schema)
out=$(alembic upgrade head 2>&1); rc=$?
t_eq "alembic upgrade head: $out" 0 "$rc"
t_eq "schema untouched" "$before" "$(sqlite3 app.db .schema)"
t_eq "alembic current" "1a2b3c4d5e6f (head)" "$(alembic current 2>/dev/null)"

t_section "autogenerate with the guide's filter"
# The model follows the plan (the guide's rule), so only zdm's objects differ.
cat >>models.py <<'PY'
users.append_column(sa.Column("email_lower", sa.String(255), nullable=True))  # SQLite: set_not_null enforces it with triggers
PY
alembic revision --autogenerate -m check >"$T_DIR/auto.log" 2>&1
gen=$(ls migrations/versions/*_check.py)
t_lacks "no operation generated: $(cat "$T_DIR/auto.log")" "op." "$(sed -n '/^def upgrade/,/^def downgrade/p' "$gen")"
rm -f "$gen"
NO_FILTER=1 alembic revision --autogenerate -m nofilter >/dev/null 2>&1
gen=$(ls migrations/versions/*_nofilter.py)
t_has "without the filter Alembic would drop zdm's tables" "op.drop_table('zdm_" "$(cat "$gen")"
rm -f "$gen"

t_section "zdm lint on Alembic's offline SQL (PostgreSQL)"
cat >migrations/versions/2b3c4d5e6f70_email_lower.py <<'PY'
"""email_lower the Alembic way"""
from alembic import op
import sqlalchemy as sa
revision = "2b3c4d5e6f70"
down_revision = "1a2b3c4d5e6f"
branch_labels = None
depends_on = None
def upgrade():
    op.add_column("users", sa.Column("email_lower", sa.String(255)))
    op.execute("UPDATE users SET email_lower = lower(email)")
    op.alter_column("users", "email_lower", nullable=False)
def downgrade():
    op.drop_column("users", "email_lower")
PY
sed -i "s|^sqlalchemy.url = .*|sqlalchemy.url = postgresql://nobody@localhost/none|" alembic.ini
# Only the new revision: its table exists already (a table created in the
# same SQL is new, and lint rightly lets it be).
alembic upgrade 1a2b3c4d5e6f:head --sql >upgrade.sql 2>/dev/null
t_has "offline SQL written" "ALTER TABLE users ALTER COLUMN email_lower SET NOT NULL" "$(cat upgrade.sql)"
out=$("$ZDM" lint upgrade.sql 2>&1); rc=$?
t_eq "zdm lint upgrade.sql exit" 3 "$rc"
t_match "names set-not-null" 'upgrade.sql:[0-9]+:[0-9]+: error\[set-not-null\]' "$out"
rm migrations/versions/2b3c4d5e6f70_email_lower.py

t_section "the pointer the guide shows"
out=$("$ZDM" upgrade 2>&1)
t_has "zdm upgrade" "$(grep -A1 '^\$ zdm upgrade$' "$guide" | tail -n1)" "$out"
t_finish
