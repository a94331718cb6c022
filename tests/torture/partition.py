#!/usr/bin/env python3
"""partition.py -- backfill workers on several "hosts" (network namespaces)
and a network partition of one of them.

Owns: network namespaces zdmp<pid>-s (the PostgreSQL server) and
zdmp<pid>-w1..w4 (workers), joined by veth pairs 10.231.N.1 (server side)
/ 10.231.N.2 (worker N), made by netns.py; nothing else on the machine is
touched, and all of it is removed on exit.  Real TCP between the namespaces; the server also
listens on a unix socket that this script uses for setup and checks.

  1. rows/s with 1, 2 and 4 workers, one per namespace (a ratio to one);
  2. a partition: worker 1 holds a range when the server's end of its link
     goes down (no FIN, no RST reaches it).  Its range must go to the
     worker on the other host while the link is still down (the bound is
     30 s: server keepalives end the cut session, which frees the range),
     and after the link returns worker 1 must never commit a batch of the
     range it lost (fencing), while every row is converted exactly once
     (an audit trigger records each row a batch converts, with the
     client address of the session that did it).

Exit 0 passed, 1 failed, 77 skipped (not root, no `ip netns`, no server).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import psycopg2
except ImportError:
    print("partition: python3-psycopg2 missing: skipped")
    sys.exit(77)

from netns import Hosts, sh

ZDM = os.environ.get("ZDM")
TAG = "zdmp%d" % (os.getpid() % 100000)
NW = 4
HOSTS = Hosts(TAG, NW)
LINK_DOWN_S = float(os.environ.get("ZDM_PARTITION_DOWN", "45"))
BOUND_S = 30
fails = []


def bindir():
    for v in sorted(os.listdir("/usr/lib/postgresql"), reverse=True) if os.path.isdir("/usr/lib/postgresql") else []:
        d = f"/usr/lib/postgresql/{v}/bin"
        if os.path.exists(d + "/pg_ctl"):
            return d
    if shutil.which("pg_ctl"):
        return os.path.dirname(shutil.which("pg_ctl"))
    return None


class Server:
    def __init__(self):
        self.bin = bindir()
        self.dir = tempfile.mkdtemp(prefix="zdm-part.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir + "/data"
        self.own(self.bin + "/initdb", "-D", self.data, "--auth=trust", "--nosync", "-U", "postgres", "-E", "UTF8",
                 "--locale=C")
        with open(self.data + "/pg_hba.conf", "a") as fh:
            fh.write(f"host all all {HOSTS.subnet()} trust\n")
        addrs = HOSTS.server_addrs()
        # started inside the server's namespace: it listens on its veths
        sh(*HOSTS.in_server(["runuser", "-u", "postgres", "--", self.bin + "/pg_ctl", "-D", self.data,
                             "-l", self.dir + "/server.log", "-w", "-t", "60", "-o",
                             f"-p 5432 -k {self.dir} -c listen_addresses='{addrs}' -c fsync=off "
                             "-c max_connections=60", "start"]))

    def own(self, *argv):
        subprocess.run(["runuser", "-u", "postgres", "--"] + list(argv), cwd=self.dir, check=True,
                       capture_output=True)

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", self.bin + "/pg_ctl", "-D", self.data, "-m",
                        "immediate", "-w", "stop"], cwd=self.dir, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def conn(self, db="postgres"):
        c = psycopg2.connect(host=self.dir, user="postgres", dbname=db)
        c.autocommit = True
        return c


def q(c, sql, args=()):
    cur = c.cursor()
    cur.execute(sql, args)
    return cur.fetchall() if cur.description else None


def setup_db(srv, name, rows, plans, rate, batch):
    c = srv.conn()
    q(c, f"DROP DATABASE IF EXISTS {name}")
    q(c, f"CREATE DATABASE {name}")
    c.close()
    c = srv.conn(name)
    q(c, "CREATE TABLE t (id bigint PRIMARY KEY, src integer NOT NULL, dst bigint)")
    q(c, "INSERT INTO t (id, src) SELECT g, g %% 1000 FROM generate_series(1, %s) g", (rows,))
    q(c, "CREATE TABLE audit (k bigint NOT NULL, addr inet, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    q(c, "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         "IF coalesce(current_setting('zdm.backfill', true), '') <> '' THEN "
         "INSERT INTO audit (k, addr) VALUES (NEW.id, inet_client_addr()); END IF; RETURN NULL; END $$")
    q(c, "CREATE TRIGGER audit AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION audit()")
    q(c, "ANALYZE t")
    os.makedirs(plans, exist_ok=True)
    with open(f"{plans}/p.toml", "w") as fh:
        fh.write(f"""description = "partition test"
