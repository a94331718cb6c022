#!/usr/bin/env python3
"""The numbers behind tests/bench/run.sh (which starts the server).

Environment: ZDM (binary), ZDM_TEST_PG_URL, PGHOST/PGUSER/PGDATABASE for
psql, PGBENCH.  Arguments: table sizes.  Every comparison runs in this one
process, on identical tables, one after the other.
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

ZDM = os.environ["ZDM"]
URL = os.environ["ZDM_TEST_PG_URL"]
PGBENCH = os.environ.get("PGBENCH", "pgbench")
EXPR = "CASE WHEN project_name LIKE '%Core%' THEN 'core' ELSE 'other' END"


def psql(sql, quiet=True):
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_table(name, rows):
    psql(f"DROP TABLE IF EXISTS {name} CASCADE")
    psql(f"CREATE TABLE {name} (id bigint PRIMARY KEY, project_name text NOT NULL, "
         f"payload text NOT NULL DEFAULT repeat('x', 40))")
    psql(f"INSERT INTO {name} (id, project_name) SELECT i, CASE WHEN i % 3 = 0 "
         f"THEN 'Core ' || i ELSE 'App ' || i END FROM generate_series(1, {rows}) i")
    psql(f"ALTER TABLE {name} ADD COLUMN category text")
    psql(f"VACUUM ANALYZE {name}")


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def plan_dir(table, tag):
    d = tempfile.mkdtemp(prefix="zdm-bench-")
    with open(os.path.join(d, f"bf_{table}_{tag}.toml"), "w") as f:
        f.write(f"""
description = "bench"
[[expand.steps]]
sql = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "{table}"
where = "category IS NULL"
set.category = "{EXPR}"
[backfill.dual_write]
sources = ["project_name"]
[backfill.throttle]
""")
    return d


def zdm(plans, *args):
    return subprocess.run([ZDM, "--db", URL, "--plans", plans, "-q", *args],
                          check=True, capture_output=True, text=True)


def zdm_backfill(table, tag):
    """Expands (installs the trigger), then times one worker; returns
    (seconds, peak RSS in KiB of the worker process)."""
    plans = plan_dir(table, tag)
    zdm(plans, "advance", f"bf_{table}_{tag}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    p = subprocess.run([ZDM, "--db", URL, "--plans", plans, "-q", "backfill", f"bf_{table}_{tag}"],
                       capture_output=True, text=True)
    secs = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"zdm backfill failed: {p.stderr}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far; psql/zdm advance
    # are smaller than a worker, so a growth here is the worker's.
    return secs, max(rss, before)


def shell_loop(table, rows, batch=1000):
    """What people write by hand: a psql per keyset batch."""
    script = (f"last=0; while [ $last -lt {rows} ]; do "
              f"psql -X -q -c \"UPDATE {table} SET category = {EXPR.replace(chr(39), chr(39))} "
              f"WHERE id > $last AND id <= $((last + {batch}))\"; last=$((last + {batch})); done")
    subprocess.run(["bash", "-c", script], check=True)


def check_converted(table, rows):
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


def main():
    sizes = [int(x) for a in sys.argv[1:] for x in a.split()]
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    say(f"zdm backfill benchmark, PostgreSQL {psql('SHOW server_version')}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}")
    rates = {}
    for n in sizes:
        say(f"\n== {n} rows")
        make_table("b_update", n)
        make_table("b_zdm", n)
        make_table("b_loop", n)
        t_upd = timed(lambda: psql(f"UPDATE b_update SET category = {EXPR}"))
        t_zdm, rss = zdm_backfill("b_zdm", n)
        check_converted("b_zdm", n)
        t_loop = timed(lambda: shell_loop("b_loop", n))
        check_converted("b_loop", n)
        r_upd, r_zdm, r_loop = n / t_upd, n / t_zdm, n / t_loop
        rates[n] = r_zdm
        say(f"single UPDATE          {r_upd:12,.0f} rows/s  ({t_upd:.2f} s)")
        say(f"zdm backfill (trigger) {r_zdm:12,.0f} rows/s  ({t_zdm:.2f} s)  ratio to UPDATE {r_zdm / r_upd:.2f}")
        say(f"psql shell loop        {r_loop:12,.0f} rows/s  ({t_loop:.2f} s)  zdm / loop {r_zdm / r_loop:.2f}")
        say(f"zdm worker peak RSS    {rss / 1024:12.1f} MiB")
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        say(f"\nscaling: rows/s at {b} / rows/s at {a} = {rates[b] / rates[a]:.2f}")

    say("\n== dual-write trigger overhead (100000 rows)")
    make_table("b_trig", 100000)
    make_table("b_plain", 100000)
    zdm(plan_dir("b_trig", "o"), "advance", "bf_b_trig_o")  # installs the trigger
    psql("UPDATE b_trig SET category = NULL")          # keep tables alike
    psql("UPDATE b_plain SET category = NULL")
    tps_plain = pgbench_tps("b_plain")
    tps_trig = pgbench_tps("b_trig")
    say(f"pgbench write TPS      without {tps_plain:10,.0f}  with {tps_trig:10,.0f}  ratio {tps_trig / tps_plain:.2f}")
    for col, label in (("project_name = project_name || ''", "touching the source column"),
                       ("payload = payload || ''", "not touching it")):
        t_plain = timed(lambda: psql(f"UPDATE b_plain SET {col}"))
        t_trig = timed(lambda: psql(f"UPDATE b_trig SET {col}"))
        say(f"bulk UPDATE {label:27s} rows/s without {100000 / t_plain:10,.0f}  with "
            f"{100000 / t_trig:10,.0f}  ratio {t_plain / t_trig:.2f}")
    say("\nreproduce: tests/bench/run.sh " + " ".join(str(s) for s in sizes))


if __name__ == "__main__":
    main()
