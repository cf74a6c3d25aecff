#!/usr/bin/env bash
# The GPU check, one command: the `gpu` tests and `bench speed` on random-weight models of real
# shapes (Llama-3.1-8B, Qwen2.5-7B config.json shipped in the package; bf16), written as a JSON
# and a Markdown report. Made for a bare GPU machine without network: it brings nothing but this
# tree and the wheels that scripts/gpu_wheels.sh prepares (no model weights). The whole run has a
# time budget (default 450 s: under 8 minutes on one H100 with room to spare); each step has its
# own limit within what is left, each `bench speed` skips the sizes it has no time left for, and
# the report is rewritten after every step, so a run stopped from outside still leaves one.
#
#   bash scripts/gpu_check.sh [--out DIR] [--bundle DIR] [--wheels DIR] [--budget SECONDS] [--cpu] [--dry-run]
#
#   --out DIR         where report.json, report.md, each step's log and speed.json go (default bench-out/gpu-check)
#   --bundle DIR      also keep three files there, rewritten after every step: report.json, report.md and
#                     gpu-check.tar.gz (all of --out), for a machine that hands back only a few files
#   --wheels DIR      wheels installed offline (into $GPU_CHECK_SITE) when an import is missing (default gpu-wheels)
#   --budget SECONDS  the whole run's time, from the start (default 450; --cpu: 900)
#   --cpu             the same steps on the CPU with the tiny shape, in seconds (CI runs this)
#   --dry-run         print what would be carried, installed and run; run nothing
#
# PYTHON picks the interpreter (default: .venv/bin/python, else python3); it needs torch (with CUDA
# unless --cpu). GPU_CHECK_SITE: where the wheels are installed (default /tmp/gpu-check-site).
# Exit status: 0 all steps passed; 1 a step failed or was skipped; 3 the machine lacks what it needs
# (said on stderr and in DIR/preflight.log, before anything runs).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
OUT=bench-out/gpu-check
WHEELS=gpu-wheels
SITE=${GPU_CHECK_SITE:-/tmp/gpu-check-site}
BUNDLE=
MODE=gpu
DRY=0
BUDGET=
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --bundle) BUNDLE=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --cpu) MODE=cpu; shift ;;
        --dry-run) DRY=1; shift ;;
        *) echo "gpu_check: unknown argument $1 (use --out DIR, --bundle DIR, --wheels DIR, --budget SECONDS, --cpu, --dry-run)" >&2
           exit 2 ;;
    esac
done
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
# only the test plugins this run names: a machine's own (older or newer) plugins cannot break pytest here
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1

# Sizes, for one H100 (80 GB, bf16 ~400 TFLOP/s usable). An 8B shape costs ~1.6e10 FLOP per token
# and row (attention adds ~30% at 16k), and every point runs twice (warm-up, then measured):
#   grid: N = 1+2+4+6+8 rows x (1k + 4k + 16k) tokens ~ 0.44M row-tokens, x2 -> ~35 s of prefill,
#         decode steps ~5 s, `generate` at 3 lengths ~10 s, start (imports, random init) ~15 s: ~70 s;
#   sequential: 6 x 4k, batched and one base at a time, x2 -> ~5 s + start;
#   agent: 6 rows x ~3.1k tokens, 4 prefills -> ~4 s + start.
# Peak memory: 16k tokens x 8 rows: weights 16 GB + KV 16 GiB (128 KiB per token and row) + one
# prefill chunk's activations (~3 GB) -- fits; a point that does not is recorded as out of memory.
# Limits are about twice the estimates; the budget guard trims the last steps if time runs short.
SPEED=("$PY" -m langchain_attention_buckets.cli bench speed --no-progress --repeats 1)
if [ "$MODE" = gpu ]; then
    SHAPES=(llama-3.1-8b qwen2.5-7b)
    DEV=(--device cuda --dtype bfloat16)
    GRID=(--buckets 1,2,4,6,8 --lengths 1024,4096,16384 --decode-tokens 8)
    SEQ_LEN=4096
    SEQ=(--buckets 6 --lengths "$SEQ_LEN" --decode-tokens 8)
    AGENT=(--lengths 3072)
    LIMITS=(60 120 45 40 45 60)  # tests, grid, sequential, agent, SDPA switch, compiled decode (seconds)
    SDPA=flash+efficient  # a cached tail (every prefill chunk after the first) without a mask tensor
    SDPA_LEN=16384
    COMPILE=default  # inductor without CUDA graphs: the KV length grows every step (see docs/performance.md)
    BUDGET=${BUDGET:-450}
else
    SHAPES=(tiny)
    DEV=(--device cpu --dtype float32)
    GRID=(--buckets 1,2 --lengths 16,48 --decode-tokens 3)
    SEQ_LEN=32
    SEQ=(--buckets 6 --lengths "$SEQ_LEN" --decode-tokens 3)
    AGENT=(--lengths 48)
    LIMITS=(150 150 150 150 150 150)
    SDPA=math  # flash and memory-efficient attention are CUDA kernels
    SDPA_LEN=48
    COMPILE=eager  # dynamo's bookkeeping only: no compiler needed, seconds
    BUDGET=${BUDGET:-900}
