#!/usr/bin/env bash
# auth.sh: a master with keys (CurveZMQ + ZAP). Clients with no key, an
# unknown key, a wrong master key, a revoked key or a worker's key are
# refused on the client endpoint, and the CLI says so in one line and exits
# 3; a revoked key also loses the connection it already had. A worker key
# registers only its own worker, and a revoked worker is lost to the master.
# Off loopback the master needs keys or --insecure.
. "$(dirname "$0")/lib.sh"

K="$T/keys"
mkdir -p "$K/studios" "$K/operators" "$K/workers" "$K/spare"
kg() { "$TSR_BIN/tessera" keygen "$1" >/dev/null || fail "keygen $1"; }
kg "$K/master"
kg "$K/studios/alice"
kg "$K/studios/bob"
kg "$K/operators/ops"
kg "$K/workers/w1"
kg "$K/workers/w2"
kg "$K/spare/stranger"
[ "$(stat -c %a "$K/studios/alice.key")" = 600 ] || fail "alice.key is not mode 600"
pass "keygen writes NAME.key (mode 600) and NAME.pub"

# as NAME COMMAND...: the CLI with the key of studio or operator NAME.
as() {
    local who=$1
    shift
    local f
    f=$(ls "$K"/studios/"$who".key "$K"/operators/"$who".key "$K"/spare/"$who".key \
           "$K"/workers/"$who".key 2>/dev/null | head -1)
    "$TSR_BIN/tessera" --timeout 5 --key "$f" --master-key "$K/master.pub" "$@"
}

# expect_refused WHAT PATTERN COMMAND...: exit 3 and one line on stderr.
expect_refused() {
    local what=$1 pattern=$2
    shift 2
    set +e
    "$@" >"$T/out.txt" 2>"$T/err.txt"
    local rc=$?
    set -e
    [ "$rc" = 3 ] || fail "$what: exited $rc, wanted 3; stderr: $(cat "$T/err.txt")"
    [ "$(wc -l <"$T/err.txt")" = 1 ] || fail "$what: more than one line: $(cat "$T/err.txt")"
    grep -q -- "$pattern" "$T/err.txt" ||
        fail "$what: said '$(cat "$T/err.txt")', wanted /$pattern/"
}

# Off loopback: keys or --insecure.
set +e
"$TSR_BIN/tessera-master" --data "$T/open" --clients "tcp://0.0.0.0:*" \
    --workers "ipc://$T/open-w.sock" >"$T/open.txt" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || fail "master without keys on 0.0.0.0 exited $rc: $(cat "$T/open.txt")"
[ "$(wc -l <"$T/open.txt")" = 1 ] && grep -q "refusing to listen on 'tcp://0.0.0.0:\*' without keys" \
    "$T/open.txt" || fail "master without keys on 0.0.0.0 said: $(cat "$T/open.txt")"
"$TSR_BIN/tessera-master" --data "$T/open" --clients "tcp://0.0.0.0:*" \
    --workers "ipc://$T/open-w.sock" --insecure >"$T/open.txt" 2>&1 &
open_pid=$!
PIDS+=("$open_pid")
wait_for 10 "insecure master listening" grep -q "listening" "$T/open.txt"
kill "$open_pid"
pass "off loopback the master refuses to listen without keys, unless --insecure"

master_start --key "$K/master.key" --studio-keys "$K/studios" \
    --operator-keys "$K/operators" --worker-keys "$K/workers"
grep -q "with CURVE" "$T/master.log" || fail "master does not say it uses CURVE"
MK="$K/master.pub"
worker_start w1 local 2 --key "$K/workers/w1.key" --master-key "$MK"
export TESSERA_KEY="$K/operators/ops.key" TESSERA_MASTER_KEY="$MK"
wait_for 20 "worker w1 registered with its key" workers_live 1
pass "a worker with a listed key registers; an operator (via \$TESSERA_KEY) lists it"

as alice workers >/dev/null || fail "studio alice was refused"
pass "a listed studio key is admitted"

expect_refused "no key" "admits only clients with a key" \
    env -u TESSERA_KEY -u TESSERA_MASTER_KEY "$TSR_BIN/tessera" --timeout 5 jobs
expect_refused "unknown key" "refused this client's key" as stranger jobs
expect_refused "worker key on the client endpoint" "refused this client's key" as w1 jobs
expect_refused "wrong master key" "is '$K/spare/stranger.pub' its public key" \
    "$TSR_BIN/tessera" --timeout 2 --key "$K/studios/alice.key" \
    --master-key "$K/spare/stranger.pub" jobs
