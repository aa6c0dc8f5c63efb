# classify --json end to end against PyTorch's softmax on 24 shared images:
# same top-1 on every image, probabilities within 1e-3; also through a
# directory argument, stdin, several batch sizes and the text output.
. "$(dirname "$0")/lib.sh"
need_python
need_data
ARCH=${1:-alexnet}
scratch "classify-pytorch-$ARCH"
"$PY" "$GRAFT_SOURCE_DIR/test/ref_classify.py" --arch "$ARCH" --data "$HYM" --out "$T" ||
  { fail "reference"; finish; }
C=$GRAFT_BIN/classify
mapfile -t imgs < "$T/images.txt"
for b in 1 5 8; do
  if "$C" -w "$T/model.h5" -k 3 -b "$b" --json "${imgs[@]}" > "$T/got-$b.jsonl"; then
    "$PY" "$GRAFT_SOURCE_DIR/test/compare_classify.py" "$T/expected.jsonl" "$T/got-$b.jsonl" 3 &&
      ok "batch $b agrees with PyTorch" || fail "batch $b differs from PyTorch"
  else
    fail "classify -b $b exited $?"
  fi
done
# stdin gives the same as the arguments; GRAFT_WEIGHTS stands in for -w
GRAFT_WEIGHTS="$T/model.h5" "$C" -k 3 --json - < "$T/images.txt" > "$T/stdin.jsonl" &&
  cmp -s "$T/stdin.jsonl" "$T/got-8.jsonl" && ok "stdin and GRAFT_WEIGHTS" || fail "stdin differs"
# a directory: its images sorted by name
mkdir -p "$T/dir"
for p in "${imgs[@]:0:4}"; do ln -sf "$p" "$T/dir/"; done
touch "$T/dir/.hidden" && echo "notes" > "$T/dir/README.txt"
"$C" -w "$T/model.h5" --json "$T/dir" > "$T/dir.jsonl" && [ "$(wc -l < "$T/dir.jsonl")" -eq 4 ] &&
  ok "a directory gives its 4 images" || fail "directory: $(cat "$T/dir.jsonl")"
# text output: the path, then K lines of probability and label
"$C" -w "$T/model.h5" -k 2 "${imgs[0]}" > "$T/text.txt" &&
  [ "$(wc -l < "$T/text.txt")" -eq 3 ] && head -1 "$T/text.txt" | grep -qF "${imgs[0]}" &&
  ok "text output: $(tr '\n' '|' < "$T/text.txt")" || fail "text output: $(cat "$T/text.txt")"
finish
