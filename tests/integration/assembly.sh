#!/usr/bin/env bash
# assembly.sh: a frame whose assembly cannot work is never silently lost.
# A 2x1-tiled frame: tile 0 is rendered and verified; its stored piece is
# deleted before tile 1 arrives. The assembly finds the piece missing and
# sends tile 0 back to the queue; while it is rendered again `tessera status`
# says why the frame waits; then the frame is delivered and verifies.
. "$(dirname "$0")/lib.sh"

master_start
mkdir -p "$T/flags" "$T/scene" && echo x >"$T/scene/README"
worker_start w1 local 2 --sandbox-bind "$TSR_BIN" --sandbox-bind "$T/flags"
wait_for 20 "worker" workers_live 1
mk="$TSR_BIN/tsr-mkimg"
f=$T/flags
# Tile 1 waits for 'go'; tile 0, once its piece is deleted, for 'go2'.
cmd="if [ {x0} != 0 ]; then until [ -f $f/go ]; do sleep 0.1; done;
elif [ -f $f/deleted ]; then until [ -f $f/go2 ]; do sleep 0.1; done; fi;
$mk out_0001.exr 8 4 {x0} {y0} {x1} {y1} 0.5"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --size 8x4 --tiles 2x1 --frames 1 \
            --max-attempts 1 --name lost-piece --command "$cmd" --json)" .id)
tile0_done() { [ "$(tsr status "$job" --json | jq .tasks.done)" = 1 ]; }
wait_for 30 "tile 0 verified" tile0_done
archive=$(tsr status "$job" --json | jq -r .archive)
pieces=$(find "$T/master/blobs" -path "$T/master/blobs/tmp" -prune -o -type f -print |
         grep -v "$archive" || true)
[ "$(printf '%s\n' "$pieces" | grep -c .)" = 1 ] || fail "expected one stored piece: $pieces"
rm -f $pieces
touch "$f/deleted" "$f/go"
waits() { tsr status "$job" --json | jq -e '.frame_problems[0].error | test("missing")'; }
wait_for 30 "status says why the frame waits" waits
pass "status shows why: $(tsr status "$job" --json | jq -r '.frame_problems[0].error')"
touch "$f/go2"
tsr watch "$job" >/dev/null || fail "job $job: $(tsr status "$job" --json)"
st=$(tsr status "$job" --json)
[ "$(jqr "$st" .state)" = done ] && [ "$(jqr "$st" .frames.done)" = 1 ] || fail "$st"
tsr fetch "$job" -o "$T/out" >/dev/null
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS) || fail "frame does not verify"
kill -0 "$MASTER_PID" || fail "master exited"
pass "a missing piece sends its tile back to the queue; the frame is delivered and verifies"
