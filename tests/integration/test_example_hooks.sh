#!/usr/bin/env bash
# test_example_hooks.sh -- the example hooks in hooks/, run directly as zdm
# runs them (environment variables, no shell), against a local HTTP stub
# (tests/lib/hookstub.py) and stand-in pg_dump/pg_restore programs:
#  * notify.sh: the message names no database (host, database, user); any
#    text, control characters and bytes that are not UTF-8 included, gives
#    a JSON body the webhook accepts; the webhook's URL (its token) is never
#    in curl's argv; a message it cannot deliver (no answer, a 400, no curl,
#    an unwritable log) fails the hook unless NOTIFY_STRICT=0;
#  * smoke-check.sh (with curl, and with python3 alone): only a 2xx answer
#    of the URL itself passes (a 302 to an error page does not);
#    SMOKE_EXPECT matches the body, not the status line; without any HTTP
#    client it fails at once, saying so;
#  * backup.sh: BACKUP_KEEP removes only the plan's own dumps (plan p01
#    never touches p01-hotfix's, nor other files); a run killed by zdm's
#    hook timeout (SIGTERM to its process group) leaves no .part file, and
#    a .part left by a SIGKILL is removed by the plan's next backup.
# The real pg_dump run is in test_hooks.sh (PostgreSQL part).
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init example_hooks
HOOKS=$ZDM_SRC/hooks
PY=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
CURL=$(command -v curl || true)
if [ -z "$PY" ]; then
    echo "python3 is needed for the HTTP stub: skipping"
    exit 77
fi

REC=$T_DIR/posts.jsonl
: >"$REC"
"$PY" "$ZDM_SRC/tests/lib/hookstub.py" --port-file "$T_DIR/stub.port" --record "$REC" &
T_BG_PIDS+=("$!")
disown
t_wait_for "the HTTP stub" 10 "[ -s '$T_DIR/stub.port' ]"
BASE="http://127.0.0.1:$(cat "$T_DIR/stub.port")"

# A PATH with the basic tools only: no curl, no python3.
mkdir -p "$T_DIR/bare"
for tool in sh sed grep tail head cat sleep tr mktemp rm id hostname uname date iconv; do
    p=$(command -v "$tool") && ln -sf "$p" "$T_DIR/bare/$tool"
done

# ---------------------------------------------------------------------------
t_section "hooks/notify.sh"
export ZDM_PLAN=p1 ZDM_EVENT=on_failure ZDM_PHASE=cut_over ZDM_NEXT_PHASE=complete \
    ZDM_DATABASE_URL="postgresql://appuser@db1.internal:5432/proddb?sslmode=verify-full" ZDM_EXIT_CODE=3
out=$("$HOOKS/notify.sh" release 42 2>&1)
t_eq "stdout: exit 0" 0 $?
t_match "stdout: the message" "^zdm: p1 on_failure \(cut_over -> complete\), exit 3 by [^@ ]+@[^ ]+: release 42$" "$out"
for word in db1.internal proddb appuser 5432 postgresql; do
    t_lacks "the message names no database ($word)" "$word" "$out"
done
NOTIFY_LOG=$T_DIR/notify.log "$HOOKS/notify.sh" >/dev/null
t_match "NOTIFY_LOG gets a timestamped line" \
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z zdm: p1 on_failure" "$(cat "$T_DIR/notify.log")"
NOTIFY_LOG=$T_DIR/no-such-dir/notify.log "$HOOKS/notify.sh" >/dev/null 2>&1
t_eq "an unwritable NOTIFY_LOG fails the hook" 1 $?

if [ -n "$CURL" ]; then
    # A curl that records its argv, then runs the real one.
    cat >"$T_DIR/curl-spy" <<EOF2