fi
RESERVE=10     # seconds kept for the last report
MIN_STEP=20    # a step with less than this left is skipped, not started
MARGIN=15      # a bench step's own --time-budget stays this far inside its limit (imports, writing out)
# -p: the plugins the tests need, loaded by name; --timeout: a test that hangs fails alone
TEST_CMD=("$PY" -m pytest tests/test_gpu.py -p pytest_socket -p pytest_timeout --timeout 40 -m "gpu and not embedded" -q
          -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --junitxml "$OUT/gpu-tests.xml")
# two switches of engine.fastpaths (off by default until measured), last: they run in whatever time
# the budget has left, against the same points of the first shape's grid: SDPA restricted to the fast
# backends (prefill at the longest length), and the decode step compiled
SDPA_RUN=(env "ATTENTION_BUCKETS_FAST_PATHS=sdpa=$SDPA" "${SPEED[@]}" --shape "${SHAPES[0]}" "${DEV[@]}"
          --buckets 1,6 --lengths "$SDPA_LEN" --decode-tokens 8 --parts buckets)
COMPILED=(env "ATTENTION_BUCKETS_FAST_PATHS=compile=$COMPILE" "${SPEED[@]}" --shape "${SHAPES[0]}" "${DEV[@]}"
          --buckets 1,6 --lengths "$SEQ_LEN" --decode-tokens 16 --parts buckets)
REPORT=("$PY" langchain_attention_buckets/bench/speed/report.py "$OUT")  # standard library only: quick
NEEDS="import torch, numpy, transformers, tokenizers, safetensors, huggingface_hub, pydantic, langchain_core, tqdm, psutil, pytest, pytest_socket, pytest_timeout, accelerate"

q() {  # a command as it can be pasted (arguments with spaces quoted)
    local a out=
    for a in "$@"; do case $a in *[[:space:]]*) out+="'$a' " ;; *) out+="$a " ;; esac; done
    printf '%s' "${out% }"
}
plan() {
    local tree
    if git rev-parse --git-dir >/dev/null 2>&1; then  # what a copy of the work tree takes: files git does not ignore
        tree="$(git ls-files -z -co --exclude-standard | du -ch --files0-from=- 2>/dev/null | tail -1 | cut -f1) in files git does not ignore"
    else
        tree=$(du -sh --exclude=.venv --exclude=bench-out --exclude="$WHEELS" . 2>/dev/null | cut -f1)
    fi
    echo "gpu_check ($MODE, budget ${BUDGET}s): carries this tree (package, tests, scripts; $tree)"
    if [ -d "$WHEELS" ]; then
        echo "  and $WHEELS/: $(ls "$WHEELS"/*.whl 2>/dev/null | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1)"
        echo "  installed only if an import is missing: $PY -m pip install --no-index --no-deps --target $SITE $WHEELS/*.whl"
        echo "  (no network; $SITE goes first on PYTHONPATH)"
    else
        echo "  and no wheels ($WHEELS/ absent: the machine's python must have the package's requirements; see scripts/gpu_wheels.sh)"
    fi
    echo "checks first: $NEEDS$([ "$MODE" = gpu ] && echo "; torch.cuda.is_available()")"
    echo "runs, writing to $OUT (each [limit], within the budget; the report after every step):"
    echo "  [${LIMITS[0]}s] $(q "${TEST_CMD[@]}")"
    for shape in "${SHAPES[@]}"; do
        echo "  [${LIMITS[1]}s] $(q "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${GRID[@]}" --parts buckets,hf --output "$OUT/$shape")"
        echo "  [${LIMITS[2]}s] $(q "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${SEQ[@]}" --parts buckets,sequential --output "$OUT/$shape-sequential")"
        echo "  [${LIMITS[3]}s] $(q "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${AGENT[@]}" --parts prefix --output "$OUT/$shape-agent")"
    done
    echo "  [${LIMITS[4]}s] $(q "${SDPA_RUN[@]}" --output "$OUT/${SHAPES[0]}-sdpa")   (only with time left)"
    echo "  [${LIMITS[5]}s] $(q "${COMPILED[@]}" --output "$OUT/${SHAPES[0]}-compiled")   (only with time left)"
    echo "  $(q "${REPORT[@]}")  (report.json, report.md)${BUNDLE:+, then into $BUNDLE: report.json, report.md, gpu-check.tar.gz}"
    echo "  (each bench step gets --time-budget = its limit - ${MARGIN}s: sizes it has no time for are listed as skipped)"
}

if [ "$DRY" = 1 ]; then
    plan
    exit 0
fi
mkdir -p "$OUT"
: > "$OUT/steps.tsv"
plan | tee "$OUT/plan.txt"

report() {  # the report from what is there now, and the bundle
    local status=0
    "${REPORT[@]}" || status=1
    if [ -n "$BUNDLE" ]; then
        mkdir -p "$BUNDLE"
        cp "$OUT/report.json" "$OUT/report.md" "$BUNDLE/" 2>/dev/null
        tar czf "$BUNDLE/.gpu-check.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" && \
            mv "$BUNDLE/.gpu-check.tar.gz" "$BUNDLE/gpu-check.tar.gz"
    fi
    return $status
}

