# convert to ONNX, run by ONNX Runtime: a seeded torchvision model's file
# (test/convert_ref.py) as .onnx must pass onnx.checker (when the onnx package
# is there), show input "input" [batch,3,crop,crop] and output "logits"
# [batch,K] with a batch of any size, carry its metadata, and give logits
# within 1e-5 of graft's own (bench infer --save-output, at 224) and of
# PyTorch's: AlexNet and VGG16 at 224 (the adaptive pooling an identity) and
# AlexNet at 256 and 448 (an exact AveragePool, kernel 2 stride 1 and kernel
# 3 stride 2).
#
# ONNX Runtime's Python: $GRAFT_ONNX_PYTHON, else bench/peers' venv
# (bench/peers/setup.sh), else the PyTorch reference's or python3 when it
# imports onnxruntime; none: skipped, saying so. It needs only onnxruntime
# and numpy: PyTorch's side runs in $GRAFT_PYTHON, the two exchange .npy files.
. "$(dirname "$0")/lib.sh"
need_python
venv=${GRAFT_PEERS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/graft/peers-venv}
ORT=
if [ -n "${GRAFT_ONNX_PYTHON:-}" ]; then
  "$GRAFT_ONNX_PYTHON" -c "import onnxruntime, numpy" 2>/dev/null ||
    { echo "FAIL: GRAFT_ONNX_PYTHON=$GRAFT_ONNX_PYTHON does not import onnxruntime and numpy"; exit 1; }
  ORT=$GRAFT_ONNX_PYTHON
else
  for c in "$venv/bin/python" "$PY" python3; do
    if command -v "$c" > /dev/null && "$c" -c "import onnxruntime, numpy" 2>/dev/null; then
      ORT=$c
      break
    fi
  done
fi
[ -n "$ORT" ] || skip "no Python with onnxruntime (bench/peers/setup.sh makes one at $venv; or set GRAFT_ONNX_PYTHON)"
scratch convert-onnx
CV=$GRAFT_BIN/convert
REF=$GRAFT_SOURCE_DIR/test/convert_ref.py
RUN=$GRAFT_SOURCE_DIR/test/convert_ort.py
echo "ONNX Runtime from $ORT"

# check NAME ARCH CLASSES CROP BATCH [--names]: convert, run, compare.
check() {
  local name=$1 arch=$2 k=$3 crop=$4 batch=$5 names=${6:-} m=$T/$1
  "$PY" "$REF" model --arch "$arch" --classes "$k" --crop "$crop" --seed 5 $names -o "$m.h5" ||
    { fail "$name: reference model"; return; }
  "$CV" "$m.h5" "$m.onnx" || { fail "$name: convert exited $?"; return; }
  if [ "$crop" -eq 224 ]; then # graft's own logits on bench's input
    "$GRAFT_BIN/bench" infer --arch "$arch" --batch "$batch" --threads 2 --iterations 1 \
      --warmup 0 --weights "$m.h5" --save-output "$m-infer.h5" > /dev/null &&
      "$PY" "$REF" input "$m-infer.h5" "$m-x.npy" "$m-graft.npy" ||
      { fail "$name: graft's logits"; return; }
  else
    "$PY" "$REF" random-input --crop "$crop" --batch "$batch" -o "$m-x.npy" ||
      { fail "$name: input"; return; }
  fi
  "$PY" "$REF" logits "$m.h5" "$m-x.npy" "$m-torch.npy" || { fail "$name: PyTorch's logits"; return; }
  if out=$("$ORT" "$RUN" run "$m.onnx" "$m-x.npy" "$m-ort.npy" --classes "$k" --crop "$crop"); then
    ok "$name: $(echo "$out" | tr '\n' ' ')"
  else
    fail "$name: $out"
    return
  fi
  local against=(torch)
  [ "$crop" -eq 224 ] && against+=(graft)
  for w in "${against[@]}"; do
    out=$("$ORT" "$RUN" compare "$name: ONNX Runtime against $w" "$m-ort.npy" "$m-$w.npy" 1e-5) &&
      ok "${out#ok: }" || fail "$out"
  done
  rm -f "$m.h5" "$m.onnx" "$m-infer.h5"
}

check alexnet-224 alexnet 10 224 3 --names
check vgg16-224 vgg16 7 224 2
check alexnet-256 alexnet 4 256 2
check alexnet-448 alexnet 4 448 2
finish
