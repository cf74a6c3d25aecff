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
   rest is prefilled, in chunks, all new requests in one forward pass.
3. Decoding is lockstep: every step runs one forward pass over all rows of all
   requests, merges each request's N logit rows into one, masks, samples, and
   feeds the chosen token back to the request's rows.
4. A finished request leaves the batch; its keys and values go to the prefix
   cache for the next call that shares its prefix.

Requests that arrive together, or while others decode, share forward passes
(continuous batching at step boundaries); results equal those of one request at
a time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .detok import IncrementalDetokenizer
from .kvcache import BatchCache, PrefixCache
from .loading import LoadedModel
from .merge import validate_aggregation
from . import packed
from .rope import BucketedRotaryEmbedding, bucket_frequencies, bucketed_rotary, rotary_module
from .sampling import SamplingParams, StepRequest, process_logits

DEFAULT_PREFIX_CACHE_BYTES = 2 * 1024**3
DEFAULT_PREFILL_CHUNK = 1024
DEFAULT_MAX_BATCH_ROWS = 64


class ContextLengthError(ValueError):
    """A prompt plus max_tokens does not fit the model's context window."""


class MemoryBudgetError(ValueError):
    """A call would need more memory than the device has free."""


@dataclass(frozen=True)
class Request:
    """One generation request, on token ids.

    Args:
        prompt: the prompt's token ids.
        bases: one RoPE base per bucket (one base: the plain model).
        aggregation: the merge rule ("confidence", "mean" or "max").
        sampling: temperature, top-k, top-p, seed.
        max_tokens: at most this many new tokens (None: up to the context window).
        stop: stop strings; the text ends before the first one generated.
        constraint: a grammar (``apply_mask / accept / is_terminated``), or None.
        prefix_cache: reuse and store keys/values of shared prompt prefixes.
        ignore_eos: keep generating past end-of-sequence tokens (benchmarks).
        logit_bias: (token id, bias) pairs added to the merged logits before the grammar mask.
        speculative_tokens: for greedy requests, check up to this many drafted tokens in one
            forward pass (drafts: what followed the same prompt before, or an n-gram of the
            context); 0 turns it off. The output is the same either way.
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


@dataclass
class EngineStats:
    """Counters of the worker's forward passes (for tests and benchmarks)."""

    prefill_passes: int = 0
    decode_passes: int = 0
    max_rows: int = 0  # the most rows seen in one forward pass
    max_requests: int = 0  # the most requests decoded in one step
    drafted_tokens: int = 0  # speculative tokens checked
    accepted_tokens: int = 0  # of them, the ones the model agreed with


