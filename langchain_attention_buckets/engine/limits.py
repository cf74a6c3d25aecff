"""What a request may ask for: its values, the context window, and the memory it needs.

Owns ``ContextLengthError``, ``MemoryBudgetError``, ``MemoryEstimate`` and the checks that
``Engine.check`` runs before a request is queued, and ``free_memory`` (the device's).

May import: langchain-core's exception types, ``loading`` (the loaded model's sizes), ``merge``,
``headscale`` and ``sampling`` (their value checks), ``engine.request``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from langchain_core.exceptions import ContextOverflowError  # the one LangChain type the engine raises

from ..headscale import check_bucket_layers, check_head_scales
from ..loading import LoadedModel
from ..merge import ANCHORED_RULES, validate_aggregation
from ..sampling import check_max_tokens
from .request import Request

GIB = 1024**3


class ContextLengthError(ValueError, ContextOverflowError):
    """A prompt plus max_tokens does not fit the model's context window.

    Also langchain-core's ``ContextOverflowError``, so LangChain's own handling (the
    summarization middleware's retry with a shorter prompt, ``except ContextOverflowError``
    in user code) catches it like any provider's overflow; still a ValueError, as before.
    """


class MemoryBudgetError(ValueError):
    """A call would need more memory than the device has free."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory a call needs, in bytes; ``available`` is the device's free memory (None if unknown)."""

    weights: int
    kv_cache: int
    activations: int
    available: int | None

    @property
    def needed(self) -> int:
        """What the call adds to what is already resident (the weights are)."""
        return self.kv_cache + self.activations

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available


def check_request(request: Request, max_positions: int, max_batch_rows: int) -> None:
    """Raise ValueError for bad values, ContextLengthError for a request longer than the window."""
    if not request.prompt:
        raise ValueError("the prompt is empty; at least one token is needed")
    if not request.bases:
        raise ValueError("bases is empty; give at least one RoPE base")
    if len(request.bases) > max_batch_rows:
        raise ValueError(f"{len(request.bases)} buckets exceed max_batch_rows={max_batch_rows}")
    validate_aggregation(request.aggregation)
    check_max_tokens(request.max_tokens)
    n_prompt, max_tokens = len(request.prompt), request.max_tokens
    if n_prompt + (max_tokens or 1) > max_positions:
        wanted = f"{n_prompt} prompt tokens + " + (f"max_tokens {max_tokens}" if max_tokens else "1")
        raise ContextLengthError(
            f"{wanted} = {n_prompt + (max_tokens or 1)} tokens exceed the model's context window "
            f"of {max_positions} tokens; shorten the prompt or lower max_tokens"
        )


def check_model_fit(request: Request, loaded: LoadedModel) -> None:
    """Raise ValueError where a request does not fit this model: an anchored merge rule whose
    first base (its trained row) is not the model's own base, head scales of the wrong shape, or
    more bucket layers than the model has."""
    if request.aggregation in ANCHORED_RULES and len(request.bases) > 1 and request.bases[0] != loaded.base:
        raise ValueError(
            f"aggregation={request.aggregation!r} takes the first base as the trained row, but bases[0]="
            f"{request.bases[0]:g} is not the model's own rotary base {loaded.base:g}; put it first"
        )
    cfg = loaded.config
    if request.head_scales:
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        check_head_scales(request.head_scales, cfg.num_hidden_layers, kv_heads)
    check_bucket_layers(request.bucket_layers, cfg.num_hidden_layers)


def check_memory(est: MemoryEstimate, request: Request, device: torch.device) -> None:
    """Raise MemoryBudgetError naming the sizes when ``est`` does not fit the free memory."""
    if est.fits:
        return
    total = len(request.prompt) + (request.max_tokens or 0)
    raise MemoryBudgetError(
        f"this call needs about {est.needed / GIB:.2f} GiB ({len(request.bases)} KV caches of "
        f"{total} tokens: {est.kv_cache / GIB:.2f} GiB; activations: "
        f"{est.activations / GIB:.2f} GiB) but only {est.available / GIB:.2f} GiB are free on "
        f"{device}; use fewer buckets, a shorter context or a lower max_tokens"
    )


def estimate_memory(
    loaded: LoadedModel, prefill_chunk: int, prompt_tokens: int, max_tokens: int | None, n_buckets: int,
    available: int | None,
) -> MemoryEstimate:
    """Memory for a call: N KV caches at prompt + max_tokens, plus prefill activations."""
    cfg = loaded.config
    total = prompt_tokens + (max_tokens or 0)
    kv = n_buckets * total * loaded.kv_bytes_per_token()
    chunk = min(prompt_tokens, prefill_chunk)
    width = 4 * cfg.hidden_size + 3 * getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)
    elem = torch.finfo(loaded.dtype).bits // 8
    # hidden states and MLP intermediates of one chunk, the attention mask, and fp32 logits rows
    act = n_buckets * (chunk * width * elem + chunk * total + 4 * loaded.vocab_size * 4)
    return MemoryEstimate(loaded.weight_bytes(), kv, act, available)


def free_memory(device: torch.device) -> int | None:
    """Free bytes on ``device`` (CUDA: the card's; CPU: the system's available memory), or None."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
