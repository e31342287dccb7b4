#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, and runs
# every test (unit, integration, fuzz smoke runs, benchmark smoke runs);
# then builds again with AddressSanitizer and UBSan into build-asan and runs
# the unit and integration tests there, where the first memory error or
# undefined behaviour stops the process that has it (and fails its test).
# TESSERA_ASAN=0 skips the second pass; extra arguments go to both ctests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build=${BUILD_DIR:-build}
(cd "$build" && ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@")

if [ "${TESSERA_ASAN:-1}" != 0 ]; then
    asan=${ASAN_BUILD_DIR:-build-asan}
    BUILD_DIR=$asan scripts/build.sh -DTESSERA_SANITIZE=ON
    export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    (cd "$asan" && ctest --output-on-failure -j "$(nproc)" --timeout 900 -L "unit|integration" "$@")
fi
