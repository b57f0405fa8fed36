#!/usr/bin/env bash
# How long the start-up integrity check (redb's check_integrity, `daemon.check_integrity`)
# and `vigild check` take: on the database of one scan of the 100,000-file benchmark tree,
# and on a larger one made of DAYS daily scans of it (each day 2% of the files changed, so
# every day's chunks are new), or of as many days as it takes to reach TARGET_MB with
# CHURN=touch (each day every file gets a new mtime: every chunk is new, the values are
# shared, so the database grows fastest per scan). Reports the file size, the check time
# vigild logs at start, and `vigild check` (a copy, redb's check, every row decoded), each
# measured twice. The database is deleted at the end.
#   benches/integrity/run.sh                          (DAYS=1)
#   DAYS=30 benches/integrity/run.sh                  (a larger database)
#   CHURN=touch TARGET_MB=1024 benches/integrity/run.sh   (~1 GB)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/vigil-bench}"
DAYS="${DAYS:-1}"
CHURN="${CHURN:-rewrite}"
TARGET_MB="${TARGET_MB:-0}"
if [ "$TARGET_MB" -gt 0 ]; then DAYS=1000; fi
SRC="$BENCH_DIR/tree"
cd "$ROOT"
if [[ ! -f "$BENCH_DIR/.complete" ]]; then
  mkdir -p "$BENCH_DIR"
  python3 benches/files/gen_tree.py "$SRC"
  touch "$BENCH_DIR/.complete"
fi
cargo build --release -p vigil -p vigil-files -p vigil-worker >/dev/null 2>&1
W=$(mktemp -d /tmp/vigil-integrity-bench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$W"' EXIT
TREE="$W/tree"
cp -al "$SRC" "$TREE"
mkdir -p "$W/plugins"
install -m 0755 target/release/libvigil_files.so "$W/plugins/"
cat > "$W/config.toml" <<CONF
[daemon]
state_dir = "state"
socket = "vigil.sock"
plugin_dir = "plugins"
retention_days = 400
[[node]]
name = "bench"
root = "$TREE"
[[plugin]]
name = "files"
[plugin.config]
paths = ["/"]
CONF
start() {
  VIGIL_TODAY_FILE="$W/today" RUST_LOG=info target/release/vigild --config "$W/config.toml" >"$W/vigild.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do [ -S "$W/vigil.sock" ] && break; sleep 0.05; done
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
vigil() { target/release/vigil --socket "$W/vigil.sock" "$@"; }
start
days=0
for day in $(seq 1 "$DAYS"); do
  date -d "2026-01-01 + $day days" +%F > "$W/today"
  if [ "$day" -gt 1 ] && [ "$CHURN" = touch ]; then
    find "$TREE" -type f -print0 | xargs -0 touch -d "2026-01-01 + $day days"
  elif [ "$day" -gt 1 ]; then
    # 2% of the files rewritten (new content, so new chunks and values).
    find "$TREE" -type f | awk -v d="$day" 'NR % 50 == d % 50' | while read -r f; do
      rm "$f"; echo "day $day" > "$f"; done
  fi
  vigil scan --wait >/dev/null
  days=$day
  if [ "$TARGET_MB" -gt 0 ] && [ "$(stat -c %s "$W/state/vigil.redb")" -ge $((TARGET_MB * 1048576)) ]; then
    break
  fi
done
stop
size=$(stat -c %s "$W/state/vigil.redb")
for run in 1 2; do
  start
  verified=$(grep -o 'verified in [^ ]*' "$W/vigild.log" || echo "?")
  stop
  t0=$(date +%s.%N)
  target/release/vigild check --config "$W/config.toml"
  t1=$(date +%s.%N)
  echo "run $run: database $size bytes after $days day(s) ($CHURN); start-up check: $verified; vigild check: $(echo "$t1 - $t0" | bc) s"
done
