#!/usr/bin/env bash
# cli_errors.sh: bad input gets a one-line error that says what and where, a
# non-zero exit, and disturbs nothing: a job running meanwhile finishes.
. "$(dirname "$0")/lib.sh"

expect_err 3 "cannot reach master" "$TSR_BIN/tessera" --timeout 1 --master "ipc://$T/none.sock" jobs
pass "unreachable master"

master_start
worker_start w1 local 1
wait_for 20 "worker registered" workers_live 1
mkdir -p "$T/scene" && echo x >"$T/scene/README"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 0.2' --outputs none \
            --frames 1-10 --json)" .id)

expect_err 2 "unknown" tsr submit "$TSR_SRC/tests/data/small" --bogus
pass "wrong flag"
expect_err 2 "frame" tsr submit "$TSR_SRC/tests/data/small" --frames 5-1
pass "frame set that parses to nothing"
expect_err 2 "no such file" tsr submit "$T/missing"
pass "missing path"
expect_err 1 "no such job 999" tsr status 999
expect_err 1 "no such job 999" tsr cancel 999
pass "unknown job"
expect_err 1 "nope.json" tsr submit "$TSR_SRC/tests/data/small" --scene nope.json
pass "scene file missing from the archive"
echo "not an archive" >"$T/junk.tar.gz"
expect_err 1 "archive" tsr submit "$T/junk.tar.gz" --renderer command --command true --outputs none
pass "a file that is not an archive"
expect_err 1 "size" tsr submit "$T/scene" --renderer command --command true
pass "command renderer with images but no size"

tsr watch "$job" >/dev/null || fail "the running job did not finish"
[ "$(tsr status "$job" --json | jq -r .state)" = done ] || fail "job $job disturbed"
pass "the job running meanwhile finished"

# cancel: a long job, cancelled, ends cancelled and its worker is freed.
long=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 5' --outputs none \
             --frames 1-20 --json)" .id)
busy() { tsr workers --json | jq -e '.[] | select(.running > 0)'; }
wait_for 20 "a task of job $long running" busy
tsr cancel "$long" | grep -q "cancelled job $long" || fail "cancel did not confirm"
[ "$(tsr status "$long" --json | jq -r .state)" = cancelled ] || fail "not cancelled"
idle() { tsr workers --json | jq -e 'all(.[]; .running == 0)'; }
wait_for 10 "worker freed after cancel" idle
set +e; tsr watch "$long" >/dev/null; rc=$?; set -e
[ "$rc" != 0 ] || fail "watch of a cancelled job exited 0"
pass "cancel"
