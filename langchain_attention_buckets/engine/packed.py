"""Faster linear layers on CPU (fp32, and bf16 where oneDNN has it and it pays): oneDNN-packed copies of the weights.

A decode step with N buckets multiplies N hidden rows by every weight matrix of the model.
For a few rows torch's default CPU path (BLAS ``mm``) reads each matrix far less efficiently
than oneDNN's inner product does on a weight reordered once into oneDNN's blocked layout.
Measured on an AVX2 CPU, all linear layers of SmolLM2-135M (30 layers x 7 matrices): 104 ms
against 70 ms per step at 6 rows, 47 against 42 at one; the 49,152 x 576 output layer: 49
against 13 ms at 6 rows, 18 against 11 at one. The packed path is never slower at prefill
sizes either (256-1,536 rows).

``PackedWeights`` keeps one packed copy of each large ``nn.Linear`` weight: one extra copy of
those matrices (about the model's size; the engine only packs when that fits comfortably in
free memory), never one per row. Results differ from the default path by rounding only
(~1e-6 relative). The engine swaps the packed layers in for the duration of its own forward
passes, like the rotary module, so the model object is never left modified.

bf16 weights are packed too where this torch build runs oneDNN's bf16 inner product (it
needs AVX512-BW/VL/DQ or AVX-NE-CONVERT; an AVX2-only CPU refuses it) and where the packed
layer is faster than torch's own bf16 product on a decode-shaped probe of the model's
largest matrix (``pays_off``); results then differ by bf16 rounding (``TOLERANCE``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator

import torch
from torch import nn

from .placement import is_dispatched, tensor_parallel_size

# Every packed layer call runs a oneDNN inner product compiled for its input's shape, and
# prompts of every length keep adding shapes. Two caches grow with them, each 1,024 entries by
# default: oneDNN's primitive cache and, above it, ideep's LRU keyed by shape (torch's
# `_linear_pointwise` goes through ideep), ~0.27 MiB an entry, so a long-running process
# grows by up to ~280 MiB before they fill (docs/performance.md, "Memory over time"). 64
# each holds the decode shapes and recent prefill chunks; an ideep miss builds no primitive
# oneDNN's cache does not already hold (150 benchmark calls: 673 oneDNN cache misses with 64,
# 682 with 1,024). Both are read when torch first runs a oneDNN linear; a value set by the
# user wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
os.environ.setdefault("LRU_CACHE_CAPACITY", "64")

# Below this many weight elements the oneDNN call's fixed cost (~50 us) outweighs the saving
# (measured: 384 x 384 at one row is 28 us by default and 71 us packed).
MIN_ELEMENTS = 64 * 1024

# How far a packed layer's output may be from the original's on the probe input, per dtype
# (relative and absolute): fp32 differs by summation order only, bf16 by its 8-bit mantissa.
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2}


class PackedLinear(nn.Module):
    """``y = x @ W.T (+ b)`` with ``W`` reordered for oneDNN; inputs and outputs are dense."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
        self.bias = linear.bias.detach() if linear.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class PackedWeights:
    """Packed copies of a model's large linear layers, installed only inside ``installed()``."""

    def __init__(self, slots: list[tuple[nn.Module, str, nn.Linear, PackedLinear]]):
        # parents by weak reference: the shared cache below must not keep a model alive
        self._slots = [(weakref.ref(parent), name, lin, p) for parent, name, lin, p in slots]
        self._weights = [(lin.weight, lin.weight._version) for _, _, lin, _ in slots]

    def fresh(self) -> bool:
        """Whether the model still has the modules and weights these copies were made from.

        False after a module was replaced or a weight was reassigned or changed in place (the
        tensor's version counter moved): the copies must then be rebuilt, never used.
        """
        for (ref, name, lin, _), (weight, version) in zip(self._slots, self._weights):
            parent = ref()
            if parent is None or parent._modules.get(name) is not lin:
                return False
            current = lin._parameters.get("weight")  # not lin.weight: Module.__getattr__ is slow
            if current is not weight or current._version != version:
                return False
        return True

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def nbytes(self) -> int:
        seen = {id(p): p.weight.numel() * p.weight.element_size() for *_, p in self._slots}
        return sum(seen.values())

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        # _modules directly: nn.Module.__setattr__'s checks would cost ~1 ms per forward pass
        slots = [(ref(), name, original, packed) for ref, name, original, packed in self._slots]
        for parent, name, _, packed in slots:
            parent._modules[name] = packed
        try:
            yield
        finally:
            for parent, name, original, _ in slots:
                parent._modules[name] = original


def packable_bytes(model: nn.Module) -> int:
    """Bytes that ``pack_model`` would add for this model (0 where nothing would be packed)."""
    return _weight_bytes(_candidates(model))


def _weight_bytes(candidates: list[tuple[nn.Module, str, nn.Linear]]) -> int:
    unique = {id(lin): lin for *_, lin in candidates}  # a shared module is packed once
    return sum(lin.weight.numel() * lin.weight.element_size() for lin in unique.values())


