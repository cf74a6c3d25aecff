#!/usr/bin/env bash
# The kernel paths the README's test command does not take on this CPU, on the tests that can tell
# them apart (not the whole suite twice):
#   1. dtype="auto" forced to bf16 (ATTENTION_BUCKETS_CPU_DTYPE=bfloat16), as on a CPU with native
#      bf16 where the probe picks it: every test of the embedded model (-m embedded: against
#      transformers within the bf16 tolerance, the chat model, agents, the standard LangChain
#      tests, end to end), the kernel-path tests, and the server's
#      tests (a tiny model loaded with dtype="auto": server against chat model, concurrent against
#      serial, streamed against whole, cached against fresh, compared up to a near-tie). On a CPU
#      without native bf16 torch emulates it: slower, the same numerics class.
#   2. oneDNN and ATen limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2) where the
#      CPU has AVX-512: the AVX2 kernels on an AVX-512 machine, fp32 (skipped on an AVX2-only CPU,
#      where the README's command already ran them).
# PYTHON picks the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
TESTS_BF16=(tests/test_kernel_paths.py tests/test_serve.py)
TESTS_ISA=(tests/test_embedded_exactness.py tests/test_engine.py tests/test_kernel_paths.py)

echo "== bf16 forced (ATTENTION_BUCKETS_CPU_DTYPE=bfloat16)"
ATTENTION_BUCKETS_CPU_DTYPE=bfloat16 "$PY" -m pytest "${TESTS_BF16[@]}" -q -m "not slow" 
ATTENTION_BUCKETS_CPU_DTYPE=bfloat16 "$PY" -m pytest tests -q -m embedded

if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    echo "== oneDNN and ATen limited to AVX2 on this AVX-512 CPU"
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ATTENTION_BUCKETS_CPU_DTYPE=float32 \
        "$PY" -m pytest "${TESTS_ISA[@]}" -q -m "not slow" 
else
    echo "== AVX2-limited run skipped: this CPU has no AVX-512 (its own kernels are the AVX2 ones)"
fi
