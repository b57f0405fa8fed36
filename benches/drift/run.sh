#!/usr/bin/env bash
# Drift end to end: scan + store + diff of the 100,000-file benchmark tree with 1% of the
# files modified, 0.5% added and 0.5% removed, through the real daemon (`vigil scan --wait`
# on a node whose root is the tree), side by side in one run with the files plugin alone
# (`vigild plugin run`, the floor), `tripwire --check` and `aide --check` (at num_workers =
# the machine's cores, and at AIDE's default single worker) on the same tree and changes.
# Every timed command runs right after the tree and the databases are read into the page
# cache. Prints wall times, the ratios, and the peak RSS of vigild and its worker. See
# README.md.
#   benches/drift/run.sh        (tree cached in $BENCH_DIR, default /tmp/vigil-bench)
#   CLUSTERED=1 benches/drift/run.sh   (the same counts of changes, all in one directory)
#   UNCHANGED=1 benches/drift/run.sh   (a night without changes)
#   DB_COPIES=DIR benches/drift/run.sh (keeps the compacted database of each day in DIR)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/vigil-bench}"
SRC="$BENCH_DIR/tree"
CORES=$(nproc)
cd "$ROOT"

if [[ ! -f "$BENCH_DIR/.complete" ]]; then
  echo "generating the 100,000-file tree in $SRC (once) ..."
  mkdir -p "$BENCH_DIR"
  python3 benches/files/gen_tree.py "$SRC"
  touch "$BENCH_DIR/.complete"
fi
if ! command -v aide >/dev/null || ! command -v tripwire >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aide tripwire >/dev/null
fi
cargo build --release -p vigil -p vigil-worker -p vigil-files >/dev/null 2>&1

W=$(mktemp -d /tmp/vigil-drift-bench.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT
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
# AIDE with what vigil records of a file: permissions, owner, group, size, mtime, SHA-256.
aide_conf() {
  cat <<EOF
database_in=file:$W/aide.db
database_out=file:$W/aide.db.new
report_url=stdout
num_workers=$1
VIGIL = p+u+g+s+m+sha256
$TREE VIGIL
EOF
}
aide_conf "$CORES" > "$W/aide.conf"
aide_conf 1 > "$W/aide1.conf"
# Tripwire: SHA-1 plus permissions, inode, links, uid, gid, size, mtime; site and local keys,
# config and policy made non-interactively with twadmin.
TW="$W/tw"; mkdir -p "$TW"
cat > "$TW/twcfg.txt" <<EOF
ROOT=/usr/sbin
POLFILE=$TW/tw.pol
DBFILE=$TW/tw.twd
REPORTFILE=$TW/tw.twr
SITEKEYFILE=$TW/site.key
LOCALKEYFILE=$TW/local.key
EDITOR=/bin/true
LATEPROMPTING=false
LOOSEDIRECTORYCHECKING=false
MAILNOVIOLATIONS=false
EMAILREPORTLEVEL=3
REPORTLEVEL=3
SYSLOGREPORTING=false
MAILMETHOD=SENDMAIL
MAILPROGRAM=/bin/true
EOF
echo "$TREE -> +pinugsmS ;" > "$TW/twpol.txt"
twadmin --generate-keys --site-keyfile "$TW/site.key" --site-passphrase bench-site >/dev/null
twadmin --generate-keys --local-keyfile "$TW/local.key" --local-passphrase bench-local >/dev/null
twadmin --create-cfgfile --cfgfile "$TW/tw.cfg" --site-keyfile "$TW/site.key" \
  --site-passphrase bench-site "$TW/twcfg.txt" >/dev/null
twadmin --create-polfile --cfgfile "$TW/tw.cfg" --site-keyfile "$TW/site.key" \
  --site-passphrase bench-site "$TW/twpol.txt" >/dev/null
# tripwire wants its mode (--init, --check) before any other option.
tripwire() { local mode=$1; shift; command tripwire "$mode" --cfgfile "$TW/tw.cfg" --polfile "$TW/tw.pol" "$@"; }

# The tree and every tool's database (vigil's, AIDE's, Tripwire's): a night's check reads
# both, and this machine evicts either when left idle for ~30 s (a cold vigil database adds
# ~0.2 s to the day-2 scan: some 5,000 random page reads of baseline chunks and values).
# Dirty pages of the steps before (database copies, the peers' databases, the changed files)
# are written back first, so that no timed command waits behind their writeback.
warm() {
  sync
  find "$TREE" -type f -print0 | xargs -0 cat > /dev/null
  cat "$W/state/vigil.redb" "$W/aide.db" "$TW/tw.twd" > /dev/null 2>&1 || true
}
peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
db_size() { stat -c %s "$W/state/vigil.redb"; }
# The database's live size: a copy of it (vigild idle, every commit durable), compacted with
# `vigild compact`. The file itself grows in redb's allocation steps and keeps free pages.
compacted() {
  rm -rf "$W/copy"; mkdir -m 700 "$W/copy"; cp "$W/state/vigil.redb" "$W/copy/"
  sed 's/^state_dir = "state"/state_dir = "copy"/' "$W/config.toml" > "$W/copy.toml"
  target/release/vigild compact --config "$W/copy.toml" >/dev/null
  stat -c %s "$W/copy/vigil.redb"
  # DB_COPIES=DIR keeps each compacted copy (day1.redb, day2.redb) to look into.
  if [ -n "${DB_COPIES:-}" ]; then mkdir -p "$DB_COPIES"; cp "$W/copy/vigil.redb" "$DB_COPIES/day$1.redb"; fi
}

echo "$(date +%F)" > "$W/today"
VIGIL_TODAY_FILE="$W/today" RUST_LOG=warn target/release/vigild --config "$W/config.toml" 2>"$W/vigild.log" &
pid=$!
for _ in $(seq 1 200); do [ -S "$W/vigil.sock" ] && break; sleep 0.05; done
vigil() { target/release/vigil --socket "$W/vigil.sock" "$@"; }

warm
f0=$(now); vigil scan --wait >/dev/null; f1=$(now)
size1=$(db_size)
live1=$(compacted 1)
echo "day 1 (first scan, no baseline) scanned"
aide --config "$W/aide.conf" --init >/dev/null 2>&1 || true
mv "$W/aide.db.new" "$W/aide.db"
tripwire --init --local-passphrase bench-local >/dev/null 2>&1
echo "aide and tripwire databases initialised"

# The night's changes: 1,000 modified, 500 added, 500 removed (spread through the tree, or
# all in one directory with CLUSTERED=1; none with UNCHANGED=1).
python3 - "$TREE" "${CLUSTERED:-0}" "${UNCHANGED:-0}" <<'PY'
import os, sys
tree, clustered, unchanged = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if unchanged:
    sys.exit(0)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs)
