#!/usr/bin/env bash
# `vigil ui` at scale (issue 18): the real release `vigil ui` in tmux against the real vigild
# on benches/tasks' database (100,000 tasks, 1,000,000 events), measured from outside the
# way a person sees it, by polling `tmux capture-pane` (each poll costs ~2-5 ms of its own,
# so the numbers are upper bounds):
#   first screen   from starting `vigil ui` until the header's open count and the first
#                  page of tasks are on screen (target < 300 ms)
#   keystroke      from `send-keys` of one filter character until the prompt shows it, and
#                  until the filtered list (its new count) is on screen (target < 100 ms)
# Build the store first (kept in WORK) with
#   WORK=/tmp/vigil-tasks-bench benches/tasks/run.sh
# then
#   WORK=/tmp/vigil-tasks-bench benches/ui/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${WORK:?set WORK to the directory benches/tasks/run.sh built (WORK=... benches/tasks/run.sh)}"
[[ -n ${NO_BUILD:-} ]] || cargo build --release -p vigil >/dev/null 2>&1
VIGILD=$PWD/target/release/vigild
VIGIL=$PWD/target/release/vigil
SOCK=$WORK/vigil.sock
TMUX_SOCK=$(mktemp -u /tmp/vigil-ui-bench.XXXXXX)
rm -f "$SOCK"
"$VIGILD" --config "$WORK/config.toml" >"$WORK/vigild-ui.log" 2>&1 &
DAEMON=$!
cleanup() {
  tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
  kill "$DAEMON" 2>/dev/null || true
  wait "$DAEMON" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 600); do [[ -S $SOCK ]] && "$VIGIL" --socket "$SOCK" status >/dev/null 2>&1 && break; sleep 0.1; done
"$VIGIL" --socket "$SOCK" status | head -3

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
capture() { tmux -S "$TMUX_SOCK" capture-pane -p -t ui; }
# Polls until the pane matches the extended regex $1 (at most 10 s); prints the elapsed ms
# since $2.
until_shown() {
  local end=$(( $(now_ms) + 10000 ))
  while ! capture | grep -Eq -- "$1"; do
    (( $(now_ms) < end )) || { echo "timed out waiting for /$1/" >&2; capture >&2; exit 1; }
  done
  echo $(( $(now_ms) - $2 ))
}

for run in 1 2 3 4 5; do
  tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
  for _ in $(seq 100); do [[ -e $TMUX_SOCK ]] || break; sleep 0.02; done
  rm -f "$TMUX_SOCK"
  t0=$(now_ms)
  TERM=xterm-256color tmux -S "$TMUX_SOCK" new-session -d -s ui -x 160 -y 50 "$VIGIL --socket $SOCK ui; sleep 60"
  first=$(until_shown 'of [0-9]+ tasks' "$t0")
  until_shown 'Open: [0-9]+' "$t0" >/dev/null
  echo "run $run: first screen (header and first page, $(capture | grep -Eo "[0-9]+ tasks")) in $first ms"
done

tmux -S "$TMUX_SOCK" send-keys -t ui /
until_shown '/▏' "$(now_ms)" >/dev/null
# Polls until the task count on screen differs from $1 (at most 3 s); prints the elapsed ms
# since $2, or "unchanged".
until_count_differs() {
  local end=$(( $(now_ms) + 3000 ))
  while [[ $(capture | grep -Eo 'of [0-9]+ tasks?' | head -1) == "$1" ]]; do
    (( $(now_ms) < end )) || { echo unchanged; return; }
  done
  echo $(( $(now_ms) - $2 ))
}

typed=""
for c in o p e n s s l; do
  typed+=$c
  before=$(capture | grep -Eo 'of [0-9]+ tasks?' | head -1)
  t0=$(now_ms)
  tmux -S "$TMUX_SOCK" send-keys -t ui -l "$c"
  echo_ms=$(until_shown "/$typed▏" "$t0")
  list_ms=$(until_count_differs "$before" "$t0")
  after=$(capture | grep -Eo 'of [0-9]+ tasks?' | head -1)
  echo "keystroke '$c' (filter \"$typed\"): prompt redrawn in $echo_ms ms, filtered list ($before -> $after) on screen in $list_ms ms"
done
