#!/usr/bin/env bash
# The duplicate-mail rate under the kill -9 loop (tests/faults/crash.rs) against a slow mail
# server: the SMTP sink answers 250 only DELAY seconds after it stored a message, so kills
# land between the final "." and the 250 (RFC 1047). Prints, per run, kills, mails,
# deliveries and duplicates (the test also asserts that there are none).
#   benches/mail/run.sh                 (DELAY=1.5, RUNS=2)
#   DELAY=0.3 RUNS=1 benches/mail/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DELAY="${DELAY:-1.5}"
RUNS="${RUNS:-2}"
cargo build --workspace >/dev/null 2>&1
for i in $(seq 1 "$RUNS"); do
  echo "run $i, SMTP delay ${DELAY}s:"
  log="${TMPDIR:-/tmp}/vigil-mail-bench-$i.log"
  VIGIL_CRASH_SMTP_DELAY="$DELAY" cargo test -q -p vigil --test tests faults::crash -- --nocapture >"$log" 2>&1 || true
  grep -E '^kill -9 loop|panicked|test result' "$log" || true
  echo "(the whole output: $log)"
done
