#!/usr/bin/env python3
"""torture.py -- zdm's randomized invariant checker (run it through run.sh).

Owns: from one seed, a table and a plan, concurrent old- and new-version
application writers that log what they committed, an operator that drives
zdm through every phase (advance, backfill workers, pause/resume/set,
cutover, schedule/run-due, rollback) while faults hit it (kill -9 and
SIGTERM of workers, PostgreSQL restarts fast and immediate, duplicate
commands, a hook that fails, workers started late), and the model that
says what the data, the schema and zdm's own state must be afterwards.
About one seed in four also has a second plan on the same table (dst2 from
other), driven by an operator thread of its own through its phases while
the first plan moves, with its own workers and faults; sometimes it
requires the first plan (its expand is refused until that one is
complete), sometimes it is rolled back.  Every invariant below holds for
each plan on its own.

Everything random comes from random.Random(seed string), so a seed replays
the same plan, table and schedule (the interleavings with real processes
differ, which is the point of running many seeds).  A failed seed prints
the command that replays it, and keeps its directory (plan, zdm logs).

Invariants (checked at phase boundaries and at the end):
  I1 every row inside the plan's rule has dst = f(src), from the database's
     own values; every row outside it has dst untouched (NULL);
  I2 the rows and their source columns equal what the writers committed
     (keys whose commit outcome is unknown, because the connection died
     during it, are only checked for I1);
  I3 no application error except the ones a fault explains (connection
     lost during a server restart);
  I4 the phase recorded equals the one the catalog implies (dual-write
     triggers, the new column, the contract step's effect, step records);
  I5 no "running" history row and no lock once every command has ended;
     the ok transitions form one chain; contract never before cutover and
     the schedule;
  I6 (PostgreSQL) the backfill converted each row at most once, and the
     ranges' rows_done equals the rows its batches changed (an audit
     trigger records every row a batch updates); on both databases the
     range walk left no row to the final check (which converts such rows:
     every where here reads its own row only);
  I7 a worker exits 0 or 4, or dies by our own signal (or at the database
     call it was told to die at, ZDM_CRASH_AT); a command exits
     with a code its situation allows.
"""
import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import psycopg2
except ImportError:  # PostgreSQL runs are skipped without it
    psycopg2 = None

from netns import Hosts

# f, the plan's set.dst.  One-way plans map NULL to 1, so that "dst IS NULL"
# names exactly the rows left to convert; two-way plans need f invertible
# (reverse.src undoes it, README), so NULL stays NULL there, and a two-way
# "dst IS NULL" plan gets a src that is never NULL.
F_SQL = {False: "COALESCE(src, 0) * 2 + 1", True: "src * 2 + 1"}
REV_SQL = "(dst - 1) / 2"
# g, the second plan's set.dst2 (its source, other, is never NULL)
G_SQL = "COALESCE(other, 0) * 3 + 7"


def g_model(other):
    return (other or 0) * 3 + 7
I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1
TWO_WAY = False


def f_model(src):
    if src is None and TWO_WAY:
        return None
    return (src or 0) * 2 + 1


class Failure(Exception):
    pass


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


NOLOCK = _NoLock()


# ------------------------------------------------------------ PostgreSQL

