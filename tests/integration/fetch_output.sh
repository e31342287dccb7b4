#!/usr/bin/env bash
# fetch_output.sh: `fetch -o` onto a file or a read-only folder fails once,
# up front, with the reason (exit 1, one line), before asking the master
# for anything: the file is left as it was.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 2
wait_for 20 "worker registered" workers_live 1
job=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-2 --json --wait | jq -r .id)

echo "keep me" >"$T/file"
expect_err 1 "fetch: -o '$T/file' is not a folder" tsr fetch "$job" -o "$T/file"
[ "$(cat "$T/file")" = "keep me" ] || fail "fetch -o FILE changed the file"
expect_err 1 "cannot make the folder .*Not a directory" tsr fetch "$job" -o "$T/file/sub"
pass "fetch -o onto a file: one line, exit 1, the file untouched"

mkdir -p "$T/ro"
if mount -t tmpfs -o ro,size=1m tmpfs "$T/ro" 2>/dev/null; then
    MOUNTS+=("$T/ro")
    expect_err 1 "cannot write in '$T/ro': Read-only file system" tsr fetch "$job" -o "$T/ro"
    expect_err 1 "cannot make the folder '$T/ro/out': Read-only file system" \
        tsr fetch "$job" -o "$T/ro/out"
    pass "fetch -o onto a read-only folder: one line with the reason, exit 1"
else
    echo "note: cannot mount a read-only tmpfs here (not root); that case is not staged"
fi
tsr fetch "$job" -o "$T/out" >/dev/null || fail "a good fetch failed"
pass "a fetch into a writable folder still works"
