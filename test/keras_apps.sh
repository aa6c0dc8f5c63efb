# Keras VGG16 weights files through the apps: a file that is not a VGG16 is one
# line naming the file and the first layer that does not fit (classify,
# finetune, bench); a file without its top cannot classify, cannot keep its
# classifier, gets a new one from the seed when fine-tuned (saying so), and
# its best.h5 classifies; a diverging run names the likely cause.
. "$(dirname "$0")/lib.sh"
need_python
need_data
scratch keras-apps
"$PY" "$GRAFT_SOURCE_DIR/test/make_keras.py" "$T" --only-bad || { fail "make_keras.py"; finish; }
"$PY" "$GRAFT_SOURCE_DIR/test/small_set.py" --data "$HYM" --out "$T" --train 4 --val 2 ||
  { fail "small set"; finish; }
C=$GRAFT_BIN/classify
FT=$GRAFT_BIN/finetune
NOTOP=$T/notop_keras3_vlen.h5
IMG=$(ls "$T"/data/val/ants/* | head -1)

expect_fail "classify without a classifier" 2 \
  "notop_keras3_vlen.h5: no classifier: fine-tune it first" -- "$C" -w "$NOTOP" "$IMG"
vgg19='bad_vgg19.h5: Keras layer "block3_conv4" \(VGG16.s 8th layer with weights is block4_conv1\): dataset "block3_conv4/block3_conv4/kernel": expected shape \[3,3,256,512\], found \[3,3,256,256\]$'
expect_fail "classify a VGG19" 2 "$vgg19" -- "$C" -w "$T/bad_vgg19.h5" "$IMG"
expect_fail "classify a ResNet" 2 'bad_resnet.h5: Keras layer "conv1_conv" .*found \[7,7,3,64\]' -- \
  "$C" -w "$T/bad_resnet.h5" "$IMG"
expect_fail "classify a missing weight" 2 'bad_missing.h5: Keras layer "block1_conv2": dataset "block1_conv2/block1_conv2/kernel:0": missing' -- \
  "$C" -w "$T/bad_missing.h5" "$IMG"
expect_fail "classify integer weights" 2 'bad_int.h5: Keras layer "block1_conv1": .*expected float32, found int32' -- \
  "$C" -w "$T/bad_int.h5" "$IMG"
expect_fail "bench a VGG19" 1 "bench: infer: .*$vgg19" -- "$GRAFT_BIN/bench" infer --arch vgg16 --weights "$T/bad_vgg19.h5"
"$GRAFT_BIN/bench" infer --arch vgg16 --weights "$NOTOP" --iterations 1 --warmup 0 > "$T/bench.txt" &&
  grep -q "^infer vgg16 batch 1" "$T/bench.txt" && ok "bench infer --weights (no top): $(cat "$T/bench.txt")" ||
  fail "bench infer --weights: $(cat "$T/bench.txt")"

cd "$T" || exit 1
"$FT" --init vgg19.h5 --arch vgg16 --weights bad_vgg19.h5 --data data --epochs 1 > /dev/null 2>&1
expect_fail "finetune a VGG19" 2 "$vgg19" -- "$FT" -q vgg19.h5
"$FT" --init keep.h5 --arch vgg16 --weights "$NOTOP" --data data --epochs 1 --new-head 0 > /dev/null 2>&1
expect_fail "finetune keeping no classifier" 2 \
  "new_head = 0 keeps the file's classifier, but it has none" -- "$FT" -q keep.h5

# A file without its top: the whole classifier is new; best.h5 classifies.
"$FT" --init new.h5 --arch vgg16 --weights "$NOTOP" --data data --epochs 1 --augment none \
  > /dev/null 2>&1
if "$FT" -q new.h5 > new.txt 2> new.err; then
  grep -q "has no classifier (the trunk only): the whole classifier is new, initialised from seed 0 as nn.Linear does" new.err &&
    ok "finetune says the classifier is new" || fail "finetune: $(cat new.err)"
  "$C" -w runs/new/best.h5 -k 2 "$IMG" > best.txt && grep -qE "^ *[0-9.]+ +(ants|bees)$" best.txt &&
    ok "classify -w best.h5: $(tr '\n' '|' < best.txt)" || fail "classify -w best.h5: $(cat best.txt)"
else
  fail "finetune from a file without its top exited $?: $(cat new.err)"
fi

# Diverging on purpose (the real trunk, lr 10, batch 1): the NaN guard names the likely cause.
KERAS=$DATA_ROOT/keras/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5
if [ -f "$KERAS" ]; then
  "$FT" --init nan.h5 --arch vgg16 --weights "$KERAS" --data data --epochs 3 --augment none \
    --lr 10 --batch-size 1 > /dev/null 2>&1
  "$FT" -q nan.h5 > /dev/null 2> nan.err
  rc=$?
  # stderr: the word of the new classifier, then the error on one line (and,
  # under LeakSanitizer, its report of the suppressions used).
  err=$(grep "^finetune: " nan.err | grep -v -e "the whole classifier is new" -e "no usable CUDA GPU")
  want="^finetune: nan.h5: the loss is (NaN|infinite) at epoch [0-9]+, batch [0-9]+ \(.*\): training diverged: lr 10 is likely too large for features of this size \(RMS [0-9.e+-]+, largest [0-9.e+-]+ in this batch\); lower lr; the last good files are kept$"
  if [ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] &&
    printf '%s' "$err" | grep -qE "$want"; then
    ok "diverging: $err"
  else
    fail "diverging: exit $rc, stderr: $(cat nan.err)"
  fi
else
  echo "SKIP (diverging run): no Keras trunk at $KERAS"
fi
finish
