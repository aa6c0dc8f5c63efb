# Shared by the shell tests: where things are, skipping with a reason, checks.
set -u
: "${GRAFT_BIN:?run through ctest}"
: "${GRAFT_SOURCE_DIR:?run through ctest}"
DATA_ROOT=${GRAFT_DATA:-$GRAFT_DEFAULT_DATA}
HYM=$DATA_ROOT/hymenoptera
PY=${GRAFT_PYTHON:-}
FAILED=0

skip() { echo "SKIP: $*"; exit 77; }
need_python() { [ -n "$PY" ] || skip "no python3 with torch, torchvision and h5py (set GRAFT_PYTHON)"; }
need_data() { [ -d "$HYM" ] || skip "no shared data at $HYM (set GRAFT_DATA)"; }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
ok() { echo "ok: $*"; }

# A fresh scratch folder for this test.
scratch() {
  T=$PWD/test-tmp/$1
  rm -rf "$T" && mkdir -p "$T"
}

# expect_fail NAME EXPECTED_RC PATTERN -- CMD...: CMD must exit EXPECTED_RC and
# print exactly one stderr line matching PATTERN.
expect_fail() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local err rc
  # A CUDA build without a usable GPU says so once on stderr for -d auto
  # (test/cuda_fallback.sh checks that line); it is not the error under test.
  local errfile
  errfile=$(mktemp)
  "$@" 2>"$errfile" >/dev/null; rc=$?
  err=$(grep -vE "^[a-z]+: no usable CUDA GPU \(.*\); running on the CPU$" "$errfile")
  rm -f "$errfile"
  local lines
  lines=$(printf '%s\n' "$err" | grep -c . || true)
  if [ "$rc" -ne "$want" ]; then
    fail "$name: exit $rc, expected $want ($err)"
  elif [ "$lines" -ne 1 ]; then
    fail "$name: expected one line on stderr, got $lines: $err"
  elif ! printf '%s' "$err" | grep -qE -- "$pattern"; then
    fail "$name: stderr '$err' does not match /$pattern/"
  else
    ok "$name: $err"
  fi
}

# Two finetune runs (their output folders) that must agree.
# last.h5 equal in everything but the history's seconds column.
same_checkpoint() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
same = set(a.keys()) == set(b.keys()) and dict(a.attrs) == dict(b.attrs)
for k in a.keys():
    x, y = a[k][()], b[k][()]
    if k == "history":
        x, y = x[:, :6], y[:, :6]
    same = same and x.dtype == y.dtype and np.array_equal(x, y)
sys.exit(0 if same else 1)
PYEOF
}

same_run() { # same_run NAME DIR_A DIR_B: metrics (but the seconds), best.h5 and last.h5 identical
  local a=$2 b=$3
  if cmp -s <(cut -d, -f1-6 "$a/metrics.csv") <(cut -d, -f1-6 "$b/metrics.csv") &&
     cmp -s "$a/best.h5" "$b/best.h5" && same_checkpoint "$a/last.h5" "$b/last.h5"; then
    ok "$1: metrics.csv and best.h5 identical, last.h5 identical but for the timings"
  else
    fail "$1: runs differ"
    diff <(cut -d, -f1-6 "$a/metrics.csv") <(cut -d, -f1-6 "$b/metrics.csv")
  fi
}

# A passing test removes its scratch folder (the finetune and classify tests
# leave gigabytes of weights files); a failing one keeps it to look at.
finish() {
  if [ "$FAILED" -gt 0 ]; then echo "$FAILED check(s) FAILED (files kept in ${T:-?})"; exit 1; fi
  [ -n "${T:-}" ] && rm -rf "$T"
  echo "all checks passed"; exit 0
}

# MPI (the mpi_* tests): the launcher the build found (GRAFT_MPIEXEC), allowed
# to run as root (CI does), ranks over the cores there are.
need_mpi() {
  [ -n "${GRAFT_MPIEXEC:-}" ] ||
    skip "this build has no MPI (GRAFT_MPI=OFF, or no MPI found: install libopenmpi-dev and openmpi-bin)"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  MPI_FLAGS=()
  if "$GRAFT_MPIEXEC" --version 2>/dev/null | grep -qiE "open ?mpi|openrte"; then
    MPI_FLAGS=(--oversubscribe)
  fi
}
# mpi N CMD...: CMD on N ranks. mpi_mpmd CMD1... : CMD2...: one rank each.
mpi() { local n=$1; shift; "$GRAFT_MPIEXEC" "${MPI_FLAGS[@]}" -n "$n" "$@"; }
mpi_mpmd() {
  local args=() a
  for a in "$@"; do
    if [ "$a" = : ]; then args+=(: -n 1); else args+=("$a"); fi
  done
  "$GRAFT_MPIEXEC" "${MPI_FLAGS[@]}" -n 1 "${args[@]}"
}
