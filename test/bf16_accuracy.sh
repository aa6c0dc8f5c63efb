# bench/bf16_accuracy.py, the CPU's estimate of what --precision bf16 costs:
# on a seeded AlexNet (convert_ref.py) written as .safetensors by convert and
# 8 shared images, its emulation of graft's bf16 rounding must move the
# logits by a bf16-sized amount, between 1e-4 and 1e-1 of their norm (1.6e-2
# here, as PyTorch's autocast: 1.4e-2), so that an emulation that rounds
# nothing, or rounds wrongly, fails; stay within 5e-2 of autocast's logits;
# and keep every top-1. Then bench/bf16_training.py (one seed): test_cuda_ops'
# whole-net bf16 tolerances must hold what its emulation gives.
. "$(dirname "$0")/lib.sh"
need_python
need_data
scratch bf16-accuracy
"$PY" "$GRAFT_SOURCE_DIR/test/convert_ref.py" model --arch alexnet --classes 2 --seed 11 \
  -o "$T/model.h5" || { fail "reference model"; finish; }
"$GRAFT_BIN/convert" "$T/model.h5" "$T/model.safetensors" || { fail "convert"; finish; }
imgs=()
for cls in ants bees; do
  while read -r f; do imgs+=("$f"); done < <(find "$HYM/val/$cls" -maxdepth 1 -iname '*.jpg' |
                                             sort | sed -n '1,4p')
done
if ! out=$("$PY" "$GRAFT_SOURCE_DIR/bench/bf16_accuracy.py" "$T/model.safetensors" "${imgs[@]}" \
             --batch 4 2>&1); then
  fail "bf16_accuracy.py: $out"
  finish
fi
echo "$out"
rel() { echo "$out" | sed -n "s/^$1 *logits rel L2 \([^;]*\);.*/\1/p"; }
check() { # check NAME LOW HIGH
  local v
  v=$(rel "$1")
  if [ -n "$v" ] && awk -v v="$v" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v > lo && v < hi) }'; then
    ok "$1: logits rel L2 $v in ($2, $3)"
  else
    fail "$1: logits rel L2 '$v' not in ($2, $3)"
  fi
}
check "graft bf16" 1e-4 1e-1
check "autocast bf16" 1e-4 1e-1
check "graft vs autocast" 0 5e-2
n=${#imgs[@]}
[ "$(echo "$out" | grep -c "top-1 agreement $n of $n")" = 3 ] && ok "every top-1 kept" ||
  fail "a top-1 changed"
if out=$("$PY" "$GRAFT_SOURCE_DIR/bench/bf16_training.py" --seeds 1 2>&1); then
  ok "test_cuda_ops' bf16 tolerances hold the emulated errors: $(echo "$out" | sed -n 1p)"
else
  fail "bf16_training.py: $out"
fi
finish
