#!/usr/bin/env bash
# Checks, before anything is built, that every piece the test command
# (tests/run.sh) needs is present, and names the Debian package that
# provides each missing one.  A fresh Debian 12 root taught us why: clang
# links without its sanitizer runtime package (libclang-rt-14-dev is not
# even a recommendation of clang on bookworm), so the ASan build failed
# only after the gcc build, minutes in, with a linker error naming a file
# nobody knows how to get.
#   tests/check-toolchain.sh        exit 0: all there; 2: missing (listed)
# CLANG and CC_GCC override the compilers (the tests use that to simulate
# a clang without its runtime).
set -u
CLANG=${CLANG:-clang}
CC_GCC=${CC_GCC:-gcc}
missing=()          # "what: package" lines
pkgs=()

need() {            # need PACKAGE WHAT
    missing+=("$2 (package $1)")
    pkgs+=("$1")
}
have_cmd() { command -v "$1" >/dev/null 2>&1; }

for pair in gcc:build-essential make:build-essential cmake:cmake \
            pkg-config:pkg-config python3:python3 sqlite3:sqlite3 psql:postgresql-client \
            jq:jq curl:curl nginx:nginx systemd-analyze:systemd flock:util-linux \
            setsid:util-linux pkill:procps git:git; do
    c=${pair%%:*}; p=${pair#*:}
    [ "$c" = gcc ] && c=$CC_GCC
    have_cmd "$c" || have_cmd "/usr/sbin/$c" || need "$p" "command $c"
done

# PostgreSQL server binaries live outside PATH on Debian.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! have_cmd initdb; then
    need postgresql "PostgreSQL server (initdb, pg_ctl)"
fi

if have_cmd pkg-config; then
    for pair in libpq:libpq-dev sqlite3:libsqlite3-dev libevent:libevent-dev \
                jansson:libjansson-dev cmocka:libcmocka-dev; do
        m=${pair%%:*}; p=${pair#*:}
        pkg-config --exists "$m" || need "$p" "pkg-config module $m"
    done
fi
[ -f /usr/include/pg_query.h ] || [ -f /usr/local/include/pg_query.h ] ||
    need libpg-query-dev "header pg_query.h"

# The modules come from Debian's packages, so ask Debian's python3 (a
# pyenv or venv python3 earlier in PATH does not see them; the tests
# look for /usr/bin/python3 first for the same reason).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if have_cmd "$py"; then
    "$py" -c 'import psycopg2' 2>/dev/null || need python3-psycopg2 "python module psycopg2"
    "$py" -c 'import yaml' 2>/dev/null || need python3-yaml "python module yaml"
    "$py" -c 'import alembic' 2>/dev/null || need python3-alembic "python module alembic (docs/coming-from-alembic.md test)"
fi

# clang itself, then its runtime: link a program with each sanitizer the
# ASan build and the fuzz targets use.
if ! have_cmd "$CLANG"; then
    need clang "command clang"
else
    major=$("$CLANG" -dumpversion 2>/dev/null | cut -d. -f1)
    rt=libclang-rt-${major:-14}-dev
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    printf 'int main(void){return 0;}\n' >"$tmp/m.c"
    printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n' >"$tmp/f.c"
    if ! "$CLANG" -fsanitize=address,undefined "$tmp/m.c" -o "$tmp/m" >"$tmp/log" 2>&1; then
        need "$rt" "clang AddressSanitizer/UBSan runtime ($(grep -m1 -o 'libclang_rt[^ :]*' "$tmp/log" || echo link failed))"
    elif ! "$CLANG" -fsanitize=fuzzer,address "$tmp/f.c" -o "$tmp/f" >"$tmp/log" 2>&1; then
        need "$rt" "clang libFuzzer runtime ($(grep -m1 -o 'libclang_rt[^ :]*' "$tmp/log" || echo link failed))"
    fi
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "check-toolchain: the test command needs what is missing here:" >&2
for m in "${missing[@]}"; do echo "  - $m" >&2; done
# shellcheck disable=SC2207 # package names have no spaces
uniq=($(printf '%s\n' "${pkgs[@]}" | sort -u))
echo "install with: apt-get install --no-install-recommends ${uniq[*]}" >&2
echo "(deploy/install-deps.sh installs everything the test command needs on Debian 12)" >&2
exit 2
