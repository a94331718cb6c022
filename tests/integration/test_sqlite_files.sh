#!/usr/bin/env bash
# test_sqlite_files.sh -- SQLite: only real, persistent database files.
# Commands that only read (status, history, check, --dry-run, ...) never
# create a file: a missing one is an error naming the path, and no file
# appears.  advance on a missing file says it created one; init creates
# one quietly.  :memory: and temporary databases are refused in every
# spelling, and so are nolock=1 and VFSes whose locks the application
# does not see (unix-none, -dotfile, -flock, -excl).  A SQLite library older than the minimum is refused at start,
# naming the minimum (checked with a shim library reporting 3.34.1).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_files

t_section "read-only commands on a mistyped path"
db_new sqlite files
plans_copy 0001_baseline 0002_event_type
typo="$T_DIR/no-such-dir-typo.db"
for args in "status" "history" "check" "status 0001_baseline" "history 0001_baseline" "backfill 0001_baseline" \
    "pause 0001_baseline" "unlock 0001_baseline" "run-due"; do
    # shellcheck disable=SC2086
    T_DB="sqlite:$typo" zdm_run $args
    t_rc "$args: refused" 1
    t_has "$args: names the path" "no database file at $typo" "$ZERR"
    t_has "$args: says what to do" 'run "zdm init" first' "$ZERR"
    t_eq "$args: no file created" no "$([ -e "$typo" ] && echo yes || echo no)"
done

for args in "advance 0001_baseline --dry-run" "rollback 0001_baseline --dry-run"; do
    # shellcheck disable=SC2086
    T_DB="sqlite:$typo" zdm_run $args
    t_rc "$args: a dry run on a missing file" 0
    t_has "$args: says there is no file" "no database file at sqlite:$typo: the dry run shows" "$ZERR"
    t_eq "$args: no file created" no "$([ -e "$typo" ] && echo yes || echo no)"
done

t_section "locking the application does not see is refused"
db_new sqlite locks
plans_copy 0001_baseline
lf=$T_SQLITE_FILE
for q in "nolock=1" "nolock=yes" "vfs=unix-none" "vfs=unix-dotfile" "vfs=unix-excl"; do
    T_DB="sqlite:file:$lf?$q" zdm_run advance 0001_baseline
    t_rc "$q: refused" 2
    t_has "$q: says why" "would write the file at once" "$ZERR"
    t_eq "$q: nothing written" 0 "$(stat -c %s "$lf")"
done
T_DB="sqlite:file:$lf?vfs=unix" zdm_run advance 0001_baseline
t_rc "vfs=unix (the default): accepted" 0

t_section "advance on a missing file says it created one; init is quiet"
rm -f "$T_SQLITE_FILE"
zdm_run advance 0001_baseline
t_rc "advance on a new file" 0
t_has "advance says so" "no database file was at $T_DB; created a new, empty one" "$ZERR"
zdm_run advance 0002_event_type
t_lacks "an existing file: nothing said" "created a new" "$ZERR"
T_DB="sqlite:$T_DIR/fresh.db" zdm_run init
t_rc "init creates" 0
t_eq "init: file exists" yes "$([ -e "$T_DIR/fresh.db" ] && echo yes || echo no)"
t_lacks "init: no notice" "created a new" "$ZERR"
T_DB="sqlite:$T_DIR/fresh.db" zdm_run status
t_rc "status after init" 0
# a file name ending in white space (an env file's CRLF, a pasted space):
# zdm made that new file and ran the plans there, the real one untouched
for sfx in " " $'\r' $'\t'; do
    T_DB="sqlite:$T_SQLITE_FILE$sfx" zdm_run advance 0001_baseline
    t_rc "a path ending in white space: refused" 2
    t_has "... saying so" "it starts or ends with white space" "$ZERR"
    t_eq "... no file made" no "$([ -e "$T_SQLITE_FILE$sfx" ] && echo yes || echo no)"
done

t_section "in-memory and temporary databases are refused"
cd "$T_DIR" || exit 1
for url in "sqlite::memory:" "sqlite:file::memory:" "sqlite:file:x?mode=memory" \
    "sqlite:file:x?mode=memory&cache=shared" "sqlite:file:"; do
    T_DB="$url" zdm_run advance 0001_baseline
    t_rc "$url: refused" 2
    t_has "$url: says why" "in-memory or temporary database" "$ZERR"
done
t_eq "no file named like a memory URL" no "$([ -e x ] || [ -e 'file:x?mode=memory' ] || [ -e :memory: ] && echo yes || echo no)"

t_section "SQLite library version"
shim_c="$T_DIR/oldsqlite.c"
cat >"$shim_c" <<'C'
/* An "old" SQLite: only the version calls are replaced. */
int sqlite3_libversion_number(void) { return 3034001; }
const char *sqlite3_libversion(void) { return "3.34.1"; }
C
if cc -shared -fPIC -o "$T_DIR/oldsqlite.so" "$shim_c" 2>"$T_DIR/cc.err"; then
    LD_PRELOAD="$T_DIR/oldsqlite.so" zdm_run status
    t_rc "old library: refused" 1
    t_has "old library: names it and the minimum" "the SQLite library is 3.34.1; zdm needs 3.35.0 or later" "$ZERR"
    t_has "old library: says what needs it" "RETURNING" "$ZERR"
    zdm_run status
    t_rc "the real library: accepted" 0
else
    t_note "no C compiler: version shim not built ($(cat "$T_DIR/cc.err"))"
    T_SKIPPED=1
fi

t_finish
