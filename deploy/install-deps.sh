#!/usr/bin/env bash
# Installs what zdm needs to build and test on Debian 12 (bookworm).
# Idempotent; uses sudo when not run as root.  "--list" prints the
# packages instead (.ci/run installs them itself with the same list).
set -euo pipefail
# libclang-rt-14-dev: clang's sanitizer and libFuzzer runtimes.  Bookworm's
# clang neither depends on it nor recommends it, so without it the ASan
# build cannot link (libclang_rt.asan-x86_64.a missing).
# prometheus: tests only, for promtool (test_metrics, test_operating check
# /metrics, status --format prometheus and the README's alert rules with
# it, and skip those checks without it).  Bookworm has no promtool-only
# package: this one is 19 MB to download, 96 MB installed, and on a host
# running systemd it starts a Prometheus server on :9090, as the
# postgresql and nginx packages start theirs.
# strace: tests only, to see what zdm reads and opens (no temporary file
# for a batch's journal, no table rewrite in expand's preflight); those
# checks are skipped without it.
PACKAGES="ca-certificates build-essential cmake clang libclang-rt-14-dev pkg-config git
    libpq-dev libsqlite3-dev libevent-dev libcmocka-dev libpg-query-dev libjansson-dev
    postgresql postgresql-client sqlite3 python3 procps util-linux iproute2
    jq curl nginx python3-psycopg2 python3-yaml python3-alembic zsh systemd prometheus strace"
if [ "${1:-}" = --list ]; then
    echo $PACKAGES
    exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # one word per package
$SUDO apt-get install -y -qq --no-install-recommends $PACKAGES
