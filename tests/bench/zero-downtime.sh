#!/usr/bin/env bash
# Zero-downtime benchmark, one command:  tests/bench/zero-downtime.sh [options]
#
# A whole release (expand, backfill with dual-write, cutover, contract) under
# a working application, on PostgreSQL (a pgbench application, fsync on) and
# SQLite (a writer thread, WAL, synchronous=FULL): zdm with its defaults, zdm
# unthrottled and a hand-written release side by side.  Prints per phase the
# application's p50/p99/max latency, p99 against idle, errors, and the rows
# left unconverted; writes tests/bench/zero-downtime-results.txt and, with
# gnuplot installed, a PNG per run with the phases shaded.  Options: see
# tests/bench/zero_downtime.py --help (--rows, --srows, --tps, --writes,
# --idle, --modes, --dbs).  Not a test: nothing fails on a number.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
export ZDM_SRC=$here
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DZDM_WERROR=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" --target zdm >/dev/null
source tests/lib/pg.sh
ZDM_PG_FSYNC=on pg_start >/dev/null
export ZDM=$here/build/bench/zdm PGBENCH=$(_pg_find_bindir)/pgbench
python3 tests/bench/zero_downtime.py "$@"
