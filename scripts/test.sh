#!/usr/bin/env bash
# Set-up command 2: every test. Installs dependencies, then
#   1. Release build + all tests (unit, golden against ../shared/reference, CLI);
#   2. AddressSanitizer + UBSan build + all tests;
#   3. the GGUF fuzzer (libFuzzer, clang) for a bounded time on the committed corpus.
# FUZZ_SECONDS (default 60) bounds step 3, SOAK_SECONDS (default 600) the server soak;
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
  echo "== fuzzing the GGUF reader for ${FUZZ_SECONDS:-60}s"
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPENSIEVE_FUZZ=ON -DPENSIEVE_TESTS=OFF >/dev/null
  cmake --build build-fuzz -j"$JOBS" --target fuzz_gguf
  mkdir -p build-fuzz/corpus-gguf
  ./build-fuzz/fuzz_gguf -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 build-fuzz/corpus-gguf tests/fuzz/corpus/gguf 2>&1 | tail -n 20
  echo "fuzz: no crashes"
fi
echo "== all tests passed"
