"""The options of one chat-model call: the chat model's fields, overridden by the call's, checked once.

Owns ``CallOptions`` (frozen) and every check of a per-call setting: sampling
(``SamplingParams``), ``max_tokens``, ``stop``, ``aggregation``, ``logit_bias``,
tools and tool choice, ``response_format``, and the warning for options this
model ignores. The chat model builds ``CallOptions.from_fields`` at construction
and ``merged`` once per call (the langchain-ollama ``_chat_params`` pattern).
Imports ``sampling``, ``merge``, ``tool_choice`` and ``grammar_select``; never the
engine or LangChain.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .grammar_select import check_response_format
from .merge import validate_aggregation
from .sampling import SamplingParams, check_max_tokens
from .tool_choice import Choice, normalize_tool_choice

CALL_OPTIONS = frozenset(
    {
        "model",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "max_tokens",
        "stop",
        "aggregation",
        "ls_structured_output_format",
        "strict",
        "logit_bias",
        "repetition_penalty",
    }
)
"""The call options the chat model reads; any other is ignored with a warning."""

_SAMPLING = ("temperature", "top_k", "top_p", "seed", "repetition_penalty")


@dataclass(frozen=True)
class CallOptions:
    """What one call runs with. Built by ``from_fields`` and ``merged``, which check every value."""

    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = 512
    stop: tuple[str, ...] = ()
    aggregation: str = "confidence"
    logit_bias: Mapping[int, float] | None = None  # checked against the vocabulary by `bias`
    speculative_tokens: int = 8
    parallel_tool_calls: bool = False
    model: str | None = None  # this call's model; None: the chat model's own
    tools: tuple[dict, ...] = ()  # OpenAI format, as bind_tools wrote them
    choice: Choice = Choice("auto")
    response_format: dict | None = None

    @classmethod
    def from_fields(cls, llm: Any) -> CallOptions:
        """The defaults of every call: the chat model's fields, checked (ValueError names the bad one)."""
        sampling = SamplingParams(*(getattr(llm, name) for name in _SAMPLING))
        check_max_tokens(llm.max_tokens)
        if not isinstance(llm.speculative_tokens, int) or llm.speculative_tokens < 0:
            raise ValueError(f"speculative_tokens={llm.speculative_tokens!r} must be an integer >= 0")
        return cls(
            sampling=sampling,
            max_tokens=llm.max_tokens,
            stop=_check_stop(llm.stop),
            aggregation=validate_aggregation(llm.aggregation),
            logit_bias=llm.logit_bias,
            speculative_tokens=llm.speculative_tokens,
            parallel_tool_calls=llm.parallel_tool_calls,
        )

    def merged(self, kwargs: Mapping[str, Any], stop: list[str] | None = None) -> CallOptions:
        """These options overridden by one call's ``stop`` and keyword options, checked.

        Options this model does not read are ignored with a warning.
        """
        unknown = set(kwargs) - CALL_OPTIONS
        if unknown:
            warnings.warn(f"ignored call options {sorted(unknown)}", stacklevel=4)
        tools = tuple(kwargs.get("tools") or ())
        choice = normalize_tool_choice(kwargs.get("tool_choice"), [t["function"]["name"] for t in tools])
        response_format = check_response_format(kwargs.get("response_format"))
        overrides = {name: kwargs[name] for name in _SAMPLING if name in kwargs}
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        check_max_tokens(max_tokens)
        parallel = kwargs.get("parallel_tool_calls")
        return replace(
            self,
            sampling=replace(self.sampling, **overrides) if overrides else self.sampling,
            max_tokens=max_tokens,
            stop=_check_stop(stop or kwargs.get("stop") or self.stop),
            aggregation=validate_aggregation(kwargs.get("aggregation", self.aggregation)),
            logit_bias=kwargs.get("logit_bias", self.logit_bias),
            parallel_tool_calls=self.parallel_tool_calls if parallel is None else bool(parallel),
            model=kwargs.get("model"),
            tools=tools,
            choice=choice,
            response_format=response_format,
        )

    def bias(self, vocab_size: int) -> tuple[tuple[int, float], ...]:
        """``logit_bias`` as (token id, bias) pairs, each id checked against the model's vocabulary."""
        if not self.logit_bias:
            return ()
        out = []
        for token, value in self.logit_bias.items():
            token = int(token)
            if not 0 <= token < vocab_size or not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"logit_bias entry {token!r}: {value!r} needs a token id in [0, {vocab_size}) and a number")
            out.append((token, float(value)))
        return tuple(out)


def _check_stop(stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    if not all(isinstance(s, str) for s in stop):
        raise ValueError(f"stop={stop!r} must be a list of strings")
    return tuple(stop)
