#!/usr/bin/env bash
# greedy_reader.sh: a client that asks for hundreds of 4 MiB chunks and
# reads none of them cannot grow the master's memory: GET has a credit per
# connection (8 served, 64 more waiting, the rest refused with "too many
# requests"), and what ZeroMQ holds for a peer is counted until it leaves.
# Meanwhile another client's fetch works. When the greedy reader finally
# reads, every GET it sent has its answer (DATA, or the refusal).
#
# The bound asserted: the master's peak RSS (VmHWM, reset before the flood)
# grows by less than 64 MiB (8 chunks of 4 MiB in flight, plus slack).
# TSR_GREEDY_N (default 600) sets the number of GETs.
. "$(dirname "$0")/lib.sh"

N=${TSR_GREEDY_N:-600}
BOUND_KB=$((64 * 1024))

master_start
worker_start w1 local 1
wait_for 20 "worker registered" workers_live 1

# A scene archive of more than 4 MiB (incompressible), so that each GET of
# 4 MiB reads 4 MiB.
mkdir -p "$T/scene"
cp "$TSR_SRC/tests/data/small/scene.json" "$T/scene/"
head -c $((6 * 1024 * 1024)) /dev/urandom >"$T/scene/noise.bin"
job=$(jqr "$(tsr submit "$T/scene" --frames 1 --name greedy --json)" .id)
tsr watch "$job" >/dev/null || fail "job $job did not complete"
archive=$(jqr "$(tsr status "$job" --json)" .archive)
[ ${#archive} = 64 ] || fail "no archive hash in status: '$archive'"

rss_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$MASTER_PID/status"; }
echo 5 >"/proc/$MASTER_PID/clear_refs" 2>/dev/null ||
    skip "cannot reset the master's peak RSS (/proc/PID/clear_refs)"
base=$(rss_kb VmRSS)

"$TSR_BIN/tsr-raw" --timeout 20000 "$CLIENT_EP" getflood "$N" "$archive" 4194304 \
    "$T/go" >"$T/flood.txt" 2>&1 &
flood_pid=$!
PIDS+=("$flood_pid")
wait_for 30 "the flood sent" grep -q "^sent $N" "$T/flood.txt"
# The master has read the flood once it refuses (the 73rd GET on).
wait_for 30 "the master refusing GETs past the credit" \
    grep -q "GET refused, 8 in flight and 64 waiting" "$T/master.log"

# Another client's download works meanwhile.
tsr fetch "$job" -o "$T/out" >/dev/null || fail "another client's fetch failed"
(cd "$T/out" && sha256sum -c --quiet SHA256SUMS) || fail "fetched frames do not verify"
tsr status "$job" >/dev/null || fail "the master stopped answering"
pass "another client's fetch works while a reader sits on $N GETs"

peak=$(rss_kb VmHWM)
growth=$((peak - base))
echo "master RSS: ${base} kB before, peak ${peak} kB during the flood: +$((growth / 1024)) MiB"
[ "$growth" -lt "$BOUND_KB" ] ||
    fail "the master grew by $((growth / 1024)) MiB for one greedy reader (bound 64 MiB)"
pass "the master's peak RSS grew by $((growth / 1024)) MiB (< 64 MiB) for $N unread 4 MiB GETs"

# The reader reads at last: every GET is answered, DATA or a clear refusal.
touch "$T/go"
wait "$flood_pid" || fail "the greedy reader did not get all its answers: $(cat "$T/flood.txt")"
res=$(grep '^data=' "$T/flood.txt")
data=${res#data=}
data=${data%% *}
[ "$data" -ge 72 ] || fail "only $data GETs were served: $res"
grep -q "busy=$((N - data)) other=0" "$T/flood.txt" || fail "unexpected answers: $res"
grep -q "^busy: too many GETs in flight" "$T/flood.txt" ||
    fail "no clear refusal: $(cat "$T/flood.txt")"
pass "every GET answered once read: $res"
