# A CUDA build on a machine without a usable GPU (no device, or no driver):
# `-d cuda` exits 2 with one line on stderr saying what is missing; `-d auto`
# classifies on the CPU, without a word where there is no NVIDIA driver
# (nothing is wrong) and with one line otherwise (a driver but no device).
# Skips where a GPU is usable. (test/cuda_module.sh covers a missing module
# or library, which `-d auto` always reports.)
. "$(dirname "$0")/lib.sh"
need_python
scratch cuda-fallback
C=$GRAFT_BIN/classify
"$PY" "$GRAFT_SOURCE_DIR/models/export_torchvision.py" --arch alexnet --num-classes 3 \
  -o "$T/w.h5" >/dev/null 2>&1 || skip "models/export_torchvision.py failed (no torch?)"
"$PY" -c "from PIL import Image; Image.new('RGB', (300, 240), (120, 60, 200)).save('$T/img.png')" ||
  skip "no PIL to write a test image"

if "$C" -w "$T/w.h5" -d cuda "$T/img.png" >/dev/null 2>"$T/cuda.err"; then
  skip "a usable CUDA GPU is present: the fallback is for machines without one"
fi
missing="(no NVIDIA driver|no CUDA device|CUDA module missing|CUDA library missing)"
expect_fail "classify -d cuda" 2 "^classify: cuda: $missing" -- \
  "$C" -w "$T/w.h5" -d cuda "$T/img.png"
expect_fail "classify -d cuda:3" 2 "^classify: cuda:3: $missing" -- \
  "$C" -w "$T/w.h5" -d cuda:3 "$T/img.png"
expect_fail "bench --device cuda" 2 "^bench: cuda: $missing" -- \
  "$GRAFT_BIN/bench" infer --device cuda --iterations 1 --warmup 0

# auto: the CPU; quiet without a driver, else exactly one line of explanation
if "$C" -w "$T/w.h5" -d auto "$T/img.png" >"$T/out" 2>"$T/err"; then
  ok "classify -d auto exits 0"
else
  fail "classify -d auto exited $?: $(cat "$T/err")"
fi
lines=$(grep -c . "$T/err" || true)
if grep -q "^classify: cuda: no NVIDIA driver" "$T/cuda.err"; then
  if [ "$lines" -eq 0 ]; then
    ok "no driver: nothing said ($(cat "$T/cuda.err"))"
  else
    fail "no driver: expected nothing on stderr, got $lines line(s): $(cat "$T/err")"
  fi
  # and `bench devices` still tells
  "$GRAFT_BIN/bench" devices >"$T/devices" 2>&1 || true
  grep -q "no libcuda.so.1" "$T/devices" && ok "bench devices: $(grep -m1 driver "$T/devices")" ||
    fail "bench devices does not say the driver is missing: $(cat "$T/devices")"
elif [ "$lines" -eq 1 ] &&
  grep -qE "^classify: no usable CUDA GPU \($missing.*\); running on the CPU$" "$T/err"; then
  ok "one fallback line: $(cat "$T/err")"
else
  fail "expected one fallback line on stderr, got $lines: $(cat "$T/err")"
fi
grep -q "img.png" "$T/out" && ok "image classified on the CPU" || fail "no result: $(cat "$T/out")"
finish
