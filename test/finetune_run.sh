# finetune end to end on a small set: the feature cache changes nothing,
# an interrupted run resumes to exactly the uninterrupted run's files, and
# best.h5 works with classify.
. "$(dirname "$0")/lib.sh"
need_python
need_data
scratch finetune-run
"$PY" "$GRAFT_SOURCE_DIR/test/small_set.py" --data "$HYM" --out "$T" --train 8 --val 4 ||
  { fail "small set"; finish; }
FT=$GRAFT_BIN/finetune

# Runs that must agree: shuffle, dropout and a new head exercise every random stream.
common=(--arch alexnet --weights model.h5 --data data --epochs 3 --step-size 2 --augment none
        --shuffle 1 --dropout 0.5 --new-head 1 --seed 11)
"$FT" --init "$T/cache_on.h5" "${common[@]}" --cache-features on
# cache_off also saves after every epoch (save_every 0) where the others save
# at the end: when the files are written changes nothing in them.
"$FT" --init "$T/cache_off.h5" "${common[@]}" --cache-features off --save-every 0
"$FT" --init "$T/resumed.h5" "${common[@]}" --cache-features on
"$FT" --init "$T/crashed.h5" "${common[@]}" --cache-features on --save-every 0

# --show prints every setting, the given ones as given and the rest as defaults.
show=$("$FT" --show "$T/cache_on.h5")
echo "$show" | grep -qE '^lr += 0.001  \(default\)$' && echo "$show" | grep -qE '^seed += 11$' &&
  echo "$show" | grep -qE "^output += $T/runs/cache_on  \(default\)$" &&
  [ "$(echo "$show" | wc -l)" -ge 20 ] && ok "--show" || fail "--show printed: $show"

"$FT" -q "$T/cache_on.h5" > "$T/cache_on.out" || fail "cache on run"
"$FT" -q "$T/cache_off.h5" > "$T/cache_off.out" || fail "cache off run"
cat "$T/cache_on.out"
same_run "cache on vs off" "$T/runs/cache_on" "$T/runs/cache_off"
# With augmentation the loader decodes each training image once and crops the
# kept decoding in later epochs (within GRAFT_CACHE_MEMORY_MB's budget); a
# budget of 0 decodes every epoch, to the same bits.
aug=(--arch alexnet --weights model.h5 --data data --epochs 2 --augment tutorial --shuffle 1
     --seed 5)
"$FT" --init "$T/kept.h5" "${aug[@]}"
"$FT" --init "$T/decoded.h5" "${aug[@]}"
"$FT" -q "$T/kept.h5" > /dev/null || fail "augmented run, decodings kept"
GRAFT_CACHE_MEMORY_MB=0 "$FT" -q "$T/decoded.h5" > /dev/null || fail "augmented run, none kept"
same_run "decodings kept vs decoded every epoch" "$T/runs/kept" "$T/runs/decoded"
for f in best.h5 last.h5 metrics.csv curves.png predictions.png; do
  [ -s "$T/runs/cache_on/$f" ] && ok "$f written" || fail "$f missing"
