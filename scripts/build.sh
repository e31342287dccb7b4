#!/usr/bin/env bash
# Configures and builds Tessera into build/ (or $BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
