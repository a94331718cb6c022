#!/usr/bin/env python3
"""The numbers behind tests/bench/run.sh (which starts the server, fsync on).

Environment: ZDM (binary), ZDM_TEST_PG_URL, PGHOST/PGUSER/PGDATABASE for
psql, PGBENCH.  Arguments: table sizes (the largest is the one the targets
speak of; ROWS=... in run.sh).  Every comparison runs in this one process,
on identical tables, one after the other, so the ratios are side by side
even when the (shared) machine's load moves.  Nothing fails on a number.

Sections, each with the target of issue 13 it measures:
  raw speed (PostgreSQL): unthrottled zdm backfill vs one UPDATE with the same
      dual-write triggers in place (>= 0.9; the bare UPDATE for reference),
      median of BENCH_ROUNDS rounds,
      the psql shell loop people write, worker peak RSS (< 16 MiB);
  workers: 2 workers vs 1 on evenly spread and on skewed keys (>= 1.6),
      median of WORKER_ROUNDS rounds (default 3);
  costly where: a de-duplication predicate that scans, vs one UPDATE of the
      same rows (>= 0.8; the worker is stopped at a time limit), with the
      share of zdm's final check;
  SQLite (WAL, synchronous=FULL): unthrottled zdm vs one UPDATE with the
      same dual-write triggers in place (>= 0.8; the bare UPDATE for reference);
  trigger tax: pgbench TPS and bulk UPDATEs with/without the dual-write
      triggers (>= 0.85, >= 0.85, >= 0.95; a bulk UPDATE that changes the
      source, for reference).
The last three: median of BENCH_ROUNDS rounds (default 3), see rounds().
Every ratio of rounds is the median of the rounds' own ratios (paired()).
"""
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ZDM = os.environ["ZDM"]
URL = os.environ["ZDM_TEST_PG_URL"]
PGBENCH = os.environ.get("PGBENCH", "pgbench")
EXPR = "CASE WHEN project_name LIKE '%Core%' THEN 'core' ELSE 'other' END"
# Unthrottled: no latency pacing, no lock bound, and no pause while
# autovacuum works on the table -- the run's own dead rows start one at a
# random moment (about 1 run in 25 at 1M rows), and the pause it made (a
# second per recheck, 6 s once) landed on whichever run it hit: one such
# run turned "2 workers / 1" into 0.95.  The UPDATE compared does not
# pause either.
UNTHROTTLED = "max_latency_factor = 0\nmax_lock_ms = 0\ncheck_autovacuum = false\n"


def rounds():
    """BENCH_ROUNDS (default 3): rounds of the sections that compare two
    single runs (costly where, SQLite, trigger tax), alternating which
    goes first; their medians are printed, with every round.  One run of
    each moved a ratio by 0.1 between two runs of the bench (trigger tax:
    0.91, then 0.79)."""
    return max(1, int(os.environ.get("BENCH_ROUNDS", "3")))


def paired(a, b):
    """The median of the rounds' ratios a[i] / b[i]: the two runs of a
    round ran one after the other, so a host that slows down for a while
    slows both.  The ratio of each side's median paired one round's run
    with another's: on a day this VM's speed varied 2x from one second to
    the next (2026-11-30), SQLite's rounds 0.72, 0.71 and 1.01 printed
    0.97 that way (README: run J)."""
    return statistics.median(x / y for x, y in zip(a, b))


def order(r, a, b):
    """a then b in even rounds, b then a in odd ones."""
    return (a, b) if r % 2 == 0 else (b, a)


