#!/usr/bin/env bash
# tests/torture/run.sh -- zdm's randomized invariant checker, one command.
#
#   tests/torture/run.sh [--seeds N] [--seed S] [--minutes M] [--db pg|sqlite|both] [--self-test] [--keep]
#
# --seed S alone replays seed S; with --seeds N it runs S .. S+N-1 (S from
# the clock when not given, and printed).  --minutes M runs seeds until M
# minutes have passed (the soak).  --self-test runs the checker against the
# deliberate bugs compiled into test builds (ZDM_MUTANT=name) and fails
# unless it catches every one.  Prints one line per seed and database, then
# "N passed, M failed" and the command that replays each failure; exits 0
# only when nothing failed.
#
# Owns: building what the checker needs (clang, ASan + UBSan, mutants on,
# in build/torture) unless ZDM_TORTURE_ZDM names a zdm built with
# -DZDM_MUTANTS=ON already; the checker itself is torture.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
zdm=${ZDM_TORTURE_ZDM:-}
if [ -z "$zdm" ]; then
    cc=clang
    command -v clang >/dev/null 2>&1 || cc=gcc
    cmake -S "$here" -B "$here/build/torture" -DCMAKE_C_COMPILER=$cc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DZDM_WERROR=ON -DZDM_SANITIZE=ON -DZDM_MUTANTS=ON >/dev/null
    cmake --build "$here/build/torture" -j"$(nproc)" --target zdm >/dev/null
    zdm=$here/build/torture/zdm
fi
exec /usr/bin/python3 "$here/tests/torture/torture.py" --zdm "$zdm" --replay "$0" "$@"
