#!/usr/bin/env bash
# render_devices.sh [FRAMES] [SAMPLES]: tessera-render's time per frame on
# the CPU and on the GPU (--device cuda), on examples/orbit at 320x180, and
# how far the GPU's frames are from the CPU's (tsr-imgcmp). Needs a build
# with the CUDA path (CMake found nvcc) and a visible NVIDIA GPU; without
# them it says so and exits 77. Results go in doc/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${TSR_BIN:-$here/build/bin}
frames=${1:-8}
samples=${2:-64}
scene=$here/examples/orbit/scene.json
out=$(mktemp -d "${TMPDIR:-/tmp}/tsr-bench-dev.XXXXXX")
trap 'rm -rf "$out"' EXIT

if ! "$bin/tessera-render" "$scene" --frame 1 --samples 1 --output "$out/probe.exr" \
    --device cuda >"$out/probe.txt" 2>&1; then
    echo "no GPU run possible: $(tail -1 "$out/probe.txt")"
    exit 77
fi
device=$(sed -n 's/^device: cuda (\(.*\))$/\1/p' "$out/probe.txt")

# run DEVICE: renders frames 1..N in one process; prints seconds per frame.
run() {
    local t0 t1
    t0=$(date +%s.%N)
    "$bin/tessera-render" "$scene" --frame 1 --frame-end "$frames" --samples "$samples" \
        --output "$out/$1_####.exr" --device "$1" >/dev/null
    t1=$(date +%s.%N)
    echo "scale=3; ($t1 - $t0) / $frames" | bc
}
cpu=$(run cpu)
gpu=$(run cuda)
echo "examples/orbit 320x180, $samples samples, $frames frames in one process"
echo "cpu  ($(nproc) threads): $cpu s/frame"
echo "cuda ($device): $gpu s/frame"
for f in $(seq "$frames"); do
    n=$(printf '%04d' "$f")
    "$bin/tsr-imgcmp" --max-abs 0.05 --mean-abs 1e-5 "$out/cpu_$n.exr" "$out/cuda_$n.exr" |
        sed "s/^/frame $f: /"
done
