# bench/device-check.sh on a machine without a usable GPU: it exits non-zero
# with its table, which says that the GPU steps did not run, every step after
# the environment "not run"; $OUT gets the table and the logs in one archive,
# within the 8 files that come back from a GPU machine. Skips where a GPU is
# usable (there the script is the real check, minutes long).
. "$(dirname "$0")/lib.sh"
scratch device-check
if "$GRAFT_BIN/bench" devices >"$T/devices.txt" 2>&1; then
  skip "a usable CUDA GPU is here: run bench/device-check.sh itself"
fi
mkdir -p "$T/out"
OUT=$T/out GRAFT_CHECK_BIN=$GRAFT_BIN GRAFT_CHECK_DEADLINE=60 \
  bash "$GRAFT_SOURCE_DIR/bench/device-check.sh" "$T/logs" >"$T/stdout" 2>&1
rc=$?
S=$T/out/summary.txt
[ "$rc" -ne 0 ] && ok "exits $rc" || fail "exits 0 without a GPU: $(cat "$T/stdout")"
if [ -f "$S" ]; then
  ok "summary.txt in \$OUT"
  grep -qE '^environment +FAILED' "$S" && ok "environment FAILED: $(grep '^environment' "$S" | tr -s ' ')" ||
    fail "no failed environment row: $(cat "$S")"
  grep -q "THE GPU STEPS DID NOT RUN: no usable GPU: " "$S" && ok "says the GPU steps did not run" ||
    fail "does not say the GPU steps did not run: $(cat "$S")"
  for s in cuda_ops models_alexnet_cuda models_vgg16_cuda finetune_cuda classify_alexnet_cuda \
    classify_vgg16_cuda bench_graft_alexnet_b1 bench_graft_vgg16_b256 bench_torch; do
    grep -qE "^$s +not run +0 +no usable GPU" "$S" || fail "step $s is not reported 'not run'"
  done
  ok "every GPU step reported"
  grep -q "cudnn_deviceless" "$S" && fail "cudnn_deviceless is in the device run (CI runs it)"
else
  fail "no summary.txt in \$OUT: $(cat "$T/stdout")"
fi
if tar -tzf "$T/out/device-logs.tgz" 2>/dev/null | grep -q "environment.log"; then
  ok "logs in one archive: $(tar -tzf "$T/out/device-logs.tgz" | tr '\n' ' ')"
else
  fail "no device-logs.tgz with environment.log in \$OUT"
fi
n=$(find "$T/out" -type f | wc -l)
[ "$n" -le 8 ] && ok "$n file(s) in \$OUT" || fail "$n files in \$OUT: at most 8 come back"
finish
