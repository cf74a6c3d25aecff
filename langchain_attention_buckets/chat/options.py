"""The options of one chat-model call: the chat model's fields, overridden by the call's, checked once.

Owns ``CallOptions`` (frozen) and every check of a per-call setting: sampling
(``SamplingParams``), ``max_tokens``, ``stop``, ``aggregation``, ``logit_bias``, loop detection,
tools and tool choice, ``response_format``, ``tool_call_bias``, and the error for an option this
model does not know (with the nearest one it does). The chat model builds ``CallOptions.from_fields`` at construction
and ``merged`` once per call (the langchain-ollama ``_chat_params`` pattern).
Imports ``sampling``, ``merge``, ``tool_choice``, ``decision`` and ``grammar_select``; never the
engine or LangChain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..engine.merge import validate_aggregation
from ..engine.sampling import SamplingParams, check_max_tokens
from ..text.tool_choice import Choice, normalize_tool_choice
from .decision import check_tool_call_bias
from .grammar_select import check_response_format

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
        "tool_call_bias",
        "loop_detection",
        "loop_min_chars",
    }
)
"""The call options the chat model reads."""

LANGCHAIN_OPTIONS = frozenset({"stream", "structured_output_format"})
"""Options LangChain itself may pass with a call (``invoke(..., stream=True)`` decides streaming;
``structured_output_format`` is the older name of ``ls_structured_output_format``): accepted, not
read. Any option outside these and ``CALL_OPTIONS`` is an error, as an API server would answer."""

_NUMBERS = (
    "temperature", "top_p", "top_k", "seed", "repetition_penalty", "max_tokens", "speculative_tokens", "loop_min_chars",
)


def check_not_bool(name: str, value) -> None:
    """bool is an int subclass: ``temperature=True`` is a bug, not 1.0."""
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: a boolean is not a number; give a number (or None for the default)")


def nearest(name: str, allowed) -> str:
    """" (did you mean 'x'?)" for the allowed name closest to ``name``, or ""."""
    import difflib

    close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
    if not close:  # max_new_tokens -> max_tokens: the shared words count more than the letters
        words = set(name.split("_"))
        scored = [(len(words & set(a.split("_"))), a) for a in allowed if "_" in a or a in words]
        best = max(scored, default=(0, ""))
        close = [best[1]] if best[0] else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_call_options(kwargs: Mapping[str, Any]) -> None:
    """ValueError for a call option this model does not know, naming it and the nearest known one."""
    unknown = sorted(set(kwargs) - CALL_OPTIONS - LANGCHAIN_OPTIONS)
    if unknown:
        name = unknown[0]
        raise ValueError(
            f"unknown call option {name!r}{nearest(name, CALL_OPTIONS)}; the options a call reads: "
            f"{', '.join(sorted(CALL_OPTIONS - {'ls_structured_output_format'}))}"
        )
    for name in _NUMBERS:
        check_not_bool(name, kwargs.get(name))

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
    tool_call_bias: Any = "auto"  # checked; decision.resolve_decision reads it
    loop_detection: bool = True
    loop_min_chars: int = 48

    @property
    def loop_chars(self) -> int | None:
        """The shortest repeated span that ends an answer as a loop; None: loop detection off."""
        return self.loop_min_chars if self.loop_detection else None

    @classmethod
    def from_fields(cls, llm: Any) -> CallOptions:
        """The defaults of every call: the chat model's fields, checked (ValueError names the bad one)."""
        for name in _NUMBERS:
            check_not_bool(name, getattr(llm, name))
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
            tool_call_bias=check_tool_call_bias(llm.tool_call_bias),
            loop_detection=_check_loop_detection(llm.loop_detection),
            loop_min_chars=_check_loop_min_chars(llm.loop_min_chars),
        )

    def merged(self, kwargs: Mapping[str, Any], stop: list[str] | None = None) -> CallOptions:
        """These options overridden by one call's ``stop`` and keyword options, checked.

        An option this model does not know is a ValueError naming it (see ``check_call_options``).
        """
        check_call_options(kwargs)
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
            tool_call_bias=check_tool_call_bias(kwargs.get("tool_call_bias", self.tool_call_bias)),
            loop_detection=_check_loop_detection(kwargs.get("loop_detection", self.loop_detection)),
            loop_min_chars=_check_loop_min_chars(kwargs.get("loop_min_chars", self.loop_min_chars)),
        )

    def bias(self, vocab_size: int) -> tuple[tuple[int, float], ...]:
        """``logit_bias`` as (token id, bias) pairs, each id checked against the model's vocabulary."""
        if not self.logit_bias:
            return ()
        out = []
        for token, value in self.logit_bias.items():
            token = int(token)
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
            if not 0 <= token < vocab_size or bad:
                raise ValueError(f"logit_bias entry {token!r}: {value!r} needs a token id in [0, {vocab_size}) and a number")
            out.append((token, float(value)))
        return tuple(out)


def _check_loop_detection(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"loop_detection={value!r} must be True or False")
    return value


def _check_loop_min_chars(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"loop_min_chars={value!r} must be an integer >= 1 (characters)")
    return value


def _check_stop(stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    if not all(isinstance(s, str) for s in stop):
        raise ValueError(f"stop={stop!r} must be a list of strings")
    return tuple(stop)
