#!/usr/bin/env bash
# Remote nodes over SSH against local scans, through the real daemon and a real sshd on
# 127.0.0.1 (started here as root: own host key, AuthorizedKeysFile in the work dir, UsePAM
# no). Reports:
#   1. per-task SSH overhead: the same fixture node (packages + accounts) scanned N times
#      locally and N times over SSH, one task at a time (mean task time from the Scan log:
#      connect + probe + push check + worker start over the ControlMaster, per task);
#   2. the first push's cost (worker_dir emptied before one scan);
#   3. 50 remote nodes scanned with daemon.slots = 8 (wall time of one run);
#   4. with BIG=1: the 100,000-file tree (benches/files/gen_tree.py, cached in $BENCH_DIR)
#      scanned by the files plugin locally and over SSH.
#   sudo benches/remote/run.sh        (PROFILE=debug to use debug binaries; N=20 by default)
# Every SSH session runs the login shell, and Debian's bash sources ~/.bashrc for it: on a
# machine whose root .bashrc is slow (this one's runs `pyenv init`, ~0.4-0.8 s), that is most
# of a remote task's overhead and not vigil's. NO_RC=1 makes the bench's sshd start sessions
# with SHLVL=1 (`SetEnv`), so bash skips ~/.bashrc: vigil's own overhead, connection included.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROFILE="${PROFILE:-release}"
N="${N:-20}"
BENCH_DIR="${BENCH_DIR:-/tmp/vigil-bench}"
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "run as root: sshd needs it" >&2; exit 1; }
if [ "$PROFILE" = release ]; then
  cargo build --release -p vigil -p vigil-worker -p vigil-packages -p vigil-accounts -p vigil-files >/dev/null 2>&1
fi
T="target/$PROFILE"
W=$(mktemp -d /tmp/vigil-remote-bench.XXXXXX)
trap 'kill "$pid" "$sshd" 2>/dev/null || true; rm -rf "$W"' EXIT
chmod 755 "$W"

# sshd
ssh-keygen -q -t ed25519 -N "" -f "$W/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$W/id"
cp "$W/id.pub" "$W/authorized_keys"
mkdir -p /run/sshd
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/sshd_config" <<EOC
Port $port
ListenAddress 127.0.0.1
HostKey $W/host_key
PidFile $W/sshd.pid
AuthorizedKeysFile $W/authorized_keys
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
MaxSessions 100
MaxStartups 200
LogLevel ERROR
$([ "${NO_RC:-0}" = 1 ] && echo "SetEnv SHLVL=1")
EOC
/usr/sbin/sshd -D -e -f "$W/sshd_config" 2>"$W/sshd.log" &
sshd=$!
for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
mkdir -p "$W/state" "$W/plugins"
echo "[127.0.0.1]:$port $(cat "$W/host_key.pub")" > "$W/state/known_hosts"
for p in packages accounts files; do install -m 0755 "$T/libvigil_$p.so" "$W/plugins/"; done
cp -a tests/fixtures/nodes/debian "$W/node"

nodes() {  # nodes NAME_PREFIX COUNT  (remote nodes on the fixture)
  for i in $(seq 1 "$2"); do
    printf '[[node]]\nname = "%s%02d"\nssh = "root@127.0.0.1:%s"\nroot = "%s"\n\n' "$1" "$i" "$port" "$3"
  done
}
start() {  # start SLOTS EXTRA
  cat > "$W/config.toml" <<EOC
policy_dir = "policies"
[daemon]
state_dir = "state"
socket = "vigil.sock"
plugin_dir = "plugins"
slots = $1
[ssh]
identity_file = "$W/id"
worker_dir = "$W/workers"
[[node]]
name = "local"
root = "$W/node"
[[plugin]]
name = "packages"
[[plugin]]
name = "accounts"
[[plugin]]
name = "files"
[plugin.config]
paths = ["/"]
$2
EOC
  mkdir -p "$W/policies"
  RUST_LOG=warn "$T/vigild" --config "$W/config.toml" 2>"$W/vigild.log" &
  pid=$!
  for _ in $(seq 1 200); do [ -S "$W/vigil.sock" ] && break; sleep 0.05; done
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; rm -f "$W/vigil.sock"; }
vigil() { "$T/vigil" --socket "$W/vigil.sock" "$@"; }
# Mean and total of (finished - started) of the newest K rows of NODE's Scan log, in ms.
task_ms() {
  vigil --json log scans --node "$1" | python3 -c '
import json, sys
from datetime import datetime
k = int(sys.argv[1]); rows = json.load(sys.stdin)["rows"][:k]
p = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")[:26] + "+00:00")
ms = [(p(r["finished_at"]) - p(r["started_at"])).total_seconds() * 1000 for r in rows]
assert all(r["status"] == "Finished" for r in rows), rows[0]
print(f"{sum(ms)/len(ms):.1f}")' "$2"
}

