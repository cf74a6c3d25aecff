"""From bucket logits to one token per request.

``process_logits`` fixes the order of logit processing for a decoding step:

    merge -> logit bias -> repetition penalty -> grammar mask -> temperature -> top-k / top-p -> pick

All requests of a batch go through each step together; only the grammar mask
(one matcher per request) and the draw of each request's random number (one
generator per request, so a seeded request gives the same tokens alone or in a
batch) touch requests one by one.
"""

from __future__ import annotations

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

    The contract, at each decoding step: `process_logits` calls `apply_mask` on the
    request's merged row (after logit bias and repetition penalty, before temperature
    and top-k/top-p) and a token is picked among those left; the engine then calls
    `accept` with it, and stops the request once `is_terminated` is True. A False from
    `apply_mask` is a dead end: the request ends with finish reason
    "grammar_dead_end". Problems with the grammar itself are raised when it is built,
    never during a step. `constrain.GrammarConstraint` is the implementation.
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


def apply_constraints(logits: torch.Tensor, requests: Sequence[StepRequest]) -> list[bool]:
    """Mask each constrained request's row in place; False where no token is allowed."""
    return [r.constraint.apply_mask(logits[b]) if r.constraint is not None else True for b, r in enumerate(requests)]


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
    k = torch.tensor([min(k or logits.shape[-1], logits.shape[-1]) for k in top_k], device=logits.device)[:, None]
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
    4. grammar mask: disallowed tokens -> -inf (one mask for all of a request's rows);
    5. temperature;
    6. top-k, then top-p;
    7. pick: argmax (temperature 0) or a draw from the request's own generator.

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
    alive = apply_constraints(merged, requests)
    merged = apply_temperature_top_k_top_p(merged, requests)
    return pick(merged, requests), alive