#!/bin/sh
printf '%s\n' "\$*" >>"$T_DIR/curl-argv"
exec "$CURL" "\$@"
EOF2
    chmod +x "$T_DIR/curl-spy"
    : >"$T_DIR/curl-argv"
    : >"$REC"
    # Quotes, a backslash, a newline, a tab, ESC, SOH, DEL and a byte that
    # is not UTF-8; é is UTF-8 and stays.
    ZDM_EVENT=$(printf 'on_failure "q" \\ b\nnext\tx\033[31m\001\177\377 caf\303\251') \
        NOTIFY_CURL=$T_DIR/curl-spy NOTIFY_URL="$BASE/hook?token=S3CR3T-T0KEN" "$HOOKS/notify.sh" >/dev/null 2>"$T_DIR/err"
    t_eq "webhook: hostile text is delivered (exit 0)" 0 $?
    t_eq "webhook: the server accepted the JSON (200)" 200 "$(jq -r .status "$REC" | tail -n 1)"
    t_eq "webhook: the text, escaped and cleaned" \
        'zdm: p1 on_failure "q" \ b next x[31m café (cut_over -> complete), exit 3' \
        "$(tail -n 1 "$REC" | jq -r .body | jq -r .text | sed 's/ by .*//')"
    t_ne "webhook: curl was run" "" "$(cat "$T_DIR/curl-argv")"
    t_lacks "webhook: the token is not in curl's argv" "S3CR3T" "$(cat "$T_DIR/curl-argv")"
    t_lacks "webhook: the URL is not in curl's argv" "/hook" "$(cat "$T_DIR/curl-argv")"
    t_lacks "webhook: the token is not in what the hook printed" "S3CR3T" "$(cat "$T_DIR/err")"
    printf '%s/hook\n' "$BASE" >"$T_DIR/url-file"
    : >"$REC"
    NOTIFY_URL_FILE=$T_DIR/url-file "$HOOKS/notify.sh" >/dev/null 2>&1
    t_eq "NOTIFY_URL_FILE: delivered" "0 200" "$? $(jq -r .status "$REC")"
    out=$(NOTIFY_URL="$BASE/reject" "$HOOKS/notify.sh" 2>&1)
    t_eq "webhook answering 400: the hook fails" 1 $?
    t_has "webhook answering 400: says so" "HTTP 400" "$out"
    out=$(NOTIFY_URL="http://127.0.0.1:1/nothing" "$HOOKS/notify.sh" 2>&1)
    t_eq "dead webhook: the hook fails" 1 $?
    t_has "dead webhook: keeps the message in its output" "message was: zdm: p1" "$out"
    NOTIFY_STRICT=0 NOTIFY_URL="http://127.0.0.1:1/nothing" "$HOOKS/notify.sh" >/dev/null 2>&1
    t_eq "dead webhook with NOTIFY_STRICT=0: exit 0" 0 $?
else
    T_SKIPPED="$T_SKIPPED notify-webhook(no curl)"
fi
out=$(NOTIFY_CURL=$T_DIR/no-curl NOTIFY_URL="$BASE/hook" "$HOOKS/notify.sh" 2>&1)
t_eq "no curl: the hook fails" 1 $?
t_has "no curl: says so" "not found: install curl" "$out"
unset ZDM_PLAN ZDM_EVENT ZDM_PHASE ZDM_NEXT_PHASE ZDM_DATABASE_URL ZDM_EXIT_CODE