def psql(sql):
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def make_table(name, rows, skew=0):
    """rows rows; with skew, the last `skew` of them have ids near 10^12."""
    psql(f"DROP TABLE IF EXISTS {name} CASCADE")
    psql(f"CREATE TABLE {name} (id bigint PRIMARY KEY, project_name text NOT NULL, "
         f"payload text NOT NULL DEFAULT repeat('x', 40))")
    psql(f"INSERT INTO {name} (id, project_name) SELECT i, CASE WHEN i % 3 = 0 "
         f"THEN 'Core ' || i ELSE 'App ' || i END FROM generate_series(1, {rows - skew}) i")
    if skew:
        psql(f"INSERT INTO {name} (id, project_name) SELECT 1000000000000 + i, 'Core ' || i "
             f"FROM generate_series(1, {skew}) i")
    psql(f"ALTER TABLE {name} ADD COLUMN category text")
    psql(f"VACUUM ANALYZE {name}")
    psql("CHECKPOINT")


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def plan_dir(table, tag, throttle="", where="category IS NULL", sets=None, dual_write=True):
    d = tempfile.mkdtemp(prefix="zdm-bench-")
    sets = sets or {"category": EXPR}
    body = "".join(f'set.{k} = "{v}"\n' for k, v in sets.items())
    dw = '[backfill.dual_write]\nsources = ["project_name"]\n' if dual_write else ""
    with open(os.path.join(d, f"bf_{table}_{tag}.toml"), "w") as f:
        f.write(f"""
description = "bench"
[[expand.steps]]
sql = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "{table}"
where = "{where}"
{body}{dw}[backfill.throttle]
{throttle}""")
    return d


def zdm(db, plans, *args):
    return subprocess.run([ZDM, "--db", db, "--plans", plans, "-q", *args],
                          check=True, capture_output=True, text=True)


def peak_rss(pid):
    """The process's own peak RSS in KiB (VmHWM), 0 once it has exited.
    Not wait4's ru_maxrss: that keeps the peak of the process before its
    exec too, which for a child of this Python process is Python's own
    RSS (15 MiB with sqlite3 loaded: /bin/true "used" 15 MiB)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_workers(db, plans, plan, n, limit=None):
    """n workers of one plan at once; returns (seconds, largest peak RSS in
    KiB, finished).  Each worker's own peak (peak_rss, read while it runs;
    VmHWM only grows).  Past `limit` seconds the workers get SIGTERM."""
    t0 = time.monotonic()
    procs = [subprocess.Popen([ZDM, "--db", db, "--plans", plans, "-q", "backfill", plan],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(n)]
    rss, done, stopped = 0, 0, False
    pending = {p.pid: p for p in procs}
    while pending:
        if limit and not stopped and time.monotonic() - t0 > limit:
            for p in pending.values():
                p.send_signal(signal.SIGTERM)
            stopped = True
        for q in pending:
            rss = max(rss, peak_rss(q))
        pid, status, _ = os.wait4(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.01)
            continue
        p = pending.pop(pid, None)
        if p is None:
            continue
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode == 0:
            done += 1
        elif not stopped:
            sys.exit(f"zdm backfill failed ({p.returncode}): {p.stderr.read().decode()}")
    secs = time.monotonic() - t0
    for p in procs:
        p.stderr.close()
    return secs, rss, done == n


def zdm_expand(table, tag, throttle=UNTHROTTLED, **kw):
    """The plan's expand (installs the triggers); returns its plans dir."""
    plans = plan_dir(table, tag, throttle, **kw)
    zdm(URL, plans, "advance", f"bf_{table}_{tag}")
    _expanded[(table, str(tag))] = plans
    return plans


_expanded = {}


def zdm_run(table, tag, workers=1, limit=None):
    """The backfill of a plan zdm_expand expanded (timed by the caller)."""
    return run_workers(URL, _expanded[(table, str(tag))], f"bf_{table}_{tag}", workers, limit)


def zdm_backfill(table, tag, throttle=UNTHROTTLED, workers=1, limit=None, **kw):
    zdm_expand(table, tag, throttle, **kw)
    psql("CHECKPOINT")  # each timed run starts after a checkpoint (section_raw)
    return zdm_run(table, tag, workers, limit)


def shell_loop(table, rows, batch=1000):
    """What people write by hand: a psql per keyset batch."""
    script = (f"last=0; while [ $last -lt {rows} ]; do "
              f"psql -X -q -c \"UPDATE {table} SET category = {EXPR} "
              f"WHERE id > $last AND id <= $((last + {batch}))\"; last=$((last + {batch})); done")
    subprocess.run(["bash", "-c", script], check=True)


