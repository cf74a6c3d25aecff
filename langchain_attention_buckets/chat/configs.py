"""Named configurations: ways of running the chat model, shared by ``preset=`` and the benchmarks.

A ``BenchConfig`` names a base set, a merge rule, a strategy and the layers the buckets run in;
``CONFIGS`` holds the built-in ones (``preset="paper-max"`` applies one, ``attention-buckets bench
accuracy --configs`` compares them, ``tune`` searches them). They live below the chat model so that
``presets`` reads them without looking up to the benchmarks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from .settings import ADAPTIVE_TOOL_BASES

__all__ = ["BASELINE", "CANDIDATE_CONFIGS", "CONFIGS", "DEFAULT_CONFIGS", "BenchConfig", "key_config"]


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
    runs = dataclasses.replace(config, bases=ADAPTIVE_TOOL_BASES if tools_bound else None)
    for named in CONFIGS.values():
        if dataclasses.replace(named, name=runs.name) == runs:
            return named.to_dict()
    return runs.to_dict()
