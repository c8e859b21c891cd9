#!/usr/bin/env bash
# pp512 / tg128 of pensieve on the 1b benchmark models (bench/make_models.sh), 2 threads,
# next to the reference engine's figures from ../shared/reference/bench.md, as ratios,
# plus the share of memory bandwidth used in generation. Prints a markdown table.
#   bench/run_bench.sh [MODEL_DIR] [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-../models}
REPS=${2:-3}
BW=76.9  # GB/s, measured 2-thread read bandwidth of this machine kind (bench.md)
declare -A REF_PP=([Q4_0]=231.49 [Q8_0]=266.29 [Q4_K_M]=213.53 [TQ2_0]=143.37)
declare -A REF_TG=([Q4_0]=53.43 [Q8_0]=31.86 [Q4_K_M]=32.87 [TQ2_0]=46.54)
echo "| type | file size | pp512 tok/s | ref | ratio | tg128 tok/s | ref | ratio | weight GB/s in tg | share of bandwidth |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in Q4_0 Q8_0 Q4_K_M TQ2_0; do
  f="$DIR/synth-1b-$t.gguf"
  [ -f "$f" ] || { echo "| $t | (missing: run bench/make_models.sh) |"; continue; }
  json=$(./build/pensieve bench -m "$f" -p 512 -n 128 -r "$REPS" -t 2 --json 2>/dev/null)
  size=$(stat -c %s "$f")
  /usr/bin/python3 - "$t" "$size" "$json" "${REF_PP[$t]}" "${REF_TG[$t]}" "$BW" <<'PY'
import json, sys
t, size, js, ref_pp, ref_tg, bw = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
pp, tg = js["pp_tps"], js["tg_tps"]
gbs = size * tg / 1e9
print(f"| {t} | {size/2**20:.2f} MiB | {pp:.2f} ± {js['pp_stdev']:.2f} | {ref_pp} | {pp/ref_pp:.2f}x | "
      f"{tg:.2f} ± {js['tg_stdev']:.2f} | {ref_tg} | {tg/ref_tg:.2f}x | {gbs:.1f} | {100*gbs/bw:.0f}% |")
PY
done