done
leftovers=$(find "$T/runs" -name '*.tmp.*' -o -name '.graft-*' | wc -l)
[ "$leftovers" -eq 0 ] && ok "no temporary files left" || fail "$leftovers temporary files left"
grep -c "^epoch:  " "$T/cache_on.out" | grep -qx 3 && ok "three epoch blocks" || fail "epoch blocks"
# predictions.png: best.h5's verdicts on the 8 validation images, as classify gives them.
"$GRAFT_BIN/classify" -w "$T/runs/cache_on/best.h5" --json "$T/data/val/"*/* > "$T/val.json" &&
  out=$("$PY" "$GRAFT_SOURCE_DIR/test/check_predictions.py" "$T/runs/cache_on/predictions.png" \
    "$T/data/val" "$T/val.json" 2>&1) && ok "predictions.png: $out" || fail "predictions.png: $out"
cmp -s "$T/runs/cache_on/predictions.png" "$T/runs/cache_off/predictions.png" &&
  ok "predictions.png: cache on and off alike" || fail "predictions.png: cache on and off differ"

# Interrupt in the middle of epoch 3 (after batch 2), then run again to resume.
GRAFT_STOP_AT=3:2 "$FT" -q "$T/resumed.h5" > "$T/resumed1.out" 2> "$T/resumed1.err"
rc=$?
[ "$rc" -eq 130 ] && ok "interrupted run exits 130" || fail "interrupted run exited $rc"
grep -q "stopped at epoch 3, batch 2" "$T/resumed1.err" && ok "says where it stopped" ||
  fail "no stop message: $(cat "$T/resumed1.err")"
"$FT" -q "$T/resumed.h5" > "$T/resumed2.out" 2> "$T/resumed2.err" || fail "resumed run"
grep -q "resuming from .*last.h5: epoch 3, batch 2" "$T/resumed2.err" && ok "says it resumes" ||
  fail "no resume message: $(cat "$T/resumed2.err")"
same_run "interrupted and resumed vs uninterrupted" "$T/runs/cache_on" "$T/runs/resumed"
cmp -s "$T/runs/cache_on/predictions.png" "$T/runs/resumed/predictions.png" &&
  ok "predictions.png of the resumed run alike" || fail "predictions.png of the resumed run differs"
rm "$T/runs/resumed/predictions.png"
"$FT" -q "$T/resumed.h5" 2> "$T/resumed3.err" && grep -q "all 3 epochs are done" "$T/resumed3.err" &&
  ok "a finished run says so" || fail "rerun of a finished run: $(cat "$T/resumed3.err")"
# (and draws predictions.png again, from best.h5 read back)
cmp -s "$T/runs/cache_on/predictions.png" "$T/runs/resumed/predictions.png" &&
  ok "a finished run draws predictions.png from best.h5" ||
  fail "predictions.png of a finished run: $(cat "$T/resumed3.err")"
# A best.h5 that cannot be read back costs predictions.png only, with a warning.
cp "$T/runs/resumed/best.h5" "$T/best.keep"
rm "$T/runs/resumed/predictions.png"
head -c 4096 "$T/best.keep" > "$T/runs/resumed/best.h5"
"$FT" -q "$T/resumed.h5" 2> "$T/resumed4.err" &&
  grep -q "predictions.png: not written: .*best.h5" "$T/resumed4.err" &&
  [ ! -e "$T/runs/resumed/predictions.png" ] &&
  ok "a damaged best.h5: predictions.png not drawn, said so" ||
  fail "a damaged best.h5 at resume: $(cat "$T/resumed4.err")"
cp "$T/best.keep" "$T/runs/resumed/best.h5"

# Killed (SIGKILL, nothing saved at the time) in epoch 3 of a run that saves
# every epoch: last.h5 holds a finished epoch, any file being written then is
# a temporary the next run removes, and the resumed run ends as the
# uninterrupted one.
GRAFT_CRASH_AT=3:1 "$FT" -q "$T/crashed.h5" > /dev/null 2>&1
rc=$?
[ "$rc" -eq 137 ] && ok "killed run died by SIGKILL" || fail "killed run exited $rc"
"$PY" -c 'import sys, h5py; e = int(h5py.File(sys.argv[1], "r").attrs["epoch"]); sys.exit(0 if e in (1, 2) else 1)' \
  "$T/runs/crashed/last.h5" && ok "last.h5 after the kill holds epoch 1 or 2" ||
  fail "no usable last.h5 after the kill"
# (and one such file for sure, of a process that cannot exist, plus a file of the user's)
touch "$T/runs/crashed/last.h5.tmp.999999999.1" "$T/runs/crashed/notes.tmp.999999999.1" \
  "$T/runs/crashed/predictions.png.tmp.999999999.2"
"$FT" -q "$T/crashed.h5" > /dev/null 2> "$T/crashed2.err" || fail "run after the kill"
grep -q "last.h5.tmp.999999999.1: removed, a partial file" "$T/crashed2.err" &&
  grep -q "predictions.png.tmp.999999999.2: removed, a partial file" "$T/crashed2.err" &&
  [ -e "$T/runs/crashed/notes.tmp.999999999.1" ] && ok "stale temporaries removed, others kept" ||
  fail "stale temporaries: $(cat "$T/crashed2.err")"
rm -f "$T/runs/crashed/notes.tmp.999999999.1"
grep -q "resuming from .*last.h5 after epoch" "$T/crashed2.err" && ok "resumes after the kill" ||
  fail "no resume message after the kill: $(cat "$T/crashed2.err")"
same_run "killed and resumed vs uninterrupted" "$T/runs/cache_on" "$T/runs/crashed"
cmp -s "$T/runs/cache_on/predictions.png" "$T/runs/crashed/predictions.png" &&
  ok "predictions.png of the killed and resumed run alike" ||
  fail "predictions.png of the killed and resumed run differs"
leftovers=$(find "$T/runs/crashed" -name '*.tmp.*' | wc -l)
[ "$leftovers" -eq 0 ] && ok "no temporary files left after the kill and resume" ||
  fail "$leftovers temporary files left after the kill and resume"

# A changed config refuses to resume; --restart starts over.
"$FT" --init "$T/changed.h5" "${common[@]}" --lr 0.01 --output runs/resumed
expect_fail "changed config" 2 "different config.*--restart" -- "$FT" -q "$T/changed.h5"

# best.h5 classifies directly.
val_img=$(ls "$T/data/val/bees/"* | head -1)
if out=$("$GRAFT_BIN/classify" -w "$T/runs/cache_on/best.h5" --json "$val_img"); then
  echo "$out" | grep -q '"label": "bees"\|"label": "ants"' && ok "classify -w best.h5: $out" ||
    fail "classify output: $out"
else
  fail "classify -w best.h5 failed"
fi
finish