def _candidates(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    out = []
    for parent in model.modules():
        for name, child in parent._modules.items():
            # exactly nn.Linear: subclasses (quantized, LoRA, ...) compute something else
            if type(child) is not nn.Linear:
                continue
            w = child.weight
            if w.device.type == "cpu" and supports(w.dtype) and w.numel() >= MIN_ELEMENTS:
                out.append((parent, name, child))
    return out


def available() -> bool:
    """Whether this torch build has the oneDNN operations packing needs."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


def supports(dtype: torch.dtype) -> bool:
    """Whether weights of ``dtype`` can be packed here: fp32 wherever oneDNN is built in; bf16 where
    oneDNN runs bf16 on this CPU (``torch.ops.mkldnn._is_mkldnn_bf16_supported``)."""
    if dtype not in TOLERANCE or not available():
        return False
    if dtype == torch.bfloat16:
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(check()) if check is not None else False
        except RuntimeError:
            return False
    return True


def packed_linear(lin: nn.Linear, probe_rows: int = 3) -> PackedLinear | None:
    """A packed copy of ``lin`` that reproduces it on a probe input, or None (dtype not supported
    here, oneDNN refuses it, e.g. under ``ONEDNN_MAX_CPU_ISA``, or it computes something else)."""
    dtype = lin.weight.dtype
    if lin.weight.device.type != "cpu" or not supports(dtype):
        return None
    tol = TOLERANCE[dtype]
    gen = torch.Generator().manual_seed(0)
    try:
        with torch.inference_mode():
            packed = PackedLinear(lin)
            probe = torch.randn(probe_rows, 2, lin.in_features, generator=gen).to(dtype)
            want, got = lin(probe).float(), packed(probe).float()
            scale = max(1.0, want.abs().max().item())
            if not torch.allclose(got, want, rtol=tol, atol=tol * scale):
                return None
    except (RuntimeError, AttributeError, NotImplementedError):
        return None
    return packed


def pays_off(lin: nn.Linear, packed: PackedLinear, rows: int = 6, repeats: int = 5) -> bool:
    """Whether the packed layer is faster than the original at a decode shape (``rows`` rows, one
    per bucket): best of ``repeats`` timed calls each, after a warm-up."""
    x = torch.randn(rows, 1, lin.in_features).to(lin.weight.dtype)
    with torch.inference_mode():
        return best_time(packed, x, repeats) < best_time(lin, x, repeats)


def best_time(fn, x: torch.Tensor, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls ``fn(x)``, in seconds, after one warm-up call (oneDNN
    builds its primitive on the first call)."""
    import time

    fn(x)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return best


_SHARED: "weakref.WeakKeyDictionary[nn.Module, PackedWeights]" = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def pack_model(model: nn.Module, budget_bytes: int | None = None) -> PackedWeights | None:
    """Packed copies of the model's large fp32 (or bf16, see the module) CPU ``nn.Linear`` layers, or None.

    None for a model with accelerate hooks (a ``device_map`` load, offloaded weights) or
    sharded by tensor parallelism: a packed layer bypasses its module's forward and so the
    hooks that place or load its weights or reduce its shards. None also where nothing
    qualifies, where this torch build lacks the oneDNN operations, where the copies would
    exceed ``budget_bytes`` (None: no limit), or where a packed layer does not reproduce its
    original on a probe input (then the model stays on its default path).
    Engines of one model share one set of copies while it is fresh.
    """
    with _SHARED_LOCK:
        shared = _SHARED.get(model)
        if shared is not None and shared.fresh():
            return shared
        _SHARED.pop(model, None)
        packed = _pack(model, budget_bytes)
        if packed is not None:
            _SHARED[model] = packed
        return packed


def _pack(model: nn.Module, budget_bytes: int | None) -> PackedWeights | None:
    if is_dispatched(model) or tensor_parallel_size(model) > 1:
        return None
    candidates = _candidates(model)
    if not candidates or not available():
        return None
    if budget_bytes is not None and _weight_bytes(candidates) > budget_bytes:
        return None
    packed_of: dict[int, PackedLinear] = {}
    checked: dict[tuple[int, int, bool, torch.dtype], bool] = {}
    slots = []
    for parent, name, lin in candidates:
        kind = (lin.in_features, lin.out_features, lin.bias is not None, lin.weight.dtype)
        if id(lin) not in packed_of:
            packed = packed_linear(lin) if kind not in checked else _pack_one(lin)
            if packed is None:
                return None
            checked[kind] = True
            packed_of[id(lin)] = packed
        slots.append((parent, name, lin, packed_of[id(lin)]))
    if any(lin.weight.dtype == torch.bfloat16 for *_, lin in candidates):
        # bf16: torch's own product may already be as fast (it calls oneDNN too on such CPUs)
        largest = max(candidates, key=lambda c: c[2].weight.numel())[2]
        if not pays_off(largest, packed_of[id(largest)]):
            return None
    return PackedWeights(slots)


def _pack_one(lin: nn.Linear) -> PackedLinear | None:
    try:
        with torch.inference_mode():
            return PackedLinear(lin)
    except (RuntimeError, AttributeError, NotImplementedError):
        return None

