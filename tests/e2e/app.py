#!/usr/bin/env python3
"""app.py -- the application under migration, in two versions, for the
blue-green end-to-end test (tests/integration/test_e2e_bluegreen.sh).

    app.py --color blue|green --dsn DSN --port-file FILE [--port N]

Listens on 127.0.0.1 (port N, or a free one; written to FILE once it
listens) and
serves, with a header "X-Backend: <color>" on every answer:

    GET  /health          200 "<color>"
    POST /events          {"project": P}  -> 201 {"id": N, "project": P}
    GET  /events/N        200 {"id": N, "project": P}
    PUT  /events/N        {"project": P}  -> 200 {"id": N, "project": P}

The API is the same in both versions; what differs is the schema each
version knows (plans/0007_event_project_slug.toml):

    blue  (old) reads and writes events.project_name = P
    green (new) reads and writes events.project_slug = slug(P) only,
          where slug(P) = P with spaces as hyphens, and P = unslug(slug)

P is lower-case words separated by single spaces, so unslug(slug(P)) = P
and the database's f/g (lower(replace(name, ' ', '-')) and
replace(slug, '-', ' ')) agree with the application's.  Green answers 500
when it finds a row without a slug: green may only serve once the backfill
is done.  Every statement autocommits; connections come from a pool.
"""
import argparse
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.pool


def slug(p):
    return p.replace(" ", "-")


def unslug(s):
    return s.replace("-", " ")


class App:
    def __init__(self, color, dsn):
        self.color = color
        self.pool = psycopg2.pool.ThreadedConnectionPool(1, 32, dsn)

    def query(self, sql, args):
        conn = self.pool.getconn()
        broken = False
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchone()
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self.pool.putconn(conn, close=broken)

    def create(self, project):
        if self.color == "blue":
            row = self.query("INSERT INTO events (project_name) VALUES (%s) RETURNING id", (project,))
        else:
            row = self.query("INSERT INTO events (project_slug) VALUES (%s) RETURNING id", (slug(project),))
        return row[0]

    def read(self, ident):
        col = "project_name" if self.color == "blue" else "project_slug"
        row = self.query("SELECT " + col + " FROM events WHERE id = %s", (ident,))
        if row is None:
            return None, "no such event"
        if row[0] is None:
            return None, "event %d has no %s" % (ident, col)
        return (row[0] if self.color == "blue" else unslug(row[0])), None

    def update(self, ident, project):
        if self.color == "blue":
            row = self.query("UPDATE events SET project_name = %s WHERE id = %s RETURNING id", (project, ident))
        else:
            row = self.query("UPDATE events SET project_slug = %s WHERE id = %s RETURNING id",
                             (slug(project), ident))
        return row is not None


PROJECT = re.compile(r"^[a-z0-9]+( [a-z0-9]+)*$")


class Handler(BaseHTTPRequestHandler):
    server_version = "zdm-e2e-app"
    app = None  # set in main

    def log_message(self, fmt, *args):  # quiet: the client records everything
        pass

    def answer(self, code, body):
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("X-Backend", self.app.color)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            doc = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return None
        p = doc.get("project") if isinstance(doc, dict) else None
        return p if isinstance(p, str) and PROJECT.match(p) else None

    def event_id(self):
        m = re.match(r"^/events/([0-9]+)$", self.path)
        return int(m.group(1)) if m else None

    def guarded(self, fn):
        try:
            fn()
        except psycopg2.Error as e:
            self.answer(500, {"error": str(e).strip()})
        except Exception as e:  # a bug here must show as a failed request
            self.answer(500, {"error": "%s: %s" % (type(e).__name__, e)})

    def do_GET(self):
        def run():
            if self.path == "/health":
                self.query_health()
                return
            ident = self.event_id()
            if ident is None:
                self.answer(404, {"error": "no route"})
                return
            p, why = self.app.read(ident)
            if p is None:
                self.answer(404 if why == "no such event" else 500, {"error": why})
            else:
                self.answer(200, {"id": ident, "project": p})
        self.guarded(run)

    def query_health(self):
        self.app.query("SELECT 1", ())
        self.answer(200, self.app.color)

    def do_POST(self):
        def run():
            p = self.body()
            if self.path != "/events" or p is None:
                self.answer(400, {"error": "POST /events {\"project\": \"lower case words\"}"})
                return
            self.answer(201, {"id": self.app.create(p), "project": p})
        self.guarded(run)

    def do_PUT(self):
        def run():
            ident, p = self.event_id(), self.body()
            if ident is None or p is None:
                self.answer(400, {"error": "PUT /events/N {\"project\": \"lower case words\"}"})
            elif self.app.update(ident, p):
                self.answer(200, {"id": ident, "project": p})
            else:
                self.answer(404, {"error": "no such event"})
        self.guarded(run)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--color", choices=["blue", "green"], required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0, help="default: any free port")
    args = ap.parse_args()
    Handler.app = App(args.color, args.dsn)
    srv = Server(("127.0.0.1", args.port), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
