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

# A passing test removes its scratch folder (the finetune and classify tests
# leave gigabytes of weights files); a failing one keeps it to look at.
finish() {
  if [ "$FAILED" -gt 0 ]; then echo "$FAILED check(s) FAILED (files kept in ${T:-?})"; exit 1; fi
  [ -n "${T:-}" ] && rm -rf "$T"
  echo "all checks passed"; exit 0
}
