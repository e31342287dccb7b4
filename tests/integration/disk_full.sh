#!/usr/bin/env bash
# disk_full.sh: running out of space is the farm's fault, never a task's or
# a worker's. (1) The blob store (a small tmpfs) fills while a 12-task job
# runs with --max-attempts 2, and stays full past what 2 attempts x the 10 s
# retry delay allow: when space returns the job completes, every task done,
# no attempt failed, no worker blocked, the master alive. (2) The whole data
# folder, LMDB included, fills: submissions are refused with a clear error,
# status and jobs still answer, the master does not exit, and when space
# returns everything resumes and the frames verify.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || skip "mounting a small tmpfs needs root"

fill() { dd if=/dev/zero of="$1/filler" bs=16k 2>/dev/null || true; }
# no_blame JOB: no attempt of JOB failed, nobody blocked or quarantined.
no_blame() {
    local job=$1 st ev
    st=$(tsr status "$job" --json)
    [ "$(jqr "$st" .state)" = done ] && [ "$(jqr "$st" .tasks.done)" = "$(jqr "$st" .tasks.total)" ] ||
        fail "job $job: $st"
    [ "$(jqr "$st" '.blocked_workers | length')" = 0 ] || fail "job $job blocked a worker: $st"
    ev=$(tsr events --json --job "$job" --limit 500)
    [ "$(printf '%s' "$ev" | jq '[.[] | select(.kind == "task_failed")] | length')" = 0 ] ||
        fail "job $job: attempts failed for the farm's fault: $(printf '%s' "$ev" | jq -c '[.[] | select(.kind == "task_failed")][:3]')"
    tsr workers --json | jq -e 'all(.[]; .state != "quarantined")' >/dev/null ||
        fail "a worker was quarantined: $(tsr workers)"
    kill -0 "$MASTER_PID" || fail "the master exited"
}
frames_verify() { # JOB N
    rm -rf "$T/out-$1"
    tsr fetch "$1" -o "$T/out-$1" >/dev/null || fail "fetch of job $1 failed"
    (cd "$T/out-$1" && sha256sum -c --quiet SHA256SUMS) || fail "job $1: frames do not verify"
    [ "$(ls "$T/out-$1"/frame_*.exr | wc -l)" = "$2" ] || fail "job $1: expected $2 frames"
}

# ---- (1) the blob store fills ---------------------------------------------
mkdir -p "$T/master/blobs"
mount -t tmpfs -o size=8m tmpfs "$T/master/blobs" || skip "cannot mount a tmpfs here"
MOUNTS+=("$T/master/blobs")
master_start
worker_start w1 local 1
worker_start w2 local 1
wait_for 20 "two workers" workers_live 2
job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-6 --tiles 2x1 \
            --max-attempts 2 --name blobs-full --json)" .id)
some_done() { [ "$(tsr status "$job" --json | jq .tasks.done)" -ge 1 ]; }
wait_for 30 "a task done" some_done
fill "$T/master/blobs"
wait_for 30 "the master sees the full disk" grep -q "no space left for blobs" "$T/master.log"
# The fault lasts longer than 2 attempts x 10 s retry delay would survive.
sleep 12
[ "$(tsr status "$job" --json | jq -r .state)" = running ] ||
    fail "job $job did not wait: $(tsr status "$job" --json)"
rm -f "$T/master/blobs/filler"
tsr watch "$job" >/dev/null || fail "job $job did not complete: $(tsr status "$job" --json)"
no_blame "$job"
frames_verify "$job" 6
pass "blob store full for 12 s: the job waits, then completes; no attempt used, nobody blamed"
kill -TERM "$MASTER_PID"; wait "$MASTER_PID" || fail "master did not stop cleanly"
umount "$T/master/blobs"

# ---- (2) the whole data folder fills ----------------------------------------
T2=$T/whole
mkdir -p "$T2"
mount -t tmpfs -o size=24m tmpfs "$T2" || skip "cannot mount a tmpfs here"
MOUNTS+=("$T2")
rm -f "$T/clients.sock"
"$TSR_BIN/tessera-master" --data "$T2" --clients "$CLIENT_EP" --workers "$WORKER_EP" \
    --heartbeat-ms 200 --liveness 5 >>"$T/master2.log" 2>&1 &
MASTER_PID=$!
PIDS+=("$MASTER_PID")
wait_for 10 "master listening" test -S "$T/clients.sock"
wait_for 20 "workers back" workers_live 2
job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-8 --tiles 2x1 \
            --max-attempts 2 --name all-full --json)" .id)
# A job of quick tasks that make no images keeps writing the state
# database: with the disk full, one of its commits fails.
# (A worker of its own runs it: the others' slots hold results waiting for
# room.)
mkdir -p "$T/scene" && echo x >"$T/scene/README"
busy=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-300 \
             --command true --max-attempts 1 --require quick --priority 90 --name busy \
             --json)" .id)
worker_start w3 local 1 --feature quick
wait_for 20 "third worker" workers_live 3
wait_for 30 "a task done" some_done
fill "$T2"
set +e
out=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-2 --name refused 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] && [[ "$out" == *"out of space"* ]] || fail "submit to a full master: exit $rc, '$out'"
pass "a submission to a full data folder is refused: ${out##*: }"
tsr status "$job" >/dev/null || fail "status does not answer on a full disk"
tsr jobs >/dev/null || fail "jobs does not answer on a full disk"
tsr events --limit 5 >/dev/null || fail "events does not answer on a full disk"
kill -0 "$MASTER_PID" || fail "the master exited on a full disk: $(tail -5 "$T/master2.log")"
# Work going on fills the state database until a commit fails.
wait_for 60 "a commit refused for lack of space" grep -q "state database cannot be written" "$T/master2.log"
tsr status "$job" >/dev/null || fail "status does not answer after a failed commit"
kill -0 "$MASTER_PID" || fail "the master exited after a failed commit"
pass "with the whole data folder full the master keeps serving reads and stays up"
sleep 3 # the fault goes on for a while
rm -f "$T2/filler"
tsr watch "$job" >/dev/null || fail "job $job did not complete: $(tsr status "$job" --json)"
no_blame "$job"
tsr watch "$busy" >/dev/null || fail "job $busy did not complete: $(tsr status "$busy" --json)"
no_blame "$busy"
frames_verify "$job" 8
tsr submit "$TSR_SRC/tests/data/small" --frames 1-2 --name after --wait >/dev/null ||
    fail "a submission after space returned failed"
pass "when space returns the job completes, frames verify, submissions are taken again"
