"""The worker's steps, as free functions over a ``Batch``: prefill, decode, speculate, draft.

Each step feeds rows through ``forward.bucketed_forward`` and, where it samples, hands the
chosen tokens to their requests (``deliver``); it never touches the queue and never retires
a request (the scheduler does both). ``EngineStats`` counts the forward passes.

May import: ``forward``, ``headscale`` and ``rope`` (per-layer frequencies), ``kvcache``,
``loading`` (sizes), ``packed`` (type), ``placement``, ``sampling``, ``engine.batch``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .batch import Batch, Running
from .forward import bucketed_forward
from .headscale import layer_frequencies
from .kvcache import KV, BatchCache
from .loading import LoadedModel
from .packed import PackedWeights
from .placement import kv_heads
from .rope import bucket_frequencies, rotary_module
from .sampling import process_logits


@dataclass
class EngineStats:
    """Counters of the worker's forward passes (for tests and benchmarks)."""

    prefill_passes: int = 0
    decode_passes: int = 0
    max_rows: int = 0  # the most rows seen in one forward pass
    max_requests: int = 0  # the most requests decoded in one step
    drafted_tokens: int = 0  # speculative tokens checked
    accepted_tokens: int = 0  # of them, the ones the model agreed with


# ---- prefill ----------------------------------------------------------------------------


def new_rows(
    loaded: LoadedModel, runs: list[Running], prefixes: list[tuple[int, list[KV] | None]],
    freqs: torch.Tensor, scales: torch.Tensor,
) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """The rows of newly admitted requests, laid out for one prefill.

    Args:
        runs: the new requests.
        prefixes: per request, the length of its cached prefix and that prefix's keys and values.
        freqs, scales: the rows' rotary frequencies, request after request.

    Returns:
        The group (its cache holds the cached prefixes, right-aligned at the longest one, P),
        and the token ids and positions still to feed, (rows, S), left-padded.
    """
    P = max(p for p, _ in prefixes)
    S = max(run.prompt_len - p for run, (p, _) in zip(runs, prefixes))
    rows = sum(run.n for run in runs)
    cache = _empty_cache(loaded, rows, P + S + 64)
    ids = torch.zeros(rows, S, dtype=torch.long)
    pos = torch.zeros(rows, S, dtype=torch.long)
    valid = torch.zeros(rows, P + S, dtype=torch.bool)
    r = 0
    for run, (p, kv) in zip(runs, prefixes):
        prompt, rs = run.request.prompt, slice(r, r + run.n)
        s = len(prompt) - p
        if kv is not None:
            cache.write(kv, rs, P - p)
        valid[rs, P - p : P] = True
        valid[rs, P + S - s :] = True
        ids[rs, S - s :] = torch.tensor(prompt[p:])
        pos[rs, S - s :] = torch.arange(p, len(prompt))
        r += run.n
    for layer in cache.layers:
        layer.length = P
    dev = loaded.device
    padded = not bool(valid.all())
    next_pos = torch.tensor([run.prompt_len for run in runs for _ in range(run.n)], device=dev)
    bases = [b for run in runs for b in run.request.bases]
    targets = _layer_freqs(loaded, runs, freqs)
    group = Batch(runs, cache, valid.to(dev) if padded else None, next_pos, freqs, scales, bases, targets)
    return group, ids.to(dev), pos.to(dev)


def _layer_freqs(loaded: LoadedModel, runs: list[Running], freqs: torch.Tensor) -> torch.Tensor | None:
    """(rows, n_layers, kv_heads, d/2) the new rows' frequencies per layer and head (Ms-PoE,
    buckets in some layers); None if no request changes any."""
    if not any(run.request.head_scales or run.request.bucket_layers is not None for run in runs):
        return None
    cfg = loaded.model.config
    n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    own, _ = bucket_frequencies(cfg, (loaded.base,), freqs.device, rotary_module(loaded.model))
    out, r = [], 0
    for run in runs:
        req = run.request
        out.append(layer_frequencies(
            freqs[r : r + run.n], own[0], cfg.num_hidden_layers, n_kv, req.head_scales, req.bucket_layers
        ))
        r += run.n
    return torch.cat(out)


def _empty_cache(loaded: LoadedModel, rows: int, capacity: int) -> BatchCache:
    # each layer's keys and values live where that layer runs (one device unless a device_map split
    # it), with this process's share of the KV heads (all of them unless tensor parallel)
    n_layers = loaded.model.config.num_hidden_layers
    return BatchCache.empty(
        n_layers, rows, kv_heads(loaded.model), loaded.head_dim, capacity, loaded.dtype, loaded.layer_devices()
    )


