#!/usr/bin/env bash
# Drift end to end: scan + store + diff of the 100,000-file benchmark tree with 1% of the
# files modified, 0.5% added and 0.5% removed, through the real daemon (`vigil scan --wait`
# on a node whose root is the tree), side by side with `aide --check` on the same tree and
# the same changes. Reports wall times, the ratio, and peak RSS of vigild and its worker.
#   benches/drift/run.sh        (tree cached in $BENCH_DIR, default /tmp/vigil-bench)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/vigil-bench}"
SRC="$BENCH_DIR/tree"
cd "$ROOT"

if [[ ! -f "$BENCH_DIR/.complete" ]]; then
  echo "generating the 100,000-file tree in $SRC (once) ..."
  mkdir -p "$BENCH_DIR"
  python3 benches/files/gen_tree.py "$SRC"
  touch "$BENCH_DIR/.complete"
fi
command -v aide >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aide >/dev/null; }
cargo build --release -p vigil -p vigil-worker -p vigil-files >/dev/null 2>&1

W=$(mktemp -d /tmp/vigil-drift-bench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$W"' EXIT
TREE="$W/tree"
cp -al "$SRC" "$TREE"          # hard links: changes below replace files, never edit the cache
mkdir -p "$W/plugins"
install -m 0755 target/release/libvigil_files.so "$W/plugins/"
cat > "$W/config.toml" <<EOF
[daemon]
state_dir = "state"
socket = "vigil.sock"
plugin_dir = "plugins"
[[node]]
name = "bench"
root = "$TREE"
[[plugin]]
name = "files"
[plugin.config]
paths = ["/"]
EOF
cat > "$W/aide.conf" <<EOF
database_in=file:$W/aide.db
database_out=file:$W/aide.db.new
report_url=stdout
VIGIL = p+u+g+s+m+sha256
$TREE VIGIL
EOF
warm() { find "$TREE" -type f -print0 | xargs -0 cat > /dev/null; }
peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "$(date +%F)" > "$W/today"
VIGIL_TODAY_FILE="$W/today" RUST_LOG=warn target/release/vigild --config "$W/config.toml" 2>"$W/vigild.log" &
pid=$!
for _ in $(seq 1 200); do [ -S "$W/vigil.sock" ] && break; sleep 0.05; done
vigil() { target/release/vigil --socket "$W/vigil.sock" "$@"; }

warm
vigil scan --wait >/dev/null
echo "day 1 (baseline) scanned"
aide --config "$W/aide.conf" --init >/dev/null 2>&1 || true
mv "$W/aide.db.new" "$W/aide.db"
echo "aide database initialised"

# The night's changes: 1,000 modified, 500 added, 500 removed.
python3 - "$TREE" <<'PY'
import os, sys
tree = sys.argv[1]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs)
for p in files[0:100000:100]:          # 1,000 modified: replaced, so the cached tree stays intact
    data = open(p, "rb").read()
    tmp = p + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(b"changed\n" + data[8:])
    os.rename(tmp, p)
for p in files[50:100000:200]:         # 500 removed
    os.remove(p)
for i in range(500):                   # 500 added
    with open(os.path.join(os.path.dirname(files[i * 200]), f"new{i:03d}.dat"), "wb") as fh:
        fh.write(os.urandom(4096))
PY
date -d tomorrow +%F > "$W/today"

worker_peak=0
watch_workers() {
  while kill -0 "$pid" 2>/dev/null; do
    for w in $(pgrep -f vigil-worker || true); do
      v=$(peak "$w"); [ "${v:-0}" -gt "$worker_peak" ] && worker_peak=$v
    done
    echo "$worker_peak" > "$W/worker_peak"
    sleep 0.05
  done
}
watch_workers & watcher=$!

warm
t0=$(date +%s.%N)
vigil scan --wait >/dev/null
t1=$(date +%s.%N)
kill "$watcher" 2>/dev/null || true
changes=$(vigil log scans --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["changes_found"])')

warm
t2=$(date +%s.%N)
aide --config "$W/aide.conf" --check > "$W/aide.out" 2>&1 || true   # exits non-zero when it finds changes
t3=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$W/aide.rss" aide --config "$W/aide.conf" --check >/dev/null 2>&1 || true
aide_rss=$(tail -1 "$W/aide.rss")

python3 - "$t0" "$t1" "$t2" "$t3" "$(peak $pid)" "$(cat "$W/worker_peak")" "$changes" "$aide_rss" <<'PY'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:5])
daemon, worker, changes, aide_rss = sys.argv[5:9]
v, a = t1 - t0, t3 - t2
print(f"vigil scan --wait (scan + store + diff): {v:.2f} s, {changes} changes")
print(f"aide --check:                            {a:.2f} s")
print(f"aide / vigil: {a / v:.1f}x")
print(f"peak RSS: vigild {int(daemon)/1024:.1f} MB, worker {int(worker)/1024:.1f} MB, aide {int(aide_rss or 0)/1024:.1f} MB")
PY
