#!/usr/bin/env bash
# The dual-write trigger tax on PostgreSQL, counted in instructions:
#   tests/bench/trigger-instructions.sh
#
# The trigger tax section of run.sh times pgbench and bulk UPDATEs; on a
# shared 2-vCPU VM those times move by 0.1 to 0.3 from one round to the
# next.  This counts what the server executes instead: each workload runs
# in a single-user backend (postgres --single) under valgrind's callgrind,
# once on a table without the triggers and once on an identical table with
# the triggers zdm installs (the bench plan of bench.py: a CASE on a text
# source, `where = "category IS NULL"`), each from the same copy of the
# data directory.  The count is the same from run to run for the same
# binaries and inputs, whatever else the machine does.  Workloads:
#   pgbench write   2,000 transactions of bench.py's pgbench script (an
#                   UPDATE of one row's source, an INSERT), as statements
#   bulk touching   UPDATE of every row setting the source to itself
#   bulk not        UPDATE of every row's other column
#   bulk changing   UPDATE of every row changing the source (the function
#                   runs for each row)
# Prints the instructions of each side (the backend's start and stop, a
# run of "SELECT 1", subtracted) and their ratio.  Not a test: nothing
# fails on a number.  Needs valgrind (Debian: apt-get install valgrind).
#   ROWS=100000   rows of each table
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
export ZDM_SRC=$here
ROWS=${ROWS:-100000}
command -v valgrind >/dev/null || { echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2; exit 1; }
if [ -z "${ZDM:-}" ]; then
    cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DZDM_WERROR=OFF >/dev/null
    cmake --build build/bench -j"$(nproc)" --target zdm >/dev/null
    ZDM=$here/build/bench/zdm
fi
source tests/lib/pg.sh
pg_start >/dev/null
work=$(mktemp -d /tmp/zdm-tri.XXXXXX)
chmod 0755 "$work"
trap 'rm -rf "$work"; pg_stop' EXIT

for t in b_plain b_trig; do
    pg_psql -c "CREATE TABLE $t (id bigint PRIMARY KEY, project_name text NOT NULL,
                  payload text NOT NULL DEFAULT repeat('x', 40), category text);
                INSERT INTO $t (id, project_name) SELECT i, CASE WHEN i % 3 = 0 THEN 'Core ' || i
                  ELSE 'App ' || i END FROM generate_series(1, $ROWS) i"
done
mkdir -p "$work/plans"
cat >"$work/plans/bf.toml" <<'EOF'
description = "the trigger tax's plan (bench.py)"
[[expand.steps]]
sql = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "b_trig"
where = "category IS NULL"
set.category = "CASE WHEN project_name LIKE '%Core%' THEN 'core' ELSE 'other' END"
[backfill.dual_write]
sources = ["project_name"]
EOF
"$ZDM" --db "$ZDM_TEST_PG_URL" --plans "$work/plans" -q advance bf >/dev/null
pg_psql -c "VACUUM ANALYZE b_plain" -c "VACUUM ANALYZE b_trig" -c CHECKPOINT
settings=$(pg_psql -At -c "SELECT array_to_string(proconfig, ' ') FROM pg_proc WHERE proname = 'zdm_dw_bf_fwd'")
_pg_as_owner "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -m fast -w stop >/dev/null
_PG_RUNNING=0
cp -a "$_PG_DIR/data" "$_PG_DIR/base"

# the workloads, one statement a line (single-user mode runs each line)
python3 - "$work" "$ROWS" <<'EOF'
import random, sys
work, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
keys = [rng.randint(1, rows) for _ in range(2000)]
for t in ("b_plain", "b_trig"):
    with open(f"{work}/pgbench-{t}.sql", "w") as f:
        for i, k in enumerate(keys):
            f.write(f"UPDATE {t} SET project_name = 'Core ' || {k} WHERE id = {k};\n")
            f.write(f"INSERT INTO {t} (id, project_name) VALUES ({300000000 + i}, 'App x') ON CONFLICT DO NOTHING;\n")
    for name, col in (("touching", "project_name = project_name || ''"), ("not", "payload = payload || ''"),
                      ("changing", "project_name = project_name || 'x'")):
        with open(f"{work}/{name}-{t}.sql", "w") as f:
            f.write(f"UPDATE {t} SET {col};\n")
with open(f"{work}/empty.sql", "w") as f:
    f.write("SELECT 1;\n")
EOF
chmod 0644 "$work"/*.sql

# instructions of one single-user backend running FILE on a fresh copy
count() {
    rm -rf "$_PG_DIR/data"
    cp -a "$_PG_DIR/base" "$_PG_DIR/data"
    _pg_as_owner valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$_PG_BIN/postgres" --single -D "$_PG_DIR/data" postgres <"$1" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
base=$(count "$work/empty.sql")
echo "dual-write trigger tax in instructions, PostgreSQL $("$_PG_BIN/postgres" --version | awk '{print $3}'), $ROWS rows a table"
echo "the function keeps: $settings"
printf '%-34s %16s %16s %7s\n' workload without with ratio
for w in pgbench touching not changing; do
    a=$(( $(count "$work/$w-b_plain.sql") - base ))
    b=$(( $(count "$work/$w-b_trig.sql") - base ))
    case $w in
    pgbench) label="pgbench write (2,000 transactions)" ;;
    touching) label="bulk UPDATE touching the source" ;;
    not) label="bulk UPDATE not touching it" ;;
    changing) label="bulk UPDATE changing the source" ;;
    esac
    printf '%-34s %16s %16s %7s\n' "$label" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')"
done
