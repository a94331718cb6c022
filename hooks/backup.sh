#!/bin/sh
# backup.sh -- a verified backup of the target database, for a zdm hook
# (before_contract above all: contract is the phase that removes things).
#
# Usage: backup.sh            (no arguments; everything comes from the env)
#
# PostgreSQL (ZDM_DIALECT=postgresql): pg_dump -Fc of ZDM_DATABASE_URL into
#   BACKUP_DIR as PLAN-EVENT-YYYYmmddTHHMMSSZ.dump, written under a temporary
#   name and renamed once complete, then checked with "pg_restore --list"
#   (it must read the whole table of contents and list at least one entry).
#   zdm hands hooks the URL without its password and never passes
#   PGPASSWORD on: give pg_dump its password through ~/.pgpass or
#   PGPASSFILE (a file only its owner can read), PGPASSWORD_FILE (below),
#   or use peer/certificate authentication.
# SQLite (ZDM_DIALECT=sqlite): zdm itself takes an online backup before
#   contract (unless --no-backup) and records its path in history, so this
#   says so and exits 0.  With SQLITE_BACKUP_DIR set it also copies the
#   database there with sqlite3's .backup and checks the copy with
#   PRAGMA integrity_check.
#
# Environment:
#   ZDM_DATABASE_URL, ZDM_DIALECT, ZDM_PLAN, ZDM_EVENT   set by zdm
#   BACKUP_DIR          PostgreSQL dumps go here (default /var/backups/zdm;
#                       created with mode 0700)
#   BACKUP_KEEP         keep only the newest N dumps of this plan (optional):
#                       exactly the files this hook wrote for ZDM_PLAN,
#                       PLAN-EVENT-STAMP.dump; plan p01 never touches the
#                       dumps of plan p01-hotfix, nor files it did not write
#   PGPASSWORD_FILE     a file holding just the password, for pg_dump (e.g. a
#                       Kubernetes Secret mounted group-readable, which libpq
#                       would refuse as a PGPASSFILE)
#   SQLITE_BACKUP_DIR   SQLite: copy the database file here too (optional)
#   PG_DUMP, PG_RESTORE, SQLITE3   the programs (default from PATH)
#
# A dump is written as NAME.dump.part and renamed once verified.  Killed
# (zdm's hook timeout sends SIGTERM to the hook's process group), the hook
# removes its .part file; one left by a SIGKILL is removed by the plan's
# next backup.
#
# Prints the backup's path and size (zdm keeps the last lines in history).
# Exit status: 0 backed up (or nothing to do), 1 the backup failed or did
# not verify (as before_contract: contract is refused), 2 usage.
set -u

me=backup
url=${ZDM_DATABASE_URL:-}
[ -n "$url" ] || { echo "$me: ZDM_DATABASE_URL is not set (run me as a zdm hook)" >&2; exit 2; }
dialect=${ZDM_DIALECT:-}
if [ -z "$dialect" ]; then
    case $url in sqlite:*) dialect=sqlite ;; *) dialect=postgresql ;; esac
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
base="${ZDM_PLAN:-manual}-${ZDM_EVENT:-backup}-$stamp"
umask 077

size_of() { wc -c <"$1" | tr -d ' '; }

case $dialect in
sqlite)
    path=${url#sqlite:}
    case $path in //*) path=${path#//} ;; esac
    if [ -z "${SQLITE_BACKUP_DIR:-}" ]; then
        echo "$me: SQLite: zdm takes its own online backup before contract (unless --no-backup)" \
            "and records its path in history; nothing to do (set SQLITE_BACKUP_DIR for a copy of your own)"
        exit 0
    fi
    [ -f "$path" ] || { echo "$me: no database file at $path" >&2; exit 1; }
    case $SQLITE_BACKUP_DIR$base in *"'"*) echo "$me: no quotes in SQLITE_BACKUP_DIR, please" >&2; exit 2 ;; esac
    mkdir -p "$SQLITE_BACKUP_DIR" || exit 1
    dest="$SQLITE_BACKUP_DIR/$base.db"
    sq=${SQLITE3:-sqlite3}
    if ! "$sq" -batch "$path" ".timeout 10000" ".backup '$dest.part'"; then
        rm -f "$dest.part"
        echo "$me: sqlite3 .backup of $path failed" >&2
        exit 1
    fi
    check=$("$sq" -batch "$dest.part" "PRAGMA integrity_check" 2>&1)
    if [ "$check" != ok ]; then
        echo "$me: the copy does not verify: $check" >&2
        rm -f "$dest.part"
        exit 1
    fi
    mv -f "$dest.part" "$dest" || exit 1
    echo "$me: SQLite backup $dest ($(size_of "$dest") bytes), integrity_check ok"
    exit 0
    ;;
