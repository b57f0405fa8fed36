#!/usr/bin/env bash
# User tasks at scale (issue 7): a store with 100,000 tasks and 1,000,000 events built
# through the real ingest code, then the real vigild on it, measured over its Unix socket:
# GET /v1/tasks?q=... and GET /v1/status latency (one client, then many concurrent ones:
# p50/p99), Close All of 10,000 matching tasks, and the ingest of 10,000 findings from one
# scan on each of 10,000 nodes, grouped into one task. Targets (issue 7): list < 50 ms,
# status < 10 ms, Close All < 2 s, ingest < 10 s. Numbers are printed, not asserted.
#   benches/tasks/run.sh                  (CLIENTS=64 REQUESTS=100 by default)
#   WORK=/tmp/vigil-tasks-bench benches/tasks/run.sh   keeps the built store for later runs
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS=${CLIENTS:-64}
REQUESTS=${REQUESTS:-100}
cargo build --release -p vigil -p vigil-worker -p vigil-test-plugins >/dev/null 2>&1
args=(--vigild target/release/vigild --plugin target/release/libvigil_test_plugins.so
      --clients "$CLIENTS" --requests "$REQUESTS")
if [[ -n "${WORK:-}" ]]; then
  mkdir -p "$WORK"
  args+=(--work "$WORK")
fi
exec cargo bench -q --bench tasks -- "${args[@]}"
