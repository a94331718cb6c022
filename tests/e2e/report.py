#!/usr/bin/env python3
"""report.py -- what the clients of the blue-green end-to-end test saw,
phase by phase, and whether it was right.

    report.py --requests FILE --markers FILE --cutover-begin MS --cutover-at MS

--requests  client.py's output (one JSON object per request)
--markers   "EPOCH_MS PHASE" lines written by the test as it goes; a
            request belongs to the last phase that began before it did
--cutover-begin  when "zdm cutover" started (its history row)
--cutover-at     the cutover time zdm recorded (after the switch hook)
--contract-begin, --stale-ids FILE   (optional) when contract started, and
            the ids of the rows whose project_name no longer matches
            project_slug (or is NULL) after contract

Prints one line per phase: requests, failures, backends that answered,
latency p50/p95/p99/max in ms.  Checks, exit 1 when one fails:
  * no request failed (HTTP error, connection error, or a read that did
    not answer the value last written);
  * every phase saw traffic;
  * green answered no request that began before the cutover began, blue
    none that began after the cutover time was recorded, and green did
    answer after it;
  * after contract (the triggers are gone, project_name is no longer
    kept), only rows that green wrote since contract began have a stale
    or missing project_name.
"""
import argparse
import json
import sys


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", required=True)
    ap.add_argument("--markers", required=True)
    ap.add_argument("--cutover-begin", type=float, required=True)
    ap.add_argument("--cutover-at", type=float, required=True)
    ap.add_argument("--contract-begin", type=float)
    ap.add_argument("--stale-ids", help="file: ids whose project_name no longer matches after contract")
    args = ap.parse_args()

    reqs = [json.loads(line) for line in open(args.requests) if line.strip()]
    marks = []
    for line in open(args.markers):
        ms, name = line.split(None, 1)
        marks.append((float(ms), name.strip()))
    marks.sort()
    order = []
    for _, name in marks:
        if name not in order:
            order.append(name)
    by = {name: [] for name in order}
    for r in reqs:
        phase = None
        for ms, name in marks:
            if ms <= r["t0"]:
                phase = name
            else:
                break
        by.setdefault(phase or "(before)", []).append(r)
        if phase is None and "(before)" not in order:
            order.insert(0, "(before)")

    problems = []
    print("%-22s %7s %6s %-12s %8s %8s %8s %8s" % ("phase", "requests", "failed", "backends",
                                                  "p50 ms", "p95 ms", "p99 ms", "max ms"))
    for name in order:
        rs = by.get(name, [])
        lat = sorted(r["t1"] - r["t0"] for r in rs)
        failed = [r for r in rs if not r["ok"]]
        backends = sorted({r["backend"] or "-" for r in rs})
        print("%-22s %7d %6d %-12s %8.1f %8.1f %8.1f %8.1f" % (
            name, len(rs), len(failed), ",".join(backends), pct(lat, 50), pct(lat, 95), pct(lat, 99),
            lat[-1] if lat else float("nan")))
        if not rs:
            problems.append("phase %s saw no request at all" % name)
        for r in failed[:5]:
            problems.append("phase %s: %s %s at %.0f: %s" % (name, r["op"], r["status"], r["t0"], r["why"]))
        if len(failed) > 5:
            problems.append("phase %s: ... and %d more failed requests" % (name, len(failed) - 5))
    lat = sorted(r["t1"] - r["t0"] for r in reqs)
    nfail = sum(1 for r in reqs if not r["ok"])
    print("%-22s %7d %6d %-12s %8.1f %8.1f %8.1f %8.1f" % ("TOTAL", len(reqs), nfail, "", pct(lat, 50),
                                                           pct(lat, 95), pct(lat, 99), lat[-1] if lat else 0))

    early_green = [r for r in reqs if r["backend"] == "green" and r["t0"] < args.cutover_begin]
    late_blue = [r for r in reqs if r["backend"] == "blue" and r["t0"] > args.cutover_at]
    green_after = [r for r in reqs if r["backend"] == "green" and r["t0"] > args.cutover_at]
    blue_last = max((r["t0"] for r in reqs if r["backend"] == "blue"), default=0)
    green_first = min((r["t0"] for r in reqs if r["backend"] == "green"), default=0)
    print("switch: cutover began %.0f, recorded %.0f (hook took %.0f ms); last request to blue began %+.0f ms, "
          "first to green %+.0f ms from the recorded time"
          % (args.cutover_begin, args.cutover_at, args.cutover_at - args.cutover_begin,
             blue_last - args.cutover_at, green_first - args.cutover_at))
    if early_green:
        problems.append("%d requests that began before the cutover were answered by green (first at %.0f)"
                        % (len(early_green), early_green[0]["t0"]))
    if late_blue:
        problems.append("%d requests that began after the cutover time were answered by blue (first at %.0f)"
                        % (len(late_blue), late_blue[0]["t0"]))
    if not green_after:
        problems.append("green answered nothing after the cutover")
    if args.stale_ids and args.contract_begin:
        # Contract removed the triggers: project_name goes stale where green
        # wrote since, and nowhere else.
        written = {r.get("id") for r in reqs if r["ok"] and r["backend"] == "green"
                   and r["op"] in ("POST", "PUT") and r["t1"] >= args.contract_begin}
        stale = [int(x) for x in open(args.stale_ids).read().split()]
        unexplained = [i for i in stale if i not in written]
        print("after contract: %d rows with a stale or no project_name, all written by green since contract: %s"
              % (len(stale), "yes" if not unexplained else "NO"))
        if unexplained:
            problems.append("%d rows have a stale project_name that green did not write after contract: %s"
                            % (len(unexplained), unexplained[:10]))
    for p in problems:
        print("PROBLEM: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
