#!/usr/bin/env bash
# worker_refused.sh: SIGTERM ends a worker promptly whatever the master did
# to its key. The hard case: workers are registered, the master restarts
# without their keys (revoked meanwhile), ZeroMQ reconnects by itself and
# the refused handshake leaves each worker's socket with no connection at
# all, so a plain send (the next heartbeat) would block for ever, SIGTERM
# included. Also workers whose keys were never admitted. Every send of the
# worker is non-blocking (worker/agent.c): each of the 20 workers must end
# within 5 s of its SIGTERM.
. "$(dirname "$0")/lib.sh"

N=${N:-10}
K="$T/keys"
mkdir -p "$K/workers" "$K/studios" "$K/spare" "$K/revoked"
"$TSR_BIN/tessera" keygen "$K/master" >/dev/null || fail "keygen master"
"$TSR_BIN/tessera" keygen "$K/studios/s" >/dev/null || fail "keygen studio"
for i in $(seq "$N"); do
    "$TSR_BIN/tessera" keygen "$K/workers/w$i" >/dev/null || fail "keygen w$i"
    "$TSR_BIN/tessera" keygen "$K/spare/x$i" >/dev/null || fail "keygen x$i"
done
MK="$K/master.pub"
# A long liveness (sent in WELCOME) keeps the workers registered, and so
# heartbeating, across the master's restart: the case that used to hang.
keyed_master() {
    master_start --key "$K/master.key" --worker-keys "$K/workers" \
        --studio-keys "$K/studios" --liveness 50
}
refusals() { grep -c "refused key" "$T/master.log" || true; }
at_least() { [ "$(refusals)" -ge "$1" ]; }

# stop_all WHAT PID...: SIGTERM to each; every one must be gone within 5 s.
worst=0
stop_all() {
    local what=$1 t0 ms p
    shift
    t0=$(date +%s%N)
    kill -TERM "$@"
    for p in "$@"; do
        wait_for 5 "$what: worker $p gone after SIGTERM" bash -c "! kill -0 $p"
    done
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -gt "$worst" ] && worst=$ms
    wait "$@" 2>/dev/null || true
}

keyed_master
pids=()
for i in $(seq "$N"); do
    worker_start "w$i" local 1 --key "$K/workers/w$i.key" --master-key "$MK" --blender none
    pids+=("$WORKER_PID")
done
registered() { [ "$(cat "$T"/worker-w*.log | grep -c "registered with master")" -ge "$N" ]; }
wait_for 40 "$N workers registered" registered
mv "$K"/workers/w*.pub "$K/revoked/"
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null || true
before=$(refusals)
keyed_master
wait_for 20 "the restarted master refused the $N workers' keys" at_least $((before + N))
stop_all "key refused after a master restart" "${pids[@]}"
pass "$N registered workers whose keys the restarted master refuses: SIGTERM ends each"

pids=()
before=$(refusals)
for i in $(seq "$N"); do
    worker_start "x$i" local 1 --key "$K/spare/x$i.key" --master-key "$MK" --blender none
    pids+=("$WORKER_PID")
done
wait_for 40 "the master refused $N strangers' keys" at_least $((before + N))
stop_all "key never admitted" "${pids[@]}"
pass "$N workers whose keys were never admitted: SIGTERM ends each"
echo "slowest exit of a batch after SIGTERM: $worst ms"
