"""Switches for what may make the GPU path faster, each off until the GPU check has measured it.

``FastPaths`` (``Engine(fast_paths=FastPaths(...))``, or ``$ATTENTION_BUCKETS_FAST_PATHS``):

- ``sdpa_backends``: restrict ``scaled_dot_product_attention`` to these backends ("flash",
  "efficient", "cudnn", "math") during the engine's forward passes. Rows with their own
  positions need no materialised mask where there is no padding (``new_rows`` passes None
  then), which is what lets flash attention run; with a padded batch the mask stays and a
  backend that cannot take it raises, so name "efficient" or "math" too.
- ``compile_decode``: run decode steps (one token per row) through ``torch.compile`` of the
  model's forward with this mode ("reduce-overhead": CUDA graphs; "default"; "eager": the
  bookkeeping only, no code generation, what the CPU tests use). Prefill passes stay eager.
  One compiled function per model, built on first use and kept (``DecodeCompiler``).
- ``pin_prefix_cache``: keep prefix-cache entries of a CUDA model in pinned host memory (the
  GPU's memory holds only running batches) and copy them back without blocking.

The settings apply per model: every engine of one model shares them; an engine given them
sets them, one built without them (and without the environment variable) leaves them as they are.
May import torch only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch

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


def sdpa_context(paths: FastPaths | None):
    """The context restricting SDPA to the chosen backends (a null context when off)."""
    if paths is None or paths.sdpa_backends is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}
    return sdpa_kernel([getattr(SDPBackend, names[b]) for b in paths.sdpa_backends])


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
