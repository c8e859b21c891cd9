#!/usr/bin/env bash
# Set-up command 1: install dependencies, build, and serve the default model.
#   ./scripts/run.sh                 # http://127.0.0.1:8080 : chat page, OpenAI + Anthropic APIs
#   ./scripts/run.sh --port 9000     # any `pensieve serve` flags
#   MODEL=path/to/model.gguf ./scripts/run.sh
# The default model is ../shared/models/stories260K.gguf (a tiny story-writing LLaMA).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
MODEL=${MODEL:-../shared/models/stories260K.gguf}
exec ./build/pensieve serve -m "$MODEL" "$@"
