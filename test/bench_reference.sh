# What bench/compare's validation rests on: graft's bench runs a seeded
# torchvision model's weights file and saves its input and logits
# (--save-output); bench/torch_bench.py runs the same weights on that input and
# accepts its logits only within GRAFT_TOL of graft's, and rejects, without
# timing, logits that are off (a tampered reference). The peers'
# (bench/peers/peer_bench.py, PyPI's ONNX Runtime and OpenVINO) use the same
# check; they are not installed for the tests. Also: the roofline tool runs.
. "$(dirname "$0")/lib.sh"
need_python
need_data
scratch bench-reference
B=$GRAFT_BIN/bench
TB=$GRAFT_SOURCE_DIR/bench/torch_bench.py

"$PY" "$GRAFT_SOURCE_DIR/models/export_torchvision.py" --arch alexnet --seed 3 -o "$T/w.h5" \
  > "$T/export.log" 2>&1 || { fail "export: $(tail -1 "$T/export.log")"; finish; }

# infer: graft's input and logits, then PyTorch's against them
if "$B" infer --arch alexnet --batch 2 --threads 2 --iterations 1 --warmup 0 --weights "$T/w.h5" \
     --save-output "$T/infer.h5" --json > "$T/g.json" 2> "$T/g.err"; then
  ok "bench infer --weights --save-output"
else
  fail "bench infer: $(tail -1 "$T/g.err")"
fi
if "$PY" "$TB" infer --arch alexnet --batch 2 --threads 2 --iterations 1 --warmup 0 \
     --weights "$T/w.h5" --reference "$T/infer.h5" --json > "$T/t.json" 2> "$T/t.err" &&
   grep -q '"validated": true' "$T/t.json" && grep -q '"graft_top1_agree": 1.0' "$T/t.json"; then
  ok "PyTorch agrees with graft's logits: $(grep -o '"graft_rel_error": [^,]*' "$T/t.json")"
else
  fail "PyTorch against graft's infer output: $(tail -1 "$T/t.err") $(cat "$T/t.json")"
fi

# classify: graft's image paths and logits
if "$B" classify --arch alexnet --batch 4 --count 6 --threads 2 --iterations 1 --warmup 0 \
     --images "$HYM/val" --weights "$T/w.h5" --save-output "$T/classify.h5" --json \
     > "$T/gc.json" 2> "$T/gc.err" &&
   "$PY" "$TB" classify --arch alexnet --batch 4 --threads 2 --iterations 1 --warmup 1 \
     --weights "$T/w.h5" --reference "$T/classify.h5" --json > "$T/tc.json" 2> "$T/tc.err" &&
   grep -q '"validated": true' "$T/tc.json" && grep -q '"images": 6' "$T/tc.json"; then
  ok "classify: PyTorch's pipeline agrees with graft's on the same 6 images"
else
  fail "classify against graft: $(tail -1 "$T/gc.err") $(tail -1 "$T/tc.err") $(cat "$T/tc.json")"
fi

# a reference whose logits are off by 1e-3 of their norm is rejected, untimed
"$PY" - "$T/infer.h5" "$T/bad.h5" <<'EOF'
import shutil, sys
import h5py, numpy as np
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    y = f["logits"][()]
    f["logits"][0, 0] = y[0, 0] + 1e-3 * np.linalg.norm(y)
EOF
expect_fail "tampered reference" 1 "logits differ from graft's: relative error" -- \
  "$PY" "$TB" infer --arch alexnet --batch 2 --threads 2 --iterations 1 --warmup 0 \
  --weights "$T/w.h5" --reference "$T/bad.h5"
expect_fail "weights of another arch" 1 "holds alexnet, not --arch vgg16" -- \
  "$B" infer --arch vgg16 --weights "$T/w.h5" --iterations 1

# the roofs: small sizes, only that it measures and says so
if "$GRAFT_BIN/roofline" --threads 2 --size 128 --mb 4 --reps 1 --json > "$T/roof.json" &&
   grep -qE '"sgemm_gflops": [0-9.]+, ' "$T/roof.json" && grep -q '"read_gbs"' "$T/roof.json"; then
  ok "roofline: $(cat "$T/roof.json" | cut -c1-120)"
else
  fail "roofline: $(cat "$T/roof.json")"
fi
finish
