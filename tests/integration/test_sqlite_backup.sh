#!/usr/bin/env bash
# test_sqlite_backup.sh -- the SQLite backup taken before contract.
#
#  * WAL and rollback-journal mode, an application process writing all
#    along: contract finishes; the backup is a sound database
#    (integrity_check), has the database's permissions (0600), is named in
#    history, and no temporary file is left;
#  * restore, as the README says (stop writers, remove -wal/-shm, copy the
#    backup over, zdm status): the state and the schema agree -- the plan
#    is cut_over again and the dropped column and the dual-write triggers
#    are back, and advancing contracts again;
#  * a file: URI with a query (?mode=rw&cache=shared): the backup lands
#    beside the real file;
#  * retention: with backup_keep = 2, five contracts leave the two newest;
#  * a failed backup (backup_timeout too short for the copy) exits 1,
#    leaves earlier backups untouched and no partial file;
#  * SIGTERM during the copy exits 4 and removes the partial copy; the
#    plan is still cut_over and contracts on the next run;
#  * kill -9 during the copy: the next backup removes what it left;
#  * symlinks planted at every name the backup could take: none followed.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_backup

PLAN=$T_PLAN_RENAME_EMP

backups() { ls -1 "$T_SQLITE_FILE".zdm-backup-* 2>/dev/null; }
leftovers() { ls -1d "$(dirname "$T_SQLITE_FILE")"/.zdm-backup-tmp-* 2>/dev/null; }

app_start() {
    rm -f "$T_DIR/stop"
    (
        i=0
        while [ ! -e "$T_DIR/stop" ]; do
            i=$((i + 1))
            sqlite3 -cmd '.timeout 5000' "$T_SQLITE_FILE" "INSERT INTO emp(name, email) VALUES ('w$i', 'w$i@x')" \
                2>/dev/null
        done
    ) &
    APP=$!
    T_BG_PIDS+=("$APP")
}
app_stop() {
    touch "$T_DIR/stop"
    wait "$APP"
}

for mode in wal delete; do
    t_section "$mode: contract under writes; the backup; restore"
    db_new sqlite "bk_$mode"
    plans_empty
    plan_write 0001_ren "$PLAN"
    db_sql "PRAGMA journal_mode=$mode;
            CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, email TEXT);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
            INSERT INTO emp(name, email) SELECT 'n' || i, hex(randomblob(100)) FROM c;" >/dev/null
    chmod 600 "$T_SQLITE_FILE"
    for ph in expanded backfilled cut_over; do
        zdm_run advance 0001_ren
        t_rc "$mode: advance to $ph" 0
    done
    app_start
    sleep 0.5
    zdm_run advance 0001_ren
    t_rc "$mode: contract under writes" 0
    app_stop
    b=$(backups)
    t_eq "$mode: one backup" 1 "$(grep -c . <<<"$b")"
    t_eq "$mode: the backup is sound" ok "$(sqlite3 "$b" 'PRAGMA integrity_check')"
    t_eq "$mode: the database's permissions" 600 "$(stat -c %a "$b")"
    zdm_run --json history 0001_ren
    t_has "$mode: history names it" "backup: $b" "$ZOUT"
    t_eq "$mode: no temporary left" "" "$(leftovers)"

    # Restore: writers stopped; -wal/-shm removed; the copy put in place.
    rm -f "$T_SQLITE_FILE-wal" "$T_SQLITE_FILE-shm" "$T_SQLITE_FILE-journal"
    cp "$b" "$T_SQLITE_FILE"
    t_eq "$mode: restored: cut_over again" cut_over "$(zdm_phase_of 0001_ren)"
    t_eq "$mode: restored: the old column is back" 1 \
        "$(db_sql "SELECT count(*) FROM pragma_table_info('emp') WHERE name = 'name'")"
    t_eq "$mode: restored: dual-write triggers are back" 4 \
        "$(db_sql "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'zdm_dw_%'")"
    t_eq "$mode: restored: every row" 0 "$(db_sql "SELECT count(*) FROM emp WHERE full_name IS NOT name")"
    zdm_run advance 0001_ren --no-backup
    t_rc "$mode: contract again after the restore" 0
    t_eq "$mode: complete" complete "$(zdm_phase_of 0001_ren)"
