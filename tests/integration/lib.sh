# lib.sh: helpers for the integration tests: a private farm (master and
# workers as real processes on ipc:// endpoints in a temporary folder),
# bounded waits, and assertions that print what the user would have seen.
#
# A test sources this file, then calls farm_start, then uses `tsr` (the CLI
# pointed at its master). Everything it started is killed on exit.
set -euo pipefail

: "${TSR_BIN:?TSR_BIN must point at the folder with the tessera programs}"
: "${TSR_SRC:?TSR_SRC must point at the source tree}"

T=$(mktemp -d "${TMPDIR:-/tmp}/tsr-it.XXXXXX")
PIDS=()
MOUNTS=()
MASTER_PID=
CLIENT_EP="ipc://$T/clients.sock"
WORKER_EP="ipc://$T/workers.sock"
export TESSERA_MASTER="$CLIENT_EP"

cleanup() {
    local rc=$?
    { for p in "${PIDS[@]}"; do kill -9 "$p" || true; done; wait; } 2>/dev/null || true
    # A test that mounted something (a small tmpfs) names it in MOUNTS.
    for mnt in "${MOUNTS[@]}"; do umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; done
    # Under ASan/UBSan (scripts/test.sh's build-asan) a report in any log
    # fails the test, even when the farm recovered from the process's death.
    local san
    san=$(grep -lE "ERROR: (Address|Leak|Thread)Sanitizer|runtime error:" "$T"/*.log 2>/dev/null || true)
    if [ -n "$san" ]; then
        echo "---- sanitizer reports ----"
        for f in $san; do echo "== $f"; grep -E -A30 "ERROR: (Address|Leak|Thread)Sanitizer|runtime error:" "$f" | head -60; done
        [ $rc -ne 0 ] || rc=1
    fi
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        echo "---- logs of $T ----"
        for f in "$T"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 40 "$f"; }; done
    fi
    [ "${KEEP:-}" ] || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

tsr() { "$TSR_BIN/tessera" --timeout 10 "$@"; }

# master_start [extra flags...]
master_start() {
    # A master killed with -9 leaves its socket file: remove it, so that the
    # wait below sees the new master, not the old file.
    rm -f "$T/clients.sock"
    "$TSR_BIN/tessera-master" --data "$T/master" --clients "$CLIENT_EP" \
        --workers "$WORKER_EP" --heartbeat-ms 200 --liveness 5 "$@" \
        >>"$T/master.log" 2>&1 &
    MASTER_PID=$!
    PIDS+=("$MASTER_PID")
    wait_for 10 "master listening" test -S "$T/clients.sock"
}

# worker_start NAME HUB SLOTS [extra flags...]; sets WORKER_PID
worker_start() {
    local name=$1 hub=$2 slots=$3
    shift 3
    "$TSR_BIN/tessera-worker" --master "$WORKER_EP" --name "$name" --hub "$hub" \
        --slots "$slots" --cache "$T/cache-$name" --heartbeat-ms 200 --liveness 5 "$@" \
        >>"$T/worker-$name.log" 2>&1 &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || fail "timed out after ${secs}s waiting for: $what"
        sleep 0.1
    done
}

workers_live() { # N: at least N workers idle or busy
    local n
    n=$(tsr workers --json | jq '[.[] | select(.state != "lost")] | length')
    [ "$n" -ge "$1" ]
}

# expect_err EXIT PATTERN COMMAND...: exit code and a single stderr line.
expect_err() {
    local want=$1 pattern=$2
    shift 2
    set +e
    "$@" >"$T/out.txt" 2>"$T/err.txt"
    local rc=$?
    set -e
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, wanted $want; stderr: $(cat "$T/err.txt")"
    [ "$(wc -l <"$T/err.txt")" = 1 ] || fail "'$*' printed more than one line: $(cat "$T/err.txt")"
    grep -q -- "$pattern" "$T/err.txt" || fail "'$*' said '$(cat "$T/err.txt")', wanted /$pattern/"
}

# jqr JSON FILTER: a field of a JSON document (jq's raw output).
jqr() { printf '%s' "$1" | jq -r "$2"; }

# skip WHY: this test cannot run here; ctest counts exit 77 as skipped.
skip() { echo "SKIP: $*"; exit 77; }

# need_blender: sets BLENDER (TSR_BLENDER, else blender on PATH) or skips.
need_blender() {
    BLENDER=${TSR_BLENDER:-$(command -v blender || true)}
    [ -n "$BLENDER" ] ||
        skip "blender is not installed (scripts/install-deps.sh installs Debian's)"
}

# blender_scene DIR [make_scene.py options...]: builds DIR/shot.blend with
# Blender's own Python (tests/data/blender/make_scene.py).
blender_scene() {
    local dir=$1
    shift
    mkdir -p "$dir"
    "$BLENDER" -b --factory-startup -noaudio --python-exit-code 1 \
        --python "$TSR_SRC/tests/data/blender/make_scene.py" -- "$dir/shot.blend" "$@" \
        >"$T/make_scene.log" 2>&1 ||
        fail "make_scene.py failed: $(tail -5 "$T/make_scene.log")"
}

# fake_gpus N: a fake nvidia-smi listing N GPUs in $T/fakebin; start a
# worker with PATH="$T/fakebin:$PATH" to give it N GPU slots.
fake_gpus() {
    mkdir -p "$T/fakebin"
    {
        echo '#!/bin/sh'
        for _ in $(seq "$1"); do echo 'echo "NVIDIA H100 80GB HBM3, 81559"'; done
    } >"$T/fakebin/nvidia-smi"
    chmod +x "$T/fakebin/nvidia-smi"
}
