#!/usr/bin/env python3
"""The numbers behind tests/bench/zero-downtime.sh (which starts the server).

A whole release (expand: add a column; backfill with dual-write; cutover;
contract) runs while an application works, three ways side by side on
identical tables: zdm with its defaults, zdm unthrottled
(max_latency_factor = 0, max_lock_ms = 0), and by hand (psql / a Python
loop: 2000-row batches, 80 ms sleeps).  Per phase: the application's
p50/p99/max latency, p99 against idle, errors; then the rows left
unconverted.  PostgreSQL: a pgbench application (UPDATE, SELECT, INSERT at
--tps).  SQLite (WAL, synchronous=FULL): a writer thread at --writes per
second with a 5 s busy timeout.  Latency over time with the phases shaded
goes to PNG files when gnuplot is installed.  Nothing fails on a number.

Environment: ZDM, ZDM_TEST_PG_URL, PGHOST/PGUSER/PGDATABASE, PGBENCH.
"""
import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ZDM = os.environ["ZDM"]
PGBENCH = os.environ.get("PGBENCH", "pgbench")
EXPR = "CASE WHEN project_name LIKE '%Core%' THEN 'core' ELSE 'other' END"
PHASES = ["idle", "expand", "backfill", "cutover", "contract", "after"]
# Under this many application transactions a phase's "p99" is the max of a
# few samples: its ratio is marked, not comparable with the others.
MIN_SAMPLES = 100
FEW = " (few)"


def psql(sql):
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def plan_text(table, unthrottled, where_sql, extra=""):
    th = "max_latency_factor = 0\nmax_lock_ms = 0\n" if unthrottled else ""
    th += "".join(kv.strip() + "\n" for kv in extra.split(";") if kv.strip())
    return f"""description = "zero-downtime bench"
[[expand.steps]]
sql = "ALTER TABLE {table} ADD COLUMN category text"
down = "ALTER TABLE {table} DROP COLUMN category"
[backfill]
table = "{table}"
where = "category IS NULL"
set.category = "{EXPR}"
[backfill.dual_write]
sources = ["project_name"]
[backfill.throttle]
{th}
[[contract.steps]]
sql = "{where_sql}"
down = "SELECT 1"
"""


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100.0))]


class Release:
    """Phase marks (epoch seconds) of one run."""

    def __init__(self):
        self.marks = []

    def mark(self, name):
        self.marks.append((name, time.time()))

    def phase_of(self, t):
        cur = None
        for name, t0 in self.marks:
            if t >= t0:
                cur = name
        return cur


