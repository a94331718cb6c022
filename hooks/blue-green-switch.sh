#!/bin/sh
# blue-green-switch.sh -- point nginx at the blue or the green application
# pool, safely: the zdm cutover hook (and, run with "blue", the way back).
#
# Usage:
#   blue-green-switch.sh green|blue     switch to that pool
#   blue-green-switch.sh status         print the pool the include points at
#
# What it does, in order:
#   1. writes a new upstream include file (an "upstream NAME { server ...; }"
#      block for the chosen pool) next to the old one, then renames it into
#      place; the old file is kept aside;
#   2. checks the whole configuration with "nginx -t";
#   3. reloads nginx ("nginx -s reload", same -c/-p as the test);
#   4. when NGINX_HEALTH_URL is set, fetches it until NGINX_HEALTH_STREAK
#      answers in a row contain NGINX_HEALTH_EXPECT (default: the pool's
#      name, e.g. from a response header "X-Backend: green");
#   5. waits until nginx's old worker processes have exited, so no request
#      reaches the old pool once the hook returns;
#   6. if any step fails: puts the old include back, reloads nginx again if
#      it had been reloaded, and exits 1.  nginx then serves as before.
# Two runs at once are serialized with flock(1) when it is installed.
#
# The include is meant to be included at http level by the site config
# (deploy/nginx/zdm-bluegreen.conf shows one):
#     include /etc/nginx/conf.d/zdm-upstream.inc;
#     server { location / { proxy_pass http://zdm_app; } }
#
# Environment:
#   NGINX_BLUE, NGINX_GREEN  the pools: host:port, several separated by
#                            spaces or commas (only the target's is needed)
#   NGINX_UPSTREAM_FILE      default /etc/nginx/conf.d/zdm-upstream.inc
#   NGINX_UPSTREAM_NAME      the upstream's name, default zdm_app
#   NGINX_BIN                default nginx
#   NGINX_CONF               nginx -c FILE (default: nginx's own default)
#   NGINX_PREFIX             nginx -p DIR (default: none)
#   NGINX_OPTS               more words for every nginx call, e.g.
#                            "-e /var/log/nginx/error.log" (no quoting)
#   NGINX_HEALTH_URL         verify the switch through nginx (optional)
#   NGINX_HEALTH_EXPECT      text the answer (headers + body) must contain,
#                            case-insensitive; default: the pool's name
#   NGINX_HEALTH_TRIES       default 20;  NGINX_HEALTH_DELAY default 0.5 (s)
#   NGINX_HEALTH_STREAK      answers in a row that must match, default 3
#   NGINX_DRAIN_TIMEOUT      seconds to wait for the old workers to exit
#                            (they still serve the old pool), default 30
# As a zdm hook it also sees ZDM_PLAN, ZDM_EVENT, ... (used in messages).
#
# Exit status: 0 switched (and verified), 1 failed and rolled back,
# 2 usage or configuration error (nothing was touched).
set -u

me=blue-green-switch
say() { printf '%s: %s\n' "$me" "$*"; }
die_usage() { say "$*" >&2; exit 2; }

file=${NGINX_UPSTREAM_FILE:-/etc/nginx/conf.d/zdm-upstream.inc}
name=${NGINX_UPSTREAM_NAME:-zdm_app}
nginx_bin=${NGINX_BIN:-nginx}

# The color the include currently points at ("" when unknown).
active_color() {
    [ -f "$file" ] || return 0
    sed -n 's/^# zdm-active-pool: \([a-z]*\).*/\1/p' "$file" | head -n 1
}

[ $# -eq 1 ] || die_usage "usage: $0 green|blue|status"
color=$1
case $color in
status)
    c=$(active_color)
    if [ -n "$c" ]; then echo "$c"; exit 0; fi
    say "$file does not say which pool is active" >&2
    exit 1
    ;;
blue) pool=${NGINX_BLUE:-} ;;
green) pool=${NGINX_GREEN:-} ;;
*) die_usage "unknown pool \"$color\": use green or blue (or status)" ;;
esac
[ -n "$pool" ] || die_usage "the $color pool is not set: export NGINX_$(echo "$color" | tr '[:lower:]' '[:upper:]')=host:port"
case $name in
*[!A-Za-z0-9_]* | "") die_usage "NGINX_UPSTREAM_NAME=\"$name\": letters, digits and _ only" ;;
esac

# nginx with the same -c/-p/options every time.
run_nginx() {
    # shellcheck disable=SC2086  # NGINX_OPTS is a list of words
    "$nginx_bin" ${NGINX_PREFIX:+-p "$NGINX_PREFIX"} ${NGINX_CONF:+-c "$NGINX_CONF"} ${NGINX_OPTS:-} "$@"
}

