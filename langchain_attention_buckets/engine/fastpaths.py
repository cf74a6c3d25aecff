"""Switches for what may make the GPU path faster, each off until the GPU check has measured it.

``FastPaths`` (``Engine(fast_paths=FastPaths(...))``, or ``$ATTENTION_BUCKETS_FAST_PATHS``):

- ``sdpa_backends``: restrict ``scaled_dot_product_attention`` to these backends ("flash",
  "efficient", "cudnn", "math") during the engine's forward passes, and run a model loaded with
  SDPA through ``LOWER_RIGHT`` attention there. Without padding no pass then carries a mask
  tensor, which is what flash attention needs: a fresh prefill runs ``is_causal``, a decode step
  runs unmasked, and the tail of a prompt on top of a cached prefix (also a later prefill chunk
  or a speculative pass) gets torch's ``causal_lower_right`` bias, which the flash and
  memory-efficient kernels take as their own causal mode. A padded batch keeps its materialised
  mask, and a backend that cannot take one raises, so name "efficient" or "math" too.
- ``compile_decode``: run decode steps (one token per row) through ``torch.compile`` of the
  model's forward with this mode ("reduce-overhead": CUDA graphs; "default"; "eager": the
  bookkeeping only, no code generation, what the CPU tests use). Prefill passes stay eager.
  One compiled function per model, built on first use and kept (``DecodeCompiler``). The
  step has no graph break (tested with dynamo's "eager" backend, default and dynamic rope
  types): the per-pass rotary module reads tensor values before the pass, never inside it.
- ``pin_prefix_cache``: keep prefix-cache entries of a CUDA model in pinned host memory (the
  GPU's memory holds only running batches) and copy them back without blocking.

The settings apply per model: every engine of one model shares them; an engine given them
sets them, one built without them (and without the environment variable) leaves them as they are.
May import torch and transformers (the SDPA attention and mask functions it wraps, imported where
a switch needs them).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

# torch.nn.attention.bias (it imports torch._dynamo) and transformers' attention modules are
# imported where a switch needs them: importing the package stays as fast as without switches.

ENV = "ATTENTION_BUCKETS_FAST_PATHS"
SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")
COMPILE_MODES = ("reduce-overhead", "default", "max-autotune", "eager")


@dataclass(frozen=True)
class FastPaths:
    sdpa_backends: tuple[str, ...] | None = None
    compile_decode: str | None = None
    pin_prefix_cache: bool = False

    def __post_init__(self):
        if self.sdpa_backends is not None:
            backends = tuple(self.sdpa_backends)
            bad = [b for b in backends if b not in SDPA_BACKENDS]
            if bad or not backends:
                raise ValueError(f"sdpa_backends={self.sdpa_backends!r}: use one or more of {', '.join(SDPA_BACKENDS)}")
            object.__setattr__(self, "sdpa_backends", backends)
        if self.compile_decode is not None and self.compile_decode not in COMPILE_MODES:
            raise ValueError(f"compile_decode={self.compile_decode!r}: use None (off) or one of {', '.join(COMPILE_MODES)}")
        if not isinstance(self.pin_prefix_cache, bool):
            raise ValueError(f"pin_prefix_cache={self.pin_prefix_cache!r} must be True or False")

    @property
    def any(self) -> bool:
        return self.sdpa_backends is not None or self.compile_decode is not None or self.pin_prefix_cache

    @classmethod
    def from_env(cls, text: str | None = None) -> "FastPaths":
        """From ``$ATTENTION_BUCKETS_FAST_PATHS``: comma-separated ``sdpa=flash+efficient``,
        ``compile=reduce-overhead``, ``pin``; empty: all off."""
        text = os.environ.get(ENV, "") if text is None else text
        kw: dict = {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            key, _, value = item.partition("=")
            if key == "sdpa" and value:
                kw["sdpa_backends"] = tuple(value.split("+"))
            elif key == "compile" and value:
                kw["compile_decode"] = value
            elif key == "pin" and not value:
                kw["pin_prefix_cache"] = True
            else:
                raise ValueError(f"{ENV}: {item!r} is not understood; use sdpa=flash+efficient, compile=MODE or pin")
        return cls(**kw)


_BY_MODEL: "weakref.WeakKeyDictionary[torch.nn.Module, FastPaths]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def configure(model: torch.nn.Module, paths: FastPaths) -> None:
    with _LOCK:
        if paths.any:
            _BY_MODEL[model] = paths
        else:
            _BY_MODEL.pop(model, None)
            _COMPILED.pop(model, None)


def of(model: torch.nn.Module) -> FastPaths | None:
    return _BY_MODEL.get(model)


def sdpa_context(model: torch.nn.Module, paths: FastPaths | None):
    """The context of a forward pass under ``sdpa_backends``: SDPA restricted to those backends,
    and a cached tail without padding attended through a bottom-right causal bias
    (``lower_right_attention``); a null context when off."""
    if paths is None or paths.sdpa_backends is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}
    stack = contextlib.ExitStack()
    stack.enter_context(sdpa_kernel([getattr(SDPBackend, names[b]) for b in paths.sdpa_backends]))
    stack.enter_context(lower_right_attention(model))
    return stack


# ---- a cached tail without a materialised mask --------------------------------------------------
#
# transformers builds a causal mask per pass (``masking_utils.create_causal_mask``) with the mask
# function registered for the model's attention implementation, and hands it to the attention
# function registered under the same name. Its SDPA mask skips the mask (``is_causal``, or none
# for one query) only where the queries and keys are equally long or there is one query: the tail
# of a prompt on top of a cached prefix (q queries, c + q keys, no padding) gets a materialised
# (rows, 1, q, c + q) mask, and SDPA's flash kernel cannot take one. ``LOWER_RIGHT`` is SDPA with
# one change there: the mask is torch's ``causal_lower_right(q, c + q)``, a bias that is no tensor,
# which the flash and memory-efficient kernels take as their own causal mode (the math kernel
# materialises one (q, c + q) mask for all rows). Everything else is transformers' SDPA as it is.

LOWER_RIGHT = "attention_buckets_sdpa"


def lower_right_mask(batch_size: int, q_length: int, kv_length: int, q_offset=0, kv_offset: int = 0,
                     attention_mask: torch.Tensor | None = None, local_size: int | None = None,
                     allow_is_causal_skip: bool = True, **kwargs):
    """transformers' ``sdpa_mask``, except for q > 1 queries that are the last q of the keys, with
    no padding and a plain causal pattern: ``causal_lower_right(q, kv)`` then."""
    from torch.nn.attention.bias import causal_lower_right
    from transformers.masking_utils import sdpa_mask

    tail = isinstance(q_offset, int) and 1 < q_length < kv_length and q_offset + q_length == kv_offset + kv_length
    window = local_size is None or kv_length < local_size  # no key falls out of a sliding window
    if allow_is_causal_skip and attention_mask is None and tail and window:
        return causal_lower_right(q_length, kv_length)
    return sdpa_mask(batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset,
                     attention_mask=attention_mask, local_size=local_size, allow_is_causal_skip=allow_is_causal_skip,
                     **kwargs)


def lower_right_sdpa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs):
    """transformers' ``sdpa_attention_forward``, except that a ``causal_lower_right`` bias goes to
    SDPA as it is (transformers' code would treat it as a mask tensor)."""
    from torch.nn.attention.bias import CausalBias
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if not isinstance(attention_mask, CausalBias):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    # query: (rows, heads, q, d), key and value: (rows, kv_heads, kv, d). The bias's fused kernels
    # are called without SDPA's enable_gqa: key heads repeated as transformers does under a mask.
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )  # (rows, heads, q, d)
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def _register() -> None:
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(LOWER_RIGHT, lower_right_sdpa)
    AttentionMaskInterface.register(LOWER_RIGHT, lower_right_mask)