def zdm_release(db_url, plans, plan, rel, backfilled):
    # ZD_ZDM_LOG=DIR: zdm -v, its log lines in DIR/PLAN.log (the pacer's
    # decisions batch by batch); by default -q
    logdir = os.environ.get("ZD_ZDM_LOG")

    def run(*args):
        p = subprocess.run([ZDM, "--db", db_url, "--plans", plans, "-v" if logdir else "-q", *args],
                           capture_output=True, text=True)
        if logdir:
            with open(os.path.join(logdir, f"{plan}.log"), "a") as f:
                f.write(p.stderr)
        if p.returncode != 0:
            sys.exit(f"zdm {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    rel.mark("expand")
    run("advance", plan)
    rel.mark("backfill")
    run("advance", plan)
    left = backfilled()
    rel.mark("cutover")
    run("advance", plan)
    rel.mark("contract")
    run("advance", plan)
    return left


# ------------------------------------------------------------------ PostgreSQL

PG_APP = """\\set id random(1, {rows})
BEGIN;
UPDATE {t} SET project_name = CASE WHEN :id % 3 = 0 THEN 'Core ' ELSE 'App ' END || :id WHERE id = :id;
SELECT project_name FROM {t} WHERE id = :id;
INSERT INTO {t} (id, project_name) VALUES (nextval('{t}_ins'), 'App new');
END;
"""

PG_HAND_TRIGGER = """
CREATE FUNCTION {t}_dw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.category := CASE WHEN NEW.project_name LIKE '%Core%' THEN 'core' ELSE 'other' END; RETURN NEW; END $$;
CREATE TRIGGER {t}_dw BEFORE INSERT OR UPDATE OF project_name ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_dw();
"""


def pg_table(t, rows):
    psql(f"DROP TABLE IF EXISTS {t} CASCADE")
    psql(f"DROP SEQUENCE IF EXISTS {t}_ins")
    psql(f"CREATE TABLE {t} (id bigint PRIMARY KEY, project_name text NOT NULL, "
         f"payload text NOT NULL DEFAULT repeat('x', 40))")
    psql(f"INSERT INTO {t} (id, project_name) SELECT i, CASE WHEN i % 3 = 0 THEN 'Core ' || i "
         f"ELSE 'App ' || i END FROM generate_series(1, {rows}) i")
    psql(f"CREATE SEQUENCE {t}_ins START {10 ** 9}")
    psql(f"VACUUM ANALYZE {t}")
    psql("CHECKPOINT")


def pg_run(mode, a, work):
    t = f"zd_{mode}"
    pg_table(t, a.rows)
    script = os.path.join(work, f"{t}.sql")
    with open(script, "w") as f:
        f.write(PG_APP.format(rows=a.rows, t=t))
    logdir = os.path.join(work, f"pgb_{mode}")
    os.makedirs(logdir)
    rel = Release()

    def pg_left():
        # at the end of the backfill: the old application keeps writing after
        # the contract drops the triggers, and it never flips here
        return int(psql(f"SELECT count(*) FROM {t} WHERE category IS DISTINCT FROM ({EXPR})"))
    rel.mark("idle")
    app = subprocess.Popen([PGBENCH, "-n", "-c", "4", "-j", "2", "-R", str(a.tps), "-T", "3600", "-l",
                            f"--log-prefix={logdir}/pgb", "-f", script],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=logdir)
    time.sleep(a.idle)
    if mode == "hand":
        rel.mark("expand")
        psql(f"ALTER TABLE {t} ADD COLUMN category text")
        psql(PG_HAND_TRIGGER.format(t=t))
        rel.mark("backfill")
        lines = []
        for lo in range(1, a.rows + 1, 2000):
            lines.append(f"UPDATE {t} SET category = {EXPR} WHERE id BETWEEN {lo} AND {lo + 1999} "
                         f"AND category IS NULL;")
            lines.append("SELECT pg_sleep(0.08);")
        # then the application's inserts above the loaded ids (written before
        # the trigger existed), as a careful human would
        lines.append(f"UPDATE {t} SET category = {EXPR} WHERE id > {a.rows} AND category IS NULL;")
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"],
                       input="\n".join(lines), check=True, text=True)
        left = pg_left()
        rel.mark("cutover")
        rel.mark("contract")
        psql(f"DROP TRIGGER {t}_dw ON {t}")
    else:
        plans = tempfile.mkdtemp(prefix="zdm-zd-")
        with open(os.path.join(plans, f"{t}.toml"), "w") as f:
            f.write(plan_text(t, mode == "unthrottled", "SELECT 1", a.throttle if mode == "custom" else ""))
        left = zdm_release(os.environ["ZDM_TEST_PG_URL"], plans, t, rel, pg_left)
    rel.mark("after")
    time.sleep(min(a.idle, 5))
    rel.mark("end")
    app.send_signal(signal.SIGINT)  # pgbench flushes nothing on a signal: the last lines (after) may be lost
    try:
        _, err = app.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        app.kill()
        _, err = app.communicate()
    aborted = err.count("aborted")
    # pgbench logs when a transaction completed, and (with -R) its latency
    # from its scheduled start: a sample's time is its start, and it counts
    # in every phase it was running in (report)
    samples, errors = [], 0
    for fn in os.listdir(logdir):
        with open(os.path.join(logdir, fn)) as f:
            for line in f:
                p = line.split()
                if len(p) < 6:
                    continue
                ts = int(p[4]) + int(p[5]) / 1e6
                if not p[2].isdigit():
                    errors += 1
                    samples.append((ts, None))
                else:
                    samples.append((ts - int(p[2]) / 1e6, int(p[2]) / 1000.0))
    return rel, samples, errors + aborted, left


