#!/usr/bin/env bash
# fetch_gone.sh: a fetch whose master goes away mid-way stops at once (not
# after its reply timeout, here 30 s): it exits 3 (master unreachable) with
# a line that says the master went away, and leaves only the .partial sums
# and manifest for the frames that arrived.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 2
wait_for 20 "worker registered" workers_live 1
job=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-150 --json | jq -r .id)
tsr watch "$job" >/dev/null || fail "job $job did not finish"

mkdir "$T/out"
"$TSR_BIN/tessera" --timeout 30 fetch "$job" -o "$T/out" >/dev/null 2>"$T/err.txt" &
fpid=$!
some_file() { compgen -G "$T/out/frame_*.exr" >/dev/null; }
wait_for 20 "the first frame file of the fetch" some_file
# Freeze the master so the fetch is surely mid-way, then kill it.
kill -STOP "$MASTER_PID"
kill -0 "$fpid" 2>/dev/null || fail "the fetch ended before the master went: make the job longer"
kill -9 "$MASTER_PID"
start=$SECONDS
ended() { ! kill -0 "$fpid" 2>/dev/null; }
wait_for 15 "the fetch to end after the master died" ended
secs=$((SECONDS - start))
set +e
wait "$fpid"
rc=$?
set -e
[ "$rc" = 3 ] || fail "the fetch exited $rc, not 3: $(cat "$T/err.txt")"
grep -q "went away" "$T/err.txt" || fail "the fetch did not say the master went away: $(cat "$T/err.txt")"
[ -f "$T/out/SHA256SUMS.partial" ] && [ -f "$T/out/manifest.partial.json" ] ||
    fail "no .partial files: $(ls "$T/out")"
for f in SHA256SUMS manifest.json contact_sheet.png; do
    [ ! -e "$T/out/$f" ] || fail "a cut-off fetch wrote $f"
done
n=$(wc -l <"$T/out/SHA256SUMS.partial")
[ "$n" -lt 150 ] || fail "the partial sums list all 150 frames"
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS.partial) || fail "the partial sums do not verify"
pass "master killed mid-fetch: the fetch exited 3 in ${secs}s, $n frames in SHA256SUMS.partial: $(head -c 200 "$T/err.txt")"