@contextlib.contextmanager
def lower_right_attention(model: torch.nn.Module) -> Iterator[None]:
    """Run the block's forward passes with ``LOWER_RIGHT`` attention if the model runs SDPA (else
    as it is); the model's own attention implementation is put back on exit, also on errors."""
    config = model.config
    original = getattr(config, "_attn_implementation", None)
    if original != "sdpa":
        yield
        return
    _register()
    config._attn_implementation = LOWER_RIGHT
    try:
        yield
    finally:
        config._attn_implementation = original


class DecodeCompiler:
    """One compiled forward of a model for decode steps, built on first use and reused.

    Counts what the tests check: ``builds`` (compiled functions made: one per model and mode)
    and ``calls`` (decode steps that went through it).
    """

    def __init__(self, model: torch.nn.Module, mode: str, compile_fn: Callable | None = None):
        self.mode = mode
        self._model = weakref.ref(model)
        self._compile = compile_fn or _torch_compile
        self._fn: Callable | None = None
        self.builds = 0
        self.calls = 0

    def __call__(self, **kwargs):
        if self._fn is None:
            model = self._model()
            self._fn = self._compile(model.forward, self.mode)
            self.builds += 1
        self.calls += 1
        return self._fn(**kwargs)


def _torch_compile(fn: Callable, mode: str) -> Callable:
    if mode == "eager":
        return torch.compile(fn, backend="eager", dynamic=True)
    return torch.compile(fn, mode=mode, dynamic=True)


_COMPILED: "weakref.WeakKeyDictionary[torch.nn.Module, DecodeCompiler]" = weakref.WeakKeyDictionary()


def decode_compiler(model: torch.nn.Module, paths: FastPaths | None, compile_fn: Callable | None = None) -> DecodeCompiler | None:
    """The model's compiled decode forward when ``compile_decode`` is on, else None."""
    if paths is None or paths.compile_decode is None:
        return None
    with _LOCK:
        found = _COMPILED.get(model)
        if found is None or found.mode != paths.compile_decode:
            found = DecodeCompiler(model, paths.compile_decode, compile_fn)
            _COMPILED[model] = found
        return found


def to_host(kv: list[tuple[torch.Tensor, torch.Tensor]], paths: FastPaths | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Prefix-cache entries for keeping: in pinned host memory when ``pin_prefix_cache`` is on and
    they are on a CUDA device, else as they are."""
    if paths is None or not paths.pin_prefix_cache or not kv or kv[0][0].device.type != "cuda":
        return kv
    out = []
    for k, v in kv:
        hk = torch.empty(k.shape, dtype=k.dtype, pin_memory=True)
        hv = torch.empty(v.shape, dtype=v.dtype, pin_memory=True)
        hk.copy_(k, non_blocking=True)
        hv.copy_(v, non_blocking=True)
        out.append((hk, hv))
    torch.cuda.current_stream(kv[0][0].device).synchronize()  # the copies must land before the batch moves on
    return out
