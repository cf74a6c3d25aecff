"""The options of one chat-model call: the call settings of the table, overridden by the call's own.

``CallOptions.from_fields`` reads the chat model's call settings (``settings.SETTINGS`` rows with
``call=True``) once, at construction; ``merged`` applies one call's keyword options and ``stop``,
each checked by its row's check (the langchain-ollama ``_chat_params`` pattern). The request-level
options that are no settings (``tools``, ``tool_choice``, ``response_format``, ``model``) are
checked here too. Nothing here imports the engine's scheduler or LangChain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..engine.sampling import SamplingParams
from ..text.tool_choice import Choice, normalize_tool_choice
from .grammar_select import check_response_format
from .settings import SETTINGS, Setting, call_settings, check_stop, did_you_mean

REQUEST_OPTIONS = frozenset({"model", "tools", "tool_choice", "response_format"})
"""Call options that are no settings: what bind_tools and with_structured_output bind."""

LANGCHAIN_OPTIONS = frozenset({"stream", "structured_output_format", "ls_structured_output_format", "strict"})
"""Options LangChain itself may pass with a call (``invoke(..., stream=True)`` decides streaming;
``(ls_)structured_output_format`` describes a structured-output call to tracers; ``strict`` comes
with bind_tools): accepted, not read. Any option outside these, ``REQUEST_OPTIONS`` and the call
settings is an error, as an API server would answer."""

_SAMPLING = ("temperature", "top_k", "top_p", "seed", "repetition_penalty")


def call_option_names(table: tuple[Setting, ...] = SETTINGS) -> frozenset[str]:
    """The call options the chat model reads."""
    return frozenset(call_settings(table)) | REQUEST_OPTIONS


def check_call_options(kwargs: Mapping[str, Any], table: tuple[Setting, ...] = SETTINGS) -> None:
    """ValueError for a call option this model does not know, naming it and the nearest known one."""
    known = call_option_names(table)
    unknown = sorted(set(kwargs) - known - LANGCHAIN_OPTIONS)
    if unknown:
        name = unknown[0]
        raise ValueError(
            f"unknown call option {name!r}{did_you_mean(name, known)}; the options a call reads: {', '.join(sorted(known))}"
        )


@dataclass(frozen=True)
class CallOptions:
    """What one call runs with: every call setting (``values``, read as attributes:
    ``options.max_tokens``), and the request's tools, tool choice, response format and model."""

    values: Mapping[str, Any] = field(default_factory=lambda: {s.name: s.default for s in call_settings(SETTINGS).values()})
    table: tuple[Setting, ...] = field(default=SETTINGS, repr=False, compare=False)
    model: str | None = None  # this call's model; None: the chat model's own
    tools: tuple[dict, ...] = ()  # OpenAI format, as bind_tools wrote them
    choice: Choice = Choice("auto")
    response_format: dict | None = None

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__!r} has no option {name!r}")

    @classmethod
    def from_fields(cls, llm: Any, table: tuple[Setting, ...] = SETTINGS) -> CallOptions:
        """The defaults of every call: the chat model's call settings, checked (ValueError names the bad one)."""
        values = {}
        for name, s in call_settings(table).items():
            value = getattr(llm, name)
            values[name] = s.check(value) if s.check is not None else value
        SamplingParams(*(values[name] for name in _SAMPLING))
        return cls(values=values, table=table)

    def merged(self, kwargs: Mapping[str, Any], stop: Any = None) -> CallOptions:
        """These options overridden by one call's ``stop`` and keyword options, checked.

        An option this model does not know is a ValueError naming it (see ``check_call_options``).
        """
        check_call_options(kwargs, self.table)
        settings = call_settings(self.table)
        values = dict(self.values)
        for name, value in kwargs.items():
            if name in settings:
                values[name] = settings[name].check(value) if settings[name].check is not None else value
        if stop is not None:  # LangChain's own stop argument (invoke(..., stop=[...]))
            values["stop"] = check_stop(stop)
        tools = tuple(kwargs.get("tools") or ())
        choice = normalize_tool_choice(kwargs.get("tool_choice"), [t["function"]["name"] for t in tools])
        options = replace(self, values=values, model=kwargs.get("model"), tools=tools, choice=choice,
                          response_format=check_response_format(kwargs.get("response_format")))
        options.sampling  # noqa: B018 (checks the combination)
        return options

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(*(self.values[name] for name in _SAMPLING))

    @property
    def stops(self) -> tuple[str, ...]:
        return tuple(self.values.get("stop") or ())

    @property
    def loop_chars(self) -> int | None:
        """The shortest repeated span that ends an answer as a loop; None: loop detection off."""
        return self.loop_min_chars if self.loop_detection else None

    def bias(self, vocab_size: int) -> tuple[tuple[int, float], ...]:
        """``logit_bias`` as (token id, bias) pairs, each id checked against the model's vocabulary."""
        if not self.logit_bias:
            return ()
        for token in self.logit_bias:
            if not 0 <= token < vocab_size:
                raise ValueError(f"logit_bias entry {token!r} needs a token id in [0, {vocab_size})")
        return tuple(self.logit_bias.items())
