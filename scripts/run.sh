#!/usr/bin/env bash
# Set-up command 1: install dependencies, build, and run the default model.
#   ./scripts/run.sh                       # a story from the default model
#   ./scripts/run.sh -p "Your prompt" -n 64 # any `pensieve run` flags
# The default model is ../shared/models/stories260K.gguf (override with MODEL=path).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
MODEL=${MODEL:-../shared/models/stories260K.gguf}
if [ $# -eq 0 ]; then set -- -p "Once upon a time" -n 200; fi
exec ./build/pensieve run -m "$MODEL" "$@"
