"""The decoding engine: Attention Buckets over a transformers model, on token ids.

Contract: the engine takes token ids and returns token ids (with their text, for
streaming and stop strings); it knows nothing of messages, templates or tools. A
grammar reaches it only as an object with ``apply_mask / accept /
is_terminated`` (see ``sampling.TokenConstraint``).

How a request runs:

1. ``submit`` checks the request (context window, memory) and queues it; it
   returns a ``Generation`` handle that streams ``TokenEvent``s and ends with a
   ``Result``.
2. One worker thread per model owns the model. It admits queued requests into
   the running batch: each request is N rows (one per RoPE base); the longest
   cached prefix of its prompt is copied from the prefix cache, and only the
   rest is prefilled, in chunks, all new requests in one forward pass. The prompts' keys
   and values go to the prefix cache right after their prefill.
3. Decoding is lockstep: every step runs one forward pass over all rows of all
   requests, merges each request's N logit rows into one, masks, samples, and
   feeds the chosen token back to the request's rows.
4. A finished request leaves the batch; its keys and values go to the prefix
   cache for the next call that shares its prefix.

Requests that arrive together, or while others decode, share forward passes
(continuous batching at step boundaries); results equal those of one request at
a time up to floating-point rounding (more rows, padding and speculation round
differently, which can flip a greedy pick at a near-tie). A ``deterministic``
request runs alone, prefilled in blocks aligned to absolute positions, reusing
only cached blocks computed that way, one token per decode pass: its tokens are
the same bit for bit cached or not, alone or not (see ``scheduler``).

The parts, each in its own module:

- ``request``: ``Request``, ``TokenEvent``, ``Result`` and the ``Generation`` handle.
- ``limits``: the checks ``submit`` runs, memory estimates and their errors.
- ``scheduler``: the queue and the worker thread (admit, step, retire).
- ``batch``: the running batch's per-row state and each running request's state.
- ``steps``: prefill, decode, speculate and draft, as free functions over a batch.
- ``heap``: handing freed heap memory back to the system when the worker goes idle.
- ``forward.bucketed_forward`` (a module of the package above): the one forward pass
  with a RoPE base per row, used by every step.

This module holds ``Engine`` (the public face: checks, the packed weights, the
worker's lifetime) and ``get_engine`` (one shared engine per loaded model). The engine
sits on the ground floor: it never imports the chat model or the grammar code.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Callable

from . import fastpaths, packed
from .forward import forward_buckets
from .heap import DEFAULT_IDLE_TRIM_INTERVAL, IdleTrim, check_interval
from .kvcache import PrefixCache
from .limits import (
    ContextLengthError,
    DeviceMemory,
    MemoryBudgetError,
    MemoryEstimate,
    check_memory,
    check_model_fit,
    check_request,
    estimate_memory,
)
from .limits import free_memory as _free_memory
from .loading import LoadedModel
from .request import Generation, Request, Result, TokenEvent
from .scheduler import Scheduler
from .steps import EngineStats

__all__ = [
    "DEFAULT_DETERMINISTIC_BLOCK",
    "DEFAULT_IDLE_TRIM_INTERVAL",
    "DEFAULT_MAX_BATCH_ROWS",
    "DEFAULT_PREFILL_CHUNK",
    "DEFAULT_PREFIX_CACHE_BYTES",
    "ContextLengthError",
    "DeviceMemory",
    "Engine",
    "EngineStats",
    "Generation",
    "MemoryBudgetError",
    "MemoryEstimate",
    "Request",
    "Result",
    "TokenEvent",
    "forward_buckets",
    "get_engine",
]

DEFAULT_PREFIX_CACHE_BYTES = 2 * 1024**3
DEFAULT_PREFILL_CHUNK = 1024
DEFAULT_MAX_BATCH_ROWS = 64
DEFAULT_DETERMINISTIC_BLOCK = 64


class Engine:
    """Runs Attention Buckets requests for one loaded model (one worker thread).

    Args:
        loaded: the model and tokenizer.
        prefix_cache_bytes: bound of the prefix cache (0 disables it).
        prefill_chunk: prompt tokens per prefill forward pass (bounds activation memory).
        max_batch_rows: most rows (requests x buckets) decoded together.
        packed_weights: keep oneDNN-packed copies of the linear layers for CPU fp32 forward
            passes (``packed.py``; faster, costs one extra copy of those weights). None: only
            when the copies take at most half of the free memory; True: always where
            supported; False: never.
        deterministic_block: prefill block (tokens) of deterministic requests: their prompts
            are prefilled in passes of this many tokens at multiples of it, and reuse cached
            prefixes in whole blocks only. Smaller: more of a cached prefix is reused, but
            more, smaller passes (slower when nothing is cached).
        idle_trim_interval: when the worker goes idle, hand the heap memory freed since back
            to the system (glibc's ``malloc_trim``), at most once per this many seconds;
            None or 0: never. Does nothing where the C library is not glibc. See ``heap``.
        fast_paths: SDPA backends, a compiled decode step, pinned prefix-cache copies
            (``fastpaths.FastPaths``; all off by default, until the GPU check has measured
            them). None: from ``$ATTENTION_BUCKETS_FAST_PATHS``, and where that is empty, what
            an earlier engine of the model set (else all off). They apply to every engine of
            the model; ``FastPaths()`` turns them all off again.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        packed_weights: bool | None = None,
        deterministic_block: int = DEFAULT_DETERMINISTIC_BLOCK,
        idle_trim_interval: float | None = DEFAULT_IDLE_TRIM_INTERVAL,
        fast_paths: fastpaths.FastPaths | None = None,
    ):
        if isinstance(deterministic_block, bool) or not isinstance(deterministic_block, int) or deterministic_block < 1:
            raise ValueError(f"deterministic_block={deterministic_block!r} must be an integer >= 1")
        if packed_weights not in (None, True, False):
            raise ValueError(f"packed_weights={packed_weights!r}; use None (automatic), True or False")
        if fast_paths is not None and not isinstance(fast_paths, fastpaths.FastPaths):
            raise ValueError(f"fast_paths={fast_paths!r}; use None or a fastpaths.FastPaths")
        self.loaded = loaded
        self.model = loaded.model
        chosen = fast_paths if fast_paths is not None else fastpaths.FastPaths.from_env()
        if fast_paths is not None or chosen.any:  # a default engine leaves another engine's choice alone
            fastpaths.configure(self.model, chosen)
        self.fast_paths = fastpaths.of(self.model) or fastpaths.FastPaths()
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        self.stats = EngineStats()
        self.idle_trim = IdleTrim(idle_trim_interval)  # its count and seconds: trims so far
        self._packed_mode = packed_weights
        self._packed = self._pack(packed_weights)  # None: the model's own layers
        self._scheduler = Scheduler(
            loaded, self.prefix_cache, self.stats, self._fresh_packed, prefill_chunk, max_batch_rows,
            deterministic_block, self.idle_trim,
        )
        _ALL_ENGINES.add(self)

    # ---- public -------------------------------------------------------------------

    def submit(self, request: Request, loop: asyncio.AbstractEventLoop | None = None) -> Generation:
        """Check and queue a request; the returned handle streams its tokens."""
        self.check(request)
        gen = Generation(request, loop)
        self._scheduler.submit(gen)
        return gen

    def generate(self, request: Request, on_token: Callable[[TokenEvent], None] | None = None) -> Result:
        """Submit, wait, and return the result; ``on_token`` is called for every token, in this thread."""
        gen = self.submit(request)
        try:
            for event in gen:
                if on_token is not None:
                    on_token(event)
        finally:
            gen.cancel()  # no-op when finished; stops the request if on_token raised
        return gen.result()

    def check(self, request: Request) -> None:
        """Raise ValueError for a request that cannot run (bad values, too long, too big)."""
        check_request(request, self.loaded.max_positions, self.max_batch_rows)
        check_model_fit(request, self.loaded)
        est = self.estimate_memory(len(request.prompt), request.max_tokens, len(request.bases))
        check_memory(est, request, self.loaded.device)

    def estimate_memory(self, prompt_tokens: int, max_tokens: int | None, n_buckets: int) -> MemoryEstimate:
        """Memory for a call: N KV caches at prompt + max_tokens, plus prefill activations, per
        device the model runs on (``limits.estimate_memory``), against each device's free memory."""
        return estimate_memory(
            self.loaded, self.prefill_chunk, prompt_tokens, max_tokens, n_buckets, lambda d: _free_memory(d)
        )

    @property
    def prefill_chunk(self) -> int:
        """Prompt tokens per prefill forward pass."""
        return self._scheduler.prefill_chunk

    @property
    def max_batch_rows(self) -> int:
        """Most rows (requests x buckets) decoded together."""
        return self._scheduler.max_batch_rows

    @property
    def packed_weights(self) -> packed.PackedWeights | None:
        """The packed copies of the linear layers the forward passes run with (None: the model's own)."""
        return self._packed

    @property
    def idle_trim_interval(self) -> float | None:
        """Seconds between two idle heap trims at most (None: off); settable on a running engine."""
        return self.idle_trim.interval

    @idle_trim_interval.setter
    def idle_trim_interval(self, value: float | None) -> None:
        self.idle_trim.interval = check_interval(value)

    def activity(self) -> dict[str, int]:
        """What the worker holds now: running requests, their rows, and queued requests."""
        return self._scheduler.activity()

    def grow_prefix_cache(self, max_bytes: int) -> None:
        """Raise the prefix cache's bound to ``max_bytes`` if it is lower; it is never lowered here,
        so that callers sharing this engine keep the room they asked for."""
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes!r} must be an integer >= 0")
        self.prefix_cache.max_bytes = max(self.prefix_cache.max_bytes, max_bytes)

    def clear_prefix_cache(self) -> None:
        self.prefix_cache.clear()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker after the requests in flight (at interpreter exit, before torch goes away)."""
        self._scheduler.close(timeout)

    # ---- packed weights ------------------------------------------------------------

    def _pack(self, mode: bool | None) -> packed.PackedWeights | None:
        if mode is False:
            return None
        budget = None
        if mode is None:
            free = _free_memory(self.loaded.device)
            if free is None:
                return None
            budget = free // 2
        return packed.pack_model(self.model, budget)

    def _fresh_packed(self) -> packed.PackedWeights | None:
        """The packed layers for the next forward pass, rebuilt if the model changed since packing."""
        if self._packed is not None and not self._packed.fresh():
            self._packed = self._pack(self._packed_mode)
        return self._packed


_ENGINES: dict[int, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_ALL_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for engine in list(_ALL_ENGINES):
        engine.close(timeout=5.0)


def get_engine(loaded: LoadedModel, prefix_cache_bytes: int | None = None) -> Engine:
    """The one engine of a loaded model, created on first use and shared by every caller.

    Args:
        loaded: the model.
        prefix_cache_bytes: the prefix-cache bound this caller wants (None: the default for a
            new engine, no change for an existing one). The cache is shared too, so the
            shared engine's bound is the largest any caller asked for: a larger request
            raises it through ``Engine.grow_prefix_cache``; a smaller one leaves it as it is
            (another caller's prefixes stay). Use ``Engine(loaded, prefix_cache_bytes=...)``
            for an engine of its own with an exact bound.
    """
    with _ENGINES_LOCK:
        engine = _ENGINES.get(id(loaded))
        if engine is None or engine.loaded is not loaded:
            budget = DEFAULT_PREFIX_CACHE_BYTES if prefix_cache_bytes is None else prefix_cache_bytes
            engine = Engine(loaded, prefix_cache_bytes=budget)
            _ENGINES[id(loaded)] = engine
        elif prefix_cache_bytes is not None:
            engine.grow_prefix_cache(prefix_cache_bytes)
        return engine
