#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, starts a
# local farm (one master, two workers in two "hubs" on loopback), renders
# examples/orbit as 2x2 tiles, and fetches the verified frames, SHA256SUMS,
# manifest.json and a contact sheet into out/orbit (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
bin=$PWD/${BUILD_DIR:-build}/bin
out=${1:-out/orbit}
run=$(mktemp -d "${TMPDIR:-/tmp}/tessera-demo.XXXXXX")
clients=tcp://127.0.0.1:${TESSERA_DEMO_PORT:-7400}
workers=tcp://127.0.0.1:$(( ${TESSERA_DEMO_PORT:-7400} + 1 ))
pids=()
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT

echo "demo: farm state and logs in $run"
"$bin/tessera-master" --data "$run/master" --clients "$clients" --workers "$workers" \
    >"$run/master.log" 2>&1 &
pids+=($!)
"$bin/tessera-worker" --master "$workers" --name qingyang-1 --hub qingyang --slots 1 \
    --cache "$run/cache-qingyang-1" >"$run/worker-qingyang-1.log" 2>&1 &
pids+=($!)
"$bin/tessera-worker" --master "$workers" --name guian-1 --hub guian --slots 1 \
    --cache "$run/cache-guian-1" >"$run/worker-guian-1.log" 2>&1 &
pids+=($!)

export TESSERA_MASTER=$clients
job=$("$bin/tessera" submit examples/orbit --frames 1-48 --tiles 2x2 --name orbit --json |
      sed -n 's/.*"id":[ ]*\([0-9]*\).*/\1/p')
echo "demo: submitted job $job"
"$bin/tessera" watch "$job"
rm -rf "$out"
"$bin/tessera" fetch "$job" -o "$out"
(cd "$out" && sha256sum -c --quiet SHA256SUMS)
echo "demo: $(ls "$out"/*.exr | wc -l) verified frames, SHA256SUMS, manifest.json and" \
     "contact_sheet.png in $out"
