#!/usr/bin/env bash
# Queue throughput: enqueue 10,000 scan tasks in one request (one node each) and drain them
# with a no-op plugin (the fixture plugin in mode "ok" with 0 items), through the real daemon.
# Reports enqueue time, drain time, tasks/s, vigild's peak RSS, and the queue's own overhead:
# the drain against the same workers run without a daemon, and vigild's CPU time per task.
#   benches/queue/run.sh            (NODES=10000 SLOTS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-10000}
SLOTS=${SLOTS:-4}
cargo build --release -p vigil -p vigil-worker -p vigil-test-plugins >/dev/null 2>&1
work=$(mktemp -d /tmp/vigil-queue-bench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root/etc" "$work/plugins"
# A node root must not be empty (an empty root fails its scan): one file makes it a root.
echo bench > "$work/root/etc/hostname"
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
# vigild's own CPU time (its workers are children, not counted here).
cpu=$(awk '{print $14 + $15}' /proc/$pid/stat)
tick=$(getconf CLK_TCK)
# The floor: the same plugin worker run NODES times, SLOTS at a time, without a daemon.
floor=$(python3 - "$NODES" "$SLOTS" "$work" <<'PY'
import os, struct, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
n, slots, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
exe, lib = "target/release/vigil-worker", f"{work}/plugins/libvigil_test_plugins.so"
config = b'{"mode":"ok","count":0}'
frame = struct.pack("<IB", len(config), 9) + config  # a vigil-wire config frame
def one(_):
    # stdin stays open until the frames end, as vigild keeps it (its end kills the worker)
    # its own process group, as vigild gives it: a worker whose stdin closes kills its group
    p = subprocess.Popen([exe, lib, f"{work}/root"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0)
    p.stdin.write(frame); p.stdin.flush()
    p.stdout.read()
    p.stdin.close()
    # after its frames ended, closing stdin may SIGKILL it before it exits by itself
    assert p.wait() in (0, -9), p.stderr.read()
t = time.time()
with ThreadPoolExecutor(slots) as ex:
    list(ex.map(one, range(n)))
print(time.time() - t)
PY
)
python3 - "$t0" "$t1" "$t2" "$NODES" "$peak" "$SLOTS" "$cpu" "$tick" "$floor" <<'PY'
import sys
t0, t1, t2, n, peak, slots, cpu, tick, floor = map(float, sys.argv[1:])
drain = t2 - t1
print(f"enqueue {int(n)} tasks in one request: {t1-t0:.2f} s")
print(f"drain with {int(slots)} slots: {drain:.2f} s = {n/drain:.0f} tasks/s, {1000*drain/n:.2f} ms per task (worker spawn included)")
print(f"workers alone ({int(slots)} at a time, no daemon): {1000*floor/n:.2f} ms per task; "
      f"queue overhead: {1000*(drain-floor)/n:.2f} ms per task wall, vigild CPU {1000*cpu/tick/n:.2f} ms per task")
print(f"vigild peak RSS: {peak/1024:.1f} MB")
PY