pass "no key, an unknown key, a worker's key and a wrong master key: exit 3, one line"

set +e
env -u TESSERA_MASTER_KEY "$TSR_BIN/tessera" --key "$K/studios/alice.key" jobs 2>"$T/err.txt"
rc=$?
set -e
[ "$rc" = 2 ] && grep -q -- "--key needs --master-key" "$T/err.txt" ||
    fail "--key without --master-key: exit $rc, $(cat "$T/err.txt")"
chmod 644 "$K/studios/bob.key"
set +e
as bob jobs 2>"$T/err.txt"
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "open to others (mode 0644)" "$T/err.txt" ||
    fail "a world-readable secret key: exit $rc, $(cat "$T/err.txt")"
chmod 600 "$K/studios/bob.key"
pass "a key without the master's key, and a secret key others can read: exit 2"

# A worker key registers only the worker it names.
set +e
"$TSR_BIN/tessera-worker" --master "$WORKER_EP" --name w9 --key "$K/workers/w2.key" \
    --master-key "$MK" --cache "$T/cache-w9" >"$T/w9.txt" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "differs from the key's name 'w2'" "$T/w9.txt" ||
    fail "worker --name other than its key's: exit $rc, $(cat "$T/w9.txt")"
pass "a worker key admits only the worker of its name"

# A studio key on the worker endpoint: ZAP's "workers" domain refuses it.
worker_start alice local 1 --key "$K/studios/alice.key" --master-key "$MK"
alice_worker=$WORKER_PID
wait_for 10 "a studio key refused on the worker endpoint" \
    grep -q "on the worker endpoint: not in the worker key folder" "$T/master.log"
[ "$(tsr workers --json | jq 'map(select(.name == "alice")) | length')" = 0 ] ||
    fail "a studio key registered a worker"
kill "$alice_worker"
pass "a studio key cannot act as a worker"

# Studios see and touch only their own jobs; operators everything.
mkdir -p "$T/scene" && echo x >"$T/scene/README"
ja=$(as alice submit "$TSR_SRC/tests/data/small" --frames 1-2 --name a-small --json --wait |
     jq -r .id)
sa=$(as alice status "$ja" --json)
[ "$(jqr "$sa" .state)" = done ] && [ "$(jqr "$sa" .owner)" = studio:alice ] ||
    fail "alice's job $ja: $sa"
# expect_same_refusal COMMAND...: bob gets for alice's job exactly what he
# gets for a job that does not exist.
expect_same_refusal() {
    set +e
    as bob "$@" "$ja" >/dev/null 2>"$T/a.err"
    local ra=$?
    as bob "$@" 999999 >/dev/null 2>"$T/b.err"
    local rb=$?
    set -e
    [ "$ra" = 1 ] && [ "$rb" = 1 ] || fail "bob '$*': exit $ra and $rb, wanted 1"
    [ "$(sed "s/$ja/N/g" "$T/a.err")" = "$(sed "s/999999/N/g" "$T/b.err")" ] ||
        fail "bob '$*' on alice's job said '$(cat "$T/a.err")', on none '$(cat "$T/b.err")'"
    grep -q "no such job $ja" "$T/a.err" || fail "bob '$*': $(cat "$T/a.err")"
}
expect_same_refusal status
expect_same_refusal cancel
expect_same_refusal watch
expect_same_refusal fetch -o "$T/bob-out"
expect_same_refusal events --job
[ "$(as bob jobs --json | jq "map(select(.id == $ja)) | length")" = 0 ] ||
    fail "bob's job list shows alice's job"
[ "$(as bob events --json | jq "map(select(.job == $ja)) | length")" = 0 ] ||
    fail "bob's events show alice's job"
pass "studio bob cannot see, watch, fetch or cancel alice's job: 'no such job', as if missing"

