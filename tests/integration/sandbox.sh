#!/usr/bin/env bash
# sandbox.sh: what a hostile renderer can reach. A scene archive carries a
# probe script that a command renderer runs; it tries to read the worker's
# secret key, the master's database, the worker's cache and spool (other
# jobs' scenes and results), to reach a TCP port on the host, to see the
# worker process, to write into its scene and outside its task folder. On a
# worker with the default sandbox (bubblewrap; as root also the user nobody)
# all of that fails and the job completes; the same probe on a worker with
# --sandbox none reaches every one of them, so the probe is known to work.
# The worker's key also lies in a folder shown with --sandbox-bind: the
# renderer sees the public key beside it but not the secret one. A worker
# whose sandbox cannot be made (an unknown --sandbox-user) refuses to start
# and says why.
. "$(dirname "$0")/lib.sh"

command -v bwrap >/dev/null || { echo "skip: bubblewrap (bwrap) is not installed"; exit 77; }

K="$T/keys"
mkdir -p "$K/studios" "$K/operators" "$K/workers"
for k in master studios/alice operators/ops workers/boxed workers/open; do
    "$TSR_BIN/tessera" keygen "$K/$k" >/dev/null || fail "keygen $k"
done
master_start --key "$K/master.key" --studio-keys "$K/studios" \
    --operator-keys "$K/operators" --worker-keys "$K/workers"
export TESSERA_KEY="$K/operators/ops.key" TESSERA_MASTER_KEY="$K/master.pub"
worker_start boxed local 1 --key "$K/workers/boxed.key" --master-key "$K/master.pub" \
    --feature boxed --sandbox-bind "$K/workers"
boxed_pid=$WORKER_PID
worker_start open local 1 --key "$K/workers/open.key" --master-key "$K/master.pub" \
    --feature open --sandbox none
open_pid=$WORKER_PID
wait_for 30 "two workers registered" workers_live 2
grep -q "renderer sandbox: bubblewrap" "$T/worker-boxed.log" ||
    fail "the boxed worker does not say how renderers are confined"
grep -q "renderer sandbox: none (--sandbox none)" "$T/worker-open.log" ||
    fail "the unconfined worker does not warn"
w=$(tsr workers --json)
[ "$(jqr "$w" '.[] | select(.name == "boxed") | .sandbox')" = bwrap ] &&
    [ "$(jqr "$w" '.[] | select(.name == "open") | .sandbox')" = none ] ||
    fail "tessera workers --json does not show the sandboxes: $w"
tsr workers | grep -q "^open .* none " || fail "the workers table does not show 'none': $(tsr workers)"
pass "workers say how their renderers are confined, in their log and in tessera workers"

# A TCP port on the host for the renderer to try.
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True); time.sleep(600)' >"$T/port" &
PIDS+=($!)
wait_for 10 "a listening port" test -s "$T/port"
port=$(cat "$T/port")

# A first job on each worker, so that their caches hold another scene.
mkdir -p "$T/first"
echo "another studio's shot ORBIT-7731-FINAL" >"$T/first/secret.txt"
for f in boxed open; do
    tsr submit "$T/first" --renderer command --command true --outputs none --require "$f" \
        --name "first-$f" --wait >/dev/null || fail "first job on $f"
done

# probe_scene NAME PID: a scene whose script tries everything against the
# worker NAME (process PID); its last line says what it reached, and it
# exits 9 if it reached anything. Its own scene and task folder are fair
# game: "worker cache" means another job's scene beside its own.
probe_scene() {
    local name=$1 pid=$2 cache="$T/cache-$1"
    mkdir -p "$T/probe-$name"
    cat >"$T/probe-$name/probe.sh" <<EOS
#!/bin/sh
reached=""
try() { what=\$1; shift; if "\$@" >/dev/null 2>&1; then reached="\$reached \$what;"; fi; }
scenes() { [ "\$(ls "$cache/scenes" | wc -l)" -ge 2 ]; }
try "worker key" grep -q . "$K/workers/$name.key"
try "master data" ls "$T/master"
try "master database" grep -q . "$T/master/db/data.mdb"
try "worker cache" scenes
try "result spool" ls "$cache/spool"
try "other scene" grep -rq "ORBIT-\$((7000 + 731))" "$cache/scenes"
try "network" python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 2)"
try "worker process" test -e /proc/$pid
try "scene write" touch "\$SCENE/written"
touch "$T/escaped-$name" 2>/dev/null # the test looks for it on the host
# What it may do: write its own task folder.
echo ok >"\$PWD/own-folder" || { echo "cannot write its task folder"; exit 8; }
[ -z "\$reached" ] || { echo "reached:\$reached"; exit 9; }
echo "reached nothing"
EOS
}