class PgServer:
    """A throwaway server on a unix socket, run as postgres when root.
    With hosts (netns.py), it runs in the server's namespace and also
    listens on TCP there, for workers on the other "hosts"."""

    def __init__(self, base, hosts=None):
        self.hosts = hosts
        self.dir = tempfile.mkdtemp(prefix="zdm-tort-pg.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.bindir = self._bindir()
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._owner([os.path.join(self.bindir, "initdb"), "-D", self.data, "--auth=trust", "--nosync",
                     "-U", "postgres", "-E", "UTF8", "--locale=C"])
        if hosts:
            with open(os.path.join(self.data, "pg_hba.conf"), "a") as fh:
                fh.write(f"host all all {hosts.subnet()} trust\n")
        self.start()

    @staticmethod
    def _bindir():
        for cand in [subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
                     if shutil.which("pg_config") else ""] + sorted(
                         [f"/usr/lib/postgresql/{v}/bin" for v in os.listdir("/usr/lib/postgresql")]
                         if os.path.isdir("/usr/lib/postgresql") else [], reverse=True):
            if cand and os.path.exists(os.path.join(cand, "pg_ctl")) and os.path.exists(os.path.join(cand, "initdb")):
                return cand
        if shutil.which("pg_ctl"):
            return os.path.dirname(shutil.which("pg_ctl"))
        raise RuntimeError("no PostgreSQL server binaries")

    def _owner(self, argv, check=True, in_ns=False):
        if os.getuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        if in_ns and self.hosts:
            argv = self.hosts.in_server(argv)
        r = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{argv}: {r.stdout}{r.stderr}")
        return r

    def start(self):
        listen = self.hosts.server_addrs() if self.hosts else ""
        self._owner([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                     f"-p 5432 -k '{self.dir}' -c listen_addresses='{listen}' -c fsync=off "
                     "-c max_connections=100", "start"],
                    in_ns=True)  # commits must survive an immediate restart: no synchronous_commit=off

    def restart(self, mode):
        self._owner([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"], check=False)
        self.start()

    def stop(self):
        self._owner([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"],
                    check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db):
        return f"postgresql:///{db}?host={self.dir}&user=postgres"

    def tcp_url(self, db, host):
        """The URL worker host `host` uses, over TCP from its namespace."""
        return f"postgresql://postgres@{self.hosts.server_addr(host)}:5432/{db}"

    def connect(self, db):
        c = psycopg2.connect(host=self.dir, user="postgres", dbname=db, connect_timeout=10)
        c.autocommit = True
        return c


# ------------------------------------------------------------ the target

class Target:
    """One seed's database: a fresh PostgreSQL database or SQLite file."""

    def __init__(self, kind, workdir, pg, name):
        self.kind, self.pg, self.name = kind, pg, name
        if kind == "pg":
            c = pg.connect("postgres")
            c.cursor().execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.cursor().execute(f'CREATE DATABASE "{name}"')
            c.close()
            self.url = pg.url(name)
        else:
            self.path = os.path.join(workdir, name + ".db")
            self.url = "sqlite:" + self.path

    def connect(self):
        if self.kind == "pg":
            return self.pg.connect(self.name)
        c = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        c.execute("PRAGMA busy_timeout = 30000")
        return c

    def q(self, sql):
        """Placeholders: write %s; SQLite gets ?."""
        return sql if self.kind == "pg" else sql.replace("%s", "?")

    def rows(self, sql, args=()):
        # PostgreSQL: the second plan's operator may read while the first
        # one restarts the server; a read is retried until it is back
        for attempt in range(120):
            try:
                c = self.connect()
            except Exception:
                if self.kind != "pg" or attempt == 119:
                    raise
                time.sleep(0.5)
                continue
            try:
                cur = c.cursor()
                cur.execute(self.q(sql), args)
                return cur.fetchall()
            except Exception as e:
                if self.kind != "pg" or not isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)) \
                        or attempt == 119:
                    raise
                time.sleep(0.5)
            finally:
                try:
                    c.close()
                except Exception:
                    pass

    def execute(self, sql, args=()):
        c = self.connect()
        try:
            c.cursor().execute(self.q(sql), args)
        finally:
            c.close()

    def state(self, table):
        return ("zdm." if self.kind == "pg" else "zdm_") + table

    def drop(self):
        if self.kind == "pg":
            try:
                c = self.pg.connect("postgres")
                c.cursor().execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                c.close()
            except Exception:
                pass

    def columns(self):
        if self.kind == "pg":
            return {r[0] for r in self.rows("SELECT column_name FROM information_schema.columns "
                                            "WHERE table_schema = 'public' AND table_name = 't'")}
        return {r[1] for r in self.rows("PRAGMA table_info(t)")}

    def triggers(self, plan):
        """The dual-write triggers of one plan (zdm_dw_<plan>_...)."""
        if self.kind == "pg":
            names = {r[0] for r in self.rows("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                                             "AND tgname LIKE 'zdm_dw_%%'")}
        else:
            names = {r[0] for r in self.rows("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                             "AND name LIKE 'zdm_dw_%'")}
        return {n for n in names if n.startswith(f"zdm_dw_{plan}_")}


# ------------------------------------------------------------ generator

class Gen:
    def __init__(self, seed, kind, focus=None, force=None):
        rng = self.rng = random.Random(f"{seed}:{kind}")
        self.kind, self.focus = kind, focus
        keys = ["int", "int", "composite", "text", "edge"] + (["rowid"] if kind == "sqlite" else [])
        self.key = rng.choice(keys)
        if focus == "overflow":
            self.key = "edge"
        self.nrows = rng.randint(2000, 9000)
        # The row rule (README): a row is converted iff it matches where,
        # which the triggers evaluate on the new row.  "grp <> 0" selects
        # rows (the others are never written by zdm); "dst IS NULL" lets a
        # converted row leave the rule, so later writes of src are no
        # longer followed (dst keeps f of some earlier src of the row).
        self.where = rng.choice([None, "dst IS NULL", "grp <> 0"])
        if focus == "where":
            self.where = "grp <> 0"
        if focus == "walk":  # spans of integer keys, walked whole
            self.key, self.where = "int", None
        # a two-way plan whose where names the target stops following both
        # directions once a row is converted (zdm plan show says so): not a
        # plan anyone should run, so not generated
        self.two_way = rng.random() < 0.4 and self.where != "dst IS NULL"
        self.batch = rng.choice([37, 200, 1000, 4000])
        self.max_rps = rng.choice([0, 0, 0, 30000])
        self.contract_down = rng.random() < 0.5
        self.stride = rng.choice([1, 1, 3])
        self.offset = rng.choice([0, 0, -500000, 2 ** 40])
        self.writers = rng.randint(1, 3)
        self.workers = rng.randint(1, 3)
        self.rollback = rng.random() < (0.6 if focus == "rollback" else 0.2)
        if focus == "kill":
            # small batches, three workers, the whole backfill: the most
            # commits for the kills to land between (drawn above all the
            # same, so that the other choices stay those of the seed)
            self.batch, self.workers, self.rollback = 37, 3, False
        self.late_worker = rng.random() < (0.9 if focus == "phase" else 0.4)
        self.dup_cutover = rng.random() < (1.0 if focus == "phase" else 0.3)
        self.dup_advance = rng.random() < (1.0 if focus == "phase" else 0.3)
        self.hook_fails = rng.random() < 0.25
        self.run_due = rng.random() < 0.5
        # the structured rename_column: name becomes full_name, two-way
        # dual-write, a backfill zdm writes, the new version through the
        # view schema on PostgreSQL
        self.rename = rng.random() < 0.25 and focus not in ("where", "overflow", "kill", "walk", "query")
        # a before_contract hook that hangs until zdm's timeout kills it
        self.hook_hangs = rng.random() < 0.15
        # A second plan in flight on the same table (not beside
        # rename_column, whose view schema would hide its column from the
        # new version): dst2 = g(other) for the rows of where2, one-way,
        # its own workers, faults and rollback, on an operator thread of
        # its own.  With requires, it may only expand once plan 1 is
        # complete (refused before); without, both plans' triggers fire on
        # every write.  Drawn after every other choice, so a seed keeps
        # the plan 1 it had before the second plan existed.
        self.second = rng.random() < 0.35 and not self.rename and focus in (None, "second")
        if focus == "second":
            self.second = True
        self.requires = rng.random() < 0.3
        self.where2 = rng.choice([None, "grp <> 1"])
        self.batch2 = rng.choice([50, 500, 3000])
        self.workers2 = rng.randint(1, 2)
        self.rollback2 = rng.random() < 0.25
        self.delay2 = rng.uniform(0, 4)
        # PostgreSQL: one of plan 1's workers runs on another "host" (a
        # network namespace, TCP) and its link is cut while it holds a
        # range: for a few seconds (it comes back before anyone notices)
        # or for longer than the server's keepalives allow (its session
        # ends, a worker on this host takes the range over, and when the
        # link returns it must not commit a batch of it: fencing)
        self.partition = rng.random() < 0.2 and kind == "pg" and focus in (None, "partition")
        if focus == "partition":
            self.partition = True
        self.cut_s = rng.choice([4, 20, 20])
        # set, reverse and where written as queries ("(SELECT f)", "where
        # AND EXISTS (SELECT 1)"), the same values: the triggers evaluate
        # them as queries on the row rather than as expressions on NEW
        # (dialect_pg.c; SQLite's UPDATE trigger reads the stored row).
        # Drawn last, so a seed keeps every choice it had before.
        self.query_form = rng.random() < 0.3 or focus == "query"
        for kv in force or []:
            # --force name=value pins one choice: regression cases keep
            # their scenario when the generator changes
            name, _, v = kv.partition("=")
            if not hasattr(self, name):
                raise SystemExit(f"torture: --force {kv}: no such choice")
            cur = getattr(self, name)
            setattr(self, name, None if v == "None" else (v in ("1", "True", "true")) if isinstance(cur, bool)
                    else int(v) if isinstance(cur, int) else float(v) if isinstance(cur, float)
                    else v.replace("_", " ") if name in ("where", "where2") else v)
        self.null_src = 0.0 if (self.two_way and self.where) else 0.1
        if self.second and self.rename:
            raise SystemExit("torture: a second plan beside rename_column is not generated (its view schema "
                             "hides dst2 from the new version): --force one of them off")

    def pk_of(self, k):
        """Physical key values for logical key k (None: rowid)."""
        if self.key == "int":
            return (self.offset + k * self.stride,)
        if self.key == "edge":
            # Keys at both ends of the 64-bit range: the key span overflows
            # a signed 64-bit integer.
            if k < self.nrows // 2:
                return (I64_MIN + k * self.stride,)
            if k <= self.nrows:
                return (I64_MAX - (self.nrows - k) * self.stride,)
            return (k,)
        if self.key == "composite":
            return (k // 64, k % 64)
        if self.key == "text":
            return ("c%07d" % ((k * 7919) % 10000000),)
        return ()

    def pk_cols(self):
        return {"int": ["id"], "edge": ["id"], "composite": ["a", "b"], "text": ["code"], "rowid": []}[self.key]

    def create_sql(self):
        cols = {"id": "bigint", "a": "integer", "b": "integer", "code": "text"}
        parts = [f"{c} {cols[c]} NOT NULL" for c in self.pk_cols()]
        parts += ["k bigint NOT NULL UNIQUE", "grp integer NOT NULL", "src integer", "name text",
                  "other integer", "junk integer", "junk2 integer"]
        if self.pk_cols():
            parts.append("PRIMARY KEY (" + ", ".join(self.pk_cols()) + ")")
        return "CREATE TABLE t (" + ", ".join(parts) + ")"

    def plan_toml(self):
        if self.rename:
            L = ['description = "torture: rename_column"', "", "[[expand.steps]]", 'op = "rename_column"',
                 'table = "t"', 'column = "name"', 'to = "full_name"', "", "[contract]",
                 "verify = \"SELECT NOT EXISTS (SELECT 1 FROM t WHERE COALESCE(full_name, '~') <> "
                 "COALESCE(name, '~'))\"", "", "[[contract.steps]]", 'sql = "ALTER TABLE t DROP COLUMN junk"']
            if self.contract_down:
                L.append('down = "ALTER TABLE t ADD COLUMN junk integer"')
            if self.hook_fails or self.hook_hangs:
                L += ["", "[hooks]", 'before_contract = "../hook.sh"', 'timeout = "3s"']
            return "\n".join(L) + "\n"
        L = ['description = "torture"', "", "[[expand.steps]]",
             'sql  = "ALTER TABLE t ADD COLUMN dst bigint"', 'down = "ALTER TABLE t DROP COLUMN dst"', "",
             "[backfill]", 'table = "t"']
        qf = (lambda e: f"(SELECT {e})") if self.query_form else (lambda e: e)
        if self.where:
            L.append(f'where = "{self.where}' + (' AND EXISTS (SELECT 1)"' if self.query_form else '"'))
        L += [f'set.dst = "{qf(F_SQL[self.two_way])}"', "", "[backfill.dual_write]", 'sources = ["src"]']
        if self.two_way:
            L.append(f'reverse.src = "{qf(REV_SQL)}"')
        # the kill storm (every 10-120 ms) must land inside batches:
        # latency pacing measures an idle baseline for ~0.5 s first, where
        # a worker killed that often would spend all its life, and an
        # unthrottled backfill of 9,000 rows is over in 0.1 s
        rps = 3000 if self.focus == "kill" else self.max_rps
        L += ["", "[backfill.throttle]", f"batch_size = {self.batch}", f"max_rows_per_second = {rps}",
              "target_batch_ms = 50"]
        if self.focus == "kill":
            L.append("max_latency_factor = 0")
        L += ["", "[contract]"]
        scope = "grp <> 0 AND " if self.scoped() else ""
        f = F_SQL[self.two_way]
        if self.where == "dst IS NULL":
            L.append('verify = "SELECT NOT EXISTS (SELECT 1 FROM t WHERE dst IS NULL)"')
        else:
            L.append(f'verify = "SELECT NOT EXISTS (SELECT 1 FROM t WHERE {scope}COALESCE(dst, -1) <> COALESCE({f}, -1))"')
        L += ["", "[[contract.steps]]", 'sql = "ALTER TABLE t DROP COLUMN junk"']
        if self.contract_down:
            L.append('down = "ALTER TABLE t ADD COLUMN junk integer"')
        if self.hook_fails or self.hook_hangs:
            L += ["", "[hooks]", 'before_contract = "../hook.sh"', 'timeout = "3s"']
        return "\n".join(L) + "\n"

    def scoped(self):
        return bool(self.where) and self.where.startswith("grp")

    def in_scope(self, grp):
        return not self.scoped() or grp != 0

    def in_scope2(self, grp):
        return not self.where2 or grp != 1

    def plan2_toml(self, plan1):
        L = ['description = "torture: second plan on t"']
        if self.requires:
            L.append(f'requires = ["{plan1}"]')
        L += ["", "[[expand.steps]]", 'sql  = "ALTER TABLE t ADD COLUMN dst2 bigint"',
              'down = "ALTER TABLE t DROP COLUMN dst2"', "", "[backfill]", 'table = "t"']
        if self.where2:
            L.append(f'where = "{self.where2}"')
        L += [f'set.dst2 = "{G_SQL}"', "", "[backfill.dual_write]", 'sources = ["other"]', "",
              "[backfill.throttle]", f"batch_size = {self.batch2}", "target_batch_ms = 50", "", "[contract]"]
        scope = "grp <> 1 AND " if self.where2 else ""
        L.append(f'verify = "SELECT NOT EXISTS (SELECT 1 FROM t WHERE {scope}COALESCE(dst2, -1) <> {G_SQL})"')
        L += ["", "[[contract.steps]]", 'sql = "ALTER TABLE t DROP COLUMN junk2"',
              'down = "ALTER TABLE t ADD COLUMN junk2 integer"']
        return "\n".join(L) + "\n"


# ------------------------------------------------------------ application

class Writer(threading.Thread):
    """One application instance.  Owns the logical keys k % n == idx; logs
    every committed write into the shared model."""

    def __init__(self, run, idx, n):
        super().__init__(daemon=True)
        self.run_, self.idx, self.n = run, idx, n
        self.rng = random.Random(f"{run.seed}:{run.kind}:w{idx}")
        self.stop_ev = threading.Event()
        self.version = "old"
        self.v2 = False  # the second plan's new version: writes dst2 itself (from its cutover on)
        self.next_k = run.gen.nrows + 1 + idx
        self.conn = None
        self.errors = []
        self.lost = 0
        self.writes = 0
        self.path_set = False
        self.gate = threading.Lock()  # held for one write; checks take every writer's
        self.inflight = None  # the record of the write in flight

    def mine(self):
        m = self.run_.model
        return [k for k in list(m.keys()) if k % self.n == self.idx and not m[k]["deleted"]]

    def connect(self):
        self.path_set = False
        for _ in range(200):
            try:
                self.conn = self.run_.t.connect()
                return
            except Exception:
                time.sleep(0.1)
                if self.stop_ev.is_set():
                    return

    def run(self):
        self.connect()
        keys = self.mine()
        while not self.stop_ev.is_set() and self.conn is not None:
            time.sleep(self.rng.uniform(0, 0.004))
            try:
                with self.gate:
                    self.one(keys)
            except Exception as e:  # noqa: BLE001 -- classified below
                if self.run_.t.kind == "pg" and self.conn_lost(e):
                    self.lost += 1
                    # the write may have committed before the server went
                    # away: its row's values stay unknown for good (a later
                    # write of another column must not make the model sure
                    # again of the one this write set; seed 511 pg: other
                    # 755 committed, the client saw the restart, the model
                    # kept 0)
                    if self.inflight is not None:
                        self.inflight["lost"] = True
                    try:
                        self.conn.close()
                    except Exception:
                        pass
                    time.sleep(0.2)
                    self.connect()
                elif self.run_.t.kind == "sqlite" and "locked" in str(e):
                    self.lost += 1
                else:
                    self.errors.append(f"{type(e).__name__}: {str(e).strip()}")
                    if len(self.errors) > 5:
                        return
        if self.conn is not None:
            self.conn.close()

    def conn_lost(self, e):
        """The server went away (a restart): the write's outcome is unknown."""
        if isinstance(e, psycopg2.InterfaceError) or self.conn.closed:
            return True
        code = getattr(e, "pgcode", None)
        # no SQLSTATE: libpq's own error (the server closed the connection)
        return isinstance(e, psycopg2.DatabaseError) and (
            code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03"))

    def one(self, keys):
        t, m, rng = self.run_.t, self.run_.model, self.rng
        cur = self.conn.cursor()
        op = rng.random()
        g = self.run_.gen
        new = self.version == "new" and self.run_.dst_exists
        ncol = "name"
        if g.rename and self.version != "old" and self.run_.dst_exists:
            # the new version: full_name, through the view schema on
            # PostgreSQL (which zdm drops at contract; the search path then
            # finds the table itself, renamed)
            ncol = "full_name"
            if t.kind == "pg" and not self.path_set:
                cur.execute(f'SET search_path = "zdm_v_{self.run_.plan}", public')
                self.path_set = True
        if op < 0.15 or not keys:
            k = self.next_k
            self.next_k += self.n
            grp, src = k % 4, (None if rng.random() < self.run_.gen.null_src else rng.randint(0, 100000))
            pk = self.run_.gen.pk_of(k)
            cols = self.run_.gen.pk_cols() + ["k", "grp", "src", ncol, "other"]
            vals = list(pk) + [k, grp, src, "n%d" % k, 0]
            rec = {"src": src, "other": 0, "name": "n%d" % k, "deleted": False, "uncertain": True, "grp": grp,
                   "hist": {src}}
            m[k] = rec
            self.inflight = rec
            if self.version == "final" and self.run_.dst_exists and not g.rename:
                cols = cols + ["dst"]
                vals = vals + [f_model(src) if self.run_.gen.in_scope(grp) else None]
            if self.v2:
                cols = cols + ["dst2"]
                vals = vals + [g_model(0) if g.in_scope2(grp) else None]
            cur.execute(t.q(f"INSERT INTO t ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"), vals)
            rec["uncertain"] = False
            keys.append(k)
        else:
            k = rng.choice(keys)
            rec = m[k]
            self.inflight = rec
            if op < 0.45:
                src = None if rng.random() < self.run_.gen.null_src / 2 else rng.randint(0, 100000)
                rec["uncertain"] = True
                rec["hist"].add(src)
                if g.rename:
                    cur.execute(t.q("UPDATE t SET src = %s WHERE k = %s"), (src, k))
                elif self.version == "final" and self.run_.dst_exists:
                    # contract removes the triggers: the application now
                    # keeps both columns itself
                    dst = f_model(src) if g.in_scope(rec["grp"]) else None
                    cur.execute(t.q("UPDATE t SET src = %s, dst = %s WHERE k = %s"), (src, dst, k))
                elif new and g.two_way and g.in_scope(rec["grp"]) and src is not None and rng.random() < 0.5:
                    # the new version writes only the new column; the reverse
                    # trigger derives src
                    cur.execute(t.q("UPDATE t SET dst = %s WHERE k = %s"), (2 * src + 1, k))
                elif new and self.run_.gen.in_scope(rec["grp"]) and not self.run_.gen.two_way:
                    cur.execute(t.q("UPDATE t SET src = %s, dst = %s WHERE k = %s"), (src, f_model(src), k))
                else:
                    cur.execute(t.q("UPDATE t SET src = %s WHERE k = %s"), (src, k))
                rec["src"] = src
            elif op < 0.75:
                v = rng.randint(0, 1000)
                rec["uncertain"] = True
                if self.v2:
                    # after the second plan's cutover the application
                    # keeps dst2 itself (its triggers go at contract)
                    cur.execute(t.q("UPDATE t SET other = %s, dst2 = %s WHERE k = %s"),
                                (v, g_model(v) if g.in_scope2(rec["grp"]) else None, k))
                else:
                    cur.execute(t.q("UPDATE t SET other = %s WHERE k = %s"), (v, k))
                rec["other"] = v
            elif op < 0.9:
                v = "x%d" % rng.randint(0, 1000)
                rec["uncertain"] = True
                cur.execute(t.q(f"UPDATE t SET {ncol} = %s WHERE k = %s"), (v, k))
                rec["name"] = v
            else:
                rec["uncertain"] = True
                cur.execute(t.q("DELETE FROM t WHERE k = %s"), (k,))
                rec["deleted"] = True
                keys.remove(k)
            rec["uncertain"] = rec.get("lost", False)
        self.inflight = None
        self.writes += 1


# ------------------------------------------------------------ one seed

class Run:
    def __init__(self, args, seed, kind, pg, mutant=None, focus=None, force=None):
        global TWO_WAY
        self.args, self.seed, self.kind, self.pg = args, seed, kind, pg
        self.mutant = mutant
        self.gen = Gen(seed, kind, focus, force if force is not None else args.force)
        TWO_WAY = self.gen.two_way
        self.rng = random.Random(f"{seed}:{kind}:ops")
        self.dir = tempfile.mkdtemp(prefix=f"zdm-tort-{kind}-{seed}.", dir=args.workdir)
        self.plans = os.path.join(self.dir, "plans")
        os.makedirs(self.plans)
        self.plan = "p%d" % (seed % 100000)
        self.plan2 = "q%d" % (seed % 100000) if self.gen.second else None
        self.rng2 = random.Random(f"{seed}:{kind}:ops2")
        self.hosts = getattr(args, "hosts", None) if kind == "pg" else None
        self.part = None  # what the partition fault saw
        self.op2 = None  # the second plan's operator thread
        self.op2_error = None
        self.abort = threading.Event()  # the main operator failed: the second one stops
        self.main_done = threading.Event()
        self.cmd_lock = threading.Lock()
        # zdm advance of a plan that requires plan 1 holds plan 1's lock
        # (README: expand holds the lock of every plan it requires), so
        # plan 1's own commands would be refused as locked meanwhile: the
        # second operator runs it only while the first starts nothing
        self.q_guard = threading.Lock()
        self.restarting = 0.0  # when a server restart began (0: none under way)
        self.cut_at = 0.0  # when the partition fault cut its worker off (0: no cut under way)
        self.cuts = []  # (start, end) of partitions, end a few seconds after the link came back
        self.model = {}
        self.writers = []
        self.dst_exists = False
        self.procs = []
        self.restarts = []  # (start, end) of server restarts
        self.log = open(os.path.join(self.dir, "run.log"), "w")
        self.cmdn = 0
        self.notes = []
        self.scheduled_ms = 0

    # -- zdm commands
    def env(self):
        e = dict(os.environ)
        for v in ("ZDM_MUTANT", "ZDM_CRASH_AT", "ZDM_CRASH_MODE"):
            e.pop(v, None)
        if self.mutant:
            e["ZDM_MUTANT"] = self.mutant
        e["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        e["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        return e

    def argv(self, *a):
        # -v: a failed seed's logs say which statement of a run failed
        return [self.args.zdm, "-v", "--db", self.t.url, "--plans", self.plans] + list(a)

    def start(self, *a, env_extra=None, host=None):
        with self.cmd_lock:  # two operator threads
            self.cmdn += 1
            n = self.cmdn
        out = open(os.path.join(self.dir, "cmd%03d.log" % n), "w")
        env = self.env()
        env.update(env_extra or {})
        main = threading.current_thread() is not self.op2
        with self.q_guard if main and self.plan2 and self.gen.requires else NOLOCK:
            argv = self.argv(*a)
            if host:  # a worker on another host: its namespace, TCP
                argv = self.hosts.in_worker(host, [self.args.zdm, "-v", "--db", self.pg.tcp_url(self.t.name, host),
                                                   "--plans", self.plans] + list(a))
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                 cwd=self.dir, start_new_session=True)
            p.name, p.t0, p.logf, p.sig, p.main = " ".join(a), time.time(), out.name, None, main
            p.sigs = set()  # every signal sent: a second one may reach a process the first is still ending
            p.remote = host
            if host:
                p.name += f" (on host w{host})"
            self.procs.append(p)
        self.say(f"start #{n} pid {p.pid}: zdm {p.name}" + "".join(f" {k}={v}" for k, v in (env_extra or {}).items()))
        return p

    def neighbour_locked(self, p):
        """Refused because the other plan on the table is being expanded or
        contracted (zdm holds its lock meanwhile): a wait, not a failure."""
        try:
            with open(p.logf) as fh:
                return "(dual-write on the same table)" in fh.read()
        except OSError:
            return False

    def run_waiting(self, *a, timeout=180):
        """start() and wait, again while the other plan's expand or contract
        holds this plan's lock (exit 3, neighbour_locked)."""
        for attempt in range(240):
            p = self.start(*a)
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise Failure(f"zdm {p.name} did not finish in {timeout}s (log {p.logf})")
            if rc != 3 or not self.neighbour_locked(p) or attempt == 239:
                return p, rc
            self.say(f"  -> rc 3 (zdm {p.name}): the other plan's run holds its lock; again")
            time.sleep(0.5)

    def zdm(self, *a, ok=(0,), timeout=180):
        p, rc = self.run_waiting(*a, timeout=timeout)
        self.say(f"  -> rc {rc} (zdm {p.name})")
        if ok is not None and rc not in ok:
            raise Failure(f"zdm {p.name} exited {rc}, expected {ok}: {self.tail(p)}")
        return rc

    def zdm_retry(self, *a, ok=(0,), timeout=180):
        """zdm(), again when a server restart (by the other operator) made
        it fail, whose outcome is then unknown, or a partition held a lock
        it needed (the cut-off session's, until the server ends it)."""
        for attempt in range(5):
            t0 = time.time()
            p, rc = self.run_waiting(*a, timeout=timeout)
            self.say(f"  -> rc {rc} (zdm {p.name})")
            if rc in ok:
                return rc
            if not (self.across_restart(t0) or self.across_cut(t0)) or attempt == 4:
                break
            self.notes.append(f"zdm {p.name} exited {rc} across a server restart or a partition: run again")
            time.sleep(2)
        raise Failure(f"zdm {p.name} exited {rc}, expected {ok}: {self.tail(p)}")

    def tail(self, p):
        try:
            with open(p.logf) as fh:
                lines = fh.read().strip().splitlines()
        except OSError:
            return ""
        san = [x for x in lines if "SUMMARY: " in x or "runtime error:" in x]
        return " | ".join(san[:2] if san else lines[-4:])

    def say(self, msg):
        with self.cmd_lock:
            self.log.write("%.3f %s%s\n" % (time.time(), "[2] " if threading.current_thread() is self.op2 else "",
                                              msg))
            self.log.flush()

    def across_restart(self, t0):
        """Did a server restart happen (or begin) since t0?"""
        return bool(self.restarting) or any(b >= t0 for a, b in self.restarts)

    def across_cut(self, t0):
        """Was a worker cut off since t0?  Its session keeps its locks on
        t (an open batch) until the server's keepalives end it, so DDL on
        t meanwhile gives up at its lock_timeout, as it should."""
        return bool(self.cut_at) or any(b >= t0 for a, b in self.cuts)

    def start_worker(self, plan, rng, storm):
        """A worker started after a kill.  In the kill storm, one in two
        dies by itself at a random database call (ZDM_CRASH_AT, as kill -9
        there; builds with mutants only, inert otherwise): a timed kill
        lands in the few commands between a batch's rows and its cursor
        too rarely to find a gap there (checkpoint_split was missed in 6
        seeds once commits stopped waiting for the disk)."""
        if not storm or rng.random() < 0.5:
            return self.start("backfill", plan)
        # a worker's start-up makes about 20 calls, a batch about 9: most
        # land in its first batches
        at = rng.randint(1, 120)
        p = self.start("backfill", plan, env_extra={"ZDM_CRASH_AT": str(at), "ZDM_CRASH_MODE": "exit"})
        p.crash_at, p.replaced = at, False
        return p

    def signal(self, p, sig):
        if p.poll() is None:
            p.sig = sig
            p.sigs.add(sig)
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            self.say(f"signal {sig} -> pid {p.pid} ({p.name})")

    def check_worker_exit(self, p):
        rc = p.returncode
        if rc in (0, 4) or (rc is not None and -rc in p.sigs):
            return
        if rc == 137 and getattr(p, "crash_at", None):
            return  # died where it was told to (start_worker)
        if rc == 4 and p.sig:
            return
        # a worker may exit 1 when the server went away hard during its
        # life (it reconnects, but a restart can land mid-start-up)
        overlap = self.across_restart(p.t0)
        if rc == 1 and overlap:
            self.notes.append(f"worker exit 1 across a server restart: {self.tail(p)}")
            return
        raise Failure(f"worker zdm {p.name} (pid {p.pid}) exited {rc}: {self.tail(p)}")

    # -- state
    def phase(self, plan=None):
        r = self.t.rows(f"SELECT phase FROM {self.t.state('plans')} WHERE id = %s", (plan or self.plan,))
        return r[0][0] if r else "pending"

    def expect_phase(self, want, plan=None):
        got = self.phase(plan)
        if got != want:
            raise Failure(f"{plan or self.plan}: phase is {got}, expected {want}")

    def check_catalog(self, when, plan=None):
        """I4 for one plan: its own triggers, columns, contract step and
        step records (the other plan's are its own business)."""
        plan = plan or self.plan
        ph = self.phase(plan)
        cols, trg = self.t.columns(), self.t.triggers(plan)
        junk = "junk"
        when = f"{plan} {when}"
        if plan != self.plan:
            new, old, junk = "dst2", None, "junk2"
        elif self.gen.rename:
            self.dst_exists = "full_name" in cols
            new, old = "full_name", "name"
        else:
            self.dst_exists = "dst" in cols
            new, old = "dst", None
        live = ph in ("expanded", "backfilled", "cut_over")
        if live and (not trg or new not in cols or (old and old not in cols)):
            raise Failure(f"{when}: phase {ph} but triggers {sorted(trg)} and columns {sorted(cols)}")
        if not live and trg:
            raise Failure(f"{when}: phase {ph} but dual-write triggers remain: {sorted(trg)}")
        if ph in ("pending", "rolled_back") and (new in cols or (old and old not in cols)):
            raise Failure(f"{when}: phase {ph} but the columns are {sorted(cols)}")
        if self.kind == "pg" and self.gen.rename and plan == self.plan:
            views = self.t.rows("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                                ("zdm_v_" + self.plan,))[0][0]
            if views != (1 if live else 0):
                raise Failure(f"{when}: phase {ph} but the view schema zdm_v_{self.plan} exists {views} times")
        if ph == "complete" and (junk in cols or new not in cols or (old and old in cols)):
            raise Failure(f"{when}: phase complete but columns are {sorted(cols)}")
        if ph != "complete" and junk not in cols:
            raise Failure(f"{when}: phase {ph} but the contract step's column {junk} is gone")
        if ph in ("pending", "rolled_back"):
            done = self.t.rows(f"SELECT phase, step_index FROM {self.t.state('steps')} "
                               "WHERE plan_id = %s AND status IN ('done', 'running')", (plan,))
            if done:
                raise Failure(f"{when}: phase {ph} but step records say applied: {done}")

    class _Quiet:
        def __init__(self, gates):
            self.gates = gates

        def __enter__(self):
            for gt in self.gates:
                gt.acquire()

        def __exit__(self, *a):
            for gt in self.gates:
                gt.release()

    def quiet_writers(self):
        return self._Quiet([w.gate for w in self.writers])

    def check_data(self, when, converted):
        """I1 + I2.  converted: every in-scope row must already hold f(src).
        The writers wait while the database and the model are compared."""
        gates = [w.gate for w in self.writers]
        for gt in gates:
            gt.acquire()
        try:
            self._check_data(when, converted)
        finally:
            for gt in gates:
                gt.release()

    def _check_data(self, when, converted):
        g = self.gen
        cols = self.t.columns()
        if g.rename:
            # the logical name: the old column until contract drops it;
            # full_name must equal it wherever the backfill is done
            nm = "name" if "name" in cols else "full_name"
            sel = f"k, grp, src, {nm}, other" + (", full_name" if "full_name" in cols and nm == "name" else "")
        else:
            sel = "k, grp, src, name, other" + (", dst" if "dst" in cols else "")
        got = {r[0]: r for r in self.t.rows(f"SELECT {sel} FROM t")}
        bad = []
        for k, rec in list(self.model.items()):
            if rec["uncertain"]:
                continue
            if rec["deleted"]:
                if k in got:
                    bad.append(f"k={k} deleted by the application but present")
                continue
            if k not in got:
                bad.append(f"k={k} lost")
                continue
            r = got[k]
            if (r[2], r[3], r[4]) != (rec["src"], rec["name"], rec["other"]):
                bad.append(f"k={k} has (src, name, other) = {r[2:5]}, the application wrote "
                           f"{(rec['src'], rec['name'], rec['other'])}")
        for k, r in got.items():
            if k not in self.model:
                bad.append(f"k={k} present but never written")
            if g.rename:
                if len(r) > 5 and (converted or r[5] is not None) and r[5] != r[3]:
                    bad.append(f"k={k} has full_name={r[5]!r}, name={r[3]!r}")
                continue
            if "dst" not in cols:
                continue
            dst = r[5]
            if g.where == "dst IS NULL" and k in self.model:
                # a converted row leaves the rule: dst is f of one of the
                # values src had
                ok = {f_model(v) for v in self.model[k]["hist"]}
                if (converted or dst is not None) and dst not in ok:
                    bad.append(f"k={k} has dst={dst}, not f of any src it had ({sorted(map(str, ok))[:4]})")
            elif g.in_scope(r[1]):
                if converted and dst != f_model(r[2]):
                    bad.append(f"k={k} (in the rule) has dst={dst}, f(src={r[2]}) = {f_model(r[2])}")
                elif not converted and dst is not None and dst != f_model(r[2]):
                    bad.append(f"k={k} (in the rule) has dst={dst} != f(src={r[2]}) before the end of the backfill")
            elif dst is not None:
                bad.append(f"k={k} outside the rule ({g.where}) was touched: dst={dst}")
        if bad:
            raise Failure(f"{when}: {len(bad)} bad rows, e.g. " + "; ".join(bad[:4]))

    def check_data2(self, when, converted):
        """I1 + I2 for the second plan: dst2 = g(other) inside where2 (all
        of it once its backfill is done), NULL outside; other equals what
        the writers committed."""
        with self.quiet_writers():
            cols = self.t.columns()
            if "dst2" not in cols:
                return
            got = self.t.rows("SELECT k, grp, other, dst2 FROM t")
            bad = []
            for k, grp, other, dst2 in got:
                rec = self.model.get(k)
                if rec and not rec["uncertain"] and not rec["deleted"] and other != rec["other"]:
                    bad.append(f"k={k} has other={other}, the application wrote {rec['other']}")
                if not self.gen.in_scope2(grp):
                    if dst2 is not None:
                        bad.append(f"k={k} outside the rule ({self.gen.where2}) was touched: dst2={dst2}")
                elif (converted or dst2 is not None) and dst2 != g_model(other):
                    bad.append(f"k={k} (in the rule) has dst2={dst2}, g(other={other}) = {g_model(other)}")
        if bad:
            raise Failure(f"{self.plan2} {when}: {len(bad)} bad rows, e.g. " + "; ".join(bad[:4]))

    def check_no_sweep(self):
        """I6 too: the range walk converted every row.  The final check
        converts rows it finds left (a where that reads other rows makes
        them legitimately); every where here reads its own row only, so a
        row left is a row the walk missed, whatever the end result."""
        for f in sorted(os.listdir(self.dir)):
            if f.startswith("cmd") and f.endswith(".log"):
                with open(os.path.join(self.dir, f), errors="replace") as fh:
                    for line in fh:
                        if "still to convert after every range was walked" in line:
                            raise Failure(f"I6: the range walk left rows to the final check ({f}): {line.strip()}")

    def check_exactly_once(self, plan=None):
        """I6 for one plan: the audit trigger logs (plan, k) for every row
        a batch updates (zdm.backfill holds the plan's id)."""
        plan = plan or self.plan
        if self.kind != "pg":
            return
        dup = self.t.rows("SELECT k, count(*) FROM torture_audit WHERE plan = %s GROUP BY k HAVING count(*) > 1 "
                          "LIMIT 3", (plan,))
        if dup:
            raise Failure(f"I6: the backfill of {plan} converted rows more than once: {dup}")
        n = self.t.rows("SELECT count(*) FROM torture_audit WHERE plan = %s", (plan,))[0][0]
        done = self.t.rows(f"SELECT COALESCE(sum(rows_done), 0) FROM {self.t.state('ranges')} "
                           "WHERE plan_id = %s", (plan,))[0][0]
        if int(done) != int(n):
            raise Failure(f"I6: ranges of {plan} record {done} rows converted, its batches changed {n}")

    def check_state_end(self):
        for plan in [self.plan] + ([self.plan2] if self.plan2 else []):
            self.check_history(plan)
        locks = self.t.rows(f"SELECT holder FROM {self.t.state('locks')}")
        if locks:
            raise Failure(f"I5: locks left: {locks}")
        if self.kind == "pg":
            adv = self.t.rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0]
            if adv:
                raise Failure(f"I5: {adv} advisory locks still held")

    def check_history(self, plan):
        running = self.t.rows(f"SELECT id, action FROM {self.t.state('history')} WHERE plan_id = %s "
                              "AND outcome = 'running'", (plan,))
        if running:
            raise Failure(f"I5: history rows of {plan} left running: {running}")
        hist = self.t.rows(f"SELECT id, action, from_phase, to_phase, at_ms FROM {self.t.state('history')} "
                           "WHERE plan_id = %s AND outcome = 'ok' AND from_phase IS NOT NULL AND "
                           "to_phase IS NOT NULL AND from_phase <> to_phase ORDER BY id", (plan,))
        sched = self.scheduled_ms if plan == self.plan else 0
        prev, cut_ms, last = "pending", None, None
        for hid, action, fr, to, at in hist:
            if action.startswith("hook"):
                continue
            if (fr, to) == last == ("expanded", "backfilled") and to == prev:
                # An advance that ran a worker and a zdm backfill worker
                # both report the same expanded -> backfilled: the history
                # id is taken when a run starts, so the two may come in
                # either order.  One transition, told twice.
                continue
            last = (fr, to)
            if action == "stamp":
                prev = to
                continue
            if fr != prev:
                raise Failure(f"I5: history {hid} ({action}) goes {fr} -> {to} but {plan} was {prev}: "
                              f"{[h[1:4] for h in hist]}")
            prev = to
            if to == "cut_over":
                cut_ms = at
            if to == "complete":
                if cut_ms is None or at < cut_ms or at < sched:
                    raise Failure(f"I5: contract of {plan} at {at} before cutover {cut_ms} or schedule {sched}")
        if prev != self.phase(plan):
            raise Failure(f"I5: history ends in {prev}, {plan} is {self.phase(plan)}")

    # -- faults
    def pg_restart(self):
        mode = self.rng.choice(["fast", "immediate"])
        t0 = time.time()
        self.say(f"server restart ({mode})")
        self.restarting = t0
        try:
            self.pg.restart(mode)
        finally:
            self.restarts.append((t0, time.time()))
            self.restarting = 0.0

    def backfill_phase(self, plan=None):
        """Workers under faults until the plan is backfilled.  The second
        plan's operator kills and pauses its own workers; only the first
        one restarts the server (either's commands may meet it)."""
        g = self.gen
        second = plan is not None and plan != self.plan
        plan = plan or self.plan
        rng = self.rng2 if second else self.rng
        workers, cutter = [], None
        if g.partition and not second and self.part is None:
            if self.hosts:
                # the worker on the other host first, slowed down, so that
                # it holds the range (one range below 10,000 rows) when
                # its link is cut; the ones here start once it does
                self.zdm_retry("set", plan, "max_rows_per_second=200")
                workers.append(self.start("backfill", plan, host=1))
                claimed = threading.Event()
                cutter = threading.Thread(target=self.partition_fault, args=(plan, workers, claimed), daemon=True)
                cutter.start()
                claimed.wait(timeout=20)
            else:
                self.part = {"note": f"partition skipped: {self.args.hosts_why}"}
        workers += [self.start("backfill", plan) for _ in range(g.workers2 if second else g.workers)]
        deadline = time.time() + 40
        restarts = 0
        storm = g.focus == "kill"  # kill -9 after kill -9, workers restarted each time
        while time.time() < deadline and any(p.poll() is None for p in workers):
            time.sleep(rng.uniform(0.01, 0.12) if storm else rng.uniform(0.02, 0.5))
            # the worker cut off is the partition's: no other fault for it
            alive = [p for p in workers if p.poll() is None and not p.remote]
            a = rng.random() * (0.25 if storm else 1)
            if storm:
                # one that died where it was told to is replaced too
                for p in workers:
                    if getattr(p, "crash_at", None) and p.poll() is not None and not p.replaced:
                        p.replaced = True
                        workers.append(self.start_worker(plan, rng, storm))
                alive = [p for p in workers if p.poll() is None and not p.remote]
            if not alive:
                break
            if a < 0.25:
                # one told where to die is left to die there
                timed = [p for p in alive if not getattr(p, "crash_at", None)]
                if timed:
                    self.signal(rng.choice(timed), signal.SIGKILL)
                    workers.append(self.start_worker(plan, rng, storm))
            elif a < 0.35:
                self.signal(rng.choice(alive), signal.SIGTERM)
                workers.append(self.start("backfill", plan))
            elif a < 0.42:
                self.zdm_retry("pause", plan)
                time.sleep(rng.uniform(0, 0.3))
                self.zdm_retry("resume", plan)
            elif a < 0.5:
                self.zdm_retry("set", plan, "batch_size=%d" % rng.choice([10, 100, 500, 3000]))
            elif a < 0.55 and self.kind == "pg" and restarts < 1 and not second:
                restarts += 1
                self.pg_restart()
        if cutter:
            cutter.join()
            if self.part.get("error"):
                raise Failure(self.part["error"])
        for p in workers:
            try:
                p.wait(timeout=max(1, deadline - time.time()) + 60)
            except subprocess.TimeoutExpired:
                raise Failure(f"worker zdm {p.name} still running after the deadline (log {p.logf})")
            if p.name.startswith("advance"):
                if p.returncode not in (0, 3, 4) and -p.returncode not in p.sigs:
                    self.check_worker_exit(p)
            else:
                self.check_worker_exit(p)
        for _ in range(4):
            if self.phase(plan) == "backfilled":
                break
            self.zdm_retry("backfill", plan, timeout=300)
        self.expect_phase("backfilled", plan)

    def partition_fault(self, plan, workers, claimed):
        """Cut the remote worker's host off while it holds a range, for
        cut_s seconds, and watch whether a worker on this host takes the
        range over meanwhile (the server's keepalives end the cut session,
        which frees the range; a worker started here then claims it)."""
        self.part = {"note": "partition: the remote worker held no range"}
        try:
            self._partition_fault(plan, workers, claimed)
        except Exception as e:  # noqa: BLE001 -- reported by backfill_phase
            self.say(traceback.format_exc())
            self.part["error"] = f"partition fault: {type(e).__name__}: {e}"
            self.hosts.heal(1)
        finally:
            claimed.set()
            if self.part.get("took") is not None:
                # still slow until the worker cut off is back (a session
                # from its address) and has tried a batch, so that it
                # comes back while its range is someone else's (fencing)
                until = time.time() + 20
                while time.time() < until and workers[0].poll() is None and not self.t.rows(
                        "SELECT 1 FROM pg_stat_activity WHERE client_addr = %s", (self.part["addr"],)):
                    time.sleep(0.2)
                time.sleep(2)
            # the plan's own throttle again
            self.zdm_retry("set", plan, f"max_rows_per_second={self.gen.max_rps}")

    def _partition_fault(self, plan, workers, claimed):
        g, addr, w = self.gen, self.hosts.worker_addr(1), workers[0]
        until, held = time.time() + 20, None
        while time.time() < until and w.poll() is None and not held:
            held = self.t.rows(f"SELECT r.range_id, r.owner, r.lo, r.hi FROM {self.t.state('ranges')} r "
                               "JOIN pg_stat_activity a ON a.pid = r.owner_backend WHERE r.plan_id = %s "
                               "AND r.done = 0 AND a.client_addr = %s", (plan, addr))
            time.sleep(0.05)
        if not held:
            return
        rid, owner, lo, hi = held[0]
        t_cut = time.time()
        cut_db = self.t.rows("SELECT clock_timestamp()")[0][0]
        self.cut_at = t_cut
        self.hosts.cut(1)
        self.say(f"partition: host w1 ({addr}, pid {w.pid}) cut off while it held range {rid} ({lo}, {hi}]")
        took = None
        claimed.set()
        last = 0.0
        try:
            while time.time() - t_cut < g.cut_s:
                if time.time() - last > 2 and not any(p.poll() is None and not p.remote for p in workers):
                    # workers here exit when every range is held: an
                    # operator starts another one now and then
                    last = time.time()
                    workers.append(self.start("backfill", plan))
                o = self.t.rows(f"SELECT owner, done FROM {self.t.state('ranges')} WHERE plan_id = %s "
                                "AND range_id = %s", (plan, rid))
                if took is None and o and (o[0][0] != owner or o[0][1]):
                    took = time.time() - t_cut
                    self.say(f"partition: range {rid} taken over after {took:.1f} s by {o[0][0] or '(done)'}")
                time.sleep(0.2)
        finally:
            self.hosts.heal(1)
            self.cuts.append((t_cut, time.time() + 5))
            self.cut_at = 0.0
        self.say(f"partition: link back after {time.time() - t_cut:.1f} s")
        self.part = {"rid": rid, "owner": owner, "took": took, "cut_db": cut_db, "addr": addr,
                     "note": f"partition {g.cut_s}s: " + (f"taken over after {took:.0f}s" if took is not None
                                                         else "not taken over")}

    def check_fencing(self, plan):
        """The worker cut off never committed a row of a range that was
        not its own at that moment: each row its address converted after
        the cut, against the owner the range had then (torture_owner logs
        every change of owner, in the order the range row's lock gives:
        a takeover waits for a batch in flight to commit, and a batch
        reads the owner under that lock)."""
        pt = self.part
        if not pt or "cut_db" not in pt:
            return
        typ = [int if c in ("id", "a", "b") else str for c in self.gen.pk_cols()]

        def bound(b):
            return None if b is None else tuple(t(v) for t, v in zip(typ, json.loads(b)))
        ranges = [(rid, bound(lo), bound(hi)) for rid, lo, hi in self.t.rows(
            f"SELECT range_id, lo, hi FROM {self.t.state('ranges')} WHERE plan_id = %s", (plan,))]
        owners = {}
        for rid, owner, at in self.t.rows("SELECT range_id, owner, at FROM torture_owner WHERE plan = %s "
                                          "ORDER BY at", (plan,)):
            owners.setdefault(rid, []).append((at, owner))
        bad = []
        for k, at in self.t.rows("SELECT k, at FROM torture_audit WHERE plan = %s AND addr = %s AND at > %s",
                                 (plan, pt["addr"], pt["cut_db"])):
            pk = self.gen.pk_of(k)
            rid = next((r for r, lo, hi in ranges if (lo is None or pk > lo) and (hi is None or pk <= hi)), None)
            held = [o for t, o in owners.get(rid, []) if t <= at]
            if not held or held[-1] != pt["owner"]:
                bad.append(f"k={k} of range {rid} (owner then: {held[-1] if held else None})")
        if bad:
            raise Failure(f"fencing: the worker cut off ({pt['owner']}) committed {len(bad)} rows of ranges "
                          f"it did not hold, e.g. " + "; ".join(bad[:3]))

    # -- the scenario
    def setup(self):
        g = self.gen
        self.t = Target(self.kind, self.dir, self.pg, "tort_%s_%d" % (self.kind, self.seed))
        self.t.execute(g.create_sql())
        if self.kind == "pg":
            self.t.execute("CREATE TABLE torture_audit (k bigint NOT NULL, plan text NOT NULL, addr inet, "
                           "at timestamptz NOT NULL DEFAULT clock_timestamp())")
            self.t.execute("CREATE FUNCTION torture_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                           "IF coalesce(current_setting('zdm.backfill', true), '') <> '' THEN "
                           "INSERT INTO torture_audit (k, plan, addr) VALUES (NEW.k, current_setting('zdm.backfill'), "
                           "inet_client_addr()); END IF; "
                           "RETURN NULL; END $$")
            self.t.execute("CREATE TRIGGER torture_audit AFTER UPDATE ON t FOR EACH ROW "
                           "EXECUTE FUNCTION torture_audit()")
        rng = random.Random(f"{self.seed}:{self.kind}:rows")
        rows = []
        for k in range(1, g.nrows + 1):
            src = None if rng.random() < g.null_src else rng.randint(0, 100000)
            rec = {"src": src, "other": 0, "name": "n%d" % k, "deleted": False, "uncertain": False, "grp": k % 4,
                   "hist": {src}}
            self.model[k] = rec
            rows.append(list(g.pk_of(k)) + [k, k % 4, src, rec["name"], 0])
        cols = g.pk_cols() + ["k", "grp", "src", "name", "other"]
        c = self.t.connect()
        cur = c.cursor()
        if self.kind == "sqlite":
            cur.execute("BEGIN")
        cur.executemany(self.t.q(f"INSERT INTO t ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"),
                        rows)
        if self.kind == "sqlite":
            cur.execute("COMMIT")
        c.close()
        with open(os.path.join(self.plans, self.plan + ".toml"), "w") as fh:
            fh.write(g.plan_toml())
        if self.plan2:
            with open(os.path.join(self.plans, self.plan2 + ".toml"), "w") as fh:
                fh.write(g.plan2_toml(self.plan))
        with open(os.path.join(self.dir, "hook.sh"), "w") as fh:
            # fails while the flag file exists
            fh.write("#!/bin/sh\n[ -e \"$(dirname \"$0\")/hook-fail\" ] && { echo failing on purpose; exit 1; }\n"
                     "[ -e \"$(dirname \"$0\")/hook-hang\" ] && { echo hanging on purpose; sleep 60; }\n"
                     "exit 0\n")
        os.chmod(os.path.join(self.dir, "hook.sh"), 0o755)
        if g.hook_fails:
            open(os.path.join(self.dir, "hook-fail"), "w").close()
        if g.hook_hangs:
            open(os.path.join(self.dir, "hook-hang"), "w").close()

    def scenario(self):
        g = self.gen
        self.setup()
        self.zdm("init")
        if self.kind == "pg" and g.partition:
            # every change of a range's owner, for the fencing check
            self.t.execute("CREATE TABLE torture_owner (plan text, range_id integer, owner text, "
                           "at timestamptz NOT NULL DEFAULT clock_timestamp())")
            self.t.execute("CREATE FUNCTION torture_owner() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                           "IF TG_OP = 'INSERT' OR NEW.owner IS DISTINCT FROM OLD.owner THEN "
                           "INSERT INTO torture_owner (plan, range_id, owner) VALUES "
                           "(NEW.plan_id, NEW.range_id, NEW.owner); END IF; RETURN NULL; END $$")
            self.t.execute("CREATE TRIGGER torture_owner AFTER INSERT OR UPDATE ON zdm.ranges FOR EACH ROW "
                           "EXECUTE FUNCTION torture_owner()")
        writers = self.writers = [Writer(self, i, g.writers) for i in range(g.writers)]
        for w in writers:
            w.start()
        if self.plan2:
            self.op2 = threading.Thread(target=self.operator2, daemon=True)
            self.op2.start()
        ok = False
        try:
            self.lifecycle(writers)
            self.main_done.set()
            if self.op2:
                self.op2.join(timeout=900)
                if self.op2.is_alive():
                    raise Failure(f"{self.plan2}: its operator did not finish")
            ok = True
        finally:
            if not ok and self.op2:
                # the first operator failed: stop the second one too
                self.abort.set()
                for p in self.procs:
                    if p.poll() is None:
                        self.signal(p, signal.SIGKILL)
                self.op2.join(timeout=60)
            for w in writers:
                w.stop_ev.set()
            for w in writers:
                w.join(timeout=30)
        if self.op2_error:
            raise self.op2_error
        errs = [e for w in writers for e in w.errors]
        if errs:
            raise Failure(f"I3: application errors: {errs[:3]}")
        self.writes = sum(w.writes for w in writers)
        self.lost = sum(w.lost for w in writers)
        for p in self.procs:
            if p.poll() is None:
                raise Failure(f"zdm {p.name} still running at the end")
        ph = self.phase()
        self.check_catalog("end")
        self.check_data("end", converted=ph == "complete")
        if self.plan2:
            self.check_catalog("end", self.plan2)
            self.check_data2("end", converted=self.phase(self.plan2) == "complete")
        self.check_state_end()

    # -- the second plan
    def operator2(self):
        try:
            self.lifecycle2()
        except Failure as e:
            if not self.abort.is_set():
                self.op2_error = e
        except Exception as e:  # noqa: BLE001 -- reported by the main thread
            if not self.abort.is_set():
                self.say(traceback.format_exc())
                self.op2_error = Failure(f"{self.plan2} operator: {type(e).__name__}: {e}")

    def lifecycle2(self):
        """The second plan, on its own thread: expand (with requires,
        refused until plan 1 is complete), workers under faults, then a
        rollback or cutover and contract, with the checks at each phase."""
        g, rng, q = self.gen, self.rng2, self.plan2
        time.sleep(g.delay2)
        refused_after = 0
        while True:
            if self.abort.is_set():
                return
            p1 = self.phase()
            if g.requires:
                with self.q_guard:
                    # the first operator's commands (not its workers, which
                    # wait for a lock) end before this one takes plan 1's lock
                    until = time.time() + 120
                    while time.time() < until and any(
                            p.main and p.poll() is None and not p.name.startswith("backfill") for p in self.procs):
                        time.sleep(0.05)
                    rc = self.zdm_retry("advance", q, ok=(0, 3))
            else:
                rc = self.zdm_retry("advance", q)
            if rc == 0:
                break
            # refused: plan 1, which it requires, is not complete yet
            self.expect_phase("pending", q)
            self.check_catalog("refused", q)
            if p1 == "complete":
                # its lock may have been busy (a late worker of plan 1),
                # but not for long
                refused_after += 1
                if refused_after > 5:
                    raise Failure(f"{q}: advance refused 6 times though {self.plan} is complete")
            elif self.main_done.is_set():
                return  # plan 1 was rolled back for good: q never expands
            time.sleep(rng.uniform(0.2, 1.0))
        if g.requires and self.phase() != "complete":
            raise Failure(f"{q} expanded though it requires {self.plan}, which is {self.phase()}")
        if self.phase(q) not in ("expanded", "backfilled"):
            raise Failure(f"after expand {q} is {self.phase(q)}")
        self.check_catalog("after expand", q)
        self.check_data2("after expand", converted=False)
        if self.phase(q) == "expanded":
            self.backfill_phase(q)
        self.check_catalog("backfilled", q)
        self.check_data2("backfilled", converted=True)
        self.check_exactly_once(q)
        if g.rollback2:
            self.zdm_retry("rollback", q)
            self.expect_phase("rolled_back", q)
            self.check_catalog("after rollback", q)
            return
        self.zdm_retry("cutover", q, ok=(0, 3))
        self.expect_phase("cut_over", q)
        # the second plan's new version keeps dst2 itself, before contract
        # removes its triggers
        with self.quiet_writers():
            for w in self.writers:
                w.v2 = True
        time.sleep(rng.uniform(0, 0.5))
        self.zdm_retry("advance", q)
        self.expect_phase("complete", q)
        self.check_catalog("complete", q)
        self.check_data2("complete", converted=True)

    def expand(self):
        if self.kind == "pg":
            self.t.execute("DELETE FROM torture_audit WHERE plan = %s", (self.plan,))
        if self.rng.random() < 0.3 or self.gen.dup_advance:
            a, b = self.start("advance", self.plan), self.start("advance", self.plan)
            for p in (a, b):
                p.wait(timeout=300)
            # the loser is refused (3) or finds it done; advance on an
            # expanded plan may also run the backfill (0).  Both refused
            # while the other plan's expand held this one's lock: again.
            if a.returncode == b.returncode == 3 and self.neighbour_locked(a) and self.neighbour_locked(b):
                self.notes.append("duplicate advance: both waited for the other plan's expand; run again")
                self.zdm("advance", self.plan)
            elif 0 not in (a.returncode, b.returncode) or any(p.returncode not in (0, 3) for p in (a, b)):
                raise Failure(f"duplicate advance exited {a.returncode} and {b.returncode}: {self.tail(a)} / "
                              f"{self.tail(b)}")
        else:
            self.zdm("advance", self.plan)
        ph = self.phase()
        if ph not in ("expanded", "backfilled"):
            raise Failure(f"after expand the phase is {ph}")
        self.check_catalog("after expand")
        self.check_data("after expand", converted=False)

    def lifecycle(self, writers):
        g, rng = self.gen, self.rng
        time.sleep(rng.uniform(0, 0.3))
        self.expand()
        if g.rollback and rng.random() < 0.5:
            # roll back in the middle of the backfill
            ws = [self.start("backfill", self.plan) for _ in range(g.workers)]
            time.sleep(rng.uniform(0, 0.5))
            for p in ws:
                self.signal(p, signal.SIGTERM)
            for p in ws:
                p.wait(timeout=120)
                self.check_worker_exit(p)
            self.zdm("rollback", self.plan)
            self.check_catalog("after rollback")
            self.check_data("after rollback", converted=False)
            if rng.random() < 0.3:
                return
            self.expand()
        if self.phase() == "expanded":
            self.backfill_phase()
        self.check_catalog("backfilled")
        self.check_data("backfilled", converted=True)
        self.check_exactly_once()
        self.check_no_sweep()
        self.check_fencing(self.plan)
        if g.rollback and rng.random() < 0.5:
            self.zdm("rollback", self.plan)
            self.check_catalog("after rollback")
            self.check_data("after rollback", converted=False)
            return
        # cutover (sometimes several at once, as from two terminals or a
        # retried CI job): exactly one moves the plan, and to cut_over only
        if g.dup_cutover and g.focus == "phase":
            # The race forced, not hoped for: three cutovers are held just
            # before they take the plan's lock (ZDM_BARRIER, compiled into
            # test builds), a fourth moves the plan, then the three go on.
            # Each must read the phase again under the lock and refuse.
            bar = os.path.join(self.dir, "barrier.%d" % self.cmdn)
            held = [self.start("cutover", self.plan, env_extra={"ZDM_BARRIER": "before_lock:" + bar})
                    for _ in range(3)]
            until = time.time() + 60
            while (time.time() < until and any(p.poll() is None for p in held) and
                   not all(os.path.exists(f"{bar}.arrived.{p.pid}") for p in held)):
                time.sleep(0.02)
            ps = held + [self.start("cutover", self.plan)]
            ps[-1].wait(timeout=120)
            open(bar, "w").close()
            for p in ps:
                p.wait(timeout=120)
            rcs = sorted(p.returncode for p in ps)
            if rcs != [0, 3, 3, 3]:
                raise Failure(f"concurrent cutovers (three held before the lock) exited {rcs}, "
                              "not one 0 and three refusals")
        elif g.dup_cutover:
            ps = []
            for _ in range(rng.randint(2, 4)):
                ps.append(self.start("cutover", self.plan))
                time.sleep(rng.uniform(0, 0.02))
            for p in ps:
                p.wait(timeout=120)
            rcs = sorted(p.returncode for p in ps)
            if rcs[0] != 0 or any(rc not in (0, 3) for rc in rcs):
                raise Failure(f"concurrent cutovers exited {rcs}")
        else:
            self.zdm("cutover", self.plan)
        self.expect_phase("cut_over")
        for w in writers[: max(1, len(writers) // 2)]:
            w.version = "new"
        if g.late_worker:
            self.zdm("backfill", self.plan, ok=(0, 3))
            self.expect_phase("cut_over")
        # contract must wait for its schedule
        self.zdm("schedule", self.plan, "--after", "1h")
        self.zdm("advance", self.plan, ok=(3,))
        self.zdm("run-due")
        self.expect_phase("cut_over")
        self.zdm("schedule", self.plan, "--after", "1s")
        self.scheduled_ms = int(time.time() * 1000) + 1000
        time.sleep(1.1)
        # contract happens once nothing relies on the old structure: every
        # instance now runs the final version, which writes both columns
        with self.quiet_writers():
            for w in writers:
                w.version = "final"
        if g.hook_fails or g.hook_hangs:
            t0 = time.time()
            self.zdm("advance", self.plan, ok=(3,), timeout=60)
            if g.hook_hangs and not g.hook_fails and time.time() - t0 > 20:
                raise Failure(f"a hook with a 3 s timeout held contract for {time.time() - t0:.0f} s")
            self.expect_phase("cut_over")
            self.check_catalog("contract refused by its hook")
            for f in ("hook-fail", "hook-hang"):
                if os.path.exists(os.path.join(self.dir, f)):
                    os.unlink(os.path.join(self.dir, f))
        if g.run_due:
            a = self.start("run-due")
            b = self.start("run-due") if rng.random() < 0.5 else None
            waited = False
            for p in (a, b):
                if p:
                    p.wait(timeout=300)
                    if p.returncode != 0:
                        raise Failure(f"run-due exited {p.returncode}: {self.tail(p)}")
                    waited |= self.neighbour_locked(p)
            # skipped while the other plan's expand held that plan's lock:
            # the next run-due (the timer's) contracts it
            for _ in range(240):
                if not waited or self.phase() == "complete":
                    break
                time.sleep(0.5)
                p, rc = self.run_waiting("run-due")
                if rc != 0:
                    raise Failure(f"run-due exited {rc}: {self.tail(p)}")
                waited = self.neighbour_locked(p)
        else:
            self.zdm("advance", self.plan)
        self.expect_phase("complete")
        self.check_catalog("complete")
        if g.late_worker:
            self.zdm("backfill", self.plan, ok=(0, 3))
            self.expect_phase("complete")
        time.sleep(rng.uniform(0, 0.5))

    def go(self):
        t0 = time.time()
        try:
            self.scenario()
            ok, why = True, ""
        except Failure as e:
            ok, why = False, str(e)
        except Exception as e:  # noqa: BLE001 -- the harness itself broke: report, do not hide
            ok, why = False, "harness: " + "".join(traceback.format_exception_only(type(e), e)).strip()
            self.say(traceback.format_exc())
        finally:
            for p in self.procs:
                if p.poll() is None:
                    self.signal(p, signal.SIGKILL)
                    p.wait()
        self.say(f"result ok={ok} {why}")
        self.log.close()
        if hasattr(self, "t"):
            self.t.drop()
        if ok and not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return ok, why, time.time() - t0

    def describe(self):
        g = self.gen
        plan = "op=rename_column" if g.rename else \
            f"where={g.where or '-'} {'two-way' if g.two_way else 'one-way'}"
        return (f"key={g.key} rows={g.nrows} {plan} "
                f"batch={g.batch} workers={g.workers} writers={g.writers}"
                f"{' rollback' if g.rollback else ''}{' hook-fails' if g.hook_fails else ''}"
                f"{' hook-hangs' if g.hook_hangs else ''}{' query-form' if g.query_form and not g.rename else ''}"
                + (f" +plan2(where={g.where2 or '-'}{' requires' if g.requires else ''}"
                   f"{' rollback' if g.rollback2 else ''})" if g.second else "")
                + (f" [{self.part['note']}]" if self.part else (" [partition not reached]" if g.partition else "")))


# ------------------------------------------------------------ main

MUTANTS = {
    # name: (database, focus, seeds to try)
    "checkpoint_split": ("pg", "kill", 6),
    "rollback_keeps_steps": ("both", "rollback", 8),
    "phase_unlocked": ("both", "phase", 6),
    "trigger_no_where": ("both", "where", 6),
    "range_overflow": ("both", "overflow", 6),
    "walk_skips": ("both", "walk", 6),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zdm", required=True)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--db", choices=["pg", "sqlite", "both"], default="both")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--mutant", default=None)
    ap.add_argument("--focus", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--force", action="append", default=[], help="pin a generator choice, e.g. key=edge")
    ap.add_argument("--regressions", action="store_true", help="replay tests/torture/regressions.txt")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--replay", default="tests/torture/run.sh")
    args = ap.parse_args()
    args.zdm = os.path.abspath(args.zdm)  # the commands run in each seed's directory
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="zdm-torture.", dir="/tmp")
    os.makedirs(args.workdir, exist_ok=True)
    kinds = ["pg", "sqlite"] if args.db == "both" else [args.db]
    if "pg" in kinds and psycopg2 is None:
        print("torture: python3-psycopg2 is missing: PostgreSQL runs skipped")
        kinds.remove("pg")
    pg = None
    args.hosts, args.hosts_why = None, "PostgreSQL runs only"
    old_term = signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # the finally below cleans up
    try:
        if "pg" in kinds:
            # the partition fault's "hosts" (network namespaces), when the
            # machine allows them; seeds that draw it say otherwise
            tag = "zdmt%d" % (os.getpid() % 100000)
            args.hosts_why = Hosts.available(tag)
            if not args.hosts_why:
                args.hosts = Hosts(tag, 1, net="10.232")
                try:
                    args.hosts.up()
                except RuntimeError as e:
                    args.hosts.down()
                    args.hosts, args.hosts_why = None, f"network namespaces unavailable ({e})"
            try:
                pg = PgServer(args.workdir, args.hosts)
            except RuntimeError as e:
                print(f"torture: no PostgreSQL server ({e}): PostgreSQL runs skipped")
                kinds.remove("pg")
        if args.self_test:
            return self_test(args, pg, kinds)
        if args.regressions:
            return regressions(args, pg, kinds)
        start = args.seed if args.seed is not None else int(time.time()) % 1000000
        if args.seed is None:
            print(f"torture: seeds start at {start} (from the clock)")
        # --seeds N, or as many as --minutes allows, or one
        n = args.seeds if args.seeds is not None else (10 ** 9 if args.minutes else 1)
        until = time.time() + args.minutes * 60 if args.minutes else None
        passed, failed = 0, []
        for i in range(n):
            if until and time.time() >= until:
                break
            seed = start + i
            for kind in kinds:
                r = Run(args, seed, kind, pg, args.mutant, args.focus)
                ok, why, secs = r.go()
                line = f"seed {seed} {kind:6} {'ok  ' if ok else 'FAIL'} {secs:5.1f}s {r.describe()}"
                print(line + ("" if ok else f"\n    {why}\n    log: {r.dir}"), flush=True)
                if ok:
                    passed += 1
                else:
                    failed.append((seed, kind, r.dir))
        print(f"{passed} passed, {len(failed)} failed")
        for seed, kind, d in failed:
            extra = f" (with ZDM_MUTANT={args.mutant})" if args.mutant else ""
            print(f"  replay: {args.replay} --seed {seed} --db {kind}{extra}   # log {d}")
        return 0 if not failed else 1
    finally:
        if pg:
            pg.stop()
        if args.hosts:
            args.hosts.down()
        signal.signal(signal.SIGTERM, old_term)
        if not args.keep:
            try:
                os.rmdir(args.workdir)
            except OSError:
                pass


def regressions(args, pg, kinds):
    """Every line of regressions.txt: seed, database, state, forced
    choices (name=value,... or -), what it found.  A "fixed" case must
    pass; an "open" one (its fix not landed yet) is only reported."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions.txt")
    failed, passed, still = [], 0, 0
    with open(path) as fh:
        for line in fh:
            if not line.strip() or line.startswith("#"):
                continue
            seed, kind, state, force, what = line.split(None, 4)
            if kind not in kinds:
                continue
            force = [] if force == "-" else force.split(",")
            ok, why, secs = Run(args, int(seed), kind, pg, None, None, force).go()
            tag = "ok  " if ok else ("open" if state.startswith("open") else "FAIL")
            print(f"regression seed {seed} {kind:6} {tag} {secs:5.1f}s {state}: {what.strip()[:90]}", flush=True)
            if not ok:
                print(f"    {why[:300]}")
            if ok:
                passed += 1
            elif state.startswith("open"):
                still += 1
            else:
                failed.append((seed, kind, force))
    print(f"{passed} passed, {len(failed)} failed, {still} open (fix not landed)")
    for seed, kind, force in failed:
        print(f"  replay: {args.replay} --seed {seed} --db {kind}" + "".join(f" --force {f}" for f in force))
    return 0 if not failed else 1


def self_test(args, pg, kinds):
    missed = []
    for name, (db, focus, tries) in MUTANTS.items():
        if args.mutant and name not in args.mutant.split(","):
            continue
        ks = [k for k in kinds if db in ("both", k)]
        caught = None
        for i in range(tries):
            for kind in ks:
                r = Run(args, 1000 + i, kind, pg, name, focus, [])
                ok, why, _ = r.go()
                if not ok:
                    # it counts only if the same seed passes without the
                    # mutant: a failure of the real code proves nothing
                    # about the mutant
                    base_ok, base_why, _ = Run(args, 1000 + i, kind, pg, None, focus, []).go()
                    if base_ok:
                        caught = (1000 + i, kind, why)
                        break
                    print(f"  (seed {1000 + i} {kind} fails without the mutant too: {base_why[:120]})", flush=True)
            if caught:
                break
        if caught:
            print(f"mutant {name:22} caught by seed {caught[0]} {caught[1]}: {caught[2][:150]}", flush=True)
        else:
            print(f"mutant {name:22} NOT caught in {tries} seeds", flush=True)
            missed.append(name)
    n = len([m for m in MUTANTS if not args.mutant or m in args.mutant.split(",")])
    print(f"self-test: {n - len(missed)} of {n} mutants caught")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
