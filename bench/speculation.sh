#!/usr/bin/env bash
# Speculative decoding on the layer-skip pair (issue 16): alternating runs of pensieve
# without and with speculation and of the reference engine's llama-speculative-simple on
# the same files, 128 tokens from "Once upon a time", 2 threads; then 1 and 4 concurrent
# sampling clients with and without --draft-layers 2. The host is shared: read ratios
# within a pair, with the bandwidth measured before and after.
#   bench/speculation.sh [MODELS_DIR] [PAIRS]      (default ../models, 3 pairs)
# Needs build/pensieve and, for the reference rows, REF_BIN (default
# /root/.cache/pensieve-ref/build/bin; rows are skipped when it is missing).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
P=$ROOT/build/pensieve
OUT=${1:-../models}
PAIRS=${2:-3}
REF=${REF_BIN:-/root/.cache/pensieve-ref/build/bin}
SHARED=${PENSIEVE_SHARED:-../shared}
cd "$OUT"

# The pair: a target whose layers from the 3rd on add 2% of their output (its first two
# layers decide most tokens, like a trained model with a good early exit), and a draft
# that is the same file's first two layers.
make_pair() {
  local py=/usr/bin/python3 vocab="$ROOT/$SHARED/vocab/ggml-vocab-llama-spm.gguf"
  [ -f skip-target-F16.gguf ] || $py "$ROOT/$SHARED/tools/synth_gguf.py" --vocab "$vocab" --preset 1b \
    --deep-from 2 --deep-scale 0.02 -o skip-target-F16.gguf
  [ -f skip-draft-F16.gguf ] || $py "$ROOT/$SHARED/tools/synth_gguf.py" --vocab "$vocab" --preset 1b \
    --keep-layers 2 -o skip-draft-F16.gguf
  for m in skip-target skip-draft; do
    [ -f $m-Q4_0.gguf ] || $P quantize $m-F16.gguf $m-Q4_0.gguf Q4_0 > /dev/null
  done
}
make_pair

# tok/s, drafted, accepted, passes and the md5 of the text of one pensieve run.
run() {
  local text err
  text=$($P run -m skip-target-Q4_0.gguf -p "Once upon a time" -n 128 --ignore-eos -t 2 "$@" 2> /tmp/spec.err)
  err=$(awk '/^generation/{for(i=1;i<=NF;i++) if($i=="tokens/s") t=$(i-1)}
             /^speculation/{for(i=1;i<=NF;i++){if($i=="forward")p=$(i-1); if($i=="second")l=$(i-1); if($i=="kept")k=$(i-1)}
                            s=$2" drafted, "$4" kept, "p" passes, "l" leaves, "k" kept"} END{print t" tok/s", s}' /tmp/spec.err)
  echo "$err  [$(echo "$text" | md5sum | cut -c1-8)]"
}
ref_spec() {
  [ -x "$REF/llama-speculative-simple" ] || { echo "(no reference)"; return; }
  "$REF/llama-speculative-simple" -m skip-target-Q4_0.gguf -md skip-draft-Q4_0.gguf --spec-type draft-simple \
    -p "Once upon a time" -n 128 --temp 0 -t 2 -td 2 "$@" 2>&1 |
    awk '/decoded/{for(i=1;i<=NF;i++) if($i=="speed:") t=$(i+1)} /n_drafted/{d=$NF} /n_accept /{a=$NF}
         END{print t" tok/s, "d" drafted, "a" kept"}'
}
ref_plain() {
  [ -x "$REF/llama-bench" ] || { echo "(no reference)"; return; }
  "$REF/llama-bench" -m skip-target-Q4_0.gguf -p 0 -n 128 -t 2 -r 1 -o csv 2>/dev/null | tail -1 |
    awk -F, '{gsub(/"/,"",$0); print $(NF-1)" tok/s"}'
}

echo "bandwidth: $($P bench --bandwidth -t 2 2>&1 | tail -1)"
for pair in $(seq "$PAIRS"); do
  echo "pair $pair"
  echo "  pensieve plain, greedy:            $(run --temp 0)"
  echo "  pensieve --draft-model (default):  $(run --temp 0 --draft-model skip-draft-Q4_0.gguf)"
  echo "  pensieve --draft-layers 2:         $(run --temp 0 --draft-layers 2)"
  echo "  pensieve --draft-layers 2 --draft-tree: $(run --temp 0 --draft-layers 2 --draft-tree)"
  echo "  pensieve --draft-layers 2 --draft-fixed --draft-max 3: $(run --temp 0 --draft-layers 2 --draft-fixed --draft-max 3)"
  echo "  same, --draft-tree:                $(run --temp 0 --draft-layers 2 --draft-fixed --draft-max 3 --draft-tree)"
  echo "  pensieve plain, --temp 0.8:        $(run --temp 0.8 --seed 7)"
  echo "  pensieve --draft-layers 2, --temp 0.8: $(run --temp 0.8 --seed 7 --draft-layers 2)"
  echo "  reference plain (llama-bench tg128): $(ref_plain)"
  echo "  reference speculative-simple, n-max 3: $(ref_spec --spec-draft-n-max 3)"
  echo "  reference speculative-simple, n-max 8: $(ref_spec --spec-draft-n-max 8)"
done
echo "bandwidth: $($P bench --bandwidth -t 2 2>&1 | tail -1)"

if [ "${SKIP_LOAD:-0}" != 1 ]; then
  for args in "" "--draft-layers 2"; do
    echo "serve ${args:-(no speculation)}: 1 and 4 sampling clients (temperature 0.8, 64 tokens)"
    node "$ROOT/bench/load_test.mjs" --bin "$P" --model "$PWD/skip-target-Q4_0.gguf" --levels 1,4 --duration 20 \
      --max-tokens 64 --min-scaling 0 "--server-args=$args" 2>/dev/null | grep -E "^\|"
  done
fi
