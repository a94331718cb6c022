#!/usr/bin/env bash
# tests/check-toolchain.sh (run first by the test command) names the
# Debian package of each missing piece.  A clang whose resource directory
# is empty stands for bookworm's clang without libclang-rt-14-dev, the
# case that broke the test command on a fresh machine.
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init toolchain_check
check=$ZDM_SRC/tests/check-toolchain.sh

t_section "this machine has everything"
out=$("$check" 2>&1); rc=$?
t_eq "check-toolchain on the build machine: $out" 0 "$rc"

t_section "clang without its sanitizer runtime"
if command -v clang >/dev/null 2>&1; then
    printf '#!/bin/sh\nexec clang -resource-dir "%s/none" "$@"\n' "$T_DIR" >"$T_DIR/clang"
    chmod +x "$T_DIR/clang"
    out=$(CLANG=$T_DIR/clang "$check" 2>&1); rc=$?
    t_eq "exit code" 2 "$rc"
    major=$(clang -dumpversion | cut -d. -f1)
    t_has "names the runtime package" "libclang-rt-$major-dev" "$out"
    t_has "says how to install it" "apt-get install" "$out"
    # The package it names is one install-deps.sh installs.
    t_has "install-deps.sh lists it" "libclang-rt-$major-dev" "$("$ZDM_SRC/deploy/install-deps.sh" --list)"
fi

t_section "a missing command"
out=$(CC_GCC=gcc-does-not-exist "$check" 2>&1); rc=$?
t_eq "exit code" 2 "$rc"
t_has "names the package" "build-essential" "$out"
t_finish
