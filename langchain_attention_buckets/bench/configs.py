"""Configurations compared by the accuracy benchmark, and how models are made for them."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from langchain_core.language_models import BaseChatModel

from .tasks import Item


@dataclass(frozen=True)
class BenchConfig:
    """One way of running the model.

    Attributes:
        name: Label in tables, plots and the cache key.
        bases: RoPE bases as `ChatAttentionBuckets` takes them ("paper", "auto", a
            number, a list); None means the model's own base (one row, the plain model).
        aggregation: How the rows' logits are merged (a name in `merge.MERGE_RULES`).
        reorder: Apply LangChain's `LongContextReorder` to the items before the
            prompt is built (the baseline a LangChain user already has).
        strategy: `ChatAttentionBuckets`' strategy: "buckets" (N rows, one per base) or
            "ms-poe" (one pass, per-head position scaling; `bases` must then be None).
        bucket_layers: `ChatAttentionBuckets`' fraction of the layers (from the bottom) in
            which the rows run their own bases; 1.0: all.
    """

    name: str
    bases: str | float | tuple[float, ...] | None = None
    aggregation: str = "confidence"
    reorder: bool = False
    strategy: str = "buckets"
    bucket_layers: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.bases, list):  # keep the dataclass hashable
            object.__setattr__(self, "bases", tuple(self.bases))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(self.bases, tuple):
            d["bases"] = list(self.bases)
        # defaults stay out, so that earlier runs' cache keys still match
        if self.strategy == "buckets":
            del d["strategy"]
        if self.bucket_layers == 1.0:
            del d["bucket_layers"]
        return d


ModelFactory = Callable[[BenchConfig], BaseChatModel]

DEFAULT_CONFIGS: tuple[BenchConfig, ...] = (
    BenchConfig("plain"),
    BenchConfig("default", bases="adaptive"),  # the chat model's default: paper with tools bound, else plain
    BenchConfig("paper", bases="paper"),
    BenchConfig("auto", bases="auto"),
    BenchConfig("paper-mean", bases="paper", aggregation="mean"),
    BenchConfig("paper-max", bases="paper", aggregation="max"),
    BenchConfig("plain+reorder", reorder=True),
)
# Candidates that keep the trained row's strengths (docs/results.md, "Candidates"): merge rules
# anchored on the trained row, base sets around the trained base, and Ms-PoE.
CANDIDATE_CONFIGS: tuple[BenchConfig, ...] = (
    BenchConfig("paper-anchored", bases="paper", aggregation="anchored"),
    BenchConfig("paper-unsure", bases="paper", aggregation="anchored-unsure"),
    BenchConfig("paper-weighted", bases="paper", aggregation="weighted"),
    BenchConfig("near", bases="near"),
    BenchConfig("near-anchored", bases="near", aggregation="anchored"),
    BenchConfig("narrow-anchored", bases="narrow", aggregation="anchored"),
    BenchConfig("paper-lower-half", bases="paper", bucket_layers=0.5),
    BenchConfig("ms-poe", strategy="ms-poe"),
)
CONFIGS: dict[str, BenchConfig] = {c.name: c for c in DEFAULT_CONFIGS + CANDIDATE_CONFIGS}
BASELINE = "plain"


def key_config(config: BenchConfig, *, tools_bound: bool) -> dict[str, Any]:
    """What keys `config`'s records in the result cache: the configuration the call really runs.

    ``bases="adaptive"`` (the `default` config) runs the paper set when the sample binds tools and
    the model's own base otherwise (`ChatAttentionBuckets.bucket_choice`), so it is keyed as that
    configuration. Where that is a named config (`plain`, `paper`), both share their records: a
    run of `plain,default` on a task without tools computes each call once.
    """
    if config.bases != "adaptive":
        return config.to_dict()
    from ..chat.model import ADAPTIVE_TOOL_BASES  # lazy: torch

    runs = dataclasses.replace(config, bases=ADAPTIVE_TOOL_BASES if tools_bound else None)
    for named in CONFIGS.values():
        if dataclasses.replace(named, name=runs.name) == runs:
            return named.to_dict()
    return runs.to_dict()


def parse_configs(spec: str | Sequence[str | BenchConfig]) -> list[BenchConfig]:
    """Configs from "plain,paper" or a list of names / BenchConfig objects."""
    names = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else spec
    out: list[BenchConfig] = []
    for c in names:
        if isinstance(c, str):
            if c not in CONFIGS:
                raise ValueError(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
            c = CONFIGS[c]
        out.append(c)
    if not out:
        raise ValueError("no configurations given")
    seen = [c.name for c in out]
    if len(set(seen)) != len(seen):
        raise ValueError(f"config names must be unique, got {seen}")
    return out


def default_factory(model: str | None = None, *, max_tokens: int = 64) -> ModelFactory:
    """A factory of `ChatAttentionBuckets` chat models, greedy, with `max_tokens`.

    `bases=None` becomes the model's own rope base (one row: the plain model);
    omitting `bases` would give the chat model's default, "adaptive" (the `default` config). Instances with
    the same `model` share weights, so one per config is cheap.
    """

    def make(config: BenchConfig) -> BaseChatModel:
        from langchain_attention_buckets import ChatAttentionBuckets  # lazy: torch, transformers

        kwargs: dict[str, Any] = dict(
            model=model, aggregation=config.aggregation, temperature=0, max_tokens=max_tokens
        )
        if config.strategy != "buckets":
            kwargs["strategy"] = config.strategy
        if config.bucket_layers != 1.0:
            kwargs["bucket_layers"] = config.bucket_layers
        if config.bases is None:
            kwargs["bases"] = float(ChatAttentionBuckets(**kwargs).load().base)
        else:
            kwargs["bases"] = list(config.bases) if isinstance(config.bases, tuple) else config.bases
        return ChatAttentionBuckets(**kwargs)

    return make


def reorder_items(items: Sequence[Item]) -> list[int]:
    """The order `LongContextReorder` gives `items`, as indices into `items`.

    `LongContextReorder` expects documents sorted by relevance, most relevant
    first, and moves the most relevant ones to the two ends. The benchmark's item
    order plays the role of a retriever's ranking: position i means "ranked i-th".
    The reordering is the tool retriever's (`retrieval.reorder`), applied to the indices.
    """
    from ..retrieval.tools import reorder

    with warnings.catch_warnings():  # langchain_community warns about its own sunset on import
        warnings.simplefilter("ignore", DeprecationWarning)
        return reorder(list(range(len(items))), "long_context")
