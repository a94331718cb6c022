#!/bin/sh
# notify.sh -- tell people what zdm is doing: one line per hook event, to a
# chat webhook, a log file or stdout.  Meant for any event, e.g.
#     [hooks]
#     after_expand = "../hooks/notify.sh"
#     on_failure   = "../hooks/notify.sh"
#
# Usage: notify.sh [TEXT...]
#   TEXT is appended to the message (e.g. a release name).
#
# The message: "zdm: PLAN EVENT (PHASE -> NEXT) on DATABASE by USER@HOST[: TEXT]"
# built from ZDM_PLAN, ZDM_EVENT, ZDM_PHASE, ZDM_NEXT_PHASE and
# ZDM_DATABASE_URL (which zdm hands over without its password).
#
# Environment:
#   NOTIFY_URL      POST {"text": MESSAGE} there with curl (Slack, Mattermost
#                   and Rocket.Chat incoming webhooks take that body)
#   NOTIFY_LOG      else append "TIME MESSAGE" to this file
#   (neither)       else print the message on stdout (zdm logs it and keeps
#                   it in history)
#   NOTIFY_STRICT   1: a failed POST fails the hook (exit 1).  Default 0: it
#                   warns and exits 0, since a failing before_* hook would
#                   stop the migration over a chat outage.
#   NOTIFY_TIMEOUT  seconds for the POST (default 10)
set -u

me=notify
msg="zdm: ${ZDM_PLAN:-?} ${ZDM_EVENT:-event}"
if [ -n "${ZDM_PHASE:-}" ]; then
    if [ -n "${ZDM_NEXT_PHASE:-}" ] && [ "${ZDM_NEXT_PHASE}" != "$ZDM_PHASE" ]; then
        msg="$msg ($ZDM_PHASE -> $ZDM_NEXT_PHASE)"
    else
        msg="$msg ($ZDM_PHASE)"
    fi
fi
[ -n "${ZDM_DATABASE_URL:-}" ] && msg="$msg on $ZDM_DATABASE_URL"
msg="$msg by $(id -un 2>/dev/null || echo '?')@$(hostname 2>/dev/null || uname -n)"
[ $# -gt 0 ] && msg="$msg: $*"
# one line, whatever the arguments held
msg=$(printf '%s' "$msg" | tr '\n\r\t' '   ')

if [ -n "${NOTIFY_URL:-}" ]; then
    # JSON string: escape backslashes and quotes; control characters are gone.
    esc=$(printf '%s' "$msg" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
    if out=$(curl -sS --fail --max-time "${NOTIFY_TIMEOUT:-10}" -X POST \
        -H 'Content-Type: application/json' --data-binary "{\"text\": \"$esc\"}" \
        "$NOTIFY_URL" 2>&1); then
        echo "$me: sent: $msg"
        exit 0
    fi
    echo "$me: could not post to the webhook: $out"
    echo "$me: message was: $msg"
    [ "${NOTIFY_STRICT:-0}" = 1 ] && exit 1
    exit 0
fi
if [ -n "${NOTIFY_LOG:-}" ]; then
    if printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$msg" >>"$NOTIFY_LOG"; then
        echo "$me: logged to $NOTIFY_LOG: $msg"
        exit 0
    fi
    echo "$me: cannot append to $NOTIFY_LOG; message was: $msg"
    [ "${NOTIFY_STRICT:-0}" = 1 ] && exit 1
    exit 0
fi
echo "$msg"