# ---------------------------------------------------------------------------
t_section "hooks/smoke-check.sh"
mkdir -p "$T_DIR/pyonly"
cp -P "$T_DIR"/bare/* "$T_DIR/pyonly/"
ln -sf "$PY" "$T_DIR/pyonly/python3"
for how in curl python3; do
    if [ "$how" = curl ]; then
        [ -n "$CURL" ] || { T_SKIPPED="$T_SKIPPED smoke-curl"; continue; }
        P=$PATH
    else
        P=$T_DIR/pyonly
    fi
    out=$(PATH=$P "$HOOKS/smoke-check.sh" "$BASE/ok" 3 0.1 2>&1)
    t_eq "$how: healthy URL" "0 smoke-check: $BASE/ok healthy (HTTP 200, try 1 of 3)" "$? $out"
    out=$(SMOKE_EXPECT=ok PATH=$P "$HOOKS/smoke-check.sh" "$BASE/ok" 2 0.1 2>&1)
    t_eq "$how: SMOKE_EXPECT found in the body" 0 $?
    out=$(SMOKE_EXPECT=ok PATH=$P "$HOOKS/smoke-check.sh" "$BASE/degraded" 2 0.1 2>&1)
    t_eq "$how: SMOKE_EXPECT=ok against \"200 OK\" + body \"degraded\" fails" 1 $?
    t_has "$how: says the body lacks it" 'the body lacks "ok"' "$out"
    out=$(PATH=$P "$HOOKS/smoke-check.sh" "$BASE/redirect" 2 0.1 2>&1)
    t_eq "$how: a 302 to a 500 page fails" 1 $?
    t_has "$how: says it was a redirect" "HTTP 302, a redirect" "$out"
    out=$(PATH=$P "$HOOKS/smoke-check.sh" "$BASE/broken" 3 0.1 2>&1)
    t_eq "$how: a 500 fails" 1 $?
    t_eq "$how: three tries, then the verdict" 4 "$(wc -l <<<"$out")"
    t_has "$how: the verdict" "NOT healthy after 3 tries" "$out"
    out=$(PATH=$P "$HOOKS/smoke-check.sh" "$BASE/missing" 1 2>&1)
    t_eq "$how: a 404 fails" 1 $?
    out=$(PATH=$P "$HOOKS/smoke-check.sh" "http://127.0.0.1:1/" 2 0.1 2>&1)
    t_eq "$how: nothing listening fails" 1 $?
done
out=$(PATH=$T_DIR/bare "$HOOKS/smoke-check.sh" "$BASE/ok" 5 1 2>&1)
t_eq "no curl, no python3: fails" 1 $?
t_has "no curl, no python3: says so at once" "neither curl nor python3 is installed" "$out"
t_eq "no curl, no python3: one line, no tries" 1 "$(wc -l <<<"$out")"
"$HOOKS/smoke-check.sh" >/dev/null 2>&1
t_eq "no URL is a usage error" 2 $?
"$HOOKS/smoke-check.sh" "$BASE/ok" many >/dev/null 2>&1
t_eq "tries must be a number" 2 $?

# ---------------------------------------------------------------------------
t_section "hooks/backup.sh: retention and partial files (stand-in pg_dump)"
# pg_dump stand-in: writes a small file to -f; with STUB_HANG set it
# writes half, says so in $STUB_HANG and waits to be killed.
cat >"$T_DIR/pg_dump" <<'EOF2'
#!/bin/sh
out=
while [ $# -gt 0 ]; do case $1 in -f) out=$2; shift ;; esac; shift; done
printf 'PGDMP-half' >"$out"
if [ -n "${STUB_HANG:-}" ]; then echo "$out" >"$STUB_HANG"; sleep 60; fi
printf -- '-rest' >>"$out"
EOF2
cat >"$T_DIR/pg_restore" <<'EOF2'
#!/bin/sh
printf ';\n; Archive\n;\n215; 1259 16390 TABLE public t postgres\n3350; 0 16390 TABLE DATA public t postgres\n'
EOF2
chmod +x "$T_DIR/pg_dump" "$T_DIR/pg_restore"
BK=$T_DIR/backups
mkdir -p "$BK"
export PG_DUMP=$T_DIR/pg_dump PG_RESTORE=$T_DIR/pg_restore BACKUP_DIR=$BK ZDM_DIALECT=postgresql \
    ZDM_DATABASE_URL=postgresql://zdm@db/app ZDM_EVENT=before_contract
for d in 20260101T000000Z 20260102T000000Z 20260103T000000Z 20260104T000000Z; do
    : >"$BK/p01-before_contract-$d.dump"
    : >"$BK/p01-hotfix-before_contract-$d.dump"
done
: >"$BK/p01-manual-notes.dump"                       # not a name the hook writes
: >"$BK/p01-before_contract-20250101T000000Z.dump.keep"
: >"$BK/p01-before_contract-20260105T000000Z.dump.part"  # left by a SIGKILL
: >"$BK/p01-hotfix-before_contract-20260105T000000Z.dump.part"
# The oldest by name is the newest by mtime: order by the name's stamp.
touch -d '2026-06-01' "$BK/p01-before_contract-20260101T000000Z.dump"
out=$(ZDM_PLAN=p01 BACKUP_KEEP=2 "$HOOKS/backup.sh" 2>&1)
t_eq "backup.sh: exit 0" 0 $?
# This run's dump is the one not seeded above (those are stamped January
# 2026): no date written into the test, so it passes on any day.
new=$(cd "$BK" && ls p01-before_contract-*.dump 2>/dev/null | grep -v '^p01-before_contract-202601')
t_ne "backup.sh: wrote this run's dump" "" "$new"
t_eq "backup.sh: kept the newest 2 of p01 (this one and 0104)" \
    "p01-before_contract-20260104T000000Z.dump $new" \
    "$(cd "$BK" && for f in p01-before_contract-*.dump; do echo "$f"; done | sort | tr '\n' ' ' | sed 's/ $//')"
t_eq "backup.sh: p01-hotfix's dumps are all there" 4 "$(ls "$BK"/p01-hotfix-before_contract-*.dump | wc -l)"
t_eq "backup.sh: files it did not write are there" "yes yes" \
    "$([ -f "$BK/p01-manual-notes.dump" ] && echo yes) $([ -f "$BK/p01-before_contract-20250101T000000Z.dump.keep" ] && echo yes)"
t_eq "backup.sh: p01's stale .part is gone" no "$([ -e "$BK/p01-before_contract-20260105T000000Z.dump.part" ] && echo yes || echo no)"
t_eq "backup.sh: p01-hotfix's .part is not p01's to remove" yes \
    "$([ -e "$BK/p01-hotfix-before_contract-20260105T000000Z.dump.part" ] && echo yes || echo no)"
t_has "backup.sh: says what it removed" "removed old backup $BK/p01-before_contract-20260103T000000Z.dump" "$out"

# Killed as zdm kills a hook past its timeout: SIGTERM to its group.
rm -f "$T_DIR/hang"
ZDM_PLAN=p02 STUB_HANG=$T_DIR/hang setsid "$HOOKS/backup.sh" >"$T_DIR/bk.out" 2>&1 &
bk=$!
t_wait_for "pg_dump writing" 10 "[ -s '$T_DIR/hang' ]"
kill -TERM -- "-$bk"
t_wait_exit "$bk" 10
t_ne "backup.sh killed: not a success" 0 "$WAIT_RC"
t_eq "backup.sh killed: no .part file left" "" "$(cd "$BK" && ls p02-* 2>/dev/null)"
out=$(ZDM_PLAN=p03 PG_DUMP=$T_DIR/no-pg_dump "$HOOKS/backup.sh" 2>&1)
t_eq "no pg_dump: fails" 1 $?
t_has "no pg_dump: says what to install" "not found (install postgresql-client)" "$out"
unset PG_DUMP PG_RESTORE BACKUP_DIR ZDM_DIALECT ZDM_DATABASE_URL ZDM_EVENT

t_finish
