#!/usr/bin/env bash
# gpu_routing.sh: GPU slots and features without a GPU. A fake nvidia-smi
# on its PATH gives one worker two GPU slots. A --gpu job runs only there,
# each task with CUDA_VISIBLE_DEVICES naming one GPU; CPU work still fills
# the GPU host's CPU slot (with no GPU visible); a job that requires a
# feature no worker has stays queued, and status says which feature.
. "$(dirname "$0")/lib.sh"

master_start
fake_gpus 2
# The renderers here write what they saw into $T/gpu.txt and $T/cpu.txt,
# outside any sandbox: these workers run them unconfined (sandbox.sh tests
# the sandbox).
worker_start cpu1 local 1 --blender none --sandbox none
PATH="$T/fakebin:$PATH" worker_start gpu1 local 1 --blender none --feature license:x \
    --sandbox none
wait_for 20 "two workers registered" workers_live 2
w=$(tsr workers --json)
[ "$(jqr "$w" '.[] | select(.name == "gpu1") | .gpu_slots')" = 2 ] || fail "gpu1: $w"
[ "$(jqr "$w" '.[] | select(.name == "gpu1") | .gpus | length')" = 2 ] || fail "gpu1: $w"
[ "$(jqr "$w" '.[] | select(.name == "gpu1") | .features | index("gpu") != null')" = true ] ||
    fail "gpu1 does not announce the feature gpu: $w"
[ "$(jqr "$w" '.[] | select(.name == "cpu1") | .gpu_slots')" = 0 ] || fail "cpu1: $w"
tsr workers | grep -q "^gpu1 .* 2 " || fail "workers table: $(tsr workers)"
pass "gpu1 announces 2 GPU slots, cpu1 none"

mkdir -p "$T/scene" && echo x >"$T/scene/README"
out=$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-6 --gpu --name gpu \
      --command "echo \"{frame} [\$CUDA_VISIBLE_DEVICES]\" >> '$T/gpu.txt'; sleep 0.3" \
      --json --wait) || fail "GPU job: $out"
[ "$(jqr "$out" .state)" = done ] && [ "$(jqr "$out" .tasks.done)" = 6 ] || fail "$out"
w=$(tsr workers --json)
[ "$(jqr "$w" '.[] | select(.name == "cpu1") | .done')" = 0 ] ||
    fail "a GPU task ran on the worker without a GPU: $w"
[ "$(wc -l <"$T/gpu.txt")" = 6 ] || fail "$(cat "$T/gpu.txt")"
grep -vq '\[[01]\]$' "$T/gpu.txt" && fail "a task without exactly one GPU: $(cat "$T/gpu.txt")"
[ "$(grep -c '\[0\]' "$T/gpu.txt")" -ge 1 ] && [ "$(grep -c '\[1\]' "$T/gpu.txt")" -ge 1 ] ||
    fail "the tasks did not use both GPUs: $(cat "$T/gpu.txt")"
pass "the --gpu job ran only on gpu1, one GPU per task: $(tr '\n' ' ' <"$T/gpu.txt")"

out=$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-8 --name cpu \
      --command "echo \"{frame} [\${CUDA_VISIBLE_DEVICES-unset}]\" >> '$T/cpu.txt'; sleep 0.4" \
      --json --wait) || fail "CPU job: $out"
[ "$(jqr "$out" .state)" = done ] || fail "$out"
w=$(tsr workers --json)
[ "$(jqr "$w" '.[] | select(.name == "gpu1") | .done')" -gt 6 ] ||
    fail "the GPU host took no CPU work: $w"
grep -q '\[\]$' "$T/cpu.txt" || fail "no CPU task ran on gpu1 with no GPU visible: $(cat "$T/cpu.txt")"
pass "the GPU host also took CPU work, seeing no GPU"

out=$(tsr submit "$T/scene" --renderer command --outputs none --frames 1 --name special \
      --require license:x --command true --json --wait) || fail "$out"
[ "$(jqr "$out" .state)" = done ] || fail "job requiring license:x: $out"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1 \
             --require nonexistent --command true --name nowhere --json)" .id)
waiting() { [ "$(tsr status "$job" --json | jq -r .waiting)" != "" ]; }
wait_for 10 "a waiting reason" waiting
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .state)" = queued ] || fail "job requiring nonexistent: $st"
[ "$(jqr "$st" .waiting)" = "no live worker has the feature 'nonexistent'" ] ||
    fail "waiting: $st"
pass "a job requiring a feature nobody has stays queued: $(jqr "$st" .waiting)"

# A --gpu task that fails on the only GPU worker is retried there (a CPU
# worker cannot take it), up to its attempts, and the job ends failed with
# the reason: it must not wait forever for "another" worker.
out=$(tsr submit "$T/scene" --renderer command --outputs none --frames 1 --gpu --name gpufail \
      --max-attempts 2 --command 'exit 3' --json --wait) && fail "a failing GPU job succeeded"
[ "$(jqr "$out" .state)" = failed ] || fail "GPU job that fails: $out"
[ "$(jqr "$out" '.failed_tasks[0].attempts')" = 2 ] || fail "not retried on gpu1: $out"
[[ "$(jqr "$out" .error)" == *"exit: renderer exited with status 3"* ]] || fail "$out"
pass "a failing GPU task is retried on the only GPU worker and the job ends failed, saying why"