# ---- preflight: fail fast, with the reason, when the machine lacks something --------------------
fail() {
    echo "gpu_check: $*" | tee -a "$OUT/preflight.log" >&2
    report >/dev/null 2>&1
    exit 3
}
command -v "$PY" >/dev/null 2>&1 || [ -x "$PY" ] || fail "no python at $PY (set PYTHON)"
"$PY" -c "import torch" 2>>"$OUT/preflight.log" || fail "$PY cannot import torch; torch is not carried (use a python with a CUDA build of torch)"
if ! "$PY" -c "$NEEDS" 2>>"$OUT/preflight.log"; then
    [ -d "$WHEELS" ] || fail "an import is missing (see $OUT/preflight.log) and there is no $WHEELS/ (scripts/gpu_wheels.sh --download)"
    echo "gpu_check: installing the wheels in $WHEELS offline into $SITE"
    # --no-deps: the folder holds the closure already, and torch and numpy come with the machine
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
        --upgrade --target "$SITE" "$WHEELS"/*.whl >>"$OUT/preflight.log" 2>&1 || fail "the wheel install failed (see $OUT/preflight.log)"
    export PYTHONPATH="$PWD:$SITE${PYTHONPATH#"$PWD"}"
    "$PY" -c "$NEEDS" 2>>"$OUT/preflight.log" || fail "still missing after installing $WHEELS/ (see $OUT/preflight.log)"
fi
"$PY" - "$MODE" "$OUT/environment.json" <<'PYCODE' 2>>"$OUT/preflight.log" || fail "$([ "$MODE" = gpu ] && echo "torch sees no CUDA device" || echo "the environment check failed") (see $OUT/preflight.log)"
import json, platform, sys
import torch, transformers
mode, path = sys.argv[1], sys.argv[2]
env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
       "transformers": transformers.__version__, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    free, total = torch.cuda.mem_get_info()
    env.update(gpu=torch.cuda.get_device_name(), gpu_memory_total=total, gpu_memory_free=free,
               bf16=torch.cuda.is_bf16_supported(), capability=".".join(map(str, torch.cuda.get_device_capability())))
open(path, "w").write(json.dumps(env, indent=2))
print("gpu_check:", ", ".join(f"{k} {v}" for k, v in env.items()))
sys.exit(0 if mode == "cpu" or env["cuda_available"] else 1)
PYCODE

# ---- the steps ---------------------------------------------------------------------------------
FAILED=0
left() { echo $(( BUDGET - ($(date +%s) - T0) - RESERVE )); }
step() {  # step NAME LIMIT [--bench] COMMAND...: run within min(LIMIT, time left); log status and seconds
    local name=$1 limit=$2 bench=0 start status have
    shift 2
    if [ "$1" = --bench ]; then bench=1; shift; fi
    have=$(left)
    [ "$have" -lt "$limit" ] && limit=$have
    if [ "$limit" -lt "$MIN_STEP" ]; then
        echo "== $name skipped: ${have}s of the ${BUDGET}s budget left"
        printf '%s\tskipped\t0\tbudget spent\n' "$name" >> "$OUT/steps.tsv"
        FAILED=1
        return
    fi
    if [ "$bench" = 1 ]; then set -- "$@" --time-budget $(( limit - MARGIN )); fi
    start=$(date +%s)
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    status=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - start ))" \
        "$([ "$status" = 124 ] || [ "$status" = 137 ] && echo "stopped at its ${limit}s limit")" >> "$OUT/steps.tsv"
    if [ "$status" != 0 ]; then
        echo "gpu_check: step $name ended with status $status" >&2
        FAILED=1
    fi
    report >/dev/null || true
}

if [ "$MODE" = gpu ]; then
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true
fi
step gpu-tests "${LIMITS[0]}" "${TEST_CMD[@]}"
for shape in "${SHAPES[@]}"; do
    step "$shape" "${LIMITS[1]}" --bench "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${GRID[@]}" --parts buckets,hf \
        --output "$OUT/$shape"
    step "$shape-sequential" "${LIMITS[2]}" --bench "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${SEQ[@]}" \
        --parts buckets,sequential --output "$OUT/$shape-sequential"
    step "$shape-agent" "${LIMITS[3]}" --bench "${SPEED[@]}" --shape "$shape" "${DEV[@]}" "${AGENT[@]}" --parts prefix \
        --output "$OUT/$shape-agent"
done
step "${SHAPES[0]}-sdpa" "${LIMITS[4]}" --bench "${SDPA_RUN[@]}" --output "$OUT/${SHAPES[0]}-sdpa"
step "${SHAPES[0]}-compiled" "${LIMITS[5]}" --bench "${COMPILED[@]}" --output "$OUT/${SHAPES[0]}-compiled"
report || FAILED=1
echo "gpu_check: $(( $(date +%s) - T0 ))s in all (budget ${BUDGET}s)"
exit "$FAILED"
