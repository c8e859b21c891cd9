#!/usr/bin/env bash
# Installs every Debian package pensieve needs to build and test. Idempotent; run as root
# (or with sudo available). Safe to re-run: apt skips what is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  clang libclang-rt-14-dev            # libFuzzer + sanitizers for the fuzz target
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libssl-dev
  libutf8proc-dev libpcre2-dev pkg-config
  python3 python3-numpy python3-jinja2
  chromium                            # headless browser test of the chat page (tests/browser)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Node.js + npm for the client tests (tests/server): use the machine's if present.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
# nginx for the deploy test (tests/deploy: replicas behind the load balancer of deploy/).
# Optional: without it that test says it was skipped. Debian's package does not start
# a service in a container (policy-rc.d), and the test runs its own nginx on free ports.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing nginx (optional, for tests/deploy)"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx; } >/dev/null 2>&1 ||
    echo "setup: nginx could not be installed; tests/deploy will be skipped"
fi
echo "setup: all packages present"
