#!/usr/bin/env bash
# cache_lru.sh: a worker's scene cache stays within --cache-max. Three jobs
# on three different archives of ~400 KiB through a worker allowed 1 MiB:
# the least recently used archive (and its extracted scene) is evicted,
# the most recent stay, and every job still completes.
. "$(dirname "$0")/lib.sh"

master_start
worker_start w1 local 1 --cache-max 1
wait_for 20 "worker registered" workers_live 1
for i in 1 2 3; do
    mkdir -p "$T/scene$i"
    head -c 400000 /dev/urandom >"$T/scene$i/texture.bin"
    job=$(jqr "$(tsr submit "$T/scene$i" --renderer command --command true --outputs none \
                --frames 1-2 --name "s$i" --json --wait)" .id)
    [ "$(tsr status "$job" --json | jq -r .state)" = done ] || fail "job $job not done"
    sleep 1.1 # distinct last-use times
done
n=$(ls "$T/cache-w1/blobs" | wc -l)
[ "$n" -le 2 ] || fail "$n archives cached past a 1 MiB bound: $(du -sh "$T/cache-w1/blobs")"
[ "$(ls "$T/cache-w1/scenes" | wc -l)" -le 2 ] || fail "extracted scenes not evicted"
grep -q "evicted (least recently used)" "$T/worker-w1.log" || fail "no eviction logged"
pass "the scene cache is bounded: oldest archives evicted, every job done"
# The first archive is needed again: downloaded again, and the job completes.
job=$(jqr "$(tsr submit "$T/scene1" --renderer command --command true --outputs none \
            --frames 3 --name again --json --wait)" .id)
[ "$(tsr status "$job" --json | jq -r .state)" = done ] || fail "job $job not done"
pass "an evicted archive is fetched again when needed"
