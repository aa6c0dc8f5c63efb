#!/usr/bin/env bash
# One libFuzzer harness for a bounded time (ctest's fuzz_* tests, and by hand):
#
#   run.sh NAME SECONDS [LIBFUZZER FLAGS...]
#
# NAME: image, weights, config, checkpoint, pickle, zip or safetensors (the
# harness build/bin/fuzz_NAME).
# Its seed corpus is made now (test/fuzz/fuzz_seeds.c; the h5py-layout and
# Keras-layout seeds of test/make_bad_weights.py when a python with h5py is found; for images a
# few of the shared tutorial images when present), into a fresh folder; the
# corpus the run grows is kept in test-tmp/fuzz_NAME/corpus for the next run
# of the same build. Any finding (a crash, a sanitizer report, a leak, a
# timeout, running out of memory) fails the test: libFuzzer's report and the
# input, kept as test-tmp/fuzz_NAME/crash-*, say what and how to reproduce
# (build/bin/fuzz_NAME FILE). The last line gives executions per second.
source "$(dirname "$0")/../lib.sh"
name=$1 seconds=$2
shift 2
bin=$GRAFT_BIN/fuzz_$name
[ -x "$bin" ] || skip "no $bin (configure with -DGRAFT_FUZZ=ON and clang)"

T=$PWD/test-tmp/fuzz_$name
mkdir -p "$T/corpus"
rm -rf "$T/seeds" "$T"/crash-* "$T"/leak-* "$T"/timeout-* "$T"/oom-* "$T/work"
mkdir -p "$T/seeds" "$T/work"
kind=$name
case $name in
  pickle | zip | safetensors)
    # Small files made by PyTorch when there is one; a few bytes otherwise.
    if [ -n "$PY" ]; then
      "$PY" "$GRAFT_SOURCE_DIR/test/make_torch_files.py" fuzzseed "$name" "$T/seeds/torch.$name" ||
        { echo "FAIL: cannot make the seeds"; exit 1; }
    fi
    case $name in
      pickle) printf '\x80\x02}q\x00.' > "$T/seeds/dict.pkl" ;;
      zip) printf 'PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' > "$T/seeds/empty.zip" ;;
      safetensors)
        h='{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}  '
        { printf '\x38\0\0\0\0\0\0\0'; printf '%s' "$h"; printf '\0\x3c\0\xc0'; } > "$T/seeds/tiny.st" ;;
    esac ;;
  *) "$GRAFT_BIN/fuzz_seeds" "$kind" "$T/seeds" >/dev/null || { echo "FAIL: cannot make the seeds"; exit 1; } ;;
esac
if [ -n "$PY" ]; then
  case $name in
    weights)
      "$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" fuzzseed "$T/seeds/h5py.h5"
      "$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" fuzzseed-keras "$T/seeds/keras.h5" ;;
    config) "$PY" "$GRAFT_SOURCE_DIR/test/make_bad_weights.py" fuzzseed-config "$T/seeds/h5py.h5" ;;
  esac
fi
if [ "$name" = image ] && [ -d "$HYM/val/ants" ]; then
  # The two smallest tutorial images: real cameras' JPEGs (EXIF, odd sizes).
  find "$HYM/val" -name '*.jpg' -size -20k | sort | head -2 | while read -r f; do
    cp "$f" "$T/seeds/"
  done
fi
echo "seeds: $(ls "$T/seeds" | wc -l) files; corpus kept from earlier runs: $(ls "$T/corpus" | wc -l)"

# -timeout: one input may take this long (a hang is a finding); -rss_limit_mb:
# the harness process (the sanitizers' shadow not counted) may grow this far.
cd "$T/work" || exit 1
log=$T/fuzz.log
"$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$T/" "$@" "$T/corpus" "$T/seeds" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
if [ "$rc" -ne 0 ]; then
  tail -60 "$log"
  # (libFuzzer's own exit status for a finding is 77, which ctest would call a skip.)
  echo "FAIL: fuzz_$name found a problem (exit $rc); the input is kept as" \
    $(ls "$T"/crash-* "$T"/leak-* "$T"/timeout-* "$T"/oom-* 2>/dev/null)
  exit 1
fi
echo "fuzz_$name: ${execs:-?} inputs in ${seconds} s, ${speed:-?} exec/s, coverage ${cov:-?} edges," \
  "corpus $(ls "$T/corpus" | wc -l) files: no finding"
