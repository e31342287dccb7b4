#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, and runs
# every test (unit, integration, fuzz smoke runs, benchmark smoke runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build=${BUILD_DIR:-build}
cd "$build"
ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@"
