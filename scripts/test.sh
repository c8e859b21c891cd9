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

echo "== release build + tests"
BUILD_DIR=build ./scripts/build.sh
(cd build && ctest --output-on-failure -j"$JOBS" --timeout 900)

echo "== server tests: official npm clients (openai, @anthropic-ai/sdk), hostile clients, a ${SOAK_SECONDS:-600} s soak"
SOAK_SECONDS="${SOAK_SECONDS:-600}" PENSIEVE_BIN="$PWD/build/pensieve" ./tests/server/run.sh

echo "== coding-agent CLIs (Claude Code, Codex CLI, opencode) against pensieve serve"
PENSIEVE_BIN="$PWD/build/pensieve" ./tests/agents/run.sh

echo "== chat page in headless chromium (puppeteer-core); screenshots in tests/browser/artifacts/"
PENSIEVE_BIN="$PWD/build/pensieve" sh ./tests/browser/run.sh

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  echo "== ASan + UBSan build + tests"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPENSIEVE_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$JOBS"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j"$JOBS" --timeout 1800)
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  # Every tests/fuzz/fuzz_*.cpp target, FUZZ_SECONDS each (default 30: 9 targets ~5.3 min with start-up),
  # on its committed seed corpus; new inputs go to build-fuzz/corpus-<name>.
  echo "== fuzzing every parser for ${FUZZ_SECONDS:-30}s each"
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
echo "== all tests passed"
