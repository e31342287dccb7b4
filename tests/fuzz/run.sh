#!/usr/bin/env bash
# run.sh: the fuzz smoke run (ctest label "fuzz"). Configures a clang build
# with -DTESSERA_FUZZ=ON in a folder of its own, builds the libFuzzer
# targets, and runs each for FUZZ_SECONDS (default 10) over its checked-in
# seed corpus (tests/fuzz/corpus/TARGET, read only; new inputs go to a
# scratch folder). A crash, a leak, undefined behaviour or a broken promise
# (the targets abort) fails the run and leaves the input that did it in
# $FUZZ_BUILD/run-TARGET/ with the fuzzer's report.
#
#   TSR_SRC     the source tree (default: two folders up from here)
#   FUZZ_BUILD  the build folder (default: $TSR_BUILD/fuzz-build, else
#               build/fuzz-build in the source tree)
#   FUZZ_SECONDS, FUZZ_TARGETS ("proto archive scene frameset image")
#
# A long run of one target, keeping what it finds in the corpus:
#   FUZZ_SECONDS=3600 FUZZ_TARGETS=archive tests/fuzz/run.sh
set -euo pipefail
src=${TSR_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FUZZ_BUILD:-${TSR_BUILD:-$src/build}/fuzz-build}
secs=${FUZZ_SECONDS:-10}
targets=${FUZZ_TARGETS:-proto archive scene frameset image}

command -v clang >/dev/null && command -v clang++ >/dev/null ||
    { echo "run.sh: clang and clang++ are needed (scripts/install-deps.sh)"; exit 1; }
cmake -S "$src" -B "$build" -G Ninja -DTESSERA_FUZZ=ON -DTESSERA_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ >"$build.configure.log" 2>&1 ||
    { tail -20 "$build.configure.log"; exit 1; }
names=()
for t in $targets; do names+=("fuzz_$t"); done
ninja -C "$build" "${names[@]}" >"$build/build.log" 2>&1 || { tail -40 "$build/build.log"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for t in $targets; do
    work="$build/run-$t"
    rm -rf "$work"
    mkdir -p "$work/new" "$work/tmp"
    set +e
    TMPDIR="$work/tmp" "$build/bin/fuzz_$t" "$work/new" "$src/tests/fuzz/corpus/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$work/" >"$work/log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p; s/^#\([0-9]*\).*/\1/p' "$work/log" | tail -1)
    if [ $rc -ne 0 ]; then
        echo "fuzz_$t: FAILED (exit $rc) after ${runs:-?} runs; input and report in $work"
        grep -E "ERROR|SUMMARY|runtime error|abort|==[0-9]+==" "$work/log" | head -20
        status=1
    else
        echo "fuzz_$t: ok, ${runs:-?} runs in ${secs}s"
    fi
done
exit $status
