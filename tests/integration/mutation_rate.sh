#!/usr/bin/env bash
# mutation_rate.sh: a client cannot flood the master with changes. One
# connection sends 500 PAUSE and 500 RESUME of a job at once: the master
# accepts a burst (--mutation-burst, 200 by default) and then about
# --mutation-rate (50) a second, and refuses the rest with "too many
# requests ... retry in N ms" (TSR_EBUSY); each accepted toggle wrote exactly
# one event, and a pause of a job already paused writes none. Another client
# pauses and resumes meanwhile without a refusal.
. "$(dirname "$0")/lib.sh"

N=${TSR_RATE_N:-500}
master_start
mkdir -p "$T/scene" && echo x >"$T/scene/README"
# No worker: the job stays queued, so every toggle is a real change.
job=$(jqr "$(tsr submit "$T/scene" --renderer command --command true --outputs none \
            --frames 1-3 --name toggled --json)" .id)

toggles() { # the job's job_paused and job_resumed events
    tsr events --job "$job" --limit 500 --json |
        jq '[.[] | select(.kind == "job_paused" or .kind == "job_resumed")] | length'
}
[ "$(toggles)" = 0 ] || fail "events before any toggle"

out=$("$TSR_BIN/tsr-raw" --timeout 20000 "$CLIENT_EP" burst "$N" \
      PAUSE "{\"job\":$job}" RESUME "{\"job\":$job}") || fail "burst: $out"
echo "$out"
ok=$(sed -n 's/^ok=\([0-9]*\) .*/\1/p' <<<"$out")
busy=$(sed -n 's/^ok=[0-9]* busy=\([0-9]*\) .*/\1/p' <<<"$out")
[ "$busy" -gt 0 ] || fail "no toggle was refused: $out"
[ "$ok" -le 400 ] || fail "$ok of $((2 * N)) toggles accepted at once: $out"
grep -q "^busy: too many requests: at most 50 changes a second (burst 200); retry in [0-9]* ms" \
    <<<"$out" || fail "no clear refusal: $out"
grep -q "asks for changes faster than 50 a second" "$T/master.log" ||
    fail "the master did not log the refusal"
pass "a burst of $((2 * N)) toggles: $ok accepted, $busy refused with 'too many requests'"

events=$(toggles)
[ "$events" = "$ok" ] || fail "$ok toggles accepted but $events events written"
pass "each accepted toggle wrote one event ($events)"

# Another client is not refused meanwhile.
state=$(jqr "$(tsr status "$job" --json)" .state)
if [ "$state" = paused ]; then tsr resume "$job" >/dev/null; fi
tsr pause "$job" >/dev/null || fail "another client's pause was refused"
before=$(toggles)
tsr pause "$job" >/dev/null || fail "pausing a paused job failed"
[ "$(toggles)" = "$before" ] || fail "pausing a paused job wrote an event"
tsr resume "$job" >/dev/null || fail "another client's resume was refused"
[ "$(toggles)" = $((before + 1)) ] || fail "resume did not write one event"
pass "another client pauses and resumes; a pause of a paused job writes no event"