def prefill(
    model, group: Batch, ids: torch.Tensor, pos: torch.Tensor, chunk: int,
    packed: PackedWeights | None, stats: EngineStats,
) -> torch.Tensor:
    """Feed the group's prompts in chunks of ``chunk`` tokens; the last position's logits (rows, V)."""
    P, S = group.cache.length, ids.shape[1]
    for c0 in range(0, S, chunk):
        c1 = min(S, c0 + chunk)
        mask = group.valid[:, : P + c1] if group.valid is not None else None
        logits = bucketed_forward(
            model, ids[:, c0:c1], pos[:, c0:c1], group.freqs, group.scales, group.bases, mask, group.cache,
            packed=packed, layer_freqs=group.layer_freqs,
        )
        stats.prefill_passes += 1
    return logits[:, -1]


# ---- decode -----------------------------------------------------------------------------


def decode(model, batch: Batch, packed: PackedWeights | None, stats: EngineStats) -> None:
    """One lockstep step: every row is fed its request's last token; each request gets one more."""
    last = torch.tensor([run.tokens[-1] for run in batch.requests for _ in range(run.n)], device=batch.pos.device)
    pos, mask = batch.extend(1)
    logits = bucketed_forward(
        model, last[:, None], pos, batch.freqs, batch.scales, batch.bases, mask, batch.cache, packed=packed,
        layer_freqs=batch.layer_freqs,
    )
    stats.decode_passes += 1
    stats.max_rows = max(stats.max_rows, last.shape[0])
    stats.max_requests = max(stats.max_requests, len(batch.requests))
    tokens, alive = process_logits(logits[:, -1], [run.step for run in batch.requests])
    deliver(batch.requests, tokens.tolist(), alive)


def deliver(runs: Sequence[Running], tokens: list[int], alive: list[bool]) -> None:
    """Hand each request its token, or end it (cancelled, or its grammar allows no token)."""
    now = time.perf_counter()
    for run, token, ok in zip(runs, tokens, alive):
        if run.gen.cancelled:
            run.finish = "cancelled"
        elif not ok:
            run.finish = "grammar_dead_end"
        else:
            run.accept(token, now)


# ---- speculation (a lone greedy request) --------------------------------------------------


def draft(run: Running) -> list[int]:
    """Tokens the request is likely to generate next, or [] (then decode one token)."""
    req = run.request
    k = req.speculative_tokens
    if k <= 0 or not req.sampling.greedy or req.deterministic:  # a verify pass rounds unlike a decode pass
        return []
    done = len(run.tokens)
    if run.replay and run.replay[:done] == run.tokens and len(run.replay) > done:
        return run.replay[done : done + k]
    return ngram_draft(list(req.prompt) + run.tokens, k)


def ngram_draft(history: list[int], k: int, sizes: tuple[int, ...] = (3, 2)) -> list[int]:
    """Prompt-lookup drafting: the tokens that followed the latest earlier occurrence of the
    history's last n-gram (tool arguments and JSON keys are often copied from the context)."""
    for n in sizes:
        if len(history) <= n:
            continue
        tail = history[-n:]
        for start in range(len(history) - n - 1, -1, -1):
            if history[start : start + n] == tail:
                follow = history[start + n : start + n + k]
                if follow:
                    return follow
    return []


def speculate(
    model, batch: Batch, draft: list[int], packed: PackedWeights | None, stats: EngineStats
) -> None:
    """Feed the lone request's last token and the draft in one pass; keep the draft up to the
    first token the model would not have picked, plus the model's own token there."""
    (run,) = batch.requests
    inputs = torch.tensor([run.tokens[-1], *draft], device=batch.pos.device)  # (S,)
    S = inputs.shape[0]
    pos, mask = batch.extend(S)
    logits = bucketed_forward(
        model, inputs.expand(run.n, S), pos, batch.freqs, batch.scales, batch.bases, mask, batch.cache,
        logits_to_keep=S, packed=packed, layer_freqs=batch.layer_freqs,
    )  # (n, S, V)
    stats.decode_passes += 1
    stats.drafted_tokens += len(draft)
    matched = _verify(run, draft, logits)
    stats.accepted_tokens += matched
    unused = S - (matched + 1)  # positions fed but not part of the output
    if unused:
        batch.rollback(unused)


def _verify(run: Running, draft: list[int], logits: torch.Tensor) -> int:
    """Sample position after position, as decoding would; the number of draft tokens matched."""
    now, matched, S = time.perf_counter(), 0, len(draft) + 1
    for j in range(S):
        if run.gen.cancelled:
            run.finish = "cancelled"
            break
        tokens, alive = process_logits(logits[:, j], [run.step])
        if not alive[0]:
            run.finish = "grammar_dead_end"
            break
        token = int(tokens[0])
        run.accept(token, now)
        if run.finish or j == S - 1 or token != draft[j]:
            break
        matched += 1
    return matched
