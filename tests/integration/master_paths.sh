#!/usr/bin/env bash
# master_paths.sh: the master's own paths (its --data folder, blob and
# staging files) never appear in what it tells studios or workers. The test
# stages failures whose libraries name the file they failed on (an archive
# that is not one, a stored frame that rotted under a contact sheet, a
# fetch of it) and greps every error the CLI printed, every status and
# event, and every message the workers logged, for the data folder.
. "$(dirname "$0")/lib.sh"

DATA="$T/master"
master_start
worker_start w1 local 2
wait_for 20 "worker registered" workers_live 1
: >"$T/seen.txt"
# seen COMMAND...: runs it, keeps its stdout and stderr for the final grep.
seen() {
    set +e
    "$@" >>"$T/seen.txt" 2>&1
    local rc=$?
    set -e
    return $rc
}

echo "not an archive" >"$T/junk.tar.gz"
seen tsr submit "$T/junk.tar.gz" --renderer command --command true --outputs none &&
    fail "a junk archive was accepted"
grep -q "archive [0-9a-f]\{12\}" "$T/seen.txt" ||
    fail "the refusal does not name the archive by its hash: $(cat "$T/seen.txt")"

job=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-2 --json --wait | jq -r .id)
[ "$(tsr status "$job" --json | jq -r .state)" = done ] || fail "job $job not done"
# Frame 1's stored image rots: its first bytes are no longer an image.
tsr fetch "$job" -o "$T/ok" >/dev/null || fail "fetch of job $job failed"
h=$(jq -r '.frames[0].sha256' "$T/ok/manifest.json")
blob="$DATA/blobs/${h:0:2}/$h"
[ -f "$blob" ] || fail "no stored frame at $blob"
dd if=/dev/zero of="$blob" bs=64 count=1 conv=notrunc status=none
seen tsr fetch "$job" -o "$T/out" && fail "fetch of a rotten frame exited 0"
seen tsr status "$job" --json
seen tsr events --json
seen "$TSR_BIN/tsr-raw" "$CLIENT_EP" send SHEET "{\"rid\":1,\"job\":$job}"
# Several failures were seen, and none names a file of the master.
[ "$(grep -ci "error\|cannot\|not " "$T/seen.txt")" -ge 3 ] ||
    fail "too few failures staged: $(cat "$T/seen.txt")"
if grep -n -e "$DATA" -e "blobs/" "$T/seen.txt" "$T"/worker-*.log; then
    fail "the master's paths reached a studio or a worker (above)"
fi
pass "no error a studio or a worker saw names a file of the master"
