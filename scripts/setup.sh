#!/usr/bin/env bash
# Installs everything Strata needs to build and test on Debian 12. Idempotent; run as root
# (or with sudo available). Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libfmt-dev
  libxxhash-dev libzstd-dev libpcre2-dev libutf8proc-dev libssl-dev liburing-dev
  python3 python3-jinja2 python3-numpy
  gnuplot-nox
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js comes with the machine image (node 20, npm 11); Debian's nodejs is older, so it is
# installed only where no node exists.
if ! command -v node >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

# npm packages for tests (reference tokenizers, SDK and agent-client tests), pinned in each
# folder's package.json / package-lock.json. Skipped quietly when a folder has none.
# Reinstalled whenever package-lock.json changes (npm writes node_modules/.package-lock.json).
for dir in tests/tokenizer tests/server tests/server/agents; do
  [ -f "$dir/package.json" ] || continue
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "setup: npm install in $dir"
    # npm install (not ci): the agents' lock files omit other platforms' optional binaries,
    # which npm ci rejects; install still follows the pinned versions in package-lock.json.
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  fi
done
echo "setup: done"