class Generation:
    """Handle of a submitted request: iterate it for ``TokenEvent``s, then ``result``."""

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop | None = None):
        self.request = request
        self._loop = loop
        self._q: queue.Queue | asyncio.Queue = asyncio.Queue() if loop is not None else queue.Queue()
        self._cancel = threading.Event()
        self._result: Result | None = None
        self.final: Result | None = None  # set by the engine when the request ends, read or not

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop generating; the handle ends with finish_reason "cancelled"."""
        self._cancel.set()

    def _put(self, item: Any) -> None:
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
            self._result = item
            return None
        return item

    def __iter__(self) -> Iterator[TokenEvent]:
        assert self._loop is None, "use `async for` on a handle submitted with a loop"
        while self._result is None:
            event = self._take(self._q.get())
            if event is not None:
                yield event

    async def __aiter__(self) -> AsyncIterator[TokenEvent]:
        assert self._loop is not None, "submit with loop=... to iterate asynchronously"
        while self._result is None:
            event = self._take(await self._q.get())
            if event is not None:
                yield event

    def result(self) -> Result:
        """Wait for the end and return the result (sync handles only)."""
        for _ in self:
            pass
        assert self._result is not None
        return self._result


@dataclass
class _Active:
    """A request inside the running batch."""

    gen: Generation
    n: int  # buckets = rows
    prompt_len: int
    cached: int
    detok: IncrementalDetokenizer
    step: StepRequest
    t_start: float
    tokens: list[int] = field(default_factory=list)
    t_first: float = 0.0
    finish: str | None = None
    replay: list[int] = field(default_factory=list)  # what followed this prompt last time (a draft)

    @property
    def request(self) -> Request:
        return self.gen.request


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
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        packed_weights: bool | None = None,
    ):
        if packed_weights not in (None, True, False):
            raise ValueError(f"packed_weights={packed_weights!r}; use None (automatic), True or False")
        self.loaded = loaded
        self.model = loaded.model
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        self.prefill_chunk = prefill_chunk
        self.max_batch_rows = max_batch_rows
        self._pending: list[Generation] = []
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._freq_cache: dict[tuple[float, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._packed_mode = packed_weights
        self._packed = self._pack(packed_weights)  # None: the model's own layers
        self.stats = EngineStats()
        self._reset_batch()
        _ALL_ENGINES.add(self)

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

    def _packed_layers(self):
        """The packed layers for one forward pass, rebuilt if the model changed since packing."""
        if self._packed is not None and not self._packed.fresh():
            self._packed = self._pack(self._packed_mode)
        return self._packed.installed() if self._packed is not None else contextlib.nullcontext()

    # ---- public -------------------------------------------------------------------

    def submit(self, request: Request, loop: asyncio.AbstractEventLoop | None = None) -> Generation:
        """Check and queue a request; the returned handle streams its tokens."""
        self.check(request)
        gen = Generation(request, loop)
        with self._cond:
            if self._closed:
                raise RuntimeError("this engine is closed")
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="attention-buckets-engine", daemon=True)
                self._worker.start()
            self._pending.append(gen)
            self._cond.notify()
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
        if not request.prompt:
            raise ValueError("the prompt is empty; at least one token is needed")
        if not request.bases:
            raise ValueError("bases is empty; give at least one RoPE base")
        if len(request.bases) > self.max_batch_rows:
            raise ValueError(f"{len(request.bases)} buckets exceed max_batch_rows={self.max_batch_rows}")
        validate_aggregation(request.aggregation)
        if request.max_tokens is not None and (not isinstance(request.max_tokens, int) or request.max_tokens < 1):
            raise ValueError(f"max_tokens={request.max_tokens!r} must be None or an integer >= 1")
        window, n_prompt = self.loaded.max_positions, len(request.prompt)
        if n_prompt + (request.max_tokens or 1) > window:
            wanted = f"{n_prompt} prompt tokens + max_tokens {request.max_tokens}" if request.max_tokens else f"{n_prompt} prompt tokens + 1"
            raise ContextLengthError(
                f"{wanted} = {n_prompt + (request.max_tokens or 1)} tokens exceed the model's context window "
                f"of {window} tokens; shorten the prompt or lower max_tokens"
            )
        est = self.estimate_memory(n_prompt, request.max_tokens, len(request.bases))
        if not est.fits:
            gib = 1024**3
            raise MemoryBudgetError(
                f"this call needs about {est.needed / gib:.2f} GiB ({len(request.bases)} KV caches of "
                f"{n_prompt + (request.max_tokens or 0)} tokens: {est.kv_cache / gib:.2f} GiB; activations: "
                f"{est.activations / gib:.2f} GiB) but only {est.available / gib:.2f} GiB are free on "
                f"{self.loaded.device}; use fewer buckets, a shorter context or a lower max_tokens"
            )

    def estimate_memory(self, prompt_tokens: int, max_tokens: int | None, n_buckets: int) -> MemoryEstimate:
        """Memory for a call: N KV caches at prompt + max_tokens, plus prefill activations."""
        lm = self.loaded
        cfg = lm.config
        total = prompt_tokens + (max_tokens or 0)
        kv = n_buckets * total * lm.kv_bytes_per_token()
        chunk = min(prompt_tokens, self.prefill_chunk)
        width = 4 * cfg.hidden_size + 3 * getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)
        elem = torch.finfo(lm.dtype).bits // 8
        # hidden states and MLP intermediates of one chunk, the attention mask, and fp32 logits rows
        act = n_buckets * (chunk * width * elem + chunk * total + 4 * lm.vocab_size * 4)
        return MemoryEstimate(lm.weight_bytes(), kv, act, _free_memory(lm.device))

    def clear_prefix_cache(self) -> None:
        self.prefix_cache.clear()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker after the requests in flight (at interpreter exit, before torch goes away)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout)

    # ---- worker -------------------------------------------------------------------

    def _reset_batch(self) -> None:
        self._active: list[_Active] = []
        self._cache: BatchCache | None = None
        self._valid: torch.Tensor | None = None  # (rows, length) bool; None: no padding anywhere
        self._pos: torch.Tensor | None = None  # (rows,) next position of each row
        self._freqs: torch.Tensor | None = None  # (rows, d/2)
        self._scales: torch.Tensor | None = None  # (rows,)
        self._row_bases: list[float] = []

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._active and not self._closed:
                    self._cond.wait()
                if self._closed and not self._active:
                    for g in self._pending:
                        g._put(RuntimeError("the engine was closed"))
                    return
                new = self._take_pending()
            try:
                with torch.inference_mode():
                    if new:
                        self._admit(new)
                    if self._active:
                        self._step()
            except BaseException as exc:  # deliver to the callers, keep the worker alive
                for a in self._active:
                    a.gen._put(exc)
                for g in new:
                    if not any(a.gen is g for a in self._active):
                        g._put(exc)
                self._reset_batch()

    def _take_pending(self) -> list[Generation]:
        rows = sum(a.n for a in self._active)
        taken, kept = [], []
        for g in self._pending:
            n = len(g.request.bases)
            if g.cancelled:
                g.final = Result([], "", "cancelled", len(g.request.prompt), 0)
                g._put(g.final)
            elif rows + n <= self.max_batch_rows or (not taken and not self._active):
                taken.append(g)
                rows += n
            else:
                kept.append(g)
        self._pending = kept
        return taken

    def _frequencies(self, bases: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if bases not in self._freq_cache:
            self._freq_cache[bases] = bucket_frequencies(
                self.model.config, bases, self.loaded.device, rotary_module(self.model)
            )
        return self._freq_cache[bases]

    def _forward(self, input_ids, position_ids, attention_mask, cache, freqs, scales, row_bases) -> torch.Tensor:
        """One forward pass with each row's own RoPE base; returns last-position logits (rows, V)."""
        rotary = BucketedRotaryEmbedding(freqs, scales, self.model.config, row_bases)
        with bucketed_rotary(self.model, rotary), self._packed_layers():
            out = self.model(
                input_ids=input_ids,
                position_ids=position_ids,
                attention_mask=attention_mask,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return out.logits[:, -1]

    # Phase 1: admission (prefix lookup, prefill, first token, merge into the batch).
    def _admit(self, gens: list[Generation]) -> None:
        lm = self.loaded
        t_start = time.perf_counter()
        looked = [self._lookup(g.request) for g in gens]
        prefixes = [(p, kv) for p, kv, _ in looked]
        n_rows = [len(g.request.bases) for g in gens]
        P = max(p for p, _ in prefixes)
        S = max(len(g.request.prompt) - p for g, (p, _) in zip(gens, prefixes))
        rows = sum(n_rows)
        cfg = self.model.config
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        cache = BatchCache.empty(
            cfg.num_hidden_layers, rows, kv_heads, lm.head_dim, P + S + 64, lm.dtype, lm.device
        )
        ids = torch.zeros(rows, S, dtype=torch.long)
        pos = torch.zeros(rows, S, dtype=torch.long)
        valid = torch.zeros(rows, P + S, dtype=torch.bool)
        r = 0
        for g, n, (p, kv) in zip(gens, n_rows, prefixes):
            prompt = g.request.prompt
            s = len(prompt) - p
            if kv is not None:
                cache.write(kv, slice(r, r + n), P - p)
            valid[r : r + n, P - p : P] = True
            valid[r : r + n, P + S - s :] = True
            ids[r : r + n, S - s :] = torch.tensor(prompt[p:])
            pos[r : r + n, S - s :] = torch.arange(p, len(prompt))
            r += n
        for layer in cache.layers:
            layer.length = P
        freqs, scales = zip(*(self._frequencies(g.request.bases) for g in gens))
        freqs, scales = torch.cat(freqs), torch.cat(scales)
        row_bases = [b for g in gens for b in g.request.bases]
        padded = not bool(valid.all())
        dev = lm.device
        ids, pos, valid = ids.to(dev), pos.to(dev), valid.to(dev)
        for c0 in range(0, S, self.prefill_chunk):
            c1 = min(S, c0 + self.prefill_chunk)
            mask = valid[:, : P + c1] if padded else None
            logits = self._forward(ids[:, c0:c1], pos[:, c0:c1], mask, cache, freqs, scales, row_bases)
            self.stats.prefill_passes += 1
        actives = [self._activate(g, n, p, t_start) for g, n, (p, _) in zip(gens, n_rows, prefixes)]
        for a, (_, _, follow) in zip(actives, looked):
            a.replay = follow
        tokens, alive = process_logits(logits, [a.step for a in actives])
        next_pos = torch.tensor([len(g.request.prompt) for g, n in zip(gens, n_rows) for _ in range(n)], device=dev)
        self._join(actives, cache, valid if padded else None, next_pos, freqs, scales, row_bases)
        self._deliver(actives, tokens.tolist(), alive)

    def _lookup(self, request: Request):
        if not request.prefix_cache or self.prefix_cache.max_bytes <= 0:
            return 0, None, []
        return self.prefix_cache.lookup_with_continuation(request.bases, request.prompt, len(request.prompt) - 1)

    def _activate(self, gen: Generation, n: int, cached: int, t_start: float) -> _Active:
        req = gen.request
        seed = req.sampling.seed
        generator = None
        if not req.sampling.greedy:
            generator = torch.Generator()
            generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
        step = StepRequest(n, req.aggregation, req.sampling, generator, req.constraint, req.logit_bias)
        detok = IncrementalDetokenizer(self.loaded.tokenizer, req.stop)
        active = _Active(gen, n, len(req.prompt), cached, detok, step, t_start)
        step.generated = active.tokens  # the same list: the penalty sees every new token
        return active

    def _join(self, actives, cache, valid, next_pos, freqs, scales, row_bases) -> None:
        """Merge a prefilled group into the running batch, aligning lengths with left padding."""
        if self._cache is None:
            self._active, self._cache, self._valid = actives, cache, valid
            self._pos, self._freqs, self._scales, self._row_bases = next_pos, freqs, scales, row_bases
            return
        L_run, L_new = self._cache.length, cache.length
        run_valid = self._valid_mask()
        new_valid = valid if valid is not None else torch.ones(next_pos.shape[0], L_new, dtype=torch.bool, device=next_pos.device)
        if L_run < L_new:
            self._cache.shift_right(L_new - L_run)
            run_valid = _pad_left(run_valid, L_new - L_run)
        elif L_new < L_run:
            cache.shift_right(L_run - L_new)
            new_valid = _pad_left(new_valid, L_run - L_new)
        self._cache.concat_rows(cache)
        self._valid = torch.cat([run_valid, new_valid])
        self._active += actives
        self._pos = torch.cat([self._pos, next_pos])
        self._freqs = torch.cat([self._freqs, freqs])
        self._scales = torch.cat([self._scales, scales])
        self._row_bases = self._row_bases + row_bases

    def _valid_mask(self) -> torch.Tensor:
        if self._valid is not None:
            return self._valid
        return torch.ones(self._pos.shape[0], self._cache.length, dtype=torch.bool, device=self._pos.device)

    # Phase 2: one lockstep decoding step for every row.
    def _step(self) -> None:
        if len(self._active) == 1:
            a = self._active[0]
            draft = self._draft(a)
            if draft:
                self._speculative_step(a, draft)
                return
        dev = self.loaded.device
        last = torch.tensor([a.tokens[-1] for a in self._active for _ in range(a.n)], device=dev)
        mask = None
        if self._valid is not None:
            self._valid = torch.cat([self._valid, torch.ones(last.shape[0], 1, dtype=torch.bool, device=dev)], dim=1)
            mask = self._valid
        logits = self._forward(
            last[:, None], self._pos[:, None], mask, self._cache, self._freqs, self._scales, self._row_bases
        )
        self._pos = self._pos + 1
        self.stats.decode_passes += 1
        self.stats.max_rows = max(self.stats.max_rows, last.shape[0])
        self.stats.max_requests = max(self.stats.max_requests, len(self._active))
        tokens, alive = process_logits(logits, [a.step for a in self._active])
        self._deliver(self._active, tokens.tolist(), alive)

    # Phase 2b: a speculative step for a lone greedy request.
    def _draft(self, a: _Active) -> list[int]:
        """Tokens the request is likely to generate next, or [] (then decode one token)."""
        req = a.request
        k = req.speculative_tokens
        if k <= 0 or not req.sampling.greedy:
            return []
        done = len(a.tokens)
        if a.replay and a.replay[:done] == a.tokens and len(a.replay) > done:
            return a.replay[done : done + k]
        history = list(req.prompt) + a.tokens
        return _ngram_draft(history, k)

    def _speculative_step(self, a: _Active, draft: list[int]) -> None:
        """Feed the last token and the draft in one pass; keep the draft up to the first token the
        model would not have picked, plus the model's own token there."""
        dev = self.loaded.device
        inputs = torch.tensor([a.tokens[-1], *draft], device=dev)  # (S,)
        S = inputs.shape[0]
        ids = inputs.expand(a.n, S)
        pos = self._pos[:, None] + torch.arange(S, device=dev)
        mask = None
        if self._valid is not None:
            self._valid = torch.cat([self._valid, torch.ones(a.n, S, dtype=torch.bool, device=dev)], dim=1)
            mask = self._valid
        rotary = BucketedRotaryEmbedding(self._freqs, self._scales, self.model.config, self._row_bases)
        with bucketed_rotary(self.model, rotary), self._packed_layers():
            logits = self.model(
                input_ids=ids, position_ids=pos, attention_mask=mask, cache=self._cache, use_cache=True, logits_to_keep=S
            ).logits  # (n, S, V)
        self.stats.decode_passes += 1
        self.stats.drafted_tokens += len(draft)
        now, matched = time.perf_counter(), 0
        for j in range(S):
            if a.gen.cancelled:
                a.finish = "cancelled"
                break
            tokens, alive = process_logits(logits[:, j], [a.step])
            if not alive[0]:
                a.finish = "grammar_dead_end"
                break
            token = int(tokens[0])
            self._accept(a, token, now)
            if a.finish or j == S - 1 or token != draft[j]:
                break
            matched += 1
        self.stats.accepted_tokens += matched
        unused = S - (matched + 1)  # positions fed but not part of the output
        if unused:
            self._cache.rollback(unused)
            if self._valid is not None:
                self._valid = self._valid[:, : self._valid.shape[1] - unused]
        self._pos = self._pos + matched + 1
        if a.finish:
            self._retire()

    # Phase 3: hand each token to its request; retire finished requests.
    def _deliver(self, actives: Sequence[_Active], tokens: list[int], alive: list[bool]) -> None:
        now = time.perf_counter()
        for a, token, ok in zip(actives, tokens, alive):
            if a.gen.cancelled:
                a.finish = "cancelled"
            elif not ok:
                a.finish = "grammar_dead_end"
            else:
                self._accept(a, token, now)
        if any(a.finish for a in actives):
            self._retire()

    def _accept(self, a: _Active, token: int, now: float) -> None:
        req = a.request
        if not a.tokens:
            a.t_first = now - a.t_start
        a.tokens.append(token)
        if req.constraint is not None:
            req.constraint.accept(token)
        if token in self.loaded.eos_token_ids and not req.ignore_eos:
            a.finish = "stop"
            return
        text = a.detok.add(token)
        a.gen._put(TokenEvent(token, text))
        if a.detok.stopped or (req.constraint is not None and req.constraint.is_terminated()):
            a.finish = "stop"
        elif req.max_tokens is not None and len(a.tokens) >= req.max_tokens:
            a.finish = "length"
        elif a.prompt_len + len(a.tokens) >= self.loaded.max_positions:
            a.finish = "length"

    def _retire(self) -> None:
        keep_rows, keep = [], []
        r = 0
        for a in self._active:
            if a.finish:
                self._finish(a, r)
            else:
                keep.append(a)
                keep_rows.extend(range(r, r + a.n))
            r += a.n
        if not keep:
            self._reset_batch()
            return
        idx = torch.tensor(keep_rows, device=self.loaded.device)
        self._cache.select_rows(idx)
        self._active = keep
        self._pos = self._pos[idx]
        self._freqs, self._scales = self._freqs[idx], self._scales[idx]
        self._row_bases = [self._row_bases[i] for i in keep_rows]
        if self._valid is not None:
            self._valid = self._valid[idx]
            if bool(self._valid.all()):
                self._valid = None

    def _finish(self, a: _Active, row: int) -> None:
        req = a.request
        if a.finish != "stop" or not a.detok.stopped:
            tail = a.detok.flush()
            if tail:
                a.gen._put(TokenEvent(-1, tail))
        if req.prefix_cache and self.prefix_cache.max_bytes > 0 and a.finish != "cancelled":
            self._store_prefix(a, row)
        result = Result(
            token_ids=list(a.tokens),
            text=a.detok.text,
            finish_reason=a.finish,
            prompt_tokens=a.prompt_len,
            completion_tokens=len(a.tokens),
            cached_tokens=a.cached,
            time_to_first_token=a.t_first,
            total_seconds=time.perf_counter() - a.t_start,
        )
        a.gen.final = result
        a.gen._put(result)

    def _store_prefix(self, a: _Active, row: int) -> None:
        # The cache holds the prompt and the generated tokens fed back so far
        # (all but the last one sampled, unless the request ended without sampling).
        positions = torch.nonzero(self._valid_mask()[row]).flatten()
        tokens = (list(a.request.prompt) + a.tokens)[: positions.numel()]
        if len(tokens) != positions.numel():
            return
        per_row = [self._cache.gather(row + i, positions) for i in range(a.n)]
        kv = [
            (torch.stack([rk[layer][0] for rk in per_row]), torch.stack([rk[layer][1] for rk in per_row]))
            for layer in range(len(self._cache.layers))
        ]
        self.prefix_cache.store(a.request.bases, tokens, kv)


def forward_buckets(model: torch.nn.Module, input_ids: Sequence[int], bases: Sequence[float]) -> torch.Tensor:
    """Logits of one prompt under each base: (n_bases, seq, vocab), one forward pass, no cache.

    The building block of the engine, exposed for inspection and tests.
    """
    ids = torch.tensor([list(input_ids)] * len(bases), device=model.device)
    pos = torch.arange(ids.shape[1], device=model.device).expand_as(ids)
    freqs, scales = bucket_frequencies(model.config, tuple(bases), model.device, rotary_module(model))
    rotary = BucketedRotaryEmbedding(freqs, scales, model.config, list(bases))
    with torch.inference_mode(), bucketed_rotary(model, rotary):
        return model(input_ids=ids, position_ids=pos, use_cache=False).logits


def _ngram_draft(history: list[int], k: int, sizes: tuple[int, ...] = (3, 2)) -> list[int]:
    """Prompt-lookup drafting: the tokens that followed the latest earlier occurrence of the
    history's last n-gram (tool arguments and JSON keys are often copied from the context)."""
    for n in sizes:
        if len(history) <= n:
            continue
        tail = history[-n:]
        for start in range(len(history) - n - 1, -1, -1):
            if history[start : start + n] == tail:
                follow = history[start + n : start + n + k]
                if follow:
                    return follow
    return []


def _pad_left(valid: torch.Tensor, n: int) -> torch.Tensor:
    return torch.cat([torch.zeros(valid.shape[0], n, dtype=torch.bool, device=valid.device), valid], dim=1)


def _free_memory(device: torch.device) -> int | None:
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


_ENGINES: dict[int, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_ALL_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for engine in list(_ALL_ENGINES):
        engine.close(timeout=5.0)


def get_engine(loaded: LoadedModel, prefix_cache_bytes: int | None = None) -> Engine:
    """The one engine of a loaded model (created on first use)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(id(loaded))
        if engine is None or engine.loaded is not loaded:
            engine = Engine(loaded, prefix_cache_bytes=DEFAULT_PREFIX_CACHE_BYTES if prefix_cache_bytes is None else prefix_cache_bytes)
            _ENGINES[id(loaded)] = engine
        elif prefix_cache_bytes is not None:
            engine.prefix_cache.max_bytes = max(engine.prefix_cache.max_bytes, prefix_cache_bytes)
        return engine
