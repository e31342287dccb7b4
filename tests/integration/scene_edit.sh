#!/usr/bin/env bash
# scene_edit.sh: a worker renders from its extracted copy of a scene; a file
# changed there (by an operator, another process on the host, or a renderer
# run with --sandbox none) must not give wrong frames that verify. Before
# each task the worker compares the extracted files with the manifest it
# wrote at extraction (lstat only) and extracts again from the archive on
# any difference. Four edits: the colour in scene.json changed in place at
# the same size with its mtime put back (touch -r: only ctime tells), a file
# added, only the mtime moved back, and scene.json rewritten by the renderer
# of another job (the worker runs with --sandbox none). After each, the same scene submitted
# again gives the very frames of the first job, and the log names the change.
. "$(dirname "$0")/lib.sh"

# examples/orbit, smaller and with fewer samples to keep the test quick.
mkdir -p "$T/orbit"
sed -e 's/"resolution": \[320, 180\]/"resolution": [80, 45]/' \
    -e 's/"samples": 16/"samples": 4/' "$TSR_SRC/examples/orbit/scene.json" \
    >"$T/orbit/scene.json"
grep -q '"resolution": \[80, 45\]' "$T/orbit/scene.json" || fail "examples/orbit changed shape"
grep -q '"color": \[0.6, 0.6, 0.58\]' "$T/orbit/scene.json" || fail "no ground colour to edit"

master_start
worker_start w1 local 1 --sandbox none
wait_for 20 "worker registered" workers_live 1

# run N: submits the scene, waits, fetches into $T/outN; prints frame hashes.
run() {
    local job
    job=$(jqr "$(tsr submit "$T/orbit" --frames 1-2 --name "orbit$1" --json --wait)" .id) ||
        fail "job orbit$1 did not complete: $(tsr status "$job" --json 2>&1 || true)"
    tsr fetch "$job" -o "$T/out$1" >/dev/null || fail "fetch of job $job failed"
    (cd "$T/out$1" && sha256sum -c --quiet SHA256SUMS) || fail "job $job: SHA256SUMS fails"
    sort -k2 "$T/out$1/SHA256SUMS"
}

first=$(run 0)
[ "$(printf '%s\n' "$first" | wc -l)" = 2 ] || fail "expected 2 frames: $first"
pass "first job done: 2 frames"
scenes=("$T/cache-w1/scenes"/*)
[ ${#scenes[@]} = 1 ] && [ -f "${scenes[0]}/scene.json" ] || fail "no extracted scene: ${scenes[*]}"
ext=${scenes[0]}

# extractions: how many times the worker extracted the archive.
extractions() { grep -c "extracted$" "$T/worker-w1.log" || true; }

# again N WHAT: the same scene again gives the first frames, after one more
# extraction that the log explains with WHAT.
again() {
    local before got msg seen
    before=$(extractions)
    msg="scene [0-9a-f]\{12\}: extracted file '$2; extracting again"
    seen=$(grep -c "$msg" "$T/worker-w1.log" || true)
    got=$(run "$1")
    [ "$got" = "$first" ] ||
        fail "edit $1 ($2): the frames differ from the first job's:
$first
---
$got"
    [ "$(grep -c "$msg" "$T/worker-w1.log" || true)" = $((seen + 1)) ] ||
        fail "edit $1: no re-extraction logged for '$2': $(grep scene "$T/worker-w1.log" | tail -3)"
    [ "$(extractions)" = $((before + 1)) ] || fail "edit $1: not extracted again once"
}

# 1: the ground's colour, same size, same inode, mtime put back.
touch -r "$ext/scene.json" "$T/mtime_ref"
size=$(stat -c %s "$ext/scene.json")
python3 - "$ext/scene.json" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    s = f.read()
    i = s.index(b'"color": [0.6, 0.6, 0.58]')
    f.seek(i)
    f.write(b'"color": [0.9, 0.1, 0.18]')
PY
touch -r "$T/mtime_ref" "$ext/scene.json"
[ "$(stat -c %s "$ext/scene.json")" = "$size" ] || fail "edit changed the size"
again 1 "scene.json' changed"
pass "a same-size edit with its mtime put back is seen; frames equal the first job's"

# 2: a file added.
echo extra >"$ext/extra.txt"
again 2 "extra.txt' added"
[ ! -e "$ext/extra.txt" ] || fail "the added file survived the re-extraction"
pass "an added file is seen and removed; frames equal the first job's"

# 3: only the mtime moved back.
touch -r "$T/mtime_ref" -d '-1 day' "$ext/scene.json" 2>/dev/null ||
    touch -d '2001-01-01' "$ext/scene.json"
again 3 "scene.json' changed"
pass "a touched mtime is seen; frames equal the first job's"

# 4: a renderer of a job on the same archive, unconfined (--sandbox none),
# rewrites the scene it was given.
job=$(jqr "$(tsr submit "$T/orbit" --renderer command --outputs none --name rewrite \
    --command "sed -i 's/0\.6, 0\.6, 0\.58/0.9, 0.1, 0.18/' {scene_dir}/scene.json" \
    --json --wait)" .id) || fail "the rewriting job did not complete"
grep -q '0.9, 0.1, 0.18' "$ext/scene.json" || fail "the renderer did not rewrite its scene"
again 4 "scene.json' changed"
pass "a scene a renderer rewrote is seen; frames equal the first job's"

# An untouched scene is used as it is: no extraction for the next job.
before=$(extractions)
[ "$(run 5)" = "$first" ] || fail "job 5 frames differ"
[ "$(extractions)" = "$before" ] || fail "an untouched scene was extracted again"
pass "an untouched scene is not extracted again"
