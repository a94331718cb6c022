#!/usr/bin/env python3
"""hookstub.py -- an HTTP server with fixed routes for the example-hook
tests (tests/integration/test_example_hooks.sh).

    hookstub.py --port-file FILE --record FILE

Listens on 127.0.0.1 (a free port, written to FILE).
  GET /ok          200, body "status: ok"
  GET /degraded    200 OK, body "degraded"
  GET /redirect    302 to /broken
  GET /broken      500, body "ok... not really"
  GET /missing     404
  POST /hook       a chat webhook: 200 when the body is a JSON object with a
                   string "text", else 400; every body is appended to the
                   record file as one JSON line {"status": N, "body": "..."}
  POST /reject     always 400 (records too)
"""
import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--record", required=True)
    args = ap.parse_args()

    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def answer(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            p = self.path
            if p == "/ok":
                self.answer(200, b"status: ok\n")
            elif p == "/degraded":
                self.answer(200, b"degraded\n")
            elif p == "/redirect":
                self.answer(302, b"moved", [("Location", "/broken")])
            elif p == "/broken":
                self.answer(500, b"ok... not really\n")
            else:
                self.answer(404, b"no such page")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n)
            status = 400
            if self.path.split("?")[0] == "/hook":
                try:
                    doc = json.loads(raw.decode("utf-8"))
                    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
                        status = 200
                except (UnicodeDecodeError, ValueError):
                    pass
            with open(args.record, "a") as f:
                f.write(json.dumps({"status": status, "path": self.path,
                                    "body": raw.decode("utf-8", "replace")}) + "\n")
            self.answer(status, b"ok" if status == 200 else b"invalid_payload")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
