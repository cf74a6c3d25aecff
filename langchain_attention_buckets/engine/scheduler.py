"""The queue and the worker thread of one engine: admit, step, retire.

``Scheduler`` owns the queue of submitted requests, the worker thread that owns the model,
and the running ``Batch``. Between steps the worker admits queued requests (prefix lookup,
prefill, first token, prompt keys and values into the prefix cache, join the batch); every
step decodes all rows at once, or speculates for a lone greedy request; finished requests are
retired, their keys and values (prompt and answer) stored in the prefix cache. When the
queue and the batch are empty after work, the worker hands freed heap back to the system
(``heap.IdleTrim``: glibc's ``malloc_trim``, at most once per interval, never while a
request waits).

A deterministic request runs alone: it is admitted only into an empty batch, and nothing
joins it until it finishes; its prompt is prefilled in blocks of ``deterministic_block``
tokens at multiples of the block (absolute positions), and it reuses only cached blocks
computed that way. Every forward pass it runs then has the same shapes and inputs whether
its prefix was cached or not, so its tokens are the same bit for bit.

May import: ``kvcache``, ``loading``, ``packed`` (type), ``rope`` (frequencies), ``sampling``,
``engine.request``, ``engine.batch``, ``engine.steps``, ``engine.heap``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch

from . import fastpaths, steps
from .batch import Batch, Running
from .heap import IdleTrim
from .kvcache import KV, PrefixCache
from .loading import LoadedModel
from .packed import PackedWeights
from .request import Generation, Request, Result
from .rope import bucket_frequencies, rotary_module
from .sampling import process_logits
from .steps import EngineStats


class Scheduler:
    """Runs submitted requests on one worker thread, in one continuously batched set of rows.

    Args:
        loaded: the model and tokenizer.
        prefix_cache: keys and values of earlier prompts (read at admission, written at retirement).
        stats: the counters the steps update.
        packed: returns the packed layers for the next forward pass (None: the model's own).
        prefill_chunk: prompt tokens per prefill forward pass.
        max_batch_rows: most rows (requests x buckets) decoded together.
        deterministic_block: prefill block of deterministic requests (tokens).
        idle_trim: hands freed heap back when the worker goes idle (None: never).
    """

    def __init__(self, loaded: LoadedModel, prefix_cache: PrefixCache, stats: EngineStats,
                 packed: Callable[[], PackedWeights | None], prefill_chunk: int, max_batch_rows: int,
                 deterministic_block: int, idle_trim: IdleTrim | None = None):
        self.loaded, self.model = loaded, loaded.model
        self.prefix_cache = prefix_cache
        self.stats = stats
        self.prefill_chunk = prefill_chunk
        self.max_batch_rows = max_batch_rows
        self.deterministic_block = deterministic_block
        self.idle_trim = idle_trim if idle_trim is not None else IdleTrim(None)
        self.cond = threading.Condition()  # guards the queue; held by the worker while it takes from it
        self.batch = Batch()
        self._packed = packed
        self._pending: list[Generation] = []
        self._worker: threading.Thread | None = None
        self._closed = False
        self._freq_cache: dict[tuple[float, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- the caller's side -----------------------------------------------------------

    def submit(self, gen: Generation) -> None:
        """Queue a checked request; starts the worker if it is not running."""
        with self.cond:
            if self._closed:
                raise RuntimeError("this engine is closed")
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="attention-buckets-engine", daemon=True)
                self._worker.start()
            self._pending.append(gen)
            self.cond.notify()

    def activity(self) -> dict[str, int]:
        """Requests and rows in the running batch, and requests queued for it."""
        with self.cond:
            queued = len(self._pending)
        running = list(self.batch.requests)
        return {"running": len(running), "rows": sum(run.n for run in running), "queued": queued}

    def close(self, timeout: float) -> None:
        """Stop the worker after the requests in flight; queued requests get a RuntimeError."""
        with self.cond:
            self._closed = True
            self.cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout)

    # ---- the worker --------------------------------------------------------------------

    def _run(self) -> None:
        owed = False  # work done since the last idle trim
        while True:
            with self.cond:
                while not self._pending and not self.batch.requests and not self._closed:
                    wait = self.idle_trim.wait_time() if owed else None
                    if wait == 0:
                        break  # idle with a trim due: run it outside the lock
                    self.cond.wait(wait)  # a submit wakes it; so does the trim coming due
                if self._closed and not self.batch.requests:
                    for g in self._pending:
                        g.put(RuntimeError("the engine was closed"))
                    return
                new = self._take_pending()
            if not new and not self.batch.requests:
                if owed and self.idle_trim():
                    owed = False
                continue
            owed = True
            try:
                with torch.inference_mode():
                    if new:
                        self._admit(new)
                    if self.batch.requests:
                        self._step()
            except Exception as exc:  # deliver to the callers, keep the worker alive
                self._fail(new, exc)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: no caller is left waiting
                self._fail(new, exc)
                with self.cond:
                    for g in self._pending:
                        g.put(exc)
                    self._pending = []
                    self._worker = None  # this thread is ending: the next submit starts another
                raise

    def _fail(self, new: list[Generation], exc: BaseException) -> None:
        """Hand ``exc`` to every request in the batch and to the ones being admitted; empty the batch."""
        running = [run.gen for run in self.batch.requests]
        for g in running:
            g.put(exc)
        for g in new:
            if not any(g is r for r in running):
                g.put(exc)
        self.batch.clear()

    def _take_pending(self) -> list[Generation]:
        """Queued requests that fit in the batch (one always does when the batch is empty).

        A deterministic request is taken only alone into an empty batch, and nothing joins it;
        requests behind it in the queue wait, so it is not starved."""
        rows = sum(run.n for run in self.batch.requests)
        taken, kept = [], []
        alone = any(run.request.deterministic for run in self.batch.requests)
        for g in self._pending:
            n = len(g.request.bases)
            if g.cancelled:
                g.finish(Result([], "", "cancelled", len(g.request.prompt), 0))
            elif alone:
                kept.append(g)
            elif g.request.deterministic:
                (taken if not taken and not self.batch.requests else kept).append(g)
                alone = True  # nothing joins it, and nothing behind it overtakes it
            elif rows + n <= self.max_batch_rows or (not taken and not self.batch.requests):
                taken.append(g)
                rows += n
            else:
                kept.append(g)
        self._pending = kept
        return taken

    # Phase 1: admission.
    def _admit(self, gens: list[Generation]) -> None:
        t_start = time.perf_counter()
        # 1. the longest cached prefix of each prompt (and what followed it last time: a draft)
        found = [self._lookup(g.request) for g in gens]
        runs = [Running.start(g, self.loaded, p, follow, t_start) for g, (p, _, follow) in zip(gens, found)]
        # 2. the new rows: cached prefixes copied in, the rest of each prompt laid out to prefill
        freqs, scales = zip(*(self._frequencies(g.request.bases) for g in gens))
        prefixes = [(p, kv) for p, kv, _ in found]
        group, ids, pos = steps.new_rows(self.loaded, runs, prefixes, torch.cat(freqs), torch.cat(scales))
        # 3. prefill, all new requests in the same forward passes (a deterministic one: alone,
        #    in aligned blocks; its cached prefix is a whole number of blocks)
        chunk = self.deterministic_block if gens[0].request.deterministic else self.prefill_chunk
        logits = steps.prefill(self.model, group, ids, pos, chunk, self._packed(), self.stats)
        # 4. the first token of each; the prompts' keys and values go to the prefix cache now,
        #    so a request cancelled or abandoned early still leaves the next turn fast;
        #    then the new rows join the running batch
        tokens, alive = process_logits(logits, [run.step for run in runs])
        steps.deliver(runs, tokens.tolist(), alive)
        self._store_prompts(group)
        self.batch.join(group)
        self._retire()

    def _lookup(self, request: Request) -> tuple[int, list[KV] | None, list[int]]:
        if not request.prefix_cache or self.prefix_cache.max_bytes <= 0:
            return 0, None, []
        block = self.deterministic_block if request.deterministic else 0
        return self.prefix_cache.lookup_with_continuation(
            request.cache_key, request.prompt, len(request.prompt) - 1, block
        )

    def _exact(self, request: Request, positions: int) -> int:
        """How many leading positions of a request's rows are bit-exact for reuse (whole aligned
        prefill blocks; only deterministic requests prefill that way)."""
        if not request.deterministic:
            return 0
        return min(positions, len(request.prompt)) // self.deterministic_block * self.deterministic_block

    def _store_prompts(self, group: Batch) -> None:
        for run, row in group.starts():
            req = run.request
            if req.prefix_cache and self.prefix_cache.max_bytes > 0:
                positions = group.filled(row)
                kv = fastpaths.to_host(group.gather(range(row, row + run.n), positions), fastpaths.of(self.model))
                self.prefix_cache.store(req.cache_key, req.prompt, kv, self._exact(req, len(req.prompt)))

    def _frequencies(self, bases: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if bases not in self._freq_cache:
            self._freq_cache[bases] = bucket_frequencies(
                self.model.config, bases, self.loaded.device, rotary_module(self.model)
            )
        return self._freq_cache[bases]

    # Phase 2: one step for every row (a speculative one for a lone greedy request).
    def _step(self) -> None:
        requests = self.batch.requests
        draft = steps.draft(requests[0]) if len(requests) == 1 else []
        if draft:
            steps.speculate(self.model, self.batch, draft, self._packed(), self.stats)
        else:
            steps.decode(self.model, self.batch, self._packed(), self.stats)
        self._retire()

    # Phase 3: finished requests leave the batch; their keys and values go to the prefix cache.
    def _retire(self) -> None:
        if not any(run.finish for run in self.batch.requests):
            return
        for run, row in self.batch.starts():
            if run.finish:
                if run.request.prefix_cache and self.prefix_cache.max_bytes > 0 and run.finish != "cancelled":
                    self._store_prefix(run, row)
                run.gen.finish(run.result())
        self.batch.drop_finished()

    def _store_prefix(self, run: Running, row: int) -> None:
        # The cache holds the prompt and the generated tokens fed back so far
        # (all but the last one sampled, unless the request ended without sampling).
        # The prompt alone was stored at admission.
        positions = self.batch.filled(row)
        tokens = (list(run.request.prompt) + run.tokens)[: positions.numel()]
        if len(tokens) != positions.numel() or len(tokens) <= run.prompt_len:
            return
        kv = fastpaths.to_host(self.batch.gather(range(row, row + run.n), positions), fastpaths.of(self.model))
        self.prefix_cache.store(run.request.cache_key, tokens, kv, self._exact(run.request, len(tokens)))
