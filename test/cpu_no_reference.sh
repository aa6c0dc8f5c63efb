# No oneDNN reference kernel in the hot path, on any ISA: AlexNet and VGG16
# forward at batch 1 and 8 and a training step, with ONEDNN_VERBOSE=1, under
# the machine's best ISA and capped at AVX2, with graft's AVX2 kernels and
# with its generic ones. oneDNN's "ref:" implementations are plain C loops,
# one to two orders of magnitude slower than its JIT and GEMM kernels (AlexNet's
# first layer on AVX2 took 1.4 s per image on one). Each run's backend line
# must also name the Winograd that ISA gets (graft's on AVX2, capped or not).
. "$(dirname "$0")/lib.sh"
scratch cpu-no-reference
B=$GRAFT_BIN/bench

# check LABEL ENV... -- BENCH ARGS: the bench run succeeds and every primitive
# oneDNN executed is a JIT or GEMM implementation.
check() {
  local label=$1
  shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local log=$T/log.txt
  if ! env "${envs[@]}" ONEDNN_VERBOSE=1 "$B" "$@" --iterations 1 --warmup 0 > "$log" 2>&1; then
    fail "$label: bench $*: $(grep -v '^onednn_verbose' "$log" | tail -3)"
    return
  fi
  local execs refs isa
  execs=$(grep -c '^onednn_verbose,exec,' "$log" || true)
  refs=$(grep '^onednn_verbose,exec,' "$log" | awk -F, '$5 ~ /^ref/' | cut -d, -f4,5,7,8 | sort -u)
  isa=$(grep -o 'oneDNN [0-9.]* ([a-z0-9_]*)' "$log" | head -1)
  if [ "$execs" -eq 0 ]; then
    fail "$label: bench $*: no oneDNN primitive ran (ONEDNN_VERBOSE not honoured?)"
  elif [ -n "$refs" ]; then
    fail "$label: bench $*: reference kernels: $refs"
  else
    ok "$label: bench $* ($isa): $execs primitives, none a reference kernel"
  fi
  # The Winograd the backend line names (engine/cpu/conv.c decides it):
  # oneDNN's on AVX-512; graft's where oneDNN runs on AVX2, natively or
  # capped, and the CPU has AVX2 + FMA with graft's kernels on; else none.
  local line want
  line=$(grep -m1 -o 'cpu: oneDNN.* convolutions' "$log")
  if [[ $isa == *avx512* ]]; then
    want="oneDNN Winograd"
  elif [[ $isa == *avx2* && $CPU_AVX2_FMA == 1 && " ${envs[*]} " != *GRAFT_CPU_KERNELS=generic* ]]; then
    want="graft Winograd"
  else
    want="oneDNN direct"
  fi
  if [[ $line != *"$want"* ]]; then
    fail "$label: bench $*: expected $want convolutions, backend says: $line"
  fi
}

# Whether this CPU has AVX2 and FMA (graft's Winograd and kernels need both).
CPU_AVX2_FMA=0
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then CPU_AVX2_FMA=1; fi

for setting in "native" "avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell" \
               "generic GRAFT_CPU_KERNELS=generic"; do
  read -r label envs <<< "$setting"
  # shellcheck disable=SC2086
  set -- $envs
  for arch in alexnet vgg16; do
    for batch in 1 8; do
      check "$label" "$@" -- infer --arch "$arch" --batch "$batch" --num-classes 10
    done
    check "$label" "$@" -- finetune-step --arch "$arch" --batch 4 --num-classes 2
  done
done
finish
