#!/usr/bin/env bash
# test_pg_secrets.sh -- the password in a PostgreSQL URL never leaves zdm:
# a role with a password (pg_hba is trust, so it is not checked; the point
# is where the text goes) runs init, status, advance, rollback, stamp,
# history, check, unlock, a failing step and failed connections, with -v,
# from --db and from $ZDM_DATABASE_URL, as a URL (plain and percent-encoded)
# and as a conninfo.  "S3cretPW" must appear in no output, no log line, no
# row of zdm's tables and not in the server log.  The redacted form
# ("*****") must show where a URL is printed, so the check is not vacuous.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init pg_secrets
if ! t_pg_available; then
    echo "pg_secrets: no PostgreSQL server binaries: skipping" >&2
    exit 77
fi
t_pg_start

SECRET=S3cretPW
pg_psql -d postgres -c "CREATE ROLE zdm_app LOGIN PASSWORD '$SECRET'" \
    -c "CREATE DATABASE secrets OWNER zdm_app"
T_DIALECT=pg
T_PG_URL="postgresql:///secrets?host=$PGHOST&user=postgres"   # for our own queries
URL="postgresql://zdm_app:$SECRET@/secrets?host=$PGHOST"
URL_ENC="postgresql://zdm_app:S3cret%50W@/secrets?host=$PGHOST"   # %50 is P
CONNINFO="host=$PGHOST user=zdm_app password=$SECRET dbname=secrets"
T_DB=$URL
plans_copy 0001_baseline 0002_event_type
plan_write 0030_fails '
requires = ["0001_baseline"]
[[expand.steps]]
sql = "ALTER TABLE no_such_table ADD COLUMN x integer"
'

t_section "commands with the password in --db"
zdm_run -v init
t_rc "init" 0
t_has "init prints the URL, redacted" "postgresql://zdm_app:*****@/secrets" "$ZOUT"
t_eq "zdm's tables are owned by the URL's role" zdm_app \
    "$(db_sql "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'zdm'")"
zdm_run -v status
t_rc "status" 0
zdm_run -v --json status
t_rc "status --json" 0
zdm_complete 0001_baseline
zdm_run -v advance 0002_event_type
t_rc "advance 0002" 0
zdm_run -v rollback 0002_event_type
t_rc "rollback 0002" 0
zdm_run -v stamp 0002_event_type expanded
t_rc "stamp" 0
zdm_run -v --dry-run advance 0002_event_type
t_rc "advance --dry-run" 0
zdm_run -v advance 0030_fails
t_rc "a failing step" 1
t_has "the failure is reported" 'relation "no_such_table" does not exist' "$ZERR"
zdm_run -v unlock 0002_event_type
t_rc "unlock" 0
zdm_run -v check
t_rc "check" 3
zdm_run -v history
t_rc "history" 0
zdm_run -v --json history
t_rc "history --json" 0
t_cmp "history has rows" "$(jq '.history | length' <<<"$ZOUT")" -ge 8

t_section "the same from \$ZDM_DATABASE_URL, percent-encoded, and as a conninfo"
for url in "$URL" "$URL_ENC" "$CONNINFO"; do
    ZRC=0
    ZDM_DATABASE_URL=$url timeout -k 5 60 "$ZDM" -v --plans "$T_PLANS" status \
        >>"$T_DIR/all-output.log" 2>&1 || ZRC=$?
    t_eq "status with the URL from the environment (${url%%:*})" 0 "$ZRC"
    ZRC=0
    ZDM_DATABASE_URL=$url timeout -k 5 60 "$ZDM" -v --plans "$T_PLANS" advance 0030_fails \
        >>"$T_DIR/all-output.log" 2>&1 || ZRC=$?
    t_eq "a failing step with the URL from the environment" 1 "$ZRC"
done

t_section "failed connections"
for bad in "postgresql://zdm_app:$SECRET@/no_such_db?host=$PGHOST" \
           "postgresql://zdm_app:S3cret%50W@/no_such_db?host=$PGHOST" \
           "postgresql://zdm_app:$SECRET@/secrets?host=$T_DIR/no-server-here" \
           "postgresql://zdm_app:$SECRET@/secrets?host=$PGHOST&no_such_option=1" \
           "postgresql://zdm_app:$SECRET@[::1/secrets" \
           "host=$PGHOST user=zdm_app password=$SECRET dbname=no_such_db" \
           "host=$PGHOST user=zdm_app password='$SECRET dbname=secrets"; do
    T_DB=$bad
    zdm_run -v status
    t_ne "status on a bad URL fails" 0 "$ZRC"
    t_match "the error says what failed" "zdm: .*(postgresql|connect|invalid|missing|unterminated)" "$ZERR"
    zdm_run -v --json history
    t_ne "history on a bad URL fails" 0 "$ZRC"
done
T_DB="postgresql://zdm_app:$SECRET@/no_such_db?host=$PGHOST"
zdm_run status
t_rc "status on a missing database" 1
t_has "a connect error names the URL, redacted" "cannot connect to postgresql://zdm_app:*****@/no_such_db" "$ZERR"

T_DB=$URL

t_section "the password is nowhere"
all=$(cat "$T_DIR/all-output.log")
t_cmp "output collected" "${#all}" -gt 1000
t_lacks "no output or log line has the password" "$SECRET" "$all"
t_lacks "no output has the percent-encoded password" "S3cret%50W" "$all"
t_has "the redacted form is what was printed" "*****" "$all"
tables=$(db_sql "SELECT string_agg(t::text, E'\n') FROM zdm.history t" ;
         db_sql "SELECT string_agg(t::text, E'\n') FROM zdm.plans t" ;
         db_sql "SELECT string_agg(t::text, E'\n') FROM zdm.steps t" ;
         db_sql "SELECT string_agg(t::text, E'\n') FROM zdm.locks t" ;
         db_sql "SELECT string_agg(t::text, E'\n') FROM zdm.meta t")
t_cmp "zdm's tables have rows" "$(grep -c . <<<"$tables")" -ge 10
t_lacks "no row of zdm's tables has the password" "$SECRET" "$tables"
t_lacks "the server log does not have it either" "$SECRET" "$(pg_log)"

t_finish
