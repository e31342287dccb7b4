#!/usr/bin/env bash
# restart_adopt.sh: a master restart costs no work. While four slow tasks
# run on two workers the master is killed (kill -9) and started again at
# once; the workers register again naming the attempts they hold, the master
# adopts them from LMDB and accepts their results. The event log shows each
# task dispatched exactly once and accepted once, no attempt id twice, and
# nothing requeued; the job completes.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 2 --sandbox-bind "$TSR_BIN"
worker_start w2 local 2 --sandbox-bind "$TSR_BIN"
wait_for 20 "two workers" workers_live 2
mkdir -p "$T/scene" && echo x >"$T/scene/README"

# Eight one-frame tasks of about four seconds each: four run at a time.
cmd="sleep 4 && $TSR_BIN/tsr-mkimg \$(printf out_%04d.exr {frame}) 8 4 0 0 8 4 0.5"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --size 8x4 --frames 1-8 \
              --name slow --command "$cmd" --json)" .id)
running() { [ "$(tsr --timeout 2 status "$job" --json | jq .tasks.running)" -ge 4 ]; }
wait_for 30 "four tasks running" running

kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null || true
master_start
pass "master killed (kill -9) and restarted while four tasks ran"

tsr watch "$job" >/dev/null || fail "the job did not complete: $(tsr status "$job" --json)"
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .state)" = done ] && [ "$(jqr "$st" .tasks.done)" = 8 ] || fail "$st"
pass "the job completed"

ev=$(tsr events --job "$job" --limit 500 --json)
count() { jqr "$ev" "[.[] | select(.kind == \"$1\")] | length"; }
echo "dispatched $(count task_dispatched), accepted $(count task_accepted)," \
    "requeued $(count task_requeued)"
[ "$(count task_requeued)" = 0 ] ||
    fail "tasks requeued: $(jqr "$ev" '[.[] | select(.kind == "task_requeued") | .detail]')"
for kind in task_dispatched task_accepted; do
    per_task=$(jqr "$ev" "[.[] | select(.kind == \"$kind\") | .task] | group_by(.) |
                          map(length) | unique")
    [ "$(count $kind)" = 8 ] && [ "$(jqr "$per_task" -c .)" = "[1]" ] ||
        fail "$kind: $(count $kind) events, per task $per_task"
done
dup=$(jqr "$ev" '[.[] | select(.kind == "task_dispatched") | .attempt] | group_by(.) |
                 map(select(length > 1)) | length')
[ "$dup" = 0 ] || fail "an attempt id was handed out twice"
pass "every task dispatched exactly once and accepted once; attempt ids unique"
! grep -E "not a live attempt|did not return after a master restart" "$T/master.log" ||
    fail "the restarted master dropped results or requeued running work"
grep -q "still runs 2 attempt(s), kept" "$T/master.log" ||
    fail "the workers' attempts were not adopted"
pass "the restarted master adopted the running attempts and took their results"
