"""Accuracy-by-position tasks: one module per task, data generated offline from a seed.

Every task exposes `make_samples(*, n_items, positions, samples_per_position,
seed) -> list[Sample]`; `TASKS` maps the command-line name to it with the task's
default item count and reply length. A path to a JSONL file of the user's own items
(`user`) is a task too: `get_task("my_tools.jsonl")`.

Splits: `TaskSpec.samples(split="dev" | "test")`. A built-in task's test questions are
generated from another seed (`TEST_SEED_OFFSET`), so they are other questions than the dev
ones. For `tools` and `qa` the test split is also held out: its tools
(`tool_catalog.HELDOUT_CATALOG`) and document templates (`qa.HELDOUT_RELATIONS`) are ones the
dev split never shows and no configuration was designed or tuned on (`make_samples(...,
heldout=True)`). `kv` and `kv-short` hold no designed content (random keys, words and
numbers), so their test split is another seed only. `split=None` is the dev data. A user
file's rows carry their own split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from . import kv, qa, tools, user
from .base import Item, Sample

TEST_SEED_OFFSET = 1_000_003
"""Added to the seed for a built-in task's test split: questions the dev split never shows
(for `tools` and `qa` also drawn from held-out tools and documents)."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    make_samples: Callable[..., list[Sample]]
    default_items: int
    max_tokens: int  # enough for the answer (a tool call for "tools") and a short preamble
    metrics: tuple[str, ...]  # primary first
    generated: bool = True  # built in, generated from a seed; False: rows from a user file
    heldout: bool = False  # the test split passes make_samples(heldout=True): content dev never shows

    def samples(
        self, *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int,
        split: str | None = None,
    ) -> list[Sample]:
        """The samples of one split.

        Args:
            split: "dev", "test" or None. A built-in task: None and "dev" are the samples of
                `seed`; "test" those of `seed + TEST_SEED_OFFSET`, from the held-out tools or
                documents where the task has them (`heldout`). A user file: its rows of that
                split, None its every row.
        """
        if split not in (None, *user.SPLITS):
            raise ValueError(f"split={split!r}; allowed: 'dev', 'test' or None")
        kw = dict(n_items=n_items, positions=positions, samples_per_position=samples_per_position)
        if not self.generated:
            return self.make_samples(**kw, seed=seed, split=split)
        if split != "test":
            return self.make_samples(**kw, seed=seed)
        if self.heldout:
            kw["heldout"] = True
        return self.make_samples(**kw, seed=seed + TEST_SEED_OFFSET)


TASKS: dict[str, TaskSpec] = {
    "kv": TaskSpec("kv", kv.make_samples, kv.DEFAULT_ITEMS["kv"], kv.MAX_TOKENS["kv"], ("correct",)),
    "kv-short": TaskSpec("kv-short", kv.make_short_samples, kv.DEFAULT_ITEMS["kv-short"],
                         kv.MAX_TOKENS["kv-short"], ("correct",)),
    "tools": TaskSpec("tools", tools.make_samples, tools.DEFAULT_ITEMS, tools.MAX_TOKENS,
                      tools.ToolSample.metrics, heldout=True),
    "qa": TaskSpec("qa", qa.make_samples, qa.DEFAULT_ITEMS, qa.MAX_TOKENS, ("correct",), heldout=True),
}


def get_task(name: str) -> TaskSpec:
    """A built-in task by name, or the user's own items from a ``.jsonl`` file (see ``user``)."""
    if name in TASKS:
        return TASKS[name]
    if name.endswith(".jsonl") or Path(name).is_file():
        return user_task(name)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}, or give a .jsonl file of your own items")


def user_task(path: str | Path) -> TaskSpec:
    """The task of a user JSONL file: its kind's reply length and metrics, the smallest row's item count."""
    rows = user.load_user_file(path)
    like = TASKS["tools"] if rows[0].kind == "tool" else TASKS["qa"]
    return TaskSpec(str(path), partial(user.make_samples, rows, str(path)), user.min_items(rows),
                    like.max_tokens, like.metrics, generated=False)


def make_samples(
    task: str, *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int
) -> list[Sample]:
    """The samples of `task`: question-major, one per (question, position)."""
    return get_task(task).make_samples(
        n_items=n_items, positions=positions, samples_per_position=samples_per_position, seed=seed
    )


__all__ = ["Item", "Sample", "TASKS", "TEST_SEED_OFFSET", "TaskSpec", "get_task", "make_samples", "user_task"]
