"""Per-layer, per-head rotary frequencies: Ms-PoE, and buckets in only some layers.

Ms-PoE (Zhang et al. 2024, "Found in the Middle", arXiv 2403.04797).

Ms-PoE is a one-pass peer of Attention Buckets: instead of N rows with N bases, every attention
head reads the positions divided by its own ratio ``r_h`` (1.2 to 1.8 in the paper), so that
some heads see the context compressed and the model attends better to its middle.

Buckets in only some layers: every row keeps its own base in the lowest ``bucket_layers``
layers and runs the model's own base above them (the upper layers read positions as trained).

How both are done here without touching the attention code. Each row, layer and key/value
head gets *target* frequencies ``t`` (``layer_frequencies``): the row's own ``w``, or the
model's own base's above ``bucket_layers``, divided by the head's ratio. RoPE rotates a query
or key at position ``p`` by ``p * w``; the model's own rotation still runs. A forward hook on
each changed layer's query and key projections (on ``q_norm``/``k_norm`` where a model
normalises them before the rotation, as Qwen3 does) first rotates each head by
``p * (t - w)``; rotations compose, so the head ends up rotated by ``p * t``: for Ms-PoE
``p * w / r_h``, the position ``p / r_h``. Where ``t == w`` (ratio 1, a row at the model's own
base) the extra rotation is by 0 (cos 1, sin 0), and a layer where it is 0 for every row gets
no hook, so the model is the plain model bit for bit.

Ratios are per key/value head: with grouped-query attention every query head of a group shares
its key head's ratio, so queries and keys of a head always use the same positions (the
reference code rotates each query head with its own ratio and each key head with the ratio of
the first query head of its group). ``mspoe_scales`` gives the reference's assignment
``r_g = low + (high - low) * g / kv_heads`` in head order, in every layer from the third on
(the reference scales layers 2..31 of 32). The reference orders heads by a
position-awareness score taken from the first prefill's attention weights; the engine's fused
attention never materialises those weights, so heads keep their index order here.

The extra rotation uses each row's fixed frequencies: with the ``dynamic`` rope type, which
recomputes them past the original context window, the targets there are off by that change.

May import: torch. Knows nothing of requests or the engine.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

MSPOE_LOW, MSPOE_HIGH = 1.2, 1.8  # the paper's ratio range
MSPOE_SKIP_LAYERS = 2  # the reference leaves the first two layers as they are

HeadScales = tuple[tuple[float, ...], ...]  # per layer, per key/value head


def mspoe_scales(
    n_layers: int, kv_heads: int, low: float = MSPOE_LOW, high: float = MSPOE_HIGH, skip_layers: int = MSPOE_SKIP_LAYERS
) -> HeadScales:
    """Ms-PoE's ratios: ``low + (high - low) * g / kv_heads`` for key/value head g, in every layer
    from ``skip_layers`` on; 1 (no scaling) in the first ``skip_layers`` layers."""
    ratios = tuple(low + (high - low) * g / kv_heads for g in range(kv_heads))
    return tuple((1.0,) * kv_heads if layer < skip_layers else ratios for layer in range(n_layers))


def model_mspoe_scales(config) -> HeadScales:
    """``mspoe_scales`` for a model config (its layer and key/value head counts)."""
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return mspoe_scales(config.num_hidden_layers, kv_heads)


def check_head_scales(scales: Sequence[Sequence[float]], n_layers: int, kv_heads: int) -> HeadScales:
    """``scales`` as a tuple if it has one row of ``kv_heads`` positive ratios per layer, else ValueError."""
    rows = tuple(tuple(float(r) for r in row) for row in scales)
    if len(rows) != n_layers or any(len(row) != kv_heads for row in rows):
        shape = [len(row) for row in rows]
        raise ValueError(
            f"head_scales must have {n_layers} rows (one per layer) of {kv_heads} ratios (one per key/value "
            f"head); got {len(rows)} rows of lengths {shape}"
        )
    bad = [r for row in rows for r in row if not (math.isfinite(r) and r > 0)]
    if bad:
        raise ValueError(f"head_scales must be finite positive ratios; got {bad[0]!r}")
    return rows


def check_bucket_layers(bucket_layers: int | None, n_layers: int) -> int | None:
    """``bucket_layers`` if it is None or a whole number of layers from 0 to ``n_layers``, else ValueError."""
    if bucket_layers is not None and not (
        isinstance(bucket_layers, int) and not isinstance(bucket_layers, bool) and 0 <= bucket_layers <= n_layers
    ):
        raise ValueError(f"bucket_layers={bucket_layers!r} must be None or an integer from 0 to {n_layers} (the layers)")
    return bucket_layers


def layer_frequencies(
    freqs: torch.Tensor, own: torch.Tensor, n_layers: int, kv_heads: int,
    head_scales: Sequence[Sequence[float]] = (), bucket_layers: int | None = None,
) -> torch.Tensor:
    """Target frequencies of one request's rows: (rows, n_layers, kv_heads, d/2).

    Args:
        freqs: (rows, d/2) each row's own frequencies.
        own: (d/2,) the model's own base's frequencies.
        head_scales: per layer, per key/value head ratios (Ms-PoE); () for none.
        bucket_layers: rows keep their frequencies in layers below this; above, ``own``. None: all layers.
    """
    k = n_layers if bucket_layers is None else bucket_layers
    per_layer = [freqs if layer < k else own.expand_as(freqs) for layer in range(n_layers)]
    t = torch.stack(per_layer, dim=1)[:, :, None, :].expand(-1, -1, kv_heads, -1)  # (rows, L, kv, d/2)
    if head_scales:
        t = t / torch.tensor(head_scales, dtype=t.dtype, device=t.device)[None, :, :, None]
    return t.contiguous()


def _extra_rotation(target: torch.Tensor, freqs: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # target: (rows, kv, d/2), freqs: (rows, d/2), pos: (rows, S) -> cos, sin: (rows, S, kv, d)
    angle = pos[:, :, None, None].float() * (target - freqs[:, None, :])[:, None]
    emb = torch.cat((angle, angle), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _hook(cos: torch.Tensor, sin: torch.Tensor):
    def rotate(module, args, out: torch.Tensor) -> torch.Tensor:
        rows, S, kv, d = cos.shape
        x = out.reshape(rows, S, -1, d)  # (rows, S, heads, d)
        group = x.shape[2] // kv  # query heads per key head (1 for keys)
        c = cos.repeat_interleave(group, dim=2).to(x.dtype)
        s = sin.repeat_interleave(group, dim=2).to(x.dtype)
        return (x * c + _rotate_half(x) * s).reshape(out.shape)

    return rotate


def _projections(attn: nn.Module) -> tuple[nn.Module, nn.Module]:
    # The rotation must come after any per-head normalisation (Qwen3's q_norm / k_norm).
    if hasattr(attn, "q_norm") and hasattr(attn, "k_norm"):
        return attn.q_norm, attn.k_norm
    return attn.q_proj, attn.k_proj


@contextlib.contextmanager
def scaled_heads(
    model: nn.Module, targets: torch.Tensor | None, freqs: torch.Tensor, position_ids: torch.Tensor
) -> Iterator[None]:
    """Run the block's forward pass with each row, layer and head rotated by its target frequencies.

    Args:
        model: a Llama-family causal LM.
        targets: (rows, n_layers, kv_heads, rotary_dim // 2) (``layer_frequencies``), or None
            (nothing changes).
        freqs: (rows, rotary_dim // 2) each row's rotary frequencies (what the model rotates by).
        position_ids: (rows, seq) the positions the pass feeds.

    Hooks are removed on exit, also when the block raises.
    """
    if targets is None:
        yield
        return
    handles, done = [], []  # done: (target, tables) of layers already seen; equal layers share tables
    try:
        for i, layer in enumerate(model.base_model.layers):
            if not getattr(layer.self_attn, "use_rope", True):  # a layer without RoPE (SmolLM3): no positions to scale
                continue
            target = targets[:, i].to(freqs.device)  # (rows, kv, d/2)
            if torch.equal(target, freqs[:, None, :].expand_as(target)):
                continue
            tables = next((tab for t, tab in done if torch.equal(t, target)), None)
            if tables is None:
                tables = _extra_rotation(target, freqs, position_ids.to(freqs.device))
                done.append((target, tables))
            for proj in _projections(layer.self_attn):
                handles.append(proj.register_forward_hook(_hook(*tables)))
        yield
    finally:
        for h in handles:
            h.remove()
