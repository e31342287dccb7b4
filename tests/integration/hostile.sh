#!/usr/bin/env bash
# hostile.sh: hostile input from the network is refused and costs nobody
# else anything. Every class of hostile scene archive (make_hostile.py:
# escaping paths and links, also through chains, devices, FIFOs, setuid,
# names and paths too long, too many entries, too large, bombs, sparse
# giants, truncated and lying archives, non-archives) is submitted through
# the real CLI to a real master and refused with its reason in one line; a
# canary folder beside the master's staging folder stays untouched; then a
# raw ZeroMQ peer (tsr-raw) sends garbage, oversize and out-of-order frames
# to both endpoints, and plays a worker that takes tasks and vanishes.
# Meanwhile a job runs, and it finishes; the master still answers.
. "$(dirname "$0")/lib.sh"

PY=$(command -v python3) || fail "python3 is needed (scripts/install-deps.sh)"
master_start --max-archive-entries 1000 --max-archive-size 8 --max-archive-ratio 100
canary="$T/master/blobs/canary"
mkdir -p "$canary"
echo "keep me" >"$canary/keep"
snapshot() { (cd "$canary" && find . -printf '%p %s %T@ %m\n' | sort && sha256sum keep); }
before=$(snapshot)
worker_start w1 local 2
wait_for 20 "worker registered" workers_live 1

"$PY" "$TSR_SRC/tests/integration/make_hostile.py" "$T/hostile" "$canary" >/dev/null
mkdir -p "$T/scene" && echo x >"$T/scene/README"
job=$(jqr "$(tsr submit "$T/scene" --renderer command --command 'sleep 0.3' --outputs none \
             --frames 1-40 --json)" .id)

n=0
while IFS=$'\t' read -r name pattern what; do
    set +e
    tsr submit "$T/hostile/$name" --renderer command --command true --outputs none \
        --frames 1 >"$T/out.txt" 2>"$T/err.txt"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$name ($what): exit $rc, wanted 1; $(cat "$T/err.txt")"
    [ "$(wc -l <"$T/err.txt")" = 1 ] || fail "$name: more than one line: $(cat "$T/err.txt")"
    grep -Eq -- "$pattern" "$T/err.txt" ||
        fail "$name ($what): said '$(cat "$T/err.txt")', wanted /$pattern/"
    n=$((n + 1))
done <"$T/hostile/expected.tsv"
[ "$n" -ge 30 ] || fail "only $n hostile archives were tried"
pass "$n hostile archives refused, each with its reason in one line"

# Both endpoints, hostile frames, five connections each; each check ends
# with a fresh connection that must get a well-formed answer.
"$TSR_BIN/tsr-raw" --timeout 10000 "$CLIENT_EP" abuse 5 >/dev/null ||
    fail "the client endpoint stopped answering after garbage"
"$TSR_BIN/tsr-raw" --timeout 10000 "$WORKER_EP" abuse 5 >/dev/null ||
    fail "the worker endpoint stopped answering after garbage"
tsr jobs >/dev/null || fail "the master does not answer the CLI after garbage"
pass "garbage, oversize and out-of-order frames on both endpoints: the master keeps answering"

tsr watch "$job" >/dev/null || fail "the job running meanwhile did not finish: $(tsr status "$job")"
[ "$(tsr status "$job" --json | jq -r .state)" = done ] || fail "job $job disturbed"
pass "the job running meanwhile finished"

[ "$(snapshot)" = "$before" ] || fail "the canary folder changed: $(snapshot)"
found=$(find "$T" -name pwned 2>/dev/null | head -3 || true)
[ -z "$found" ] || fail "a hostile archive wrote '$found'"
[ -z "$(find "$T/cache-w1" -name pwned -o -name sparse -o -name zeros 2>/dev/null)" ] ||
    fail "a hostile archive reached the worker's cache"
pass "the canary beside the staging folder is untouched, and nothing was written anywhere"
