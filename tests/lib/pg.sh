# pg.sh -- a throw-away PostgreSQL server for integration tests (bash).
#
#   source "$ZDM_SRC/tests/lib/pg.sh"
#   pg_start            # initdb + start; exports PGHOST PGPORT PGUSER
#                       # PGDATABASE and ZDM_TEST_PG_URL
#   pg_psql -c '...'    # psql against it (no ~/.psqlrc, stops on error)
#   pg_log              # the server log
#   pg_stop             # also runs automatically on EXIT, INT and TERM
#
# Owns: one private server per test script, in a fresh temp dir, listening
# only on a unix socket in that dir (no TCP port to collide with other runs
# or a system server), with fsync off for speed (ZDM_PG_FSYNC=on: benchmarks).  The server and the dir
# are removed on exit even when the test fails; on a failing exit the tail
# of the server log is printed, since that is usually where the reason is.
#
# PostgreSQL refuses to run as root, and CI runs as root: then initdb and
# pg_ctl run as the "postgres" user (Debian's server package creates it).
# Without server binaries the script exits 77, which ctest reports as
# skipped (SKIP_RETURN_CODE 77).
#
# Note: the EXIT/INT/TERM traps are ours; a script that needs its own
# cleanup should call pg_stop from its own trap.

_PG_DIR=
_PG_BIN=
_PG_RUNNING=0
_PG_PORT=5432   # only names the socket file; no TCP listener

# The newest server install: pg_config's bindir when it has the server
# programs, else /usr/lib/postgresql/<newest>/bin, else PATH.
_pg_find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null) || d=
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"; return 0
        fi
    fi
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        echo "$d"; return 0
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

# Runs a server program as the owner of the data directory.
_pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        # cd: postgres may not be able to read root's cwd (initdb warns).
        (cd "$_PG_DIR" && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_log() {
    if [ -n "$_PG_DIR" ] && [ -f "$_PG_DIR/server.log" ]; then
        cat "$_PG_DIR/server.log"
    fi
}

pg_psql() {
    "$_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

pg_stop() {
    if [ "$_PG_RUNNING" = 1 ]; then
        _pg_as_owner "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -m immediate -w stop \
            >/dev/null 2>&1 || true
        _PG_RUNNING=0
    fi
    if [ -n "$_PG_DIR" ] && [ -d "$_PG_DIR" ]; then
        rm -rf -- "$_PG_DIR"
    fi
    _PG_DIR=
}

_pg_on_exit() {
    local status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ -n "$_PG_DIR" ] &&
       [ -f "$_PG_DIR/server.log" ]; then
        echo "pg.sh: test failed (status $status); last lines of the server log:" >&2
        tail -n 40 "$_PG_DIR/server.log" >&2
    fi
    pg_stop
    exit "$status"
}

pg_start() {
    if [ -n "$_PG_DIR" ]; then
        echo "pg.sh: pg_start: a server is already running in $_PG_DIR" >&2
        return 1
    fi
    _PG_BIN=$(_pg_find_bindir) || {
        echo "pg.sh: no PostgreSQL server binaries (initdb, pg_ctl) found: skipping" >&2
        exit 77
    }
    if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
        echo "pg.sh: running as root and there is no 'postgres' user to run the server as: skipping" >&2
        exit 77
    fi

    # Unix socket paths are limited to ~107 bytes: keep the dir short.
    # As root, the dir must be reachable by postgres: a private TMPDIR may not be.
    local base=${TMPDIR:-/tmp}
    if [ "${#base}" -gt 60 ] || [ "$(id -u)" -eq 0 ]; then
        base=/tmp
    fi
    _PG_DIR=$(mktemp -d "$base/zdm-pg.XXXXXX") || return 1
    trap _pg_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    chmod 0755 "$_PG_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$_PG_DIR"
    fi

    if ! _pg_as_owner "$_PG_BIN/initdb" -D "$_PG_DIR/data" --auth=trust --nosync \
            -U postgres -E UTF8 --locale=C >"$_PG_DIR/initdb.log" 2>&1; then
        echo "pg.sh: initdb failed:" >&2
        cat "$_PG_DIR/initdb.log" >&2
        pg_stop
        return 1
    fi
    # The log file is created by pg_ctl, as the server's user.
    if ! _pg_as_owner "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -l "$_PG_DIR/server.log" \
            -w -t 60 -o "-p $_PG_PORT -k '$_PG_DIR' -c listen_addresses='' -c fsync=${ZDM_PG_FSYNC:-off} -c max_connections=50 -c max_prepared_transactions=0" \
            start >"$_PG_DIR/pg_ctl.log" 2>&1; then
        echo "pg.sh: the server did not start:" >&2
        cat "$_PG_DIR/pg_ctl.log" >&2
        pg_log >&2
        _PG_RUNNING=1   # it may be half up: stop it anyway
        pg_stop
        return 1
    fi
    _PG_RUNNING=1

    # Only what we set decides where tests connect.
    unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGOPTIONS PGPASSWORD PGPASSFILE \
          PGSSLMODE PGTARGETSESSIONATTRS PGAPPNAME
    export PGHOST="$_PG_DIR" PGPORT="$_PG_PORT" PGUSER=postgres PGDATABASE=postgres
    export ZDM_TEST_PG_URL="postgresql:///postgres?host=$_PG_DIR&user=postgres"
    # The URL must work on its own, not thanks to PG* in the environment.
    if ! env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE \
            "$_PG_BIN/psql" -X -qAt -d "$ZDM_TEST_PG_URL" -c 'SELECT 1' >/dev/null; then
        echo "pg.sh: cannot connect with ZDM_TEST_PG_URL=$ZDM_TEST_PG_URL" >&2
        pg_log >&2
        return 1
    fi
}
