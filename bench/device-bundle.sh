#!/usr/bin/env bash
# Run HERE (the build machine): builds graft with the CUDA backend and packs
# what bench/device-check.sh needs on a GPU machine that has the CUDA
# toolkit, cuDNN (pip nvidia-cudnn-cu13) and PyTorch but no package registry
# and none of graft's other libraries (HDF5, libjpeg, libpng, oneDNN,
# OpenBLAS, cairo):
#
#   .device/bundle.tar.xz   bin/ (the apps and the CUDA test programs) and
#                           lib/ (every shared library they load, from ldd,
#                           except glibc's, libstdc++/libgcc_s, and the
#                           driver's and CUDA/cuDNN/cuBLAS libraries, which the
#                           GPU machine has), compressed: oneDNN and OpenBLAS
#                           alone are 73 MB
#   .device/data/           a few images of each class of the shared
#                           hymenoptera set (classify, finetune smoke runs,
#                           the step-for-step finetune check)
#   .device/cudnn-devices/  the A100/H100 descriptions for test_cudnn_deviceless
#   .device/MANIFEST        what went in, and from which commit
#
# .device/ is ignored by git; carry it to the GPU machine with the working
# tree (it must stay under 64 MiB with everything else that travels).
#
#   bench/device-bundle.sh [BUILD_DIR]      default build-device
# Extra CMake options through GRAFT_BUNDLE_CMAKE_ARGS (e.g.
# "-DCMAKE_CUDA_ARCHITECTURES=90" to build one architecture).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build-device}
OUT=$ROOT/.device
DATA=${GRAFT_DATA:-$ROOT/../shared/data}/hymenoptera
JOBS=$(nproc)

echo "== configure and build ($BUILD, CUDA on, warnings as errors)"
mkdir -p "$BUILD"
# shellcheck disable=SC2086
# RPATH $ORIGIN/../lib: the bundled binaries find the bundled libraries
# without LD_LIBRARY_PATH, which would leak them into PyTorch's processes. The
# old-style RPATH (--disable-new-dtags), not RUNPATH: RUNPATH covers only a
# binary's direct libraries, and HDF5, oneDNN and OpenBLAS bring their own
# (libsz, libaec, libcurl, libOpenCL, libgfortran) that the GPU machine lacks.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGRAFT_CUDA=ON -DGRAFT_WERROR=ON \
  '-DCMAKE_BUILD_RPATH=$ORIGIN/../lib' '-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags' \
  ${GRAFT_BUNDLE_CMAKE_ARGS:-} >"$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; exit 1; }
grep "CUDA backend" "$BUILD/configure.log"
cmake --build "$BUILD" -j"$JOBS" --target classify finetune bench test_models test_cuda_ops \
  test_cudnn_deviceless

rm -rf "$OUT"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$OUT"
bins=(classify finetune bench test_models test_cuda_ops test_cudnn_deviceless)
for b in "${bins[@]}"; do
  cp "$BUILD/bin/$b" "$stage/bin/"
  strip --strip-debug "$stage/bin/$b"
done

# Libraries the GPU machine has (or must bring itself): never bundled.
skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudnn[a-z_]*|libcublas(Lt)?|libcudart|libnvrtc[a-z-]*|libnvJitLink)[.-]'
ldd "${bins[@]/#/$BUILD/bin/}" 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    if [[ $name =~ $skip ]]; then continue; fi
    cp -L "$path" "$stage/lib/$name"
  done
unresolved=$(ldd "${bins[@]/#/$BUILD/bin/}" 2>/dev/null | grep "not found" || true)
if [ -n "$unresolved" ]; then
  echo "unresolved libraries here:"; echo "$unresolved"; exit 1
fi

# Every library but glibc's and the GCC runtime must load from the bundle:
# unpack it and ask the loader.
check=$(mktemp -d)
tar -C "$stage" -cf - bin lib | tar -C "$check" -xf -
strays=$(LD_DEBUG=libs "$check/bin/classify" --version 2>&1 >/dev/null |
  awk '/calling init:/ {print $NF}' | grep -v "^$check/lib/" |
  grep -vE '/(ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcudnn[a-z_]*|libcublas(Lt)?|libnvrtc[a-z-]*|libz)[.-]' || true)
rm -rf "$check"
if [ -n "$strays" ]; then
  echo "error: these libraries load from outside the bundle:"; echo "$strays"; exit 1
fi

echo "== compress"
tar -C "$stage" -cf - bin lib | xz -T"$JOBS" -6 >"$OUT/bundle.tar.xz"

# A few images per class and split: enough for test/small_set.py's default
# 8 train + 4 val per class, the finetune smoke run and classify.
if [ -d "$DATA" ]; then
  for split in train val; do
    for cls in ants bees; do
      mkdir -p "$OUT/data/hymenoptera/$split/$cls"
      find "$DATA/$split/$cls" -maxdepth 1 -iname '*.jpg' | sort | head -n 10 |
        while read -r f; do cp "$f" "$OUT/data/hymenoptera/$split/$cls/"; done
    done
  done
else
  echo "warning: no shared data at $DATA: the GPU checks that need images will skip"
fi

# The cuDNN device descriptions the deviceless test plans against (the
# shared folder beside the checkout does not travel).
DEVICES=${GRAFT_CUDNN_DEVICES:-$ROOT/../shared/docs/cudnn-devices}
if [ -d "$DEVICES" ]; then
  mkdir -p "$OUT/cudnn-devices" && cp "$DEVICES"/*.json "$OUT/cudnn-devices/"
fi

{
  echo "graft device bundle, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
  grep "CUDA backend" "$BUILD/configure.log" || true
  echo "binaries: ${bins[*]}"
  echo "libraries: $(ls "$stage/lib" | tr '\n' ' ')"
} >"$OUT/MANIFEST"
cat "$OUT/MANIFEST"
du -sh "$OUT" "$OUT/bundle.tar.xz"
size=$(du -sm "$OUT" | cut -f1)
if [ "$size" -ge 60 ]; then
  echo "error: .device is ${size} MiB; what travels must stay under 64 MiB"; exit 1
fi
echo "ready: carry .device; on the GPU machine run bench/device-check.sh [LOGDIR]"
