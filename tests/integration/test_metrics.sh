#!/usr/bin/env bash
# test_metrics.sh -- /metrics follows Prometheus conventions.  A worker
# converts rows in small, rate-limited batches, then is paused so that it
# holds still while it is scraped.  With promtool installed (Debian's
# `prometheus` package), `promtool check metrics` must pass on
# /metrics?deprecated=0, and on /metrics it may complain only about the
# five deprecated names kept for one release (each marked DEPRECATED in
# its HELP).  Without promtool those two checks are skipped (noted), the
# rest still runs: _total counters, seconds, the batch histogram (count =
# batches done, cumulative buckets, +Inf = count), zdm_build_info, the
# throttle state with its reason, process metrics, HEAD.
set -u -o pipefail

ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../lib/zdm.sh
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init metrics
command -v curl >/dev/null || {
    echo "metrics: curl missing: skipping" >&2
    exit 77
}

db_new sqlite metrics
plans_empty
plan_write 0001_m '
[[expand.steps]]
op = "add_column"
table = "t"
column = "b"
type = "integer"
up = "a * 2"'
db_sql "CREATE TABLE t (id integer PRIMARY KEY, a integer);
        WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 200) INSERT INTO t SELECT i, i FROM g"
zdm_run advance 0001_m
t_rc "expand" 0
zdm_run set 0001_m batch_size=10 max_rows_per_second=20
t_rc "small, slow batches" 0

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$ZDM" --db "$T_DB" --plans "$T_PLANS" backfill 0001_m --listen "$PORT" >"$T_DIR/worker.out" 2>"$T_DIR/worker.err" &
WPID=$!
T_BG_PIDS+=("$WPID")
count() { curl -fsS "$URL/metrics" | sed -n 's/^zdm_backfill_batch_duration_seconds_count{plan="0001_m"} \([0-9]*\)$/\1/p'; }
t_wait_for "a few batches done" 60 '[ "$(count)" -ge 3 ]' || exit 1
zdm_run pause 0001_m
t_rc "pause" 0
t_wait_for "the worker holds" 30 "curl -fsS '$URL/metrics' | grep -q '^zdm_backfill_throttled{plan=\"0001_m\",reason=\"paused by operator'" || exit 1
curl -fsS "$URL/metrics" >"$T_DIR/m.txt"
curl -fsS "$URL/metrics?deprecated=0" >"$T_DIR/m0.txt"
M=$(cat "$T_DIR/m.txt")
M0=$(cat "$T_DIR/m0.txt")

t_section "names and units"
val() { sed -n "s/^$1 \\([0-9.e+-]*\\)\$/\\1/p" <<<"$2"; }
t_eq "zdm_build_info names the version" 1 "$(val 'zdm_build_info{version="[0-9][^"]*"}' "$M0")"
for c in zdm_backfill_rows_done_total zdm_backfill_worker_rows_done_total; do
    t_has "$c is a counter" "# TYPE $c counter" "$M0"
done
rows=$(val 'zdm_backfill_worker_rows_done_total{plan="0001_m"}' "$M0")
t_cmp "rows counted" "${rows:-0}" -ge 30
t_lacks "no _ms names without ?deprecated=0" "_ms{" "$M0"
t_lacks "no deprecated names without ?deprecated=0" "DEPRECATED" "$M0"
for g in zdm_backfill_last_batch_duration_seconds zdm_backfill_replica_lag_seconds \
    zdm_backfill_throttle_probe_duration_seconds zdm_backfill_throttled_seconds; do
    t_has "$g is a gauge in seconds" "# TYPE $g gauge" "$M0"
done
# SQLite, latency pacing on: the write lock's hold and whether others write
t_has "zdm_backfill_write_lock_held_seconds is a gauge" "# TYPE zdm_backfill_write_lock_held_seconds gauge" "$M0"
lock=$(val 'zdm_backfill_write_lock_held_seconds{plan="0001_m"}' "$M0")
t_eq "a batch held the write lock a while (seconds, > 0)" yes "$(awk -v v="${lock:-0}" 'BEGIN { print (v > 0 && v < 60) ? "yes" : "no: " v }')"
t_match "zdm_backfill_other_writer is 0 or 1" '^[01]$' "$(val 'zdm_backfill_other_writer{plan="0001_m"}' "$M0")"
t_has "the throttle state and its reason" 'zdm_backfill_throttled{plan="0001_m",reason="paused by operator (zdm resume 0001_m)"} 1' "$M0"
held=$(val 'zdm_backfill_throttled_seconds{plan="0001_m"}' "$M0")
t_match "held for some time, in seconds" '^[0-9]+(\.[0-9]+)?$' "$held"
for p in process_cpu_seconds_total process_resident_memory_bytes process_start_time_seconds process_open_fds; do
    t_has "process metric $p" "# TYPE $p " "$M0"
done

t_section "the batch histogram"
t_has "a histogram" "# TYPE zdm_backfill_batch_duration_seconds histogram" "$M0"
n=$(val 'zdm_backfill_batch_duration_seconds_count{plan="0001_m"}' "$M0")
inf=$(val 'zdm_backfill_batch_duration_seconds_bucket{plan="0001_m",le="+Inf"}' "$M0")
t_eq "+Inf bucket = count" "$n" "$inf"
t_eq "count = batches (rows / batch size, batch size 10)" "$(( (rows + 9) / 10 ))" "$n"
t_eq "buckets are cumulative" "" "$(sed -n 's/^zdm_backfill_batch_duration_seconds_bucket{[^}]*} //p' <<<"$M0" |
    awk 'NR > 1 && $1 < prev {print "decreases at bucket " NR} {prev = $1}')"

t_section "deprecated names, one release"
for d in zdm_backfill_rows_done zdm_backfill_rows_total_estimate zdm_backfill_worker_rows_done \
    zdm_backfill_batch_duration_ms zdm_backfill_replica_lag_ms; do
    t_has "$d still served, marked" "# HELP $d DEPRECATED: use " "$M"
done
t_eq "same value under the old name" "$rows" "$(val 'zdm_backfill_worker_rows_done{plan="0001_m"}' "$M")"

t_section "promtool check metrics"
if command -v promtool >/dev/null; then
    out=$(promtool check metrics <"$T_DIR/m0.txt" 2>&1)
    rc=$?
    t_eq "promtool passes /metrics?deprecated=0" 0 "$rc" || t_note "$out"
    out=$(promtool check metrics <"$T_DIR/m.txt" 2>&1)
    others=$(grep -v -E '^(zdm_backfill_rows_done|zdm_backfill_worker_rows_done|zdm_backfill_batch_duration_ms|zdm_backfill_replica_lag_ms|zdm_backfill_rows_total_estimate) ' <<<"$out" | grep .)
    t_eq "on /metrics, promtool flags only the deprecated names" "" "$others"
else
    t_note "promtool not installed (Debian: apt-get install prometheus): its two checks skipped"
    T_SKIPPED="promtool"
fi

t_eq "HEAD /metrics" 200 "$(curl -s -I -o /dev/null -w '%{http_code}' "$URL/metrics")"
kill -TERM "$WPID"
t_wait_exit "$WPID" 30
t_eq "worker stops on SIGTERM" 4 "$WAIT_RC"
t_finish
