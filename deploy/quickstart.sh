#!/usr/bin/env bash
# One command, fresh Debian 12: install dependencies, build zdm, and take
# every plan in plans/ through expand, backfill, cutover and contract on an
# embedded SQLite database (./zdm-demo.db), with rows to convert and the
# dual-write triggers in place.  Prints status and history at the end.
#   ZDM=/path/to/zdm          use that binary: no install, no build
#   ZDM_DEMO_DB=/path/x.db    the demo database (default ./zdm-demo.db)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ -n "${ZDM:-}" ]; then
    zdm=$ZDM
else
    deploy/install-deps.sh
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/release -j"$(nproc)"
    zdm=build/release/zdm
fi
db=${ZDM_DEMO_DB:-zdm-demo.db}

# The demo starts from an empty database, but never by deleting one that a
# process still has open (an application, a sqlite3 shell, a zdm worker):
# its next COMMIT would fail, or its committed writes vanish with the file.
holders() {
    local f abs fd pids=
    for f in "$db" "$db-wal" "$db-shm" "$db-journal"; do
        [ -e "$f" ] || continue
        abs=$(readlink -f -- "$f")
        for fd in /proc/[0-9]*/fd/*; do
            [ "$(readlink "$fd" 2>/dev/null)" = "$abs" ] || continue
            fd=${fd#/proc/}
            pids="$pids ${fd%%/*}"
        done
    done
    # shellcheck disable=SC2086 # one pid per word
    [ -z "$pids" ] || printf '%s\n' $pids | sort -un | tr '\n' ' '
}
busy=$(holders)
if [ -n "$busy" ]; then
    echo "quickstart: $db is open in process(es) $busy-- not deleting it." >&2
    for p in $busy; do echo "  $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >&2; done
    echo "stop them, or run with ZDM_DEMO_DB=another.db" >&2
    exit 3
fi
rm -f "$db" "$db-wal" "$db-shm" "$db-journal" "$db".zdm-backup-*
export ZDM_DATABASE_URL="sqlite:$db"

echo "== plans"
$zdm --plans plans plan validate
$zdm --plans plans plan graph
# The baseline first (its four phases), then sample data, then every
# other plan, in requires order, all the way.
for phase in expand backfill cutover contract; do $zdm --plans plans advance 0001_baseline -q; done
sqlite3 "$db" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)
  INSERT INTO events (project_name) SELECT CASE WHEN i % 3 = 0 THEN 'Core ' || i ELSE 'App ' || i END FROM c;
  INSERT INTO employees (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com');"
echo "== advancing every plan (zdm advance --all)"
$zdm --plans plans advance --all
echo "== status"
$zdm --plans plans status
echo "== history"
$zdm --plans plans history | tail -n 12
echo "== result: events by category"
sqlite3 "$db" "SELECT category, count(*) FROM events GROUP BY 1"
