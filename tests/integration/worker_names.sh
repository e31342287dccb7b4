#!/usr/bin/env bash
# worker_names.sh: a worker name belongs to one live worker. A clone (a
# second worker with the same --name, as cloned hosts get by default) is
# refused on both sides with a clear message and retries slowly; the first
# keeps its name and its work, so the farm does not livelock. When the
# holder dies the clone gets the name after the holder's lease. A worker
# stopped with SIGTERM shows as stopped, not lost, and `tessera workers
# forget` removes a gone worker (from LMDB too); a live one it refuses.
. "$(dirname "$0")/lib.sh"

# state NAME STATE: tessera workers shows NAME in STATE.
state() { [ "$(tsr workers --json | jq -r ".[] | select(.name == \"$1\") | .state")" = "$2" ]; }

master_start
worker_start node local 1
first=$WORKER_PID
wait_for 20 "worker node" workers_live 1
"$TSR_BIN/tessera-worker" --master "$WORKER_EP" --name node --hub local --slots 1 \
    --cache "$T/cache-clone" --heartbeat-ms 200 --liveness 5 >>"$T/worker-clone.log" 2>&1 &
clone=$!
PIDS+=("$clone")
refusals() { [ "$(grep -c "the master refused to register this worker" "$T/worker-clone.log")" -ge "$1" ]; }
wait_for 30 "the clone refused twice" refusals 2
grep -q "the name 'node' is held by another live worker" "$T/worker-clone.log" ||
    fail "the clone's log does not say why: $(tail -3 "$T/worker-clone.log")"
grep -q "HELLO refused: the name 'node' is held by another live worker" "$T/master.log" ||
    fail "the master did not log the refusal"
joins=$(tsr events --json --limit 500 | jq '[.[] | select(.kind == "worker_joined")] | length')
[ "$joins" = 1 ] || fail "the name changed hands: $joins registrations"
pass "the clone is refused on both sides; the name stays with the first worker"

mkdir -p "$T/scene" && echo x >"$T/scene/README"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-10 \
              --name work --command true --json)" .id)
tsr watch "$job" >/dev/null || fail "the job did not complete: $(tsr status "$job" --json)"
pass "work goes on beside the clone"

# The holder restarted with its spool proves itself at once: it names
# attempts only the holder was given. A raw peer "pw" holds two attempts;
# a HELLO as "pw" naming none is refused, one naming one of them is let in.
slow=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-4 \
               --name slow --command "sleep 30" --json)" .id)
"$TSR_BIN/tsr-raw" "$WORKER_EP" greedy pw 1 2 100 8 >"$T/pw.out" &
PIDS+=("$!")
held() { [ "$(tsr events --job "$slow" --json | jq '[.[] | select(.kind == "task_dispatched" and .worker == "pw")] | length')" -ge 2 ]; }
wait_for 20 "pw holds two attempts" held
att=$(tsr events --job "$slow" --json |
    jq '[.[] | select(.kind == "task_dispatched" and .worker == "pw") | .attempt][0]')
reply=$("$TSR_BIN/tsr-raw" "$WORKER_EP" send HELLO '{"name":"pw","slots":1,"running":[]}')
echo "$reply" | grep -q "^ERROR.*held by another live worker" || fail "no proof, let in: $reply"
reply=$("$TSR_BIN/tsr-raw" "$WORKER_EP" send HELLO "{\"name\":\"pw\",\"slots\":1,\"running\":[$att]}")
echo "$reply" | grep -q "^WELCOME" || fail "the holder's restart naming attempt $att: $reply"
grep -q "worker 'pw' (hub local, 1 slots) registered; it still runs 1 attempt(s), kept" \
    "$T/master.log" || fail "the named attempt was not kept"
tsr cancel "$slow" >/dev/null
pass "a restart naming the holder's attempts takes the name at once; one naming none waits"

kill -9 "$first"
wait "$first" 2>/dev/null || true
clone_in() { grep -q "registered with master" "$T/worker-clone.log"; }
wait_for 30 "the clone takes the name after the lease" clone_in
wait_for 10 "node live again" state node idle
pass "after the holder's death its name passes on at the end of its lease"

kill -TERM "$clone"
wait "$clone" || fail "the worker did not exit cleanly on SIGTERM"
wait_for 10 "node shown as stopped" state node stopped
pass "a worker stopped with SIGTERM shows as stopped, not lost"

worker_start live local 1
wait_for 20 "worker live" state live idle
out=$(tsr workers forget live 2>&1) && fail "forget of a live worker succeeded: $out"
echo "$out" | grep -q "is live" || fail "forget of a live worker: $out"
out=$(tsr workers forget nosuch 2>&1) && fail "forget of an unknown worker succeeded"
echo "$out" | grep -q "no such worker" || fail "forget of an unknown worker: $out"
tsr workers forget node | grep -q "node: forgotten" || fail "forget node failed"
[ "$(tsr workers --json | jq '[.[] | select(.name == "node")] | length')" = 0 ] ||
    fail "node still listed after forget"
kill -TERM "$MASTER_PID"
wait "$MASTER_PID" || true
master_start
[ "$(tsr workers --json | jq '[.[] | select(.name == "node")] | length')" = 0 ] ||
    fail "node came back after a master restart"
pass "forget removes a gone worker for good and refuses a live one"
