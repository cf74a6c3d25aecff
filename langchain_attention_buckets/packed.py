"""A faster LM head for a few rows at a time on CPU (fp32): oneDNN instead of the BLAS path.

A decode step with N buckets multiplies N hidden rows by the LM head (vocab x hidden; for
SmolLM2 49,152 x 576, 113 MB in fp32). For 2-12 rows torch's default CPU path reads that
matrix about twice as slowly as oneDNN's inner product does (measured on an AVX2 CPU:
36 ms against 17 ms for 6 rows, 17 ms against 11 ms for one), and the head is the largest
single matrix of a small model. ``PackedHead`` keeps a oneDNN copy of the head's weight
(one extra copy of that matrix, never one per row) and computes the same product; results
differ from the default path by rounding only (~1e-6 relative).

The engine installs it for the duration of its own forward passes, like the rotary module,
so the model object itself is never left modified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

# Below this many weight elements the conversions cost more than they save (measured: the
# 576 x 1536 MLP matrices of SmolLM2 are slower through oneDNN).
MIN_ELEMENTS = 8 * 1024 * 1024


class PackedHead(nn.Module):
    """``y = x @ W.T (+ b)`` with ``W`` held as a oneDNN tensor; inputs and outputs are dense."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(self.out_features, dtype=weight.dtype)
        self.weight = weight.to_mkldnn()
        self.bias = bias.to_mkldnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features).contiguous()
        y = torch._C._nn.mkldnn_linear(flat.to_mkldnn(), self.weight, self.bias).to_dense()
        return y.reshape(*lead, self.out_features)


def packed_head(model: nn.Module) -> PackedHead | None:
    """A ``PackedHead`` for the model's output layer where it pays off, else None.

    Only on CPU, in float32, for a plain ``nn.Linear`` head of at least ``MIN_ELEMENTS``
    weights, when this torch build has oneDNN; the result is checked against the default path
    once, and any failure leaves the model on its default path.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, nn.Linear) or head.weight.device.type != "cpu" or head.weight.dtype != torch.float32:
        return None
    if head.weight.numel() < MIN_ELEMENTS or not torch.backends.mkldnn.is_available():
        return None
    try:
        with torch.inference_mode():
            packed = PackedHead(head)
            probe = torch.randn(3, 1, head.in_features, generator=torch.Generator().manual_seed(0))
            if not torch.allclose(packed(probe), head(probe), rtol=1e-4, atol=1e-4):
                return None
    except (RuntimeError, AttributeError):
        return None
    return packed


@contextlib.contextmanager
def output_head(model: nn.Module, head: nn.Module | None) -> Iterator[None]:
    """Use ``head`` as the model's output layer for the duration of the block (None: no change)."""
    if head is None:
        yield
        return
    original = model.get_output_embeddings()
    model.set_output_embeddings(head)
    try:
        yield
    finally:
        model.set_output_embeddings(original)
