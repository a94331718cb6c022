#!/usr/bin/env bash
# One command, fresh Debian 12: install dependencies, build zdm, and take
# every plan in plans/ through expand, backfill, cutover and contract on an
# embedded SQLite database (./zdm-demo.db), with rows to convert and the
# dual-write triggers in place.  Prints status and history at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
deploy/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)"
zdm=build/release/zdm
db=zdm-demo.db
rm -f "$db" "$db".zdm-backup-*
export ZDM_DATABASE_URL="sqlite:$db"

echo "== plans"
$zdm --plans plans plan validate
# The baseline first, then sample data, then everything else in order.
for phase in expand backfill cutover contract; do $zdm --plans plans advance 0001_baseline -q; done
sqlite3 "$db" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)
  INSERT INTO events (project_name) SELECT CASE WHEN i % 3 = 0 THEN 'Core ' || i ELSE 'App ' || i END FROM c;
  INSERT INTO employees (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com');"
echo "== advancing every plan, one phase at a time"
for round in 1 2 3 4 5 6 7 8; do
    $zdm --plans plans check >/dev/null 2>&1 && break
    for id in $($zdm --plans plans status --json | python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)["plans"] if p["phase"] != "complete"))'); do
        $zdm --plans plans advance "$id" || { rc=$?; [ $rc -eq 3 ] || exit $rc; }
    done
done
echo "== status"
$zdm --plans plans status
echo "== history"
$zdm --plans plans history | tail -n 12
echo "== result: events by category"
sqlite3 "$db" "SELECT category, count(*) FROM events GROUP BY 1"
