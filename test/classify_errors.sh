# classify on bad inputs: each a one-line error naming the file and what is
# wrong, and a non-zero exit (1 for an image, 2 for usage or the model); the
# good images given with them are still classified.
. "$(dirname "$0")/lib.sh"
need_python
scratch classify-errors
C=$GRAFT_BIN/classify
"$PY" "$GRAFT_SOURCE_DIR/test/make_bad_inputs.py" "$T" || { fail "fixtures"; finish; }
"$PY" "$GRAFT_SOURCE_DIR/models/export_torchvision.py" --arch alexnet --num-classes 3 \
  --class-names a,b,c -o "$T/model.h5" > /dev/null || { fail "export"; finish; }
W=(-w "$T/model.h5")

expect_fail "empty file" 1 "empty.jpg: .*empty" -- "$C" "${W[@]}" "$T/empty.jpg"
expect_fail "truncated JPEG" 1 "truncated.jpg: .*(truncated|premature)" -- "$C" "${W[@]}" "$T/truncated.jpg"
expect_fail "GIF named .jpg" 1 "gif.jpg: GIF is not supported" -- "$C" "${W[@]}" "$T/gif.jpg"
expect_fail "BMP named .png" 1 "bmp.png: BMP is not supported" -- "$C" "${W[@]}" "$T/bmp.png"
expect_fail "text file" 1 "text.png: .*not an image" -- "$C" "${W[@]}" "$T/text.png"
expect_fail "huge PNG header" 1 "huge.png: .*200000x200000.*limit; --max-pixels raises it" -- "$C" "${W[@]}" "$T/huge.png"
expect_fail "huge JPEG header" 1 "huge.jpg: .*65000x65000.*limit; --max-pixels raises it" -- "$C" "${W[@]}" "$T/huge.jpg"
mkdir -p "$T/emptydir"
expect_fail "directory without images" 1 "emptydir: no images" -- "$C" "${W[@]}" "$T/emptydir"
expect_fail "missing path" 1 "nowhere.jpg: .*[Nn]o such file" -- "$C" "${W[@]}" "$T/nowhere.jpg"
expect_fail "pixel limit" 1 "good.jpg: .*320x240.*limit; --max-pixels raises it" -- "$C" "${W[@]}" --max-pixels 1000 "$T/good.jpg"

# A failure does not stop the others: both good images are printed, exit 1.
out=$("$C" "${W[@]}" --json "$T/good.jpg" "$T/gif.jpg" "$T/good.jpg" 2>/dev/null); rc=$?
[ "$rc" -eq 1 ] && [ "$(echo "$out" | grep -c '"top"')" -eq 2 ] &&
  echo "$out" | sed -n 2p | grep -q '"error": "GIF is not supported' &&
  ok "good images still printed, the GIF as an error object" || fail "mixed batch: rc $rc: $out"

# Usage errors: exit 2.
expect_fail "no weights" 2 "no weights" -- env -u GRAFT_WEIGHTS "$C" "$T/good.jpg"
expect_fail "no images" 2 "no images given" -- "$C" "${W[@]}"
expect_fail "unknown option" 2 "unknown option --colour" -- "$C" "${W[@]}" --colour "$T/good.jpg"
expect_fail "bad batch" 2 "--batch: invalid value \"0\"" -- "$C" "${W[@]}" -b 0 "$T/good.jpg"
expect_fail "topk over classes" 2 "--topk 5: the model has 3 classes" -- "$C" "${W[@]}" -k 5 "$T/good.jpg"
expect_fail "unknown device" 2 "unknown device \"tpu\"" -- "$C" "${W[@]}" -d tpu "$T/good.jpg"
printf 'x\ny\n' > "$T/labels2.txt"
expect_fail "labels count" 2 "labels2.txt: 2 labels for a model with 3 classes" -- "$C" "${W[@]}" -l "$T/labels2.txt" "$T/good.jpg"

# A batch that cannot fit in this machine's memory is refused before it is
# allocated, naming the option: with a crop of 4096 AlexNet's input and
# activations take about 0.74 GB an image (the largest buffer 0.27 GB), so
# a batch 1.2 times the memory is made of allocations the kernel would grant.
b=$(awk '/^MemTotal:/ {print int($2 * 1.2 / 737000) + 1}' /proc/meminfo)
if [ "$b" -le 256 ]; then
  cp "$T/model.h5" "$T/bigcrop.h5" && "$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" \
    mutate "$T/bigcrop.h5" bigcrop
  imgs=()
  for _ in $(seq "$b"); do imgs+=("$T/good.jpg"); done
  expect_fail "batch over memory" 2 \
    "a batch of $b images does not fit: .* GB of memory; lower --batch" -- \
    "$C" -w "$T/bigcrop.h5" -b "$b" "${imgs[@]}"
  rm -f "$T/bigcrop.h5"
else
  ok "batch over memory: not checked, this machine's memory takes more than 256 such images"
fi

# Bad weights: exit 2, the file and the dataset named.
"$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" small "$T" > /dev/null || fail "bad weights fixtures"
cp "$T/model.h5" "$T/nan.h5" && "$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" mutate "$T/nan.h5" nan
cp "$T/model.h5" "$T/missing.h5" && "$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" mutate "$T/missing.h5" missing
"$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" half "$T/model.h5" "$T/half.h5"
expect_fail "wrong shape" 2 "wrong_shape.h5: dataset \".*\": expected shape .*found" -- "$C" -w "$T/wrong_shape.h5" "$T/good.jpg"
expect_fail "missing dataset" 2 "missing.h5: dataset \".*\": missing" -- "$C" -w "$T/missing.h5" "$T/good.jpg"
expect_fail "NaN weight" 2 "nan.h5: dataset \".*\": NaN" -- "$C" -w "$T/nan.h5" "$T/good.jpg"
expect_fail "wrong arch" 2 "bad_arch.h5: .*\"arch\".*resnet" -- "$C" -w "$T/bad_arch.h5" "$T/good.jpg"
expect_fail "truncated HDF5" 2 "half.h5: " -- "$C" -w "$T/half.h5" "$T/good.jpg"
expect_fail "not HDF5" 2 "text.png: not an HDF5 file" -- "$C" -w "$T/text.png" "$T/good.jpg"
expect_fail "missing weights" 2 "nope.h5: .*[Nn]o such file" -- "$C" -w "$T/nope.h5" "$T/good.jpg"
expect_fail "weights directory" 2 "emptydir: .*directory" -- "$C" -w "$T/emptydir" "$T/good.jpg"
finish