done

t_section "file: URI with a query; retention; a failed retry; SIGTERM"
db_new sqlite keep
plans_empty
plan_write 0002_idx '
backup_keep = 2
[[contract.steps]]
sql  = "DROP INDEX emp_email"
down = "CREATE INDEX emp_email ON emp(email)"'
db_sql "CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, email TEXT); CREATE INDEX emp_email ON emp(email);
        WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
        INSERT INTO emp(name, email) SELECT 'n' || i, hex(randomblob(1000)) FROM c;"
for ph in expanded backfilled cut_over; do zdm_run advance 0002_idx; done
uri="sqlite:file:$T_SQLITE_FILE?mode=rw&cache=shared"
for i in 1 2 3 4 5; do
    T_DB=$uri zdm_run advance 0002_idx
    t_rc "contract $i through a file: URI" 0
    [ "$i" = 1 ] && first=$(backups)
    t_match "contract $i: backup beside the real file" "^$T_SQLITE_FILE\.zdm-backup-0002_idx-[0-9]{8}T[0-9]{6}\.[0-9]{3}Z\$" \
        "$(backups | tail -n 1)"
    zdm_run rollback 0002_idx
    t_rc "rollback $i" 0
done
t_eq "backup_keep = 2: two left" 2 "$(backups | grep -c .)"
t_eq "the first one was removed" no "$([ -e "$first" ] && echo yes || echo no)"
kept=$(backups)

# A retry whose backup fails (deadline far shorter than the copy).
sed -i 's/^backup_keep = 2$/backup_keep = 2\nbackup_timeout = 1/' "$T_PLANS/0002_idx.toml"
zdm_run stamp 0002_idx cut_over # accept the edited file
zdm_run advance 0002_idx
t_rc "a backup past backup_timeout fails" 1
t_has "says so" "backup did not finish within backup_timeout" "$ZERR"
t_eq "earlier backups untouched" "$kept" "$(backups)"
t_eq "no partial left" "" "$(leftovers)"
t_eq "still cut_over" cut_over "$(zdm_phase_of 0002_idx)"

# SIGTERM while the copy runs (a 60 MB database; zdm's private directory
# appearing marks the copy's start).
sed -i '/^backup_timeout = 1$/d' "$T_PLANS/0002_idx.toml"
zdm_run stamp 0002_idx cut_over
db_sql "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 30000)
        INSERT INTO emp(name, email) SELECT 'm' || i, hex(randomblob(1000)) FROM c;"
zdm_bg "$T_DIR/term" advance 0002_idx
t_wait_for "the copy to start" 60 '[ -n "$(leftovers)" ]'
kill -TERM "$ZBG_PID"
t_wait_exit "$ZBG_JOB" 60
zdm_bg_collect "$T_DIR/term"
t_eq "exit 4" 4 "$WAIT_RC"
t_has "says the backup was interrupted" "backup interrupted by signal 15" "$ZERR"
t_eq "partial copy removed" "" "$(leftovers)"
t_eq "earlier backups untouched" "$kept" "$(backups)"
t_eq "still cut_over" cut_over "$(zdm_phase_of 0002_idx)"
zdm_run advance 0002_idx
t_rc "contract on the next run" 0

# kill -9 during the copy leaves zdm's private directory; the next backup
# removes it (its process is gone) and goes on.
zdm_run rollback 0002_idx
t_rc "rollback before the kill -9 run" 0
zdm_bg "$T_DIR/kill" advance 0002_idx
t_wait_for "the copy to start" 60 '[ -n "$(leftovers)" ]'
kill -9 "$ZBG_PID"
t_wait_exit "$ZBG_JOB" 60
left=$(leftovers)
t_ne "kill -9: the private directory is left" "" "$left"
zdm_run advance 0002_idx
t_rc "the next contract" 0
t_has "says it removed what the killed run left" "removed $left, left by a backup whose process" "$ZERR"
t_eq "nothing left" "" "$(leftovers)"

