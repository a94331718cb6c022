#!/usr/bin/env bash
# test_httpstat.sh -- the backfill worker's --listen endpoint under abuse.
# A worker on a paused plan (so it waits, serving) is sent: GET and HEAD
# on /status and /metrics, other methods and paths; 100 MB of headers (431
# after the limit, the worker's memory unchanged); a request body (413);
# an over-long target (414); 100 idle connections (at most the limit held
# open, idle ones closed, /status answered again afterwards); a flood while
# the worker has almost no file descriptors left (EMFILE: a few log lines,
# not millions, and the worker still answers); [::1] when the host has
# IPv6; and bad --listen values (usage errors and bind errors that say
# what is wrong, without the backfill's "failed batch" hint).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init httpstat
for tool in curl python3; do
    command -v "$tool" >/dev/null || {
        echo "httpstat: $tool missing: skipping" >&2
        exit 77
    }
done

MAX_CONNS=$(sed -n 's/^#define ZDM_HTTP_MAX_CONNS \([0-9]*\).*/\1/p' "$ZDM_SRC/phases/httpstat.h")
MAX_HEADER=$(sed -n 's/^#define ZDM_HTTP_MAX_HEADER \([0-9]*\).*/\1/p' "$ZDM_SRC/phases/httpstat.h")
t_cmp "limits read from httpstat.h" "${MAX_CONNS:-0}" -gt 0

db_new sqlite http
plans_empty
plan_write 0001_t '
[[expand.steps]]
op = "add_column"
table = "t"
column = "b"
type = "integer"
up = "a * 2"'
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer); INSERT INTO t VALUES (1, 1), (2, 2)"
zdm_run advance 0001_t
t_rc "expand" 0
zdm_run pause 0001_t
t_rc "pause: the worker waits and serves" 0

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start_worker LISTEN [ulimit -n]
start_worker() {
    local listen=$1 nofile=${2:-}
    (
        [ -n "$nofile" ] && ulimit -n "$nofile"
        exec "$ZDM" --db "$T_DB" --plans "$T_PLANS" backfill 0001_t --listen "$listen"
    ) >"$T_DIR/worker.out" 2>"$T_DIR/worker.err" &
    WPID=$!
    T_BG_PIDS+=("$WPID")
}
stop_worker() {
    kill -TERM "$WPID" 2>/dev/null
    t_wait_exit "$WPID" 30
    t_eq "the worker stops on SIGTERM (exit 4)" 4 "$WAIT_RC"
    cat "$T_DIR/worker.out" "$T_DIR/worker.err" >>"$T_DIR/all-output.log"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$WPID/status"; }
open_fds() { find "/proc/$WPID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

t_section "methods and paths"
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
start_worker "$PORT"
t_wait_for "the worker serves" 20 curl -fsS -o /dev/null "$URL/status" || exit 1
t_eq "GET /status" 200 "$(curl -s -o "$T_DIR/status.json" -w '%{http_code}' "$URL/status")"
t_eq "/status is JSON" 0001_t "$(jq -r .plan "$T_DIR/status.json")"
t_eq "GET /metrics" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")"
t_eq "GET /status?x=1" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/status?x=1")"
head=$(curl -sI "$URL/status")
t_has "HEAD /status answers 200" "HTTP/1.1 200 OK" "$head"
t_match "HEAD gives the length of the body it leaves out" "Content-Length: [1-9]" "$head"
t_eq "HEAD has no body" 0 "$(curl -s --head -o /dev/null -w '%{size_download}' "$URL/metrics")"
post=$(curl -si -X POST --data x "$URL/status")
t_has "POST is 405" "HTTP/1.1 405" "$post"
t_has "405 names the allowed methods" "Allow: GET, HEAD" "$post"
t_eq "DELETE is 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/status")"
t_eq "an unknown path is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nope")"
t_eq "a GET with a body is 413" 413 \
    "$(curl -s -o /dev/null -w '%{http_code}' -X GET -H 'Content-Length: 5' --data-binary 12345 "$URL/status")"
t_eq "a chunked GET is 413" 413 \
    "$(curl -s -o /dev/null -w '%{http_code}' -X GET -H 'Transfer-Encoding: chunked' --data-binary 12345 "$URL/status")"
long=$(printf 'a%.0s' $(seq 1 2000))
t_eq "a 2000-byte target is 414" 414 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/status?$long")"
t_eq "HTTP/2.0 in the request line is 505" 505 "$(printf 'GET /status HTTP/2.0\r\n\r\n' |
    python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1', $PORT)); s.sendall(sys.stdin.buffer.read()); print(s.recv(100).split()[1].decode())")"

