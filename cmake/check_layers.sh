#!/usr/bin/env bash
# The layers' direction, checked from the source: every #include "dir/..."
# of every C, CUDA and header file must point at its own layer or one below.
# Run by the build before anything compiles and by
# the ctest `layers`; docs/ARCHITECTURE.md draws the same picture.
#
#   check_layers.sh ROOT          check the tree at ROOT; one line per
#                                 violation on stderr, exit 1 if any
#   check_layers.sh --self-test   check two small trees: one clean, one with
#                                 a wrong-way include; the first must pass and
#                                 the second fail
set -u

# layer FILE: the layer a source file belongs to, by its folder.
layer() {
  case $1 in
    engine/base/*) echo base ;;
    engine/cuda/*) echo cuda ;;
    engine/backend.c | engine/cuda_loader.c) echo backends ;;
    engine/*) echo engine ;;
    io/*) echo io ;;
    models/*) echo models ;;
    apps/finetune/*) echo finetune ;;
    apps/*) echo apps ;;
    *) echo other ;;
  esac
}

# allowed LAYER: the layers it may include, itself first. engine/backend.c
# (graft_backends) creates either backend; its header is the engine's.
allowed() {
  case $1 in
    base) echo "base" ;;
    engine) echo "engine base" ;;
    cuda) echo "cuda engine base" ;;
    backends) echo "backends engine base" ;;
    io) echo "io base" ;;
    models) echo "models io engine base" ;;
    finetune) echo "finetune models io engine base" ;;
    apps) echo "apps finetune models io engine base" ;;
    *) echo "" ;;
  esac
}

check() {
  local root=$1 bad=0 f inc from to ok
  cd "$root" || { echo "check_layers: no folder $root" >&2; return 2; }
  while IFS= read -r f; do
    from=$(layer "$f")
    [ "$from" = other ] && continue
    while IFS=: read -r line inc; do
      to=$(layer "$inc")
      [ "$to" = other ] && continue
      ok=0
      for l in $(allowed "$from"); do [ "$l" = "$to" ] && ok=1; done
      if [ "$ok" -eq 0 ]; then
        echo "$f:$line: the $from layer includes \"$inc\" from the $to layer above it" >&2
        bad=$((bad + 1))
      fi
    done < <(grep -no '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*"' "$f" |
             sed -E 's/^([0-9]+):.*"([^"]*)"/\1:\2/')
  done < <(find engine io models apps -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \) \
             2>/dev/null | sort)
  return $((bad > 0))
}

self_test() {
  local t rc
  t=$(mktemp -d) || return 2
  mkdir -p "$t/good/engine/base" "$t/good/io" "$t/good/apps" "$t/bad"
  printf '#include "engine/base/status.h"\n' > "$t/good/io/file.c"
  printf '#include "io/file.h"\n' > "$t/good/apps/app.c"
  printf '#include "engine/base/status.h"\n' > "$t/good/engine/net.c"
  cp -r "$t/good/." "$t/bad/"
  printf '#include "engine/base/status.h"\n  #  include "io/file.h"\n' > "$t/bad/engine/net.c"
  check "$t/good" 2>"$t/good.err"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "self-test: a clean tree was rejected:" >&2
    cat "$t/good.err" >&2
    rm -rf "$t"
    return 1
  fi
  check "$t/bad" 2>"$t/bad.err"
  rc=$?
  if [ "$rc" -eq 0 ] || ! grep -q 'engine/net.c:2: the engine layer includes "io/file.h"' "$t/bad.err"; then
    echo "self-test: a wrong-way include was not caught (exit $rc):" >&2
    cat "$t/bad.err" >&2
    rm -rf "$t"
    return 1
  fi
  echo "self-test: a clean tree passes; a wrong-way include is caught"
  rm -rf "$t"
  return 0
}

if [ "${1:-}" = --self-test ]; then
  self_test
  exit $?
fi
check "${1:-.}" || exit 1
