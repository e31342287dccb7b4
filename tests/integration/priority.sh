#!/usr/bin/env bash
# priority.sh: a higher-priority job submitted later overtakes the queue of
# an earlier, lower-priority job on a farm with one slot.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 1
wait_for 20 "worker registered" workers_live 1
mkdir -p "$T/scene" && echo x >"$T/scene/README"
low=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 0.3' --outputs none \
            --frames 1-6 --priority 10 --name low --json)" .id)
high=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 0.3' --outputs none \
             --frames 1-2 --priority 90 --name high --json)" .id)
tsr watch "$low" >/dev/null || fail "low-priority job failed"
lowend=$(tsr status "$low" --json | jq .finished_ms)
highend=$(tsr status "$high" --json | jq .finished_ms)
[ "$(tsr status "$high" --json | jq -r .state)" = done ] || fail "high-priority job not done"
[ "$highend" -lt "$lowend" ] || fail "high-priority job ended at $highend, after the low one ($lowend)"
pass "the later, higher-priority job finished first"
