"""The reference implementation's way, timed: each base a separate single-row pass, one after another.

Each base has its own transformers cache and its own one-row rotary; at every step the N
rows run in turn and their last logits are merged. ``bench speed --parts sequential`` sets
this against the same N as rows of one batch (see ``buckets``).

May import ``forward``, ``rope``, ``merge`` and ``common``; the model runs only through
``forward.bucketed_forward``, one row at a time.
"""

from __future__ import annotations

import time

import torch

from ...engine.forward import bucketed_forward
from ...engine.loading import LoadedModel
from ...engine.merge import merge
from ...engine.rope import bucket_frequencies, rotary_module
from .setup import median, sync


def _rows(loaded: LoadedModel, bases) -> list[tuple[torch.Tensor, torch.Tensor, list[float]]]:
    """Each base's single-row frequencies, scale and base, as ``bucketed_forward`` takes them."""
    model = loaded.model
    freqs, scales = bucket_frequencies(model.config, tuple(bases), loaded.device, rotary_module(model))
    return [(freqs[i : i + 1], scales[i : i + 1], [b]) for i, b in enumerate(bases)]


def _forward(model, row, ids: torch.Tensor, cache, pos: torch.Tensor) -> torch.Tensor:
    """One single-row pass with one base; returns the last position's logits, (1, vocab).

    ``ids``, ``pos``: (1, S) token ids and their positions.
    """
    freqs, scales, bases = row
    return bucketed_forward(model, ids, pos, freqs, scales, bases, cache=cache)[:, -1]


@torch.inference_mode()
def run_sequential(loaded: LoadedModel, prompt, bases, decode_tokens: int, repeats: int) -> dict:
    """Median time to first token and decode step over ``repeats`` runs after one warm-up."""
    from transformers import DynamicCache

    model, dev = loaded.model, loaded.device
    rows_of = _rows(loaded, bases)
    ids = torch.tensor([prompt], device=dev)
    start = torch.arange(len(prompt), device=dev)[None]
    ttft, step = [], []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        caches = [DynamicCache(config=model.config) for _ in rows_of]
        rows = [_forward(model, row, ids, cache, start) for row, cache in zip(rows_of, caches)]
        token = merge(torch.stack(rows, dim=1), "confidence").argmax(-1)
        sync(dev)
        t1 = time.perf_counter()
        for k in range(decode_tokens - 1):
            pos = torch.tensor([[len(prompt) + k]], device=dev)
            rows = [_forward(model, row, token[:, None], cache, pos) for row, cache in zip(rows_of, caches)]
            token = merge(torch.stack(rows, dim=1), "confidence").argmax(-1)
            token.item()
        t2 = time.perf_counter()
        if rep:
            ttft.append(t1 - t0)
            step.append((t2 - t1) / max(1, decode_tokens - 1))
    return {"ttft_s": median(ttft), "decode_step_s": median(step)}
