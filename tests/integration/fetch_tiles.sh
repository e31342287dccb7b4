#!/usr/bin/env bash
# fetch_tiles.sh: the manifest of a fetch records, for every frame, each of
# its tiles with the worker and hub that made it (not only the last tile's
# worker): a 2x2 tiled job on two workers lists 4 tiles per frame, each made
# by one of the two, and both appear across the job.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 hub-a 1
worker_start w2 hub-b 1
wait_for 20 "two workers registered" workers_live 2
job=$(tsr submit "$TSR_SRC/tests/data/small" --frames 1-8 --tiles 2x2 --json | jq -r .id)
tsr watch "$job" >/dev/null || fail "job $job did not finish"
tsr fetch "$job" -o "$T/out" >/dev/null || fail "the fetch failed"
m="$T/out/manifest.json"
[ "$(jq '.frames | length' "$m")" = 8 ] || fail "the manifest lists $(jq '.frames | length' "$m") frames, not 8"
bad=$(jq -r '.frames[] | select((.tiles | length) != 4 or
        ([.tiles[].tile] | sort) != [0,1,2,3] or
        any(.tiles[]; (.worker != "w1" and .worker != "w2") or
                      (.hub != (if .worker == "w1" then "hub-a" else "hub-b" end))))
        | .frame' "$m")
[ -z "$bad" ] || fail "frames whose tiles are not 4, each by w1 or w2 with its hub: $bad
$(jq -c '.frames[0].tiles' "$m")"
used=$(jq -r '[.frames[].tiles[].worker] | unique | join(",")' "$m")
[ "$used" = "w1,w2" ] || fail "the manifest names the workers '$used', not both w1 and w2"
pass "manifest.json: 8 frames x 4 tiles, each with its worker and hub; both workers appear"