# The boxed worker's probe.
probe_scene boxed "$boxed_pid"
out=$(tsr submit "$T/probe-boxed" --renderer command --outputs none --require boxed \
      --max-attempts 1 --name probe-boxed --command 'SCENE={scene_dir} sh {scene_dir}/probe.sh' \
      --json --wait) || fail "the probe reached something from inside the sandbox: $out"
[ "$(jqr "$out" .state)" = done ] || fail "probe job on boxed: $out"
[ ! -e "$T/escaped-boxed" ] || fail "the sandboxed renderer wrote outside its task folder"
pass "inside the sandbox: no key, no master data, no cache or spool, no other scene, no network, no worker process, no writes outside its task folder"

# The same probe, unconfined: it reaches them, so the probe does work.
probe_scene open "$open_pid"
out=$(tsr submit "$T/probe-open" --renderer command --outputs none --require open \
      --max-attempts 1 --name probe-open --command 'SCENE={scene_dir} sh {scene_dir}/probe.sh' \
      --json --wait) && fail "the unconfined probe reached nothing: $out"
err=$(jqr "$out" '.failed_tasks[0].error')
for what in "worker key" "master data" "master database" "worker cache" "result spool" \
            "other scene" network "worker process" "scene write"; do
    [[ "$err" == *"$what;"* ]] || fail "unconfined, the probe did not reach '$what': $err"
done
[ -e "$T/escaped-open" ] || fail "unconfined, the probe could not write outside its folder"
pass "the same probe on a --sandbox none worker reaches all of them (and says so in the task's error)"

# Which user the renderers ran as: the task folder of a job run just now.
uid_job=$(jqr "$(tsr submit "$T/first" --renderer command --outputs none --require boxed \
                 --command 'id -u >&2; exit 4' --max-attempts 1 --json --wait)" \
          '.failed_tasks[0].error')
if [ "$(id -u)" = 0 ]; then
    [[ "$uid_job" == *"status 4: $(id -u nobody)" ]] ||
        fail "a root worker's renderer did not run as nobody: $uid_job"
    pass "a root worker runs renderers as nobody"
else
    [[ "$uid_job" == *"status 4: $(id -u)" ]] || fail "renderer uid: $uid_job"
    pass "a worker runs renderers as its own user"
fi

# The key in the --sandbox-bind folder: its .pub is there, the key is empty.
seen=$(jqr "$(tsr submit "$T/first" --renderer command --outputs none --require boxed \
       --command "grep -q . '$K/workers/boxed.pub' && wc -c <'$K/workers/boxed.key' >&2; exit 4" \
       --max-attempts 1 --json --wait)" '.failed_tasks[0].error')
[[ "$seen" == *"status 4: 0" ]] ||
    fail "the worker's key is not hidden in a --sandbox-bind folder: $seen"
pass "a key inside a --sandbox-bind folder is hidden (an empty file), the folder shown"

# A sandbox that cannot be made: the worker refuses to start, in one line.
set +e
env -u TESSERA_KEY -u TESSERA_MASTER_KEY \
    "$TSR_BIN/tessera-worker" --master "$WORKER_EP" --name nouser --cache "$T/cache-nouser" \
    --sandbox-user no-such-user-here >"$T/nouser.txt" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || fail "a worker with an unknown --sandbox-user started"
if [ "$(id -u)" = 0 ]; then
    grep -q "renderer sandbox: --sandbox-user 'no-such-user-here': no such user" \
        "$T/nouser.txt" || fail "unknown --sandbox-user: $(cat "$T/nouser.txt")"
else
    grep -q "renderer sandbox: --sandbox-user needs a worker running as root" \
        "$T/nouser.txt" || fail "--sandbox-user as non-root: $(cat "$T/nouser.txt")"
fi
pass "a worker whose sandbox cannot be made refuses to start and says why"
