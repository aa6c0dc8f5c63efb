# finetune over MPI ranks, on a small set with two images that fail to
# decode: metrics.csv, best.h5 and last.h5 of a single process, with the
# feature cache (the cache-filling pass shared over the ranks) and without
# (augmentation: each step's trunk on a rank), each failing image said once;
# a signal on another rank than 0, or on all at once, stops every rank after
# one save (exit 130) and one or two ranks resume it to the same files; a rank killed in the
# middle gives an error naming it, leaves no half-written file, and three
# ranks resume it to the same files.
. "$(dirname "$0")/lib.sh"
need_mpi
need_python
need_data
scratch mpi-finetune
"$PY" "$GRAFT_SOURCE_DIR/test/small_set.py" --data "$HYM" --out "$T" --train 8 --val 4 ||
  { fail "small set"; finish; }
mkdir -p "$T/bad"
"$PY" "$GRAFT_SOURCE_DIR/test/make_bad_inputs.py" "$T/bad" || { fail "fixtures"; finish; }
cp "$T/bad/truncated.jpg" "$T/data/train/ants/zz_truncated.jpg"
cp "$T/bad/truncated.jpg" "$T/data/train/bees/zz_truncated.jpg"
FT=$GRAFT_BIN/finetune

# One thread per process everywhere (a trunk's bits can depend on the
# thread count, never on the ranks); batches of 3: 6 steps, 2 failing images.
common=(--arch alexnet --weights model.h5 --data data --epochs 2 --batch-size 3 --shuffle 1
        --dropout 0.5 --seed 7 --threads 1 --trainable head --save-every 1000 --device cpu)
for mode in none tutorial; do
  for name in one many; do "$FT" --init "$T/${mode}_$name.h5" "${common[@]}" --augment "$mode"; done
done
"$FT" --init "$T/stopped.h5" "${common[@]}" --augment tutorial
"$FT" --init "$T/stopped_all.h5" "${common[@]}" --augment tutorial
"$FT" --init "$T/killed.h5" "${common[@]}" --augment tutorial --save-every 0

# finetune's own lines of stderr, less the timings.
said() { grep '^finetune: ' "$1" | sed -E 's/[0-9.]+ s\b//g'; }

for mode in none tutorial; do
  "$FT" -q "$T/${mode}_one.h5" > "$T/one.out" 2> "$T/one.err" || fail "$mode: single process"
  mpi 2 "$FT" -q "$T/${mode}_many.h5" > "$T/many.out" 2> "$T/many.err" ||
    fail "$mode: 2 ranks: $(cat "$T/many.err")"
  same_run "augment $mode: 2 ranks vs a single process" "$T/runs/${mode}_one" "$T/runs/${mode}_many"
  cmp -s "$T/one.out" "$T/many.out" && ok "augment $mode: the same epochs printed" ||
    fail "augment $mode: printed $(diff "$T/one.out" "$T/many.out")"
  n=$(grep -c "zz_truncated.jpg: .*skipped" "$T/many.err")
  if [ "$n" -eq 2 ] && cmp -s <(said "$T/one.err" | sed "s/${mode}_one/X/g") \
                             <(said "$T/many.err" | sed "s/${mode}_many/X/g"); then
    ok "augment $mode: each failing image said once, as a single process says it"
  else
    fail "augment $mode: $n warnings: $(cat "$T/many.err")"
  fi
done
leftovers=$(find "$T/runs" -name '*.tmp.*' -o -name '.graft-*' | wc -l)
[ "$leftovers" -eq 0 ] && ok "no temporary files left" || fail "$leftovers temporary files left"

# SIGINT on rank 1 in epoch 2: every rank stops after the step, rank 0 saves
# once, all exit 130; a single process resumes it.
mpi_mpmd "$FT" -q "$T/stopped.h5" : env GRAFT_STOP_AT=2:1 "$FT" -q "$T/stopped.h5" \
  > /dev/null 2> "$T/stop.err"
rc=$?
[ "$rc" -eq 130 ] && ok "a signal on rank 1: exit 130" || fail "a signal on rank 1: exit $rc"
n=$(grep -c "^finetune: stopped at epoch 2, batch [0-9]*; .*last.h5 saved" "$T/stop.err")
[ "$n" -eq 1 ] && ok "saved once: $(grep '^finetune: stopped' "$T/stop.err")" ||
  fail "$n stop messages: $(cat "$T/stop.err")"
"$FT" -q "$T/stopped.h5" > /dev/null 2> "$T/resume.err" || fail "resume: $(cat "$T/resume.err")"
grep -q "resuming from .*last.h5: epoch 2, batch" "$T/resume.err" && ok "a single process resumes it" ||
  fail "no resume message: $(cat "$T/resume.err")"
