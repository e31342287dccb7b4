#!/usr/bin/env bash
# resources.sh: running out of room loses nothing. A tiny LMDB map: a job
# that cannot fit is refused up front, then submissions are refused with a
# clear error once the map is nearly full, while the job already running
# finishes. A full disk under the blob store (a small tmpfs): an upload is
# refused with a clear error, rendered pieces cannot land, and when space
# returns the work resumes and the job completes with verified frames.
. "$(dirname "$0")/lib.sh"

# ---- a tiny state database ------------------------------------------------
master_start --map-size 1 --map-max 1
worker_start w1 local 1
wait_for 20 "worker registered" workers_live 1
mkdir -p "$T/scene" && echo x >"$T/scene/README"
running=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 0.2' \
                --outputs none --frames 1-10 --name survivor --json)" .id)
set +e
out=$(tsr submit "$T/scene" --renderer command --command true --outputs none \
      --frames 1-5000 --name huge 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && [[ "$out" == *"does not fit the master's state database"* ]] ||
    fail "a job too large for the map: exit $rc, '$out'"
pass "a job too large for the map is refused up front"
refused=
for i in $(seq 1 200); do
    set +e
    out=$(tsr submit "$T/scene" --renderer command --command true --outputs none \
          --frames 1-40 --name "filler-$i" 2>&1)
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then refused=$out; break; fi
done
[[ "$refused" == *"master's state database"* ]] ||
    fail "submissions never refused as the map filled (last: '$refused')"
tsr watch "$running" >/dev/null || fail "the running job did not finish on a full map"
tsr jobs >/dev/null || fail "the master stopped answering"
pass "a full map refuses new submissions clearly; the running job finishes"
kill -TERM "$MASTER_PID"; wait "$MASTER_PID" || fail "master did not stop cleanly"

# ---- a full disk under the blob store ---------------------------------------
if [ "$(id -u)" != 0 ]; then
    echo "ok - (skipped: mounting a small tmpfs needs root)"
    exit 0
fi
T2=$T/disk
mkdir -p "$T2/master/blobs"
mount -t tmpfs -o size=3m tmpfs "$T2/master/blobs" ||
    { echo "ok - (skipped: cannot mount a tmpfs here)"; exit 0; }
MOUNTS+=("$T2/master/blobs")
CLIENT_EP="ipc://$T2/clients.sock"
WORKER_EP="ipc://$T2/workers.sock"
export TESSERA_MASTER="$CLIENT_EP"
"$TSR_BIN/tessera-master" --data "$T2/master" --clients "$CLIENT_EP" --workers "$WORKER_EP" \
    --heartbeat-ms 200 >>"$T/master2.log" 2>&1 &
PIDS+=($!)
wait_for 10 "second master" test -S "$T2/clients.sock"
worker_start w2 local 2
wait_for 20 "worker registered" workers_live 1

fill() { dd if=/dev/zero of="$T2/master/blobs/filler" bs=64k 2>/dev/null || true; }
fill
set +e
out=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-2 --name nospace 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && [[ "$out" == *"space"* ]] || fail "upload to a full disk: exit $rc, '$out'"
pass "an upload to a full disk is refused with a clear error"

rm -f "$T2/master/blobs/filler"
job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-3 --tiles 2x1 \
            --name resumes --json)" .id)
fill
sleep 2
rm -f "$T2/master/blobs/filler"
tsr watch "$job" >/dev/null || fail "job $job did not complete after space returned"
tsr fetch "$job" -o "$T/out" >/dev/null
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS) || fail "frames do not verify"
[ "$(ls "$T/out"/frame_*.exr | wc -l)" = 3 ] || fail "expected 3 frames"
pass "a job caught by a full disk completes when space returns; frames verify"
