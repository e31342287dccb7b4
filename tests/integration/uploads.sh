#!/usr/bin/env bash
# uploads.sh: the blob store holds only bytes that are what their name says,
# and an upload is its uploader's own (doc/security.md, doc/reliability.md).
# A raw peer (tsr-raw script) sends what the CLI and workers never would:
# a chunk right after PUT_END, a huge declared size with one chunk,
# duplicate, out-of-range, misaligned and over-long chunks. Each is refused,
# nothing wrong is stored, the master stays up. Studio bob announcing the
# hash alice is uploading gets his own upload: his chunks never reach
# alice's bytes, and he cannot GET her blob once it is in. Uploads are
# bounded per key in count and bytes, and an abandoned one expires even if
# it is announced again.
. "$(dirname "$0")/lib.sh"

K="$T/keys"
mkdir -p "$K/studios" "$K/operators" "$K/workers"
for k in master studios/alice studios/bob studios/carol operators/ops workers/w1; do
    "$TSR_BIN/tessera" keygen "$K/$k" >/dev/null || fail "keygen $k"
done
master_start --key "$K/master.key" --studio-keys "$K/studios" \
    --operator-keys "$K/operators" --worker-keys "$K/workers" \
    --upload-max 3 --upload-max-bytes 4096 --upload-idle 2

MIB=1048576
# raw WHO: a tsr-raw script (stdin) on one connection with WHO's key.
raw() {
    "$TSR_BIN/tsr-raw" --key "$K/studios/$1.key" --master-key "$K/master.pub" \
        --timeout 5000 "$CLIENT_EP" script
}
# reply OUT CMD RID: the reply to request RID, as "CMD JSON".
reply() { grep -E "^[A-Z_]+ .*\"rid\":$2[,}]" "$1" | head -1; }
expect() { # OUT RID CMD PATTERN WHAT
    local r
    r=$(reply "$1" "$2")
    [[ "$r" == "$3 "* ]] && grep -q -- "$4" <<<"$r" || fail "$5: got '$r'"
}
stored() { echo "$T/master/blobs/${1:0:2}/$1"; }
alive() { echo 'JOBS {"rid":1}' | raw carol | grep -q '^JOBS '; }
tmp_empty() { [ -z "$(ls -A "$T/master/blobs/tmp")" ]; }

# Three chunks' worth of random bytes: 1 MiB, 1 MiB, 0.5 MiB.
head -c $((5 * MIB / 2)) /dev/urandom >"$T/blob.bin"
H=$(sha256sum "$T/blob.bin" | cut -c1-64)
S=$(stat -c %s "$T/blob.bin")
chunk() { # RID OFFSET LEN [-]: a CHUNK of blob.bin
    echo "${4:-}CHUNK {\"rid\":$1,\"hash\":\"$H\",\"offset\":$2} @file:$T/blob.bin:$2:$3"
}

# 1. A chunk right after PUT_END (the sender does not wait): refused, and
# what is stored is exactly the file.
{
    echo "PUT {\"rid\":1,\"hash\":\"$H\",\"size\":$S}"
    chunk 2 0 $MIB
    chunk 3 $MIB $MIB
    chunk 4 $((2 * MIB)) $((MIB / 2))
    echo "-PUT_END {\"rid\":5,\"hash\":\"$H\"}"
    echo "CHUNK {\"rid\":6,\"hash\":\"$H\",\"offset\":0} @zero:$MIB"
} | raw alice >"$T/1.out" || fail "case 1: not every message answered: $(cat "$T/1.out")"
expect "$T/1.out" 5 PUT_DONE "\"size\":$S" "PUT_END of a whole upload"
expect "$T/1.out" 6 ERROR "upload of ${H:0:12}" "a chunk after PUT_END"
cmp -s "$T/blob.bin" "$(stored "$H")" || fail "the stored blob is not the uploaded file"
wait_for 10 "no staging file left" tmp_empty
pass "a chunk sent right after PUT_END is refused; the stored blob is exactly the file"

# 2. A huge declared size and one chunk: refused at PUT_END, nothing kept.
BIG=$(printf '%064d' 7 | tr 0 b)
{
    echo "PUT {\"rid\":1,\"hash\":\"$BIG\",\"size\":$((2048 * MIB))}"
    echo "CHUNK {\"rid\":2,\"hash\":\"$BIG\",\"offset\":0} @zero:$MIB"
    echo "PUT_END {\"rid\":3,\"hash\":\"$BIG\"}"
} | raw alice >"$T/2.out" || fail "case 2: not every message answered: $(cat "$T/2.out")"
expect "$T/2.out" 3 ERROR "incomplete: 1 of 2048 chunks received; nothing was stored" \
    "PUT_END of a 2 GiB upload with one chunk"
[ ! -e "$(stored "$BIG")" ] || fail "a sparse blob was stored"
wait_for 10 "no staging file left" tmp_empty
alive || fail "the master stopped answering"
pass "a 2 GiB declared size with one chunk is refused at once; nothing is stored"

