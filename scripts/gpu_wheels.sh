#!/usr/bin/env bash
# Lists, and with --download fetches, the wheels scripts/gpu_check.sh needs on a bare GPU machine
# (Python 3.12, manylinux x86_64, no network) beyond torch and numpy: what the engine, `bench speed`
# and the `gpu` tests import, with everything those need (the closure, so that the check can install
# them with --no-deps into a folder of their own that goes first on the path: the versions tested
# here, whatever the machine's own are). Not what the GPU check never imports (sentence-transformers and its embedding
# model, matplotlib, scipy, xgrammar's grammar compiler, gguf, langgraph, the server): they would not fit in the
# 64 MiB a GPU machine can be handed. Wheels are not committed: they go to gpu-wheels/ (ignored).
#
#   bash scripts/gpu_wheels.sh              # print the requirement list
#   bash scripts/gpu_wheels.sh --download   # pip download them into gpu-wheels/ and print the size
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${GPU_WHEELS:-gpu-wheels}
PY=${PYTHON:-.venv/bin/python}
LIMIT_MIB=${GPU_WHEELS_LIMIT_MIB:-60}
TARGET_PY=${GPU_WHEELS_PYTHON:-3.12}  # the GPU machine's Python (another one: to rehearse the install here)
# the package's requirements that the GPU check imports, and the test runner (torch is on the machine)
# (found by importing the CLI, the shapes, the report and tests/conftest.py and listing the
# distributions that came in; accelerate for the device_map tests)
REQS=(
    "transformers>=5.0,<6" "pydantic>=2.7" "langchain-core>=1.0,<2" "tqdm>=4.60" "psutil"
    "pytest>=8" "pytest-asyncio>=0.23" "pytest-socket>=0.7" "pytest-timeout>=2.3"
)
# torch, numpy and what only torch needs are on the machine, and a second copy would break torch:
# never carried. Small pure-Python packages torch shares with the others (typing_extensions,
# filelock, fsspec, jinja2) are carried: pydantic or huggingface_hub may need newer ones than the
# machine's. Measured: 62 wheels, 43 MiB (transformers 5.25, tokenizers, pydantic-core, langsmith, ...).
SKIP='^(torch|triton|nvidia_|sympy|networkx|mpmath|setuptools|numpy)-'
# pip matches platform tags exactly: every manylinux level a wheel may carry up to the machine's glibc
PLATFORMS=(--platform any --platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for v in 5 12 17 24 27 28 31 34 35; do PLATFORMS+=(--platform "manylinux_2_${v}_x86_64"); done

if [ "${1:-}" != "--download" ]; then
    printf '%s\n' "${REQS[@]}" "accelerate>=1.0"
    exit 0
fi
mkdir -p "$DEST"
"$PY" -m pip download --progress-bar off --dest "$DEST" --only-binary=:all: --python-version "$TARGET_PY" \
    --implementation cp "${PLATFORMS[@]}" "${REQS[@]}"
# accelerate requires torch, which the machine has: fetched alone, else pip would fetch torch too
"$PY" -m pip download --progress-bar off --dest "$DEST" --only-binary=:all: --python-version "$TARGET_PY" \
    --implementation cp --platform any --no-deps "accelerate>=1.0"
for f in "$DEST"/*.whl; do
    if basename "$f" | grep -qiE "$SKIP"; then rm -f "$f"; fi
done
size=$(du -sm "$DEST" | cut -f1)
echo "gpu_wheels: $(ls "$DEST"/*.whl | wc -l) wheels, ${size} MiB in $DEST"
ls -S "$DEST" | head -8 | sed 's/^/  largest: /'
if [ "$size" -gt "$LIMIT_MIB" ]; then
    echo "gpu_wheels: ${size} MiB is over the ${LIMIT_MIB} MiB that may be carried; drop the largest unneeded ones" >&2
    exit 1
fi
