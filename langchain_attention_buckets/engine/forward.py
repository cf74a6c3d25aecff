"""The bucketed forward pass: one forward pass of the model in which every row has its own RoPE base.

Owns ``bucketed_forward`` (the one place a forward pass with per-row bases is written; the
engine's prefill, decode and speculation steps and the benchmarks call it) and
``forward_buckets`` (one prompt under several bases, no cache: for inspection and tests).

May import: torch, ``rope`` (the per-row rotary module), ``headscale`` (per-layer, per-head
frequencies: Ms-PoE, buckets in some layers), ``packed`` (the packed layers a caller hands in),
``fastpaths`` (the model's SDPA backends and compiled decode step, off by default) and
``placement`` (where inputs go under a ``device_map``). Knows nothing of requests, sampling
or the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from . import fastpaths
from .headscale import layer_frequencies, scaled_heads
from .packed import PackedWeights
from .placement import input_device
from .rope import BucketedRotaryEmbedding, bucket_frequencies, bucketed_rotary, model_base, rotary_module


def bucketed_forward(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    freqs: torch.Tensor,
    scales: torch.Tensor,
    bases: Sequence[float],
    attention_mask: torch.Tensor | None = None,
    cache=None,
    logits_to_keep: int = 1,
    packed: PackedWeights | None = None,
    layer_freqs: torch.Tensor | None = None,
) -> torch.Tensor:
    """One forward pass with each row's own RoPE base; the model is left as it was, also on errors.

    Args:
        model: a transformers causal LM of the Llama family (see ``rope.check_supported``).
        input_ids: (rows, seq) token ids to feed.
        position_ids: (rows, seq) their positions.
        freqs: (rows, rotary_dim // 2) each row's inv_freq (``rope.bucket_frequencies``).
        scales: (rows,) each row's attention scaling.
        bases: each row's RoPE base (the dynamic rope type recomputes its frequencies from it).
        attention_mask: (rows, cached + seq) bool, False at left padding; None: no padding.
        cache: a transformers ``Cache`` (e.g. ``kvcache.BatchCache``) that the pass reads and
            extends; None: no cache.
        logits_to_keep: logits of the last this many positions (0: every position).
        packed: packed linear layers to run this pass with (``packed.PackedWeights``), or None
            for the model's own layers.
        layer_freqs: (rows, n_layers, kv_heads, rotary_dim // 2) the frequencies each row, layer
            and key/value head rotates by (``headscale.layer_frequencies``: Ms-PoE, buckets in
            some layers), or None: ``freqs`` everywhere.

    Returns:
        Logits of shape (rows, logits_to_keep or seq, vocab).
    """
    rotary = BucketedRotaryEmbedding(freqs, scales, model.config, bases, position_ids)
    layers = packed.installed() if packed is not None else contextlib.nullcontext()
    heads = scaled_heads(model, layer_freqs, freqs, position_ids)
    paths = fastpaths.of(model)
    run = model
    if input_ids.shape[1] == 1 and cache is not None:  # a decode step
        run = fastpaths.decode_compiler(model, paths) or model
    with bucketed_rotary(model, rotary), layers, heads, fastpaths.sdpa_context(model, paths):  # heads after layers
        return run(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=attention_mask,
            cache=cache,
            use_cache=cache is not None,
            logits_to_keep=logits_to_keep,
        ).logits


def forward_buckets(
    model: torch.nn.Module, input_ids: Sequence[int], bases: Sequence[float], logits_to_keep: int = 0,
    head_scales: Sequence[Sequence[float]] = (), bucket_layers: int | None = None,
) -> torch.Tensor:
    """Logits of one prompt under each base: (n_bases, seq, vocab), one forward pass, no cache;
    with ``logits_to_keep=k > 0``, of the last k positions only (n_bases, k, vocab).

    The building block of the engine, exposed for inspection and tests. ``head_scales``: per
    layer, per key/value head position ratios applied to every row (Ms-PoE); ``bucket_layers``:
    the rows keep their bases only in this many lowest layers (``headscale``).
    """
    device = input_device(model)  # not model.device: under a device_map it may be "meta"
    ids = torch.tensor([list(input_ids)] * len(bases), device=device)
    pos = torch.arange(ids.shape[1], device=device).expand_as(ids)
    freqs, scales = bucket_frequencies(model.config, tuple(bases), device, rotary_module(model))
    targets = None
    if head_scales or bucket_layers is not None:
        cfg = model.config
        own, _ = bucket_frequencies(cfg, (model_base(cfg),), device, rotary_module(model))
        kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        targets = layer_frequencies(freqs, own[0], cfg.num_hidden_layers, kv, head_scales, bucket_layers)
    with torch.inference_mode():
        return bucketed_forward(
            model, ids, pos, freqs, scales, list(bases), logits_to_keep=logits_to_keep, layer_freqs=targets
        )
