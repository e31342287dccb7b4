#!/usr/bin/env bash
# farm.sh: the whole path as a user runs it. A master and two workers in two
# hubs; a tiled, chunked job of the built-in renderer on a scene whose size
# the 3x2 grid does not divide; watch, status, fetch; the delivered frames
# pass sha256sum -c, the manifest lists them, the contact sheet decodes, and
# each assembled frame equals the same frame rendered whole, bit for bit.
. "$(dirname "$0")/lib.sh"

master_start
worker_start qy-1 qingyang 2
worker_start ga-1 guian 2
wait_for 20 "two workers registered" workers_live 2
pass "master and two workers up"

out=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-5 --tiles 3x2 --chunk 2 \
      --name small --json)
job=$(jqr "$out" .id)
[ "$job" -ge 1 ] || fail "submit printed no job id: $out"
pass "submitted job $job"

tsr watch "$job" >"$T/watch.txt" || fail "watch exited $? for job $job: $(tail -3 "$T/watch.txt")"
grep -q "5/5" "$T/watch.txt" || fail "watch never showed 5/5 frames: $(tail -3 "$T/watch.txt")"
pass "watch followed the job to its end"

st=$(tsr status "$job" --json)
[ "$(jqr "$st" .state)" = done ] || fail "job state: $st"
[ "$(jqr "$st" .frames.total)" = 5 ] && [ "$(jqr "$st" .frames.done)" = 5 ] ||
    fail "frames: $st"
# 5 frames in chunks of 2 -> 3 chunk groups x 6 tiles = 18 tasks
[ "$(jqr "$st" .tasks.total)" = 18 ] && [ "$(jqr "$st" .tasks.done)" = 18 ] ||
    fail "tasks: $st"
[ "$(jqr "$st" '.tasks.failed')" = 0 ] && [ "$(jqr "$st" '.tasks.running')" = 0 ] ||
    fail "tasks: $st"
hubs=$(jqr "$st" '.hubs | keys | join(",")')
[ -n "$hubs" ] || fail "no hub counts in status: $st"
pass "status: done, 5/5 frames, 18/18 tasks, hubs $hubs"

tsr fetch "$job" -o "$T/out" || fail "fetch failed"
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS does not verify"
[ "$(ls "$T/out"/frame_*.exr | wc -l)" = 5 ] || fail "expected 5 frames: $(ls "$T/out")"
m=$(cat "$T/out/manifest.json")
[ "$(jqr "$m" '.frames | length')" = 5 ] || fail "manifest frames: $m"
for k in frame file sha256 size worker hub render_ms stats; do
    [ "$(jqr "$m" ".frames[0] | has(\"$k\")")" = true ] || fail "manifest lacks '$k'"
done
head -c 8 "$T/out/contact_sheet.png" | od -An -tx1 | grep -q "89 50 4e 47" ||
    fail "contact_sheet.png is not a PNG"
pass "fetch: frames, SHA256SUMS, manifest.json, contact_sheet.png"

for f in 1 2 3 4 5; do
    file=$(printf 'frame_%04d.exr' "$f")
    "$TSR_BIN/tessera-render" "$TSR_SRC/tests/data/small/scene.json" --frame "$f" \
        --output "$T/whole_$f.exr" >/dev/null
    "$TSR_BIN/tsr-imgcmp" "$T/out/$file" "$T/whole_$f.exr" >"$T/cmp.txt" ||
        fail "frame $f assembled from 3x2 tiles differs from the whole render: $(cat "$T/cmp.txt")"
    # Same pixels, same writer, no timestamp: the very same file.
    [ "$(sha256sum <"$T/out/$file")" = "$(sha256sum <"$T/whole_$f.exr")" ] ||
        fail "frame $f: same pixels but another sha256 than the whole render"
done
pass "every assembled frame equals the whole-frame render bit for bit, file and hash"

# The same archive again: already on the master, not uploaded twice.
out2=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1 --name again --json --wait)
[ "$(jqr "$out2" .state)" = done ] || fail "second job: $out2"
pass "second job on the same archive done"
