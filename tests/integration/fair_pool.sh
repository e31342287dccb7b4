#!/usr/bin/env bash
# fair_pool.sh: one studio's heavy requests do not stall another's small
# ones. Studio alice floods the master with contact sheets of a job of 200
# frames (each a few hundred thumbnails to decode); meanwhile studio bob asks
# for a chunk of his frame (GET), then for the contact sheet of his one-frame
# job. The pool serves its studios round-robin and keeps a thread for chunk
# reads and writes, so each of bob's requests is answered while alice's
# flood is still being served: asserted by order (how many of alice's
# answers came first: at most 1 before bob's GET, 2 before his sheet; the
# first-come pool answered both after 19 of 20), not by time; the delays
# are printed.
. "$(dirname "$0")/lib.sh"

NSHEETS=${TSR_FAIR_SHEETS:-8}
K="$T/keys"
mkdir -p "$K/studios" "$K/operators" "$K/workers"
for k in master studios/alice studios/bob operators/ops workers/w1; do
    "$TSR_BIN/tessera" keygen "$K/$k" >/dev/null || fail "keygen $k"
done
MK="$K/master.pub"
master_start --key "$K/master.key" --studio-keys "$K/studios" \
    --operator-keys "$K/operators" --worker-keys "$K/workers"
worker_start w1 local 2 --key "$K/workers/w1.key" --master-key "$MK"
as() {
    local who=$1
    shift
    "$TSR_BIN/tessera" --timeout 60 --key "$K/studios/$who.key" --master-key "$MK" "$@"
}
export TESSERA_KEY="$K/operators/ops.key" TESSERA_MASTER_KEY="$MK"
wait_for 20 "worker registered" workers_live 1

big=$(jqr "$(as alice submit "$TSR_SRC/tests/data/small" --frames 1-${TSR_FAIR_FRAMES:-200} --chunk 50 \
            --name many --json)" .id)
small=$(jqr "$(as bob submit "$TSR_SRC/tests/data/small" --frames 1 --name one --json)" .id)
as alice watch "$big" >/dev/null || fail "alice's job did not complete"
as bob watch "$small" >/dev/null || fail "bob's job did not complete"
hash=$("$TSR_BIN/tsr-raw" --key "$K/studios/bob.key" --master-key "$MK" "$CLIENT_EP" \
       send FRAMES "{\"rid\":1,\"job\":$small}" | sed 's/^FRAMES //' | jq -r '.frames[0].hash')
[ ${#hash} = 64 ] || fail "no hash for bob's frame: '$hash'"

race() { # CMD_B JSON_B: alice's flood, then bob's one request
    "$TSR_BIN/tsr-raw" --timeout ${TSR_FAIR_TIMEOUT:-120000} --key "$K/studios/alice.key" --master-key "$MK" \
        "$CLIENT_EP" race "$NSHEETS" SHEET "{\"job\":$big}" "$1" "$2" \
        "$K/studios/bob.key"
}
out=$(race GET "{\"rid\":1,\"hash\":\"$hash\",\"offset\":0,\"len\":4096}") ||
    fail "the race did not finish: $out"
echo "bob's GET: $out"
[[ "$out" == *" b=DATA "* ]] || fail "bob's GET was not answered with DATA: $out"
after=$(sed 's/^b_after_a=\([0-9]*\) .*/\1/' <<<"$out")
# Chunk reads never wait for heavy work: none of alice's sheets came first
# (or one, that finished as bob asked).
[ "$after" -le 1 ] || fail "bob's GET waited for $after of alice's contact sheets: $out"
pass "bob's GET is answered while alice's $NSHEETS contact sheets are drawn ($out)"

out=$(race SHEET "{\"rid\":1,\"job\":$small}") || fail "the race did not finish: $out"
echo "bob's SHEET: $out"
[[ "$out" == *" b=SHEET "* ]] || fail "bob's contact sheet was not drawn: $out"
after=$(sed 's/^b_after_a=\([0-9]*\) .*/\1/' <<<"$out")
# A heavy request takes its turn: at most the sheets already being drawn
# (two heavy threads) finish first, not alice's queue.
[ "$after" -le 2 ] || fail "bob's contact sheet waited for $after of alice's: $out"
pass "bob's contact sheet takes its turn among alice's $NSHEETS ($out)"
