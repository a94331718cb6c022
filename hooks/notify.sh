#!/bin/sh
# notify.sh -- tell people what zdm is doing: one line per hook event, to a
# chat webhook, a log file or stdout.  Meant for any event, e.g.
#     [hooks]
#     after_contract = "../hooks/notify.sh"
#     on_failure     = "../hooks/notify.sh"
#
# Usage: notify.sh [TEXT...]
#   TEXT is appended to the message (e.g. a release name).
#
# The message: "zdm: PLAN EVENT (PHASE -> NEXT)[, exit N] by USER@HOST[: TEXT]"
# built from ZDM_PLAN, ZDM_EVENT, ZDM_PHASE, ZDM_NEXT_PHASE and
# ZDM_EXIT_CODE.  It names no database: no host, database or user of
# ZDM_DATABASE_URL goes to the chat service, and neither does ZDM_ERROR
# (a driver's message may name the server); "zdm history PLAN" has them.
#
# Environment:
#   NOTIFY_URL       POST {"text": MESSAGE} there with curl (Slack,
#                    Mattermost and Rocket.Chat incoming webhooks take that
#                    body).  The URL holds the webhook's token: it goes to
#                    curl through its standard input, never its argv (which
#                    every user of the host can read in ps).
#   NOTIFY_URL_FILE  or read the URL from this file (first line)
#   NOTIFY_LOG       else append "TIME MESSAGE" to this file
#   (none)           else print the message on stdout (zdm logs it and keeps
#                    it in history)
#   NOTIFY_STRICT    default 1: a message that cannot be delivered (no curl,
#                    no answer, an answer other than 2xx, a log file that
#                    cannot be written) fails the hook, exit 1.  0: warn and
#                    exit 0, for a before_* hook that must not stop a
#                    migration over a chat outage.
#   NOTIFY_TIMEOUT   seconds for the POST (default 10)
#   NOTIFY_CURL      the curl program (default curl)
set -u

me=notify
strict=${NOTIFY_STRICT:-1}
fail() {
    echo "$me: $*" >&2
    echo "$me: message was: $msg" >&2
    [ "$strict" = 0 ] && exit 0
    exit 1
}

msg="zdm: ${ZDM_PLAN:-?} ${ZDM_EVENT:-event}"
if [ -n "${ZDM_PHASE:-}" ]; then
    if [ -n "${ZDM_NEXT_PHASE:-}" ] && [ "${ZDM_NEXT_PHASE}" != "$ZDM_PHASE" ]; then
        msg="$msg ($ZDM_PHASE -> $ZDM_NEXT_PHASE)"
    else
        msg="$msg ($ZDM_PHASE)"
    fi
fi
[ -n "${ZDM_EXIT_CODE:-}" ] && msg="$msg, exit $ZDM_EXIT_CODE"
msg="$msg by $(id -un 2>/dev/null || echo '?')@$(hostname 2>/dev/null || uname -n)"
[ $# -gt 0 ] && msg="$msg: $*"
# One line of valid UTF-8 without control characters, whatever the
# arguments and the environment held: newlines and tabs become spaces, the
# other C0 controls and DEL go, and so do bytes that are not UTF-8 (a chat
# server answers 400 to the JSON otherwise).
msg=$(printf '%s' "$msg" | LC_ALL=C tr '\n\r\t' '   ' | LC_ALL=C tr -d '\000-\037\177')
if command -v iconv >/dev/null 2>&1; then
    msg=$(printf '%s' "$msg" | iconv -c -f UTF-8 -t UTF-8 2>/dev/null)
fi

url=${NOTIFY_URL:-}
if [ -z "$url" ] && [ -n "${NOTIFY_URL_FILE:-}" ]; then
    [ -r "$NOTIFY_URL_FILE" ] || fail "cannot read NOTIFY_URL_FILE=$NOTIFY_URL_FILE"
    url=$(head -n 1 "$NOTIFY_URL_FILE" | tr -d '\r')
    [ -n "$url" ] || fail "NOTIFY_URL_FILE=$NOTIFY_URL_FILE is empty"
fi

if [ -n "$url" ]; then
    curl=${NOTIFY_CURL:-curl}
    command -v "$curl" >/dev/null 2>&1 ||
        fail "$curl not found: install curl (the zdm image has it unless built with HOOK_PACKAGES=\"\")"
    # JSON string: backslashes and quotes escaped; no control characters
    # are left (above).  The body goes through a file, the URL through
    # curl's config on stdin, so neither shows in ps.
    esc=$(printf '%s' "$msg" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
    body=$(mktemp "${TMPDIR:-/tmp}/zdm-notify.XXXXXX") || fail "cannot create a temporary file"
    trap 'rm -f "$body"' EXIT
    trap 'rm -f "$body"; exit 143' TERM INT HUP
    printf '{"text": "%s"}\n' "$esc" >"$body"
    # curl's config syntax: a quoted value, with \ and " escaped.
    qurl=$(printf '%s' "$url" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
    code=$(printf 'url = "%s"\n' "$qurl" | "$curl" -sS -K - -o /dev/null -w '%{http_code}' \
        --max-time "${NOTIFY_TIMEOUT:-10}" -H 'Content-Type: application/json' \
        --data-binary @"$body" 2>"$body.err")
    rc=$?
    err=$(tail -n 1 "$body.err" 2>/dev/null)
    rm -f "$body.err"
    case $rc:$code in
    0:2[0-9][0-9])
        echo "$me: sent: $msg"
        exit 0
        ;;
    0:*) fail "the webhook answered HTTP $code, not 2xx: the message was not accepted" ;;
    *) fail "could not post to the webhook (curl exit $rc): $err" ;;
    esac
fi
if [ -n "${NOTIFY_LOG:-}" ]; then
    if printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$msg" >>"$NOTIFY_LOG"; then
        echo "$me: logged to $NOTIFY_LOG: $msg"
        exit 0
    fi
    fail "cannot append to $NOTIFY_LOG"
fi
echo "$msg"
