#!/usr/bin/env bash
# Benchmarks the `files` scanner against b3sum on a 100,000-file, ~1.9 GB tree.
#
#   benches/files/run.sh            # ROUNDS=3, tree cached in $BENCH_DIR (/tmp/vigil-bench)
#   ROUNDS=5 BENCH_DIR=/data/b benches/files/run.sh
#
# The baseline is b3sum run in parallel, one process per core over batches of 500 files
# (`xargs -P`; b3sum itself also threads each large file), so the ratio is against what the
# machine can really do, not a single-threaded loop over small files. Every timed command
# runs right after the whole tree is read once untimed, so all contenders see a warm page
# cache (idle pages are evicted after ~30 s on the bench machines). Reported per round and as
# medians: wall seconds, CPU seconds (user+sys: steadier than wall when the machine is
# shared), peak RSS (MB), the wall-time ratio to b3sum and, for vigild, the worker's own
# peak RSS (from `vigild plugin run`). Targets: vigild <= 1.5x b3sum, worker < 32 MB RSS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/vigil-bench}"
TREE="$BENCH_DIR/tree"
ROUNDS="${ROUNDS:-3}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
CONFIG='{"paths":["/"]}'

# 1. The tree, generated once.
if [[ ! -f "$BENCH_DIR/.complete" ]]; then
    echo "generating $TREE ..."
    rm -rf "$TREE"
    mkdir -p "$TREE"
    python3 "$HERE/gen_tree.py" "$TREE"
    touch "$BENCH_DIR/.complete"
fi

# 2. b3sum, the baseline: Debian's package, or from crates.io when apt cannot have it.
if ! command -v b3sum >/dev/null; then
    echo "installing b3sum ..."
    SUDO=()
    [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
    if ! "${SUDO[@]}" apt-get install -y b3sum >/dev/null 2>&1; then
        cargo install --locked b3sum
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
fi
JOBS="${JOBS:-$(nproc)}"

# 3. Release builds: the direct harness always, the real host path when it builds.
cd "$REPO"
cargo build --release -p vigil-files --example scan
HAVE_VIGILD=0
if cargo build --release -p vigil -p vigil-worker -p vigil-files && "$TARGET/release/vigild" plugin run --help >/dev/null 2>&1; then
    HAVE_VIGILD=1
else
    echo "note: vigild plugin run is not available; benchmarking the direct harness only" >&2
fi
SCAN="$TARGET/release/examples/scan"
VIGILD="$TARGET/release/vigild"
PLUGIN="$TARGET/release/libvigil_files.so"

warm() { find "$TREE" -type f -print0 | xargs -0 cat >/dev/null; }

# timed NAME CMD...: warms the tree, runs CMD (stdout to /dev/null) under /usr/bin/time and
# records wall, CPU and peak RSS (for vigild, also the worker's peak RSS from its stderr).
declare -A WALL RSS CPU WRSS
timed() {
    local name=$1
    shift
    local out
    out=$(mktemp)
    warm
    /usr/bin/time -f '%e %M %U %S' -o "$out" "$@" >/dev/null 2>"$BENCH_DIR/$name.stderr" || {
        echo "$name failed:" >&2
        tail -5 "$BENCH_DIR/$name.stderr" >&2
        exit 1
    }
    read -r w r u s <"$out"
    rm -f "$out"
    c=$(echo "$u + $s" | bc -l)
    WALL[$name]+="$w "
    RSS[$name]+="$r "
    CPU[$name]+="$c "
    local extra=""
    if [[ -n "${WALL[b3sum]:-}" && $name != b3sum ]]; then
        local b
        b=$(echo "${WALL[b3sum]}" | awk '{print $NF}')
        extra+=$(printf '  %.2fx b3sum' "$(echo "$w / $b" | bc -l)")
    fi
    local wk
    wk=$(sed -n 's/.*worker peak RSS \([0-9]*\) KiB.*/\1/p' "$BENCH_DIR/$name.stderr" | tail -1)
    if [[ -n "$wk" ]]; then
        WRSS[$name]+="$wk "
        extra+=$(printf '  worker %.1f MB' "$(echo "$wk / 1024" | bc -l)")
    fi
    printf '  %-8s %6.2f s wall  %6.2f s cpu  %6.1f MB%s\n' "$name" "$w" "$c" "$(echo "$r / 1024" | bc -l)" "$extra"
}

export TREE JOBS

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    timed b3sum bash -c 'find "$TREE" -type f -print0 | xargs -0 -P"$JOBS" -n500 b3sum'
    timed harness "$SCAN" "$TREE" "$CONFIG"
    if [[ $HAVE_VIGILD -eq 1 ]]; then
        timed vigild "$VIGILD" plugin run "$PLUGIN" --root "$TREE" --config "$CONFIG"
    fi
done

# Medians over the rounds.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
B=$(echo "${WALL[b3sum]}" | median)
echo
echo "median over $ROUNDS rounds (tree: $(find "$TREE" -type f | wc -l) files, $(du -sh "$TREE" | cut -f1); b3sum: xargs -P$JOBS -n500):"
for name in b3sum harness vigild; do
    [[ -n "${WALL[$name]:-}" ]] || continue
    w=$(echo "${WALL[$name]}" | median)
    r=$(echo "${RSS[$name]}" | median)
    c=$(echo "${CPU[$name]}" | median)
    worker=""
    if [[ -n "${WRSS[$name]:-}" ]]; then
        worker=$(printf '  worker peak RSS %.1f MB' "$(echo "$(echo "${WRSS[$name]}" | median) / 1024" | bc -l)")
    fi
    printf '  %-8s %6.2f s wall (ratio to b3sum %.2f)  %6.2f s cpu  peak RSS %6.1f MB%s\n' \
        "$name" "$w" "$(echo "$w / $B" | bc -l)" "$c" "$(echo "$r / 1024" | bc -l)" "$worker"
done
