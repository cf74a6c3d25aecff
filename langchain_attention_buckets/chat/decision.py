"""The tool decision in ``tool_choice="auto"``: call a tool now, or answer in text.

A model with tools bound and a free choice makes the decision at the first token of its
answer: the call opener (``<tool_call>``, or its first token where the tokenizer splits it)
or a text token. A small model leans to text even when the request plainly needs a tool,
and once the results are in it may call again instead of answering. The policy is a
calibrated logit bias on the opener's first token at that first step, one value for each
state of the conversation:

- ``before``: no tool result since the latest user message (the request is new);
- ``after``: results have come back for it.

Once the opener's first token is picked, the rest of the opener is forced, so a picked
call is a call (the grammar then constrains its name and arguments). A positive bias acts
at the first token only. A negative one holds for the whole answer until a call opens: a
model that starts in text ("The result of reserve_stock is:") and would open a call after
it is held to its answer too (that text-then-call pattern is how a small model loops after
its results).

The bias is a decision threshold: greedy decoding opens a call when the opener's merged
logit plus the bias beats every text token, so the margin ``logit(opener) - max(text)``
at the first step decides, and ``attention-buckets bench decisions`` measures that margin on
labelled conversations and picks the bias that maximises balanced accuracy on a
development split (docs/chat-model.md has the command and the numbers).

Owns ``ToolDecision`` (the policy's values and checks), ``DEFAULT_DECISION`` (the values
calibrated for the embedded model), ``conversation_state`` and ``DecisionConstraint`` (the
``sampling.TokenConstraint`` that applies the bias and forces the opener). Imports
``tool_format`` only; no LangChain, no engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..engine.sampling import Constraint, keep_only
from ..formats.hermes import TOOL_CALL_OPEN

State = Literal["before", "after"]


@dataclass(frozen=True)
class ToolDecision:
    """Logit bias on opening a tool call at the answer's first token, by conversation state."""

    before: float = 0.0
    after: float = 0.0

    def bias(self, state: State) -> float:
        return self.before if state == "before" else self.after

    @property
    def off(self) -> bool:
        return self.before == 0.0 and self.after == 0.0


OFF = ToolDecision()

# Calibrated for the embedded SmolLM2-135M-Instruct on the development split of
# examples/tool_catalog/decisions.jsonl (20 conversations per label and state), with the
# model's own base (a six-bucket pass costs six times as much; its margins were checked on the
# test split with these values, docs/chat-model.md):
#     attention-buckets bench decisions --configs one --limit 20 --output bench-out/decisions-one
DEFAULT_DECISION = ToolDecision(before=3.25, after=-6.0)


def check_tool_call_bias(value: Any) -> Any:
    """``value`` if it is "auto", None, a number or a (before, after) pair of numbers; else ValueError."""
    if value is None or value == "auto":
        return value
    numbers = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = len(numbers) == 2 if isinstance(value, (list, tuple)) else True
    for v in numbers:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            ok = False
    if not ok:
        raise ValueError(
            f"tool_call_bias={value!r} is not allowed; use 'auto' (calibrated), None (off), one finite "
            "number, or a pair (before results, after results) of finite numbers"
        )
    return value


def resolve_decision(value: Any, embedded: bool) -> ToolDecision:
    """The policy a checked ``tool_call_bias`` stands for; "auto": calibrated for the embedded
    model, off for other models (calibrate one with ``attention-buckets bench decisions``)."""
    if value is None:
        return OFF
    if value == "auto":
        return DEFAULT_DECISION if embedded else OFF
    if isinstance(value, (list, tuple)):
        return ToolDecision(float(value[0]), float(value[1]))
    return ToolDecision(float(value), float(value))


def conversation_state(messages: Sequence[dict]) -> State:
    """"after" when a tool result follows the latest user message (chat-format dicts), else "before"."""
    for message in reversed(messages):
        if message.get("role") == "tool":
            return "after"
        if message.get("role") == "user":
            return "before"
    return "before"


def opener_ids(tokenizer, opener: str = TOOL_CALL_OPEN) -> tuple[int, ...]:
    """A call opener's token ids under ``tokenizer`` (one id where it is a token of its own);
    default: the package's own ``<tool_call>``."""
    return tuple(tokenizer.encode(opener, add_special_tokens=False))


