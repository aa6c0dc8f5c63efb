#!/usr/bin/env bash
# graft's checks on a GPU machine, in one command, in under 5 minutes:
#
#   bench/device-check.sh [LOGDIR]        (LOGDIR default: ./device-logs)
#
# When $OUT is set (a folder that comes back from the GPU machine, with room
# for a few files only), it also receives summary.txt, cudnn-device.json and
# all the logs as one device-logs.tgz.
#
# For a machine with an NVIDIA GPU and driver, the CUDA toolkit, cuDNN (pip
# nvidia-cudnn-cu13) and PyTorch + torchvision + h5py, but no package
# registry and none of graft's other libraries: the binaries and libraries
# come in .device/ (made by bench/device-bundle.sh on the build machine and
# carried with the working tree). It prints what the machine has, then runs
#   1. the CUDA tests: test_cudnn_deviceless, test_cuda_ops (every op vs the
#      CPU, every rung of the cuDNN ladder, CUDA-graph replay), test_models
#      alexnet|vgg16 cuda (logits vs PyTorch to 1e-4, TF32 off);
#   2. classify -d cuda vs -d cpu on the bundled images (top-1 agreement);
#   3. a finetune smoke run on cuda, and finetune step for step against
#      PyTorch on cuda (fp32-strict, the CPU test's recipe);
#   4. bench infer on cuda and cpu, AlexNet and VGG16, batch 1 and 64, and
#      bench/torch_bench.py on cuda;
# and ends with a short table. Full logs go to LOGDIR. Exit status: the
# number of failed steps (0 = all passed).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGS=${1:-$ROOT/device-logs}
mkdir -p "$LOGS"
LOGS=$(cd "$LOGS" && pwd)
T0=$(date +%s)
FAILED=0
SUMMARY=()
note() { printf '%s\n' "$*" | tee -a "$LOGS/summary.txt"; }
step() { # step NAME TIMEOUT CMD... : run, log to LOGDIR/NAME.log, record pass/fail
  local name=$1 limit=$2
  shift 2
  local t=$(date +%s) rc
  if declare -F "$1" >/dev/null; then # a function of this script (exported): through bash
    timeout "$limit" bash -c '"$@"' _ "$@" >"$LOGS/$name.log" 2>&1
  else
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  fi
  rc=$?
  local verdict=ok
  case $rc in
    0) ;;
    77) verdict=skipped ;;
    124) verdict="TIMEOUT (${limit}s)"; FAILED=$((FAILED + 1)) ;;
    *) verdict="FAILED (exit $rc)"; FAILED=$((FAILED + 1)) ;;
  esac
  SUMMARY+=("$(printf '%-28s %-18s %4ss' "$name" "$verdict" $(($(date +%s) - t)))")
  note "[$(($(date +%s) - T0))s] $name: $verdict"
  [ "$verdict" = ok ] || tail -n 5 "$LOGS/$name.log" | sed 's/^/    /'
  return 0
}

