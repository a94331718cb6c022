#!/usr/bin/env python3
"""client.py -- the traffic of the blue-green end-to-end test: reads and
writes through nginx for the whole run and records every request.

    client.py --url http://127.0.0.1:PORT --out FILE --stop-file FILE
              [--threads N] [--pause SECONDS] [--seed-ids N]

Each thread loops until the stop file exists:
    POST /events {"project": P}         create an event
    GET  /events/ID                     must answer P
    PUT  /events/ID {"project": P2}     rename it
    GET  /events/ID                     must answer P2
and now and then renames one of the pre-existing rows (ids 1..N, split
between the threads so that no two threads touch the same row) and reads
it back.  Whichever version (blue or green) answers, the value read must be
the value last written: that is the consistency the dual-write trigger and
the backfill promise.

Every request is one line of JSON in --out (written when the client stops):
    {"t0": ms, "t1": ms, "op": "POST", "id": 17, "status": 201,
     "backend": "blue", "ok": true, "why": ""}
t0/t1 are epoch milliseconds (the clock zdm records its times with).  A new
connection per request ("Connection: close"), as a fleet of independent
clients would do, so an nginx reload never catches a request on a kept-alive
connection of an old worker.  Every answer must come within 10 s.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from urllib.parse import urlparse

WORDS = ["core", "billing", "search", "mail", "edge", "auth", "data", "web", "api", "jobs"]


def now_ms():
    return time.time() * 1000.0


class Client:
    def __init__(self, url, stop_file, pause, seed_ids, threads):
        u = urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.stop_file = stop_file
        self.pause = pause
        self.seed_ids = seed_ids
        self.threads = threads
        self.records = []
        self.lock = threading.Lock()

    def request(self, method, path, body=None):
        t0 = now_ms()
        rec = {"t0": t0, "op": method, "status": 0, "backend": "", "ok": False, "why": ""}
        data = None
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            hdrs = {"Connection": "close"}
            payload = None
            if body is not None:
                payload = json.dumps(body)
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            rec["status"] = resp.status
            rec["backend"] = resp.getheader("X-Backend") or ""
            conn.close()
            try:
                data = json.loads(raw)
            except ValueError:
                data = raw.decode("utf-8", "replace")
            if path.startswith("/events/"):
                rec["id"] = int(path.rsplit("/", 1)[1])
            elif isinstance(data, dict) and isinstance(data.get("id"), int):
                rec["id"] = data["id"]
            if not 200 <= resp.status < 300:
                rec["why"] = "HTTP %d: %s" % (resp.status, str(data)[:200])
            else:
                rec["ok"] = True
        except Exception as e:  # connection refused, reset, timeout...
            rec["why"] = "%s: %s" % (type(e).__name__, e)
        rec["t1"] = now_ms()
        with self.lock:
            self.records.append(rec)
        return rec, data

    def expect(self, rec, data, project):
        """A read must answer what was written last."""
        if rec["ok"] and (not isinstance(data, dict) or data.get("project") != project):
            rec["ok"] = False
            rec["why"] = "inconsistent: wrote %r, read %r" % (project, data)

    def name(self, rnd, n):
        return "%s %s %d" % (rnd.choice(WORDS), rnd.choice(WORDS), n)

    def loop(self, k):
        rnd = random.Random(k)
        n = 0
        while not os.path.exists(self.stop_file):
            n += 1
            p = self.name(rnd, n)
            rec, data = self.request("POST", "/events", {"project": p})
            if rec["ok"] and isinstance(data, dict) and isinstance(data.get("id"), int):
                ident = data["id"]
                rec, data = self.request("GET", "/events/%d" % ident)
                self.expect(rec, data, p)
                p2 = self.name(rnd, n) + " renamed"
                rec, _ = self.request("PUT", "/events/%d" % ident, {"project": p2})
                if rec["ok"]:
                    rec, data = self.request("GET", "/events/%d" % ident)
                    self.expect(rec, data, p2)
            if self.seed_ids and n % 3 == 0:
                # a pre-existing row of this thread's share, maybe not backfilled yet
                ident = rnd.randrange(0, self.seed_ids // self.threads) * self.threads + k + 1
                if ident <= self.seed_ids:
                    p3 = "seed %d touched %d" % (ident, n)
                    rec, _ = self.request("PUT", "/events/%d" % ident, {"project": p3})
                    if rec["ok"]:
                        rec, data = self.request("GET", "/events/%d" % ident)
                        self.expect(rec, data, p3)
            time.sleep(self.pause)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--pause", type=float, default=0.01)
    ap.add_argument("--seed-ids", type=int, default=0)
    args = ap.parse_args()
    c = Client(args.url, args.stop_file, args.pause, args.seed_ids, args.threads)
    ts = [threading.Thread(target=c.loop, args=(k,), daemon=True) for k in range(args.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(args.out + ".tmp", "w") as f:
        for r in sorted(c.records, key=lambda r: r["t0"]):
            f.write(json.dumps(r) + "\n")
    os.rename(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
