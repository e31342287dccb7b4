#!/usr/bin/env bash
# fetch_partial.sh: a fetch that did not bring every frame of a done job
# says so: it exits 1 and writes SHA256SUMS.partial and
# manifest.partial.json (never SHA256SUMS, which `sha256sum -c` would call
# complete); the complete fetch later writes SHA256SUMS, manifest.json and
# the contact sheet and removes the partial files.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 1
wait_for 20 "worker registered" workers_live 1
job=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-30 --json | jq -r .id)
some_done() { [ "$(tsr status "$job" --json | jq '.frames.done')" -ge 1 ]; }
wait_for 60 "a frame of job $job done" some_done

set +e
tsr fetch "$job" -o "$T/out" >/dev/null 2>"$T/err.txt"
rc=$?
set -e
[ "$(tsr status "$job" --json | jq -r .state)" != done ] ||
    fail "the job ended before the partial fetch: make it longer"
[ "$rc" = 1 ] || fail "a partial fetch exited $rc: $(cat "$T/err.txt")"
[ -f "$T/out/SHA256SUMS.partial" ] && [ -f "$T/out/manifest.partial.json" ] ||
    fail "a partial fetch wrote no .partial files: $(ls "$T/out")"
for f in SHA256SUMS manifest.json contact_sheet.png; do
    [ ! -e "$T/out/$f" ] || fail "a partial fetch wrote $f"
done
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS.partial) || fail "the partial sums do not verify"
n=$(wc -l <"$T/out/SHA256SUMS.partial")
[ "$(jq '.missing | length' "$T/out/manifest.partial.json")" -ge 1 ] ||
    fail "the partial manifest lists nothing missing"
pass "a fetch of a running job: exit 1, SHA256SUMS.partial ($n frames) and manifest.partial.json only"

tsr watch "$job" >/dev/null || fail "job $job did not finish"
tsr fetch "$job" -o "$T/out" >/dev/null || fail "the complete fetch failed"
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS does not verify"
[ "$(wc -l <"$T/out/SHA256SUMS")" = 30 ] || fail "SHA256SUMS does not list 30 frames"
[ -f "$T/out/manifest.json" ] && [ -f "$T/out/contact_sheet.png" ] || fail "no manifest or sheet"
for f in SHA256SUMS.partial manifest.partial.json; do
    [ ! -e "$T/out/$f" ] || fail "the complete fetch left $f behind"
done
pass "the complete fetch: SHA256SUMS, manifest.json, contact sheet; the partial files gone"
