#!/usr/bin/env bash
# failures.sh: renderers that fail, each ending as its class says, and the
# farm healing around them: a crashing renderer, one that hangs past the
# task timeout, one that goes silent (stall), one that writes NaN, one that
# writes the wrong region; a worker that fails one job's tasks is blocked
# for that job, one that fails across jobs is quarantined; `tessera retry`
# brings a failed job back.
. "$(dirname "$0")/lib.sh"

master_start --block-after 2 --quarantine-jobs 2
# The renderers call tsr-mkimg from the build and look for a flag file: both
# folders are shown to them, read-only, with --sandbox-bind.
mkdir -p "$T/flags"
worker_start good local 2 --sandbox-bind "$TSR_BIN" --sandbox-bind "$T/flags"
worker_start bad local 2 --sandbox-bind "$TSR_BIN" --sandbox-bind "$T/flags"
wait_for 20 "two workers" workers_live 2
mkdir -p "$T/scene" && echo x >"$T/scene/README"
mk="$TSR_BIN/tsr-mkimg"

# submit_one NAME COMMAND [flags...]: a one-attempt image job of one 8x4
# frame; prints its id.
submit_one() {
    local name=$1 cmd=$2
    shift 2
    jqr "$(tsr submit "$T/scene" --renderer command --size 8x4 --frames 1 \
          --max-attempts 1 --name "$name" --command "$cmd" "$@" --json)" .id
}
# ends_as JOB CLASS: the job failed, and its task's error names CLASS.
ends_as() {
    local job=$1 cls=$2
    set +e; tsr watch "$job" >/dev/null; local rc=$?; set -e
    [ "$rc" = 1 ] || fail "job $job: watch exited $rc, wanted 1 (failed)"
    local st
    st=$(tsr status "$job" --json)
    [ "$(jqr "$st" .state)" = failed ] && [ "$(jqr "$st" .tasks.failed)" = 1 ] ||
        fail "job $job: $st"
    [[ "$(jqr "$st" '.failed_tasks[0].error')" == "$cls: "* ]] ||
        fail "job $job: status does not say '$cls': $(jqr "$st" .failed_tasks)"
    [[ "$(jqr "$st" .error)" == *"$cls: "* ]] || fail "job $job: error lacks the reason: $st"
}

j=$(submit_one crash 'kill -SEGV $$')
ends_as "$j" crash
pass "a crashing renderer: class crash"
j=$(submit_one hang 'sleep 30' --timeout-task 1)
ends_as "$j" timeout
pass "a renderer past the task timeout: class timeout, killed"
j=$(submit_one silent 'echo progress: 5; sleep 30' --stall 1)
ends_as "$j" stall
pass "a renderer silent past --stall: class stall, killed"
j=$(submit_one nan "$mk out_0001.exr 8 4 0 0 8 4 nan")
ends_as "$j" bad_output
pass "a NaN image: class bad_output"
j=$(submit_one region "$mk out_0001.exr 8 4 0 0 4 4 0.5")
ends_as "$j" bad_output
pass "an image of the wrong region: class bad_output"
tsr submit "$T/scene" --renderer command --size 8x4 --frames 1 --max-attempts 1 \
    --name fine --command "$mk out_0001.exr 8 4 0 0 8 4 0.5" --wait >/dev/null ||
    fail "a good image was refused"
pass "a good image passes"

# A renderer that fails only on the worker 'bad' (its task folders live in
# its cache): 'bad' is blocked for the job after 2 failures, 'good' does it
# all, and the job succeeds.
flaky='case "$PWD" in *cache-bad*) exit 3;; esac; sleep 0.2'
j=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-12 \
           --max-attempts 5 --name flaky --command "$flaky" --json)" .id)
tsr watch "$j" >/dev/null || fail "flaky job $j did not finish"
st=$(tsr status "$j" --json)
[ "$(jqr "$st" .tasks.done)" = 12 ] || fail "$st"
[ "$(jqr "$st" '.blocked_workers | index("bad") != null')" = true ] ||
    fail "'bad' not blocked for job $j: $st"
pass "a worker failing a job's tasks is blocked for that job; the job completes"

# A second job failing on 'bad': two jobs within the window quarantine it.
j2=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-12 \
            --max-attempts 5 --name flaky2 --command "$flaky" --json)" .id)
tsr watch "$j2" >/dev/null || fail "flaky job $j2 did not finish"
quarantined() { tsr workers --json | jq -e '.[] | select(.name == "bad" and .state == "quarantined")'; }
wait_for 10 "'bad' quarantined" quarantined
tsr workers | grep -q "bad .*quarantined" || fail "tessera workers does not show the quarantine"
tsr workers release bad | grep -q "worker bad: idle" || fail "release did not work"
pass "a worker failing across jobs is quarantined, shown, and released"

# retry: a job that failed because a file was missing, retried once it is there.
flag="$T/flags/flag"
j=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-3 \
           --max-attempts 1 --name needs-flag --command "test -f '$flag'" --json)" .id)
set +e; tsr watch "$j" >/dev/null; set -e
[ "$(tsr status "$j" --json | jq -r .state)" = failed ] || fail "job $j should have failed"
touch "$flag"
tsr retry "$j" | grep -q "3 failed task(s) requeued" || fail "retry did not requeue 3 tasks"
tsr watch "$j" >/dev/null || fail "retried job $j did not finish"
[ "$(tsr status "$j" --json | jq -r .state)" = done ] || fail "retried job not done"
pass "tessera retry brings a failed job back"
