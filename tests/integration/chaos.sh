#!/usr/bin/env bash
# chaos.sh: every acknowledged task is done exactly once, whatever crashes.
# A tiled job of 240 small tasks runs while a driver kill -9s the master
# twice and workers three times (each restarted on its data or cache
# folder), and SIGSTOPs one worker past its lease. The job completes; every
# frame is there once, verifies, and equals the same frame rendered whole
# and undisturbed; the event log accepts each task exactly once.
. "$(dirname "$0")/lib.sh"

FRAMES=60
master_start
declare -A WPID
for w in w1 w2 w3; do
    worker_start "$w" "hub-$w" 1
    WPID[$w]=$WORKER_PID
done
wait_for 20 "three workers" workers_live 3

job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames "1-$FRAMES" --tiles 2x2 \
            --name chaos --json)" .id)
tasks_done() { [ "$(tsr --timeout 2 status "$job" --json 2>/dev/null | jq .tasks.done)" -ge "$1" ]; }
restart_master() {
    kill -9 "$MASTER_PID"
    wait "$MASTER_PID" 2>/dev/null || true
    sleep 0.3
    master_start
}
restart_worker() { # NAME
    kill -9 "${WPID[$1]}"
    wait "${WPID[$1]}" 2>/dev/null || true
    # The renderer it left behind dies with its process group's pipe; the
    # restarted worker reclaims its spool and cache.
    worker_start "$1" "hub-$1" 1
    WPID[$1]=$WORKER_PID
}

wait_for 60 "20 tasks done" tasks_done 20
restart_master
pass "master killed (kill -9) and restarted"
wait_for 60 "60 tasks done" tasks_done 60
restart_worker w2
pass "worker w2 killed and restarted"
kill -STOP "${WPID[w3]}"
sleep 2.5 # the lease is 200 ms x 5
kill -CONT "${WPID[w3]}"
pass "worker w3 stopped past its lease, then continued"
wait_for 60 "100 tasks done" tasks_done 100
restart_worker w1
restart_master
pass "worker w1 and the master killed again"
wait_for 60 "140 tasks done" tasks_done 140
restart_worker w3
pass "worker w3 killed and restarted"

tsr watch "$job" >/dev/null || fail "the job did not complete: $(tsr status "$job" --json)"
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .state)" = done ] && [ "$(jqr "$st" .frames.done)" = "$FRAMES" ] &&
    [ "$(jqr "$st" .tasks.done)" = 240 ] || fail "$st"
pass "the job completed: $FRAMES frames, 240 tasks"

tsr fetch "$job" -o "$T/out" >/dev/null || fail "fetch failed"
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS) || fail "frames do not verify"
[ "$(ls "$T/out"/frame_*.exr | wc -l)" = "$FRAMES" ] || fail "expected $FRAMES frames"
[ "$(jq '.frames | map(.frame) | unique | length' "$T/out/manifest.json")" = "$FRAMES" ] ||
    fail "a frame is listed twice in the manifest"
for f in $(seq 1 "$FRAMES"); do
    "$TSR_BIN/tessera-render" "$TSR_SRC/tests/data/small/scene.json" --frame "$f" \
        --threads 1 --output "$T/whole.exr" >/dev/null
    "$TSR_BIN/tsr-imgcmp" "$T/out/$(printf 'frame_%04d.exr' "$f")" "$T/whole.exr" \
        >"$T/cmp.txt" || fail "frame $f differs from an undisturbed render: $(cat "$T/cmp.txt")"
done
pass "every frame verifies and equals the undisturbed whole-frame render"

# The event log: each of the 240 tasks accepted exactly once.
mdb_dump -p -s events "$T/master/db" | grep "\"kind\":\"task_accepted\"" |
    grep -o "\"task\":[0-9]*" | sort | uniq -c >"$T/accepts.txt"
[ "$(wc -l <"$T/accepts.txt")" = 240 ] ||
    fail "$(wc -l <"$T/accepts.txt") distinct tasks accepted, wanted 240"
awk '$1 != 1 {bad = 1} END {exit bad}' "$T/accepts.txt" ||
    fail "a task accepted more than once: $(awk '$1 != 1' "$T/accepts.txt" | head -3)"
pass "the event log accepts each task exactly once"
