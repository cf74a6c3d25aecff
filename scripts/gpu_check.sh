#!/usr/bin/env bash
# The GPU check, one command: the `gpu` tests and `bench speed` on random-weight models of real
# shapes (Llama-3.1-8B, Qwen2.5-7B config.json shipped in the package; bf16), written as a JSON
# and a Markdown report. Made for a bare GPU machine without network: it brings nothing but this
# tree and the wheels that scripts/gpu_wheels.sh prepares (no model weights), and each step has a
# time limit, so the whole run stays under 8 minutes on one H100.
#
#   bash scripts/gpu_check.sh [--out DIR] [--wheels DIR] [--cpu] [--dry-run]
#
#   --out DIR     where report.json, report.md and each run's speed.json go (default bench-out/gpu-check)
#   --wheels DIR  wheels to install offline where an import is missing (default gpu-wheels)
#   --cpu         the same steps on the CPU with the tiny shape, in seconds (CI runs this)
#   --dry-run     print what would be carried and run, run nothing
#
# PYTHON picks the interpreter (default: .venv/bin/python, else python3); it needs torch.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=bench-out/gpu-check
WHEELS=gpu-wheels
MODE=gpu
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --cpu) MODE=cpu; shift ;;
        --dry-run) DRY=1; shift ;;
        *) echo "gpu_check: unknown argument $1 (use --out DIR, --wheels DIR, --cpu, --dry-run)" >&2; exit 2 ;;
    esac
done
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# name | time limit (s) | command   -- sized for one H100 (80 GB): 60 + 3 x 2 x ~65 + 5 s < 8 min
SPEED=("$PY" -m langchain_attention_buckets.cli bench speed --no-progress --repeats 1)
if [ "$MODE" = gpu ]; then
    SHAPES=(llama-3.1-8b qwen2.5-7b)
    DEV=(--device cuda --dtype bfloat16)
    GRID=(--buckets 1,2,4,6,8 --lengths 1024,4096,16384 --decode-tokens 8)
    SEQ=(--buckets 6 --lengths 4096 --decode-tokens 8)
    AGENT=(--lengths 3072)
    LIMITS=(60 100 45 45)
else
    SHAPES=(tiny)
    DEV=(--device cpu --dtype float32)
    GRID=(--buckets 1,2 --lengths 16,48 --decode-tokens 3)
    SEQ=(--buckets 6 --lengths 32 --decode-tokens 3)
    AGENT=(--lengths 48)
    LIMITS=(150 150 150 150)
fi
TEST_CMD=("$PY" -m pytest tests/test_gpu.py -m "gpu and not embedded" -q -p no:cacheprovider --junitxml "$OUT/gpu-tests.xml")

plan() {
    echo "gpu_check ($MODE): carries this tree (package, tests, scripts; $(du -sh --exclude=.git --exclude=.venv --exclude=bench-out --exclude="$WHEELS" . 2>/dev/null | cut -f1))"
    if [ -d "$WHEELS" ]; then
        echo "  and $WHEELS/: $(ls "$WHEELS"/*.whl 2>/dev/null | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1) (installed offline where an import is missing)"
    else
        echo "  and no wheels ($WHEELS/ absent: the machine's python must have the package's requirements; see scripts/gpu_wheels.sh)"
    fi
    echo "runs, writing to $OUT:"
    echo "  [${LIMITS[0]}s] ${TEST_CMD[*]}"
    for shape in "${SHAPES[@]}"; do
        echo "  [${LIMITS[1]}s] ${SPEED[*]} --shape $shape ${DEV[*]} ${GRID[*]} --parts buckets,hf --output $OUT/$shape"
        echo "  [${LIMITS[2]}s] ${SPEED[*]} --shape $shape ${DEV[*]} ${SEQ[*]} --parts buckets,sequential --output $OUT/$shape-sequential"
        echo "  [${LIMITS[3]}s] ${SPEED[*]} --shape $shape ${DEV[*]} ${AGENT[*]} --parts prefix --output $OUT/$shape-agent"
    done
    echo "  $PY -m langchain_attention_buckets.bench.speed.report $OUT   (report.json, report.md)"
}

if [ "$DRY" = 1 ]; then
    plan
    exit 0
fi
mkdir -p "$OUT"
: > "$OUT/steps.tsv"
plan | tee "$OUT/plan.txt"

if ! "$PY" -c "import torch, numpy" 2>/dev/null; then
    echo "gpu_check: $PY has no torch or numpy; they are not carried (use a python with a CUDA build of torch)" >&2
fi
if ! "$PY" -c "import transformers, langchain_core, pytest" 2>/dev/null; then
    if [ -d "$WHEELS" ]; then
        echo "gpu_check: installing the wheels in $WHEELS offline"
        # --no-deps: the folder holds the closure already, and torch and numpy come with the machine
        "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl || echo "gpu_check: wheel install failed" >&2
    else
        echo "gpu_check: transformers / langchain-core / pytest missing and no $WHEELS/ (scripts/gpu_wheels.sh)" >&2
    fi
fi

FAILED=0
step() {  # step NAME LIMIT COMMAND...: run with a time limit, log status and seconds
    local name=$1 limit=$2 start status
    shift 2
    start=$(date +%s)
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    status=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - start ))" >> "$OUT/steps.tsv"
    if [ "$status" != 0 ]; then
        echo "gpu_check: step $name ended with status $status" >&2
        FAILED=1
    fi
}

if [ "$MODE" = gpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true
fi
step gpu-tests "${LIMITS[0]}" "${TEST_CMD[@]}"
for shape in "${SHAPES[@]}"; do
    step "$shape" "${LIMITS[1]}" "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${GRID[@]}" --parts buckets,hf --output "$OUT/$shape"
    step "$shape-sequential" "${LIMITS[2]}" "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${SEQ[@]}" --parts buckets,sequential \
        --output "$OUT/$shape-sequential"
    step "$shape-agent" "${LIMITS[3]}" "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${AGENT[@]}" --parts prefix --output "$OUT/$shape-agent"
done
"$PY" -m langchain_attention_buckets.bench.speed.report "$OUT" || FAILED=1
exit "$FAILED"
