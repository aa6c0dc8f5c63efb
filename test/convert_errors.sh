# convert on bad arguments, inputs and outputs: exit 2 and one line naming
# the file and what is wrong, nothing written, no temporary left behind.
. "$(dirname "$0")/lib.sh"
need_python
scratch convert-errors
CV=$GRAFT_BIN/convert
REF=$GRAFT_SOURCE_DIR/test/convert_ref.py
"$PY" "$REF" model --arch alexnet --classes 3 -o "$T/m.h5" || { fail "reference model"; finish; }

# nothing named OUT, nor any temporary beside it
nothing_left() {
  local left
  left=$(find "$T" \( -name '*.tmp.*' -o -path "$1" \) 2>/dev/null)
  [ -z "$left" ] && ok "$2: nothing left" || fail "$2: left behind: $left"
}

expect_fail "no arguments" 2 "expected IN and OUT" -- "$CV"
expect_fail "one argument" 2 "expected IN and OUT, got 1 argument " -- "$CV" "$T/m.h5"
expect_fail "unknown option" 2 "unknown option --fast" -- "$CV" --fast "$T/m.h5" "$T/x.onnx"
expect_fail "unknown extension" 2 "m.txt: unknown output format: the extension must be .h5, .safetensors or .onnx" \
  -- "$CV" "$T/m.h5" "$T/m.txt"
nothing_left "$T/m.txt" "unknown extension"
expect_fail "no extension" 2 "/onnx: unknown output format" -- "$CV" "$T/m.h5" "$T/onnx"
expect_fail "missing input" 2 "nowhere.h5: .*([Nn]o such file)" -- "$CV" "$T/nowhere.h5" "$T/out.onnx"
nothing_left "$T/out.onnx" "missing input"
echo "not a model" > "$T/text.h5"
expect_fail "not HDF5" 2 "text.h5: " -- "$CV" "$T/text.h5" "$T/out.safetensors"
nothing_left "$T/out.safetensors" "not HDF5"
for ext in onnx safetensors h5; do
  expect_fail "missing output folder (.$ext)" 2 "nowhere/out.$ext: cannot create a temporary file" \
    -- "$CV" "$T/m.h5" "$T/nowhere/out.$ext"
done
mkdir "$T/dir.onnx"
expect_fail "output is a folder" 2 "dir.onnx: cannot rename" -- "$CV" "$T/m.h5" "$T/dir.onnx"
left=$(find "$T" -name '*.tmp.*'); [ -z "$left" ] && ok "output is a folder: no temporary left" ||
  fail "output is a folder: left $left"
if [ "$(id -u)" -ne 0 ]; then
  mkdir "$T/ro" && chmod 555 "$T/ro"
  expect_fail "read-only folder" 2 "ro/out.onnx: cannot create a temporary file.*[Pp]ermission" \
    -- "$CV" "$T/m.h5" "$T/ro/out.onnx"
  chmod 755 "$T/ro"
fi

# A Keras file without its top: nothing to deploy.
NOTOP=$DATA_ROOT/keras/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5
if [ ! -f "$NOTOP" ]; then
  mkdir -p "$T/keras"
  "$PY" "$GRAFT_SOURCE_DIR/test/make_keras.py" "$T/keras" --only-bad > /dev/null ||
    { fail "make_keras.py"; finish; }
  NOTOP=$T/keras/notop_keras3_vlen.h5
fi
for ext in onnx safetensors h5; do
  expect_fail "no classifier (.$ext)" 2 "$(basename "$NOTOP"): no classifier: fine-tune it first" \
    -- "$CV" "$NOTOP" "$T/notop.$ext"
  nothing_left "$T/notop.$ext" "no classifier (.$ext)"
done

# ONNX has no adaptive average pooling: a crop whose trunk output (8x8 for
# AlexNet at 300) pools to 6x6 through bins of two sizes is refused.
"$PY" "$REF" model --arch alexnet --classes 3 --crop 300 -o "$T/c300.h5" || fail "crop 300 model"
expect_fail "inexact adaptive pooling" 2 \
  "c300.h5: crop 300: the adaptive average pooling from 8x8 to 6x6 is no AveragePool.*nearest crops that convert: 286 and 415" \
  -- "$CV" "$T/c300.h5" "$T/c300.onnx"
nothing_left "$T/c300.onnx" "inexact adaptive pooling"
"$CV" "$T/c300.h5" "$T/c300.safetensors" && ok "crop 300: .safetensors still written" ||
  fail "crop 300: .safetensors"
finish
