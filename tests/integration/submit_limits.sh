#!/usr/bin/env bash
# submit_limits.sh: a job that no worker could render is refused at submit,
# once, with the reason, not by each of its tasks later: frame numbers past
# the range a worker accepts (the 32-bit limits, a step that would carry a
# frame past them) and a tile grid finer than the frame. The CLI refuses
# them before uploading anything (exit 2), and the master refuses them when
# a client skips the CLI's checks (tsr-raw); no job is created and no task
# reaches a worker.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 2
wait_for 20 "worker registered" workers_live 1

SMALL="$TSR_SRC/tests/data/small"
mkdir -p "$T/tiny"
jq '.resolution = [8, 6]' "$SMALL/scene.json" >"$T/tiny/scene.json"
tar -C "$T/tiny" -cf "$T/tiny.tar" scene.json
mkdir -p "$T/scene" && echo x >"$T/scene/README"

for fs in 2147483647 -2147483648 2147483640-2147483647 -2147483648--2147483640 \
          1-2147483647x2147483647 2147483646-2147483647x2147483647 10000001; do
    expect_err 2 "out of range (frames are -1000000..10000000)" tsr submit "$SMALL" --frames "$fs"
done
pass "the CLI refuses frame numbers at the 32-bit limits and steps past them (exit 2)"
expect_err 2 "more tiles than the 8x6 frame has pixels" tsr submit "$T/tiny" --tiles 16x1
expect_err 2 "more tiles than the 8x6 frame has pixels" tsr submit "$T/tiny.tar" --tiles 1x7
expect_err 2 "more tiles than the 4x4 frame has pixels" \
    tsr submit "$T/scene" --renderer command --command true --size 4x4 --tiles 1x8
pass "the CLI refuses more tiles than pixels: from the scene (folder or archive) or --size"
[ "$(tsr jobs --json | jq length)" = 0 ] || fail "a refused submission made a job"

# The same jobs sent as a client that skips the CLI's checks: the archives
# are on the master (uploaded by valid jobs), SUBMIT is written by hand.
small=$(tsr submit "$SMALL" --frames 1 --json --wait | jq -r .archive)
tiny=$(tsr submit "$T/tiny" --frames 1 --json --wait | jq -r .archive)
cmd=$(tsr submit "$T/scene" --renderer command --command true --outputs none --json --wait |
      jq -r .archive)
raw_submit() { "$TSR_BIN/tsr-raw" --timeout 20000 "$CLIENT_EP" send SUBMIT "$1"; }
# expect_refused JSON PATTERN: the master answers ERROR naming the reason.
expect_refused() {
    local reply
    reply=$(raw_submit "$1") || fail "no reply to SUBMIT $1"
    case "$reply" in
    ERROR*) ;;
    *) fail "SUBMIT $1 was accepted: $reply" ;;
    esac
    grep -q -- "$2" <<<"$reply" || fail "SUBMIT $1: '$reply', wanted /$2/"
}
for fs in 2147483647 -2147483648 2147483646-2147483647x2147483647 1-2147483647x2147483647; do
    expect_refused "{\"rid\":1,\"archive\":\"$small\",\"frames\":\"$fs\"}" "out of range"
done
pass "the master refuses frame numbers past the workers' range at SUBMIT"
expect_refused "{\"rid\":1,\"archive\":\"$tiny\",\"frames\":\"1\",\"tiles\":[16,1]}" \
    "a 16x1 tile grid has more tiles than the 8x6 frame has pixels"
expect_refused "{\"rid\":1,\"archive\":\"$cmd\",\"frames\":\"1\",\"renderer\":\"command\",\"command\":\"true\",\"size\":[4,4],\"tiles\":[1,8]}" \
    "a 1x8 tile grid has more tiles than the 4x4 frame has pixels"
pass "the master refuses more tiles than pixels at SUBMIT (the scene's size or the given one)"

[ "$(tsr jobs --json | jq length)" = 3 ] || fail "refused submissions made jobs: $(tsr jobs)"
if grep -q "bad_task" "$T/worker-w1.log"; then
    fail "a task reached the worker and was refused there: $(grep bad_task "$T/worker-w1.log" | head -3)"
fi
pass "no job was created and no task reached a worker for a refused submission"
