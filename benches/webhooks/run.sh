#!/usr/bin/env bash
# Webhooks (issue 19): the ingest with one webhook in force against none (delivery rows
# written beside the events), and the events per second one endpoint's sender delivers to
# a receiver on loopback (Close All of EVENTS open tasks in the real vigild). Targets
# (issue 19): writing events adds <= 10% to the ingest. Numbers are printed, not asserted.
#   benches/webhooks/run.sh              (EVENTS=5000 ROUNDS=6 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${EVENTS:-5000}
ROUNDS=${ROUNDS:-6}
cargo build --release -p vigil -p vigil-worker >/dev/null 2>&1
exec cargo bench -q --bench webhooks -- --vigild target/release/vigild \
  --events "$EVENTS" --rounds "$ROUNDS"
