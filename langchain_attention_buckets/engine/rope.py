"""Per-row rotary embeddings: the one change Attention Buckets makes to a RoPE model.

The N buckets of a request are N rows of one batch. Weights are shared; only the
rotary frequencies differ per row. transformers' Llama-family models compute
``cos, sin`` once per forward pass in ``model.model.rotary_emb`` from
``position_ids[..., None] * inv_freq``; replacing that module, for the duration
of a forward pass, by one whose ``inv_freq`` has a leading row dimension gives
every row its own base without touching the attention code.

Each row's ``inv_freq`` comes from transformers' own rope initialisation run on a
copy of the config whose ``rope_theta`` is that row's base, so the rope scaling
types (linear, llama3, yarn, dynamic) keep their behaviour per row. cos/sin are
computed only for the positions being fed, never rebuilt for the whole sequence.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

# Model types whose rotary module has the Llama form (checked by tests with tiny
# random models): forward(x, position_ids) -> (cos, sin), built from
# ``position_ids[..., None] * inv_freq`` with one inv_freq for every layer. Granite scales
# embeddings, residuals, attention and logits, not positions; SmolLM3 leaves every fourth
# layer without RoPE (``no_rope_layers``), where the rows' bases change nothing.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "granite", "smollm3")
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn", "dynamic")


class UnsupportedModelError(ValueError):
    """The model has no rotary embedding, or one of a form the buckets cannot drive."""


def rotary_module(model: nn.Module) -> nn.Module:
    """The model's shared rotary embedding module (``model.model.rotary_emb``)."""
    return model.base_model.rotary_emb


