#!/usr/bin/env bash
# Makes the benchmark models: a random-weight LLaMA of the ~0.85B "1b" shape (the shape of
# ../shared/reference/bench.md), quantized by pensieve to the four reference types.
#   bench/make_models.sh [OUT_DIR]     (default: ../models beside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-../models}
SHARED=${PENSIEVE_SHARED:-../shared}
mkdir -p "$OUT"
F16="$OUT/synth-1b-F16.gguf"
if [ ! -f "$F16" ]; then
  # Debian's python3 has numpy (python3-numpy from scripts/setup.sh).
  /usr/bin/python3 "$SHARED/tools/synth_gguf.py" --vocab "$SHARED/vocab/ggml-vocab-llama-spm.gguf" \
    --preset 1b -o "$F16"
fi
for t in Q4_0 Q8_0 Q4_K_M TQ2_0; do
  [ -f "$OUT/synth-1b-$t.gguf" ] || ./build/pensieve quantize "$F16" "$OUT/synth-1b-$t.gguf" "$t"
done
ls -la "$OUT"
