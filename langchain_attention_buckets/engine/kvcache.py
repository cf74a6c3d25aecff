"""KV caches: the batch's per-row cache and the prefix cache kept across calls.

``BatchCache`` is a transformers ``Cache`` whose layers write new keys and values
into preallocated buffers in place and hand attention views of the filled part,
so a decoding step copies nothing; buffers grow geometrically when a batch
outlives its capacity. Rows are (request, bucket) pairs: keys are stored after
rotation, so every bucket keeps its own cache.

``PrefixCache`` keeps, per base set, the keys and values of recent token
sequences, and finds the longest cached prefix of a new prompt, so an agent's
next turn only prefills what is new. Memory is bounded in bytes with
least-recently-used eviction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers.cache_utils import Cache, CacheLayerMixin

KV = tuple[torch.Tensor, torch.Tensor]  # keys, values: (rows, kv_heads, seq, head_dim)


class BufferLayer(CacheLayerMixin):
    """One layer's keys and values in a buffer of shape (rows, kv_heads, capacity, head_dim)."""

    is_sliding = False
    is_croppable = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.keys, self.values = keys, values
        self.length = length
        self.is_initialized = True
        self.device = keys.device

    def lazy_initialization(self, key_states, value_states) -> None:  # buffers exist from the start
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> KV:
        # key_states: (rows, kv_heads, new, head_dim)
        end = self.length + key_states.shape[-2]
        if end > self.keys.shape[-2]:
            self.grow(end)
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.keys.shape[-2])
        self.keys = _resized(self.keys, capacity, self.length)
        self.values = _resized(self.values, capacity, self.length)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def rollback(self, n: int) -> None:
        """Forget the last ``n`` positions (rejected speculative tokens); the buffer stays."""
        self.length -= n


def _resized(buf: torch.Tensor, capacity: int, length: int) -> torch.Tensor:
    out = buf.new_zeros(*buf.shape[:2], capacity, buf.shape[-1])
    out[:, :, :length] = buf[:, :, :length]
    return out


class BatchCache(Cache):
    """Per-layer buffers for all rows of a running batch."""

    def __init__(self, layers: list[BufferLayer]):
        super().__init__(layers=layers)

    @classmethod
    def empty(cls, n_layers: int, rows: int, kv_heads: int, head_dim: int, capacity: int, dtype, device):
        """Empty buffers; ``device``: one device for every layer, or a sequence of one per layer
        (a model spread over devices keeps each layer's keys and values where that layer runs)."""
        devices = [device] * n_layers if isinstance(device, (str, torch.device)) else list(device)
        if len(devices) != n_layers:
            raise ValueError(f"{len(devices)} devices given for {n_layers} layers; give one, or one per layer")
        shape = (rows, kv_heads, capacity, head_dim)
        zeros = lambda dev: torch.zeros(shape, dtype=dtype, device=dev)  # noqa: E731
        return cls([BufferLayer(zeros(dev), zeros(dev), 0) for dev in devices])

    @property
    def length(self) -> int:
        return self.layers[0].length

    def write(self, kv: Sequence[KV], rows: slice, start: int) -> None:
        """Copy per-layer (rows, kv_heads, n, head_dim) tensors into ``rows`` at positions start..start+n."""
        for layer, (k, v) in zip(self.layers, kv):
            n = k.shape[-2]
            # non_blocking: from pinned host memory (fastpaths.pin_prefix_cache) the copy overlaps; it is
            # ordered before the prefill that reads it on the same stream
            layer.keys[rows, :, start : start + n] = k.to(layer.keys.device, non_blocking=True)
            layer.values[rows, :, start : start + n] = v.to(layer.values.device, non_blocking=True)

    def gather(self, row: int, positions: torch.Tensor) -> list[KV]:
        """Per-layer copies of one row's keys and values at the given physical positions (each on
        its layer's device)."""
        out = []
        for layer in self.layers:
            at = positions.to(layer.keys.device)
            out.append((layer.keys[row, :, at], layer.values[row, :, at]))  # advanced indexing copies
        return out

    def rollback(self, n: int) -> None:
        for layer in self.layers:
            layer.rollback(n)

    def select_rows(self, rows: torch.Tensor) -> None:
        for layer in self.layers:
            at = rows.to(layer.keys.device)
            layer.keys = layer.keys.index_select(0, at)
            layer.values = layer.values.index_select(0, at)

    def shift_right(self, pad: int) -> None:
        """Insert ``pad`` empty positions on the left of every row (to align with a longer batch)."""
        for layer in self.layers:
            capacity = max(layer.keys.shape[-2], layer.length + pad)
            for name in ("keys", "values"):
                buf = getattr(layer, name)
                out = buf.new_zeros(*buf.shape[:2], capacity, buf.shape[-1])
                out[:, :, pad : pad + layer.length] = buf[:, :, : layer.length]
                setattr(layer, name, out)
            layer.length += pad

    def concat_rows(self, other: "BatchCache") -> None:
        """Append the rows of ``other`` (same length) below this cache's rows."""
        assert other.length == self.length
        for a, b in zip(self.layers, other.layers):
            n = a.length
            a.keys = torch.cat([a.keys[:, :, :n], b.keys[:, :, :n]])
            a.values = torch.cat([a.values[:, :, :n], b.values[:, :, :n]])

    def nbytes(self) -> int:
        return sum(layer.keys.nbytes + layer.values.nbytes for layer in self.layers)

    def nbytes_by_device(self) -> dict[torch.device, int]:
        """Bytes of the buffers on each device."""
        out: dict[torch.device, int] = {}
        for layer in self.layers:
            out[layer.keys.device] = out.get(layer.keys.device, 0) + layer.keys.nbytes + layer.values.nbytes
        return out


