"""``dtype``: float32 against bfloat16 with one bucket: speed, and how far greedy answers agree.

Loads the model once per dtype (on --device), measures prefill and decode at the first
prompt length like ``buckets`` does, and answers twelve short questions greedily in both.

May import the engine, loading and ``common``.
"""

from __future__ import annotations

import statistics
from typing import Any

from ...engine import Engine, Request
from ...engine.loading import ModelSpec, load_model
from .setup import Setup, make_prompt, run_engine, user_prompt

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


def run_dtype(model: str | None, device: str, length: int, decode_tokens: int, repeats: int) -> dict:
    """Speed of each dtype, greedy agreement, and the bfloat16 / float32 ratios."""
    out: dict[str, Any] = {}
    answers: dict[str, list[list[int]]] = {}
    for dtype in ("float32", "bfloat16"):
        loaded = load_model(ModelSpec(model, device, dtype))
        engine = Engine(loaded, prefix_cache_bytes=0)
        out[dtype] = run_engine(engine, make_prompt(loaded, length), (loaded.base,), decode_tokens, repeats)
        answers[dtype] = []
        for q in AGREEMENT_QUESTIONS:
            ids = user_prompt(loaded, q)
            answers[dtype].append(engine.generate(Request(ids, (loaded.base,), max_tokens=48, prefix_cache=False)).token_ids)
    out["agreement"] = _agreement(answers["float32"], answers["bfloat16"])
    out["prefill_ratio_bf16_vs_fp32"] = out["bfloat16"]["ttft_s"] / out["float32"]["ttft_s"]
    out["decode_ratio_bf16_vs_fp32"] = out["bfloat16"]["decode_step_s"] / out["float32"]["decode_step_s"]
    return out


def run(setup: Setup) -> dict:
    return {"dtype_comparison": run_dtype(setup.model, setup.device, setup.lengths[0], setup.decode_tokens, setup.repeats)}


def print_rows(result: dict, setup: Setup) -> None:
    d = result["dtype_comparison"]
    print(
        f"bfloat16 vs float32, {setup.lengths[0]} tokens: prefill x{d['prefill_ratio_bf16_vs_fp32']:.2f}, decode step "
        f"x{d['decode_ratio_bf16_vs_fp32']:.2f}; greedy answers identical {d['agreement']['identical_answers']}"
        f"/{d['agreement']['questions']}, shared prefix {d['agreement']['mean_shared_prefix']:.0%}"
    )
