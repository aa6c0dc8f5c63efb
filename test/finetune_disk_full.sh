# Disk full during a run (best.h5, last.h5, curves.png, predictions.png),
# and a feature cache larger than the free disk, on size-limited tmpfs
# mounts (needs root; skipped, saying so, where mount is not permitted):
# each time one line naming the file and "No space left on device", exit 1
# (2 when the folder is full before training starts), no temporary file
# left, and what was saved before whole and usable: best.h5 classifies,
# last.h5 resumes once there is room again.
. "$(dirname "$0")/lib.sh"
need_python
need_data
[ "$(id -u)" -eq 0 ] || skip "not root: cannot mount a size-limited tmpfs"
scratch finetune-disk-full
"$PY" "$GRAFT_SOURCE_DIR/test/small_set.py" --data "$HYM" --out "$T" --train 8 --val 4 ||
  { fail "small set"; finish; }
FT=$GRAFT_BIN/finetune
DISK=$T/disk
mkdir -p "$DISK"
unmount() { mountpoint -q "$DISK" && umount "$DISK"; }
trap unmount EXIT
mount_tmpfs() { # mount_tmpfs SIZE: a fresh, empty tmpfs of SIZE at $DISK
  unmount
  mount -t tmpfs -o "size=$1" tmpfs "$DISK" 2> "$T/mount.err" ||
    skip "cannot mount a tmpfs: $(cat "$T/mount.err")"
}
free_bytes() { df --output=avail -B1 "$DISK" | tail -1 | tr -d ' '; }
fill_to() { # fill_to BYTES: leave about BYTES free
  rm -f "$DISK/filler"
  fallocate -l $(( $(free_bytes) - $1 )) "$DISK/filler"
}
no_temps() {
  local n
  n=$(find "$DISK" -name '*.tmp.*' | wc -l)
  [ "$n" -eq 0 ] && ok "$1: no temporary file left" || fail "$1: $n temporary files left"
}
img=$(ls "$T/data/val/bees/"* | head -1)
classifies() { "$GRAFT_BIN/classify" -w "$1" "$img" > /dev/null 2>&1; }
common=(--arch alexnet --weights "$T/model.h5" --data "$T/data" --augment none
        --save-every 0 --output "$DISK/run")
nospace="No space left on device; the run stops, what was saved before is intact"

# The first save does not fit (best.h5 is 228 MB): nothing was saved before.
mount_tmpfs 100m
"$FT" --init "$T/head1.h5" "${common[@]}" --trainable head --epochs 1 > /dev/null 2>&1
expect_fail "first save, disk full" 1 "run/best.h5: not saved: .*$nospace" -- "$FT" -q "$T/head1.h5"
no_temps "first save"
[ ! -e "$DISK/run/best.h5" ] && [ ! -e "$DISK/run/last.h5" ] && [ -s "$DISK/run/metrics.csv" ] &&
  ok "first save: no best.h5 or last.h5, metrics.csv written before" || fail "first save: files"

# best.h5 fits, last.h5 does not (the whole classifier and its momentum: 436 MB).
mount_tmpfs 600m
"$FT" --init "$T/all1.h5" "${common[@]}" --trainable classifier --epochs 1 > /dev/null 2>&1
expect_fail "last.h5, disk full" 1 "run/last.h5: not saved: .*$nospace" -- "$FT" -q "$T/all1.h5"
no_temps "last.h5"
classifies "$DISK/run/best.h5" && ok "last.h5 full: best.h5 classifies" || fail "best.h5 unusable"

# A good save, then a disk that fills up: the saved files stay as they were.
mount_tmpfs 600m
"$FT" --init "$T/head3.h5" "${common[@]}" --trainable head --epochs 3 > /dev/null 2>&1
"$FT" --init "$T/head1.h5" "${common[@]}" --trainable head --epochs 1 > /dev/null 2>&1
"$FT" -q "$T/head1.h5" > /dev/null 2>&1 || fail "the good run"
saved=$(cd "$DISK/run" && md5sum best.h5 last.h5)
intact() { [ "$(cd "$DISK/run" && md5sum best.h5 last.h5)" = "$saved" ] && ok "$1: best.h5 and last.h5 intact" ||
  fail "$1: best.h5 or last.h5 changed"; }
fill_to 0
expect_fail "full before training" 2 "output folder .*run is not writable: .*No space left on device" -- \
  "$FT" -q "$T/head3.h5"
intact "full before training"
fill_to 12288 # room for metrics.csv, not for curves.png
"$FT" -q "$T/head3.h5" > /dev/null 2> "$T/png.err"
rc=$?
err=$(grep -vE "resuming from .*after epoch 1$|^finetune: no usable CUDA GPU \(.*\); running on the CPU$" \
  "$T/png.err")
[ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] &&
  printf '%s' "$err" | grep -qE "run/curves.png: not saved: .*$nospace" &&
  ok "curves.png, disk full (after resuming): $err" || fail "curves.png, disk full: exit $rc: $(cat "$T/png.err")"
intact "curves.png full"
no_temps "curves.png"
classifies "$DISK/run/best.h5" && ok "best.h5 classifies" || fail "best.h5 unusable"

# Room again: the run resumes from the intact files and ends.
rm -f "$DISK/filler"
"$FT" -q "$T/head3.h5" > /dev/null 2> "$T/resume.err"
rc=$?
[ "$rc" -eq 0 ] && grep -q "resuming from .*last.h5 after epoch 1" "$T/resume.err" &&
  ok "room again: resumes after epoch 1 and ends" || fail "resume: exit $rc: $(cat "$T/resume.err")"
[ "$(grep -c . "$DISK/run/metrics.csv")" -eq 4 ] && ok "metrics.csv has the three epochs" ||
  fail "metrics.csv: $(cat "$DISK/run/metrics.csv")"
no_temps "after the resumed run"

# predictions.png does not fit: the finished run, run again, draws it from
# best.h5 and stops with the same one line; the saved files stay as they were.
saved=$(cd "$DISK/run" && md5sum best.h5 last.h5)
fill_to 102400 # room for the folder's probe, not for predictions.png (about 0.8 MB)
"$FT" -q "$T/head3.h5" > /dev/null 2> "$T/pred.err"
rc=$?
err=$(grep -vE "resuming from .*after epoch 3$|all 3 epochs are done" "$T/pred.err" |
  grep -vE "^finetune: no usable CUDA GPU \(.*\); running on the CPU$")
[ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] &&
  printf '%s' "$err" | grep -qE "run/predictions.png: not saved: .*$nospace" &&
  ok "predictions.png, disk full: $err" ||
  fail "predictions.png, disk full: exit $rc: $(cat "$T/pred.err")"
intact "predictions.png full"
no_temps "predictions.png"
rm -f "$DISK/filler"

# A feature cache larger than the free disk (its rows all on disk, as when
# they exceed the memory budget): refused before any trunk pass, naming the
# setting. 16 AlexNet rows of train/ take 0.6 MB; the disk has about 0.25 MB.
mount_tmpfs 256k
"$FT" --init "$T/cache.h5" "${common[@]}" --trainable head --epochs 1 --cache-features on \
  > /dev/null 2>&1
expect_fail "feature cache over the free disk" 2 \
  "the feature cache needs 0.6 MB on disk in .*run, which has 0.[0-9] MB free; set cache_features = off" \
  -- env GRAFT_CACHE_MEMORY_MB=0 "$FT" -q "$T/cache.h5"
no_temps "feature cache"
unmount
finish
