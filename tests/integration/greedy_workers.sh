#!/usr/bin/env bash
# greedy_workers.sh: no worker can hoard the queue or break the worker list.
# Two raw protocol peers (tsr-raw greedy) play greedy workers next to an
# honest one: one announces 1 slot and sends READY every 100 ms, one
# announces 1024 slots on 2 cores. Each holds at most its granted slots plus
# one task ahead (1024 slots on 2 cores are granted 4, --slots-per-core 2),
# and the honest worker does the rest of the job. A HELLO past any bound
# (210 KB of features, a feature too long) is refused with a reply that
# names the field, and `tessera workers` keeps working for everyone.
. "$(dirname "$0")/lib.sh"

master_start
worker_start honest local 1
wait_for 20 "the honest worker" workers_live 1
mkdir -p "$T/scene" && echo x >"$T/scene/README"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-60 \
              --name many --command "true" --json)" .id)

raw() { "$TSR_BIN/tsr-raw" "$WORKER_EP" "$@"; }
raw greedy g1 1 2 100 6 >"$T/g1.out" &
g1=$!
PIDS+=("$g1")
raw greedy g1024 1024 2 100 6 >"$T/g1024.out" &
g1024=$!
PIDS+=("$g1024")
wait "$g1" || fail "greedy worker g1 was not welcomed: $(cat "$T/g1.out")"
wait "$g1024" || fail "greedy worker g1024 was not welcomed: $(cat "$T/g1024.out")"
echo "g1: $(tr '\n' ' ' <"$T/g1.out")  g1024: $(tr '\n' ' ' <"$T/g1024.out")"
held1=$(awk '/^held/ {print $2}' "$T/g1.out")
held1024=$(awk '/^held/ {print $2}' "$T/g1024.out")
grep -q "welcome slots=4" "$T/g1024.out" || fail "1024 slots on 2 cores: $(cat "$T/g1024.out")"
[ "$held1" -le 2 ] || fail "a 1-slot worker sending READY every 100 ms held $held1 tasks"
[ "$held1024" -le 5 ] || fail "a 1024-slot worker on 2 cores held $held1024 tasks"
grep -q "asks for more tasks than its 1 slots" "$T/master.log" ||
    fail "the master did not log the greedy READY"
[ "$(grep -c "worker 'g1' asks for more tasks" "$T/master.log")" = 1 ] ||
    fail "the greedy READY was logged more than once"
pass "greedy workers held $held1 (1 slot) and $held1024 (1024 slots, 2 cores) tasks"

tsr watch "$job" >/dev/null || fail "the job did not complete: $(tsr status "$job" --json)"
by_honest=$(tsr events --job "$job" --limit 500 --json |
    jq '[.[] | select(.kind == "task_accepted" and .worker == "honest")] | length')
[ "$by_honest" = 60 ] || fail "the honest worker did $by_honest of 60 tasks"
pass "the honest worker got the work: it did all 60 tasks"

# HELLO past its bounds: refused whole, with the field named.
python3 - "$T/feat.json" "$T/long.json" <<'PY'
import json, sys
many = {"name": "hoarder", "slots": 1, "running": [],
        "features": ["feature-%05d-%s" % (i, "x" * 40) for i in range(4000)]}
open(sys.argv[1], "w").write(json.dumps(many))
one = {"name": "long", "slots": 1, "features": ["f" * 200]}
open(sys.argv[2], "w").write(json.dumps(one))
PY
echo "HELLO of $(wc -c <"$T/feat.json") bytes"
reply=$(raw send HELLO "@$T/feat.json")
echo "$reply" | grep -q "^ERROR.*field 'features' lists more than 64 entries" ||
    fail "a HELLO with 4000 features: $reply"
reply=$(raw send HELLO "@$T/long.json")
echo "$reply" | grep -q "^ERROR.*field 'features' is longer than 63 bytes" ||
    fail "a HELLO with a 200-byte feature: $reply"
reply=$(raw send HELLO '{"name":"bad\u0001name","slots":1}')
echo "$reply" | grep -q "^ERROR.*printable" || fail "a name with a control character: $reply"
list=$(tsr workers --json) || fail "tessera workers failed after the hostile HELLOs"
[ "$(jqr "$list" '[.[] | select(.name == "hoarder" or .name == "long")] | length')" = 0 ] ||
    fail "a refused HELLO was registered: $list"
tsr workers >/dev/null || fail "tessera workers (table) failed"
pass "HELLOs past their bounds are refused with the field named; tessera workers works"
