#!/bin/sh
# Runs the chat-page browser test: headless Debian chromium driven by puppeteer-core,
# against $PENSIEVE_BIN (default: build/pensieve). Skips (exit 0) when chromium is not
# installed. Installs the pinned dependencies (npm ci, from package-lock.json) on first use.
# Screenshots are written to tests/browser/artifacts/. BROWSER_TEST_TIMEOUT (seconds,
# default 240) bounds the whole run.
set -eu
cd "$(dirname "$0")"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "browser test: SKIPPED: $CHROMIUM not found (install Debian's chromium: apt-get install chromium)"
    exit 0
fi
export CHROMIUM
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
exec timeout --kill-after=10 "${BROWSER_TEST_TIMEOUT:-240}" \
    node --test --test-concurrency=1 --test-timeout=180000 "$@" chat_page.test.mjs
