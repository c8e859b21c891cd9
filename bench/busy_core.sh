#!/usr/bin/env bash
# Generation with one core busy (issue 18): pensieve and the reference's llama-bench,
# alternating, tg64 on one file, first quiet and then while a busy loop takes a core.
#   bench/busy_core.sh MODEL.gguf [PAIRS]      (default 3 pairs)
# Needs build/pensieve and REF_BIN (default /root/.cache/pensieve-ref/build/bin).
set -uo pipefail
cd "$(dirname "$0")/.."
P=$PWD/build/pensieve
M=${1:?usage: bench/busy_core.sh MODEL.gguf [PAIRS]}
PAIRS=${2:-3}
R=${REF_BIN:-/root/.cache/pensieve-ref/build/bin}/llama-bench
echo "bandwidth: $($P bench --bandwidth -t 2 2>&1 | tail -1)"
for busy in 0 1; do
  HOG=
  if [ $busy = 1 ]; then
    sh -c 'while :; do :; done' &
    HOG=$!
    sleep 1
  fi
  for pair in $(seq "$PAIRS"); do
    a=$($P bench -m "$M" -p 0 -n 64 -r 3 -t 2 2>/dev/null | grep tg64 | awk -F'|' '{print $(NF-1)}' | awk '{print $1}')
    b=$($R -m "$M" -p 0 -n 64 -r 3 -t 2 -o csv 2>/dev/null | tail -1 | awk -F, '{gsub(/"/,"",$0); print $(NF-1)}')
    echo "busy=$busy pair $pair: pensieve $a reference ${b:-(none)}"
  done
  [ -n "$HOG" ] && kill "$HOG"
done
echo "bandwidth: $($P bench --bandwidth -t 2 2>&1 | tail -1)"
