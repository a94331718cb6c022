#!/bin/sh
# smoke-check.sh -- is the application answering?  A zdm hook (typically
# after_expand, before_contract or cutover) or a deploy step.
#
# Usage: smoke-check.sh URL [tries] [delay]
#   URL     fetched with GET; success is an HTTP 2xx answer from URL
#           itself: redirects are not followed (a 302 to an error or login
#           page is not healthy; give the final URL)
#   tries   attempts before giving up (default 10)
#   delay   seconds between attempts (default 1; fractions are fine)
#
# Environment:
#   SMOKE_EXPECT    text the answer's body must also contain, case-
#                   insensitive (optional); the status line and headers do
#                   not count ("200 OK" does not match "ok")
#   SMOKE_TIMEOUT   seconds per attempt (default 5)
#   SMOKE_CURL      the curl program (default curl)
#
# Uses curl when installed, else python3; with neither it says so and
# exits 1 at once.  Prints one line per failed try and a last line with the
# outcome, which zdm keeps in history.
# Exit status: 0 healthy, 1 not healthy after every try (or no client), 2 usage.
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
curl=${SMOKE_CURL:-curl}

if command -v "$curl" >/dev/null 2>&1; then
    client=curl
elif command -v python3 >/dev/null 2>&1; then
    client=python3
else
    echo "$me: neither curl nor python3 is installed: cannot check $url (install curl)" >&2
    exit 1
fi

body=$(mktemp "${TMPDIR:-/tmp}/zdm-smoke.XXXXXX") || { echo "$me: cannot create a temporary file" >&2; exit 1; }
trap 'rm -f "$body" "$body.err"' EXIT
trap 'rm -f "$body" "$body.err"; exit 143' TERM INT HUP

# One attempt: the body goes to $body, the status code to stdout; fails
# (with the reason on stderr) when there is no answer at all.
fetch() {
    if [ "$client" = curl ]; then
        "$curl" -sS -o "$body" -w '%{http_code}' --max-time "$per" -H 'Connection: close' "$url"
    else
        python3 - "$url" "$per" "$body" <<'PY'
import sys, urllib.request, urllib.error
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
opener = urllib.request.build_opener(NoRedirect)
try:
    r = opener.open(sys.argv[1], timeout=float(sys.argv[2]))
    code, data = r.status, r.read()
except urllib.error.HTTPError as e:
    code, data = e.code, e.read()
except Exception as e:
    print(e, file=sys.stderr); sys.exit(7)
open(sys.argv[3], "wb").write(data)
print(code)
PY
    fi
}

i=0
while [ "$i" -lt "$tries" ]; do
    i=$((i + 1))
    : >"$body"
    if code=$(fetch 2>"$body.err"); then
        case $code in
        2[0-9][0-9])
            if [ -z "$expect" ] || grep -qiF -- "$expect" "$body"; then
                rm -f "$body.err"
                echo "$me: $url healthy (HTTP $code, try $i of $tries)"
                exit 0
            fi
            why="HTTP $code but the body lacks \"$expect\": $(head -c 200 "$body" | tr '\n\r' '  ')"
            ;;
        3[0-9][0-9]) why="HTTP $code, a redirect (not followed: check the final URL)" ;;
        *) why="HTTP $code" ;;
        esac
    else
        why=$(tail -n 1 "$body.err")
    fi
    echo "$me: try $i of $tries: $url: $why"
    [ "$i" -lt "$tries" ] && sleep "$delay"
done
rm -f "$body.err"
echo "$me: $url NOT healthy after $tries tries"
exit 1
