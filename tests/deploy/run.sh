#!/bin/sh
# Three `pensieve serve` replicas behind nginx (deploy/nginx/pensieve.conf), 16 clients
# with session ids, one replica killed half way (tests/deploy/failover.test.mjs). Skipped,
# saying so, when nginx is not installed (scripts/setup.sh tries to install it).
set -eu
cd "$(dirname "$0")"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "deploy test SKIPPED: nginx is not installed (apt-get install nginx)"
    exit 0
fi
exec node --test --test-concurrency=1 "$@"