def check_converted(table):
    bad = psql(f"SELECT count(*) FROM {table} WHERE category IS DISTINCT FROM ({EXPR})")
    if bad != "0":
        sys.exit(f"{table}: {bad} rows not converted")


def pgbench_tps(table, seconds=8):
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write(f"\\set id random(1, 100000)\n"
                 f"UPDATE {table} SET project_name = 'Core ' || :id WHERE id = :id;\n"
                 f"INSERT INTO {table} (id, project_name) VALUES (:id + 100000000 + (random() * 1e8)::bigint, 'App x') "
                 f"ON CONFLICT DO NOTHING;\n")
    script.close()
    out = subprocess.run([PGBENCH, "-n", "-c", "4", "-j", "2", "-T", str(seconds), "-f", script.name],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("tps"):
            return float(line.split("=")[1].split()[0])
    sys.exit("pgbench printed no tps")


def section_raw(say, sizes):
    rates = {}
    for n in sizes:
        say(f"\n== raw speed, PostgreSQL, {n:,} rows, median of {rounds()} round(s) (load {load()})")
        # Like with like: the UPDATE a hand-written release runs has the
        # same dual-write triggers in place as zdm's backfill (without
        # them the application's writes during it are lost).  A BEFORE
        # UPDATE row trigger makes PostgreSQL lock each row before it
        # updates it (two more WAL records a row: 449 against 390 MB for
        # 1M rows), whatever the trigger's column list or WHEN -- a cost
        # of dual writing, paid by both.  The UPDATE without triggers is
        # shown for reference (one run).  Rounds, as the other sections:
        # one run of each moved this ratio from 1.21 to 0.83 between two
        # runs of the bench on a noisy day (README: runs J and K).
        t_upds, t_zdms, rss_all = [], [], []
        for r in range(rounds()):
            make_table("b_update", n)
            make_table("b_zdm", n)
            zdm(URL, plan_dir("b_update", f"u{r}"), "advance", f"bf_b_update_u{r}")  # the same triggers
            zdm_expand("b_zdm", f"{n}r{r}")
            # Every timed run starts right after a checkpoint: the
            # full-page images after one, and a checkpoint forced by the
            # WAL of the run before, would otherwise fall on the later
            # runs only.
            for which in order(r, "update", "zdm"):
                psql("CHECKPOINT")
                if which == "update":
                    t_upds.append(timed(lambda: psql(f"UPDATE b_update SET category = {EXPR}")))
                else:
                    t, rss, _ = zdm_run("b_zdm", f"{n}r{r}")
                    t_zdms.append(t)
                    check_converted("b_zdm")
                    rss_all.append(rss)
            for t in ("b_update", "b_zdm"):
                psql(f"DROP TABLE {t} CASCADE")
        make_table("b_bare", n)
        psql("CHECKPOINT")
        t_bare = timed(lambda: psql(f"UPDATE b_bare SET category = {EXPR}"))
        t_upd, t_zdm = statistics.median(t_upds), statistics.median(t_zdms)
        rates[n] = n / t_zdm
        say(f"single UPDATE, triggers in place {n / t_upd:9,.0f} rows/s  ({t_upd:.2f} s)")
        say(f"zdm backfill, unthrottled     {n / t_zdm:12,.0f} rows/s  ({t_zdm:.2f} s)  "
            f"ratio to UPDATE {paired(t_upds, t_zdms):.2f}   [target >= 0.9]")
        say(f"{'':30s}seconds, UPDATE / zdm: " + ", ".join(f"{a:.2f} / {b:.2f} ({a / b:.2f})"
                                                          for a, b in zip(t_upds, t_zdms)))
        say(f"single UPDATE, no triggers    {n / t_bare:12,.0f} rows/s  ({t_bare:.2f} s)  "
            f"zdm / it {t_bare / t_zdm:.2f} (for reference, one run)")
        if n == sizes[0]:
            make_table("b_loop", n)
            t_loop = timed(lambda: shell_loop("b_loop", n))
            check_converted("b_loop")
            say(f"psql shell loop (1000 rows)   {n / t_loop:12,.0f} rows/s  ({t_loop:.2f} s)  "
                f"zdm / loop {t_loop / t_zdm:.1f}")
        say(f"zdm worker peak RSS           {max(rss_all) / 1024:12.1f} MiB   [target < 16]")
        for t in ("b_bare", "b_loop"):
            psql(f"DROP TABLE IF EXISTS {t} CASCADE")
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        say(f"scaling: zdm rows/s at {b:,} / at {a:,} = {rates[b] / rates[a]:.2f}")


def two_updates(table, n, r):
    """The server's own ceiling for two sessions: one UPDATE of the whole
    table (triggers in place), then, on a fresh copy, two UPDATEs at once,
    each of half the rows (split at the median key).  Returns (seconds of
    the one, seconds of the two)."""
    sql = f"UPDATE {table} SET category = {EXPR}"
    make_table(table, n)
    zdm(URL, plan_dir(table, f"one{r}"), "advance", f"bf_{table}_one{r}")  # the same triggers
    psql("CHECKPOINT")
    one = timed(lambda: psql(sql))
    make_table(table, n)
    zdm(URL, plan_dir(table, f"two{r}"), "advance", f"bf_{table}_two{r}")
    mid = psql(f"SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY id) FROM {table}")
    psql("CHECKPOINT")
    t0 = time.monotonic()
    procs = [subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", f"{sql} WHERE id {op} {mid}"])
             for op in ("<=", ">")]
    if any(p.wait() != 0 for p in procs):
        sys.exit("two UPDATEs at once: psql failed")
    two = time.monotonic() - t0
    check_converted(table)
    psql(f"DROP TABLE {table} CASCADE")
    return one, two


def section_workers(say, n):
    """1 and 2 workers, WORKER_ROUNDS rounds (default 3) alternating which
    goes first, each on a fresh table after a CHECKPOINT; the medians.  One
    run of each varied from 0.95 to 1.49 on a quiet machine: a worker that
    stops early (or anything else on the host) lands on one run only.
    Then what the server itself gives two sessions on this machine: two
    UPDATEs of half the rows at once against one UPDATE of all (evenly
    spread keys; split at the median, the skewed table is the same work)."""
    rounds = max(1, int(os.environ.get("WORKER_ROUNDS", "3")))
    say(f"\n== workers, PostgreSQL, {n:,} rows, unthrottled, median of {rounds} round{'s' if rounds > 1 else ''} "
        f"(load {load()})")
    for label, skew in (("evenly spread keys", 0), (f"skewed keys ({n // 1000:,} ids near 10^12)", n // 1000)):
        secs = {1: [], 2: []}
        for r in range(rounds):
            for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                make_table(f"b_w{w}", n, skew)
                t, _, _ = zdm_backfill(f"b_w{w}", f"{w}w{skew}r{r}", workers=w)
                secs[w].append(t)
                check_converted(f"b_w{w}")
                psql(f"DROP TABLE b_w{w} CASCADE")
        m1, m2 = statistics.median(secs[1]), statistics.median(secs[2])
        say(f"{label:34s} 1 worker {n / m1:10,.0f} rows/s, 2 workers {n / m2:10,.0f} rows/s  2 / 1 = "
            f"{paired(secs[1], secs[2]):.2f}   [target >= 1.6]")
        if rounds > 1:
            say(f"{'':34s} seconds, 1 / 2 workers: " +
                ", ".join(f"{a:.2f} / {b:.2f} ({a / b:.2f})" for a, b in zip(secs[1], secs[2])))
    ones, twos = [], []
    for r in range(rounds):
        one, two = two_updates("b_half", n, r)
        ones.append(one)
        twos.append(two)
    say(f"{'the server, 2 sessions:':34s} 1 UPDATE {n / statistics.median(ones):10,.0f} rows/s, 2 UPDATEs of half "
        f"at once {n / statistics.median(twos):10,.0f} rows/s  2 / 1 = {paired(ones, twos):.2f}   "
        f"(the ceiling on this machine, for reference)")
    if rounds > 1:
        say(f"{'':34s} seconds, 1 / 2 UPDATEs: " +
            ", ".join(f"{a:.2f} / {b:.2f} ({a / b:.2f})" for a, b in zip(ones, twos)))


DEDUP_WHERE = "fixed IS NULL AND k IN (SELECT k FROM {t} GROUP BY k HAVING count(*) > 1)"


def dedup_table(t, n):
    """n rows; 2 % of them in pairs that share k (the duplicates to fix)."""
    psql(f"DROP TABLE IF EXISTS {t} CASCADE")
    psql(f"CREATE TABLE {t} (id bigint PRIMARY KEY, k bigint NOT NULL, fixed text)")
    psql(f"INSERT INTO {t} (id, k) SELECT i, CASE WHEN i % 100 < 2 THEN -(i / 100) ELSE i END "
         f"FROM generate_series(1, {n}) i")
    psql(f"CREATE INDEX ON {t} (k)")
    psql(f"VACUUM ANALYZE {t}")


def zdm_timed_log(plans, plan, limit):
    """One worker with -v: (seconds, finished, the final check's ms from
    its log or None)."""
    t0 = time.monotonic()
    p = subprocess.Popen([ZDM, "--db", URL, "--plans", plans, "-v", "backfill", plan],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate()
    secs = time.monotonic() - t0
    check = None
    for line in err.splitlines():
        if "final check:" in line and " ms)" in line:
            check = int(line.rsplit("(", 1)[1].split()[0])
    return secs, p.returncode == 0, check


def section_costly_where(say, n):
    say(f"\n== costly where, PostgreSQL, {n:,} rows, 2 % match, median of {rounds()} round(s) (load {load()})")
    say(f"   where = \"{DEDUP_WHERE.format(t='t')}\"")
    t_upds, t_zdms, checks, m, done, finished = [], [], [], 0, 0, True
    for r in range(rounds()):
        dedup_table("b_dup_u", n)
        dedup_table("b_dup_z", n)
        plans = plan_dir("b_dup_z", f"dup{r}", UNTHROTTLED, where=DEDUP_WHERE.format(t="b_dup_z"),
                         sets={"fixed": "'dup'"}, dual_write=False)
        zdm(URL, plans, "advance", f"bf_b_dup_z_dup{r}")
        for which in order(r, "update", "zdm"):
            psql("CHECKPOINT")
            if which == "update":
                t_upds.append(timed(lambda: psql(f"UPDATE b_dup_u SET fixed = 'dup' WHERE "
                                                 f"{DEDUP_WHERE.format(t='b_dup_u')}")))
            else:
                limit = max(60.0, 100 * (t_upds[-1] if t_upds else 1.0))
                t, ok, check = zdm_timed_log(plans, f"bf_b_dup_z_dup{r}", limit)
                t_zdms.append(t)
                finished &= ok
                if check is not None:
                    checks.append(check / 1000.0)
        m = int(psql("SELECT count(*) FROM b_dup_u WHERE fixed = 'dup'"))
        done = int(psql("SELECT count(*) FROM b_dup_z WHERE fixed = 'dup'"))
        for t in ("b_dup_u", "b_dup_z"):
            psql(f"DROP TABLE {t} CASCADE")
    t_upd, t_zdm = statistics.median(t_upds), statistics.median(t_zdms)
    say(f"single UPDATE                 {m:,} rows in {t_upd:.2f} s")
    if finished:
        say(f"zdm backfill, unthrottled     {done:,} rows in {t_zdm:.2f} s  ratio to UPDATE "
            f"{paired(t_upds, t_zdms):.2f}   [target >= 0.8]")
    else:
        say(f"zdm backfill, unthrottled     stopped at the time limit with {done:,} of {m:,} rows  ratio to "
            f"UPDATE < {t_upd / t_zdm:.3f}   [target >= 0.8]")
    say(f"{'':30s}seconds, UPDATE / zdm: " + ", ".join(f"{a:.2f} / {b:.2f} ({a / b:.2f})"
                                                      for a, b in zip(t_upds, t_zdms)))
    if checks:
        # The final check evaluates `where` once more after the last batch
        # (the proof that no row is left, data-safety issue): the UPDATE
        # evaluates it once, zdm twice (the work list, then the proof).
        c = statistics.median(checks)
        say(f"{'':30s}of which the final check {c:.2f} s; zdm without it / UPDATE: "
            f"{t_upd / max(t_zdm - c, 1e-3):.2f} (for reference: the proof is not optional)")


def sqlite_table(path, rows):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE t (id integer PRIMARY KEY, project_name text NOT NULL, "
              "payload text NOT NULL DEFAULT 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', category text)")
    c.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
              "INSERT INTO t (id, project_name) SELECT i, CASE WHEN i % 3 = 0 THEN 'Core ' || i "
              "ELSE 'App ' || i END FROM n", (rows,))
    c.commit()
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def sqlite_update(path, sql):
    """One UPDATE in autocommit, as by hand: its commit (and the WAL
    checkpoint it triggers) included, closing the connection not."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA synchronous=FULL")
    t = timed(lambda: c.execute(sql))
    c.close()
    return t


def section_sqlite(say, n):
    say(f"\n== raw speed, SQLite (WAL, synchronous=FULL), {n:,} rows, median of {rounds()} round(s) "
        f"(load {load()})")
    work = tempfile.mkdtemp(prefix="zdm-bench-sqlite-")
    pb, pu, pz = (os.path.join(work, f) for f in ("b.db", "u.db", "z.db"))
    # Like with like, as in the PostgreSQL section: the UPDATE a release
    # written by hand runs -- the plan's set and where -- after the same
    # expand, so the same dual-write triggers are in place (on SQLite they
    # are UPDATE OF the sources: neither statement fires them).  The bare
    # table's UPDATE without where (the figure before) for reference.
    plans = plan_dir("t", "s", UNTHROTTLED)
    t_upds, t_zdms, t_bares, rss = [], [], [], 0
    for r in range(rounds()):
        for p in (pb, pu, pz):
            sqlite_table(p, n)
        zdm(f"sqlite:{pu}", plans, "advance", "bf_t_s")
        zdm(f"sqlite:{pz}", plans, "advance", "bf_t_s")
        for which in order(r, "update", "zdm"):
            if which == "update":
                t_upds.append(sqlite_update(pu, f"UPDATE t SET category = {EXPR} WHERE category IS NULL"))
            else:
                t, rss1, _ = run_workers(f"sqlite:{pz}", plans, "bf_t_s", 1)
                t_zdms.append(t)
                rss = max(rss, rss1)
        t_bares.append(sqlite_update(pb, f"UPDATE t SET category = {EXPR}"))
        c = sqlite3.connect(pz)
        bad = c.execute(f"SELECT count(*) FROM t WHERE category IS NOT ({EXPR})").fetchone()[0]
        c.close()
        if bad:
            sys.exit(f"sqlite: {bad} rows not converted")
    t_upd, t_zdm, t_bare = (statistics.median(x) for x in (t_upds, t_zdms, t_bares))
    say(f"single UPDATE, triggers in place {n / t_upd:9,.0f} rows/s  ({t_upd:.2f} s)")
    say(f"zdm backfill, unthrottled     {n / t_zdm:12,.0f} rows/s  ({t_zdm:.2f} s)  "
        f"ratio to UPDATE {paired(t_upds, t_zdms):.2f}   [target >= 0.8]")
    say(f"{'':30s}seconds, UPDATE / zdm: " + ", ".join(f"{a:.2f} / {b:.2f} ({a / b:.2f})"
                                                      for a, b in zip(t_upds, t_zdms)))
    say(f"single UPDATE, no triggers    {n / t_bare:12,.0f} rows/s  ({t_bare:.2f} s)  "
        f"zdm / it {paired(t_bares, t_zdms):.2f} (for reference)")
    say(f"zdm worker peak RSS           {rss / 1024:12.1f} MiB   [target < 16]")
    for p in (pb, pu, pz):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(p + suffix):
                os.remove(p + suffix)


def tax_tables(tag, n):
    """Fresh b_trig (with the dual-write triggers) and b_plain, alike."""
    make_table("b_trig", n)
    make_table("b_plain", n)
    zdm(URL, plan_dir("b_trig", tag), "advance", f"bf_b_trig_{tag}")  # installs the triggers
    psql("UPDATE b_trig SET category = NULL")          # keep tables alike
    psql("UPDATE b_plain SET category = NULL")
    psql("VACUUM ANALYZE b_trig")
    psql("VACUUM ANALYZE b_plain")


# Rows of the trigger tax's tables: pgbench writes 100,000 of them; a bulk
# UPDATE of 100,000 fresh rows took 0.4 s, and its rounds moved by 0.4
# (0.65 to 1.16) on a quiet host: the bulk cases update 400,000.
TAX_ROWS = 100000
TAX_BULK_ROWS = 400000


def section_trigger_tax(say):
    """Every round of every case on fresh tables: a pgbench run inserts as
    many rows as its TPS allows, so tables that carried over into the
    next case differed in size (by a quarter after three rounds), and the
    bulk UPDATEs that followed updated different numbers of rows."""
    say(f"\n== dual-write trigger tax, PostgreSQL, median of {rounds()} round(s) (load {load()})")
    cases = (("pgbench write TPS", None, "0.85"),
             ("bulk UPDATE touching the source column", "project_name = project_name || ''", "0.85"),
             ("bulk UPDATE not touching it", "payload = payload || ''", "0.95"),
             # the value changes: the trigger's function runs for every
             # row and writes the target too (the two above leave it
             # unchanged, so the WHEN clause keeps the function from
             # running); no target in issue 13, for reference
             ("bulk UPDATE changing the source", "project_name = project_name || 'x'", None))
    for i, (label, col, target) in enumerate(cases):
        plain, trig = [], []
        n = TAX_ROWS if col is None else TAX_BULK_ROWS
        for r in range(rounds()):
            tax_tables(f"c{i}r{r}", n)
            for t in order(r, "b_plain", "b_trig"):
                psql("CHECKPOINT")
                if col is None:
                    v = pgbench_tps(t)
                else:
                    v = n / timed(lambda: psql(f"UPDATE {t} SET {col}"))
                (plain if t == "b_plain" else trig).append(v)
        a, b = statistics.median(plain), statistics.median(trig)
        unit = "TPS" if col is None else "rows/s"
        say(f"{label + f' ({n:,} rows)':48s} {unit:6s} without {a:10,.0f}  with {b:10,.0f}  "
            f"ratio {paired(trig, plain):.2f}   " + (f"[target >= {target}]" if target else "(for reference)"))
        say(f"{'':48s} rounds: " + ", ".join(f"{y / x:.2f}" for x, y in zip(plain, trig)))
    for t in ("b_trig", "b_plain"):
        psql(f"DROP TABLE {t} CASCADE")


SECTIONS = ("raw", "workers", "where", "sqlite", "tax")


def main():
    sizes = sorted(int(x) for a in sys.argv[1:] for x in a.split())
    only = os.environ.get("SECTIONS", ",".join(SECTIONS)).split(",")
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    say(f"zdm backfill benchmark, PostgreSQL {psql('SHOW server_version')} (fsync {psql('SHOW fsync')}), "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"load average {load()}")
    big = sizes[-1]
    if "raw" in only:
        section_raw(say, sizes)
    if "workers" in only:
        section_workers(say, big)
    if "where" in only:
        section_costly_where(say, max(big // 2, 1000))
    if "sqlite" in only:
        section_sqlite(say, big)
    if "tax" in only:
        section_trigger_tax(say)
    say(f"\nload average at the end: {load()}")
    say("reproduce: ROWS=" + ",".join(str(s) for s in sizes) + " tests/bench/run.sh")
    out = os.environ.get("BENCH_OUT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.txt"))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