def check_supported(model: nn.Module) -> None:
    """Raise UnsupportedModelError naming the architecture unless buckets can run on it."""
    config = model.config
    arch = ", ".join(getattr(config, "architectures", None) or [type(model).__name__])
    model_type = getattr(config, "model_type", "?")
    rotary = getattr(model.base_model, "rotary_emb", None)
    if rotary is None or not hasattr(rotary, "inv_freq"):
        raise UnsupportedModelError(
            f"Model architecture {arch} (model_type {model_type!r}) has no shared rotary embedding "
            f"module; Attention Buckets needs a RoPE model of the Llama family "
            f"(model types: {', '.join(SUPPORTED_MODEL_TYPES)})."
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            f"Model architecture {arch} (model_type {model_type!r}) has a rotary form that is not "
            f"supported; supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    rope_type = rope_parameters(config).get("rope_type", "default")
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UnsupportedModelError(
            f"Model architecture {arch} uses rope_type {rope_type!r}; supported rope types: "
            f"{', '.join(SUPPORTED_ROPE_TYPES)}."
        )


def rope_parameters(config) -> dict:
    """The config's rope parameters (transformers 5: ``config.rope_parameters``)."""
    params = getattr(config, "rope_parameters", None) or {}
    if "rope_theta" not in params and getattr(config, "rope_theta", None) is not None:
        params = {**params, "rope_theta": config.rope_theta}
    return dict(params)


def model_base(config) -> float:
    """The model's own RoPE base (rope_theta)."""
    return float(rope_parameters(config)["rope_theta"])


def head_dim(config) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def _config_with_base(config, base: float):
    cfg = copy.deepcopy(config)
    cfg.rope_parameters = {**rope_parameters(config), "rope_theta": float(base)}
    return cfg


def _init_fn(config, rotary: nn.Module | None):
    rope_type = rope_parameters(config).get("rope_type", "default")
    if rope_type == "default":
        if rotary is not None and hasattr(rotary, "compute_default_rope_parameters"):
            return rotary.compute_default_rope_parameters
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        return LlamaRotaryEmbedding.compute_default_rope_parameters
    return ROPE_INIT_FUNCTIONS[rope_type]


def bucket_frequencies(
    config, bases: Sequence[float], device: torch.device | str = "cpu", rotary: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """inv_freq and attention scaling for each base.

    Returns:
        ``inv_freq`` of shape (n_bases, rotary_dim // 2), float32, and
        ``scaling`` of shape (n_bases,), float32.
    """
    init = _init_fn(config, rotary)
    freqs, scales = [], []
    for base in bases:
        # Computed on the CPU, as transformers does at init before moving the buffer.
        inv_freq, scale = init(_config_with_base(config, base))
        freqs.append(inv_freq.to(device=device, dtype=torch.float32))
        scales.append(float(scale))
    return torch.stack(freqs), torch.tensor(scales, dtype=torch.float32, device=device)


class BucketedRotaryEmbedding(nn.Module):
    """A rotary module giving each batch row its own frequencies.

    Args:
        inv_freq: (rows, rotary_dim // 2) float32, one row per batch row.
        scaling: (rows,) attention scaling per row (1.0 except for yarn/longrope-like types).
        config: the model config (for the dynamic type's per-length recomputation).
        bases: the base of each row (for the dynamic type).
        position_ids: (rows, seq) the positions of the pass this module serves, if known: the
            dynamic type's frequencies are then computed here, once, rather than in ``forward``.
    """

    def __init__(self, inv_freq: torch.Tensor, scaling: torch.Tensor, config=None, bases=None,
                 position_ids: torch.Tensor | None = None):
        super().__init__()
        self.inv_freq = inv_freq[:, None, :]  # (rows, 1, d/2)
        self.scaling = scaling[:, None, None]  # (rows, 1, 1)
        # Tensor values are read here, before the pass: read in ``forward`` they would break a
        # compiled decode step's graph (and CUDA graphs would cover only its pieces).
        values = scaling.tolist()
        uniform = len(set(values)) <= 1
        self.uniform_scale = (float(values[0]) if values else 1.0) if uniform else None  # None: per row
        self.config = config
        self.bases = bases
        self.dynamic = config is not None and rope_parameters(config).get("rope_type") == "dynamic"
        if self.dynamic and position_ids is not None:  # the pass's positions are known: fix the frequencies now
            self.inv_freq = self._dynamic_inv_freq(position_ids)
            self.dynamic = False

    def _dynamic_inv_freq(self, position_ids: torch.Tensor) -> torch.Tensor:
        # Dynamic NTK recomputes the frequencies from the current length, per row
        # as transformers does per sequence; rows inside the original window keep theirs.
        original = self.config.max_position_embeddings
        seq_len = position_ids.max(dim=-1).values + 1  # (rows,)
        if not bool((seq_len > original).any()):
            return self.inv_freq
        inv_freq = self.inv_freq.clone()
        init = ROPE_INIT_FUNCTIONS["dynamic"]
        for row in torch.nonzero(seq_len > original).flatten().tolist():
            cfg = _config_with_base(self.config, self.bases[row])
            freq, _ = init(cfg, inv_freq.device, seq_len=seq_len[row])
            inv_freq[row, 0] = freq.to(inv_freq.dtype)
        return inv_freq

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # position_ids: (rows, seq) -> cos, sin: (rows, seq, 2 * d/2)
        inv_freq = self._dynamic_inv_freq(position_ids) if self.dynamic else self.inv_freq
        freqs = position_ids[..., None].float() * inv_freq.to(device=x.device)
        emb = torch.cat((freqs, freqs), dim=-1)
        scale = self.uniform_scale if self.uniform_scale is not None else self.scaling.to(device=x.device)
        cos, sin = emb.cos() * scale, emb.sin() * scale
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


@contextlib.contextmanager
def bucketed_rotary(model: nn.Module, rotary: BucketedRotaryEmbedding) -> Iterator[None]:
    """Install ``rotary`` as the model's rotary module for the duration of the block.

    The original module is put back on exit, also when the block raises.
    """
    owner = model.base_model
    original = owner.rotary_emb
    owner.rotary_emb = rotary
    try:
        yield
    finally:
        owner.rotary_emb = original
