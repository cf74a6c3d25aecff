"""How tests compare two computations of the same thing, and the tolerance each one states.

Two computations of the same logits (the engine and transformers, cached and fresh, batched
and alone, speculative and plain, packed and not, bf16 and fp32) agree up to rounding, and
how far they may differ depends on the dtype and on which CPU kernels ran (AVX2 or AVX-512,
oneDNN or ATen). Greedy picks agree wherever the two best candidates are further apart than
that; at a near-tie either pick is right. So a test:

- compares logits within a stated tolerance (``LOGIT_TOLERANCE``, by dtype);
- compares greedy tokens position by position and, at the first position where they part,
  requires the reference's own logits to rate the two picks within that tolerance of each
  other (``assert_greedy_agrees``); after that the two continuations have different inputs
  and are not compared;
- or, for ``deterministic=True`` requests, compares bit for bit (``EXACT``): the engine
  promises equal rounding there, on every CPU.

The tolerances are bounds on |a - b| of two logit vectors of the same positions, measured
on AVX2 (fp32 and emulated bf16) with room for other kernels: fp32 differences are summation
order (~1e-5 on the tiny models, ~1e-4 on the embedded model's logits), bf16 ones the 8-bit
mantissa of every product (up to 0.75 on the embedded model's logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from langchain_attention_buckets.engine import forward_buckets
from langchain_attention_buckets.engine.merge import merge

EXACT = 0.0
# the tiny random models of the fast tier (logits of order 1)
TINY_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 0.1}
# the embedded SmolLM2-135M (logits of order 10-30; in bf16 they are rounded to 0.125 there).
# Measured on AVX2 against transformers over the steps where the answers agree: fp32 1e-4,
# bf16 (emulated) 0.375 and 0.75 on the two exactness questions.
LOGIT_TOLERANCE = {torch.float32: 5e-3, torch.bfloat16: 1.5}


def reference_logits(model, prompt: Sequence[int], tokens: Sequence[int], bases: Sequence[float],
                     rule: str = "confidence") -> torch.Tensor:
    """(len(tokens), vocab): the merged logits that pick each of ``tokens`` after ``prompt``,
    recomputed without a cache in one teacher-forced pass (row i predicts tokens[i])."""
    ids = list(prompt) + list(tokens)
    rows = forward_buckets(model, ids[:-1] if tokens else ids, bases)[:, len(prompt) - 1 :]  # (n, T, V)
    return torch.stack([merge(rows[:, t][None], rule)[0] for t in range(rows.shape[1])])


def first_difference(got: Sequence[int], want: Sequence[int]) -> int | None:
    """The first position where the two token lists differ (over the shorter one), or None."""
    return next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)


def assert_greedy_agrees(got: Sequence[int], want: Sequence[int], logits: torch.Tensor, tol: float,
                         what: str = "", same_length: bool = False) -> int | None:
    """``got`` equals ``want`` up to the first near-tie, where the reference (``logits[i]``: the
    logits that picked ``want[i]``) rates the two picks within ``tol``; returns where they part.

    With ``same_length``, token lists that agree throughout must also be equally long (a
    shorter one is otherwise taken to have stopped at its own end of text or token limit).
    """
    got, want = list(got), list(want)
    i = first_difference(got, want)
    if i is None:
        if same_length:
            assert len(got) == len(want), f"{what}: {len(got)} tokens against {len(want)}, equal so far"
        return None
    step = logits[i].float()
    gap = float(step[want[i]] - step[got[i]])
    assert gap <= tol, (
        f"{what}: token {i} is {got[i]} against {want[i]}, but the reference rates them {gap:.3g} apart, "
        f"more than the tolerance {tol:g} (not a near-tie)"
    )
    return i


def assert_close_logits(got: torch.Tensor, want: torch.Tensor, tol: float, what: str = "") -> None:
    """max |got - want| within ``tol``."""
    diff = (got.float() - want.float().to(got.device)).abs().max().item()
    assert diff <= tol, f"{what}: logits differ by {diff:.3g}, more than the tolerance {tol:g}"
