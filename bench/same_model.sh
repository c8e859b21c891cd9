#!/usr/bin/env bash
# Do pensieve and the reference engine read FILE as the same model? Greedy continuation of
# one prompt by both (the reference's llama-simple samples greedily; pensieve run --temp 0)
# must be the same text. A sanity check before comparing speeds on a file.
#   bench/same_model.sh FILE [N_TOKENS=16] [PROMPT]
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=$1
N=${2:-16}
PROMPT=${3:-Once upon a time, there was a little}
BIN=$(bench/ref_engine.sh --bin-dir)
[ -x "$BIN/llama-simple" ] || { echo "no reference build: run bench/ref_engine.sh first" >&2; exit 1; }

# llama-simple echoes the prompt (its pieces) before the continuation; pensieve prints only
# the continuation. Both end with a newline.
ref=$("$BIN/llama-simple" -m "$FILE" -n "$N" "$PROMPT" 2>/dev/null)
ours=$(./build/pensieve run -m "$FILE" -p "$PROMPT" -n "$N" --temp 0 -t 2 2>/dev/null)
printf 'reference: %q\npensieve:  %q\n' "$ref" "$ours"
if [ -n "$ours" ] && [ "${ref%"$ours"}" != "$ref" ]; then
  echo "same: the reference's output ends with pensieve's $N-token continuation"
else
  echo "DIFFERENT"
  exit 1
fi
