"""``dtype``: float32 against bfloat16 with one bucket: speed, and how far greedy answers agree.

Loads the model once per dtype (on --device), measures prefill and decode at the first
prompt length like ``buckets`` does, and answers twelve short questions greedily in both.
On CPU it also reports the instruction sets torch and oneDNN use (``cpu_report``), which
linear kernels each dtype ran (oneDNN-packed or ATen), and what ``dtype="auto"``'s timing
probe (``engine.dtype_probe``) measures and chooses on this machine.

May import the engine, loading and ``common``.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import torch

from ...engine import Engine, Request
from ...engine import packed as packed_layers
from ...engine.loading import CPU_DTYPE_ENV, ModelSpec, cpu_default_dtype, cpu_flags, load_model
from .setup import Setup, bases_for, make_prompt, run_engine, user_prompt

AGREEMENT_QUESTIONS = [
    "What is the capital of France?",
    "Give me three tips for a good night's sleep.",
    "Explain what a prime number is.",
    "Write a haiku about autumn.",
    "How do I boil an egg?",
    "What is the difference between weather and climate?",
    "Name two planets of the solar system and one fact about each.",
    "Why is the sky blue?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "What does a database index do?",
    "List the days of the week.",
    "How many legs does a spider have?",
]


def _agreement(a_answers: list[list[int]], b_answers: list[list[int]]) -> dict:
    """How many answers are identical, and the mean share of each answer before they part."""
    same, prefix = 0, []
    for a, b in zip(a_answers, b_answers):
        same += a == b
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        prefix.append(k / max(1, len(a)))
    return {
        "identical_answers": same,
        "questions": len(AGREEMENT_QUESTIONS),
        "mean_shared_prefix": float(statistics.mean(prefix)),
    }


_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "avx_ne_convert")


def cpu_report(probe: bool = True) -> dict:
    """What this CPU offers and what torch and oneDNN make of it; with ``probe``, the timing
    probe behind ``dtype="auto"`` (measured again here, not read from its cache file)."""
    flags = cpu_flags()
    out: dict[str, Any] = {
        "flags": [f for f in _FLAGS if f in flags],
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bf16": packed_layers.supports(torch.bfloat16),
        "env": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", CPU_DTYPE_ENV) if k in os.environ},
        "auto_dtype": str(cpu_default_dtype()).replace("torch.", ""),
    }
    if probe:
        from ...engine.dtype_probe import probe as run_probe

        out["probe"] = run_probe()
    return out


def dtype_probe_features() -> int:
    from ...engine import dtype_probe

    return dtype_probe.PROBE_FEATURES


def _kernels(engine: Engine) -> str:
    if engine.loaded.device.type != "cpu":
        return f"{engine.loaded.device.type} (torch's own)"
    return "onednn-packed linear" if engine.packed_weights is not None else "aten linear"


GRID_BUCKETS = (1, 6)


def run_dtype(model: str | None, device: str, length: int, decode_tokens: int, repeats: int,
              more_lengths: tuple[int, ...] = ()) -> dict:
    """Speed of each dtype, greedy agreement, and the bfloat16 / float32 ratios (one bucket at
    ``length``); with ``more_lengths``, also a grid over those lengths and N = 1 and 6 (``grid``)."""
    out: dict[str, Any] = {}
    answers: dict[str, list[list[int]]] = {}
    kernels: dict[str, str] = {}
    grid: dict[tuple[int, int], dict] = {}
    for dtype in ("float32", "bfloat16"):
        loaded = load_model(ModelSpec(model, device, dtype))
        engine = Engine(loaded, prefix_cache_bytes=0)
        kernels[dtype] = _kernels(engine)
        out[dtype] = run_engine(engine, make_prompt(loaded, length), (loaded.base,), decode_tokens, repeats)
        for more in more_lengths:
            for n in GRID_BUCKETS:
                point = run_engine(engine, make_prompt(loaded, more), bases_for(n, loaded.base), decode_tokens, repeats)
                grid.setdefault((more, n), {})[dtype] = point
        answers[dtype] = []
        for q in AGREEMENT_QUESTIONS:
            ids = user_prompt(loaded, q)
            answers[dtype].append(engine.generate(Request(ids, (loaded.base,), max_tokens=48, prefix_cache=False)).token_ids)
    out["kernels"] = kernels
    out["grid"] = [
        {"length": ln, "n": n, "ttft_ratio": p["bfloat16"]["ttft_s"] / p["float32"]["ttft_s"],
         "decode_step_ratio": p["bfloat16"]["decode_step_s"] / p["float32"]["decode_step_s"],
         **{f"{dt}_{k}": p[dt][k] for dt in ("float32", "bfloat16") for k in ("ttft_s", "decode_step_s")}}
        for (ln, n), p in grid.items()
    ]
    if loaded.device.type == "cpu":
        out["cpu"] = cpu_report()
    out["agreement"] = _agreement(answers["float32"], answers["bfloat16"])
    out["prefill_ratio_bf16_vs_fp32"] = out["bfloat16"]["ttft_s"] / out["float32"]["ttft_s"]
    out["decode_ratio_bf16_vs_fp32"] = out["bfloat16"]["decode_step_s"] / out["float32"]["decode_step_s"]
    return out


def run(setup: Setup) -> dict:
    # one length: one bucket there; several: also every length at N = 1 and 6 (``grid``)
    first, more = setup.lengths[0], (tuple(setup.lengths) if len(setup.lengths) > 1 else ())
    return {"dtype_comparison": run_dtype(setup.model, setup.device, first, setup.decode_tokens, setup.repeats, more)}


def print_rows(result: dict, setup: Setup) -> None:
    d = result["dtype_comparison"]
    if "cpu" in d:
        c = d["cpu"]
        env = "".join(f", {k}={v}" for k, v in c["env"].items())
        print(f"CPU: ATen {c['aten_cpu_capability']}, flags {' '.join(c['flags']) or '-'}, oneDNN bf16 "
              f"{'yes' if c['onednn_bf16'] else 'no'}{env}; dtype='auto' -> {c['auto_dtype']}")
        if "probe" in c:
            pr = c["probe"]
            f = dtype_probe_features()
            print(f"timing probe (a {f}x{f} linear at 6 and 512 rows): float32 {pr['float32']['total'] * 1e3:.1f} ms "
                  f"({pr['float32']['kernel']}), bfloat16 {pr['bfloat16']['total'] * 1e3:.1f} ms "
                  f"({pr['bfloat16']['kernel']}) -> {pr['choice']}")
    print(f"kernels that ran: float32 {d['kernels']['float32']}, bfloat16 {d['kernels']['bfloat16']}")
    print(
        f"bfloat16 vs float32, {setup.lengths[0]} tokens: prefill x{d['prefill_ratio_bf16_vs_fp32']:.2f}, decode step "
        f"x{d['decode_ratio_bf16_vs_fp32']:.2f}; greedy answers identical {d['agreement']['identical_answers']}"
        f"/{d['agreement']['questions']}, shared prefix {d['agreement']['mean_shared_prefix']:.0%}"
    )
    for row in d.get("grid", []):
        print(f"  {row['length']} tokens, N={row['n']}: bf16 / fp32 prefill x{row['ttft_ratio']:.2f}, "
              f"decode step x{row['decode_step_ratio']:.2f}")
