"""From bucket logits to one token per request.

``process_logits`` fixes the order of logit processing for a decoding step, one small
``apply_*`` function per step:

    merge -> logit bias -> repetition penalty -> tool-decision bias -> grammar mask
      -> steering (budget, repetition, a started call opener) -> temperature -> top-k / top-p -> pick

All requests of a batch go through each step together; only the grammar mask
(one matcher per request) and the draw of each request's random number (one
generator per request, so a seeded request gives the same tokens alone or in a
batch) touch requests one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from .merge import merge


@dataclass(frozen=True)
class SamplingParams:
    """How a request picks its tokens. temperature 0 means greedy."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature < float("inf")):
            raise ValueError(f"temperature={self.temperature!r} must be a finite number >= 0")
        if self.top_k is not None and not (isinstance(self.top_k, int) and self.top_k >= 1):
            raise ValueError(f"top_k={self.top_k!r} must be None or an integer >= 1")
        if self.top_p is not None and not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p={self.top_p!r} must be None or a number in (0, 1]")
        rp = self.repetition_penalty
        if rp is not None and not (isinstance(rp, (int, float)) and 0.0 < rp < float("inf")):
            raise ValueError(f"repetition_penalty={rp!r} must be None or a positive number")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def check_max_tokens(value) -> None:
    """Raise ValueError unless ``value`` is None or an integer >= 1 (booleans are not numbers)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_tokens={value!r} must be None or an integer >= 1")


@runtime_checkable
class TokenConstraint(Protocol):
    """What the decoder needs of a grammar, one object per request (not thread-safe).

    The contract, at each decoding step, on the request's merged row (after logit bias and
    repetition penalty): ``process_logits`` calls ``apply_bias`` (if the object has it: a
    bias such as the tool decision's), then ``apply_mask`` (the grammar: disallowed tokens
    -> -inf), then ``apply_steering`` (if it has it: the only tokens allowed this step, a
    subset of the mask's), then temperature and top-k/top-p; a token is picked among those
    left, and the engine calls ``accept`` with it and stops the request once
    ``is_terminated`` is True. A False from ``apply_mask`` is a dead end: the request ends
    with finish reason "grammar_dead_end". Problems with the grammar itself are raised when
    it is built, never during a step. ``constrain.GrammarConstraint`` is the grammar;
    ``chat.decision.DecisionConstraint`` wraps one with the tool decision.
    """

    def apply_mask(self, logits: torch.Tensor) -> bool:
        """Set disallowed entries of a 1-D logits row (vocab-sized, any float dtype, CPU or
        CUDA) to -inf in place. Returns False when no token is allowed (a dead end)."""
        ...

    def accept(self, token_id: int) -> None:
        """Advance the grammar by the chosen token (raise ValueError if it was not allowed)."""
        ...

    def is_terminated(self) -> bool:
        """True once the grammar has accepted a stop token (the output is complete)."""
        ...


class Constraint:
    """A base for ``TokenConstraint`` implementations: the optional steps (no-ops here) and
    ``process``, which runs one object's steps on one row in ``process_logits``' order."""

    def apply_bias(self, logits: torch.Tensor) -> None:
        """Before the mask: add a bias to the row, in place."""

    def apply_mask(self, logits: torch.Tensor) -> bool:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def apply_steering(self, logits: torch.Tensor) -> None:
        """After the mask: narrow the row to the tokens that must come now, in place."""

    def process(self, logits: torch.Tensor) -> bool:
        """bias -> mask -> steering on one row; False at a dead end."""
        self.apply_bias(logits)
        if not self.apply_mask(logits):
            return False
        self.apply_steering(logits)
        return True


def keep_only(logits: torch.Tensor, tokens: Sequence[int]) -> None:
    """Every entry but ``tokens`` -> -inf, in place; a kept token the model ruled out (-inf) gets 0,
    so a forced token still wins."""
    idx = torch.tensor(list(tokens), device=logits.device)
    kept = logits[idx].nan_to_num(neginf=0.0)
    logits.fill_(-math.inf)
    logits[idx] = kept


@dataclass
class StepRequest:
    """One request's view of a decoding step."""

    n_buckets: int
    aggregation: str
    sampling: SamplingParams
    generator: torch.Generator | None = None
    constraint: TokenConstraint | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    generated: list[int] | None = None  # the request's tokens so far (for the repetition penalty)


def merge_requests(logits: torch.Tensor, requests: Sequence[StepRequest]) -> torch.Tensor:
    """(rows, V) bucket logits, each request's rows contiguous -> (B, V) float32."""
    n = {r.n_buckets for r in requests}
    rules = {r.aggregation for r in requests}
    if len(n) == 1 and len(rules) == 1:
        (n_buckets,), (rule,) = n, rules
        return merge(logits.view(len(requests), n_buckets, -1), rule)
    out, start = [], 0
    for r in requests:
        out.append(merge(logits[None, start : start + r.n_buckets], r.aggregation))
        start += r.n_buckets
    return torch.cat(out)


def apply_logit_bias(logits: torch.Tensor, requests: Sequence[StepRequest]) -> None:
    """Add each request's (token id, bias) pairs to its row, in place."""
    for b, r in enumerate(requests):
        if r.logit_bias:
            ids, bias = zip(*r.logit_bias)
            logits[b, list(ids)] += torch.tensor(bias, dtype=logits.dtype, device=logits.device)


def apply_repetition_penalty(logits: torch.Tensor, requests: Sequence[StepRequest]) -> None:
    """Make tokens already generated less likely (HF semantics: divide positive logits, multiply negative)."""
    for b, r in enumerate(requests):
        penalty = r.sampling.repetition_penalty
        if penalty and penalty != 1.0 and r.generated:
            ids = torch.tensor(sorted(set(r.generated)), device=logits.device)
            seen = logits[b, ids]
            logits[b, ids] = torch.where(seen > 0, seen / penalty, seen * penalty)


def apply_decision_bias(logits: torch.Tensor, requests: Sequence[StepRequest]) -> None:
    """Each constraint's bias before its mask (the tool decision's bias on a call opener), in place."""
    for b, r in enumerate(requests):
        if r.constraint is not None and hasattr(r.constraint, "apply_bias"):
            r.constraint.apply_bias(logits[b])


def apply_grammar_masks(logits: torch.Tensor, requests: Sequence[StepRequest]) -> list[bool]:
    """Mask each constrained request's row in place; False where no token is allowed."""
    return [r.constraint.apply_mask(logits[b]) if r.constraint is not None else True for b, r in enumerate(requests)]


def apply_steering(logits: torch.Tensor, requests: Sequence[StepRequest], alive: Sequence[bool]) -> None:
    """Each live constraint's narrowing after its mask (budget, repetition, a started opener), in place."""
    for b, r in enumerate(requests):
        if alive[b] and r.constraint is not None and hasattr(r.constraint, "apply_steering"):
            r.constraint.apply_steering(logits[b])


def apply_temperature_top_k_top_p(logits: torch.Tensor, requests: Sequence[StepRequest]) -> torch.Tensor:
    """Scale and truncate the rows of sampled requests; greedy rows pass through unchanged."""
    temp = torch.tensor([r.sampling.temperature or 1.0 for r in requests], device=logits.device)
    logits = logits / temp[:, None]
    top_k = [r.sampling.top_k or 0 for r in requests]
    top_p = [r.sampling.top_p or 1.0 for r in requests]
    if not any(top_k) and all(p >= 1.0 for p in top_p):
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    rank = torch.arange(logits.shape[-1], device=logits.device)[None, :]
    k = torch.tensor([k or logits.shape[-1] for k in top_k], device=logits.device)[:, None]
    drop = rank >= k
    probs = torch.softmax(sorted_logits.masked_fill(drop, float("-inf")), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the better tokens
    drop |= mass_before >= torch.tensor(top_p, device=logits.device)[:, None]
    drop[:, 0] = False  # the best token always stays
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)


def pick(logits: torch.Tensor, requests: Sequence[StepRequest]) -> torch.Tensor:
    """Argmax for greedy requests, an inverse-CDF draw for the others. Returns (B,) long."""
    tokens = logits.argmax(dim=-1)
    sampled = [b for b, r in enumerate(requests) if not r.sampling.greedy]
    if not sampled:
        return tokens
    idx = torch.tensor(sampled, device=logits.device)
    probs = torch.softmax(logits[idx], dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.tensor(
        [torch.rand((), generator=requests[b].generator).item() for b in sampled],
        device=logits.device,
        dtype=cdf.dtype,
    )
    drawn = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)
    tokens[idx] = drawn.clamp_max(logits.shape[-1] - 1)
    return tokens


def process_logits(
    logits: torch.Tensor, requests: Sequence[StepRequest]
) -> tuple[torch.Tensor, list[bool]]:
    """One decoding step's logit processing, in this order:

    1. merge: each request's N bucket rows -> one row (its aggregation rule);
    2. logit bias: the request's per-token additions;
    3. repetition penalty: over the tokens the request has generated;
    4. tool-decision bias: the constraint's bias on a call opener (``apply_bias``);
    5. grammar mask: disallowed tokens -> -inf (one mask for all of a request's rows);
    6. steering: the constraint narrows the row to what must come now (``apply_steering``:
       the budget's closing tokens, a repetition's closer, the rest of a started opener);
    7. temperature;
    8. top-k, then top-p;
    9. pick: argmax (temperature 0) or a draw from the request's own generator.

    Args:
        logits: (rows, V) next-token logits; each request's rows are contiguous.
        requests: the requests in row order.

    Returns:
        tokens (B,) long, and for each request whether its grammar allowed any token
        (False: a dead end; its token is meaningless).
    """
    merged = merge_requests(logits, requests)
    apply_logit_bias(merged, requests)
    apply_repetition_penalty(merged, requests)
    apply_decision_bias(merged, requests)
    alive = apply_grammar_masks(merged, requests)
    apply_steering(merged, requests, alive)
    merged = apply_temperature_top_k_top_p(merged, requests)
    return pick(merged, requests), alive
