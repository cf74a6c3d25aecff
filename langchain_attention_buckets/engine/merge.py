"""Merging the N bucket rows' next-token logits into one row.

Every rule takes logits of shape (batch, n_buckets, vocab) and returns one row per
request, (batch, vocab), in a form that sampling can treat as logits.

Symmetric rules (every row counts alike):

- ``confidence`` (the reference implementation's rule, the default): weights
  ``w = softmax_i(max_v l_i[v])`` over rows, merged ``sum_i w_i * l_i`` on raw logits.
- ``mean``: the mean of the rows' log-probabilities.
- ``max``: the log-probabilities of the row whose top token is most probable.

Anchored rules (``ANCHORED_RULES``): row 0 is the *trained row*, the one whose base is the
model's own; the chat model puts that base first (``bases.anchor_first``) and the engine
refuses an anchored request whose first base is not the model's. The other rows may change
the trained row's choice only where it allows it:

- ``anchored``: the other rows re-rank only the tokens inside the trained row's nucleus (its
  smallest set of top tokens holding ``ANCHOR_TOP_P`` of its probability). Inside, the
  nucleus's probability mass is shared out by the mean of all rows' log-probabilities;
  outside, the trained row's log-probabilities stay as they are.
- ``anchored-unsure``: the trained row alone where its top token has probability at least
  ``UNSURE_BELOW``; the ``mean`` rule of all rows where it is below.
- ``weighted``: a log-linear pool that gives the trained row weight ``ANCHOR_WEIGHT`` and the
  other rows the rest, in equal shares.

Exactness: with one bucket every rule leaves the logits unchanged (up to a per-row constant
for the log-probability rules, which no sampler can see). With all rows equal, every rule
gives the plain model's distribution (up to float rounding). Where the trained row's top token
has probability >= ``ANCHOR_TOP_P`` (``anchored``) or >= ``UNSURE_BELOW``
(``anchored-unsure``), those rules keep its log-probabilities, so its argmax, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MergeRule = Callable[[torch.Tensor], torch.Tensor]

ANCHOR_TOP_P = 0.9  # "anchored": the trained row's nucleus the other rows may re-rank
UNSURE_BELOW = 0.5  # "anchored-unsure": merge only where the trained row's top probability is below this
ANCHOR_WEIGHT = 0.5  # "weighted": the trained row's weight in the log-linear pool


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


def nucleus(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The smallest set of top tokens holding ``top_p`` of the probability, as a bool mask.

    logprobs: (B, V) -> (B, V); the top token is always inside.
    """
    sorted_lp, order = logprobs.sort(dim=-1, descending=True)
    before = sorted_lp.exp().cumsum(dim=-1) - sorted_lp.exp()  # mass of the tokens ranked above
    keep = before < top_p
    keep[:, 0] = True
    return torch.zeros_like(keep).scatter(-1, order, keep)


def merge_anchored(logits: torch.Tensor) -> torch.Tensor:
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, N, V)
    trained = logprobs[:, 0]  # (B, V)
    inside = nucleus(trained, ANCHOR_TOP_P)  # (B, V)
    outside_lp = torch.tensor(float("-inf"), device=logits.device)
    mass = torch.where(inside, trained, outside_lp).logsumexp(dim=-1, keepdim=True)  # log P0(nucleus)
    pooled = logprobs.mean(dim=1)  # (B, V)
    share = pooled - torch.where(inside, pooled, outside_lp).logsumexp(dim=-1, keepdim=True)
    return torch.where(inside, mass + share, trained)


def merge_anchored_unsure(logits: torch.Tensor) -> torch.Tensor:
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, N, V)
    trained = logprobs[:, 0]
    sure = trained.max(dim=-1, keepdim=True).values.exp() >= UNSURE_BELOW  # (B, 1)
    return torch.where(sure, trained, logprobs.mean(dim=1))


def merge_weighted(logits: torch.Tensor) -> torch.Tensor:
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, N, V)
    return ANCHOR_WEIGHT * logprobs[:, 0] + (1.0 - ANCHOR_WEIGHT) * logprobs[:, 1:].mean(dim=1)


MERGE_RULES: dict[str, MergeRule] = {
    "confidence": merge_confidence,
    "mean": merge_mean,
    "max": merge_max,
    "anchored": merge_anchored,
    "anchored-unsure": merge_anchored_unsure,
    "weighted": merge_weighted,
}
# Rules that treat row 0 as the trained row (the model's own base).
ANCHORED_RULES = frozenset({"anchored", "anchored-unsure", "weighted"})


def validate_aggregation(name: str) -> str:
    """Return ``name`` if it names a merge rule, else raise ValueError listing the rules."""
    if not isinstance(name, str) or name not in MERGE_RULES:
        raise ValueError(f"aggregation={name!r} is not a merge rule; allowed: {', '.join(MERGE_RULES)}")
    return name


def merge(logits: torch.Tensor, rule: str) -> torch.Tensor:
    """Merge (B, N, V) bucket logits into (B, V) with the named rule; N = 1 passes through.

    The anchored rules (``ANCHORED_RULES``) take row 0 as the trained row."""
    if logits.shape[1] == 1:
        return logits[:, 0].float()
    return MERGE_RULES[rule](logits)
