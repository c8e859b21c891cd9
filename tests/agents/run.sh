#!/bin/sh
# Runs the coding-agent CLIs (Claude Code, Codex CLI, opencode; exact versions pinned in
# package.json / package-lock.json) against a pensieve binary ($PENSIEVE_BIN, else
# build/pensieve) on a random-weight long-context model written at test time.
# Installs the pinned CLIs (npm install) on first use; the npm registry is needed then, and
# opencode fetches its provider package (@ai-sdk/openai-compatible) on its first run.
set -eu
cd "$(dirname "$0")"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    # npm install, not npm ci: opencode-ai lists platform packages (darwin, windows, musl)
    # the registry cannot resolve here, which npm ci reports as a lock file out of sync.
    # The CLIs are pinned to exact versions in package.json either way.
    npm install --no-audit --no-fund --loglevel=error
fi
exec node --test --test-concurrency=1 "$@"
