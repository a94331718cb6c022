#!/usr/bin/env python3
"""sqlite_backup.py -- how long a backup of a live SQLite database takes,
and what it costs the application meanwhile.

A database of about SIZE_MB (default 100) MB gets an application process
that inserts WRITES_PER_S (default 400) rows a second, each its own
transaction with a 5 s busy timeout, and records every write's latency.
Meanwhile the backup is taken in one of these ways:

  api-256        the backup API, 256 pages a step, no transaction held
                 (zdm before this change: restarts on every foreign write)
  api-snapshot   the backup API, 1024 pages a step, inside one read
                 transaction of the source connection (zdm now)
  vacuum-into    VACUUM INTO a new file
  zdm            zdm itself: `zdm advance` of a plan whose contract drops
                 an index (needs ZDM=path/to/zdm); the seconds are the
                 whole contract, zdm's log line gives the backup's own

For each journal mode (wal, delete) and way it prints the backup's
duration (or that it gave up at the deadline), and the application's p50,
p99 and max write latency during the backup and without one.

    tests/bench/sqlite_backup.py [--size-mb 100] [--writes 400] [--deadline 60]
"""
import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from multiprocessing import Event, Process, Queue


def make_db(path, size_mb, mode):
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload BLOB, note TEXT)")
    con.execute("CREATE INDEX events_note ON events(note)")
    rows = size_mb * 1024 // 2  # 2 KiB a row
    con.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
        "INSERT INTO events (payload, note) SELECT randomblob(1900), 'n' || i FROM c",
        (rows,),
    )
    con.commit()
    con.close()


def app(path, rate, stop, q):
    con = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    lat = []
    period = 1.0 / rate
    nxt = time.monotonic()
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            con.execute("INSERT INTO events (payload, note) VALUES (randomblob(200), 'app')")
            lat.append((t0, time.monotonic() - t0, True))
        except sqlite3.OperationalError:
            lat.append((t0, time.monotonic() - t0, False))
        nxt += period
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
    q.put(lat)


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]


def backup_api(src_path, dst_path, pages, snapshot, deadline):
    src = sqlite3.connect(src_path, isolation_level=None, timeout=5.0)
    dst = sqlite3.connect(dst_path)
    if snapshot:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchall()
    t_end = time.monotonic() + deadline

    def progress(status, remaining, total):
        if time.monotonic() > t_end:
            raise TimeoutError

    ok = True
    try:
        src.backup(dst, pages=pages, progress=progress, sleep=0.0)
    except TimeoutError:
        ok = False
    if snapshot:
        src.execute("COMMIT")
    src.close()
    dst.close()
    return ok


def vacuum_into(src_path, dst_path, deadline):
    src = sqlite3.connect(src_path, isolation_level=None, timeout=5.0)
    t_end = time.monotonic() + deadline
    src.set_progress_handler(lambda: 1 if time.monotonic() > t_end else 0, 10000)
    try:
        src.execute("VACUUM INTO ?", (dst_path,))
        ok = True
    except sqlite3.OperationalError:
        ok = False
    src.close()
    return ok


def zdm_prepare(zdm, work, db):
    """Takes a plan to cut_over (before the application starts)."""
    plans = os.path.join(work, "plans")
    os.makedirs(plans, exist_ok=True)
    with open(os.path.join(plans, "0001_drop_idx.toml"), "w") as f:
        f.write('[[contract.steps]]\nsql = "DROP INDEX IF EXISTS events_note"\ndown = "SELECT 1"\n')
    env = dict(os.environ)
    base = [zdm, "--db", "sqlite:" + db, "--plans", plans, "-q"]
    for _ in range(3):
        subprocess.run(base + ["advance", "0001_drop_idx"], check=True, env=env, capture_output=True)
    return base


def zdm_contract(base):
    for _ in range(1):
        r = subprocess.run([a for a in base if a != "-q"] + ["advance", "0001_drop_idx"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            print(f"zdm failed: {r.stderr.strip()}", file=sys.stderr)
            return False
        for line in r.stderr.splitlines():
            if "backup written to" in line:
                ZDM_NOTES.append("zdm's own log: " + line.split("contract: ", 1)[-1])
    return True


ZDM_NOTES = []


def run_one(args, mode, way, work):
    db = os.path.join(work, f"{mode}.db")
    if not os.path.exists(db + ".template"):
        make_db(db + ".template", args.size_mb, mode)
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    shutil.copy(db + ".template", db)
    if mode == "wal":
        sqlite3.connect(db).execute("PRAGMA journal_mode=wal").fetchall()
    for f in os.listdir(work):
        if ".zdm-backup" in f or f.endswith(".bak"):
            p = os.path.join(work, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    if way == "zdm":
        base = zdm_prepare(args.zdm, work, db)
    q = Queue()
    stop = Event()
    warm = 2.0
    p = Process(target=app, args=(db, args.writes, stop, q))
    p.start()
    time.sleep(warm)
    t0 = time.monotonic()
    dst = os.path.join(work, "copy.bak")
    if way == "api-256":
        ok = backup_api(db, dst, 256, False, args.deadline)
    elif way == "api-snapshot":
        ok = backup_api(db, dst, 1024, True, args.deadline)
    elif way == "vacuum-into":
        ok = vacuum_into(db, dst, args.deadline)
    else:
        ok = zdm_contract(base)
    t1 = time.monotonic()
    time.sleep(2.0)  # some writes after the backup, for the p99 without one
    stop.set()
    lat = q.get()
    p.join()
    during = [l for (t, l, good) in lat if t0 <= t <= t1]
    outside = [l for (t, l, good) in lat if t < t0 - 0.1 or t > t1 + 0.5]
    failed = sum(1 for (t, l, good) in lat if not good and t0 <= t <= t1)
    return ok, t1 - t0, during, outside, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--writes", type=int, default=400)
    ap.add_argument("--deadline", type=float, default=60.0)
    ap.add_argument("--modes", default="wal,delete")
    ap.add_argument("--ways", default="api-256,api-snapshot,vacuum-into,zdm")
    args = ap.parse_args()
    args.zdm = os.environ.get("ZDM")
    ways = [w for w in args.ways.split(",") if w != "zdm" or args.zdm]
    work = tempfile.mkdtemp(prefix="zdm-bench-backup.")
    print(f"SQLite {sqlite3.sqlite_version}, {args.size_mb} MB database, application: {args.writes} writes/s, "
          f"deadline {args.deadline:.0f} s")
    print(f"{'mode':7} {'way':13} {'result':9} {'seconds':>8} {'app p50 ms':>11} {'app p99 ms':>11} "
          f"{'app max ms':>11} {'failed':>7} {'p99 without ms':>15}")
    try:
        for mode in args.modes.split(","):
            for way in ways:
                ok, secs, during, outside, failed = run_one(args, mode, way, work)
                print(f"{mode:7} {way:13} {'done' if ok else 'GAVE UP':9} {secs:8.2f} "
                      f"{pct(during, .5) * 1000:11.1f} {pct(during, .99) * 1000:11.1f} "
                      f"{(max(during) if during else float('nan')) * 1000:11.1f} {failed:7d} "
                      f"{pct(outside, .99) * 1000:15.1f}", flush=True)
                while ZDM_NOTES:
                    print("        " + ZDM_NOTES.pop(0), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
