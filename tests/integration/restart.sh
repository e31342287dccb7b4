#!/usr/bin/env bash
# restart.sh: LMDB is the truth. A master stopped in the middle of a job and
# started again on the same data folder still knows every job, and finishes
# the unfinished one with every frame delivered once.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 2
wait_for 20 "worker registered" workers_live 1

done_job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames 1 --name first --json --wait)" .id)
job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-12 --tiles 2x1 --name second --json)" .id)
frames_done() { [ "$(tsr status "$job" --json | jq .frames.done)" -ge "$1" ]; }
wait_for 60 "some frames of job $job done" frames_done 2
kill -TERM "$MASTER_PID"
wait "$MASTER_PID" || fail "master did not stop cleanly on SIGTERM"
pass "master stopped mid-job"

master_start
[ "$(tsr status "$done_job" --json | jq -r .state)" = done ] || fail "job $done_job forgotten"
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .frames.total)" = 12 ] || fail "job $job after restart: $st"
pass "restarted master knows both jobs"

tsr watch "$job" >/dev/null || fail "job $job did not finish after the restart"
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .state)" = done ] && [ "$(jqr "$st" .frames.done)" = 12 ] || fail "$st"
tsr fetch "$job" -o "$T/out" >/dev/null
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS) || fail "frames do not verify"
[ "$(ls "$T/out"/frame_*.exr | wc -l)" = 12 ] || fail "expected 12 frames"
for f in 3 12; do
    "$TSR_BIN/tessera-render" "$TSR_SRC/tests/data/small/scene.json" --frame $f \
        --output "$T/whole.exr" >/dev/null
    "$TSR_BIN/tsr-imgcmp" "$T/out/$(printf 'frame_%04d.exr' $f)" "$T/whole.exr" >/dev/null ||
        fail "frame $f differs from a whole render"
done
pass "job finished after the restart; 12 frames verify and match whole renders"

# kill -9 in the middle of an upload: the client is told, the partial
# upload leaves nothing behind once the master is back, and the same
# submission then goes through.
mkdir -p "$T/big"
cp "$TSR_SRC/tests/data/small/scene.json" "$T/big/"
head -c 60000000 /dev/urandom >"$T/big/texture.bin"
(tsr submit "$T/big" --frames 1 --name big >"$T/big.out" 2>&1; echo $? >"$T/big.rc") &
sub=$!
uploading() { ls "$T/master/blobs/tmp/"*.part >/dev/null 2>&1; }
wait_for 30 "an upload in progress" uploading
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null || true
wait "$sub" || true
[ "$(cat "$T/big.rc")" != 0 ] || fail "submit claimed success though the master died"
master_start
[ -z "$(ls "$T/master/blobs/tmp/")" ] || fail "staging files left after restart: $(ls "$T/master/blobs/tmp/")"
job=$(jqr "$(tsr submit "$T/big" --frames 1 --name big --json --wait)" .id)
[ "$(tsr status "$job" --json | jq -r .state)" = done ] || fail "resubmitted job not done"
pass "a master killed mid-upload: the client is told, nothing is left half-stored, a resubmit works"
