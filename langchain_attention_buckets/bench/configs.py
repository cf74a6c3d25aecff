"""Configurations compared by the accuracy benchmark (named in ``chat.configs``), and how models are made for them."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

from langchain_core.language_models import BaseChatModel

from ..chat.configs import BASELINE, CANDIDATE_CONFIGS, CONFIGS, DEFAULT_CONFIGS, BenchConfig, key_config
from .tasks import Item

ModelFactory = Callable[[BenchConfig], BaseChatModel]


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
        from ..chat.model import ChatAttentionBuckets  # lazy: torch, transformers

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


__all__ = ["BASELINE", "CANDIDATE_CONFIGS", "CONFIGS", "DEFAULT_CONFIGS", "BenchConfig", "ModelFactory", "default_factory",
           "key_config", "parse_configs", "reorder_items"]
