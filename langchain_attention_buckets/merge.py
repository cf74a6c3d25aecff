"""Merging the N bucket rows' next-token logits into one row.

Every rule takes logits of shape (batch, n_buckets, vocab) and returns one row per
request, (batch, vocab), in a form that sampling can treat as logits.

- ``confidence`` (the reference implementation's rule, the default): weights
  ``w = softmax_i(max_v l_i[v])`` over rows, merged ``sum_i w_i * l_i`` on raw logits.
- ``mean``: the mean of the rows' log-probabilities.
- ``max``: the log-probabilities of the row whose top token is most probable.

With one bucket every rule leaves the logits unchanged (up to a per-row constant
for the log-probability rules, which no sampler can see).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MergeRule = Callable[[torch.Tensor], torch.Tensor]


def merge_confidence(logits: torch.Tensor) -> torch.Tensor:
    # logits: (B, N, V) -> (B, V)
    weights = torch.softmax(logits.max(dim=-1).values.float(), dim=-1)  # (B, N)
    return torch.einsum("bn,bnv->bv", weights, logits.float())


def merge_mean(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).mean(dim=1)


def merge_max(logits: torch.Tensor) -> torch.Tensor:
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, N, V)
    best = logprobs.max(dim=-1).values.argmax(dim=-1)  # (B,)
    return logprobs[torch.arange(logits.shape[0], device=logits.device), best]


MERGE_RULES: dict[str, MergeRule] = {
    "confidence": merge_confidence,
    "mean": merge_mean,
    "max": merge_max,
}


def validate_aggregation(name: str) -> str:
    """Return ``name`` if it names a merge rule, else raise ValueError listing the rules."""
    if not isinstance(name, str) or name not in MERGE_RULES:
        raise ValueError(f"aggregation={name!r} is not a merge rule; allowed: {', '.join(MERGE_RULES)}")
    return name


def merge(logits: torch.Tensor, rule: str) -> torch.Tensor:
    """Merge (B, N, V) bucket logits into (B, V) with the named rule; N = 1 passes through."""
    if logits.shape[1] == 1:
        return logits[:, 0].float()
    return MERGE_RULES[rule](logits)