# OpenSSH's own floor: a new connection and one session running `true`, the least any
# agentless task pays (vigil's master connection and its one session are exactly that).
floor_ms=$(python3 - "$W" "$port" "$N" <<'EOP'
import subprocess, sys, time
w, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmd = ["ssh", "-i", f"{w}/id", "-p", port, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
       "-o", f"UserKnownHostsFile={w}/state/known_hosts", "-o", "ControlMaster=no", "-F", "/dev/null",
       "root@127.0.0.1", "true"]
ms = []
for _ in range(n):
    t = time.monotonic(); subprocess.run(cmd, check=True); ms.append((time.monotonic() - t) * 1000)
print(f"{sum(ms)/len(ms):.1f}")
EOP
)
start 1 "$(nodes r 1 "$W/node")"
plugins=(--plugin packages --plugin accounts)
vigil scan --scope node:r01 "${plugins[@]}" --wait >/dev/null    # first push
first=$(task_ms r01 1)
for _ in $(seq 1 "$N"); do vigil scan --scope node:local "${plugins[@]}" --wait >/dev/null; done
for _ in $(seq 1 "$N"); do vigil scan --scope node:r01 "${plugins[@]}" --wait >/dev/null; done
local_ms=$(task_ms local "$N"); remote_ms=$(task_ms r01 "$N")
rm -rf "$W/workers"
vigil scan --scope node:r01 "${plugins[@]}" --wait >/dev/null
push_ms=$(task_ms r01 1)
stop
echo "per task ($N tasks each, packages + accounts on the fixture node):"
echo "  local $local_ms ms, ssh $remote_ms ms: SSH overhead $(python3 -c "print(f'{$remote_ms-$local_ms:.1f}')") ms per task"
echo "  OpenSSH floor (new connection + one session running true, $N times): $floor_ms ms; vigil's part of the overhead: $(python3 -c "print(f'{$remote_ms-$local_ms-$floor_ms:.1f}')") ms"
echo "  first push (worker + 2 libraries, $(du -k "$T/vigil-worker" | cut -f1) KiB worker): $push_ms ms ($(python3 -c "print(f'{$push_ms-$remote_ms:.1f}')") ms over a steady task)"

start 8 "$(nodes m 50 "$W/node")"
t0=$(date +%s.%N)
vigil scan --scope all "${plugins[@]}" --wait >/dev/null || true
t1=$(date +%s.%N)
stop
echo "50 remote nodes + 1 local, slots = 8: $(python3 -c "print(f'{$t1-$t0:.2f}')") s for the run"

if [ "${BIG:-0}" = 1 ]; then
  if [[ ! -f "$BENCH_DIR/.complete" ]]; then
    mkdir -p "$BENCH_DIR"; python3 benches/files/gen_tree.py "$BENCH_DIR/tree"; touch "$BENCH_DIR/.complete"
  fi
  start 1 "$(printf '[[node]]\nname = "bigl"\nroot = "%s"\n\n[[node]]\nname = "bigr"\nssh = "root@127.0.0.1:%s"\nroot = "%s"\n' "$BENCH_DIR/tree" "$port" "$BENCH_DIR/tree")"
  find "$BENCH_DIR/tree" -type f -print0 | xargs -0 cat > /dev/null
  vigil scan --scope node:bigl --plugin files --wait >/dev/null
  vigil scan --scope node:bigr --plugin files --wait >/dev/null
  l=$(task_ms bigl 1); r=$(task_ms bigr 1)
  stop
  echo "100,000-file tree, files plugin: local $l ms, ssh $r ms ($(python3 -c "print(f'{$r/$l:.2f}')")x)"
fi
