#!/usr/bin/env bash
# A/B of two builds on the drift benchmark's vigil half: the day-2 `vigil scan --wait` of the
# 100,000-file tree (benches/drift/run.sh generates it in /tmp/vigil-bench) for each checkout
# given, alternating, N rounds, so both share the machine's noise. Each checkout needs a
# release build (cargo build --release --workspace).
#   N=3 benches/drift/ab.sh /path/to/old-checkout /path/to/new-checkout
set -euo pipefail
N=${N:-3}
SRC=/tmp/vigil-bench/tree
for r in $(seq 1 $N); do
for B in "$@"; do
W=$(mktemp -d /tmp/ab.XXXXXX)
TREE="$W/tree"; cp -al "$SRC" "$TREE"; mkdir -p "$W/plugins"
install -m 0755 $B/target/release/libvigil_files.so "$W/plugins/"
cat > "$W/config.toml" <<EOC
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
EOC
mkdir -p $W/nopol
echo "$(date +%F)" > "$W/today"
VIGIL_TODAY_FILE="$W/today" RUST_LOG=warn $B/target/release/vigild --config "$W/config.toml" 2>"$W/vigild.log" &
pid=$!
for _ in $(seq 1 200); do [ -S "$W/vigil.sock" ] && break; sleep 0.05; done
v() { $B/target/release/vigil --socket "$W/vigil.sock" "$@"; }
# What vigild's own threads have written, per thread (its /proc/PID/io also counts the reaped
# worker's stream): "tid=bytes,...". `delta` sums the growth over threads (a thread started
# between the two counts from 0; one that ended in between is not counted).
wrote() { for t in /proc/$pid/task/*; do printf '%s=%s,' "${t##*/}" "$(awk '/^wchar/ {print $2}' $t/io 2>/dev/null)"; done; }
delta() { python3 -c "import sys; p=lambda s: {k: int(v) for k, v in (x.split('=') for x in s.split(',') if x and x.split('=')[1])}; a, b = p(sys.argv[1]), p(sys.argv[2]); print(sum(v - a.get(k, 0) for k, v in b.items()))" "$1" "$2"; }
warm() { find "$TREE" -type f -print0 | xargs -0 cat > /dev/null; }
warm; v scan --wait >/dev/null
size1=$(stat -c %s "$W/state/vigil.redb")
python3 - "$TREE" <<'PY'
import os, sys
tree = sys.argv[1]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs)
for p in files[0:100000:100]:
    data = open(p, "rb").read(); tmp = p + ".tmp"
    with open(tmp, "wb") as fh: fh.write(b"changed\n" + data[8:])
    os.rename(tmp, p)
for p in files[50:100000:200]: os.remove(p)
for i in range(500):
    with open(os.path.join(os.path.dirname(files[i * 200]), f"new{i:03d}.dat"), "wb") as fh: fh.write(os.urandom(4096))
PY
date -d tomorrow +%F > "$W/today"
warm
w0=$(wrote)
t0=$(date +%s.%N); v scan --wait >/dev/null; t1=$(date +%s.%N)
w1=$(wrote)
size2=$(stat -c %s "$W/state/vigil.redb")
echo "round $r $B: $(python3 -c "print(f'{$t1-$t0:.2f} s  vigild wrote {$(delta $w0 $w1)/2**20:.1f} MiB, file +{($size2-$size1)/2**20:.1f} MiB')")  load $(cut -d' ' -f1 /proc/loadavg)"
kill $pid; wait $pid 2>/dev/null || true; rm -rf "$W"
done; done
