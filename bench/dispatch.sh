#!/usr/bin/env bash
# dispatch.sh: how fast the farm hands out work.
#
# Runs N trivial tasks (`--renderer command --command true --outputs none`)
# through a master and W workers with S slots each, then the same N commands
# with `xargs -P W*S`, in the same run, and reports both wall times, their
# ratio, tasks per second and the master's CPU time and peak memory.
#
#   bench/dispatch.sh [N] [W] [S]        (defaults 2000 2 4)
#   SANDBOX=none bench/dispatch.sh ...   (renderers unconfined; default bwrap)
#
# Needs a build in build/ (or $BUILD_DIR). Figures go to doc/benchmarks.md
# by hand, with the machine they came from.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
W=${2:-2}
S=${3:-4}
SANDBOX=${SANDBOX:-bwrap}
bin=${TSR_BIN:-$PWD/${BUILD_DIR:-build}/bin}
T=$(mktemp -d "${TMPDIR:-/tmp}/tsr-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/scene"
echo "no scene: the command renderer runs 'true'" >"$T/scene/README"
export TESSERA_MASTER="ipc://$T/clients.sock"
"$bin/tessera-master" --data "$T/master" --clients "$TESSERA_MASTER" \
    --workers "ipc://$T/workers.sock" --log-level warn >"$T/master.log" 2>&1 &
master=$!
pids+=("$master")
for i in $(seq 1 "$W"); do
    "$bin/tessera-worker" --master "ipc://$T/workers.sock" --name "bench-$i" --slots "$S" \
        --cache "$T/cache-$i" --sandbox "$SANDBOX" --log-level warn >"$T/worker-$i.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 1 100); do
    n=$("$bin/tessera" workers --json 2>/dev/null | grep -o '"state":"idle"' | wc -l || true)
    [ "$n" -ge "$W" ] && break
    sleep 0.1
done

start=$(date +%s.%N)
"$bin/tessera" submit "$T/scene" --renderer command --command true --outputs none \
    --frames "1-$N" --name bench --wait >/dev/null
end=$(date +%s.%N)
farm=$(echo "$end - $start" | bc -l)

start=$(date +%s.%N)
seq 1 "$N" | xargs -P $((W * S)) -I{} /bin/sh -c true
end=$(date +%s.%N)
xargs_s=$(echo "$end - $start" | bc -l)

tck=$(getconf CLK_TCK)
read -r ut st < <(awk '{print $14, $15}' "/proc/$master/stat")
cpu=$(echo "($ut + $st) / $tck" | bc -l)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$master/status")
# Most of the peak is OpenImageIO's shared libraries, mapped from files; the
# master's own memory is its anonymous part.
anon=$(awk '/RssAnon/ {print $2}' "/proc/$master/status")

printf 'tasks %d, workers %d x %d slots, sandbox %s\n' "$N" "$W" "$S" "$SANDBOX"
printf 'tessera: %.2f s (%.0f tasks/s)\n' "$farm" "$(echo "$N / $farm" | bc -l)"
printf 'xargs -P %d: %.2f s\n' $((W * S)) "$xargs_s"
printf 'ratio tessera/xargs: %.2f\n' "$(echo "$farm / $xargs_s" | bc -l)"
printf 'master cpu: %.2f s, peak rss: %d KiB (anonymous: %d KiB)\n' "$cpu" "$hwm" "$anon"
