#!/usr/bin/env bash
# The test command (README, .ci/run): installs dependencies, builds with
# gcc and -Werror, builds again with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer (plus the libFuzzer targets and the torture
# checker's deliberate bugs, inert unless ZDM_MUTANT names one), and runs
# every test: unit tests, integration tests on real PostgreSQL and SQLite,
# the toml-test corpus, bounded fuzzing and a bounded torture run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
deploy/install-deps.sh
# Fail now, naming the package, rather than at the ASan link minutes in.
tests/check-toolchain.sh
jobs=$(nproc)

echo "== gcc, -Wall -Wextra -Werror"
cmake -S . -B build/gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZDM_WERROR=ON >/dev/null
cmake --build build/gcc -j"$jobs"

echo "== clang, ASan + UBSan, fuzzers"
export ZDM_FUZZ_SECONDS=${ZDM_FUZZ_SECONDS:-60}   # read when ctest is configured
cmake -S . -B build/asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      -DZDM_WERROR=ON -DZDM_SANITIZE=ON -DZDM_FUZZ=ON -DZDM_MUTANTS=ON >/dev/null
cmake --build build/asan -j"$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build/asan --output-on-failure -j"$jobs"
