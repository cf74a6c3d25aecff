"""What every accuracy task shares: items, samples, deterministic generation.

A task builds *questions*: a set of `n_items` items (key-value pairs, documents,
tools) of which exactly one is essential, plus a question and its gold answer.
Each question is then shown once per position: the essential item is moved to
that index and the other items keep their relative order. So the positions of a
question differ only in where the essential item sits, and comparisons across
positions (and across configurations) are paired on the same content.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from langchain_core.messages import AIMessage, BaseMessage


@dataclass(frozen=True)
class Item:
    """One unit of context that can be moved: a pair, a document, a tool.

    Attributes:
        id: Stable identity within the question (a key, a title, a tool name).
        text: The text the prompt shows for this item, verbatim.
        payload: Structured form where the prompt needs one (a tool's schema).
    """

    id: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """One question shown with its essential item at one position.

    Attributes:
        task: Task name ("kv", "kv-short", "tools", "qa").
        question_index: Which question of the run (0..samples_per_position-1).
        position: Index of the essential item in `items`.
        items: The items in prompt order, essential item at `position`.
        question: The user-facing question or request.
        answer: The gold answer (a value, a tool name, an answer string).
        answer_args: For tools, the argument values the request states.
    """

    task: str
    question_index: int
    position: int
    items: tuple[Item, ...]
    question: str
    answer: str
    answer_args: dict[str, Any] = field(default_factory=dict)

    metrics: ClassVar[tuple[str, ...]] = ("correct",)
    """Metric names in scores; the first is the primary one."""

    @property
    def gold(self) -> Item:
        return self.items[self.position]

    def messages(self, items: Sequence[Item] | None = None) -> list[BaseMessage]:
        """The chat messages for `items` in the given order (default: `self.items`)."""
        raise NotImplementedError

    def tools(self, items: Sequence[Item] | None = None) -> list[dict[str, Any]] | None:
        """Tools to bind, in order (OpenAI format), or None for a text task."""
        return None

    def score(self, message: AIMessage) -> dict[str, bool]:
        """Scores of the model's reply, one bool per name in `metrics`."""
        raise NotImplementedError

    @property
    def uid(self) -> str:
        """A hash of everything the model sees and the answer it is scored against."""
        blob = json.dumps(
            {
                "task": self.task,
                "position": self.position,
                "messages": [(m.type, m.content) for m in self.messages()],
                "tools": self.tools(),
                "answer": self.answer,
                "answer_args": self.answer_args,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def question_rng(task: str, seed: int, n_items: int, question_index: int) -> random.Random:
    """The generator for one question; string seeding is stable across processes."""
    return random.Random(f"{task}|{seed}|{n_items}|{question_index}")


def place(gold: Item, others: Sequence[Item], position: int) -> tuple[Item, ...]:
    """`others` in their order with `gold` inserted at `position`."""
    items = list(others)
    items.insert(position, gold)
    return tuple(items)


def check_settings(n_items: int, positions: Sequence[int], samples_per_position: int) -> None:
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if samples_per_position < 1:
        raise ValueError(f"samples_per_position must be >= 1, got {samples_per_position}")
    bad = [p for p in positions if not 0 <= p < n_items]
    if bad:
        raise ValueError(f"positions {bad} out of range: allowed 0..{n_items - 1}")


def reply_text(message: AIMessage) -> str:
    text = message.text
    return text if isinstance(text, str) else str(message.content)


# Fictional names: built from syllables so no model knows the facts beforehand.
_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r",
           "s", "st", "t", "th", "tr", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou"]
_CODAS = ["", "", "l", "n", "r", "s", "th", "nd", "rk", "m"]


def fictional_name(rng: random.Random, taken: set[str]) -> str:
    """A new capitalised 2-3 syllable name; never a substring of, or containing, a taken one."""
    while True:
        n = rng.choice((2, 2, 3))
        name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(n))
        name = name.capitalize()
        low = name.lower()
        if 5 <= len(name) <= 12 and not any(low in t or t in low for t in taken):
            taken.add(low)
            return name
