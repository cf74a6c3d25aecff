"""Faster linear layers on CPU (fp32): oneDNN-packed copies of the weights.

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
            if w.device.type == "cpu" and w.dtype == torch.float32 and w.numel() >= MIN_ELEMENTS:
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


_SHARED: "weakref.WeakKeyDictionary[nn.Module, PackedWeights]" = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def pack_model(model: nn.Module, budget_bytes: int | None = None) -> PackedWeights | None:
    """Packed copies of the model's large fp32 CPU ``nn.Linear`` layers, or None.

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
    probe_gen = torch.Generator().manual_seed(0)
    try:
        with torch.inference_mode():
            packed_of: dict[int, PackedLinear] = {}
            checked: set[tuple[int, int, bool]] = set()
            slots = []
            for parent, name, lin in candidates:
                if id(lin) not in packed_of:
                    packed_of[id(lin)] = PackedLinear(lin)
                packed = packed_of[id(lin)]
                kind = (lin.in_features, lin.out_features, lin.bias is not None)
                if kind not in checked:
                    probe = torch.randn(3, 2, lin.in_features, generator=probe_gen)
                    if not torch.allclose(packed(probe), lin(probe), rtol=1e-4, atol=1e-4):
                        return None
                    checked.add(kind)
                slots.append((parent, name, lin, packed))
    except (RuntimeError, AttributeError, NotImplementedError):
        return None
    return PackedWeights(slots)