# ---------------------------------------------------------------------- SQLite

def sqlite_table(path, rows):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE t (id integer PRIMARY KEY, project_name text NOT NULL, "
              "payload text NOT NULL DEFAULT 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')")
    c.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
              "INSERT INTO t (id, project_name) SELECT i, CASE WHEN i % 3 = 0 THEN 'Core ' || i "
              "ELSE 'App ' || i END FROM n", (rows,))
    c.commit()
    c.close()


def sqlite_app(path, rows, rate, stop, samples, errs, fresh=None):
    """fresh (when a list): (ts, 1, ms) for a write whose row the release
    had converted already, (ts, 0, ms) for one that converts it through
    the dual-write trigger (the read before the write is not timed).
    Every write changes its row (a write counter in the name): SQLite
    skips an overwrite with the same bytes -- no WAL frame, no fsync at
    commit -- so writing back the stored value measured 0.02 ms commits
    against 0.2 ms for any real one, the trigger's included."""
    c = sqlite3.connect(path, timeout=5, isolation_level=None)
    c.execute("PRAGMA synchronous=FULL")
    i, t_next = 0, time.monotonic()
    while not stop.is_set():
        i += 1
        rid = (i * 7919) % rows + 1
        conv = None
        if fresh is not None:
            try:
                conv = c.execute("SELECT category IS NOT NULL FROM t WHERE id = ?", (rid,)).fetchone()[0]
            except sqlite3.OperationalError:
                conv = None  # no column yet (before expand, after a rollback)
        t0, ts0 = time.monotonic(), time.time()  # a sample's time is its start (as on PostgreSQL)
        try:
            c.execute("UPDATE t SET project_name = ? WHERE id = ?",
                      (("Core " if rid % 3 == 0 else "App ") + f"{rid} #{i}", rid))
            samples.append((ts0, (time.monotonic() - t0) * 1000.0))
            if conv is not None:
                fresh.append((samples[-1][0], conv, samples[-1][1]))
        except sqlite3.OperationalError:
            errs.append(ts0)
            samples.append((ts0, None))
        t_next += 1.0 / rate
        d = t_next - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            t_next = time.monotonic()  # fell behind: no catching up in a burst
    c.close()


def sqlite_split(db, mode, rel, fresh, idle99):
    """The backfill phase in two: the application's writes to rows the
    release had converted already (what waiting on the backfill costs),
    and the writes that convert their row themselves through the dual-write
    trigger (a grown row: a page split, whatever the backfill does)."""
    lines = []
    for flag, what in ((1, "backfill: row converted before the write"),
                       (0, "backfill: the write converts its row (trigger)")):
        xs = [ms for ts, c, ms in fresh if c == flag and "backfill" in phases_of(rel, ts, ms)]
        if not xs:
            continue
        over = 100.0 * sum(1 for x in xs if x > 1.0) / len(xs)
        lines.append(f"| {db} | {mode} | {what} | | {len(xs)} | {pct(xs, 50):.2f} | {pct(xs, 99):.2f} | "
                     f"{max(xs):.1f} | {pct(xs, 99) / idle99 if idle99 else float('nan'):.2f} | "
                     f"{over:.2f} % over 1 ms |")
    return lines


