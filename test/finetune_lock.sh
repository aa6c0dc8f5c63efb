# One run at a time in an output folder: a second finetune on a folder in
# use exits 2 at once, naming the folder and the holder's pid, whether it
# would resume, restart or run another config there; a run killed with
# SIGKILL leaves no obstacle, and the next run resumes from what it saved.
. "$(dirname "$0")/lib.sh"
need_python
need_data
scratch finetune-lock
"$PY" "$GRAFT_SOURCE_DIR/test/small_set.py" --data "$HYM" --out "$T" --train 8 --val 4 ||
  { fail "small set"; finish; }
FT=$GRAFT_BIN/finetune
common=(--arch alexnet --weights model.h5 --data data --augment none --trainable head
        --save-every 0 --output runs/shared)
"$FT" --init "$T/long.h5" "${common[@]}" --epochs 100000 > /dev/null 2>&1
"$FT" --init "$T/other.h5" "${common[@]}" --epochs 100000 --lr 0.01 > /dev/null 2>&1
"$FT" --init "$T/short.h5" "${common[@]}" --epochs 1 > /dev/null 2>&1
lock=$T/runs/shared/run.lock

"$FT" -q "$T/long.h5" > "$T/long.out" 2> "$T/long.err" &
holder=$!
# The holder writes its pid into the lock once it has it, and saves after
# every epoch: wait for its first last.h5.
for _ in $(seq 1 600); do
  [ -s "$T/runs/shared/last.h5" ] && [ "$(cat "$lock" 2>/dev/null)" = "$holder" ] && break
  kill -0 "$holder" 2>/dev/null || break
  sleep 0.2
done
if ! kill -0 "$holder" 2>/dev/null; then
  fail "the first run ended early: $(cat "$T/long.err")"
  finish
fi
[ "$(cat "$lock")" = "$holder" ] && ok "run.lock holds the running process's pid" ||
  fail "run.lock holds '$(cat "$lock")', not $holder"

pattern="output folder .*runs/shared: in use by process $holder \(it holds .*run.lock\)"
start=$(date +%s%N)
expect_fail "a second run on the same config" 2 "$pattern" -- "$FT" -q "$T/long.h5"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$ms" -lt 10000 ] && ok "it stopped at once ($ms ms)" || fail "it took $ms ms to stop"
expect_fail "--restart on a folder in use" 2 "$pattern" -- "$FT" -q --restart "$T/long.h5"
expect_fail "another config on the same folder" 2 "$pattern" -- "$FT" -q "$T/other.h5"
[ -s "$T/runs/shared/last.h5" ] && ok "--restart left the holder's last.h5 alone" ||
  fail "last.h5 is gone"
kill -0 "$holder" 2>/dev/null && ok "the first run is still training" ||
  fail "the first run stopped: $(cat "$T/long.err")"

# Killed: the kernel drops the lock with the process.
kill -9 "$holder"
wait "$holder" 2>/dev/null
"$FT" -q "$T/short.h5" > /dev/null 2> "$T/short.err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "resuming from .*last.h5" "$T/short.err" &&
   ! grep -q "in use" "$T/short.err"; then
  ok "after kill -9, the next run takes the folder and resumes"
else
  fail "after kill -9: exit $rc: $(cat "$T/short.err")"
fi
[ "$(cat "$lock")" != "$holder" ] && ok "run.lock now names the new holder" ||
  fail "run.lock still names the killed run"
"$FT" -q "$T/short.h5" > /dev/null 2> "$T/again.err" && ! grep -q "in use" "$T/again.err" &&
  ok "a run after a finished one is not blocked" || fail "blocked: $(cat "$T/again.err")"
leftovers=$(find "$T/runs" -name '*.tmp.*' | wc -l)
[ "$leftovers" -eq 0 ] && ok "no temporary files left" || fail "$leftovers temporary files left"
finish