@dataclass
class _Entry:
    tokens: np.ndarray  # (n,) int64
    kv: list[KV]  # per layer: (n_buckets, kv_heads, n, head_dim)
    nbytes: int
    exact: int = 0  # leading positions computed by aligned, lone prefill passes (reusable bit for bit)


class PrefixCache:
    """Keys and values of recent token sequences, per base set, bounded in bytes (LRU).

    Exactness: a prefix's keys and values depend only on the prefix tokens, the
    weights and the row's base, but their rounding depends on the shapes of the forward
    passes that computed them (a matrix product's rows round differently with the number
    of rows; a position computed inside a 33-token prefill differs in the last bits from
    the same position fed alone). Reusing any prefix is therefore exact only up to
    rounding. Bit-exact reuse needs the prefix to have been computed exactly as a fresh
    request would compute it: each entry records how many leading positions (``exact``)
    came from prefill passes of whole blocks aligned to absolute positions, run for one
    request alone; a lookup with ``block`` reuses only those, in whole blocks.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[Hashable, int], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._next_id = 0
        self.hits = 0
        self.hit_tokens = 0

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def lookup_with_continuation(
        self, key: Hashable, tokens: Sequence[int], limit: int, block: int = 0
    ) -> tuple[int, list[KV] | None, list[int]]:
        """Longest cached prefix of ``tokens`` (at most ``limit`` tokens) for this key.

        With ``block`` > 0 only exact positions count (see the class), rounded down to a
        multiple of ``block``: what a fresh aligned prefill would have computed bit for bit.

        Returns the prefix length, per-layer views (n_buckets, kv_heads, n, head_dim) of its
        keys and values (None when nothing matched), and the tokens that followed ``tokens`` in
        the matched entry when all of ``tokens`` is a prefix of it (what was generated after
        this very prompt before: a draft).
        """
        query = np.asarray(tokens, dtype=np.int64)
        best_len, best_id = 0, None
        with self._lock:
            for entry_id, entry in self._entries.items():
                if entry_id[0] != key:
                    continue
                if block:
                    n = _common_prefix(entry.tokens, query, min(limit, entry.exact)) // block * block
                else:
                    n = _common_prefix(entry.tokens, query, limit)
                if n > best_len:
                    best_len, best_id = n, entry_id
            if best_id is None:
                return 0, None, []
            self._entries.move_to_end(best_id)
            entry = self._entries[best_id]
            self.hits += 1
            self.hit_tokens += best_len
            n = len(query)
            follow = entry.tokens[n:].tolist() if _is_prefix(query, entry.tokens) else []
            return best_len, [(k[:, :, :best_len], v[:, :, :best_len]) for k, v in entry.kv], follow

    def store(self, key: Hashable, tokens: Sequence[int], kv: list[KV], exact: int = 0) -> None:
        """Keep ``kv`` for ``tokens`` (its first ``exact`` positions bit-exact, see the class);
        entries that are prefixes of it, and no more exact, are dropped as redundant."""
        arr = np.asarray(tokens, dtype=np.int64)
        nbytes = sum(k.nbytes + v.nbytes for k, v in kv)
        if nbytes > self.max_bytes or len(arr) == 0:
            return
        with self._lock:
            redundant = [
                i for i, e in self._entries.items() if i[0] == key and e.exact <= exact and _is_prefix(e.tokens, arr)
            ]
            for entry_id in redundant:
                del self._entries[entry_id]
            self._next_id += 1
            self._entries[(key, self._next_id)] = _Entry(arr, kv, nbytes, exact)
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                total -= evicted.nbytes


def _common_prefix(a: np.ndarray, b: np.ndarray, limit: int) -> int:
    n = min(len(a), len(b), limit)
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def _is_prefix(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) <= len(b) and bool(np.array_equal(a, b[: len(a)]))