def sqlite_run(mode, a, work):
    path = os.path.join(work, f"zd_{mode}.db")
    sqlite_table(path, a.srows)
    rel = Release()

    def sqlite_left():
        c = sqlite3.connect(path, timeout=30)
        n = c.execute(f"SELECT count(*) FROM t WHERE category IS NOT ({EXPR})").fetchone()[0]
        c.close()
        return n
    stop = threading.Event()
    samples, errs = [], []
    fresh = []
    th = threading.Thread(target=sqlite_app, args=(path, a.srows, a.writes, stop, samples, errs, fresh))
    rel.mark("idle")
    th.start()
    time.sleep(a.idle)
    if mode == "hand":
        c = sqlite3.connect(path, timeout=30, isolation_level=None)
        c.execute("PRAGMA synchronous=FULL")
        rel.mark("expand")
        c.execute("ALTER TABLE t ADD COLUMN category text")
        c.execute(f"CREATE TRIGGER t_dw_i AFTER INSERT ON t BEGIN UPDATE t SET category = "
                  f"CASE WHEN NEW.project_name LIKE '%Core%' THEN 'core' ELSE 'other' END WHERE id = NEW.id; END")
        c.execute(f"CREATE TRIGGER t_dw_u AFTER UPDATE OF project_name ON t BEGIN UPDATE t SET category = "
                  f"CASE WHEN NEW.project_name LIKE '%Core%' THEN 'core' ELSE 'other' END WHERE id = NEW.id; END")
        rel.mark("backfill")
        for lo in range(1, a.srows + 1, 2000):
            c.execute(f"UPDATE t SET category = {EXPR} WHERE id BETWEEN ? AND ? AND category IS NULL",
                      (lo, lo + 1999))
            time.sleep(0.08)
        left = sqlite_left()
        rel.mark("cutover")
        rel.mark("contract")
        c.execute("DROP TRIGGER t_dw_i")
        c.execute("DROP TRIGGER t_dw_u")
        c.close()
    else:
        plans = tempfile.mkdtemp(prefix="zdm-zd-")
        with open(os.path.join(plans, "zd_t.toml"), "w") as f:
            f.write(plan_text("t", mode == "unthrottled", "SELECT 1", a.throttle if mode == "custom" else ""))
        left = zdm_release(f"sqlite:{path}", plans, "zd_t", rel, sqlite_left)
    rel.mark("after")
    time.sleep(min(a.idle, 5))
    rel.mark("end")
    stop.set()
    th.join()
    idle = [ms for ts, ms in samples if ms is not None and rel.phase_of(ts) == "idle"]
    rel.notes = sqlite_split("sqlite", mode, rel, fresh, pct(idle, 99))
    return rel, samples, len(errs), left


# --------------------------------------------------------------------- report

def phases_of(rel, start, ms):
    """Every phase a sample was running in, from its start to its end: a
    transaction that waited out expand's ALTER TABLE into the backfill
    counts in both, so that no phase hides a slow transaction it saw."""
    names = [rel.phase_of(start)]
    end = start + (ms or 0) / 1000.0
    for name, t0 in rel.marks:
        if start < t0 <= end and name not in names:
            names.append(name)
    return names


def report(db, mode, rel, samples, errors, left, out, work):
    by = {p: [] for p in PHASES}
    errs = {p: 0 for p in PHASES}
    for ts, ms in samples:
        for ph in phases_of(rel, ts, ms):
            if ph not in by:  # before the start, or after the end mark (pgbench's last lines)
                continue
            if ms is None:
                errs[ph] += 1
            else:
                by[ph].append(ms)
    idle99 = pct(by["idle"], 99)
    dur = dict()
    for (n, t0), (_, t1) in zip(rel.marks, rel.marks[1:]):
        dur[n] = t1 - t0
    for ph in PHASES:
        xs = by[ph]
        if not xs and not errs[ph]:
            continue
        line = (f"| {db} | {mode} | {ph} | {dur.get(ph, 0):.1f} s | {len(xs)} | {pct(xs, 50):.2f} | "
                f"{pct(xs, 99):.2f} | {max(xs) if xs else float('nan'):.1f} | "
                f"{pct(xs, 99) / idle99 if idle99 else float('nan'):.2f}{FEW if len(xs) < MIN_SAMPLES else ''} | "
                f"{errs[ph]} |")
        print(line)
        out.append(line)
    line = f"| {db} | {mode} | (whole run) | | | | | | | errors {errors}, unconverted rows at the end of the backfill {left} |"
    print(line)
    out.append(line)
    data = os.path.join(work, f"{db}_{mode}.dat")
    t0 = rel.marks[0][1]
    with open(data, "w") as f:
        for ts, ms in sorted(samples):
            if ms is not None:
                f.write(f"{ts - t0:.3f} {ms:.3f}\n")
    return data