if clustered:
    # The 2,000 files in key order from the middle of the tree: one directory's worth.
    mid = len(files) // 2
    modified, removed = files[mid:mid + 1000], files[mid + 1000:mid + 1500]
    added = [os.path.join(os.path.dirname(files[mid]), f"new{i:03d}.dat") for i in range(500)]
else:
    modified, removed = files[0:100000:100], files[50:100000:200]
    added = [os.path.join(os.path.dirname(files[i * 200]), f"new{i:03d}.dat") for i in range(500)]
for p in modified:                     # replaced, so the cached tree stays intact
    data = open(p, "rb").read()
    tmp = p + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(b"changed\n" + data[8:])
    os.rename(tmp, p)
for p in removed:
    os.remove(p)
for p in added:
    with open(p, "wb") as fh:
        fh.write(os.urandom(4096))
PY
date -d tomorrow +%F > "$W/today"

echo 0 > "$W/worker_peak"
watch_workers() {
  local worker_peak=0
  while kill -0 "$pid" 2>/dev/null; do
    for w in $(pgrep -f vigil-worker || true); do
      v=$(peak "$w"); [ "${v:-0}" -gt "$worker_peak" ] && worker_peak=$v && echo "$worker_peak" > "$W/worker_peak"
    done
    sleep 0.05
  done
}

# An untimed run of the plugin alone first: on this machine the first heavy command after a
# quieter spell (here the peers' initialisation) runs up to a third slower (the worker's CPU
# time was 1.22-1.27 s right after another scan, 1.36-1.56 s after 35 s idle), and the plugin
# alone, timed below, runs right after vigil's scans; both are timed in the same state.
plugin_alone() {
  target/release/vigild plugin run "$W/plugins/libvigil_files.so" --root "$TREE" \
    --config '{"paths":["/"]}'
}
warm
plugin_alone >/dev/null 2>&1
load_v=$(cut -d' ' -f1 /proc/loadavg)
warm
t0=$(now); vigil scan --wait >/dev/null; t1=$(now)
size2=$(db_size)
live2=$(compacted 2)
changes=$(vigil log scans --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["changes_found"])')
# The worker's peak RSS is watched on a second, untimed scan of the same day (the same work:
# the same tree against the same baseline), since polling /proc every 50 ms takes CPU from
# the scan it watches.
watch_workers & watcher=$!
warm
vigil scan --wait >/dev/null
kill "$watcher" 2>/dev/null || true

