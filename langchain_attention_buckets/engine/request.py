"""The caller's side of the engine: a request, the events it streams, its result, and its handle.

Owns ``Request``, ``TokenEvent``, ``Result`` and ``Generation`` (the handle ``Engine.submit``
returns). The worker thread puts events into a handle; the caller iterates it.

May import: ``sampling`` (sampling parameters). Nothing else of the package.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from .sampling import SamplingParams


@dataclass(frozen=True)
class Request:
    """One generation request, on token ids.

    Args:
        prompt: the prompt's token ids.
        bases: one RoPE base per bucket (one base: the plain model).
        aggregation: the merge rule (``merge.MERGE_RULES``); the anchored rules take the first
            base as the trained row, so it must be the model's own base.
        sampling: temperature, top-k, top-p, seed.
        max_tokens: at most this many new tokens (None: up to the context window).
        stop: stop strings; the text ends before the first one generated.
        constraint: a grammar (``apply_mask / accept / is_terminated``), or None.
        prefix_cache: reuse and store keys/values of shared prompt prefixes.
        ignore_eos: keep generating past end-of-sequence tokens (benchmarks).
        logit_bias: (token id, bias) pairs added to the merged logits before the grammar mask.
        speculative_tokens: for greedy requests, check up to this many drafted tokens in one
            forward pass (drafts: what followed the same prompt before, or an n-gram of the
            context); 0 turns it off. Off in deterministic mode.
        deterministic: produce the same tokens bit for bit whether the prompt's prefix comes
            from the prefix cache or not, whatever other requests are submitted meanwhile,
            with or without ``speculative_tokens``: the request runs alone (no batching with
            others), is prefilled in blocks aligned to absolute positions, reuses only cached
            blocks computed that way, and decodes one token per pass.
        head_scales: per layer, per key/value head, the ratio that head's positions are divided
            by in every row (``headscale``, Ms-PoE); () for none.
        bucket_layers: the rows keep their own bases only in this many lowest layers; above,
            every row runs the model's own base. None: all layers.
    """

    prompt: tuple[int, ...]
    bases: tuple[float, ...]
    aggregation: str = "confidence"
    sampling: SamplingParams = SamplingParams()
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    constraint: Any = field(default=None, compare=False)
    prefix_cache: bool = True
    ignore_eos: bool = False
    logit_bias: tuple[tuple[int, float], ...] = ()
    speculative_tokens: int = 8
    deterministic: bool = False
    head_scales: tuple[tuple[float, ...], ...] = ()
    bucket_layers: int | None = None

    @property
    def cache_key(self) -> tuple:
        """What a prompt's keys and values depend on besides its tokens (the prefix cache's key)."""
        if not self.head_scales and self.bucket_layers is None:
            return self.bases
        return (self.bases, self.head_scales, self.bucket_layers)


@dataclass(frozen=True)
class TokenEvent:
    token_id: int
    text: str  # the text this token made final (maybe "")


@dataclass
class Result:
    token_ids: list[int]
    text: str
    finish_reason: str  # stop | length | grammar_dead_end | cancelled
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    time_to_first_token: float = 0.0
    total_seconds: float = 0.0


class Generation:
    """Handle of a submitted request: iterate it for ``TokenEvent``s, then ``result``.

    A handle submitted without a loop is iterated with ``for``; one submitted with
    ``loop=...`` with ``async for``. ``final`` holds the ``Result`` once the request ended,
    whether or not the caller has read all of its events.
    """

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop | None = None):
        self.request = request
        self.final: Result | None = None  # set by the engine when the request ends, read or not
        self._loop = loop
        self._q: queue.Queue | asyncio.Queue = asyncio.Queue() if loop is not None else queue.Queue()
        self._cancel = threading.Event()
        self._ended = False  # the caller has taken the result out of the queue

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop generating; the handle ends with finish_reason "cancelled"."""
        self._cancel.set()

    # The engine's side: the worker thread puts events and the result.
    def finish(self, result: Result) -> None:
        self.final = result
        self.put(result)

    def put(self, item: Any) -> None:
        if self._loop is None:
            self._q.put(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._q.put_nowait, item)
        except RuntimeError:  # the caller's event loop is gone
            self._cancel.set()

    def _take(self, item: Any) -> TokenEvent | None:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Result):
            self._ended = True
            return None
        return item

    def __iter__(self) -> Iterator[TokenEvent]:
        if self._loop is not None:
            raise TypeError("this handle was submitted with a loop; iterate it with `async for`")
        return self._events()

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        if self._loop is None:
            raise TypeError("this handle was submitted without a loop; submit with loop=... to use `async for`")
        return self._aevents()

    def _events(self) -> Iterator[TokenEvent]:
        while not self._ended:
            event = self._take(self._q.get())
            if event is not None:
                yield event

    async def _aevents(self) -> AsyncIterator[TokenEvent]:
        while not self._ended:
            event = self._take(await self._q.get())
            if event is not None:
                yield event

    def result(self) -> Result:
        """Wait for the end and return the result (handles submitted without a loop)."""
        for _ in self:
            pass
        if self.final is None:
            raise RuntimeError("the request ended without a result")
        return self.final
