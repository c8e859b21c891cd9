#!/bin/sh
# Runs the server suites against a pensieve binary ($PENSIEVE_BIN, else build/pensieve):
# the npm clients, hostile clients, and a soak of SOAK_SECONDS (default 30).
# Installs the pinned dependencies (npm ci, from package-lock.json) on first use.
set -eu
cd "$(dirname "$0")"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test --test-concurrency=1 "$@"
