#!/usr/bin/env bash
# test_deploy.sh -- the deployment files in deploy/, checked as an operator
# would find them wrong:
#  * every Kubernetes YAML parses; every volume, Secret key, ConfigMap and
#    PersistentVolumeClaim that a pod refers to is defined (zdm-plans is
#    created from the plans directory); both pods mount zdm.toml beside the
#    plans and the CA that the database URL's sslrootcert names; no
#    service-account token; the Job fails at once on exits 2, 3 and 5,
#    does not count 4, retries 1; its endpoint is not on port 9187, is
#    probed, and only Prometheus may reach it (NetworkPolicy);
#  * the hook paths of deploy/zdm.toml.example exist where the image puts
#    the hooks, and zdm runs them from a project laid out like /srv/zdm;
#  * systemd: systemd-analyze verify finds nothing; the worker unit never
#    gives up on a database that is down and does not restart on 2, 3, 5;
#  * TLS: sslmode=verify-full as the examples write it (sslrootcert= or
#    PGSSLROOTCERT) works with this libpq against a real server with a
#    certificate from a private CA, for zdm and for its hooks; without a CA
#    (the old examples) it fails.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init deploy
PY=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && "/usr/bin/python3" -c 'import yaml' 2>/dev/null && PY=/usr/bin/python3

# checks_from OUTPUT: one assertion per "ok NAME" / "FAIL NAME: why" line.
checks_from() {
    local line
    while IFS= read -r line; do
        case $line in
        "ok "*) t_ok ;;
        "FAIL "*) T_CHECKS=$((T_CHECKS + 1)); _t_fail "${line#FAIL }" ;;
        *) T_CHECKS=$((T_CHECKS + 1)); _t_fail "unexpected output: $line" ;;
        esac
    done <<<"$1"
}

# ---------------------------------------------------------------------------
t_section "Kubernetes YAML, cross-references, Containerfile, units (static)"
if [ -n "$PY" ] && "$PY" -c 'import yaml' 2>/dev/null; then
    out=$("$PY" "$ZDM_SRC/tests/integration/test_deploy.py" "$ZDM_SRC" 2>&1)
    t_eq "test_deploy.py ran" 0 $?
    checks_from "$out"
    t_match "test_deploy.py checked enough" '^[4-9][0-9]|[1-9][0-9]{2,}$' "$(grep -c '^ok ' <<<"$out")"
else
    T_SKIPPED="$T_SKIPPED k8s-yaml(no python3-yaml)"
fi