# 3. Duplicate, out-of-range, misaligned and over-long chunks are refused;
# the upload still completes with the right chunks, each sent once.
H3=$H
head -c $((5 * MIB / 2)) /dev/urandom >"$T/blob.bin"
H=$(sha256sum "$T/blob.bin" | cut -c1-64)
{
    echo "PUT {\"rid\":1,\"hash\":\"$H\",\"size\":$S}"
    chunk 2 0 $MIB
    chunk 3 0 $MIB
    echo "CHUNK {\"rid\":4,\"hash\":\"$H\",\"offset\":$((3 * MIB))} @zero:$MIB"
    echo "CHUNK {\"rid\":5,\"hash\":\"$H\",\"offset\":$((MIB / 2))} @zero:$MIB"
    echo "CHUNK {\"rid\":6,\"hash\":\"$H\",\"offset\":$((2 * MIB))} @zero:$MIB"
    echo "PUT_END {\"rid\":7,\"hash\":\"$H\"}"
} | raw bob >"$T/3.out" || fail "case 3: not every message answered: $(cat "$T/3.out")"
expect "$T/3.out" 2 CHUNK_OK "" "the first chunk"
expect "$T/3.out" 3 ERROR "already received" "a duplicate chunk"
expect "$T/3.out" 4 ERROR "does not fit" "a chunk past the end"
expect "$T/3.out" 5 ERROR "does not fit" "a misaligned chunk"
expect "$T/3.out" 6 ERROR "does not fit" "an over-long last chunk"
expect "$T/3.out" 7 ERROR "incomplete" "PUT_END with chunks missing"
[ ! -e "$(stored "$H")" ] || fail "an incomplete upload was stored"
pass "duplicate, out-of-range, misaligned and over-long chunks are refused; an incomplete upload is not stored"

# 4. Isolation: alice uploads H; bob announces H mid-upload and sends junk.
{
    echo "PUT {\"rid\":1,\"hash\":\"$H\",\"size\":$S}"
    chunk 2 0 $MIB
} | raw alice >"$T/4a.out"
U=$(reply "$T/4a.out" 1 | sed 's/^PUT_OK //' | jq -r .upload)
[ "$U" != null ] && [ -n "$U" ] || fail "PUT_OK names no upload: $(cat "$T/4a.out")"
{
    echo "PUT {\"rid\":1,\"hash\":\"$H\",\"size\":$S}"
    echo "CHUNK {\"rid\":2,\"hash\":\"$H\",\"offset\":$MIB,\"upload\":$U} @zero:$MIB"
    echo "CHUNK {\"rid\":3,\"hash\":\"$H\",\"offset\":$MIB} @zero:$MIB"
    echo "PUT_END {\"rid\":4,\"hash\":\"$H\",\"upload\":$U}"
} | raw bob >"$T/4b.out"
expect "$T/4b.out" 1 PUT_OK '"have":false' "bob's PUT of the hash alice is uploading"
bu=$(reply "$T/4b.out" 1 | sed 's/^PUT_OK //' | jq -r .upload)
[ "$bu" != "$U" ] || fail "bob was given alice's upload $U"
expect "$T/4b.out" 2 ERROR "no upload of ${H:0:12} in progress" "bob naming alice's upload"
expect "$T/4b.out" 3 CHUNK_OK "" "bob's chunk into his own upload"
expect "$T/4b.out" 4 ERROR "no upload" "bob ending alice's upload"
{
    chunk 3 $MIB $MIB | sed "s/}/,\"upload\":$U}/"
    chunk 4 $((2 * MIB)) $((MIB / 2)) | sed "s/}/,\"upload\":$U}/"
    echo "PUT_END {\"rid\":5,\"hash\":\"$H\",\"upload\":$U}"
} | raw alice >"$T/4c.out"
expect "$T/4c.out" 5 PUT_DONE "\"size\":$S" "alice's upload, from a second connection"
cmp -s "$T/blob.bin" "$(stored "$H")" || fail "alice's stored blob is not her file"
get="GET {\"rid\":1,\"hash\":\"$H\",\"offset\":0,\"len\":64}"
echo "$get" | raw alice | grep -q '^DATA ' || fail "alice cannot GET her own upload"
echo "$get" | raw bob >"$T/4d.out"
expect "$T/4d.out" 1 ERROR "blob ${H:0:12} is not on the master" "bob's GET of alice's blob"
echo "PUT {\"rid\":1,\"hash\":\"$H\",\"size\":$S}" | raw bob | grep -q '"have":false' ||
    fail "the master told bob it holds alice's blob"
pass "bob announcing alice's hash mid-upload gets his own upload, cannot touch hers, and cannot GET her blob"

# 5. Bounds per key: carol may have 3 uploads in progress, 4 GiB announced.
h() { printf '%064d' "$1" | tr 0 c; }
{
    for i in 1 2 3 4; do echo "PUT {\"rid\":$i,\"hash\":\"$(h $i)\",\"size\":10}"; done
    echo "PUT {\"rid\":5,\"hash\":\"$(h 1)\",\"size\":10}"
} | raw carol >"$T/5.out"
for i in 1 2 3; do expect "$T/5.out" $i PUT_OK '"have":false' "carol's upload $i"; done
expect "$T/5.out" 4 ERROR "too many uploads in progress for this key (3, the limit)" \
    "carol's fourth upload"
expect "$T/5.out" 5 ERROR "too many uploads" "carol announcing her first upload again"
echo "PUT {\"rid\":1,\"hash\":\"$(h 9)\",\"size\":$((5000 * MIB))}" | raw alice >"$T/5b.out"
expect "$T/5b.out" 1 ERROR "past the limit of 4096 MiB" "alice announcing 5000 MiB"
echo "PUT {\"rid\":1,\"hash\":\"$(h 8)\",\"size\":10}" | raw alice | grep -q '^PUT_OK' ||
    fail "carol's uploads held back alice's"
pass "uploads per key are bounded in count and bytes, with a clear refusal; other keys are not held back"

# Re-announcing does not keep an upload alive: carol's go after 2 s idle.
put_ok() { echo "PUT {\"rid\":1,\"hash\":\"$(h 5)\",\"size\":10}" | raw carol | grep -q '^PUT_OK'; }
wait_for 20 "carol's idle uploads expired" put_ok
grep -q "upload cccccccccccc (0 of 1 chunks) abandoned; staging file removed" "$T/master.log" ||
    fail "no abandoned upload in the log"
alive || fail "the master stopped answering"
pass "abandoned uploads expire though announced again"
