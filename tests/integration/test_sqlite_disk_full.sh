#!/usr/bin/env bash
# test_sqlite_disk_full.sh -- SQLite: a contract whose DROP COLUMN fails
# (disk full) leaves dual-write working, in WAL and rollback-journal mode.
#
# rename_column emp.name -> full_name on a small file system (a tmpfs the
# test mounts: root only, skipped otherwise) nearly full: contract's DROP
# COLUMN needs room for the WAL or journal and fails with SQLITE_FULL.
#  * the plan stays cut_over, both columns are there, and the dual-write
#    triggers too: a write by the new application to full_name reaches
#    name (before: the triggers went with contract's first, no-op, step
#    and the old column stopped being written);
#  * once space is freed, the same contract completes.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_disk_full

MNT="$T_DIR/small"
mkdir -p "$MNT"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=4m tmpfs "$MNT" 2>/dev/null; then
    echo "sqlite_disk_full: cannot mount a tmpfs (needs root): skipping" >&2
    exit 77
fi
# Unmounted before the harness removes T_DIR.
t_at_exit 'umount "$MNT" 2>/dev/null'

dw_count() { db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm_dw_%'"; }

plans_empty
plan_write 0001_ren '[[expand.steps]]
op = "rename_column"
table = "emp"
column = "name"
to = "full_name"
type = "text"'

for mode in wal delete; do
    t_section "$mode: DROP COLUMN fails with the disk full"
    rm -f "$MNT"/*
    T_DIALECT=sqlite
    T_SQLITE_FILE="$MNT/emp $mode.db"
    T_DB="sqlite:$T_SQLITE_FILE"
    db_sql "PRAGMA journal_mode=$mode;
            CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, pad TEXT);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1400)
            INSERT INTO emp(name, pad) SELECT 'n' || i, hex(randomblob(500)) FROM c;" >/dev/null
    for ph in expanded backfilled cut_over; do
        zdm_run advance 0001_ren
        t_rc "$mode: advance to $ph" 0
    done
    # Leave about 200 KB: the table's pages (1.4 MB) do not fit in the
    # WAL or the journal of the DROP COLUMN.
    free_kb=$(df -k --output=avail "$MNT" | tail -n 1 | tr -d ' ')
    dd if=/dev/zero of="$MNT/filler" bs=1k count=$((free_kb - 200)) status=none 2>/dev/null
    zdm_run advance 0001_ren --no-backup
    t_rc "$mode: contract fails" 1
    t_has "$mode: disk full" "SQLITE_FULL" "$ZERR"
    t_eq "$mode: still cut_over" cut_over "$(zdm_phase_of 0001_ren)"
    t_eq "$mode: the old column is there" 1 "$(db_sql "SELECT count(*) FROM pragma_table_info('emp') WHERE name = 'name'")"
    t_eq "$mode: dual-write triggers kept" 4 "$(dw_count)"
    rm -f "$MNT/filler"
    db_sql "INSERT INTO emp(full_name, pad) VALUES ('new-app', 'p')"
    t_eq "$mode: a new-app write reaches the old column" new-app "$(db_sql "SELECT name FROM emp WHERE pad = 'p'")"
    zdm_run advance 0001_ren --no-backup
    t_rc "$mode: contract once space is free" 0
    t_eq "$mode: name is gone" 0 "$(db_sql "SELECT count(*) FROM pragma_table_info('emp') WHERE name = 'name'")"
    t_eq "$mode: triggers gone" 0 "$(dw_count)"
    t_eq "$mode: integrity" ok "$(db_sql "PRAGMA integrity_check")"
done

t_finish
