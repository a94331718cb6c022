#!/usr/bin/env bash
# Runs the toml-test corpus from ../shared against our decoder.
# Skips (exit 77) when the corpus is not beside the repository.
set -u
decoder=$1
shared=${ZDM_SHARED:-$ZDM_SRC/../shared}
runner=$shared/tools/toml-test-run
corpus=$shared/toml-test
if [ ! -x "$runner" ] && [ ! -f "$runner" ]; then
  echo "toml-test: $runner not found; skipping (set ZDM_SHARED to the folder holding tools/ and toml-test/)"
  exit 77
fi
if [ ! -d "$corpus" ]; then
  echo "toml-test: corpus $corpus not found; skipping"
  exit 77
fi
out=$(python3 "$runner" "$decoder" "$corpus" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 40
last=$(printf '%s\n' "$out" | tail -n 1)
case "$last" in
  *" passed, 0 failed") [ $rc -eq 0 ] && exit 0 ;;
esac
exit 1
