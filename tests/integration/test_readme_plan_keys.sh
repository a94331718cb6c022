#!/usr/bin/env bash
# The README's plan example is the real plans/0006_event_category.toml, and
# its "Plan keys" reference names every key the plan loader accepts (the
# key lists in src/plan.c, the hook names in src/plan_model.c) and no key it
# does not.
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init readme_plan_keys
readme=$ZDM_SRC/README.md

t_section "the plan example is the real file"
block=$(awk '/^```toml$/ && !done {f = 1; next} f && /^```$/ {exit} f {print}' \
        <(sed -n '/`plans\/0006_event_category.toml`/,$p' "$readme"))
real=$(sed -n '/^description =/,$p' "$ZDM_SRC/plans/0006_event_category.toml")
t_eq "README block = plans/0006_event_category.toml" "$real" "$block"

t_section "every key is in the reference"
ref=$(sed -n '/^### Plan keys$/,/^## /p' "$readme")
t_ne "the reference exists" "" "$ref"
# The quoted names inside the loader's key lists (arrays ending in NULL}).
keys=$(sed -n '/static const char \*const [a-z_]*keys\[\] = {/,/NULL};/p' "$ZDM_SRC/src/plan.c" |
       grep -o '"[a-z_]*"' | tr -d '"' | sort -u)
keys="$keys
$(grep -o '"before_expand", "after_expand".*' "$ZDM_SRC/src/plan_model.c" | head -n1 | grep -o '"[a-z_]*"' | tr -d '"')
$(sed -n '/"timeout"/p;/"inherit"/p' "$ZDM_SRC/src/plan.c" | grep -o '"timeout"\|"inherit"' | tr -d '"' | sort -u)"
n=0
for k in $(sort -u <<<"$keys"); do
    case $k in pg|sqlite) continue ;; esac   # sql = { pg, sqlite }: described in the text
    n=$((n + 1))
    t_match "the reference documents $k" "(\`|\\] |step |\\[|\\.)$k(\`|\\.COLUMN\`|,| |\\])" "$ref"
done
t_ne "keys found in plan.c" 0 "$n"
t_finish
