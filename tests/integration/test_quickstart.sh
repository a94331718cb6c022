#!/usr/bin/env bash
# deploy/quickstart.sh with the built binary (ZDM=...: no install, no
# build): every plan reaches complete through zdm advance --all with no
# refusal in history; and it refuses to delete a demo database another
# process has open (that process's writes would be lost), leaving it whole.
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init quickstart
demo=$T_DIR/demo.db

t_section "a clean run"
out=$(ZDM=$ZDM ZDM_DEMO_DB=$demo "$ZDM_SRC/deploy/quickstart.sh" 2>&1); rc=$?
t_eq "quickstart exit: $(tail -n 20 <<<"$out")" 0 "$rc"
t_eq "every plan complete" "8" "$(sqlite3 "$demo" "SELECT count(*) FROM zdm_plans WHERE phase = 'complete'")"
t_eq "no refusal in a successful run" "0" "$(sqlite3 "$demo" "SELECT count(*) FROM zdm_history WHERE outcome = 'refused'")"
t_lacks "no refusal printed" "requires plans that are not complete" "$out"

t_section "the demo database is open in another process"
sqlite3 "$demo" "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('mine')"
ino=$(stat -c %i "$demo")
sleep 300 <"$demo" &
holder=$!
T_BG_PIDS+=("$holder")
out=$(ZDM=$ZDM ZDM_DEMO_DB=$demo "$ZDM_SRC/deploy/quickstart.sh" 2>&1); rc=$?
t_eq "refused" 3 "$rc"
t_has "names the holder" "$holder" "$out"
t_eq "the same file is still there" "$ino" "$(stat -c %i "$demo")"
t_eq "its data too" "mine" "$(sqlite3 "$demo" "SELECT v FROM keep")"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
t_finish
