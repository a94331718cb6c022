#!/usr/bin/env bash
# The whole benchmark, one command:  tests/bench/run.sh
#   ROWS=100000,1000000   table sizes (the largest is the one the targets
#                         speak of: workers, SQLite; costly where uses half)
#   QUICK=1               a quick run: ROWS=20000,100000 and a short
#                         zero-downtime run on small tables
#   SECTIONS=raw,workers,where,sqlite,tax,zd   a subset
#   ZD_ARGS="..."         options of tests/bench/zero_downtime.py
#   WORKER_ROUNDS=3       rounds of 1 and 2 workers (the medians are printed)
#   BENCH_ROUNDS=3        rounds of the costly where, SQLite and trigger tax
#                         sections (medians, and every round, printed)
#
# Builds zdm (Release), starts a throwaway PostgreSQL with fsync ON (as
# production runs; tests/lib/pg.sh), and measures side by side in one run:
#   - raw speed: unthrottled backfill vs one UPDATE (PostgreSQL and SQLite),
#     the psql shell loop people write, worker peak RSS (tests/bench/bench.py);
#   - 2 workers vs 1 on evenly spread and on skewed keys;
#   - the costly-where case (a predicate that scans) vs one UPDATE;
#   - the dual-write trigger tax (pgbench, bulk UPDATEs);
#   - the zero-downtime release: the application's latency per phase for zdm
#     defaults / zdm unthrottled / a hand-written release, PostgreSQL and
#     SQLite, and a PNG per run (gnuplot) (tests/bench/zero_downtime.py).
# Writes tests/bench/results.txt and tests/bench/zero-downtime-results.txt.
# Not a test: nothing fails on a number.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
export ZDM_SRC=$here
if [ "${QUICK:-0}" = 1 ]; then
    ROWS=${ROWS:-20000,100000}
    ZD_ARGS=${ZD_ARGS:---rows 20000 --srows 50000 --idle 3}
fi
ROWS=${ROWS:-100000,1000000}
SECTIONS=${SECTIONS:-raw,workers,where,sqlite,tax,zd}
export SECTIONS
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "note: gnuplot is not installed, so no PNG (Debian: apt-get install gnuplot-nox)" >&2
fi
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DZDM_WERROR=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" --target zdm >/dev/null
source tests/lib/pg.sh
ZDM_PG_FSYNC=on pg_start >/dev/null
export ZDM=$here/build/bench/zdm PGBENCH=$(_pg_find_bindir)/pgbench
if [ "$SECTIONS" != zd ]; then
    python3 tests/bench/bench.py "${ROWS//,/ }"
fi
case ",$SECTIONS," in
*,zd,*)
    echo
    # shellcheck disable=SC2086  # ZD_ARGS is a list of options
    python3 tests/bench/zero_downtime.py ${ZD_ARGS:-} ;;
esac
