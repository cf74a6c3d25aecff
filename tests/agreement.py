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
- compares seeded samples the same way (``assert_sampled_agrees``): the engine draws one
  uniform number per step from the request's own generator and takes the token whose interval
  of the cumulative distribution holds it; rounding within the tolerance moves those
  intervals' ends by a bounded amount, so the two samples may part only where the reference
  puts the drawn number that close to an end;
- or, for ``deterministic=True`` requests, compares bit for bit (``EXACT``): the engine
  promises equal rounding there, on every CPU.

Chat-level tests (a chat model, the server) compare the token ids of the engine runs behind
two answers (``Runs`` records them; ``assert_runs_agree``), and compare the answers' text only
where the tokens agree throughout.

The tolerances are bounds on |a - b| of two logit vectors of the same positions, measured
on AVX2 (fp32 and emulated bf16) with room for other kernels: fp32 differences are summation
order (~1e-5 on the tiny models, ~1e-4 on the embedded model's logits), bf16 ones the 8-bit
mantissa of every product (up to 0.75 on the embedded model's logits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from langchain_attention_buckets.engine import Engine, Generation, forward_buckets
from langchain_attention_buckets.engine.merge import merge

EXACT = 0.0
# the tiny random models of the fast tier (logits of order 1)
TINY_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 0.1}
# the embedded SmolLM2-135M (logits of order 10-30; in bf16 they are rounded to 0.125 there).
# Measured on AVX2 against transformers over the steps where the answers agree: fp32 1e-4,
# bf16 (emulated) 0.375 and 0.75 on the two exactness questions.
LOGIT_TOLERANCE = {torch.float32: 5e-3, torch.bfloat16: 1.5}


def reference_logits(model, prompt: Sequence[int], tokens: Sequence[int], bases: Sequence[float],
                     rule: str = "confidence", **forward) -> torch.Tensor:
    """(len(tokens), vocab): the merged logits that pick each of ``tokens`` after ``prompt``,
    recomputed without a cache in one teacher-forced pass (row i predicts tokens[i]);
    ``forward``: ``forward_buckets``' other settings (``head_scales``, ``bucket_layers``)."""
    ids = list(prompt) + list(tokens)
    rows = forward_buckets(model, ids[:-1] if tokens else ids, bases, **forward)[:, len(prompt) - 1 :]  # (n, T, V)
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


def assert_sampled_agrees(got: Sequence[int], want: Sequence[int], logits: torch.Tensor, tol: float, seed: int,
                          temperature: float, what: str = "") -> int | None:
    """Two seeded samples (no top-k/top-p) equal up to the first step where the draw is a near-tie.

    ``logits[i]``: the reference's processed logits (bias added, before temperature) that drew
    ``want[i]``. The draw is the engine's (``sampling.pick``): the i-th ``torch.rand`` of a
    generator seeded with ``seed``, taken through the cumulative distribution of
    ``softmax(logits / temperature)``. Logits within ``tol`` move any point of that distribution
    by at most ``c (1 - c) (exp(2 tol / T) - 1) <= expm1(2 tol / T) / 4`` (plus the float32
    cumulative sum's own error, at most vocab * 2**-24): the slack. At every step up to the
    first difference the drawn number must lie in ``want[i]``'s interval up to that slack (this
    checks the reproduced draw too), and at the difference in ``got[i]``'s as well. Returns
    where they part.
    """
    gen = torch.Generator().manual_seed(seed)
    slack = math.expm1(2 * tol / temperature) / 4 + logits.shape[-1] * 2**-24

    def check(i: int, token: int, u: float, cdf: torch.Tensor, role: str) -> None:
        lo, hi = (float(cdf[token - 1]) if token else 0.0), float(cdf[token])
        assert lo - slack <= u <= hi + slack, (
            f"{what}: token {i} is {token} ({role}), whose interval [{lo:.6g}, {hi:.6g}) under the reference is "
            f"further than the slack {slack:.3g} from the drawn number {u:.6g} (not a near-tie of the draw)"
        )

    for i, (g, w) in enumerate(zip(got, want)):
        u = float(torch.rand((), generator=gen))
        cdf = torch.softmax(logits[i].double() / temperature, -1).cumsum(-1)
        check(i, w, u, cdf, "the reference's")
        if g != w:
            check(i, g, u, cdf, "the other run's")
            return i
    return None


class Runs:
    """Records every request an ``Engine`` runs while a test is on (a spy on ``Engine.submit``,
    through pytest's ``monkeypatch``): ``take()`` returns the runs submitted since the last take."""

    def __init__(self, monkeypatch):
        self._runs: list[tuple[Engine, Generation]] = []
        self._taken = 0
        submit = Engine.submit

        def spy(engine, request, loop=None):
            gen = submit(engine, request, loop)
            self._runs.append((engine, gen))
            return gen

        monkeypatch.setattr(Engine, "submit", spy)

    def take(self) -> list[tuple[Engine, Generation]]:
        runs, self._taken = self._runs[self._taken :], len(self._runs)
        return runs

    def take_by_prompt(self) -> dict[tuple[int, ...], tuple[Engine, Generation]]:
        """The runs since the last take, by prompt (runs submitted from threads come in any order)."""
        runs = self.take()
        by_prompt = {gen.request.prompt: (engine, gen) for engine, gen in runs}
        assert len(by_prompt) == len(runs), "two runs with the same prompt: take them in order instead"
        return by_prompt


def tiny_tolerance(run: tuple[Engine, Generation]) -> float:
    """The tiny models' tolerance in the dtype a run's model was loaded in (``dtype="auto"`` may
    have picked bf16)."""
    return TINY_TOLERANCE[run[0].loaded.dtype]


def assert_runs_agree(got: tuple[Engine, Generation], want: tuple[Engine, Generation], tol: float,
                      what: str = "", same_length: bool = True) -> int | None:
    """Two finished greedy engine runs of the same request: the same prompt and settings, and the
    same tokens up to the first near-tie of the merged reference logits (logit bias added),
    recomputed on ``want``'s model; returns where they part (None: equal throughout).
    ``same_length=False`` where one run may stop earlier (a stop string only it has).

    A grammar's mask needs no place in the reference: where two runs part, both picks were
    allowed. A constraint's own bias (the tool decision's on a call opener, ``apply_bias``) is
    not in it: runs that part at the token it biases fail here rather than pass unjudged.
    """
    (_, g), (engine, w) = got, want
    a, b = g.request, w.request
    assert a.prompt == b.prompt, f"{what}: different prompts"
    settings = lambda r: (r.bases, r.aggregation, r.logit_bias, r.sampling, r.head_scales, r.bucket_layers)  # noqa: E731
    assert settings(a) == settings(b), f"{what}: different settings, {settings(a)} against {settings(b)}"
    assert b.sampling.greedy and not b.sampling.repetition_penalty, f"{what}: compares greedy runs without a repetition penalty"
    assert g.final is not None and w.final is not None, f"{what}: a run has not finished"
    tokens = w.final.token_ids
    logits = reference_logits(engine.loaded.model, b.prompt, tokens, b.bases, b.aggregation,
                              head_scales=b.head_scales, bucket_layers=b.bucket_layers)
    for token, bias in b.logit_bias:
        logits[:, token] += bias
    i = assert_greedy_agrees(g.final.token_ids, tokens, logits, tol, what, same_length=same_length)
    biased = getattr(b.constraint, "opener", ())[:1] if hasattr(b.constraint, "apply_bias") else ()
    assert i is None or not {tokens[i], g.final.token_ids[i]} & set(biased), f"{what}: parted at a biased opener"
    return i
