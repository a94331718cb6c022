#!/usr/bin/env bash
# test_sqlite_busy.sh -- zdm's own writes do not lock the application's
# readers out (rollback-journal mode, where a committing writer holds
# PENDING and no new reader gets in).
#
# An application process holds a read transaction for 3 s; meanwhile zdm
# advances a plan (expand: state rows, history, the plan's lock, steps),
# and other application processes read in a loop with a 1 s busy timeout.
# Before, zdm's commits waited up to 5 s holding PENDING: those readers
# got "database is locked".  Now a commit waits 25 ms, lets the lock go
# and retries, so no reader fails, and zdm still finishes once the long
# reader is done.
#
# An application transaction holding the write lock for 7 s: zdm's own
# writes wait under the plan's lock_timeout x lock_retries (15 s here) and
# go on, or give up at once with lock_retries = 1.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init sqlite_busy
command -v python3 >/dev/null || {
    echo "python3 missing" >&2
    exit 77
}

t_section "a long application read transaction while zdm writes"
db_new sqlite busy
plans_empty
plan_write 0001_col '
[[expand.steps]]
sql  = "ALTER TABLE emp ADD COLUMN nick TEXT"
down = "ALTER TABLE emp DROP COLUMN nick"'
db_sql "PRAGMA journal_mode=delete; CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO emp(name) VALUES ('a'), ('b');" >/dev/null
zdm_run init
t_rc "init" 0

cat >"$T_DIR/reader.py" <<'PY'
import sqlite3, sys, time
path, mode, secs, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
con = sqlite3.connect(path, timeout=1.0, isolation_level=None)
fails = reads = 0
if mode == "hold":
    con.execute("BEGIN")
    con.execute("SELECT count(*) FROM emp").fetchall()
    open(out + ".started", "w").close()
    time.sleep(secs)
    con.execute("COMMIT")
else:
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            con.execute("SELECT count(*) FROM emp").fetchall()
            reads += 1
        except sqlite3.OperationalError as e:
            fails += 1
            last = str(e)
        time.sleep(0.005)
with open(out, "w") as f:
    f.write(f"{reads} {fails}\n")
PY
python3 "$T_DIR/reader.py" "$T_SQLITE_FILE" hold 3 "$T_DIR/hold" &
hold=$!
T_BG_PIDS+=("$hold")
t_wait_for "the long reader to start" 30 "[ -e '$T_DIR/hold.started' ]"
python3 "$T_DIR/reader.py" "$T_SQLITE_FILE" loop 6 "$T_DIR/r1" &
r1=$!
python3 "$T_DIR/reader.py" "$T_SQLITE_FILE" loop 6 "$T_DIR/r2" &
r2=$!
T_BG_PIDS+=("$r1" "$r2")
zdm_run advance 0001_col
t_rc "expand finishes once the long reader is done" 0
wait "$hold" "$r1" "$r2"
t_eq "reader 1: no read failed" 0 "$(cut -d' ' -f2 "$T_DIR/r1")"
t_eq "reader 2: no read failed" 0 "$(cut -d' ' -f2 "$T_DIR/r2")"
t_cmp "reader 1 read meanwhile" "$(cut -d' ' -f1 "$T_DIR/r1")" -gt 0
t_eq "expanded" expanded "$(zdm_phase_of 0001_col)"

t_section "zdm's own lock waits follow the plan's lock_timeout and lock_retries"
# An application transaction holds the write lock for 7 s: with
# lock_timeout = 1.5 s and 10 tries zdm may wait up to 15 s and goes on
# once it is released (the fixed 5 s wait gave up first).  Held for 4 s:
# with 1 try of 1.5 s zdm gives up, naming the lock (the fixed 5 s wait
# waited it out).
plan_write 0002_wait '
lock_timeout = "1500ms"
lock_retries = 10
[[expand.steps]]
sql  = "ALTER TABLE emp ADD COLUMN w1 TEXT"
down = "ALTER TABLE emp DROP COLUMN w1"'
plan_write 0003_nowait '
lock_timeout = "1500ms"
lock_retries = 1
[[expand.steps]]
sql  = "ALTER TABLE emp ADD COLUMN w2 TEXT"
down = "ALTER TABLE emp DROP COLUMN w2"'
cat >"$T_DIR/writer.py" <<'PY'
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=10.0, isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("INSERT INTO emp(name) VALUES ('held')")
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
con.execute("COMMIT")
PY
hold() { # hold SECONDS: an application transaction with the write lock
    rm -f "$T_DIR/w.started"
    python3 "$T_DIR/writer.py" "$T_SQLITE_FILE" "$T_DIR/w.started" "$1" &
    W=$!
    T_BG_PIDS+=("$W")
    t_wait_for "the writer to hold the lock" 30 "[ -e '$T_DIR/w.started' ]"
}
hold 7
zdm_run advance 0002_wait
t_rc "10 tries of 1.5 s: waits 7 s for the writer and goes on" 0
wait "$W"
t_eq "expanded" expanded "$(zdm_phase_of 0002_wait)"
hold 4
zdm_run advance 0003_nowait
t_rc "1 try of 1.5 s: gives up before the writer's 4 s are over" 1
t_has "names the lock" "database is locked" "$ZERR"
wait "$W"

t_finish
