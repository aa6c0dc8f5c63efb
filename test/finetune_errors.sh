# Bad configs, bad data folders and unwritable outputs: one line on stderr
# naming the problem, a non-zero exit, nothing half-written.
. "$(dirname "$0")/lib.sh"
need_python
need_data
scratch finetune-errors
"$PY" "$GRAFT_SOURCE_DIR/test/small_set.py" --data "$HYM" --out "$T" --train 2 --val 1 ||
  { fail "small set"; finish; }
FT=$GRAFT_BIN/finetune
base=(--arch alexnet --weights model.h5 --data data --epochs 1 --augment none)

expect_fail "no config" 2 "no config given" -- "$FT"
expect_fail "missing config" 2 "nope.h5: .*" -- "$FT" "$T/nope.h5"
echo "not hdf5" > "$T/text.h5"
expect_fail "non-HDF5 config" 2 "text.h5: .*HDF5" -- "$FT" "$T/text.h5"
expect_fail "init without data" 2 "\"data\" is required" -- "$FT" --init "$T/x.h5" --arch alexnet --weights w.h5
expect_fail "unknown setting" 2 "unknown setting \"colour\"" -- "$FT" --init "$T/x.h5" "${base[@]}" --colour red
expect_fail "out of range" 2 "momentum: 2 is outside" -- "$FT" --init "$T/x.h5" "${base[@]}" --momentum 2
expect_fail "bad choice" 2 "augment: \"crazy\" is not one of" -- "$FT" --init "$T/x.h5" "${base[@]}" --augment crazy
expect_fail "not a number" 2 "epochs: \"ten\" is not an integer" -- "$FT" --init "$T/x.h5" "${base[@]}" --epochs ten
[ ! -e "$T/x.h5" ] && ok "no config written on errors" || fail "a config was written"

# Attributes written by h5py: unknown names and wrong types.
"$PY" - "$T" <<'PYEOF'
import h5py, sys
d = sys.argv[1]
def cfg(name, **attrs):
    with h5py.File("%s/%s.h5" % (d, name), "w") as f:
        base = dict(arch="alexnet", weights="model.h5", data="data", epochs=1, augment="none")
        base.update(attrs)
        for k, v in base.items():
            if v is not None:
                f.attrs[k] = v
cfg("unknown", learning_rate=0.1)
cfg("wrongtype", epochs="three")
cfg("float_epochs", epochs=2.5)
cfg("badarch", arch="resnet")
cfg("nodata", data="missing-folder")
cfg("noweights", weights="missing.h5")
cfg("unwritable", output="model.h5/run")
PYEOF
expect_fail "unknown attribute" 2 "unknown.h5: unknown attribute \"learning_rate\"" -- "$FT" "$T/unknown.h5"
expect_fail "wrong type" 2 "attribute \"epochs\": expected an integer, found a string" -- "$FT" "$T/wrongtype.h5"
expect_fail "float for int" 2 "attribute \"epochs\": expected an integer" -- "$FT" "$T/float_epochs.h5"
expect_fail "bad arch" 2 "attribute \"arch\": \"resnet\" is not one of" -- "$FT" "$T/badarch.h5"
expect_fail "missing data" 2 "missing-folder" -- "$FT" "$T/nodata.h5"
expect_fail "missing weights" 2 "missing.h5" -- "$FT" "$T/noweights.h5"
expect_fail "unwritable output" 2 "output folder .*model.h5/run" -- "$FT" "$T/unwritable.h5"

# A batch that cannot fit in this machine's memory is refused before it is
# allocated, naming the setting: with a crop of 4096 AlexNet's input and
# activations take about 0.74 GB an image (the largest buffer 0.27 GB), so
# a batch 1.2 times the memory is made of allocations the kernel would grant.
b=$(awk '/^MemTotal:/ {print int($2 * 1.2 / 737000) + 1}' /proc/meminfo)
if [ "$b" -le 4096 ]; then
  cp "$T/model.h5" "$T/bigcrop.h5" &&
    "$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" mutate "$T/bigcrop.h5" bigcrop
  "$FT" --init "$T/bigbatch.h5" --arch alexnet --weights bigcrop.h5 --data data --epochs 1 \
    --augment none --batch-size "$b" > /dev/null 2>&1
  expect_fail "batch over memory" 2 "batch_size $b does not fit: .* GB of memory; lower batch_size" \
    -- "$FT" -q "$T/bigbatch.h5"
  rm -f "$T/bigcrop.h5"
else
  ok "batch over memory: not checked, this machine's memory takes more than 4096 such images"
fi

# Bad data folders.
mk() { rm -rf "$T/$1"; mkdir -p "$T/$1"; cp -r "$T/data/." "$T/$1/"; }
mk noval; rm -rf "$T/noval/val"
mk oneclass; rm -rf "$T/oneclass/train/bees" "$T/oneclass/val/bees"
mk emptyclass; rm -f "$T/emptyclass/train/bees/"*
mk otherval; mv "$T/otherval/val/bees" "$T/otherval/val/wasps"
for d in noval oneclass emptyclass otherval; do
  "$FT" --init "$T/$d.h5" --arch alexnet --weights model.h5 --data "$d" --epochs 1 > /dev/null 2>&1
done
expect_fail "missing val/" 2 "no val/ folder" -- "$FT" "$T/noval.h5"
expect_fail "single class" 2 "only one class" -- "$FT" "$T/oneclass.h5"
expect_fail "empty class" 2 "class \"bees\" has no images" -- "$FT" "$T/emptyclass.h5"
expect_fail "val classes differ" 2 "val/ has other class folders" -- "$FT" "$T/otherval.h5"

# A non-finite loss stops the run and keeps the last good files.
"$PY" - "$T" <<'PYEOF'
import h5py, shutil, sys
d = sys.argv[1]
shutil.copy("%s/model.h5" % d, "%s/huge.h5" % d)
with h5py.File("%s/huge.h5" % d, "r+") as f:
    f["classifier.6.weight"][...] = 3e38
PYEOF
"$FT" --init "$T/nan.h5" --arch alexnet --weights huge.h5 --data data --epochs 1 --new-head 0 \
  --augment none > /dev/null 2>&1
expect_fail "non-finite loss" 1 "the loss is (NaN|infinite) at epoch 1, batch 1 .*: before any training step, so the classifier.s weights are to blame" -- "$FT" -q "$T/nan.h5"
[ ! -e "$T/runs/nan/best.h5" ] && [ ! -e "$T/runs/nan/last.h5" ] && ok "nothing written after NaN" ||
  fail "files written after a NaN loss"
leftovers=$(find "$T" -name '*.tmp.*' | wc -l)
[ "$leftovers" -eq 0 ] && ok "no temporary files left" || fail "$leftovers temporary files left"
finish
