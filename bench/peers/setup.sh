#!/usr/bin/env bash
# Installs bench/compare's peers -- PyTorch 2.x, ONNX Runtime (CPU provider),
# OpenVINO (CPU plugin) and ncnn (with pnnx, its converter), from PyPI, at the versions pinned in
# requirements.txt beside this script -- into a virtual environment of their
# own, outside the checkout:
#
#   $GRAFT_PEERS_VENV, default ${XDG_CACHE_HOME:-~/.cache}/graft/peers-venv
#
# Safe to run again: when the environment already holds exactly this
# requirements file (a copy is kept in it) and imports, nothing is done;
# after an edit of the file the pins are installed over it. What it costs:
# about 2.9 GB downloaded and 4.7 GB on disk, nearly all of it the CUDA
# libraries PyPI's Linux torch wheel cannot be imported without, even on the
# CPU (requirements.txt says which are left out). pip's cache is not used
# (it would hold a second copy). To remove: rm -rf the folder.
#
#   bench/peers/setup.sh           install or check; prints the Python to use, last
#   bench/peers/setup.sh --check   exit 0 when installed and current, 1 otherwise
#
# Python: $GRAFT_PEERS_PYTHON, default Debian's /usr/bin/python3 (3.11 on
# Debian 12), else python3. Its venv module comes from Debian's python3-venv,
# installed with apt when missing (as ./setup.sh installs packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
req=$here/requirements.txt
venv=${GRAFT_PEERS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/graft/peers-venv}
stamp=$venv/graft-requirements.txt
imports="import torch, torchvision, onnxruntime, openvino, onnx, h5py, PIL, ncnn, pnnx"

current() {
  [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp" &&
    "$venv/bin/python" -c "$imports" >/dev/null 2>&1
}

if [ "${1:-}" = "--check" ]; then
  current
  exit
fi
if current; then
  echo "peers: up to date in $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi

py=${GRAFT_PEERS_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=$(command -v python3); fi
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$py" -c "import ensurepip, venv" >/dev/null 2>&1; then
    if [ "$py" = /usr/bin/python3 ] && command -v apt-get >/dev/null; then
      sudo=
      if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
      echo "peers: installing python3-venv (Debian) for $py" >&2
      $sudo apt-get update -qq
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3-venv
    else
      echo "peers: $py has no venv module (set GRAFT_PEERS_PYTHON to a Python >= 3.10 that has)" >&2
      exit 1
    fi
  fi
  echo "peers: creating $venv with $("$py" --version 2>&1)" >&2
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv"
fi

echo "peers: installing $(grep -c '^[a-zA-Z]' "$req") pinned packages from PyPI into $venv" \
     "(about 2.9 GB to download, 4.7 GB on disk)" >&2
rm -f "$stamp"
# --no-deps: requirements.txt is the whole set, pinned; nothing else comes in.
"$venv/bin/python" -m pip install --disable-pip-version-check --no-cache-dir --no-deps \
  --quiet --requirement "$req"
if ! "$venv/bin/python" -c "$imports"; then
  echo "peers: installed, but they do not import (see above)" >&2
  exit 1
fi
cp "$req" "$stamp"
"$venv/bin/python" - >&2 <<'EOF'
import ncnn, onnxruntime, openvino, torch, torchvision
print("peers: torch %s (CPU capability %s), torchvision %s, onnxruntime %s, openvino %s, "
      "ncnn %s" % (torch.__version__, torch.backends.cpu.get_cpu_capability(),
                   torchvision.__version__, onnxruntime.__version__, openvino.__version__,
                   ncnn.__version__))
EOF
echo "peers: $(du -sh "$venv" | cut -f1) in $venv" >&2
echo "$venv/bin/python"
