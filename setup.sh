#!/usr/bin/env bash
# graft set-up: installs the build and test dependencies from Debian 12's
# packages, then configures and builds into build/ (binaries in build/bin/).
# Extra arguments go to CMake, e.g. ./setup.sh -DGRAFT_WERROR=ON
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential cmake pkg-config
  libhdf5-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev
  libdnnl-dev ocl-icd-opencl-dev opencl-c-headers libopenblas-dev libcairo2-dev
  libopenmpi-dev openmpi-bin
  python3 python3-numpy python3-h5py python3-pil python3-torch python3-torchvision
)
sudo=
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
echo "graft built: $(ls build/bin | tr '\n' ' ')"
