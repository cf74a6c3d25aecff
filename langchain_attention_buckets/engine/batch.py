"""The running batch: every row of every admitted request, and each request's decoding state.

Rows are (request, bucket) pairs: request i owns ``n`` consecutive rows, one per RoPE base.
``Batch`` keeps the per-row state in step (keys and values, padding mask, next positions,
rotary frequencies, bases, per-layer frequencies) through the few operations that change it:
``join`` a prefilled group, ``extend`` by the positions a forward pass feeds, ``rollback``
rejected ones, and ``drop_finished`` requests. ``Running`` is one request's state: its sampler, detokenizer and
tokens, and ``accept``, which hands it one chosen token.

May import: ``kvcache``, ``detok``, ``loading`` (type), ``sampling``, ``engine.request``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .detok import IncrementalDetokenizer
from .kvcache import KV, BatchCache
from .loading import LoadedModel
from .request import Generation, Request, Result, TokenEvent
from .sampling import StepRequest


@dataclass(eq=False)
class Running:
    """A request inside the running batch."""

    gen: Generation
    n: int  # buckets = rows
    prompt_len: int
    cached: int  # prompt tokens taken from the prefix cache
    detok: IncrementalDetokenizer
    step: StepRequest
    t_start: float
    eos_ids: frozenset[int]
    max_positions: int
    tokens: list[int] = field(default_factory=list)
    t_first: float = 0.0
    finish: str | None = None
    replay: list[int] = field(default_factory=list)  # what followed this prompt last time (a draft)

    @classmethod
    def start(cls, gen: Generation, loaded: LoadedModel, cached: int, replay: list[int], t_start: float) -> Running:
        """The state of a request about to be prefilled: its sampler (seeded) and detokenizer."""
        req = gen.request
        n, seed = len(req.bases), req.sampling.seed
        generator = None
        if not req.sampling.greedy:
            generator = torch.Generator()
            generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
        step = StepRequest(n, req.aggregation, req.sampling, generator, req.constraint, req.logit_bias)
        detok = IncrementalDetokenizer(loaded.tokenizer, req.stop)
        run = cls(gen, n, len(req.prompt), cached, detok, step, t_start, loaded.eos_token_ids, loaded.max_positions)
        run.replay = replay
        step.generated = run.tokens  # the same list: the penalty sees every new token
        return run

    @property
    def request(self) -> Request:
        return self.gen.request

    def accept(self, token: int, now: float) -> None:
        """Take one chosen token: stream its text, and set ``finish`` when the request is done."""
        req = self.request
        if not self.tokens:
            self.t_first = now - self.t_start
        self.tokens.append(token)
        if req.constraint is not None:
            req.constraint.accept(token)
        if token in self.eos_ids and not req.ignore_eos:
            self.finish = "stop"
            return
        text = self.detok.add(token)
        self.gen.put(TokenEvent(token, text))
        if self.detok.stopped or (req.constraint is not None and req.constraint.is_terminated()):
            self.finish = "stop"
        elif req.max_tokens is not None and len(self.tokens) >= req.max_tokens:
            self.finish = "length"
        elif self.prompt_len + len(self.tokens) >= self.max_positions:
            self.finish = "length"

    def result(self) -> Result:
        """The request's result; flushes the text the detokenizer still held back."""
        if self.finish != "stop" or not self.detok.stopped:
            tail = self.detok.flush()
            if tail:
                self.gen.put(TokenEvent(-1, tail))
        return Result(
            token_ids=list(self.tokens),
            text=self.detok.text,
            finish_reason=self.finish,
            prompt_tokens=self.prompt_len,
            completion_tokens=len(self.tokens),
            cached_tokens=self.cached,
            time_to_first_token=self.t_first,
            total_seconds=time.perf_counter() - self.t_start,
        )


