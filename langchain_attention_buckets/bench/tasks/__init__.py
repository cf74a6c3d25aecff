"""Accuracy-by-position tasks: one module per task, data generated offline from a seed.

Every task exposes `make_samples(*, n_items, positions, samples_per_position,
seed) -> list[Sample]`; `TASKS` maps the command-line name to it with the task's
default item count and reply length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from . import kv, qa, tools
from .base import Item, Sample


@dataclass(frozen=True)
class TaskSpec:
    name: str
    make_samples: Callable[..., list[Sample]]
    default_items: int
    max_tokens: int  # enough for the answer (a tool call for "tools") and a short preamble
    metrics: tuple[str, ...]  # primary first


TASKS: dict[str, TaskSpec] = {
    "kv": TaskSpec("kv", kv.make_samples, kv.DEFAULT_ITEMS["kv"], kv.MAX_TOKENS["kv"], ("correct",)),
    "kv-short": TaskSpec("kv-short", kv.make_short_samples, kv.DEFAULT_ITEMS["kv-short"],
                         kv.MAX_TOKENS["kv-short"], ("correct",)),
    "tools": TaskSpec("tools", tools.make_samples, tools.DEFAULT_ITEMS, tools.MAX_TOKENS,
                      tools.ToolSample.metrics),
    "qa": TaskSpec("qa", qa.make_samples, qa.DEFAULT_ITEMS, qa.MAX_TOKENS, ("correct",)),
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def make_samples(
    task: str, *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int
) -> list[Sample]:
    """The samples of `task`: question-major, one per (question, position)."""
    return get_task(task).make_samples(
        n_items=n_items, positions=positions, samples_per_position=samples_per_position, seed=seed
    )


__all__ = ["Item", "Sample", "TASKS", "TaskSpec", "get_task", "make_samples"]
