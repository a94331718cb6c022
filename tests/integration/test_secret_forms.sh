#!/usr/bin/env bash
# test_secret_forms.sh -- a property test of password handling.  URLs and
# conninfo strings are generated (seeded, so a failure can be replayed with
# SECRET_SEED=N) in every form libpq accepts -- user-info, ?password=,
# ?sslpassword=, a %-encoded key, postgres:// and postgresql://, conninfo
# with quoting, escapes and spaces around "=" -- and in forms it refuses or
# misreads (upper-case scheme, "postgresql:" without "//", leading space,
# wrapped in quotes, a word without "=", an open quote).  Every password
# holds the marker MkR7q, often between characters that must be escaped.
# For each string:
#   * accepted forms: status, history --json, and a hook (advance
#     --hooks-only) that records its environment and connects with
#     $ZDM_DATABASE_URL: the hook must reach the database (libpq accepts
#     the password-free URL) and see no password;
#   * forms pointing at a database that does not exist: the error;
#   * an unescaped "@" in the password, which libpq quotes as part of a
#     host name in its error: the error;
#   * refused forms: exit 2, and nothing quoted.
# The hook also prints the password (read from a file): its output, kept
# in history, must not keep it.
# Then, for some forms, a backfill worker with --listen: /status and
# /metrics bodies, and /proc/PID/cmdline while it runs.
# Nowhere -- output, log line, history row, hook environment, HTTP body,
# process arguments, server log -- may the marker or a password appear.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init secret_forms
if ! t_pg_available; then
    echo "secret_forms: no PostgreSQL server binaries: skipping" >&2
    exit 77
fi
t_pg_start

MARK=MkR7q
SEED=${SECRET_SEED:-1610}
N=${SECRET_CASES:-48}
t_note "seed $SEED, $N generated strings (SECRET_SEED=$SEED to replay)"

pg_psql -d postgres -c "CREATE ROLE zdm_app LOGIN PASSWORD 'unused'" -c "CREATE DATABASE secforms OWNER zdm_app"
T_DIALECT=pg
T_PG_URL="postgresql:///secforms?host=$PGHOST&user=zdm_app"

# ---- the generator: one case per line, TAB-separated:
#      kind (ok | nodb | refused), the string, the passwords as written
#      and as decoded (space-separated list is unsafe: they are joined by \x1f)
python3 - "$SEED" "$N" "$PGHOST" "$MARK" >"$T_DIR/cases.tsv" <<'PY'
import random, sys, urllib.parse
seed, n, host, mark = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rnd = random.Random(seed)
SPECIAL = "@:/?#&=%+ '\"\\$;,[]{}!*é"
def password():
    pre = "".join(rnd.choice("abcXYZ019" + SPECIAL) for _ in range(rnd.randint(0, 4)))
    post = "".join(rnd.choice("abcXYZ019" + SPECIAL) for _ in range(rnd.randint(0, 4)))
    return pre + mark + post
def pct(s, all_=False):
    out = ""
    for ch in s:
        if all_ or ch in SPECIAL or rnd.random() < 0.2:
            out += "".join("%%%02X" % b for b in ch.encode())
        else:
            out += ch
    return out
def cq(v):  # a conninfo value, quoted when it must be (or at random)
    if rnd.random() < 0.5 or any(c in v for c in " '\\\"=") or v == "":
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return v
def hostq():
    return urllib.parse.quote(host, safe="")
def uri(db, pw, pw2):
    scheme = rnd.choice(["postgresql://", "postgres://"])
    form = rnd.randrange(4)
    opts = [("host", hostq())]
    if rnd.random() < 0.5:
        opts.append(("application_name", "x"))
    written = []
    if form == 0:
        w = pct(pw); written.append(w)
        base = f"{scheme}zdm_app:{w}@/{db}"
    else:
        base = f"{scheme}zdm_app@/{db}"
        w = pct(pw); written.append(w)
        key = ["password", "pass%77ord", "%70assword"][form - 1] if form <= 3 else "password"
        opts.insert(rnd.randrange(len(opts) + 1), (key, w))
    if rnd.random() < 0.4:
        w2 = pct(pw2); written.append(w2)
        opts.insert(rnd.randrange(len(opts) + 1), ("sslpassword", w2))
    return base + "?" + "&".join(f"{k}={v}" for k, v in opts), written
