#!/usr/bin/env bash
# Set-up command 2: every test. Installs dependencies, then
#   1. Release build + all tests (unit, golden against ../shared/reference, CLI);
#   2. AddressSanitizer + UBSan build + all tests;
#   3. every fuzzer (libFuzzer, clang; tests/fuzz/) for a bounded time on its committed corpus.
# FUZZ_SECONDS (default 30, per fuzzer) bounds step 3, SOAK_SECONDS (default 600) the server soak;
# SKIP_ASAN=1 / SKIP_FUZZ=1 skip steps.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
JOBS=$(nproc)
# The node suites run under a bound each (coreutils timeout; the ctest steps have
# --timeout): a hang fails its own step by name rather than holding CI to its limit.
bounded() { local seconds=$1; shift; timeout --kill-after=30 "$seconds" "$@"; }
# Each step says how long the previous one took (CI allows 90 minutes for all of them).
STEP_START=$SECONDS
step() {
  [ -z "${STEP_NAME:-}" ] || echo "-- $STEP_NAME took $((SECONDS - STEP_START)) s"
  STEP_NAME=$1; STEP_START=$SECONDS
  echo "== $1"
}

step "release build"
BUILD_DIR=build ./scripts/build.sh
step "release tests"
(cd build && ctest --output-on-failure -j"$JOBS" --timeout 900)

step "server tests: official npm clients (openai, @anthropic-ai/sdk), hostile clients, a ${SOAK_SECONDS:-600} s soak"
SOAK_SECONDS="${SOAK_SECONDS:-600}" PENSIEVE_BIN="$PWD/build/pensieve" bounded $((${SOAK_SECONDS:-600} + 1500)) ./tests/server/run.sh

step "deploy: 3 replicas behind nginx (deploy/nginx/pensieve.conf), one killed half way, one drained"
PENSIEVE_BIN="$PWD/build/pensieve" bounded 900 ./tests/deploy/run.sh

step "coding-agent CLIs (Claude Code, Codex CLI, opencode) against pensieve serve"
PENSIEVE_BIN="$PWD/build/pensieve" bounded 1200 ./tests/agents/run.sh

step "chat page in headless chromium (puppeteer-core); screenshots in tests/browser/artifacts/"
PENSIEVE_BIN="$PWD/build/pensieve" bounded 900 sh ./tests/browser/run.sh

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  step "ASan + UBSan build"
  # -O1 -g1 (line tables: reports keep file:line): the sanitizers' usual flags. Compiling
  # was the longest step of the whole run: -O2 -g 1651 s, -O1 -g1 750 s for the whole
  # build (both beside other work), the tests 353 s -> 381 s (2026-12-06).
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPENSIEVE_SANITIZE=ON \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" >/dev/null
  cmake --build build-asan -j"$JOBS"
  step "ASan + UBSan tests"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j"$JOBS" --timeout 1800)
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  # Every tests/fuzz/fuzz_*.cpp target, FUZZ_SECONDS each (default 30: 9 targets ~5.3 min with start-up),
  # on its committed seed corpus; new inputs go to build-fuzz/corpus-<name>.
  step "fuzzing every parser for ${FUZZ_SECONDS:-30}s each"
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPENSIEVE_FUZZ=ON -DPENSIEVE_TESTS=OFF >/dev/null
  cmake --build build-fuzz -j"$JOBS" --target fuzzers
  for src in tests/fuzz/fuzz_*.cpp; do
    name=$(basename "$src" .cpp)
    corpus=${name#fuzz_}
    mkdir -p "build-fuzz/corpus-$corpus"
    echo "-- $name"
    ./build-fuzz/"$name" -max_total_time="${FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "build-fuzz/corpus-$corpus" "tests/fuzz/corpus/$corpus" 2>&1 | tail -n 12
  done
  echo "fuzz: no crashes"
fi
step "all tests passed"
echo "-- total $SECONDS s"
