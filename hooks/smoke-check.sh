#!/bin/sh
# smoke-check.sh -- is the application answering?  A zdm hook (typically
# after_expand, before_contract or cutover) or a deploy step.
#
# Usage: smoke-check.sh URL [tries] [delay]
#   URL     fetched with GET; success is an HTTP 2xx answer
#   tries   attempts before giving up (default 10)
#   delay   seconds between attempts (default 1; fractions are fine)
#
# Environment:
#   SMOKE_EXPECT    text the answer (headers + body) must also contain,
#                   case-insensitive (optional)
#   SMOKE_TIMEOUT   seconds per attempt (default 5)
#
# Uses curl when installed, else python3.  Prints one line per failed try
# and a last line with the outcome, which zdm keeps in history.
# Exit status: 0 healthy, 1 not healthy after every try, 2 usage.
set -u

me=smoke-check
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: $0 URL [tries] [delay]" >&2
    exit 2
fi
url=$1
tries=${2:-10}
delay=${3:-1}
case $tries in '' | *[!0-9]*) echo "$me: tries must be a number, not \"$tries\"" >&2; exit 2 ;; esac
[ "$tries" -ge 1 ] || tries=1
per=${SMOKE_TIMEOUT:-5}
expect=${SMOKE_EXPECT:-}

# One attempt: prints the status line, headers and body; fails on no
# answer or a non-2xx status.
fetch() {
    if command -v curl >/dev/null 2>&1; then
        curl -sS -i --fail --max-time "$per" -H 'Connection: close' "$url"
    else
        python3 - "$url" "$per" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        print("HTTP %d %s" % (r.status, r.reason)); print(r.headers)
        print(r.read().decode("utf-8", "replace"))
except urllib.error.HTTPError as e:
    print("The requested URL returned error: %d" % e.code, file=sys.stderr); sys.exit(22)
except Exception as e:
    print(e, file=sys.stderr); sys.exit(7)
PY
    fi
}

i=0
while [ "$i" -lt "$tries" ]; do
    i=$((i + 1))
    if out=$(fetch 2>&1); then
        if [ -z "$expect" ] || printf '%s\n' "$out" | grep -qiF -- "$expect"; then
            echo "$me: $url healthy (try $i of $tries)"
            exit 0
        fi
        why="answer lacks \"$expect\""
    else
        why=$(printf '%s\n' "$out" | tail -n 1)
    fi
    echo "$me: try $i of $tries: $url: $why"
    [ "$i" -lt "$tries" ] && sleep "$delay"
done
echo "$me: $url NOT healthy after $tries tries"
exit 1
