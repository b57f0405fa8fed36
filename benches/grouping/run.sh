#!/usr/bin/env bash
# Grouping a run into user tasks (issue 13): 10,000 nodes scanned by the real files plugin
# through the real vigild on two nights; night 2 has a shared patch and per-node noise. Prints
# the grouping time (the run's last task end -> its tasks committed; target < 2 s) and
# GET /v1/status latency meanwhile (target p99 < 20 ms).
#   benches/grouping/run.sh            NODES=10000 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p vigil -p vigil-worker -p vigil-files >/dev/null 2>&1
exec cargo bench -q --bench grouping -- --vigild target/release/vigild \
  --plugins target/release --nodes "${NODES:-10000}"
