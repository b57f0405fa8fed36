#!/usr/bin/env bash
# Audit of the shipped Debian baseline on 100 fixture nodes through the real daemon
# (`vigil audit --wait`), then the evaluation alone (`cargo bench --bench policy_eval`).
# Reports the total wall time, the time per node (from the Audit log), and the checks'
# outcomes.   benches/policies/run.sh        (NODES=100 SLOTS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-100}
SLOTS=${SLOTS:-4}
cargo build --release -p vigil -p vigil-worker -p vigil-files -p vigil-packages -p vigil-accounts -p vigil-sysctl >/dev/null 2>&1
W=$(mktemp -d /tmp/vigil-policy-bench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/plugins" "$W/nodes"
for p in files packages accounts sysctl; do install -m 0755 "target/release/libvigil_$p.so" "$W/plugins/"; done
cp -a policies "$W/policies"
{
  printf 'policy_dir = "policies"\n[daemon]\nstate_dir = "state"\nsocket = "vigil.sock"\nplugin_dir = "plugins"\nslots = %s\n\n' "$SLOTS"
  printf '[[plugin]]\nname = "files"\n[plugin.config]\npaths = ["/etc"]\ncontent = ["/etc/ssh/sshd_config"]\n\n'
  printf '[[plugin]]\nname = "packages"\n\n[[plugin]]\nname = "accounts"\n\n[[plugin]]\nname = "sysctl"\n\n'
  for i in $(seq 1 "$NODES"); do
    cp -a tests/fixtures/nodes/debian "$W/nodes/n$i"
    printf '[[node]]\nname = "n%s"\nroot = "%s"\n\n' "$i" "$W/nodes/n$i"
  done
} > "$W/config.toml"
RUST_LOG=warn target/release/vigild --config "$W/config.toml" 2>"$W/log" &
pid=$!
for _ in $(seq 1 200); do [ -S "$W/vigil.sock" ] && break; sleep 0.05; done
vigil() { target/release/vigil --socket "$W/vigil.sock" "$@"; }
t0=$(date +%s.%N)
vigil audit --wait --json > "$W/rows.json" || true   # the fixture fails checks on purpose
t1=$(date +%s.%N)
python3 - "$t0" "$t1" "$SLOTS" "$W/rows.json" <<'PY'
import json, sys
from datetime import datetime
t0, t1, slots = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rows = json.load(open(sys.argv[4]))
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
per = sorted(ts(r["finished_at"]) - ts(r["started_at"]) for r in rows)
checks = [c for r in rows for c in r.get("checks", [])]
count = lambda o: sum(1 for c in checks if c["outcome"] == o)
print(f"{len(rows)} nodes audited in {t1 - t0:.2f} s with {slots} slots "
      f"({(t1 - t0) / len(rows) * 1000:.1f} ms per node of wall time)")
print(f"per node (running time, 4 plugin runs each): median {per[len(per)//2]*1000:.0f} ms, "
      f"max {per[-1]*1000:.0f} ms")
print(f"{len(checks)} check results: {count('pass')} pass, {count('fail')} fail, {count('error')} error")
PY
echo "evaluation alone (no plugin runs):"
cargo bench --bench policy_eval 2>/dev/null | tail -1
