#!/usr/bin/env bash
# Run HERE (where graft builds): builds graft with the CUDA backend and packs
# into .device/ what bench/device-check.sh needs on a GPU machine that has
# no package registry and none of graft's other libraries:
#
#   .device/bundle.tar.xz   bin/: the apps, the CUDA module libgraft_cuda.so
#                           beside them, test_cuda_ops and test_models; lib/:
#                           every shared library they load (ldd), except
#                           glibc's, the GCC runtime's and the driver's, cuDNN,
#                           cuBLAS and nvrtc, which the GPU machine provides
#   .device/data/           10 images of each class and split of the shared
#                           hymenoptera set (finetune step for step, classify)
#   .device/cudnn-devices/  the A100/H100 descriptions and the cards' own
#                           recorded in bench/cudnn-devices/, which
#                           test_cuda_ops holds its forced rungs to
#   .device/MANIFEST        what went in, from which commit, the sizes, and
#                           what the GPU machine must provide
#
# The size: what travels to a GPU machine is the working tree (tracked and
# untracked files git does not ignore) plus the carried .device, 64 MiB at
# most; this script states both and fails when they do not fit with a margin.
# The one command, on the GPU machine, from the repository root, with .device
# carried:  bench/device-check.sh   (see its header; at most 10 minutes).
#
#   bench/device-bundle.sh [BUILD_DIR]      default build-device
# Extra CMake options through GRAFT_BUNDLE_CMAKE_ARGS (e.g.
# "-DCMAKE_CUDA_ARCHITECTURES=90" to build one architecture).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build-device}
DEST=$ROOT/.device
DATA=${GRAFT_DATA:-$ROOT/../shared/data}/hymenoptera
JOBS=${GRAFT_BUNDLE_JOBS:-$(nproc)}
LIMIT_MIB=64
MARGIN_MIB=4 # the working tree grows with every commit; keep room

echo "== configure and build ($BUILD, CUDA on, warnings as errors)"
mkdir -p "$BUILD"
# RPATH $ORIGIN/../lib: the bundled binaries find the bundled libraries
# without LD_LIBRARY_PATH, which would leak them into PyTorch's processes. The
# old-style RPATH (--disable-new-dtags), not RUNPATH: RUNPATH covers only a
# binary's direct libraries, and HDF5, oneDNN and OpenBLAS bring their own
# (libsz, libaec, libcurl, libOpenCL, libgfortran) that the GPU machine lacks.
# The module keeps a RUNPATH: cuDNN and cuBLAS come from the GPU machine
# (LD_LIBRARY_PATH, set by device-check.sh to PyTorch's own).
# MPI off: the device check runs one process per GPU, and Open MPI cannot be
# bundled by copying what ldd lists. libmpi carries its own RUNPATH to
# /usr/lib/x86_64-linux-gnu/openmpi/lib (so its libopen-rte, libopen-pal,
# libhwloc and libevent load from there, past the bundle's lib/), and it
# dlopens its components from a folder compiled into libopen-pal, which no
# ldd shows; a relocated copy would need the whole installation and
# OPAL_PREFIX on a machine that has no mpirun to use it with.
# shellcheck disable=SC2086
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGRAFT_CUDA=ON -DGRAFT_MPI=OFF -DGRAFT_WERROR=ON \
  '-DCMAKE_BUILD_RPATH=$ORIGIN/../lib' '-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags' \
  ${GRAFT_BUNDLE_CMAKE_ARGS:-} >"$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; exit 1; }
grep "CUDA backend" "$BUILD/configure.log"
bins=(classify finetune bench test_models test_cuda_ops)
cmake --build "$BUILD" -j"$JOBS" --target "${bins[@]}" graft_cuda

rm -rf "$DEST"
stage=$(mktemp -d)
check=$(mktemp -d)
trap 'rm -rf "$stage" "$check"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$DEST"
for b in "${bins[@]}" libgraft_cuda.so; do
  cp "$BUILD/bin/$b" "$stage/bin/"
  strip --strip-debug "$stage/bin/$b"
done

