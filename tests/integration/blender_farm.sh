#!/usr/bin/env bash
# blender_farm.sh: Blender through a real farm. An animated Cycles scene
# built by tests/data/blender/make_scene.py (64x48, 4 samples, fixed seed)
# renders as chunks of two frames on two workers; the frames arrive checked
# and differ (the cube moves). Frame 2 rendered as 3x2 tiles (Blender border
# renders that the worker crops to their regions) assembles into the frame
# rendered whole, within the tolerance of doc/renderers.md. Skipped when
# Blender is not installed.
. "$(dirname "$0")/lib.sh"
need_blender

master_start
worker_start b1 qingyang 1
worker_start b2 guian 1
wait_for 40 "two workers registered" workers_live 2
w=$(tsr workers --json)
[ "$(jqr "$w" '[.[] | select(.renderers | index("blender"))] | length')" = 2 ] ||
    fail "the workers do not offer blender: $w"
[ "$(jqr "$w" '[.[] | select(.features | index("blender"))] | length')" = 2 ] ||
    fail "the workers do not announce the feature blender: $w"
version=$(jqr "$w" '.[0].blender.version')
[[ $version =~ ^[0-9]+\.[0-9]+ ]] || fail "no blender version in HELLO: $w"
[ "$(jqr "$w" '.[0].blender.devices[0].type')" = CPU ] || fail "no CPU device: $w"
pass "two workers announce blender $version"

blender_scene "$T/shot" --frames 4 --size 64x48 --samples 4
out=$(tsr submit "$T/shot" --renderer blender --scene shot.blend --frames 1-4 --chunk 2 \
      --size 64x48 --name chunks --json --wait) || fail "chunked job did not finish: $out"
job=$(jqr "$out" .id)
[ "$(jqr "$out" .state)" = done ] || fail "chunked job: $out"
[ "$(jqr "$out" .tasks.total)" = 2 ] && [ "$(jqr "$out" .tasks.done)" = 2 ] ||
    fail "4 frames in chunks of 2 should be 2 tasks: $out"
tsr fetch "$job" -o "$T/chunks" >/dev/null || fail "fetch failed"
(cd "$T/chunks" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS does not verify"
[ "$(ls "$T/chunks"/frame_*.exr | wc -l)" = 4 ] || fail "expected 4 frames: $(ls "$T/chunks")"
m=$(cat "$T/chunks/manifest.json")
[ "$(jqr "$m" '[.frames[] | select(.stats.max[0] > 0.05)] | length')" = 4 ] ||
    fail "a frame is black: $m"
if "$TSR_BIN/tsr-imgcmp" "$T/chunks/frame_0001.exr" "$T/chunks/frame_0004.exr" >/dev/null; then
    fail "frames 1 and 4 are the same image: the animation did not render"
fi
pass "4 frames rendered as 2 chunks, checked and animated"

out=$(tsr submit "$T/shot" --renderer blender --scene shot.blend --frames 2 --tiles 3x2 \
      --size 64x48 --name tiles --json --wait) || fail "tiled job did not finish: $out"
[ "$(jqr "$out" .state)" = done ] && [ "$(jqr "$out" .tasks.done)" = 6 ] ||
    fail "tiled job: $out"
tsr fetch "$(jqr "$out" .id)" -o "$T/tiles" >/dev/null || fail "fetch of the tiles failed"
"$TSR_BIN/tsr-imgcmp" --max-abs 0.05 --mean-abs 0.001 "$T/tiles/frame_0002.exr" \
    "$T/chunks/frame_0002.exr" >"$T/cmp.txt" ||
    fail "frame 2 from 3x2 tiles differs from the whole frame: $(cat "$T/cmp.txt")"
pass "frame 2 from 3x2 tiles matches the whole frame: $(cat "$T/cmp.txt")"
