#!/usr/bin/env bash
# worker_lost.sh: a worker killed in the middle of its tasks goes silent; the
# master notices after heartbeat x liveness, requeues its attempts, and the
# other worker finishes the job. `tessera workers` shows the dead one as lost.
. "$(dirname "$0")/lib.sh"

master_start
mkdir -p "$T/scene" && echo "sleeping tasks" >"$T/scene/README"
worker_start doomed local 2
doomed=$WORKER_PID
wait_for 20 "doomed worker registered" workers_live 1
job=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 1' --outputs none \
            --frames 1-6 --name sleepy --json)" .id)
running_on() { tsr workers --json | jq -e ".[] | select(.name == \"$1\" and .running > 0)"; }
wait_for 20 "tasks running on the doomed worker" running_on doomed
kill -9 "$doomed"
pkill -9 -f "$T/cache-doomed" 2>/dev/null || true
pass "killed a busy worker"

lost() { tsr workers --json | jq -e '.[] | select(.name == "doomed" and .state == "lost")'; }
wait_for 20 "the master declares the worker lost" lost
worker_start rescuer local 2
tsr watch "$job" >/dev/null || fail "job did not finish after the worker was lost"
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .tasks.done)" = 6 ] && [ "$(jqr "$st" .tasks.failed)" = 0 ] || fail "$st"
[ "$(jqr "$st" .state)" = done ] || fail "$st"
pass "attempts of the lost worker were requeued and finished elsewhere"
