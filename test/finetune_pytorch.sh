# finetune against PyTorch, step for step: seeded AlexNet, 8 + 8 train and
# 4 + 4 val images, augment none, shuffle 0, dropout 0, new_head 0, 3 epochs
# with step_size 2, lr 0.01. Per-epoch metrics and final weights agree to 1e-4, for
# trainable classifier and head.
. "$(dirname "$0")/lib.sh"
need_python
need_data
ARCH=${1:-alexnet}
scratch "finetune-pytorch-$ARCH"
for trainable in classifier head; do
  dir=$T/$trainable
  mkdir -p "$dir"
  "$PY" "$GRAFT_SOURCE_DIR/test/ref_finetune.py" --data "$HYM" --out "$dir" --arch "$ARCH" \
    --trainable "$trainable" --lr 0.01 || { fail "reference run ($trainable)"; continue; }
  "$GRAFT_BIN/finetune" --init "$dir/cfg.h5" --arch "$ARCH" --weights model.h5 --data data \
    --epochs 3 --step-size 2 --augment none --shuffle 0 --dropout 0 --new-head 0 \
    --trainable "$trainable" --seed 3 --lr 0.01 || { fail "finetune --init"; continue; }
  if "$GRAFT_BIN/finetune" -q "$dir/cfg.h5" > "$dir/out.txt"; then
    cat "$dir/out.txt"
    if "$PY" "$GRAFT_SOURCE_DIR/test/compare_finetune.py" "$dir/ref.h5" "$dir/runs/cfg" \
      --trainable "$trainable"; then
      ok "$trainable matches PyTorch"
    else
      fail "$trainable differs from PyTorch"
    fi
  else
    fail "finetune ($trainable) exited $?"
  fi
done
finish
