#!/usr/bin/env bash
# Builds the reference engine (llama.cpp) that bench/compare.sh measures pensieve against.
#
# Its source comes only from the npm registry: node-llama-cpp (pinned below) ships the
# engine's full source as a git bundle (llama/gitRelease.bundle). Everything lives in a
# cache folder outside the repository; nothing of it is ever committed:
#   CACHE/npm/         npm i -E --ignore-scripts node-llama-cpp@VERSION (no binary download)
#   CACHE/llama.cpp/   git clone of the bundle
#   CACHE/build/       CMake Release build, native CPU, no network code
#   CACHE/VERSION      package version, snapshot commit and tag, build time
#
#   bench/ref_engine.sh [CACHE]        (default ${PENSIEVE_REF_CACHE:-$HOME/.cache/pensieve-ref})
#   bench/ref_engine.sh --bin-dir [CACHE]   prints the folder of the built tools
#
# Idempotent: each step is skipped when its result is there. The first build takes ~15 min
# on 2 idle cores (81 min on 2026-12-04 with other engineers' builds at load 10-14), under
# `nice -n ${PENSIEVE_REF_NICE:-19}` (others share the machine).
set -euo pipefail

NPM_PACKAGE=node-llama-cpp
NPM_VERSION=3.21.1
# llama-bench: speed; llama-simple / llama-completion: greedy text for cross-checks (this
# snapshot's llama-cli is built only with its server, which we leave out); llama-perplexity;
# llama-speculative-simple: draft-model speculation.
TARGETS=(llama-bench llama-simple llama-completion llama-perplexity llama-speculative-simple)

print_bin_dir=0
if [ "${1:-}" = "--bin-dir" ]; then print_bin_dir=1; shift; fi
CACHE=${1:-${PENSIEVE_REF_CACHE:-$HOME/.cache/pensieve-ref}}
BIN="$CACHE/build/bin"
if [ $print_bin_dir = 1 ]; then echo "$BIN"; exit 0; fi

NICE=${PENSIEVE_REF_NICE:-19}
log() { echo "[ref_engine] $*" >&2; }
mkdir -p "$CACHE"

# 1. The npm package, pinned exactly, without its install scripts (they would try to
#    download prebuilt binaries or build with their own settings).
PKG="$CACHE/npm/node_modules/$NPM_PACKAGE"
installed=$(node -p "require('$PKG/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$NPM_VERSION" ]; then
  log "installing $NPM_PACKAGE@$NPM_VERSION into $CACHE/npm"
  mkdir -p "$CACHE/npm"
  [ -f "$CACHE/npm/package.json" ] || echo '{"private": true}' > "$CACHE/npm/package.json"
  (cd "$CACHE/npm" && npm i -E --ignore-scripts --no-audit --no-fund "$NPM_PACKAGE@$NPM_VERSION")
fi
BUNDLE="$PKG/llama/gitRelease.bundle"
[ -f "$BUNDLE" ] || { log "no git bundle in the package: $BUNDLE"; exit 1; }

# 2. The engine's source, from the bundle.
SRC="$CACHE/llama.cpp"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  log "cloning $BUNDLE"
  rm -rf "$SRC"
  git clone --quiet "$BUNDLE" "$SRC"
fi
commit=$(git -C "$SRC" rev-parse HEAD)
tag=$(git -C "$SRC" describe --tags --always 2>/dev/null || echo "$commit")
release=$(node -p "try{require('$PKG/llama/binariesGithubRelease.json').release}catch(e){''}" 2>/dev/null || true)
commit_date=$(git -C "$SRC" log -1 --format=%cI)
llama_version=$(sed -n 's/^set(LLAMA_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$SRC/CMakeLists.txt" | paste -sd.)

# 3. The tools: Release, tuned to this CPU, no network code (this snapshot has no curl
#    option any more; LLAMA_OPENSSL off), -j2.
missing=()
for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "building ${missing[*]} in $CACHE/build (nice -n $NICE, -j2)"
  start=$(date +%s)
  nice -n "$NICE" cmake -S "$SRC" -B "$CACHE/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DBUILD_SHARED_LIBS=OFF >&2
  nice -n "$NICE" cmake --build "$CACHE/build" -j2 --target "${missing[@]}" >&2
  seconds=$(( $(date +%s) - start ))
  log "built in ${seconds}s"
  {
    echo "package: $NPM_PACKAGE@$NPM_VERSION"
    echo "release: ${release:-unknown}"
    echo "llama.cpp version: ${llama_version:-unknown}"
    echo "commit: $commit"
    echo "describe: $tag"
    echo "commit_date: $commit_date"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${seconds}s (-j2, nice $NICE, load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "cmake: -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF"
  } > "$CACHE/VERSION"
fi
cat "$CACHE/VERSION" >&2
echo "$BIN"