same_run "stopped on 2 ranks, resumed by 1 vs uninterrupted" "$T/runs/tutorial_one" "$T/runs/stopped"

# A signal on every rank at once (what mpirun does on Ctrl-C, README "Many
# machines"): one save, exit 130; two ranks resume it.
mpi_mpmd env GRAFT_STOP_AT=2:1 "$FT" -q "$T/stopped_all.h5" : \
  env GRAFT_STOP_AT=2:1 "$FT" -q "$T/stopped_all.h5" > /dev/null 2> "$T/stop.err"
rc=$?
n=$(grep -c "^finetune: stopped at epoch 2, batch [0-9]*; .*last.h5 saved" "$T/stop.err")
[ "$rc" -eq 130 ] && [ "$n" -eq 1 ] && ok "a signal on every rank: exit 130, saved once" ||
  fail "a signal on every rank: exit $rc, $n stop messages: $(cat "$T/stop.err")"
mpi 2 "$FT" -q "$T/stopped_all.h5" > /dev/null 2> "$T/resume.err" || fail "resume: $(cat "$T/resume.err")"
same_run "stopped on every rank, resumed by 2 vs uninterrupted" "$T/runs/tutorial_one" \
  "$T/runs/stopped_all"

# Rank 1 killed (SIGKILL) in epoch 2, epoch 1's files saved or being saved:
# an error naming it; no file half-written (a temporary at most, removed by
# the next run); three ranks resume to the same files.
mpi_mpmd "$FT" -q "$T/killed.h5" : env GRAFT_CRASH_AT=2:1 "$FT" -q "$T/killed.h5" \
  > /dev/null 2> "$T/kill.err"
rc=$?
if [ "$rc" -ne 0 ] && grep -qiE "rank 1 .*(signal 9|killed)" "$T/kill.err"; then
  ok "a rank killed: exit $rc, $(grep -iE "rank 1 .*(signal 9|killed)" "$T/kill.err" | head -1)"
else
  fail "a rank killed: exit $rc: $(cat "$T/kill.err")"
fi
"$PY" - "$T/runs/killed" <<'PYEOF' && ok "no file half-written after the kill" || fail "a file half-written after the kill"
import os, sys, h5py
d = sys.argv[1]
for name in ("best.h5", "last.h5"):
    p = os.path.join(d, name)
    if os.path.exists(p):
        with h5py.File(p, "r") as f:
            for k in f.keys():
                f[k][()]
PYEOF
# Whether the kill cut a save of rank 0's short depends on timing; plant what
# it leaves when it does, deterministically: a temporary whose writer's PID
# still answers kill(pid, 0), as a killed rank does while it is a zombie that
# nobody has reaped yet (a real one: a child of a process that never waits).
# The shell execs before its child ends, so nothing reaps the child.
bash -c 'sleep 0.2 & echo $! > "$1"; exec sleep 300' zombie "$T/zombie.pid" &
holder=$!
zpid=
for _ in $(seq 100); do
  [ -s "$T/zombie.pid" ] && zpid=$(cat "$T/zombie.pid") &&
    [ "$(awk '{print $3}' "/proc/$zpid/stat" 2>/dev/null)" = Z ] && break
  sleep 0.1
done
planted="$T/runs/killed/last.h5.tmp.$zpid.5"
printf 'partial' > "$planted"
[ "$(awk '{print $3}' "/proc/$zpid/stat" 2>/dev/null)" = Z ] && kill -0 "$zpid" 2>/dev/null &&
  ok "planted $(basename "$planted"): its PID $zpid is a zombie and answers kill -0" ||
  fail "the planted temporary's PID $zpid is not a zombie that answers kill -0"
mpi 3 "$FT" -q "$T/killed.h5" > /dev/null 2> "$T/kill2.err" || fail "after the kill: $(cat "$T/kill2.err")"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
grep -q "$(basename "$planted"): removed, a partial file" "$T/kill2.err" &&
  ok "the resume removed the temporary of a PID that still answers" ||
  fail "the planted temporary was not removed: $(cat "$T/kill2.err")"
same_run "killed on 2 ranks, resumed on 3 vs uninterrupted" "$T/runs/tutorial_one" "$T/runs/killed"
leftovers=$(find "$T/runs" -name '*.tmp.*' | wc -l)
[ "$leftovers" -eq 0 ] && ok "no temporary files left after the kill and resume" ||
  fail "$leftovers temporary files left after the kill and resume"
finish