def conninfo(db, pw, pw2):
    pairs = [("host", host), ("user", "zdm_app"), ("dbname", db)]
    written = []
    v = cq(pw); written.append(v)
    pairs.insert(rnd.randrange(len(pairs) + 1), ("password", v))
    if rnd.random() < 0.4:
        v2 = cq(pw2); written.append(v2)
        pairs.insert(rnd.randrange(len(pairs) + 1), ("sslpassword", v2))
    eq = lambda: rnd.choice(["=", " = ", "= ", " ="])
    return " ".join(f"{k}{eq()}{v}" for k, v in pairs), written
def refused(pw):
    w = pct(pw)
    good = f"postgresql://zdm_app:{w}@/secforms?host={hostq()}"
    forms = [
        good.replace("postgresql://", rnd.choice(["POSTGRESQL://", "Postgresql://", "POSTGRES://"]), 1),
        good.replace("postgresql://", "postgresql:", 1),
        good.replace("postgresql://", "postgresql//", 1),
        " " + good, good + " ", '"' + good + '"', "'" + good + "'",
        f"host={host} dbname=secforms {pw}",
        f"host={host} dbname=secforms password='{pw}",
        f"mysql://zdm_app:{w}@h/db",
    ]
    return rnd.choice(forms), [w, pw]
for i in range(n):
    pw, pw2 = password(), password()
    r = rnd.random()
    if r < 0.1:
        # An unescaped "@" in the password: libpq ends the user-info at the
        # first one and quotes the rest as a host name it cannot resolve.
        pre = "".join(rnd.choice("abcXYZ019") for _ in range(rnd.randint(1, 4)))
        pw = pre + "@" + mark + rnd.choice(["", "x", "@y"])
        s = f"postgresql://zdm_app:{pw}@localhost:1/secforms"
        written = [pw]; kind = "badhost"
    elif r < 0.25:
        s, written = refused(pw); kind = "refused"
    else:
        kind = "ok" if r < 0.8 else "nodb"
        db = "secforms" if kind == "ok" else "no_such_db"
        s, written = (uri if rnd.random() < 0.55 else conninfo)(db, pw, pw2)
    secrets = set(written) | {pw, pw2, mark}
    secrets = [x for x in secrets if len(x) >= 4 and mark in urllib.parse.unquote(x)] + [mark]
    print(kind + "\t" + s + "\t" + "\x1f".join(sorted(set(secrets))) + "\t" + pw)
PY
t_cmp "cases generated" "$(wc -l <"$T_DIR/cases.tsv")" -eq "$N"

# A hook that records its environment and what psql sees through it.
cat >"$T_DIR/hook.sh" <<EOF
#!/bin/sh
got=\$(psql -X -qAt -d "\$ZDM_DATABASE_URL" -c 'SELECT current_database()' 2>&1)
{ echo "=== hook"; env; echo "psql: \$got"; } >>"$T_DIR/hook.log"
printf '%s\n' "\$got" >"$T_DIR/hook.db"
echo "a hook that prints the password:"; cat "$T_DIR/pw.txt"
EOF
chmod +x "$T_DIR/hook.sh"
: >"$T_DIR/pw.txt"
plans_empty
cat >"$T_PLANS/0001_t.toml" <<EOF
[[expand.steps]]
sql = "CREATE TABLE t1 (id integer PRIMARY KEY)"
down = "DROP TABLE t1"
[hooks]
after_expand = "$T_DIR/hook.sh"
EOF
cat >"$T_PLANS/0002_b.toml" <<'EOF'
[[expand.steps]]
op = "add_column"
table = "t"
column = "b"
type = "integer"
up = "a * 2"
EOF
T_DB=$T_PG_URL
zdm_run advance 0001_t
t_rc "setup: expand 0001_t" 0
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer); INSERT INTO t SELECT g, g FROM generate_series(1, 50) g"
zdm_run advance 0002_b
t_rc "setup: expand 0002_b" 0
zdm_run pause 0002_b
t_rc "setup: pause 0002_b (the worker below waits, serving /status)" 0