warm
p0=$(now)
plugin_alone >"$W/items.ndjson" 2>"$W/plugin.err"
p1=$(now)
# The mean stored size of a value (an item's JSON without its key), for the growth's ratio.
value_size=$(python3 -c '
import json, sys
n = total = 0
for line in open(sys.argv[1]):
    item = json.loads(line)
    n += 1
    total += len(json.dumps({"a": item.get("attributes", {}), "c": item.get("content")}, separators=(",", ":")))
print(total // max(n, 1))' "$W/items.ndjson")
rm -f "$W/items.ndjson"

warm
w0=$(now); tripwire --check >"$W/tw.out" 2>&1 || true; w1=$(now)   # non-zero when it finds changes
tw_found=$(awk '/Total violations found/ {print $4}' "$W/tw.out")

warm
a0=$(now); aide --config "$W/aide.conf" --check >"$W/aide.out" 2>&1 || true; a1=$(now)
warm
b0=$(now); aide --config "$W/aide1.conf" --check >/dev/null 2>&1 || true; b1=$(now)
/usr/bin/time -f '%M' -o "$W/aide.rss" aide --config "$W/aide.conf" --check >/dev/null 2>&1 || true
aide_rss=$(tail -1 "$W/aide.rss")

python3 - "$f0" "$f1" "$t0" "$t1" "$p0" "$p1" "$w0" "$w1" "$a0" "$a1" "$b0" "$b1" \
  "$(peak $pid)" "$(cat "$W/worker_peak")" "$changes" "$aide_rss" "$CORES" "$load_v" \
  "$size1" "$size2" "${tw_found:-?}" "$live1" "$live2" "$value_size" <<'PY'
import os, sys
f0, f1, t0, t1, p0, p1, w0, w1, a0, a1, b0, b1 = map(float, sys.argv[1:13])
daemon, worker, changes, aide_rss, cores, load, size1, size2, tw_found, live1, live2, vsize = sys.argv[13:25]
first, v, plug, tw, a, a1 = f1 - f0, t1 - t0, p1 - p0, w1 - w0, a1 - a0, b1 - b0
print(f"load average before the day-2 scan: {load}")
print(f"vigil first scan (no baseline):          {first:.2f} s")
print(f"vigil scan --wait (scan + store + diff): {v:.2f} s, {changes} changes")
print(f"files plugin alone (vigild plugin run):  {plug:.2f} s   vigil / plugin: {v / plug:.2f}x")
print(f"tripwire --check:                        {tw:.2f} s   tripwire / vigil: {tw / v:.1f}x ({tw_found} violations)")
print(f"aide --check, num_workers={cores}:             {a:.2f} s   aide / vigil: {a / v:.1f}x")
print(f"aide --check, num_workers=1:             {a1:.2f} s   aide / vigil: {a1 / v:.1f}x")
print(f"peak RSS: vigild {int(daemon)/1024:.1f} MB, worker {int(worker)/1024:.1f} MB, aide {int(aide_rss or 0)/1024:.1f} MB")
print(f"database file: {int(size1)/2**20:.1f} MiB after day 1, {int(size2)/2**20:.1f} MiB after day 2 (+{(int(size2)-int(size1))/2**20:.2f} MiB)")
grown = int(live2) - int(live1)
# Values the night changed: modified and added files (a removal stores no value).
new_values = 0 if os.environ.get("UNCHANGED") == "1" else 1500
changed = new_values * int(vsize)
ratio = f"{grown / changed:.1f}x the {new_values} changed values ({changed/2**10:.0f} KiB at {vsize} B each)" if changed else "no changed values"
print(f"database compacted: {int(live1)/2**20:.2f} MiB after day 1, {int(live2)/2**20:.2f} MiB after day 2 (+{grown/2**10:.0f} KiB: {ratio})")
PY
