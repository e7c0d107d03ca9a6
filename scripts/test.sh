#!/usr/bin/env bash
# The test command: set up, build (warnings as errors), run the default test labels.
# Usage: scripts/test.sh [extra ctest args]   e.g. scripts/test.sh -L golden
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_WERROR=ON
cmake --build build -j"$jobs"
# Default run: everything except the long, GPU and fuzz labels.
ctest --test-dir build --output-on-failure -j"$jobs" -LE 'slow|gpu|fuzz' "$@"