postgresql) ;;
*) echo "$me: unknown dialect \"$dialect\"" >&2; exit 2 ;;
esac

dir=${BACKUP_DIR:-/var/backups/zdm}
mkdir -p "$dir" || { echo "$me: cannot create $dir" >&2; exit 1; }
dump="$dir/$base.dump"
pg_dump=${PG_DUMP:-pg_dump}
pg_restore=${PG_RESTORE:-pg_restore}
command -v "$pg_dump" >/dev/null 2>&1 || { echo "$me: $pg_dump not found (install postgresql-client)" >&2; exit 1; }
command -v "$pg_restore" >/dev/null 2>&1 || { echo "$me: $pg_restore not found (install postgresql-client)" >&2; exit 1; }

# own NAME: NAME is a dump (or .part) this hook wrote for this plan:
# PLAN-EVENT-YYYYmmddTHHMMSSZ.dump, where EVENT has no "-" (zdm's event
# names have none), so plan p01 never matches p01-hotfix-... .
plan=${ZDM_PLAN:-manual}
own() {
    case $1 in "$plan"-*) ;; *) return 1 ;; esac
    rest=${1#"$plan"-}
    case $rest in *-*-*) return 1 ;; esac
    case $rest in
    [a-z]*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.dump) return 0 ;;
    [a-z]*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.dump.part) return 0 ;;
    esac
    return 1
}

# A .part of this plan is what a killed run left: zdm runs one contract
# of a plan at a time (the plan's lock), so none is being written now.
for f in "$dir"/*.dump.part; do
    [ -f "$f" ] && own "${f##*/}" && rm -f "$f" && echo "$me: removed $f, left by an interrupted backup"
done
trap 'rm -f "$dump.part"' EXIT
trap 'rm -f "$dump.part"; echo "$me: interrupted; removed $dump.part" >&2; exit 143' TERM INT HUP

if [ -n "${PGPASSWORD_FILE:-}" ]; then
    [ -r "$PGPASSWORD_FILE" ] || { echo "$me: cannot read PGPASSWORD_FILE=$PGPASSWORD_FILE" >&2; exit 1; }
    PGPASSWORD=$(head -n 1 "$PGPASSWORD_FILE")
    export PGPASSWORD
fi
echo "$me: pg_dump -Fc of $url -> $dump"
if ! "$pg_dump" -Fc --no-password -f "$dump.part" -d "$url"; then
    rm -f "$dump.part"
    echo "$me: pg_dump failed" >&2
    exit 1
fi
if ! list=$("$pg_restore" --list "$dump.part" 2>&1); then
    printf '%s\n' "$list" | tail -n 5 >&2
    rm -f "$dump.part"
    echo "$me: pg_restore --list cannot read the dump: not a usable backup" >&2
    exit 1
fi
entries=$(printf '%s\n' "$list" | grep -cv '^;' || true)
tables=$(printf '%s\n' "$list" | grep -c ' TABLE DATA ' || true)
if [ "$entries" -lt 1 ]; then
    rm -f "$dump.part"
    echo "$me: the dump lists no entries: not a usable backup" >&2
    exit 1
fi
mv -f "$dump.part" "$dump" || exit 1
echo "$me: PostgreSQL backup $dump ($(size_of "$dump") bytes, $entries entries, $tables tables with data), verified with pg_restore --list"

if [ -n "${BACKUP_KEEP:-}" ]; then
    case $BACKUP_KEEP in '' | *[!0-9]* | 0) echo "$me: BACKUP_KEEP must be a positive number" >&2; exit 0 ;; esac
    # Newest first by the time stamp in the name (not the file's mtime,
    # which a copy or restore changes).
    for f in "$dir"/*.dump; do
        [ -f "$f" ] && own "${f##*/}" || continue
        n=${f%.dump}
        printf '%s %s\n' "${n##*-}" "$f"
    done | sort -r | tail -n +"$((BACKUP_KEEP + 1))" |
        while read -r _ old; do
            rm -f "$old" && echo "$me: removed old backup $old"
        done
fi
exit 0