def plot(db, mode, rel, data, outdir):
    gp = shutil.which("gnuplot")
    if not gp:
        return None
    png = os.path.join(outdir, f"zero-downtime-{db}-{mode}.png")
    t0 = rel.marks[0][1]
    shades = []
    colours = {"expand": "#ffe0a0", "backfill": "#a0d0ff", "cutover": "#c0ffc0", "contract": "#ffc0c0"}
    k = 0
    for (n, a), (_, b) in zip(rel.marks, rel.marks[1:]):
        if n in colours:
            shades.append(f"set object rect from {a - t0:.3f}, graph 0 to {max(b - t0, a - t0 + 0.05):.3f}, "
                          f"graph 1 fc rgb '{colours[n]}' fs solid 0.5 noborder behind")
            # short phases sit close together: their labels step down
            shades.append(f"set label '{n}' at {a - t0:.3f}, graph {0.95 - 0.07 * (k % 4):.2f} front")
            k += 1
    script = "\n".join([
        "set terminal pngcairo size 1000,400" if "cairo" in subprocess.run(
            [gp, "-e", "set terminal"], capture_output=True, text=True).stderr + subprocess.run(
            [gp, "-e", "set terminal"], capture_output=True, text=True).stdout else "set terminal png size 1000,400",
        f"set output '{png}'",
        f"set title 'zdm zero-downtime bench: {db}, {mode}'",
        "set xlabel 'seconds'", "set ylabel 'application latency (ms)'", "set logscale y", "unset key",
        *shades,
        f"plot '{data}' using 1:2 with points pt 7 ps 0.2 title 'latency'",
    ])
    subprocess.run([gp], input=script, text=True, check=False)
    return png


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200000, help="PostgreSQL table rows")
    ap.add_argument("--srows", type=int, default=500000, help="SQLite table rows")
    ap.add_argument("--tps", type=int, default=400, help="pgbench transactions/s")
    ap.add_argument("--writes", type=int, default=300, help="SQLite application writes/s")
    ap.add_argument("--idle", type=float, default=10, help="seconds of idle application before the release")
    ap.add_argument("--modes", default="defaults,unthrottled,hand",
                    help="defaults, unthrottled, hand, custom (zdm with --throttle)")
    ap.add_argument("--throttle", default="",
                    help="mode custom: [backfill.throttle] lines, ';'-separated (\"batch_size = 200; sleep_ms = 20\")")
    ap.add_argument("--dbs", default="pg,sqlite")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__))))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="zdm-zd-work-")
    out = []
    load = open("/proc/loadavg").read().split()[:3]
    hdr = [f"zero-downtime bench: PostgreSQL {a.rows} rows at {a.tps} TPS (pgbench, fsync on), "
           f"SQLite {a.srows} rows at {a.writes} writes/s (WAL, synchronous=FULL); load average {' '.join(load)}",
           "", "| db | release | phase | duration | app txns | p50 ms | p99 ms | max ms | p99 / idle p99 | errors |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for h in hdr:
        print(h)
    out += hdr
    pngs = []
    for db in a.dbs.split(","):
        for mode in a.modes.split(","):
            rel, samples, errors, left = (pg_run if db == "pg" else sqlite_run)(mode, a, work)
            data = report(db, mode, rel, samples, errors, left, out, work)
            for line in getattr(rel, "notes", []):
                print(line)
                out.append(line)
            png = plot(db, mode, rel, data, a.out)
            if png:
                pngs.append(png)
    note = (f"{FEW.strip()}: fewer than {MIN_SAMPLES} application transactions in the phase; "
            f"its p99 is the largest of a few samples")
    print(note)
    out.append(note)
    if not shutil.which("gnuplot"):
        print("\nno PNG: gnuplot is not installed (Debian: apt-get install gnuplot-nox)")
    for p in pngs:
        print(f"picture: {p}")
    with open(os.path.join(a.out, "zero-downtime-results.txt"), "w") as f:
        f.write("\n".join(out) + "\n")
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average at the end: {' '.join(load)}")


if __name__ == "__main__":
    main()
