"""The reference implementation's way, timed: each base a separate single-row pass, one after another.

Each base has its own transformers cache and its own one-row rotary; at every step the N
rows run in turn and their last logits are merged. ``bench speed --parts sequential`` sets
this against the same N as rows of one batch (see ``buckets``).

May import the model helpers (rope, merge) and ``common``; the only code here that runs the
model is :func:`_forward`.
"""

from __future__ import annotations

import time

import torch

from ...loading import LoadedModel
from ...merge import merge
from ...rope import BucketedRotaryEmbedding, bucket_frequencies, bucketed_rotary, rotary_module
from .common import median, sync


def _rotaries(loaded: LoadedModel, bases) -> list[BucketedRotaryEmbedding]:
    """One single-row rotary per base."""
    model = loaded.model
    freqs, scales = bucket_frequencies(model.config, tuple(bases), loaded.device, rotary_module(model))
    return [BucketedRotaryEmbedding(freqs[i : i + 1], scales[i : i + 1], model.config, [b]) for i, b in enumerate(bases)]


def _forward(model, rot: BucketedRotaryEmbedding, ids: torch.Tensor, cache, pos: torch.Tensor | None = None) -> torch.Tensor:
    """One single-row pass with one base's rotary; returns the last position's logits, (1, vocab).

    ``ids``: (1, S); ``pos``: (1, S) positions, None for a prefill from position 0.
    """
    with bucketed_rotary(model, rot):
        out = model(input_ids=ids, position_ids=pos, cache=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1]


@torch.inference_mode()
def run_sequential(loaded: LoadedModel, prompt, bases, decode_tokens: int, repeats: int) -> dict:
    """Median time to first token and decode step over ``repeats`` runs after one warm-up."""
    from transformers import DynamicCache

    model, dev = loaded.model, loaded.device
    rotaries = _rotaries(loaded, bases)
    ids = torch.tensor([prompt], device=dev)
    ttft, step = [], []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        caches = [DynamicCache(config=model.config) for _ in rotaries]
        rows = [_forward(model, rot, ids, cache) for rot, cache in zip(rotaries, caches)]
        token = merge(torch.stack(rows, dim=1), "confidence").argmax(-1)
        sync(dev)
        t1 = time.perf_counter()
        for k in range(decode_tokens - 1):
            pos = torch.tensor([[len(prompt) + k]], device=dev)
            rows = [_forward(model, rot, token[:, None], cache, pos) for rot, cache in zip(rotaries, caches)]
            token = merge(torch.stack(rows, dim=1), "confidence").argmax(-1)
            token.item()
        t2 = time.perf_counter()
        if rep:
            ttft.append(t1 - t0)
            step.append((t2 - t1) / max(1, decode_tokens - 1))
    return {"ttft_s": median(ttft), "decode_step_s": median(step)}
