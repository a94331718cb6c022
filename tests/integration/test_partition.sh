#!/usr/bin/env bash
# test_partition.sh -- backfill workers on several hosts (network
# namespaces, real TCP) and a silent partition of one of them: its range
# goes to a worker on another host while the link is down, and it never
# commits a batch of that range when the link returns.  Also prints rows/s
# with 1, 2 and 4 workers across namespaces.  Needs root and ip(8);
# skipped (77) elsewhere.  The work is in tests/torture/partition.py.
set -u -o pipefail
ZDM_SRC=${ZDM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
: "${ZDM:?ZDM must name the zdm binary}"
export ZDM
exec /usr/bin/python3 "$ZDM_SRC/tests/torture/partition.py"
