#!/usr/bin/env bash
# run.sh FUZZER_BINARY NAME -- runs one libFuzzer target for a bounded time.
#
# Seeds a fresh corpus with every .toml under ${ZDM_SHARED:-$ZDM_SRC/../shared}/toml-test
# and $ZDM_SRC/plans (those that exist), and tests/fuzz/seeds/NAME/*, runs for ${ZDM_FUZZ_SECONDS:-60}s with
# -max_len=4096, leak detection on, and exits non-zero on any crash, leak,
# timeout or sanitizer report.  Crash artifacts stay in a temporary folder
# whose path is printed; on success that folder is removed.
set -u
if [ $# -lt 1 ] || [ ! -x "$1" ]; then
  echo "usage: run.sh FUZZER_BINARY NAME" >&2
  exit 2
fi
fuzzer=$1
name=${2:-$(basename "$fuzzer")}
secs=${ZDM_FUZZ_SECONDS:-60}
[ -n "$secs" ] || secs=60
src=${ZDM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
shared=${ZDM_SHARED:-$src/../shared}

work=$(mktemp -d "${TMPDIR:-/tmp}/zdm-fuzz-$name.XXXXXX") || exit 2
corpus=$work/corpus
artifacts=$work/artifacts
mkdir -p "$corpus" "$artifacts"

n=0
for dir in "$shared/toml-test" "$src/plans"; do
  [ -d "$dir" ] || continue
  while IFS= read -r -d '' f; do
    n=$((n + 1))
    cp "$f" "$corpus/seed-$n-$(basename "$f")"
  done < <(find "$dir" -type f -name '*.toml' -print0)
done
# A target's own seeds (e.g. SQL for fuzz_lint), when it has any.
if [ -d "$src/tests/fuzz/seeds/$name" ]; then
  for f in "$src/tests/fuzz/seeds/$name"/*; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    cp "$f" "$corpus/seed-$n-$(basename "$f")"
  done
fi
echo "fuzz $name: $n seed files, ${secs}s, work folder $work"

# ASan reports leaks by default under libFuzzer; make sure nothing turns it off.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

"$fuzzer" -max_total_time="$secs" -max_len=4096 -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" >"$work/fuzz.log" 2>&1
rc=$?

tail -n 25 "$work/fuzz.log"
bad=0
[ $rc -eq 0 ] || bad=1
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$work/fuzz.log"; then
  bad=1
fi
if [ -n "$(ls -A "$artifacts")" ]; then
  bad=1
fi
if [ $bad -ne 0 ]; then
  echo "fuzz $name: FAILED (exit $rc); log and crash artifacts kept in $work" >&2
  ls -l "$artifacts" >&2
  exit 1
fi
echo "fuzz $name: ok, no crash, leak or sanitizer report in ${secs}s"
rm -rf "$work"
exit 0