as alice fetch "$ja" -o "$T/alice-out" >/dev/null || fail "alice cannot fetch her job"
(cd "$T/alice-out" && sha256sum -c --quiet SHA256SUMS) || fail "alice's frames do not verify"
frame=$(jq -r '.frames[0].sha256' "$T/alice-out/manifest.json")
archive=$(jqr "$sa" .archive)
raw() { "$TSR_BIN/tsr-raw" --key "$1" --master-key "$MK" "$CLIENT_EP" send "$2" "$3"; }
get="{\"rid\":1,\"hash\":\"$frame\",\"offset\":0,\"len\":64}"
raw "$K/studios/alice.key" GET "$get" | grep -q "^DATA " || fail "alice cannot GET her frame"
raw "$K/studios/bob.key" GET "$get" | grep -q "^ERROR .*blob ${frame:0:12} is not on the master" ||
    fail "bob could GET alice's frame: $(raw "$K/studios/bob.key" GET "$get")"
put="{\"rid\":1,\"hash\":\"$archive\",\"size\":100}"
raw "$K/studios/alice.key" PUT "$put" | grep -q '"have":true' || fail "alice's own archive: not had"
raw "$K/studios/bob.key" PUT "$put" | grep -q '"have":false' ||
    fail "the master told bob it holds alice's archive: $(raw "$K/studios/bob.key" PUT "$put")"
sub="{\"rid\":1,\"archive\":\"$archive\",\"frames\":\"1\"}"
raw "$K/studios/bob.key" SUBMIT "$sub" | grep -q "archive ${archive:0:12} is not on the master" ||
    fail "bob could submit alice's archive by its hash"
pass "studio bob can neither read alice's blobs nor learn that the master holds them"

jb=$(as bob submit "$T/scene" --renderer command --command 'sleep 0.3' --outputs none \
     --frames 1-100 --json | jq -r .id)
[ "$(tsr jobs --json | jq "map(select(.id == $ja or .id == $jb)) | length")" = 2 ] ||
    fail "the operator does not see both studios' jobs"
tsr status "$ja" >/dev/null || fail "the operator cannot see alice's job"
tsr cancel "$jb" | grep -q "cancelled job $jb" || fail "the operator cannot cancel bob's job"
set +e
as alice workers drain w1 >/dev/null 2>"$T/err.txt"
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "only operators" "$T/err.txt" ||
    fail "a studio drained a worker: exit $rc, $(cat "$T/err.txt")"
ev=$(tsr events --json --job "$jb")
[ "$(jqr "$ev" 'map(select(.kind == "job_submitted" and .by == "studio:bob")) | length')" = 1 ] ||
    fail "no submission by studio:bob in the events: $ev"
[ "$(jqr "$ev" 'map(select(.kind == "job_ended" and .by == "operator:ops")) | length')" = 1 ] ||
    fail "no cancel by operator:ops in the events: $ev"
as bob events --job "$jb" | grep -q "operator:ops.*job_ended" ||
    fail "bob does not see who cancelled his job: $(as bob events --job "$jb")"
pass "an operator sees and cancels any job; submissions and cancels are in the events with their key"

# Revocation: a long job of alice's, watched over one connection; then
# alice.pub goes and SIGHUP tells the master.
job=$(as alice submit "$T/scene" --renderer command --command 'sleep 0.3' --outputs none \
      --frames 1-200 --json | jq -r .id)
set +e
as alice watch "$job" >"$T/watch.txt" 2>"$T/watch.err" &
watch_pid=$!
set -e
sleep 1
mv "$K/studios/alice.pub" "$K/spare/alice.pub"
kill -HUP "$MASTER_PID"
wait_for 10 "master revoked alice" grep -q "key of 'studio:alice' revoked" "$T/master.log"
set +e
wait "$watch_pid"
rc=$?
set -e
[ "$rc" = 3 ] && grep -q "no longer admitted" "$T/watch.err" ||
    fail "alice's open watch after revocation: exit $rc, $(cat "$T/watch.err")"
expect_refused "revoked key" "refused this client's key" as alice jobs
pass "a revoked key loses its open connection and cannot connect again (exit 3)"

# Without SIGHUP the folders are read again within 5 s.
mv "$K/spare/alice.pub" "$K/studios/alice.pub"
wait_for 10 "alice admitted again" as alice jobs
pass "a key put back is admitted again at the next periodic reading"

# A revoked worker: its messages are dropped, the master loses it and
# requeues its attempts.
tsr cancel "$job" >/dev/null
mv "$K/workers/w1.pub" "$K/spare/w1.pub"
kill -HUP "$MASTER_PID"
lost() { tsr workers --json | jq -e '.[] | select(.name == "w1" and .state == "lost")'; }
wait_for 20 "revoked worker w1 lost" lost
pass "a revoked worker is dropped by the master"
