#!/usr/bin/env bash
# progress.sh: a renderer's own "progress: NN" lines reach the artist: the
# job's progress moves while its only task is still running, and watch's
# bar shows it.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 1
wait_for 20 "worker registered" workers_live 1
mkdir -p "$T/scene" && echo x >"$T/scene/README"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-2 \
            --command 'echo progress: 50; sleep 4; echo progress: 100' --json)" .id)
half() { [ "$(tsr status "$job" --json | jq '.progress')" = 25 ]; }
wait_for 20 "progress 25% (one of two tasks half done)" half
[ "$(tsr status "$job" --json | jq '.tasks.done')" = 0 ] || fail "a task finished too early"
pass "status shows the running task's progress before any task is done"
tsr watch "$job" --interval 0.2 >"$T/watch.txt" || fail "watch failed"
grep -q "(25%)" "$T/watch.txt" || fail "watch never showed 25%: $(cat "$T/watch.txt")"
[ "$(tsr status "$job" --json | jq '.progress')" = 100 ] || fail "not at 100% at the end"
pass "watch showed the progress; 100% at the end"
