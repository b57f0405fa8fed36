#!/usr/bin/env bash
# Queue throughput: enqueue 10,000 scan tasks in one request (one node each) and drain them
# with a no-op plugin (the fixture plugin in mode "ok" with 0 items), through the real daemon.
# Reports enqueue time, drain time, tasks/s, and vigild's peak RSS.
#   benches/queue/run.sh            (NODES=10000 SLOTS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-10000}
SLOTS=${SLOTS:-4}
cargo build --release -p vigil -p vigil-test-plugins >/dev/null 2>&1
work=$(mktemp -d /tmp/vigil-queue-bench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root" "$work/plugins"
install -m 0755 target/release/libvigil_test_plugins.so "$work/plugins/"
{
  printf '[daemon]\nstate_dir = "state"\nsocket = "vigil.sock"\nplugin_dir = "plugins"\nslots = %s\nqueue_capacity = %s\n\n' "$SLOTS" "$NODES"
  printf '[[plugin]]\nname = "noop"\nlibrary = "libvigil_test_plugins.so"\n[plugin.config]\nmode = "ok"\ncount = 0\n\n'
  for i in $(seq 1 "$NODES"); do printf '[[node]]\nname = "n%s"\nroot = "root"\n\n' "$i"; done
} > "$work/config.toml"
RUST_LOG=warn target/release/vigild --config "$work/config.toml" 2>"$work/log" &
pid=$!
for _ in $(seq 1 200); do [ -S "$work/vigil.sock" ] && break; sleep 0.05; done
sock="$work/vigil.sock"
t0=$(date +%s.%N)
curl -s --unix-socket "$sock" -H 'Content-Type: application/json' \
  -d '{"kind":"scan"}' http://localhost/v1/queue -o /dev/null
t1=$(date +%s.%N)
peak=0
while :; do
  s=$(curl -s --unix-socket "$sock" http://localhost/v1/status)
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  [ "$rss" -gt "$peak" ] && peak=$rss
  q=$(echo "$s" | python3 -c 'import json,sys; q=json.load(sys.stdin)["queue"]; print(q["queued"]+q["running"])')
  [ "$q" = 0 ] && break
  sleep 0.2
done
t2=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$NODES" "$peak" "$SLOTS" <<'PY'
import sys
t0, t1, t2, n, peak, slots = map(float, sys.argv[1:])
print(f"enqueue {int(n)} tasks in one request: {t1-t0:.2f} s")
print(f"drain with {int(slots)} slots: {t2-t1:.2f} s = {n/(t2-t1):.0f} tasks/s, {1000*(t2-t1)/n:.2f} ms per task (worker spawn included)")
print(f"vigild peak RSS: {peak/1024:.1f} MB")
PY
