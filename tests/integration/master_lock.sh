#!/usr/bin/env bash
# master_lock.sh: one master per data folder. A second master started on a
# folder in use refuses at once, naming the first one's pid, and touches
# nothing there (the first one's staging files stay; it keeps serving and
# keeps every acknowledged job). A master killed with -9 leaves no stale
# lock: the next one starts.
. "$(dirname "$0")/lib.sh"

master_start
job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames 1 --name kept --json)" .id)
touch "$T/master/blobs/tmp/upload-in-progress.part"

rc=0
timeout 10 "$TSR_BIN/tessera-master" --data "$T/master" --clients "ipc://$T/c2.sock" \
    --workers "ipc://$T/w2.sock" >"$T/second.log" 2>&1 || rc=$?
cat "$T/second.log"
[ "$rc" = 1 ] || fail "a second master on the same data folder exited with $rc"
grep -q "data folder '$T/master' is in use by another master (pid $MASTER_PID)" \
    "$T/second.log" || fail "the refusal does not name the first master's pid"
[ ! -S "$T/c2.sock" ] || fail "the second master listened"
[ -f "$T/master/blobs/tmp/upload-in-progress.part" ] ||
    fail "the second master cleared the first one's staging files"
[ "$(tsr status "$job" --json | jq -r .name)" = kept ] || fail "the first master stopped serving"
pass "a second master on the same data folder refuses, naming pid $MASTER_PID"

kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null || true
master_start
[ "$(tsr status "$job" --json | jq -r .name)" = kept ] || fail "job $job lost"
pass "after kill -9 the lock is gone: the next master starts and knows job $job"
