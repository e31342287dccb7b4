#!/usr/bin/env bash
# blender_failures.sh: Blender's failures are classified and handled by
# their class. A scene whose texture is missing fails at once with
# missing_asset (no retry can help); a Blender that crashes (a wrapper
# passed with --blender that passes the probe, then dies of SIGSEGV while
# rendering) fails with crash and the task is retried on the other worker;
# a GPU task on a worker whose Blender sees no CUDA device (its GPUs come
# from a fake nvidia-smi) fails with missing_feature. Skipped when Blender
# is not installed.
. "$(dirname "$0")/lib.sh"
need_blender

master_start
worker_start good local 1
wait_for 40 "worker registered" workers_live 1
blender_scene "$T/broken" --frames 1 --missing-texture
out=$(tsr submit "$T/broken" --renderer blender --scene shot.blend --frames 1 --size 64x48 \
      --max-attempts 3 --name broken --json --wait) && fail "a scene without its texture rendered: $out"
job=$(jqr "$out" .id)
[ "$(jqr "$out" .state)" = failed ] && [ "$(jqr "$out" .tasks.failed)" = 1 ] ||
    fail "missing texture: $out"
grep -q "failed (missing_asset): missing file: image 'cube_tex' (//textures/missing.png)" \
    "$T/worker-good.log" || fail "no missing_asset failure in the worker's log"
grep -q "missing_asset: missing file: image 'cube_tex'" "$T/master.log" ||
    fail "the master did not get the class and the reason"
starts=$(grep -c "job $job task 0 .* started" "$T/worker-good.log")
[ "$starts" = 1 ] || fail "missing_asset should fail at once, but it ran $starts times"
pass "missing texture: failed at once, class missing_asset, the file named"

# Not in $T itself: a renderer's own folder is shown to it, and $T holds
# the workers' caches, which the sandbox refuses to show.
mkdir -p "$T/bin"
cat >"$T/bin/crashy-blender" <<EOS
#!/bin/sh
# Blender for the probe; a crash for every render (-a).
case " \$* " in
*" -a "*) echo "Fra:1 Mem:9.45M (Peak 10.22M) | Time:00:00.03 | Sample 1/4"; kill -SEGV \$\$ ;;
esac
exec "$BLENDER" "\$@"
EOS
chmod +x "$T/bin/crashy-blender"
worker_start crashy local 1 --blender "$T/bin/crashy-blender"
wait_for 40 "crashy worker registered" workers_live 2
blender_scene "$T/shot" --frames 4
out=$(tsr submit "$T/shot" --renderer blender --scene shot.blend --frames 1-4 --size 64x48 \
      --name retried --json --wait) || fail "job with a crashing worker did not finish: $out"
[ "$(jqr "$out" .state)" = done ] && [ "$(jqr "$out" .tasks.done)" = 4 ] ||
    fail "job with a crashing worker: $out"
w=$(tsr workers --json)
[ "$(jqr "$w" '.[] | select(.name == "crashy") | .failed')" -ge 1 ] ||
    fail "the crashing worker never failed a task: $w"
[ "$(jqr "$w" '.[] | select(.name == "crashy") | .done')" = 0 ] ||
    fail "the crashing worker delivered something: $w"
grep -q "failed (crash): blender crashed: killed by signal 11" "$T/worker-crashy.log" ||
    fail "no crash failure in the crashing worker's log"
pass "crashed tasks (class crash) were retried on the other worker; all 4 frames done"

fake_gpus 1
PATH="$T/fakebin:$PATH" worker_start fakegpu local 1
wait_for 40 "fake GPU worker registered" workers_live 3
w=$(tsr workers --json)
[ "$(jqr "$w" '.[] | select(.name == "fakegpu") | .gpu_slots')" = 1 ] || fail "no GPU slot: $w"
gpu_devices=$(jqr "$w" '[.[] | select(.name == "fakegpu") | .blender.devices[] |
                         select(.type == "CUDA" or .type == "OPTIX")] | length')
out=$(tsr submit "$T/shot" --renderer blender --scene shot.blend --frames 1 --size 64x48 \
      --gpu --max-attempts 1 --name gpu --json --wait) || true
if [ "$gpu_devices" = 0 ]; then
    [ "$(jqr "$out" .state)" = failed ] || fail "a GPU render without a GPU: $out"
    grep -q "failed (missing_feature): Blender sees no CUDA device (cycles:cuda)" \
        "$T/worker-fakegpu.log" || fail "no missing_feature failure in the log"
    pass "a GPU task where Blender sees no GPU: class missing_feature"
else
    [ "$(jqr "$out" .state)" = done ] || fail "a GPU render on a real GPU: $out"
    pass "a GPU task rendered on this machine's GPU"
fi