# What the GPU machine provides (never bundled): glibc, the GCC runtime, the
# driver, and the CUDA libraries (the module's cuDNN and cuBLAS; test_cuda_ops
# links them directly).
provided='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudnn[a-z_]*|libcublas(Lt)?|libcudart|libnvrtc[a-z-]*|libnvJitLink)[.-]'
ldd "$stage"/bin/* 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    if [[ $name =~ $provided ]]; then continue; fi
    cp -L "$path" "$stage/lib/$name"
  done
unresolved=$(ldd "$stage"/bin/* 2>/dev/null | grep "not found" || true)
if [ -n "$unresolved" ]; then
  echo "unresolved libraries here:"; echo "$unresolved"; exit 1
fi

# The apps must load nothing from outside the bundle but what the GPU machine
# provides; unpack it elsewhere and ask the loader (the module is loaded too:
# `bench devices` opens it).
tar -C "$stage" -cf - bin lib | tar -C "$check" -xf -
strays=$(LD_DEBUG=libs "$check/bin/bench" devices 2>&1 >/dev/null |
  awk '/calling init:/ {print $NF}' | grep -v "^$check/" |
  grep -vE '/(ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcudnn[a-z_]*|libcublas(Lt)?|libnvrtc[a-z-]*|libz)[.-]' || true)
if [ -n "$strays" ]; then
  echo "error: these libraries load from outside the bundle:"; echo "$strays"; exit 1
fi
readelf -d "$check/bin/classify" | grep -qE 'NEEDED.*lib(cudnn|cublas|cudart)' &&
  { echo "error: classify links a CUDA library (the module should)"; exit 1; }

echo "== compress"
tar -C "$stage" -cf - bin lib | xz -T"$JOBS" -6 >"$DEST/bundle.tar.xz"

# Images for the finetune step-for-step check (test/small_set.py takes 8
# train + 4 val per class) and classify.
if [ -d "$DATA" ]; then
  for split in train val; do
    for cls in ants bees; do
      mkdir -p "$DEST/data/hymenoptera/$split/$cls"
      # sed reads to the end: head would leave sort writing into a closed
      # pipe (SIGPIPE, a failure under pipefail once the listing outgrows
      # one write)
      find "$DATA/$split/$cls" -maxdepth 1 -iname '*.jpg' | sort | sed -n '1,10p' |
        while read -r f; do cp "$f" "$DEST/data/hymenoptera/$split/$cls/"; done
    done
  done
else
  echo "warning: no shared data at $DATA: the finetune and classify checks will fail (skipped)"
fi
DEVICES=${GRAFT_CUDNN_DEVICES:-$ROOT/../shared/docs/cudnn-devices}
if [ -d "$DEVICES" ]; then
  mkdir -p "$DEST/cudnn-devices" && cp "$DEVICES"/*.json "$DEST/cudnn-devices/"
else
  echo "warning: no cuDNN device descriptions at $DEVICES: forced rungs are held to the GPU's own"
fi
# the cards' own descriptions, recorded by device runs (bench/device-check.sh)
if ls "$ROOT"/bench/cudnn-devices/*.json >/dev/null 2>&1; then
  mkdir -p "$DEST/cudnn-devices" && cp "$ROOT"/bench/cudnn-devices/*.json "$DEST/cudnn-devices/"
fi

# ---- sizes: the working tree and .device travel together ----
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null ||
  true) | awk '{s += $1} END {print s + 0}')
shared_bytes=0
[ -d shared ] && shared_bytes=$(du -sb shared | cut -f1)
device_bytes=$(du -sb "$DEST" | cut -f1)
total=$((tree_bytes + shared_bytes + device_bytes))
sizes="working tree $(mib "$tree_bytes") MiB + shared/ $(mib "$shared_bytes") MiB + .device $(mib "$device_bytes") MiB = $(mib "$total") MiB of $LIMIT_MIB MiB"

{
  echo "graft device bundle, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
  grep "CUDA backend" "$BUILD/configure.log" || true
  echo "built on: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), glibc $(ldd --version | head -1 | awk '{print $NF}')"
  echo "binaries: ${bins[*]} libgraft_cuda.so"
  echo "libraries: $(ls "$stage/lib" | tr '\n' ' ')"
  echo "size: $sizes"
  cat <<'EOF'
the GPU machine must provide (bench/device-check.sh says what it found):
  - an NVIDIA driver for CUDA >= 13.0 (the module links the CUDA 13.0 runtime
    statically, SASS for sm_80 and sm_90); otherwise: environment FAILED, the
    GPU steps not run
  - cuDNN 9 (libcudnn.so.9 and its sub-libraries, with libnvrtc.so.13 and
    libz) and cuBLAS 13 (libcublas.so.13, libcublasLt.so.13): a python's
    nvidia-cudnn-cu13 / nvidia-cublas wheels (PyTorch's), /usr/local/cuda/lib64
    or the loader's cache; missing: environment FAILED naming the library; a
    cuDNN older than the build's: environment WARN, the steps still run
  - glibc >= the build machine's (above) and libstdc++
  - a python3 with torch, torchvision, h5py, numpy and PIL: the references of
    models_*, finetune_cuda and classify_*; missing: those steps fail
    (skipped); with a CUDA torch also PyTorch's benchmark rows; without one
    they are skipped, saying so, and graft's rows stand alone
EOF
} >"$DEST/MANIFEST"
cat "$DEST/MANIFEST"
if [ "$total" -gt $(((LIMIT_MIB - MARGIN_MIB) * 1048576)) ]; then
  echo "error: $sizes: leave $MARGIN_MIB MiB of margin under the $LIMIT_MIB MiB that travel"
  exit 1
fi
echo "ready: carry .device with the working tree; on the GPU machine run bench/device-check.sh"
