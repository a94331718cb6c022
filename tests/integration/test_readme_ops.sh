#!/usr/bin/env bash
# test_readme_ops.sh -- the README's table of structured operations lists
# exactly the operations of zdm's op table (src/ops.c), which zdm names
# when an unknown one is asked for; and zdm new writes a template for each
# of them.  "sql" is a raw step written as an op: documented with raw steps.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init readme_ops
readme=$ZDM_SRC/README.md

t_section "zdm names the operations of its table"
db_new sqlite ops
plans_empty
zdm_run new p_nosuch --op nosuch
t_rc "new --op nosuch" 2
t_has "the refusal" 'unknown operation "nosuch"' "$ZERR"
table=$(sed -n 's/^.*-> operations: //p' <<<"$ZERR" | tr ',' '\n' | tr -d ' ' | grep -vx sql | LC_ALL=C sort)
t_ne "operations listed" "" "$table"

t_section "the README's table lists the same operations"
# The rows of "| op | PostgreSQL | SQLite |": every `name` in the first column.
doc=$(awk '/^\| op \| PostgreSQL \| SQLite \|$/ {f = 1; next} f && !/^\|/ {exit} f' "$readme" |
      awk -F'|' '{print $2}' | grep -o '`[a-z_]*`' | tr -d '`' | grep -vx op | LC_ALL=C sort -u)
t_ne "the README's table exists" "" "$doc"
t_eq "operations in the README's table = zdm's op table" "$table" "$doc"

t_section "zdm new writes a template for each"
for op in $table; do
    zdm_run new "p_$op" --op "$op"
    t_rc "new --op $op" 0
    t_has "the template of $op" "op = \"$op\"" "$(cat "$T_PLANS"/*p_"$op"*.toml 2>/dev/null)"
done

t_finish