t_section "100 MB of headers"
before=$(rss_kb)
answer=$(python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(30)
sent = 0
try:
    s.sendall(b"GET /status HTTP/1.1\r\n")
    line = b"X-Big: " + b"a" * 65000 + b"\r\n"
    while sent < 100 * 1024 * 1024:
        s.sendall(line)
        sent += len(line)
except OSError:
    pass  # the worker answered and closed: what we want
try:
    print(s.recv(200).split(b"\r\n")[0].decode(), "after", sent, "bytes sent")
except OSError as e:
    print("no answer:", e)
PY
)
t_has "answered 431" "431 Request Header Fields Too Large" "$answer"
t_match "long before 100 MB were read" "after [0-9]{1,8} bytes" "$answer"
after=$(rss_kb)
t_cmp "the worker's memory did not grow by more than 4 MB ($before -> $after kB)" "$((after - before))" -lt 4096
t_eq "and it still answers" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/status")"

t_section "100 idle connections"
base_fds=$(open_fds) # the worker's own: std, database, listener, signals, ...
python3 - "$PORT" "$T_DIR/idle.txt" <<'PY' &
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(100)]
for s in socks:
    s.settimeout(60)
closed = 0
for s in socks:
    try:
        if s.recv(1) == b"":
            closed += 1
    except OSError:
        closed += 1
open(sys.argv[2], "w").write("%d\n" % closed)
PY
IDLE=$!
T_BG_PIDS+=("$IDLE")
t_wait_for "the worker holds the limit" 20 "[ \"\$(open_fds)\" -ge $((base_fds + MAX_CONNS)) ]"
sleep 1 # (not a timing assumption: only gives an over-limit accept its chance to show)
fds=$(open_fds)
t_cmp "no more than the limit held open ($fds fds: $base_fds of its own + limit $MAX_CONNS)" "$fds" -le $((base_fds + MAX_CONNS))
t_eq "/status answers once idle ones time out" 200 "$(curl -s -m 120 -o /dev/null -w '%{http_code}' "$URL/status")"
t_wait_exit "$IDLE" 120
t_eq "every idle connection was closed by the worker" 100 "$(cat "$T_DIR/idle.txt")"
t_has "the limit was logged" "connections open, the limit" "$(cat "$T_DIR/worker.err")"
t_cmp "once, not per connection" "$(grep -c 'the limit' "$T_DIR/worker.err")" -le 3
stop_worker

t_section "accept() failing: EMFILE"
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
start_worker "$PORT" 24
t_wait_for "the worker serves" 20 curl -fsS -o /dev/null "$URL/status" || exit 1
cpu_before=$(awk '{print $14 + $15}' "/proc/$WPID/stat")
python3 - "$PORT" <<'PY'
import socket, sys, time
socks = []
for _ in range(80):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
time.sleep(3)  # the flood stands for a while: a spinning accept loop would log all along
PY
cpu_after=$(awk '{print $14 + $15}' "/proc/$WPID/stat")
t_has "the accept errors were reported" "accept failed" "$(cat "$T_DIR/worker.err")"
t_cmp "in a few lines, not a storm" "$(grep -c 'accept failed' "$T_DIR/worker.err")" -le 3
t_cmp "without spinning (CPU ticks $cpu_before -> $cpu_after over 3 s)" "$((cpu_after - cpu_before))" -lt 100
t_eq "and it answers once the flood is gone" 200 "$(curl -s -m 60 -o /dev/null -w '%{http_code}' "$URL/status")"
stop_worker

t_section "IPv6 loopback"
if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
    PORT=$(free_port)
    start_worker "[::1]:$PORT"
    t_wait_for "the worker serves on [::1]" 20 curl -fsS -g -o /dev/null "http://[::1]:$PORT/status" &&
        t_eq "GET /status on [::1]" 200 "$(curl -s -g -o /dev/null -w '%{http_code}' "http://[::1]:$PORT/status")"
    stop_worker
else
    t_note "no IPv6 loopback here: skipped"
fi

t_section "bad --listen values"
for bad in "abc" "0" "70000" ":9187" "::1:9187" "[::1]" "[::1]9187" "127.0.0.1:" "no-such-host.invalid:9187"; do
    zdm_run backfill 0001_t --listen "$bad"
    t_rc "--listen $bad: a usage error" 2
    t_has "--listen $bad: named in the error" "--listen" "$ZERR"
    t_lacks "--listen $bad: no backfill hint" "rolled back" "$ZERR"
done
PORT=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', $PORT)); s.listen(); time.sleep(30)" &
HOLD=$!
T_BG_PIDS+=("$HOLD")
t_wait_for "the port is taken" 10 "! python3 -c \"import socket; socket.socket().bind(('127.0.0.1', $PORT))\""
zdm_run backfill 0001_t --listen "$PORT"
t_rc "a port in use: a runtime failure" 1
t_has "says why" "cannot listen on 127.0.0.1:$PORT: Address already in use" "$ZERR"
t_has "says what to do" "choose another with --listen" "$ZERR"
t_lacks "no backfill hint" "rolled back" "$ZERR"
kill "$HOLD" 2>/dev/null
zdm_run backfill 0001_t --listen "192.0.2.1:$PORT"
t_rc "an address not on this host" 1
t_has "says so" "Cannot assign requested address" "$ZERR"

t_finish
