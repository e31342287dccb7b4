#!/usr/bin/env bash
# big_piece.sh: an image that declares a huge window is refused from its
# header, before any pixel is allocated, by the master and by the worker.
# The piece: an OpenEXR of 8192x8192 RGBA (1 MiB of zip, 1 GiB of float
# pixels once decoded) for a task whose tile is a few dozen pixels.
#  - master: a raw worker (tsr-raw piece) uploads it as its task's result;
#    the master refuses it ("display window is 8192x8192, expected ...") and
#    its peak RSS (VmHWM, reset before) grows by less than 64 MiB.
#  - worker: a command renderer writes it as its output; the worker refuses
#    it (bad_output) and its peak RSS grows by less than 64 MiB.
. "$(dirname "$0")/lib.sh"

BOUND_KB=$((64 * 1024))
mkdir -p "$T/flags"
"$TSR_BIN/tsr-mkimg" "$T/flags/big.exr" 8192 8192 0 0 8192 8192 0 ||
    fail "cannot make the big image"
peak_growth_kb() { # PID BASE: VmHWM - BASE
    echo $(($(awk '$1 == "VmHWM:" {print $2}' "/proc/$1/status") - $2))
}
reset_peak() { # PID: resets VmHWM, prints VmRSS
    echo 5 >"/proc/$1/clear_refs" 2>/dev/null ||
        skip "cannot reset a peak RSS (/proc/PID/clear_refs)"
    awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"
}

# ---- the master ------------------------------------------------------------
master_start
job=$(jqr "$(tsr submit "$TSR_SRC/tests/data/small" --frames 1 --tiles 2x1 \
            --max-attempts 1 --name big-piece --json)" .id)
base=$(reset_peak "$MASTER_PID")
out=$("$TSR_BIN/tsr-raw" --timeout 20000 "$WORKER_EP" piece raw1 "$T/flags/big.exr") ||
    fail "the raw worker got no acknowledgement: $out"
echo "$out"
[[ "$out" == *"display window is 8192x8192, expected 101x67"* ]] ||
    fail "the master did not refuse the piece by its header: $out"
growth=$(peak_growth_kb "$MASTER_PID" "$base")
echo "master peak RSS growth: $((growth / 1024)) MiB"
[ "$growth" -lt "$BOUND_KB" ] ||
    fail "the master grew by $((growth / 1024)) MiB to refuse the piece"
st=$(tsr status "$job" --json)
[[ "$(jqr "$st" '.failed_tasks[0].error')" == "bad_output: "*"display window is 8192x8192"* ]] ||
    fail "status does not say why: $(jqr "$st" .failed_tasks)"
pass "the master refuses an 8192x8192 piece from its header (+$((growth / 1024)) MiB)"

# ---- the worker ------------------------------------------------------------
worker_start w1 local 1 --sandbox-bind "$T/flags"
wait_for 20 "worker registered" workers_live 1
mkdir -p "$T/scene" && echo x >"$T/scene/README"
# A good image first: what reading any image costs the worker once (the
# OpenImageIO and OpenEXR libraries, their threads) is not the piece's.
cp "$TSR_BIN/tsr-mkimg" "$T/flags/"
tsr submit "$T/scene" --renderer command --size 64x64 --frames 1 --name good --wait \
    --command "'$T/flags/tsr-mkimg' out_0001.exr 64 64 0 0 64 64 0.5" >/dev/null ||
    fail "a good 64x64 image was refused"
base=$(reset_peak "$WORKER_PID")
job=$(jqr "$(tsr submit "$T/scene" --renderer command --size 64x64 --frames 1 \
            --max-attempts 1 --name big-output --json \
            --command "cp '$T/flags/big.exr' out_0001.exr")" .id)
set +e; tsr watch "$job" >/dev/null; rc=$?; set -e
[ "$rc" = 1 ] || fail "the job did not fail (watch exited $rc)"
err=$(jqr "$(tsr status "$job" --json)" '.failed_tasks[0].error')
[[ "$err" == "bad_output: "*"display window is 8192x8192, expected 64x64"* ]] ||
    fail "the worker did not refuse its output by the header: $err"
growth=$(peak_growth_kb "$WORKER_PID" "$base")
echo "worker peak RSS growth: $((growth / 1024)) MiB"
[ "$growth" -lt "$BOUND_KB" ] ||
    fail "the worker grew by $((growth / 1024)) MiB to refuse its output"
pass "the worker refuses an 8192x8192 output from its header (+$((growth / 1024)) MiB)"
