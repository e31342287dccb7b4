#!/usr/bin/env bash
# liar.sh: one worker's fail-fast verdict is only its word. A worker that
# answers every task with missing_asset (tsr-raw playing a worker) beside an
# honest one: every job completes, each lie is blamed on the liar once the
# honest worker renders the task, and the liar is blocked for the job and
# quarantined. A genuinely missing asset still fails fast: once a second
# worker confirms it, or at once when no other worker could try.
. "$(dirname "$0")/lib.sh"

master_start --block-after 2 --quarantine-jobs 2
worker_start honest local 1
HONEST_PID=$WORKER_PID
"$TSR_BIN/tsr-raw" "$WORKER_EP" liar liar missing_asset >>"$T/liar.log" 2>&1 &
PIDS+=($!)
LIAR_PID=$!
wait_for 20 "two workers" workers_live 2
mkdir -p "$T/scene" && echo x >"$T/scene/README"

# Two jobs with one attempt per task: a counted lie would fail them.
ids=()
for n in 1 2; do
    ids+=("$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-8 \
                  --max-attempts 1 --name "job$n" --command 'sleep 0.1' --json)" .id)")
done
for j in "${ids[@]}"; do
    tsr watch "$j" >/dev/null || fail "job $j did not complete: $(tsr status "$j" --json)"
    st=$(tsr status "$j" --json)
    [ "$(jqr "$st" .tasks.done)" = 8 ] || fail "job $j: $st"
done
lies=$(tsr events --json --limit 500 |
       jq '[.[] | select(.kind == "task_failed" and .worker == "liar")] | length')
[ "$lies" -ge 2 ] || fail "the liar told $lies lies; the test needs it to take tasks"
pass "$lies missing_asset lies from one worker: both one-attempt jobs complete"

blocked=0
for j in "${ids[@]}"; do
    [ "$(tsr status "$j" --json | jq '.blocked_workers | index("liar") != null')" = true ] &&
        blocked=$((blocked + 1))
done
[ "$blocked" -ge 1 ] || fail "the liar was blocked for no job"
quarantined() { tsr workers --json | jq -e '.[] | select(.name == "liar" and .state == "quarantined")'; }
wait_for 10 "liar quarantined" quarantined
tsr workers --json | jq -e '.[] | select(.name == "honest" and .state != "quarantined")' \
    >/dev/null || fail "the honest worker was quarantined"
pass "the liar is blocked for $blocked job(s) and quarantined; the honest worker is not"

# A genuinely missing asset: two workers both say so. The honest worker is
# gone, a second liar joins, and the quarantined one is released.
kill -9 "$HONEST_PID"
one_live() { [ "$(tsr workers --json | jq '[.[] | select(.name == "honest" and .state == "lost")] | length')" = 1 ]; }
wait_for 20 "honest worker lost" one_live
tsr workers release liar >/dev/null
"$TSR_BIN/tsr-raw" "$WORKER_EP" liar liar2 missing_asset >>"$T/liar2.log" 2>&1 &
PIDS+=($!)
LIAR2_PID=$!
wait_for 20 "second liar" workers_live 2
j=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-3 \
          --max-attempts 5 --name missing --command true --json)" .id)
set +e; tsr watch "$j" >/dev/null; rc=$?; set -e
st=$(tsr status "$j" --json)
[ "$rc" = 1 ] && [ "$(jqr "$st" .state)" = failed ] || fail "job $j: watch $rc, $st"
[[ "$(jqr "$st" '.failed_tasks[0].error')" == "missing_asset: "* ]] || fail "job $j: $st"
fails=$(tsr events --json --job "$j" --limit 500 | jq '[.[] | select(.kind == "task_failed")] | length')
[ "$fails" = 6 ] || fail "job $j: $fails failed attempts for 3 tasks, wanted 6 (2 each)"
pass "a missing asset confirmed by a second worker fails fast: 2 attempts per task, not 5"

kill -9 "$LIAR2_PID"
lost2() { tsr workers --json | jq -e '.[] | select(.name == "liar2" and .state == "lost")'; }
wait_for 20 "second liar lost" lost2
j=$(jqr "$(tsr submit "$T/scene" --renderer command --outputs none --frames 1-3 \
          --max-attempts 5 --name alone --command true --json)" .id)
set +e; tsr watch "$j" >/dev/null; rc=$?; set -e
[ "$rc" = 1 ] || fail "job $j: watch exited $rc"
fails=$(tsr events --json --job "$j" --limit 500 | jq '[.[] | select(.kind == "task_failed")] | length')
[ "$fails" = 3 ] || fail "job $j: $fails failed attempts for 3 tasks, wanted 3"
pass "with no other worker to ask, a missing asset fails fast at once"