class Batch:
    """The rows of the running requests, kept in step.

    Attributes:
        requests: the running requests in row order.
        cache: keys and values of every row (None: the batch is empty).
        valid: (rows, length) bool, False at left padding; None: no padding anywhere.
        pos: (rows,) the next position of each row.
        freqs: (rows, rotary_dim // 2) and scales: (rows,): each row's rotary frequencies.
        bases: each row's RoPE base.
        layer_freqs: (rows, n_layers, kv_heads, rotary_dim // 2) each row's frequencies per layer
            and key/value head (``headscale``: Ms-PoE, buckets in some layers); None: ``freqs``
            everywhere, in every row.
    """

    def __init__(self, requests: list[Running] | None = None, cache: BatchCache | None = None,
                 valid: torch.Tensor | None = None, pos: torch.Tensor | None = None,
                 freqs: torch.Tensor | None = None, scales: torch.Tensor | None = None,
                 bases: list[float] | None = None, layer_freqs: torch.Tensor | None = None):
        self.requests: list[Running] = requests or []
        self.cache = cache
        self.valid = valid
        self.pos = pos
        self.freqs, self.scales = freqs, scales
        self.bases: list[float] = bases or []
        self.layer_freqs = layer_freqs

    def clear(self) -> None:
        """Empty the batch (its last request finished)."""
        self.requests, self.cache, self.valid, self.pos = [], None, None, None
        self.freqs, self.scales, self.bases, self.layer_freqs = None, None, [], None

    def valid_mask(self) -> torch.Tensor:
        """``valid``, or all True when there is no padding: (rows, length) bool."""
        if self.valid is not None:
            return self.valid
        return torch.ones(self.pos.shape[0], self.cache.length, dtype=torch.bool, device=self.pos.device)

    def starts(self) -> Iterator[tuple[Running, int]]:
        """Each request with its first row."""
        row = 0
        for run in self.requests:
            yield run, row
            row += run.n

    def join(self, group: Batch) -> None:
        """Add a prefilled group's rows below these, aligning lengths with left padding."""
        if self.cache is None:
            self.requests, self.cache, self.valid, self.pos = group.requests, group.cache, group.valid, group.pos
            self.freqs, self.scales, self.bases = group.freqs, group.scales, group.bases
            self.layer_freqs = group.layer_freqs
            return
        L_run, L_new = self.cache.length, group.cache.length
        run_valid, new_valid = self.valid_mask(), group.valid_mask()
        if L_run < L_new:
            self.cache.shift_right(L_new - L_run)
            run_valid = _pad_left(run_valid, L_new - L_run)
        elif L_new < L_run:
            group.cache.shift_right(L_run - L_new)
            new_valid = _pad_left(new_valid, L_run - L_new)
        self.cache.concat_rows(group.cache)
        self.valid = torch.cat([run_valid, new_valid])
        self.requests = self.requests + group.requests
        self.pos = torch.cat([self.pos, group.pos])
        self.layer_freqs = _cat_layer_freqs(self.layer_freqs, self.freqs, group.layer_freqs, group.freqs)
        self.freqs = torch.cat([self.freqs, group.freqs])
        self.scales = torch.cat([self.scales, group.scales])
        self.bases = self.bases + group.bases

    def extend(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Make room for ``n`` new positions per row; their position ids (rows, n) and the
        attention mask of the pass that feeds them (None: no padding)."""
        pos = self.pos[:, None] if n == 1 else self.pos[:, None] + torch.arange(n, device=self.pos.device)
        self.pos = self.pos + n
        if self.valid is not None:
            ones = torch.ones(self.valid.shape[0], n, dtype=torch.bool, device=self.valid.device)
            self.valid = torch.cat([self.valid, ones], dim=1)
        return pos, self.valid

    def rollback(self, n: int) -> None:
        """Forget the last ``n`` positions of every row (rejected speculative tokens)."""
        self.cache.rollback(n)
        if self.valid is not None:
            self.valid = self.valid[:, : self.valid.shape[1] - n]
        self.pos = self.pos - n

    def drop_finished(self) -> None:
        """Keep only the rows of requests that have not finished."""
        keep, keep_rows = [], []
        for run, row in self.starts():
            if not run.finish:
                keep.append(run)
                keep_rows.extend(range(row, row + run.n))
        if not keep:
            self.clear()
            return
        idx = torch.tensor(keep_rows, device=self.pos.device)
        self.cache.select_rows(idx)
        self.requests = keep
        self.pos = self.pos[idx]
        self.freqs, self.scales = self.freqs[idx], self.scales[idx]
        self.bases = [self.bases[i] for i in keep_rows]
        if self.layer_freqs is not None:
            self.layer_freqs = self.layer_freqs[idx]
        if self.valid is not None:
            self.valid = self.valid[idx]
            if bool(self.valid.all()):
                self.valid = None

    def filled(self, row: int) -> torch.Tensor:
        """The physical positions of one row that hold keys and values (not padding): (n,)."""
        return torch.nonzero(self.valid_mask()[row]).flatten()

    def gather(self, rows: range, positions: torch.Tensor) -> list[KV]:
        """Per layer, copies of ``rows``' keys and values at ``positions``: (len(rows), kv_heads, n, head_dim)."""
        per_row = [self.cache.gather(row, positions) for row in rows]
        return [
            (torch.stack([rk[layer][0] for rk in per_row]), torch.stack([rk[layer][1] for rk in per_row]))
            for layer in range(len(self.cache.layers))
        ]


def _cat_layer_freqs(a: torch.Tensor | None, freqs_a: torch.Tensor, b: torch.Tensor | None,
                     freqs_b: torch.Tensor) -> torch.Tensor | None:
    """Two groups' per-layer frequencies stacked; a group without them gets its ``freqs`` in
    every layer and head (None if neither group has any)."""
    if a is None and b is None:
        return None
    shape = (a if a is not None else b).shape[1:3]  # (n_layers, kv_heads)

    def full(t, freqs):
        return t if t is not None else freqs[:, None, None, :].expand(-1, *shape, -1)

    return torch.cat([full(a, freqs_a), full(b, freqs_b)])


def _pad_left(valid: torch.Tensor, n: int) -> torch.Tensor:
    return torch.cat([torch.zeros(valid.shape[0], n, dtype=torch.bool, device=valid.device), valid], dim=1)