[[expand.steps]]
sql = "SELECT 1"
down = "SELECT 1"
[backfill]
table = "t"
where = "dst IS NULL"
set.dst = "src * 2 + 1"
[backfill.throttle]
batch_size = {batch}
max_rows_per_second = {rate}
""")
    return c


def zdm(srv, db, plans, *args):
    url = f"postgresql:///{db}?host={srv.dir}&user=postgres"
    return subprocess.run([ZDM, "--db", url, "--plans", plans] + list(args), capture_output=True, text=True,
                          timeout=300)


def worker(db, plans, i, log):
    url = f"postgresql://postgres@{HOSTS.server_addr(i)}:5432/{db}"
    return subprocess.Popen(HOSTS.in_worker(i, [ZDM, "--db", url, "--plans", plans, "-v", "backfill", "p"]),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def throughput(srv, work, n, rows):
    db = f"tp{n}"
    plans = f"{work}/plans-{db}"
    c = setup_db(srv, db, rows, plans, 0, 5000)
    r = zdm(srv, db, plans, "advance", "p")
    assert r.returncode == 0, r.stderr
    logs = [open(f"{work}/{db}-w{i}.log", "w") for i in range(1, n + 1)]
    t0 = time.time()
    ps = [worker(db, plans, i, logs[i - 1]) for i in range(1, n + 1)]
    for p in ps:
        p.wait(timeout=600)
    secs = time.time() - t0
    left = q(c, "SELECT count(*) FROM t WHERE dst IS DISTINCT FROM src * 2 + 1")[0][0]
    phase = q(c, "SELECT phase FROM zdm.plans WHERE id = 'p'")[0][0]
    if left or phase != "backfilled" or any(p.returncode != 0 for p in ps):
        fails.append(f"{n} workers: {left} rows left, phase {phase}, exits {[p.returncode for p in ps]}")
    c.close()
    return rows / secs


def partition(srv, work):
    db, rows = "part", 200000
    plans = f"{work}/plans-part"
    c = setup_db(srv, db, rows, plans, 2500, 500)
    r = zdm(srv, db, plans, "advance", "p")
    assert r.returncode == 0, r.stderr
    l1, l2 = open(f"{work}/part-w1.log", "w"), open(f"{work}/part-w2.log", "w")
    w1 = worker(db, plans, 1, l1)
    time.sleep(3)
    w2 = worker(db, plans, 2, l2)
    time.sleep(4)
    # worker 1's range, owner and progress at the cut
    r = q(c, "SELECT r.range_id, r.owner, r.lo, r.hi FROM zdm.ranges r JOIN pg_stat_activity a "
             "ON a.pid = r.owner_backend WHERE r.plan_id = 'p' AND r.done = 0 AND a.client_addr = '10.231.1.2'")
    if not r:
        fails.append("worker 1 holds no range before the cut")
        return None
    rid, owner, lo, hi = r[0]
    t_cut = time.time()
    HOSTS.cut(1)
    print(f"partition: cut worker 1 (10.231.1.2) while it held range {rid} ({lo}, {hi}]", flush=True)
    takeover, took_db = None, None
    while time.time() - t_cut < LINK_DOWN_S:
        o = q(c, "SELECT owner, done FROM zdm.ranges WHERE plan_id = 'p' AND range_id = %s", (rid,))[0]
        if takeover is None and (o[0] != owner or o[1]):
            takeover = time.time() - t_cut
            took_db = q(c, "SELECT clock_timestamp()")[0][0]
            print(f"partition: range {rid} taken over after {takeover:.1f} s by {o[0] or '(done)'}", flush=True)
        time.sleep(0.25)
    HOSTS.heal(1)
    print(f"partition: link back after {time.time() - t_cut:.0f} s", flush=True)
    if takeover is None:
        fails.append(f"range {rid} was not taken over while the link was down ({LINK_DOWN_S:.0f} s)")
    elif takeover > BOUND_S:
        print(f"partition: WARNING: takeover took {takeover:.1f} s, more than the {BOUND_S} s aim")
    # go faster now, and let both finish
    zdm(srv, db, plans, "set", "p", "max_rows_per_second=0")
    for p in (w1, w2):
        try:
            p.wait(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            fails.append("a worker did not finish after the link returned")
    dup = q(c, "SELECT k, count(*) FROM audit GROUP BY k HAVING count(*) > 1 LIMIT 5")
    left = q(c, "SELECT count(*) FROM t WHERE dst IS DISTINCT FROM src * 2 + 1")[0][0]
    phase = q(c, "SELECT phase FROM zdm.plans WHERE id = 'p'")[0][0]
    # a batch of the lost range committed by worker 1 after the cut
    lo_k = int(lo.strip('["]')) if lo else -2 ** 63
    hi_k = int(hi.strip('["]'))
    late = q(c, "SELECT count(*) FROM audit WHERE addr = '10.231.1.2' AND at > %s AND k > %s AND k <= %s",
             (took_db, lo_k, hi_k))[0][0] if took_db else 0
    n_audit = q(c, "SELECT count(*) FROM audit")[0][0]
    print(f"partition: {n_audit} rows converted by batches, {len(dup)} converted twice, {left} left, "
          f"phase {phase}, worker 1 exit {w1.returncode}, worker 2 exit {w2.returncode}", flush=True)
    if dup:
        fails.append(f"rows converted twice: {dup}")
    if left or phase != "backfilled":
        fails.append(f"{left} rows unconverted, phase {phase}")
    if late:
        fails.append(f"worker 1 committed {late} rows of the range it lost after the cut")
    if w2.returncode != 0 or w1.returncode not in (0,):
        fails.append(f"worker exits: {w1.returncode}, {w2.returncode}")
    with open(f"{work}/part-w1.log") as fh:
        tail = [line for line in fh.read().splitlines() if "lost the connection" in line or "reconnected" in line
                or "taken over" in line]
    print("partition: worker 1 said: " + (" | ".join(x.split("backfill: ", 1)[-1] for x in tail[:3]) or "-"))
    c.close()
    return takeover


def main():
    why = Hosts.available(TAG)
    if why:
        print(f"partition: {why}: skipped")
        return 77
    if not ZDM:
        print("partition: ZDM must name the zdm binary")
        return 2
    if bindir() is None:
        print("partition: no PostgreSQL server: skipped")
        return 77
    work = tempfile.mkdtemp(prefix="zdm-part-w.", dir="/tmp")
    srv = None
    old = signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    try:
        HOSTS.up()
        srv = Server()
        rows = int(os.environ.get("ZDM_PARTITION_ROWS", "300000"))
        rates = {}
        for n in (1, 2, 4):
            rates[n] = throughput(srv, work, n, rows)
        print("partition: rows/s over TCP between namespaces (%d rows): " % rows +
              ", ".join(f"{n} worker{'s' if n > 1 else ''} {rates[n]:,.0f} ({rates[n] / rates[1]:.2f})"
                        for n in (1, 2, 4)), flush=True)
        partition(srv, work)
    finally:
        signal.signal(signal.SIGTERM, old)
        if srv:
            srv.stop()
        HOSTS.down()
        if fails:
            print(f"partition: logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL: " + f)
    print("partition: " + ("passed" if not fails else f"{len(fails)} failed"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
