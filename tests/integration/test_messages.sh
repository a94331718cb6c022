#!/usr/bin/env bash
# test_messages.sh -- long error messages with multibyte characters.  A
# step fails with a message longer than zdm's 2,048-byte limit, made of
# 2-, 3- and 4-byte characters at every alignment against the limit; a
# hook refuses an advance printing the same.  Each time the history row
# must be closed (failed / refused, never left "running"), its detail
# valid UTF-8 and present in `history --json`, on SQLite and PostgreSQL.
# Before messages were cut on a character boundary, PostgreSQL refused
# the history update ("invalid byte sequence for encoding UTF8") and the
# row stayed "running".
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init messages

run_case() {
    local d=$1 ch pad
    t_section "$d: step errors and hook output cut at the limit"
    db_new "$d" msgs
    plans_empty
    local n=0
    for ch in é € 😀; do
        for pad in 0 1 2 3; do
            n=$((n + 1))
            local id
            id=$(printf '%04d_m' "$n")
            local text
            text=$(printf 'x%.0s' $(seq 0 "$pad"))$(printf "$ch%.0s" $(seq 1 1100))
            if [ "$d" = pg ]; then
                printf '%s\n' '[[expand.steps]]' \
                    "sql = '''DO \$\$ BEGIN RAISE EXCEPTION '%', '$text'; END \$\$'''" \
                    "down = 'SELECT 1'" >"$T_PLANS/$id.toml"
            else
                printf '%s\n' '[[expand.steps]]' "sql = '''INSERT INTO \"$text\" VALUES (1)'''" \
                    "down = 'SELECT 1'" >"$T_PLANS/$id.toml"
            fi
            zdm_run advance "$id"
            t_rc "$d $ch+$pad: the step fails" 1
            zdm_run --json history "$id"
            t_rc "$d $ch+$pad: history --json" 0
            t_eq "$d $ch+$pad: the row is closed" failed "$(jq -r '.history[-1].outcome' <<<"$ZOUT")"
            t_cmp "$d $ch+$pad: with its detail" "$(jq -r '.history[-1].detail | length' <<<"$ZOUT")" -gt 500
        done
    done
    # A hook that refuses, printing a long multibyte line.
    cat >"$T_DIR/refuse.sh" <<'EOF'
#!/bin/sh
printf 'x'; i=0; while [ $i -lt 1500 ]; do printf '€'; i=$((i + 1)); done; echo; exit 1
EOF
    chmod +x "$T_DIR/refuse.sh"
    printf '%s\n' '[hooks]' "before_expand = \"$T_DIR/refuse.sh\"" '[[expand.steps]]' \
        "sql = 'SELECT 1'" "down = 'SELECT 1'" >"$T_PLANS/0100_h.toml"
    zdm_run advance 0100_h
    t_rc "$d: a hook refuses" 3
    zdm_run --json history 0100_h
    t_eq "$d: no row left running" "" "$(jq -r '.history[] | select(.outcome == "running") | .action' <<<"$ZOUT")"
    t_has "$d: the refusal is recorded" refused "$(jq -r '.history[].outcome' <<<"$ZOUT")"
}

run_case sqlite
t_section "sqlite: a stored detail that is not UTF-8 (a row from an older zdm, hook output)"
db_sql "INSERT INTO zdm_history (plan_id, at_ms, who, pid, action, outcome, detail)
        VALUES ('0001_m', 1, 'x@y', 1, 'note', 'ok', CAST(X'6F6B20C3' || X'2064657461696C' AS TEXT))"
zdm_run --json history 0001_m
t_rc "history --json" 0
t_eq "the detail is kept, the bad byte replaced" "ok ? detail" "$(jq -r '.history[-1].detail' <<<"$ZOUT")"
if t_pg_available; then
    t_pg_start
    run_case pg
else
    t_note "no PostgreSQL server binaries: SQLite only"
fi
t_finish