# The server lines; every entry must look like host:port or [v6]:port.
servers=
for s in $(printf '%s' "$pool" | tr ',' ' '); do
    case $s in
    *:*[!0-9]* | *: | :*) bad=1 ;;
    *:*) bad=0 ;;
    *) bad=1 ;;
    esac
    case $s in \[*\]:[0-9]*) bad=0 ;; esac
    case $s in *[\;\{\}\"\'\ ]*) bad=1 ;; esac
    [ "$bad" = 0 ] || die_usage "pool entry \"$s\" of $color is not host:port"
    servers="$servers    server $s;
"
done
[ -n "$servers" ] || die_usage "the $color pool is empty"

dir=$(dirname "$file")
[ -d "$dir" ] || die_usage "directory $dir (of NGINX_UPSTREAM_FILE) does not exist"
command -v "$nginx_bin" >/dev/null 2>&1 || die_usage "nginx not found: $nginx_bin (set NGINX_BIN)"

# One switch at a time.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$file.lock" || die_usage "cannot create $file.lock"
    flock -w 60 9 || { say "another switch holds $file.lock for more than 60s" >&2; exit 1; }
fi

prev=$(active_color)
say "switching ${ZDM_PLAN:+plan $ZDM_PLAN ($ZDM_EVENT): }upstream $name from ${prev:-?} to $color ($pool)"

saved="$file.zdm-prev"
had_old=0
if [ -f "$file" ]; then
    cp -p "$file" "$saved" || { say "cannot keep a copy of $file" >&2; exit 1; }
    had_old=1
fi
reloaded=0

restore() {
    say "FAILED: $*; restoring the previous upstream (${prev:-none})" >&2
    if [ "$had_old" = 1 ]; then
        mv -f "$saved" "$file"
    else
        rm -f "$file"
    fi
    if [ "$reloaded" = 1 ]; then
        if run_nginx -t >/dev/null 2>&1 && run_nginx -s reload; then
            say "nginx reloaded with the previous upstream" >&2
        else
            say "nginx could NOT be reloaded with the previous upstream: check it by hand now" >&2
        fi
    fi
    exit 1
}

tmp="$file.zdm-new.$$"
{
    echo "# zdm-active-pool: $color"
    echo "# written by hooks/blue-green-switch.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ)${ZDM_PLAN:+ for $ZDM_PLAN ($ZDM_EVENT)}"
    echo "upstream $name {"
    printf '%s' "$servers"
    echo "}"
} >"$tmp" || { rm -f "$tmp"; say "cannot write $tmp" >&2; exit 1; }
chmod 0644 "$tmp"
mv -f "$tmp" "$file" || { rm -f "$tmp"; restore "cannot replace $file"; }

if ! out=$(run_nginx -t 2>&1); then
    printf '%s\n' "$out" >&2
    restore "nginx -t rejected the configuration"
fi
# nginx's old workers keep serving (the old pool) until they notice the
# reload; remember them so the switch is only reported once they are gone.
old_workers=
if command -v pgrep >/dev/null 2>&1; then
    old_workers=$(pgrep -f 'nginx: worker process' | tr '\n' ' ')
fi
if ! out=$(run_nginx -s reload 2>&1); then
    printf '%s\n' "$out" >&2
    reloaded=1 # it may have half-worked: reload the old file to be sure
    restore "nginx -s reload failed"
fi
reloaded=1

# Fetches URL with headers; prints the answer, fails on no/5xx answer.
fetch() {
    if command -v curl >/dev/null 2>&1; then
        curl -sS -i --max-time 5 -H 'Connection: close' "$1"
    else
        python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print("HTTP %d" % r.status); print(r.headers); print(r.read().decode("utf-8", "replace"))
except urllib.error.HTTPError as e:
    print("HTTP %d" % e.code); print(e.headers); sys.exit(22)
except Exception as e:
    print(e, file=sys.stderr); sys.exit(7)
EOF
    fi
}

if [ -n "${NGINX_HEALTH_URL:-}" ]; then
    expect=${NGINX_HEALTH_EXPECT:-$color}
    tries=${NGINX_HEALTH_TRIES:-20}
    delay=${NGINX_HEALTH_DELAY:-0.5}
    streak=${NGINX_HEALTH_STREAK:-3}
    got=0 n=0 last=
    while [ "$n" -lt "$tries" ]; do
        n=$((n + 1))
        if last=$(fetch "$NGINX_HEALTH_URL" 2>&1) &&
            printf '%s\n' "$last" | head -n 1 | grep -q ' 2[0-9][0-9]' &&
            printf '%s\n' "$last" | grep -qiF -- "$expect"; then
            got=$((got + 1))
            [ "$got" -ge "$streak" ] && break
            continue # the next answer at once: a streak, not a sample
        fi
        got=0
        sleep "$delay"
    done
    if [ "$got" -lt "$streak" ]; then
        printf '%s\n' "$last" | head -n 15 | sed 's/^/  | /' >&2
        restore "$NGINX_HEALTH_URL did not answer with \"$expect\" $streak times in a row ($n tries)"
    fi
    say "verified: $NGINX_HEALTH_URL answered with \"$expect\" $streak times in a row"
fi

# Wait for the old workers to exit: until then a new connection may still
# reach one of them and be served by the old pool.  A timeout only warns
# (another nginx on the host would keep its workers).
if [ -n "$old_workers" ]; then
    waited=0 limit=$(( ${NGINX_DRAIN_TIMEOUT:-30} * 10 ))
    while :; do
        alive=
        for pid in $old_workers; do
            kill -0 "$pid" 2>/dev/null && alive="$alive $pid"
        done
        [ -z "$alive" ] && break
        if [ "$waited" -ge "$limit" ]; then
            say "warning: old nginx workers$alive still running after ${NGINX_DRAIN_TIMEOUT:-30}s" >&2
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
fi

rm -f "$saved"
say "done: upstream $name now points at $color"
exit 0