: >"$LOGS/summary.txt"
note "== graft device check, logs in $LOGS"
{
  echo "--- machine"; uname -a; nproc; free -g | head -2
  echo "--- GPU"; nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  echo "--- CUDA"; command -v nvcc && nvcc --version | tail -2
  ls -d /usr/local/cuda*/lib64 2>&1
  echo "--- python"; command -v python3
  python3 - <<'PY'
import importlib, os
for m in ("torch", "torchvision", "h5py", "PIL", "numpy"):
    try:
        mod = importlib.import_module(m); print(m, getattr(mod, "__version__", "?"))
    except Exception as e:
        print(m, "MISSING", e)
try:
    import torch
    print("torch cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
          "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))
except Exception as e:
    print("torch cuda: ?", e)
for pkg in ("cudnn", "cublas", "cuda_runtime", "cuda_nvrtc"):
    try:
        m = importlib.import_module("nvidia." + pkg)
        d = os.path.join(list(m.__path__)[0], "lib")
        print("nvidia." + pkg, d, sorted(os.listdir(d))[:6])
    except Exception as e:
        print("nvidia." + pkg, "MISSING", e)
PY
  echo "--- graft's other libraries here (the bundle brings its own)"
  for l in libhdf5_serial.so.103 libjpeg.so.62 libpng16.so.16 libdnnl.so.2 libopenblas.so.0 libcairo.so.2; do
    printf '%-24s %s\n' "$l" "$(ldconfig -p 2>/dev/null | grep -c "$l") in ldconfig"
  done
  echo "--- bundle"; cat "$ROOT/.device/MANIFEST" 2>&1
} 2>&1 | tee "$LOGS/environment.txt"

# ---- set up: unpack, find cuDNN / cuBLAS, give the tests their paths ----
if [ ! -f "$ROOT/.device/bundle.tar.xz" ]; then
  note "no .device/bundle.tar.xz: run bench/device-bundle.sh on the build machine and carry .device"
  exit 100
fi
W=/tmp/graft-device
rm -rf "$W" && mkdir -p "$W"
tar -C "$W" -xJf "$ROOT/.device/bundle.tar.xz" || { note "cannot unpack the bundle"; exit 100; }
BIN=$W/bin
PY=$(command -v python3)
pylibs=$("$PY" - <<'PY' 2>/dev/null
import importlib, os
out = []
for pkg in ("cudnn", "cublas", "cuda_runtime", "cuda_nvrtc", "cu13"):
    try:
        m = importlib.import_module("nvidia." + pkg)
        for p in m.__path__:
            for sub in ("lib", "lib64"):
                if os.path.isdir(os.path.join(p, sub)): out.append(os.path.join(p, sub))
    except Exception:
        pass
print(":".join(out))
PY
)
# graft's binaries find the bundled libraries through their RUNPATH
# ($ORIGIN/../lib); only cuDNN and cuBLAS come from the path, the same ones
# PyTorch uses.
export LD_LIBRARY_PATH="${pylibs:+$pylibs:}/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >>"$LOGS/environment.txt"
ldd "$BIN"/* >"$LOGS/ldd.txt" 2>&1
if grep -q "not found" "$LOGS/ldd.txt"; then
  note "missing libraries:"; grep "not found" "$LOGS/ldd.txt" | sort -u | tee -a "$LOGS/summary.txt"
fi
# The test programs were built in /work/main (their source and build paths
# are compiled in): point that path at this checkout.
if [ "$ROOT" != /work/main ] && [ ! -e /work/main ]; then
  mkdir -p /work && ln -s "$ROOT" /work/main
fi
export GRAFT_SOURCE_DIR=$ROOT GRAFT_PYTHON=$PY GRAFT_BIN=$BIN
export GRAFT_DATA=$ROOT/.device/data GRAFT_DEFAULT_DATA=$ROOT/.device/data
export GRAFT_CUDNN_DEVICES=$ROOT/.device/cudnn-devices
export GRAFT_CUDNN_DEVICE_JSON_OUT=$LOGS/cudnn-device.json
S=$W/scratch
mkdir -p "$S"
# GRAFT_CHECK_DEVICE=cpu runs the app steps on the CPU: a dry run of this
# script on a machine without a GPU.
DEV=${GRAFT_CHECK_DEVICE:-cuda}
export ROOT BIN PY S DEV

# ---- 1. CUDA tests ----
step cudnn_deviceless 60 "$BIN/test_cudnn_deviceless"
step cuda_ops 150 "$BIN/test_cuda_ops"
step models_alexnet_cuda 90 env NVIDIA_TF32_OVERRIDE=0 "$BIN/test_models" alexnet cuda
step models_vgg16_cuda 120 env NVIDIA_TF32_OVERRIDE=0 "$BIN/test_models" vgg16 cuda

# ---- 2. classify on cuda vs cpu ----
export IMG=$GRAFT_DATA/hymenoptera/val
classify_pair() { # ARCH: export weights, classify on both, compare
  local arch=$1
  "$PY" "$ROOT/models/export_torchvision.py" --arch "$arch" --num-classes 3 --seed 5 \
    -o "$S/$arch.h5" || return 1
  for d in "$DEV" cpu; do
    "$BIN/classify" -w "$S/$arch.h5" -d "$d" -b 8 -k 1 --json "$IMG"/ants "$IMG"/bees \
      >"$S/classify-$arch-$d.json" || return 1
  done
  "$PY" - "$S/classify-$arch-$DEV.json" "$S/classify-$arch-cpu.json" >"$S/agree-$arch.txt" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
same = sum(x["top"][0]["index"] == y["top"][0]["index"] for x, y in zip(a, b))
dp = max(abs(x["top"][0]["prob"] - y["top"][0]["prob"]) for x, y in zip(a, b))
print("top-1 %d/%d, max |dp| %.2g" % (same, len(a), dp))
sys.exit(0 if same == len(a) and len(a) > 0 else 1)
PY
  local rc=$?
  cat "$S/agree-$arch.txt"
  return $rc
}
export -f classify_pair
step classify_alexnet 60 classify_pair alexnet
step classify_vgg16 90 classify_pair vgg16

# ---- 3. finetune on cuda ----
finetune_smoke() {
  "$PY" "$ROOT/test/small_set.py" --data "$GRAFT_DATA/hymenoptera" --out "$S/ft" || return 1
  "$BIN/finetune" --init "$S/ft/cfg.h5" --arch alexnet --weights model.h5 --data data \
    --epochs 2 --device "$DEV" || return 1
  "$BIN/finetune" -q "$S/ft/cfg.h5" && ls "$S/ft/runs/cfg"
}
export -f finetune_smoke
step finetune_smoke_cuda 60 finetune_smoke
# test/finetune_pytorch.sh's recipe with the device set to cuda, fp32-strict
finetune_step_for_step() {
  local dir=$S/ftp
  mkdir -p "$dir"
  "$PY" "$ROOT/test/ref_finetune.py" --data "$GRAFT_DATA/hymenoptera" --out "$dir" \
    --arch alexnet --trainable classifier --lr 0.01 || return 1
  "$BIN/finetune" --init "$dir/cfg.h5" --arch alexnet --weights model.h5 --data data \
    --epochs 3 --step-size 2 --augment none --shuffle 0 --dropout 0 --new-head 0 \
    --trainable classifier --seed 3 --lr 0.01 --device "$DEV" --precision fp32-strict || return 1
  "$BIN/finetune" -q "$dir/cfg.h5" || return 1
  "$PY" "$ROOT/test/compare_finetune.py" "$dir/ref.h5" "$dir/runs/cfg" --trainable classifier
}
export -f finetune_step_for_step
step finetune_pytorch_cuda 90 finetune_step_for_step

# ---- 4. throughput ----
for arch in alexnet vgg16; do
  for b in 1 64; do
    step "bench_${arch}_b${b}_cuda" 60 "$BIN/bench" infer --arch "$arch" --batch "$b" \
      --device "$DEV" --iterations 20 --warmup 3 --json
    it=5
    [ "$arch" = vgg16 ] && [ "$b" = 64 ] && it=2
    step "bench_${arch}_b${b}_cpu" 90 "$BIN/bench" infer --arch "$arch" --batch "$b" \
      --device cpu --iterations $it --warmup 1 --json
    step "torch_${arch}_b${b}_cuda" 90 "$PY" "$ROOT/bench/torch_bench.py" infer --arch "$arch" \
      --batch "$b" --device cuda --iterations 20 --warmup 3 --json
  done
done

# ---- the table ----
ips() { "$PY" -c 'import json,sys
try:
    r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("%.1f" % r["images_per_s"])
except Exception: print("-")' "$1"; }
{
  echo
  echo "== steps"
  printf '%s\n' "${SUMMARY[@]}"
  echo
  echo "== inference, images/s (bench infer, random weights, 224x224; fp32 = TF32 convolutions)"
  printf '%-8s %5s %14s %12s %14s %10s\n' arch batch graft-cuda graft-cpu torch-cuda cuda/cpu
  for arch in alexnet vgg16; do
    for b in 1 64; do
      g=$(ips "$LOGS/bench_${arch}_b${b}_cuda.log")
      c=$(ips "$LOGS/bench_${arch}_b${b}_cpu.log")
      t=$(ips "$LOGS/torch_${arch}_b${b}_cuda.log")
      r=$("$PY" -c "import sys
try: print('%.1fx' % (float(sys.argv[1]) / float(sys.argv[2])))
except Exception: print('-')" "$g" "$c")
      printf '%-8s %5s %14s %12s %14s %10s\n' "$arch" "$b" "$g" "$c" "$t" "$r"
    done
  done
  echo
  echo "== GPU vs CPU agreement"
  for arch in alexnet vgg16; do
    printf '%-8s classify: %s\n' "$arch" "$(cat "$S/agree-$arch.txt" 2>/dev/null || echo -)"
    grep -h "relative error" "$LOGS/models_${arch}_cuda.log" 2>/dev/null | sed 's/^/         vs PyTorch: /'
  done
  echo
  echo "$FAILED step(s) failed, $(($(date +%s) - T0)) s; logs in $LOGS"
} | tee -a "$LOGS/summary.txt"
if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && [ "$OUT" != "$LOGS" ]; then
  cp "$LOGS/summary.txt" "$OUT/" 2>/dev/null
  cp "$LOGS/cudnn-device.json" "$OUT/" 2>/dev/null
  tar -C "$(dirname "$LOGS")" -czf "$OUT/device-logs.tgz" "$(basename "$LOGS")"
fi
exit "$FAILED"
