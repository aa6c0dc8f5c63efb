# classify over MPI ranks: the output of a single process byte for byte, its
# exit status, each failing image said once; a rank that cannot start is
# reported by rank 0, once; and a plain run of this build needs no launcher
# and says nothing of MPI.
. "$(dirname "$0")/lib.sh"
need_mpi
need_python
need_data
scratch mpi-classify
C=$GRAFT_BIN/classify
"$PY" "$GRAFT_SOURCE_DIR/test/make_bad_inputs.py" "$T" || { fail "fixtures"; finish; }
"$PY" "$GRAFT_SOURCE_DIR/models/export_torchvision.py" --arch alexnet --num-classes 3 \
  --class-names a,b,c -o "$T/model.h5" > /dev/null || { fail "export"; finish; }
# A folder of 13 images, one of them truncated (a JPEG by its first bytes: listed, then failing).
mkdir -p "$T/imgs"
for f in $(ls "$HYM/val/ants/"*.jpg | head -7) $(ls "$HYM/val/bees/"*.jpg | head -5); do
  cp "$f" "$T/imgs/"
done
cp "$T/truncated.jpg" "$T/imgs/m_truncated.jpg"
# One thread per process in both: a trunk's bits can depend on the thread
# count (README, "Many machines"), never on the number of ranks.
W=(-w "$T/model.h5" -d cpu -t 1)

# same NAME RANKS ARGS...: stdout, classify's stderr lines and the exit status
# of a single process and of RANKS ranks (stdin from $T/stdin).
same() {
  local name=$1 n=$2
  shift 2
  "$C" "${W[@]}" "$@" < "$T/stdin" > "$T/one.out" 2> "$T/one.err"
  local rc1=$?
  mpi "$n" "$C" "${W[@]}" "$@" < "$T/stdin" > "$T/many.out" 2> "$T/many.err"
  local rc2=$?
  if [ "$rc1" -eq "$rc2" ] && cmp -s "$T/one.out" "$T/many.out" &&
     cmp -s <(grep '^classify: ' "$T/one.err") <(grep '^classify: ' "$T/many.err"); then
    ok "$name, $n ranks: the same output ($(wc -l < "$T/one.out") lines), errors and exit status ($rc1)"
  else
    fail "$name, $n ranks: exit $rc1 vs $rc2"
    diff "$T/one.out" "$T/many.out" | head -20
    diff <(grep '^classify: ' "$T/one.err") <(grep '^classify: ' "$T/many.err")
    cat "$T/many.err"
  fi
}
: > "$T/stdin"
same "a folder, batches of 4" 2 -b 4 "$T/imgs"
same "a folder, batches of 3, JSON, more paths" 3 -b 3 --json "$T/imgs" "$T/good.jpg" \
  "$T/gif.jpg" "$T/nowhere.jpg"
ls "$T/imgs/"* | head -9 > "$T/stdin"
same "a list on stdin, a batch per image" 2 -b 1 -k 2 -
same "fewer images than ranks" 3 "$T/good.jpg"
same "no images but a failing one" 2 "$T/nowhere.jpg"
: > "$T/stdin"

mpi 2 "$C" "${W[@]}" -b 2 "$T/imgs" > /dev/null 2> "$T/many.err"
n=$(grep -c "m_truncated.jpg" "$T/many.err")
[ "$n" -eq 1 ] && ok "the failing image said once" || fail "said $n times: $(cat "$T/many.err")"

# A rank that cannot load the weights (missing on its machine): one line, from rank 0, exit 2.
mpi_mpmd "$C" "${W[@]}" "$T/good.jpg" : "$C" -w "$T/nope.h5" -d cpu -t 1 "$T/good.jpg" \
  > /dev/null 2> "$T/many.err"
rc=$?
lines=$(grep -c '^classify: ' "$T/many.err")
[ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q "^classify: rank 1 on .*nope.h5: " "$T/many.err" &&
  ok "a rank that cannot start: $(grep '^classify: ' "$T/many.err")" ||
  fail "a rank that cannot start: exit $rc, $lines lines: $(cat "$T/many.err")"

# Usage errors under mpirun: once, exit 2.
mpi 2 "$C" "${W[@]}" -b 0 "$T/good.jpg" > /dev/null 2> "$T/many.err"
rc=$?
[ "$rc" -eq 2 ] && [ "$(grep -c '^classify: ' "$T/many.err")" -eq 1 ] && ok "a usage error said once" ||
  fail "usage error: exit $rc: $(cat "$T/many.err")"

# A plain run of an MPI build: no launcher, nothing of MPI on stderr.
"$C" "${W[@]}" "$T/good.jpg" > /dev/null 2> "$T/one.err"
rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$T/one.err" ] && ok "a plain run needs no launcher and is quiet" ||
  fail "plain run: exit $rc: $(cat "$T/one.err")"
finish
