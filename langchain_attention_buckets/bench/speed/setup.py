"""What every speed measurement shares: the run's setup, prompts, base sets, timing and memory.

May import the engine, loading and bases; never a measurement module of this package.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ...engine import Engine, MemoryBudgetError, Request
from ...engine.bases import PAPER_RATIOS
from ...engine.loading import LoadedModel

# two more ratios beyond the paper's six, for N = 7 and N = 8
_RATIOS = (*PAPER_RATIOS, 2.25, 2.75)


class Budget:
    """The time a run may take (``--time-budget``): measurements not started once it is spent,
    or once the next one is predicted to overrun it, are listed as skipped instead.

    None: no limit. Counted from construction (the command's start, model loading included).
    """

    def __init__(self, seconds: float | None = None):
        self.seconds = seconds
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        return math.inf if self._deadline is None else self._deadline - time.monotonic()

    def allows(self, predicted: float = 0.0) -> bool:
        """Whether a measurement predicted to take ``predicted`` seconds ends inside the budget."""
        return self.left() > predicted


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the device (or host) running out of memory, or the engine refusing a call
    that would (``MemoryBudgetError``), which a measurement records as such and goes on from,
    rather than a bug."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError, MemoryBudgetError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def failure(exc: BaseException) -> str:
    """What a measurement records when it could not run: "out of memory" or the error, one line."""
    if isinstance(exc, MemoryBudgetError):
        return f"out of memory (refused before running: {str(exc).splitlines()[0]})"[:300]
    if is_out_of_memory(exc):
        return "out of memory"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


def release_memory(device: torch.device) -> None:
    """Hand cached device memory back after a measurement ran out of it (the next one starts clean)."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class Setup:
    """One ``bench speed`` run: the loaded model, its engine and the command's settings.

    ``model``, ``device`` and ``dtype`` are as given on the command line (the parts that
    load their own model or chat model pass them on).
    """

    loaded: LoadedModel
    engine: Engine
    model: str | None
    device: str
    dtype: str
    ns: list[int]  # numbers of buckets
    lengths: list[int]  # prompt lengths in tokens
    decode_tokens: int
    repeats: int
    parts: frozenset[str]
    progress: bool | None = None  # progress bars (None: on a terminal, see ``progress.progress_enabled``)
    budget: Budget = field(default_factory=Budget)  # --time-budget
    on_partial: Callable[[dict], None] | None = None  # called with a part's results so far (speed.json)

    def partial(self, result: dict) -> None:
        """Hand a part's results so far to the command, which writes them out at once, so a run
        stopped from outside (a time limit) keeps every measurement made before it."""
        if self.on_partial is not None:
            self.on_partial(result)


def bases_for(n: int, base: float) -> tuple[float, ...]:
    """The first ``n`` of the paper's ratios (then 2.25, 2.75) times the model's base."""
    return tuple(base * r for r in _RATIOS[:n])


def make_prompt(loaded: LoadedModel, length: int, seed: int = 0) -> tuple[int, ...]:
    """``length`` token ids of ordinary text (a fixed passage repeated), deterministic."""
    text = (
        "The committee met on Tuesday to review the quarterly inventory figures, the shipping "
        "schedule for the northern warehouses and the new supplier contracts. "
    )
    ids = loaded.tokenizer.encode(text * (length // 20 + 2), add_special_tokens=False)
    return tuple(ids[seed : seed + length])


def user_prompt(loaded: LoadedModel, text: str) -> tuple[int, ...]:
    """Token ids of one user message in the model's chat template, ready for the reply."""
    chat = loaded.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    return tuple(loaded.tokenizer.encode(chat, add_special_tokens=False))


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory during a block: CUDA allocator peak, or resident-set growth on CPU (sampled)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = _rss()
        self._stop = threading.Event()
        self._max = self._base

        def sample():
            while not self._stop.wait(0.005):
                self._max = max(self._max, _rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, _rss()) - self._base
        return False


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


# ---- the engine: N rows of one batch -------------------------------------------------------


def timed_run(engine: Engine, prompt, bases, decode_tokens: int) -> tuple[float, float, int]:
    """One request: time to first token, mean decode step, peak memory above the start."""
    # speculation off: every token is one forward pass (the repeated benchmark text would
    # otherwise be drafted from the context and make decoding look faster than it is)
    req = Request(prompt, tuple(bases), max_tokens=decode_tokens, prefix_cache=False, ignore_eos=True, speculative_tokens=0)
    with PeakMemory(engine.loaded.device) as mem:
        res = engine.generate(req)
    step = (res.total_seconds - res.time_to_first_token) / max(1, res.completion_tokens - 1)
    return res.time_to_first_token, step, mem.peak


def run_engine(engine: Engine, prompt, bases, decode_tokens: int, repeats: int) -> dict:
    """Medians over ``repeats`` requests after one warm-up: speed, KV-cache bytes, peak memory."""
    timed_run(engine, prompt, bases, decode_tokens)  # warm-up
    ttft, step, peak = zip(*(timed_run(engine, prompt, bases, decode_tokens) for _ in range(repeats)))
    n, length = len(bases), len(prompt)
    return {
        "ttft_s": median(ttft),
        "decode_step_s": median(step),
        "prefill_tok_s": length / median(ttft),
        "decode_tok_s": 1.0 / median(step),
        "kv_bytes": n * (length + decode_tokens) * engine.loaded.kv_bytes_per_token(),
        "peak_bytes": int(median(peak)),
    }
