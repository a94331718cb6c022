#!/usr/bin/env python3
"""stub_http.py -- a tiny HTTP server for the hook tests: a health URL that
names a backend, a webhook that records what it was sent.

    stub_http.py --port-file FILE [--say TEXT] [--status N] [--record FILE]

Listens on 127.0.0.1 (a free port, written to FILE).  Every GET answers
status N (default 200) with body TEXT (default "ok") and a header
"X-Backend: TEXT".  Every POST answers the same and appends its body as one
line to the --record file.
"""
import argparse
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--say", default="ok")
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--record")
    args = ap.parse_args()

    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def reply(self):
            data = args.say.encode()
            self.send_response(args.status)
            self.send_header("X-Backend", args.say)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.reply()

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            if args.record:
                with open(args.record, "ab") as f:
                    f.write(body.replace(b"\n", b" ") + b"\n")
            self.reply()

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
