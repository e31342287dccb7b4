#!/usr/bin/env bash
# rot.sh: a blob whose bytes rotted on the master's disk poisons nothing
# (doc/reliability.md). A flipped byte in a stored archive: the next job with
# that archive still completes (the master sets the damaged copy aside at
# SUBMIT and the CLI uploads it again). A flipped byte in a delivered frame:
# `tessera-master --scrub` finds and reports it (exit 3), and `tessera status`
# of the job says the frame was damaged and made again; the running master's
# background scrub finds the next one by itself. A worker that cannot use a
# downloaded archive makes the master check it: the damaged archive is set
# aside, the job waits (status says why, no task fails), and a re-submission
# of the scene lets it finish.
. "$(dirname "$0")/lib.sh"

# flip FILE: changes one byte in the middle of FILE, in place.
flip() {
    python3 -c 'import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x20
open(p, "r+b").write(b)' "$1"
}
stored() { echo "$T/master/blobs/${1:0:2}/$1"; }
stop_master() {
    kill -TERM "$MASTER_PID"
    wait "$MASTER_PID" || fail "master did not stop cleanly"
}
SMALL="$TSR_SRC/tests/data/small"

master_start
worker_start w1 local 2
wait_for 20 "worker registered" workers_live 1
j1=$(jqr "$(tsr submit "$SMALL" --frames 1-2 --name first --json --wait)" .id)
tsr fetch "$j1" -o "$T/out1" >/dev/null
A=$(tsr status "$j1" --json | jq -r .archive)
F1=$(jq -r '.frames[0].sha256' "$T/out1/manifest.json")
F2=$(jq -r '.frames[1].sha256' "$T/out1/manifest.json")
[ -f "$(stored "$A")" ] && [ -f "$(stored "$F1")" ] || fail "blobs not where expected"

# A damaged archive: a new job with the same scene still completes.
flip "$(stored "$A")"
tsr submit "$SMALL" --frames 3-4 --name second --wait >"$T/j2.out" 2>"$T/j2.err" ||
    fail "a job with the damaged archive's scene failed: $(cat "$T/j2.err")"
grep -q "damaged; uploading it again" "$T/j2.err" || fail "the CLI did not say why: $(cat "$T/j2.err")"
j2=$(sed -n 's/^submitted job \([0-9]*\)$/\1/p' "$T/j2.out" | head -1)
[ "$(tsr status "$j2" --json | jq -r .state),$(tsr status "$j2" --json | jq -r .archive)" = "done,$A" ] ||
    fail "job $j2: $(tsr status "$j2" --json)"
[ "$(sha256sum <"$(stored "$A")" | cut -c1-64)" = "$A" ] || fail "the archive is still damaged"
ls "$T/master/blobs/damaged/$A".* >/dev/null || fail "the damaged archive was not set aside"
pass "a damaged archive is set aside at SUBMIT, uploaded again, and the new job completes"

# A damaged frame, found by the offline scrub.
flip "$(stored "$F1")"
stop_master
set +e
"$TSR_BIN/tessera-master" --data "$T/master" --scrub >"$T/scrub.out" 2>&1
rc=$?
set -e
[ "$rc" = 3 ] || fail "--scrub exited $rc: $(cat "$T/scrub.out")"
grep -q "^damaged   $F1 " "$T/scrub.out" || fail "--scrub did not report frame $F1: $(cat "$T/scrub.out")"
[ "$(grep -c '^damaged\|^missing' "$T/scrub.out")" = 1 ] || fail "--scrub reported more: $(cat "$T/scrub.out")"
grep -q "^scrub: .* 1 damaged, 0 missing" "$T/scrub.out" || fail "no summary: $(cat "$T/scrub.out")"
"$TSR_BIN/tessera-master" --data "$T/master" --scrub >"$T/scrub2.out" 2>&1 ||
    fail "a second --scrub found more: $(cat "$T/scrub2.out")"
pass "tessera-master --scrub reports the damaged frame, sets it aside and exits 3; then 0"

master_start
remade() { tsr status "$j1" --json | jq -e '.state == "done" and (.damaged | test("frame 1 made again"))'; }
wait_for 30 "job $j1's damaged frame made again" remade
tsr status "$j1" | grep -q "^damaged .*frame 1 made again after damage on the master" ||
    fail "status does not say: $(tsr status "$j1")"
tsr events --job "$j1" --json | jq -e 'map(select(.kind == "frame_damaged" and .frame == 1)) | length == 1' >/dev/null ||
    fail "no frame_damaged event: $(tsr events --job "$j1")"
tsr fetch "$j1" -o "$T/out1b" >/dev/null
[ "$(jq -r '.frames[0].sha256' "$T/out1b/manifest.json")" = "$F1" ] || fail "frame 1 made again differs"
(cd "$T/out1b" && sha256sum -c --quiet SHA256SUMS) || fail "frames of job $j1 do not verify"
pass "status of the delivered job says its frame was damaged; the frame was made again, identical"

# The running master's background scrub finds the next one by itself.
stop_master
flip "$(stored "$F2")"
master_start --scrub-rate 64
found() { tsr status "$j1" --json | jq -e '.state == "done" and (.damaged | test("frames? .*2.* made again"))'; }
wait_for 30 "the background scrub found frame 2" found
grep -q "scrub.*blob ${F2:0:12} was damaged on the master" "$T/master.log" || fail "not in the log"
pass "the background scrub finds a damaged frame; it is made again"

# A worker cannot use the archive it downloaded: the job waits, then goes on.
kill -9 "$WORKER_PID"
lost() { tsr workers --json | jq -e '.[] | select(.name == "w1" and .state == "lost")'; }
wait_for 20 "w1 lost" lost
j3=$(jqr "$(tsr submit "$SMALL" --frames 5-8 --name third --json)" .id)
flip "$(stored "$A")"
worker_start w2 local 2
waits() { tsr status "$j3" --json | jq -e '.waiting | test("archive .* was damaged on the master")'; }
wait_for 30 "job $j3 waiting for its archive" waits
st=$(tsr status "$j3" --json)
[ "$(jqr "$st" .state)" = running ] && [ "$(jqr "$st" .tasks.failed)" = 0 ] || fail "job $j3: $st"
tsr status "$j3" | grep -q "^waiting .*uploaded again" || fail "status: $(tsr status "$j3")"
pass "a worker's report of a damaged archive: set aside, the job waits (no task failed), status says why"

tsr submit "$SMALL" --frames 9 --name fourth --wait >/dev/null || fail "re-submission failed"
tsr watch "$j3" >/dev/null || fail "job $j3 did not finish"
st=$(tsr status "$j3" --json)
[ "$(jqr "$st" .state)" = done ] && [ "$(jqr "$st" .frames.done)" = 4 ] || fail "job $j3: $st"
pass "a re-submission brings the archive back and the waiting job completes"
