"""What a request may ask for: its values, the context window, and the memory it needs.

Owns ``ContextLengthError``, ``MemoryBudgetError``, ``MemoryEstimate`` (with a
``DeviceMemory`` share per device the model runs on) and the checks that
``Engine.check`` runs before a request is queued, and ``free_memory`` (the device's).

May import: langchain-core's exception types, ``loading`` (the loaded model's sizes), ``merge``,
``headscale`` and ``sampling`` (their value checks), ``placement`` (device names), ``engine.request``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from langchain_core.exceptions import ContextOverflowError  # the one LangChain type the engine raises

from .headscale import check_bucket_layers, check_head_scales
from .loading import LoadedModel
from .merge import ANCHORED_RULES, validate_aggregation
from .placement import canonical
from .request import Request
from .sampling import check_max_tokens

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
class DeviceMemory:
    """What a call adds on one device, in bytes; ``available`` is that device's free memory (None if unknown)."""

    device: torch.device
    kv_cache: int
    activations: int
    available: int | None

    @property
    def needed(self) -> int:
        return self.kv_cache + self.activations

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory a call needs, in bytes, in total and per device (``devices``: one entry per device
    that runs layers or receives the logits; one entry unless a ``device_map`` spread the model).

    ``available`` is the free memory summed over those devices (None if one is unknown); the
    call fits when every device's share fits that device's free memory.
    """

    weights: int
    kv_cache: int
    activations: int
    available: int | None
    devices: tuple[DeviceMemory, ...] = ()

    @property
    def needed(self) -> int:
        """What the call adds to what is already resident (the weights are)."""
        return self.kv_cache + self.activations

    @property
    def fits(self) -> bool:
        if self.devices:
            return all(d.fits for d in self.devices)
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
    """Raise MemoryBudgetError naming the sizes when ``est`` does not fit the free memory (of the
    first device that is short, when the model is spread over several)."""
    if est.fits:
        return
    short = next((d for d in est.devices if not d.fits), None)
    if short is None:
        short = DeviceMemory(device, est.kv_cache, est.activations, est.available)
    total = len(request.prompt) + (request.max_tokens or 0)
    of_all = f" (of {len(est.devices)} devices the model runs on)" if len(est.devices) > 1 else ""
    raise MemoryBudgetError(
        f"this call needs about {short.needed / GIB:.2f} GiB on {short.device}{of_all} "
        f"({len(request.bases)} KV caches of {total} tokens: {short.kv_cache / GIB:.2f} GiB; activations: "
        f"{short.activations / GIB:.2f} GiB) but only {short.available / GIB:.2f} GiB are free on "
        f"{short.device}; use fewer buckets, a shorter context or a lower max_tokens"
    )


def estimate_memory(
    loaded: LoadedModel, prefill_chunk: int, prompt_tokens: int, max_tokens: int | None, n_buckets: int,
    free: Callable[[torch.device], int | None],
) -> MemoryEstimate:
    """Memory for a call: N KV caches at prompt + max_tokens, plus prefill activations, per device.

    KV: each layer's keys and values of N rows x (prompt + max_tokens) tokens live on the device
    that runs the layer, so a device holds ``n_buckets * tokens * 2 * kv_heads * head_dim *
    bytes`` times its number of layers. Activations: one prefill chunk's hidden states, MLP
    intermediates and attention mask on every device that runs layers, and N fp32 logits rows
    on the input device (where the merge runs). Weights are counted once, as resident; weights
    offloaded to "cpu"/"disk" are loaded one module at a time during a pass and not counted.
    """
    cfg = loaded.config
    total = prompt_tokens + (max_tokens or 0)
    layers = [canonical(d) for d in loaded.layer_devices()]
    per_layer = loaded.kv_bytes_per_token() // max(1, len(layers))  # (2 x kv_heads x head_dim x bytes)
    chunk = min(prompt_tokens, prefill_chunk)
    width = 4 * cfg.hidden_size + 3 * getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)
    elem = torch.finfo(loaded.dtype).bits // 8
    chunk_act = n_buckets * (chunk * width * elem + chunk * total)  # hidden states, MLP, the mask
    logits_act = n_buckets * 4 * loaded.vocab_size * 4  # fp32 logits rows and the merge's temporaries
    home = canonical(loaded.device)
    shares = []
    for dev in dict.fromkeys([*layers, home]):  # each device once, in layer order
        kv = n_buckets * total * per_layer * layers.count(dev)
        act = (chunk_act if dev in layers else 0) + (logits_act if dev == home else 0)
        shares.append(DeviceMemory(dev, kv, act, free(dev)))
    frees = [d.available for d in shares]
    available = None if any(f is None for f in frees) else sum(frees)
    kv_total = sum(d.kv_cache for d in shares)
    act_total = sum(d.activations for d in shares)
    return MemoryEstimate(loaded.weight_bytes(), kv_total, act_total, available, tuple(shares))


def free_memory(device: torch.device) -> int | None:
    """Free bytes on ``device`` (CUDA: the card's, plus what torch's allocator holds unused; CPU: the
    system's available memory), or None."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # blocks torch's caching allocator keeps after earlier calls (a KV cache, a prefill's
        # activations) are free for this process though the driver counts them as used
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, cached))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
