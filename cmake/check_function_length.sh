#!/usr/bin/env bash
# No function longer than 80 lines in the libraries and programs (engine/,
# io/, models/, apps/, comm/; the tests are exempt): a long function is a
# place where a reader loses the thread, so it is split where its steps are.
# A function is counted from the line its definition starts on (its return
# type, at the start of a line) to its closing brace at the start of a line,
# as this project formats C and CUDA.
#
#   check_function_length.sh ROOT [LIMIT]   one line per long function on
#                                           stderr, exit 1 if any (LIMIT 80)
#   check_function_length.sh --self-test    a tree with functions of 80 and
#                                           81 lines (one with its signature
#                                           over two lines): only the second
#                                           is caught
set -u
if [ "${1:-}" = --self-test ]; then
  t=$(mktemp -d)
  trap 'rm -rf "$t"' EXIT
  mkdir -p "$t/engine" "$t/io" "$t/models" "$t/apps" "$t/comm"
  body() { for _ in $(seq "$1"); do echo "  x++;"; done; }
  {
    echo "static int fits(int x) {"; body 78; echo "}"
    echo "static int too_long(int a,"; echo "                    int x) {"; body 78; echo "}"
    echo "int declared(int x);"
  } >"$t/engine/a.cu"
  { echo "int ok(void) {"; body 10; echo "}"; } >"$t/io/b.c"
  out=$(bash "$0" "$t" 2>&1)
  if [ $? -eq 1 ] && [ "$(grep -c ' lines (at most 80)' <<<"$out")" -eq 1 ] &&
     grep -q "engine/a.cu:81: too_long is 81 lines" <<<"$out"; then
    echo "self-test: an 81-line function is caught, an 80-line one is not"
    exit 0
  fi
  echo "self-test failed: $out" >&2
  exit 1
fi
root=${1:?usage: check_function_length.sh ROOT [LIMIT]}
limit=${2:-80}
cd "$root" || { echo "check_function_length: no folder $root" >&2; exit 2; }
bad=0
while IFS= read -r f; do
  out=$(awk -v F="$f" -v L="$limit" '
    # a definition: at column 0, not a declaration (no ";"), not a preprocessor line
    !infn && /^[A-Za-z_]/ && !/;[[:space:]]*$/ && !/^(typedef|#)/ {
      if (/\)[[:space:]]*\{[[:space:]]*$/) { start = FNR; name = $0; infn = 1; next }
      if (/\(/) { pstart = FNR; pname = $0; next }
    }
    !infn && pstart && /\)[[:space:]]*\{[[:space:]]*$/ { start = pstart; name = pname; infn = 1; pstart = 0; next }
    !infn && /;[[:space:]]*$/ { pstart = 0 }
    infn && /^\}/ {
      n = FNR - start + 1
      if (n > L) { sub(/\(.*/, "", name); k = split(name, w, /[ *]+/); printf "%s:%d: %s is %d lines (at most %d)\n", F, start, w[k], n, L }
      infn = 0
    }' "$f")
  if [ -n "$out" ]; then echo "$out" >&2; bad=$((bad + $(printf '%s\n' "$out" | wc -l))); fi
done < <(find engine io models apps comm -type f \( -name '*.c' -o -name '*.cu' \) | sort)
[ "$bad" -eq 0 ] || { echo "check_function_length: $bad function(s) over $limit lines" >&2; exit 1; }
echo "no function over $limit lines in engine/, io/, models/, apps/, comm/"