# ---------------------------------------------------------------------------
t_section "systemd-analyze verify"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants the ExecStart binary to exist: point it at this build.
    mkdir -p "$T_DIR/units"
    for u in "$ZDM_SRC"/deploy/systemd/zdm-*.service "$ZDM_SRC"/deploy/systemd/zdm-*.timer; do
        sed "s|/usr/local/bin/zdm|$ZDM|" "$u" >"$T_DIR/units/$(basename "$u")"
    done
    cp "$T_DIR/units/zdm-backfill@.service" "$T_DIR/units/zdm-backfill@0007_event_project_slug.service"
    out=$(cd "$T_DIR/units" && systemd-analyze verify ./zdm-backfill@0007_event_project_slug.service \
        ./zdm-run-due.service ./zdm-run-due.timer 2>&1)
    t_eq "systemd-analyze verify: exit 0" 0 $?
    t_eq "systemd-analyze verify: no complaint" "" "$out"
    # The back-off drop-in needs systemd 254 (RestartSteps).
    ver=$(systemctl --version 2>/dev/null | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
    if [ -n "$ver" ] && [ "$ver" -ge 254 ]; then
        mkdir -p "$T_DIR/units/zdm-backfill@0007_event_project_slug.service.d"
        cp "$ZDM_SRC/deploy/systemd/zdm-backfill@.service.d/backoff.conf" \
            "$T_DIR/units/zdm-backfill@0007_event_project_slug.service.d/"
        out=$(cd "$T_DIR/units" && SYSTEMD_UNIT_PATH="$T_DIR/units:" systemd-analyze verify \
            ./zdm-backfill@0007_event_project_slug.service 2>&1)
        t_eq "systemd-analyze verify with backoff.conf: no complaint" "" "$out"
    else
        t_note "systemd ${ver:-?} < 254: backoff.conf (RestartSteps) not verified"
        t_lacks "the unit itself has no systemd-254-only keys" "RestartSteps" \
            "$(grep -v '^#' "$ZDM_SRC/deploy/systemd/zdm-backfill@.service")"
    fi
else
    T_SKIPPED="$T_SKIPPED systemd-analyze"
fi
for f in "$ZDM_SRC"/hooks/*.sh; do
    sh -n "$f"
    t_eq "sh -n $(basename "$f")" 0 $?
    t_eq "$(basename "$f") is executable" yes "$([ -x "$f" ] && echo yes || echo no)"
    t_match "$(basename "$f") starts with a header comment" '^# [a-z-]+\.sh -- ' "$(sed -n 2p "$f")"
done

# ---------------------------------------------------------------------------
t_section "zdm runs the hooks of deploy/zdm.toml.example from a /srv/zdm layout"
# /srv/zdm as the image has it: plans/, zdm.toml, hooks -> the hooks.
S=$T_DIR/srv-zdm
mkdir -p "$S/plans"
ln -s "$ZDM_SRC/hooks" "$S/hooks"
cp "$ZDM_SRC/deploy/zdm.toml.example" "$S/zdm.toml"
T_PLANS=$S/plans T_DIALECT=sqlite T_SQLITE_FILE=$S/app.db T_DB=sqlite:$S/app.db
plan_write p_deploy '[[expand.steps]]
sql  = "CREATE TABLE t_deploy (id integer PRIMARY KEY)"
down = "DROP TABLE t_deploy"
[[contract.steps]]
sql = "CREATE TABLE t_deploy_done (id integer)"'
export NOTIFY_LOG=$T_DIR/notify.log
for _ in 1 2 3 4; do zdm_run advance p_deploy --no-backup; done
unset NOTIFY_LOG
t_eq "the plan went through" complete "$(zdm_phase_of p_deploy)"
t_has "backup.sh ran as before_contract" "zdm takes its own online backup" \
    "$(zdm_run --json history p_deploy; jq -r '.history[] | select(.action == "hook before_contract") | .detail' <<<"$ZOUT")"
t_has "notify.sh ran as after_contract" "zdm: p_deploy after_contract" "$(cat "$T_DIR/notify.log" 2>/dev/null)"

# ---------------------------------------------------------------------------
if t_pg_available && command -v openssl >/dev/null 2>&1; then
    t_pg_start
    t_section "TLS: sslmode=verify-full with libpq $(pg_config --version 2>/dev/null | awk '{print $2}')"
    D=$_PG_DIR/data
    tls=$T_DIR/tls
    mkdir -p "$tls"
    (
        cd "$tls" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=zdm test CA" \
            -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
        printf 'subjectAltName=DNS:localhost\n' >san.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile san.ext -out server.crt
    ) >"$T_DIR/openssl.log" 2>&1
    t_eq "a CA and a server certificate for localhost" 0 $?
    cp "$tls/server.crt" "$tls/server.key" "$D/"
    chmod 0600 "$D/server.key"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$D/server.crt" "$D/server.key"
    chmod 0644 "$tls/ca.crt"
    chmod 0755 "$tls" "$T_DIR"
    port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    _pg_as_owner "$_PG_BIN/pg_ctl" -D "$D" -l "$_PG_DIR/server.log" -w -t 60 -m fast \
        -o "-p $port -k '$_PG_DIR' -c listen_addresses=127.0.0.1 -c ssl=on -c fsync=off" restart \
        >"$T_DIR/restart.log" 2>&1
    t_eq "the server restarts with ssl=on on 127.0.0.1:$port" 0 $?
    export PGPORT=$port
    pg_psql -d postgres -c "CREATE DATABASE tlsdb"
    # The URL exactly as zdm.env.example writes it, pointed at this server.
    ex=$(sed -n 's/^ZDM_DATABASE_URL=//p' "$ZDM_SRC/deploy/systemd/zdm.env.example")
    url=$(sed -e "s|zdm@db.internal:5432/app|postgres@localhost:$port/tlsdb|" \
        -e "s|sslrootcert=/etc/zdm/db-ca.crt|sslrootcert=$tls/ca.crt|" <<<"$ex")
    t_has "zdm.env.example's URL asks for verify-full" "sslmode=verify-full" "$url"
    t_has "the test's URL names the test CA" "sslrootcert=$tls/ca.crt" "$url"
    mkdir -p "$T_DIR/home"
    cat >"$T_DIR/sslrec.sh" <<EOF
#!/bin/sh
psql -X -qAt -d "\$ZDM_DATABASE_URL" -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' >"$T_DIR/hook-ssl" 2>&1
EOF
    chmod +x "$T_DIR/sslrec.sh"
    mkdir -p "$T_DIR/tlsplans"
    T_PLANS=$T_DIR/tlsplans
    plan_write p_tls "[[expand.steps]]
sql  = \"CREATE TABLE t_tls (id integer PRIMARY KEY)\"
down = \"DROP TABLE t_tls\"
[hooks]
before_expand = \"$T_DIR/sslrec.sh\""
    # Nothing from the test's environment may help libpq find a CA.
    env_tls() { env -u PGHOST -u PGPORT -u PGSSLROOTCERT HOME="$T_DIR/home" "$@"; }
    T_DB=$url
    out=$(env_tls "$ZDM" --db "$url" --plans "$T_PLANS" status 2>&1)
    t_eq "zdm status over verify-full with sslrootcert=" 0 $?
    out=$(env_tls "$ZDM" --db "$url" --plans "$T_PLANS" advance p_tls 2>&1)
    t_eq "zdm advance over verify-full (the hook too)" 0 $?
    t_eq "the hook's connection (ZDM_DATABASE_URL) used TLS" t "$(cat "$T_DIR/hook-ssl")"
    bare=$(sed 's/&sslrootcert=[^&]*//' <<<"$url")
    out=$(env_tls "$ZDM" --db "$bare" --plans "$T_PLANS" status 2>&1)
    t_ne "verify-full without a CA (the old examples): fails" 0 $?
    t_has "verify-full without a CA: libpq says why" "root.crt" "$out"
    out=$(env_tls env PGSSLROOTCERT="$tls/ca.crt" "$ZDM" --db "$bare" --plans "$T_PLANS" status 2>&1)
    t_eq "verify-full with PGSSLROOTCERT instead" 0 $?
    wrong=${url/localhost/127.0.0.1}
    out=$(env_tls "$ZDM" --db "$wrong" --plans "$T_PLANS" status 2>&1)
    t_ne "verify-full checks the host name (127.0.0.1 is not localhost)" 0 $?
    # The Secret's URL: the same form, with the CA at /etc/zdm/tls/ca.crt.
    k8s=$(sed -n 's/^  url: "\(.*\)"$/\1/p' "$ZDM_SRC/deploy/k8s/secret.example.yaml")
    kurl=$(sed -e "s|zdm@db.internal:5432/app|postgres@localhost:$port/tlsdb|" \
        -e "s|sslrootcert=/etc/zdm/tls/ca.crt|sslrootcert=$tls/ca.crt|" <<<"$k8s")
    out=$(env_tls "$ZDM" --db "$kurl" --plans "$T_PLANS" status 2>&1)
    t_eq "the Secret's URL form works too" "0 sslrootcert=$tls/ca.crt" "$? $(grep -o "sslrootcert=[^&]*" <<<"$kurl")"
else
    T_SKIPPED="$T_SKIPPED tls(no postgresql or openssl)"
fi

t_finish