# ---- every generated string
declare -a OK_URLS=()
i=0
while IFS=$'\t' read -r kind url secrets pw; do
    i=$((i + 1))
    T_DB=$url
    case $kind in
    ok)
        OK_URLS+=("$url")
        zdm_run -v status
        t_rc "case $i ($kind): status" 0
        zdm_run -v --json history
        t_rc "case $i: history --json" 0
        rm -f "$T_DIR/hook.db"
        printf '%s\n' "$pw" >"$T_DIR/pw.txt" # the hook prints it: history must not keep it
        zdm_run -v advance 0001_t --hooks-only
        t_rc "case $i: the hook runs" 0
        t_eq "case $i: the hook connects with \$ZDM_DATABASE_URL" secforms "$(cat "$T_DIR/hook.db" 2>/dev/null)" ||
            t_note "case $i: $(tail -1 "$T_DIR/hook.log")"
        ;;
    nodb)
        zdm_run -v status
        t_rc "case $i ($kind): status on a missing database" 1
        t_has "case $i: the error says why" 'does not exist' "$ZERR"
        ;;
    badhost)
        zdm_run -v status
        t_rc "case $i ($kind): status on a host name libpq cannot resolve" 1
        t_has "case $i: the error names the problem" "could not translate host name" "$ZERR"
        ;;
    refused)
        zdm_run -v status
        t_rc "case $i ($kind): refused" 2
        t_has "case $i: described, not quoted" "not shown" "$ZERR"
        ;;
    esac
    printf '%s\n' "$secrets" | tr '\037' '\n' >>"$T_DIR/secrets.txt"
done <"$T_DIR/cases.tsv"
t_cmp "accepted forms among the cases" "${#OK_URLS[@]}" -ge 10

# ---- a worker with --listen, for a few accepted forms
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for k in 0 1 2 3; do
    url=${OK_URLS[$((k * ${#OK_URLS[@]} / 4))]}
    opt=(--db "$url")
    [ "$k" = 1 ] && opt=("--db=$url")
    "$ZDM" "${opt[@]}" --plans "$T_PLANS" backfill 0002_b --listen "127.0.0.1:$port" \
        >"$T_DIR/worker.out" 2>"$T_DIR/worker.err" &
    wpid=$!
    T_BG_PIDS+=("$wpid")
    t_wait_for "worker $k serves /status" 20 curl -fsS -o /dev/null "http://127.0.0.1:$port/status" || break
    curl -fsS "http://127.0.0.1:$port/status" >>"$T_DIR/http.txt"
    curl -fsS "http://127.0.0.1:$port/metrics" >>"$T_DIR/http.txt"
    tr '\0' ' ' <"/proc/$wpid/cmdline" >>"$T_DIR/cmdline.txt"
    echo >>"$T_DIR/cmdline.txt"
    kill -TERM "$wpid"
    t_wait_exit "$wpid" 30
    t_eq "worker $k: stopped by SIGTERM" 4 "$WAIT_RC"
    cat "$T_DIR/worker.out" "$T_DIR/worker.err" >>"$T_DIR/all-output.log"
done
t_has "/status answered" '"plan": "0002_b"' "$(cat "$T_DIR/http.txt")"
t_has "the process arguments still name the database, redacted" "--db" "$(cat "$T_DIR/cmdline.txt")"

# ---- the property
T_DB=$T_PG_URL
history=$(db_sql "SELECT string_agg(t::text, E'\n') FROM zdm.history t")
t_cmp "history rows" "$(grep -c . <<<"$history")" -ge "${#OK_URLS[@]}"
hooklog=$(cat "$T_DIR/hook.log")
t_has "hook environments recorded" "ZDM_DATABASE_URL=" "$hooklog"
sort -u "$T_DIR/secrets.txt" -o "$T_DIR/secrets.txt"
leaks=0
while IFS= read -r sec; do
    [ -n "$sec" ] || continue
    for where in all-output.log hook.log http.txt cmdline.txt; do
        if grep -qF -- "$sec" "$T_DIR/$where"; then
            t_note "\"$sec\" found in $where: $(grep -F -- "$sec" "$T_DIR/$where" | head -2)"
            leaks=$((leaks + 1))
        fi
    done
    if grep -qF -- "$sec" <<<"$history"; then
        t_note "\"$sec\" found in a history row"
        leaks=$((leaks + 1))
    fi
    if pg_log | grep -qF -- "$sec"; then
        t_note "\"$sec\" found in the server log"
        leaks=$((leaks + 1))
    fi
done <"$T_DIR/secrets.txt"
t_eq "no password or marker anywhere" 0 "$leaks"
t_has "the redacted form is what was printed" "*****" "$(cat "$T_DIR/all-output.log")"

t_finish