# Symlinks planted at every name the next backup could take in the coming
# 10 s (zdm's millisecond names, and the one-second names of before) all
# point at a victim file: none is followed, the backup is a regular file.
zdm_run rollback 0002_idx
t_rc "rollback before the symlink run" 0
: >"$T_DIR/victim" # empty: SQLite would happily write a database into it
python3 - "$T_SQLITE_FILE" "$T_DIR/victim" <<'PY'
import os, sys, time
db, victim = sys.argv[1], sys.argv[2]
now = time.time()
for ms in range(0, 10000):
    t = now + ms / 1000
    st = time.gmtime(t)
    names = [time.strftime("%Y%m%dT%H%M%S", st) + ".%03dZ" % int((t * 1000) % 1000)]
    if ms % 1000 == 0:
        names.append(time.strftime("%Y-%m-%dT%H-%M-%SZ", st))
    for n in names:
        try:
            os.symlink(victim, f"{db}.zdm-backup-0002_idx-{n}")
        except FileExistsError:
            pass
PY
zdm_run advance 0002_idx
t_rc "contract with symlinks planted" 0
t_eq "the victim is untouched" 0 "$(stat -c %s "$T_DIR/victim")"
b=$(zdm_run --json history 0002_idx; jq -r '[.history[] | select(.detail != null) | .detail
     | select(startswith("backup: "))] | last | sub("^backup: "; "")' <<<"$ZOUT")
t_eq "the backup is a regular file" yes "$([ -f "$b" ] && [ ! -L "$b" ] && echo yes || echo no)"
t_eq "and a database" ok "$(sqlite3 "$b" 'PRAGMA integrity_check')"
find "$(dirname "$T_SQLITE_FILE")" -maxdepth 1 -type l -name '*.zdm-backup-*' -delete

# WAL: the copy reaches the disk as it is written, at most 256 pages
# (1 MiB) unsynced at any time, and is synced whole, then its name (the
# directory), before contract goes on.  Left to one sync at the end (or
# SQLite's own per 1024-page step), the copy's dirty pages were written
# back while the application's commits synced: its writes waited 20-30 ms
# (tests/bench/sqlite_backup.py, zero-downtime.sh).  Counted with strace.
t_section "wal: the copy is synced as it is written, then its name"
if ! command -v strace >/dev/null 2>&1; then
    t_note "no strace: skipped"
else
    db_new sqlite bk_sync
    plans_empty
    plan_write 0003_idx '
[[contract.steps]]
sql  = "DROP INDEX emp_email"
down = "CREATE INDEX emp_email ON emp(email)"'
    db_sql "PRAGMA journal_mode=WAL;
            CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, email TEXT); CREATE INDEX emp_email ON emp(email);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000)
            INSERT INTO emp(name, email) SELECT 'n' || i, hex(randomblob(1000)) FROM c;" >/dev/null
    for ph in expanded backfilled cut_over; do zdm_run advance 0003_idx; done
    # (LeakSanitizer cannot run under ptrace: leaks are checked elsewhere)
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq -y \
        -e trace=pwrite64,fdatasync,fsync -o "$T_DIR/sync.strace" \
        "$ZDM" --db "$T_DB" --plans "$T_PLANS" -q advance 0003_idx >"$T_DIR/sync.out" 2>&1
    t_eq "contract under strace" 0 "$?"
    read -r writes most left dirsync < <(awk -v dir="$(dirname "$T_SQLITE_FILE")" '
        /pwrite64\([0-9]+<[^>]*\/\.zdm-backup-tmp-[^>]*\/copy>/ { n++; all++; dsync = 0 }
        /fdatasync\([0-9]+<[^>]*\/\.zdm-backup-tmp-[^>]*\/copy>/ { if (n > most) most = n; n = 0 }
        index($0, "fsync(") && index($0, "<" dir ">)") { if (all) dsync = 1 }
        END { print all + 0, most + 0, n + 0, dsync + 0 }' "$T_DIR/sync.strace")
    t_cmp "the copy was written (pages)" "$writes" -ge 2000
    t_cmp "at most 256 pages (+ the header) unsynced at any time" "$most" -le 257
    t_eq "synced after its last page" 0 "$left"
    t_eq "its directory synced after the copy (the name is durable)" 1 "$dirsync"
    t_eq "and it is a database" ok "$(sqlite3 "$(backups | tail -n 1)" 'PRAGMA integrity_check')"
fi

t_finish
