#!/usr/bin/env bash
# The layers' direction, checked from the source: every #include "dir/..."
# of every C, CUDA and header file of the libraries and programs must point
# at its own layer or one below, and only the programs (apps/*.c) and the
# test harness (test/harness.c) read the environment: the libraries take
# options. MPI stays in its own layer: only comm/mpi.c includes <mpi.h>
# (the engine, io and models never see the job). Run by the build before
# anything compiles and by the ctest `layers`; docs/ARCHITECTURE.md draws the
# same picture.
#
#   check_layers.sh ROOT          check the tree at ROOT; one line per
#                                 violation on stderr, exit 1 if any
#   check_layers.sh --self-test   check two small trees: one clean, one with
#                                 wrong-way includes, getenv calls and an
#                                 <mpi.h> outside comm/; the first must pass
#                                 and the second fail on each
set -u

# layer FILE: the layer a file belongs to, by its path.
layer() {
  case $1 in
    engine/base/*) echo base ;;
    engine/cuda/*) echo cuda ;;
    engine/devices.[ch] | engine/cuda_loader.c) echo backends ;;
    engine/*) echo engine ;;
    io/*) echo io ;;
    comm/*) echo comm ;;
    models/*) echo models ;;
    apps/finetune/*) echo finetune ;;
    apps/*) echo apps ;;
    test/harness.c) echo harness ;;
    test/*) echo test ;;
    *) echo other ;;
  esac
}

# allowed LAYER: the layers it may include, itself first; none listed: any.
# engine/devices.c (the library graft_backends) creates either backend; its
# header, engine/devices.h, is above the engine: the programs, finetune and
# the tests include it, the engine never does.
allowed() {
  case $1 in
    base) echo "base" ;;
    engine) echo "engine base" ;;
    cuda) echo "cuda engine base" ;;
    backends) echo "backends engine base" ;;
    io) echo "io base" ;;
    comm) echo "comm base" ;;
    models) echo "models io engine base" ;;
    finetune) echo "finetune models comm io backends engine base" ;;
    apps) echo "apps finetune models comm io backends engine base" ;;
    *) echo "" ;;
  esac
}

# reads_env LAYER: whether it may call getenv.
reads_env() {
  case $1 in
    apps | harness) return 0 ;;
    *) return 1 ;;
  esac
}

check() {
  local root=$1 bad=0 f from rules line inc to ok l hit
  cd "$root" || { echo "check_layers: no folder $root" >&2; return 2; }
  while IFS= read -r f; do
    from=$(layer "$f")
    [ "$from" = other ] && continue
    rules=$(allowed "$from")
    if [ -n "$rules" ]; then
      while IFS=: read -r line inc; do
        to=$(layer "$inc")
        [ "$to" = other ] && continue
        ok=0
        for l in $rules; do [ "$l" = "$to" ] && ok=1; done
        if [ "$ok" -eq 0 ]; then
          echo "$f:$line: the $from layer includes \"$inc\" from the $to layer above it" >&2
          bad=$((bad + 1))
        fi
      done < <(grep -no '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*"' "$f" |
               sed -E 's/^([0-9]+):.*"([^"]*)"/\1:\2/')
    fi
    if [ "$f" != comm/mpi.c ]; then
      while IFS= read -r hit; do
        echo "$f:${hit%%:*}: includes <mpi.h>; only comm/mpi.c talks to MPI (use comm/comm.h)" >&2
        bad=$((bad + 1))
      done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<mpi\.h>' "$f")
    fi
    if ! reads_env "$from"; then
      while IFS= read -r hit; do
        echo "$f:${hit%%:*}: reads the environment; take an option instead (only apps/*.c" \
             "and test/harness.c read it)" >&2
        bad=$((bad + 1))
      done < <(grep -nE '\b(secure_)?getenv[[:space:]]*\(' "$f")
    fi
  done < <(find engine io comm models apps test -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \) \
             2>/dev/null | sort)
  return $((bad > 0))
}

self_test() {
  local t rc want
  t=$(mktemp -d) || return 2
  mkdir -p "$t/good/engine/base" "$t/good/io" "$t/good/comm" "$t/good/apps/finetune" "$t/good/test" \
    "$t/bad"
  printf '#include "engine/base/status.h"\n' > "$t/good/io/file.c"
  printf '#include "apps/finetune/run.h"\nint f(void) { return getenv("X") != 0; }\n' \
    > "$t/good/apps/app.c"
  printf '#include "models/model.h"\n#include "comm/comm.h"\n' > "$t/good/apps/finetune/run.c"
  printf '#include <mpi.h>\n#include "engine/base/status.h"\n' > "$t/good/comm/mpi.c"
  printf '#include "engine/base/status.h"\n' > "$t/good/engine/net.c"
  printf 'const char *e(void) { return getenv("Y"); }\n' > "$t/good/test/harness.c"
  printf '#include "apps/common.h"\n' > "$t/good/test/test_x.c"
  cp -r "$t/good/." "$t/bad/"
  printf '#include "engine/base/status.h"\n  #  include "io/file.h"\n' > "$t/bad/engine/net.c"
  printf '#include "apps/common.h"\n' > "$t/bad/apps/finetune/run.c"
  printf 'const char *v(void) { return getenv("Y"); }\n' > "$t/bad/io/env.c"
  printf 'const char *v(void) { return secure_getenv ("Y"); }\n' > "$t/bad/test/test_x.c"
  printf '#include "comm/comm.h"\n' > "$t/bad/engine/train.c"
  printf '#include "engine/base/status.h"\n#  include <mpi.h>\n' > "$t/bad/io/loader.c"
  printf '#include "io/file.h"\n' > "$t/bad/comm/single.c"
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
  for want in 'engine/net.c:2: the engine layer includes "io/file.h" from the io layer' \
              'apps/finetune/run.c:1: the finetune layer includes "apps/common.h"' \
              'io/env.c:1: reads the environment' 'test/test_x.c:1: reads the environment' \
              'engine/train.c:1: the engine layer includes "comm/comm.h" from the comm layer' \
              'io/loader.c:2: includes <mpi.h>' \
              'comm/single.c:1: the comm layer includes "io/file.h" from the io layer'; do
    if [ "$rc" -eq 0 ] || ! grep -qF "$want" "$t/bad.err"; then
      echo "self-test: not caught: $want (exit $rc):" >&2
      cat "$t/bad.err" >&2
      rm -rf "$t"
      return 1
    fi
  done
  echo "self-test: a clean tree passes; wrong-way includes, getenv calls and <mpi.h> outside comm/ are caught"
  rm -rf "$t"
  return 0
}

if [ "${1:-}" = --self-test ]; then
  self_test
  exit $?
fi
check "${1:-.}" || exit 1
