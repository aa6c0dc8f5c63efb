# The CUDA backend is a module loaded at run time (engine/cuda_module.h):
#  - the apps do not link cuDNN, cuBLAS, the CUDA runtime or the driver, and
#    graft's libraries call none of them; the module does, and exports one
#    symbol;
#  - a CUDA build's classify runs on the CPU when the module cannot load,
#    because it is not there (a program copied without it) or because a
#    library it needs is missing (an unloadable libcudnn.so.9 first on
#    LD_LIBRARY_PATH): `-d auto` classifies exactly as `-d cpu`, with one line
#    naming what was missing where the machine has an NVIDIA driver (without
#    one, not a word), `-d cuda` exits 2 with that line.
# Usage: cuda_module.sh LIBRARY.a... (every static library the apps link)
. "$(dirname "$0")/lib.sh"
[ $# -gt 0 ] || { echo "usage: cuda_module.sh LIBRARY.a..."; exit 2; }
scratch cuda-module
M=$GRAFT_BIN/libgraft_cuda.so
cuda_libs='lib(cudnn[a-z_]*|cublas(Lt)?|cudart|cuda|nvrtc[a-z-]*)\.so'

for app in classify finetune bench; do
  needed=$(readelf -d "$GRAFT_BIN/$app" | grep NEEDED)
  if printf '%s\n' "$needed" | grep -qE "\[$cuda_libs"; then
    fail "$app links a CUDA library: $(printf '%s\n' "$needed" | grep -E "$cuda_libs" | tr -s ' ')"
  else
    ok "$app needs no CUDA library ($(printf '%s\n' "$needed" | grep -c .) libraries)"
  fi
done
for LIBGRAFT in "$@"; do
  lib=$(basename "$LIBGRAFT")
  calls=$(nm -u "$LIBGRAFT" 2>/dev/null | grep -E ' (cuda|cudnn|cublas|cu)[A-Z][A-Za-z_0-9]*$' |
          sort -u)
  if [ -n "$calls" ]; then
    fail "$lib calls CUDA libraries: $(echo $calls)"
  elif nm "$LIBGRAFT" >/dev/null 2>&1; then
    ok "$lib calls no CUDA, cuDNN or cuBLAS function"
  else
    fail "cannot read $LIBGRAFT"
  fi
done
[ -f "$M" ] && ok "the module is built beside the apps: $M" || fail "no module at $M"
if readelf -d "$M" | grep NEEDED | grep -q 'libcudnn.so.9' &&
  readelf -d "$M" | grep NEEDED | grep -q 'libcublas.so'; then
  ok "the module needs cuDNN and cuBLAS"
else
  fail "the module does not link cuDNN and cuBLAS: $(readelf -d "$M" | grep NEEDED | tr -s ' ')"
fi
exports=$(nm -D --defined-only "$M" | awk '$2 ~ /^[TDBR]$/ {print $3}')
[ "$exports" = graft_cuda_module_open ] && ok "the module exports graft_cuda_module_open alone" ||
  fail "the module exports: $(echo $exports)"

# A model and an image without PyTorch: classify needs a graft-weights file,
# which only the exporter writes, so this part needs the reference python.
need_python
"$PY" "$GRAFT_SOURCE_DIR/models/export_torchvision.py" --arch alexnet --num-classes 3 \
  -o "$T/w.h5" >/dev/null 2>&1 || skip "models/export_torchvision.py failed (no torch?)"
"$PY" -c "from PIL import Image; Image.new('RGB', (300, 240), (20, 160, 90)).save('$T/img.png')" ||
  skip "no PIL to write a test image"
"$GRAFT_BIN/classify" -w "$T/w.h5" -d cpu -k 3 "$T/img.png" >"$T/cpu.out" 2>"$T/cpu.err" ||
  fail "classify -d cpu: $(cat "$T/cpu.err")"

# Whether this machine has an NVIDIA driver: without one, auto falls back
# without a word, whatever else is missing (nothing is wrong on a machine
# without NVIDIA GPUs); with one, a missing module or library is one line.
driver=0
ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' && driver=1

# falls_back NAME PATTERN CLASSIFY [env...]: auto runs on the CPU with one line
# matching PATTERN (none without a driver), cuda exits 2 with one line matching it.
falls_back() {
  local name=$1 pattern=$2 c=$3
  shift 3
  if env "$@" "$c" -w "$T/w.h5" -d auto -k 3 "$T/img.png" >"$T/auto.out" 2>"$T/auto.err"; then
    ok "$name: classify -d auto exits 0"
  else
    fail "$name: classify -d auto exited $?: $(cat "$T/auto.err")"
  fi
  if [ "$driver" -eq 0 ]; then
    [ ! -s "$T/auto.err" ] && ok "$name: no NVIDIA driver here: not a word" ||
      fail "$name: no NVIDIA driver here, yet: $(cat "$T/auto.err")"
  elif [ "$(grep -c . "$T/auto.err")" -eq 1 ] &&
    grep -qE "^classify: no usable CUDA GPU \($pattern.*\); running on the CPU$" "$T/auto.err"; then
    ok "$name: one line: $(cat "$T/auto.err")"
  else
    fail "$name: expected one line matching /$pattern/, got: $(cat "$T/auto.err")"
  fi
  if cmp -s "$T/auto.out" "$T/cpu.out"; then
    ok "$name: the same classes and probabilities as -d cpu"
  else
    fail "$name: output differs from -d cpu: $(cat "$T/auto.out")"
  fi
  expect_fail "$name: classify -d cuda" 2 "^classify: cuda: $pattern" -- \
    env "$@" "$c" -w "$T/w.h5" -d cuda "$T/img.png"
}

# 1. the module is not beside the program (nor in ../lib)
mkdir -p "$T/alone/bin"
cp "$GRAFT_BIN/classify" "$T/alone/bin/"
falls_back "no module" "CUDA module missing: no libgraft_cuda.so in " "$T/alone/bin/classify"

# 2. the module is there, cuDNN is not loadable
mkdir -p "$T/nolib/bin" "$T/nolib/fake"
cp "$GRAFT_BIN/classify" "$M" "$T/nolib/bin/"
: >"$T/nolib/fake/libcudnn.so.9"
falls_back "no cuDNN" "CUDA library missing: [^ ]*libcudnn.so.9: " "$T/nolib/bin/classify" \
  "LD_LIBRARY_PATH=$T/nolib/fake${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
finish
