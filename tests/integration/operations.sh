#!/usr/bin/env bash
# operations.sh: an operator's levers. pause/resume a job; drain a worker
# from the CLI (it finishes its tasks, takes no more, shows as drained);
# SIGTERM to a worker drains it too: the task in hand is delivered, not
# requeued, and the worker exits 0.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 1
w1=$WORKER_PID
worker_start w2 local 1
wait_for 20 "two workers" workers_live 2
mkdir -p "$T/scene" && echo x >"$T/scene/README"

# pause: running tasks finish, nothing new starts; resume: it ends done.
job=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 0.5' --outputs none \
            --frames 1-8 --name pausable --json)" .id)
running() { [ "$(tsr status "$job" --json | jq .tasks.running)" -gt 0 ]; }
wait_for 20 "job running" running
tsr pause "$job" | grep -q "paused job $job (paused)" || fail "pause did not confirm"
idle() { [ "$(tsr status "$job" --json | jq .tasks.running)" = 0 ]; }
wait_for 10 "running tasks of the paused job finish" idle
done1=$(tsr status "$job" --json | jq .tasks.done)
sleep 1.5
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .tasks.done)" = "$done1" ] && [ "$(jqr "$st" .tasks.running)" = 0 ] ||
    fail "a paused job started tasks: $st"
[ "$(jqr "$st" .state)" = paused ] || fail "state is not paused: $st"
tsr resume "$job" | grep -q "resumed job $job (running)" || fail "resume did not confirm"
tsr watch "$job" >/dev/null || fail "resumed job did not finish"
pass "pause stops new tasks, resume finishes the job"

# drain from the CLI: w1 finishes and takes nothing more; w2 does the rest.
job=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 0.3' --outputs none \
            --frames 1-10 --name drained --json)" .id)
wait_for 20 "job running" running
tsr workers drain w1 | grep -q "worker w1: drain" || fail "drain did not confirm"
drained() { tsr workers --json | jq -e '.[] | select(.name == "w1" and .state == "drained")'; }
wait_for 10 "w1 drained" drained
before=$(tsr workers --json | jq '.[] | select(.name == "w1") | .done')
tsr watch "$job" >/dev/null || fail "job did not finish with w1 drained"
after=$(tsr workers --json | jq '.[] | select(.name == "w1") | .done')
[ "$before" = "$after" ] || fail "drained w1 took tasks ($before -> $after)"
tsr workers undrain w1 | grep -q "worker w1: idle" || fail "undrain did not confirm"
pass "workers drain / undrain"

# SIGTERM: w1 finishes the task in hand, delivers it, and exits 0.
job=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 2' --outputs none \
            --frames 1-4 --name sigterm --json)" .id)
busy_w1() { tsr workers --json | jq -e '.[] | select(.name == "w1" and .running > 0)'; }
wait_for 20 "w1 busy" busy_w1
kill -TERM "$w1"
set +e; wait "$w1"; rc=$?; set -e
[ "$rc" = 0 ] || fail "worker exited $rc after SIGTERM"
grep -q "drained: every result delivered" "$T/worker-w1.log" || fail "w1 did not drain"
tsr watch "$job" >/dev/null || fail "job did not finish"
grep -q "task_requeued\|requeued:" "$T/master.log" && fail "a task was requeued: $(grep requeued "$T/master.log")"
pass "SIGTERM drains a worker: its task delivered, nothing requeued, exit 0"