@dataclass(frozen=True)
class Reasoning:
    """Where the answer's reasoning runs, in tokens: the decision waits until it has ended.

    Attributes:
        start, end: the token ids of the reasoning's delimiters (``<think>``, ``</think>``).
        opened: the prompt opened it (the answer starts inside the reasoning).
        gap: tokens skipped after it ends (the newlines before the answer).
    """

    start: tuple[int, ...]
    end: tuple[int, ...]
    opened: bool = False
    gap: frozenset[int] = frozenset()


def reasoning_ids(tokenizer, delimiters: tuple[str, str] | None, opened: bool) -> Reasoning | None:
    """The ``Reasoning`` of a format's delimiters under ``tokenizer`` (None: the format has none)."""
    if not delimiters:
        return None
    start, end = (tuple(tokenizer.encode(d, add_special_tokens=False)) for d in delimiters)
    gap = frozenset(i for ws in ("\n", "\n\n", " ") for i in tokenizer.encode(ws, add_special_tokens=False))
    return Reasoning(start, end, opened, gap)


class DecisionConstraint(Constraint):
    """A ``sampling.TokenConstraint`` around a grammar (or none): ``apply_bias`` biases the opener
    at the first step of the answer (a negative bias: at every step until a call opens); after the
    opener's first token at that step, ``apply_steering`` forces the rest of it. The grammar's own
    mask and steering pass through. Not thread-safe; one per call.

    With ``reasoning``, the answer's first step is the first after the reasoning (and the newlines
    after it): the reasoning itself is never biased.
    """

    def __init__(self, inner: Any | None, opener: Sequence[int], bias: float, reasoning: Reasoning | None = None) -> None:
        if not opener:
            raise ValueError("the call opener has no tokens")
        self.inner = inner
        self.opener = tuple(opener)
        self.bias = float(bias)
        self.reasoning = reasoning
        self._step = 0
        self._first = 0  # the answer's first step (after any reasoning)
        self._thinking = bool(reasoning and reasoning.opened)
        self._forcing = False  # inside the opener, after its first token
        self._recent: list[int] = []  # the last tokens (enough for the opener and the reasoning's end)
        self._call_started = False

    def apply_bias(self, logits) -> None:
        if self.inner is not None and hasattr(self.inner, "apply_bias"):
            self.inner.apply_bias(logits)
        if self._forcing or self._thinking:
            return
        if self._step == self._first or (self.bias < 0 and not self._call_started):
            logits[self.opener[0]] += self.bias

    def apply_mask(self, logits) -> bool:
        return self.inner is None or self.inner.apply_mask(logits)

    def apply_steering(self, logits) -> None:
        if self._forcing:  # inside the opener: its next token, even one the model ruled out
            keep_only(logits, [self.opener[self._step - self._first]])
        elif self.inner is not None and hasattr(self.inner, "apply_steering"):
            self.inner.apply_steering(logits)

    def accept(self, token_id: int) -> None:
        if self.inner is not None:
            self.inner.accept(token_id)
        r = self.reasoning
        keep = max(len(self.opener), len(r.end) if r else 0)
        self._recent = [*self._recent, int(token_id)][-keep:]
        if self._thinking:
            if tuple(self._recent[-len(r.end) :]) == r.end:
                self._thinking, self._first = False, self._step + 1
        elif self._step == self._first and r and token_id in r.gap and self._first > 0:
            self._first += 1  # the newlines between the reasoning and the answer
        elif self._step == self._first and r and r.start and token_id == r.start[0] != self.opener[0]:
            self._thinking = True  # the model opens its reasoning: the decision comes after it
        elif self._step == self._first:
            self._forcing = token_id == self.opener[0] and len(self.opener) > 1
        self._step += 1
        if self._forcing and self._step - self._first >= len(self.opener):
            self._forcing = False
        if tuple(self._recent[-len(self.opener) :]) == self.opener:
            self._call_started = True

    def is_terminated(self) -> bool:
        return self.inner is not None and self.inner.is_terminated()

    @property
    def closed_early(self) -> bool:
        return bool(getattr(self.inner, "closed_early", False))
