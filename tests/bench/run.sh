#!/usr/bin/env bash
# Backfill benchmark, one command:  tests/bench/run.sh [ROWS ...]
#
# Builds zdm (Release), starts a throwaway PostgreSQL (tests/lib/pg.sh),
# and measures side by side in one run, on identical tables:
#   - zdm's backfill (one worker, unthrottled, dual-write trigger in place)
#     against one UPDATE of the same rows, and against a shell loop of psql
#     1000-row keyset batches (what people write by hand);
#   - rows/s at each table size (scaling) and the worker's peak RSS;
#   - the dual-write trigger's cost: pgbench write TPS and bulk UPDATE rows/s
#     with and without it.
# Prints ratios and writes them to tests/bench/results.txt.  Not a test:
# nothing fails on a number.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
export ZDM_SRC=$here
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DZDM_WERROR=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" --target zdm >/dev/null
source tests/lib/pg.sh
pg_start >/dev/null
export ZDM=$here/build/bench/zdm PGBENCH=$(_pg_find_bindir)/pgbench
python3 tests/bench/bench.py "${@:-100000 1000000}" | tee tests/bench/results.txt
