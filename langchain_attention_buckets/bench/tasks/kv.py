"""Key-value retrieval, in the style of "Lost in the Middle" (Liu et al. 2023).

`kv`: a JSON object of UUID keys and UUID values; the question names one key,
the reply is correct if it contains that key's value. Hard for small models.

`kv-short`: common words as keys and 4-digit numbers as values, one
"word: number" per line, so a 135M-parameter model can solve it at short
lengths and its curve is not flat at zero (SmolLM2-135M, 30 pairs, ~330
tokens, greedy: right 8/8 first, 2/8 middle, 5/8 last; a JSON layout scored lower).
Correct if the reply contains the number (not as part of a longer number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from .base import Item, Sample, check_settings, place, question_rng, reply_text
from .words import COMMON_WORDS

MAX_TOKENS = {"kv": 48, "kv-short": 24}
DEFAULT_ITEMS = {"kv": 32, "kv-short": 64}


@dataclass(frozen=True)
class KVSample(Sample):
    def messages(self, items: Sequence[Item] | None = None) -> list[BaseMessage]:
        items = self.items if items is None else items
        if self.task == "kv":
            body = "{" + ",\n".join(it.text for it in items) + "}"
            text = (
                "Extract the value corresponding to the specified key in the JSON object below.\n\n"
                f"JSON data:\n{body}\n\n"
                f'Key: "{self.question}"\nCorresponding value:'
            )
        else:
            body = "\n".join(it.text for it in items)
            text = (
                f"Here is a list of words and their numbers.\n\n{body}\n\n"
                f'What is the number for "{self.question}"? Answer with the number only.'
            )
        return [HumanMessage(text)]

    def score(self, message: AIMessage) -> dict[str, bool]:
        text = reply_text(message)
        if self.task == "kv":
            return {"correct": self.answer.lower() in text.lower()}
        return {"correct": re.search(rf"(?<!\d){re.escape(self.answer)}(?!\d)", text) is not None}


def _uuid(rng) -> str:
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _pairs(task: str, rng, n_items: int) -> list[tuple[str, str]]:
    if task == "kv":
        return [(_uuid(rng), _uuid(rng)) for _ in range(n_items)]
    if n_items > len(COMMON_WORDS):
        raise ValueError(f"kv-short supports at most {len(COMMON_WORDS)} items, got {n_items}")
    words = rng.sample(COMMON_WORDS, n_items)
    numbers = rng.sample(range(1000, 10000), n_items)
    return [(w, str(n)) for w, n in zip(words, numbers)]


def _item(task: str, key: str, value: str) -> Item:
    return Item(id=key, text=f'"{key}": "{value}"' if task == "kv" else f"{key}: {value}")


def make_samples(
    *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int, task: str = "kv"
) -> list[Sample]:
    """Questions x positions for `kv` or `kv-short` (see module docstring)."""
    if task not in MAX_TOKENS:
        raise ValueError(f"task must be 'kv' or 'kv-short', got {task!r}")
    check_settings(n_items, positions, samples_per_position)
    samples: list[Sample] = []
    for q in range(samples_per_position):
        rng = question_rng(task, seed, n_items, q)
        pairs = _pairs(task, rng, n_items)
        items = [_item(task, k, v) for k, v in pairs]
        gold, others = items[0], items[1:]
        for pos in positions:
            samples.append(KVSample(task, q, pos, place(gold, others, pos), pairs[0][0], pairs[0][1]))
    return samples


def make_short_samples(
    *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int
) -> list[Sample]:
    """`kv-short`: word keys, 4-digit number values."""
    return make_samples(
        n_items=n_items, positions=positions, samples_per_position=samples_per_position,
        seed=seed, task="kv-short",
    )
