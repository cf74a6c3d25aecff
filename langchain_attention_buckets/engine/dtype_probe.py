"""Which dtype ``dtype="auto"`` runs on a CPU with native bf16: fp32 or bf16, chosen by timing.

On a CPU with AVX512-BF16 or AMX, bf16 may or may not beat fp32 with its oneDNN-packed
linear layers: it depends on the chip, the thread count and the torch build (on an AVX-512
EPYC, bf16 prefill took x0.62 and a decode step x0.90 of the fp32 time; docs/performance.md).
So the choice is measured on the machine itself, once: a linear layer of a typical width
timed at a decode shape (6 rows, one per bucket) and at a prefill shape (512 rows), in each
dtype, each on the kernels the engine would use (``packed``: oneDNN-packed where that is
supported and pays, else torch's own). bf16 is chosen when its total is below
``BF16_MARGIN`` times fp32's: bf16 also rounds greedy picks differently from fp32 (7 of 12
answers identical on the embedded model), so it must be clearly faster to be the default.

The result is kept in ``cpu-dtype.json`` under the cache folder, keyed by the CPU's model
name and flags, torch's version, the thread count and the ISA limits (``ONEDNN_MAX_CPU_ISA``,
``ATEN_CPU_CAPABILITY``); on a CPU with native bf16 the probe takes well under a second.
May import torch and ``packed`` only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import torch

from .packed import best_time

BF16_MARGIN = 0.9
PROBE_FEATURES = 2048  # a square weight of this width (between a 135M and an 8B model's)
PROBE_ROWS = (6, 512)  # a decode step with six buckets; a prefill chunk
_REPEATS = 4


def machine_key() -> str:
    """What the measurement depends on: CPU model and flags, torch version, threads, ISA limits."""
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.partition(":")[2].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.partition(":")[2].strip()
    except OSError:
        pass
    # the ISA limits change which kernels run, so a run under them is another machine
    limits = "|".join(os.environ.get(k, "") for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"))
    text = f"{model}|{flags}|{torch.__version__}|{torch.get_num_threads()}|{limits}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def time_linear(dtype: torch.dtype, features: int | None = None, rows=PROBE_ROWS) -> dict:
    """Seconds of one ``features x features`` linear layer per row count, on the kernels the engine
    would use for ``dtype`` (``kernel``: 'onednn-packed' or 'aten')."""
    from . import packed

    features = features or PROBE_FEATURES
    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(features, features, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(features, features, generator=gen) / features**0.5)
    lin = lin.to(dtype)
    xs = {r: torch.randn(r, features, generator=gen).to(dtype) for r in rows}
    with torch.inference_mode():
        kernels = {"aten": lin}
        fast = packed.packed_linear(lin)
        if fast is not None:
            kernels["onednn-packed"] = fast
        timed = {name: {r: best_time(fn, xs[r], _REPEATS) for r in rows} for name, fn in kernels.items()}
    # the kernel the engine would run: fp32 packed wherever it exists; bf16 packed where it pays
    if dtype == torch.float32 or "onednn-packed" not in timed:
        kernel = "onednn-packed" if "onednn-packed" in timed else "aten"
    else:
        kernel = min(timed, key=lambda name: sum(timed[name].values()))
    times = timed[kernel]
    return {"kernel": kernel, "seconds": {str(r): t for r, t in times.items()}, "total": sum(times.values())}


def probe() -> dict:
    """Both dtypes timed, and the choice: ``{"float32": ..., "bfloat16": ..., "choice": name}``."""
    fp32, bf16 = time_linear(torch.float32), time_linear(torch.bfloat16)
    choice = "bfloat16" if bf16["total"] < BF16_MARGIN * fp32["total"] else "float32"
    return {"float32": fp32, "bfloat16": bf16, "choice": choice, "margin": BF16_MARGIN}


@functools.lru_cache(maxsize=None)
def measured_choice(folder: Path) -> torch.dtype:
    """The dtype the probe chose on this machine, measured once and kept in ``folder``."""
    key = machine_key()
    path = Path(folder) / "cpu-dtype.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = known.get(key)
    if not isinstance(entry, dict) or entry.get("choice") not in ("float32", "bfloat16"):
        entry = probe()
        known[key] = entry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=2))
            tmp.replace(path)
        except OSError:  # a read-only cache folder: measure again next process
            pass
    return torch.bfloat16 if entry["choice"] == "bfloat16" else torch.float32
