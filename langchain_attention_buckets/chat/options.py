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
from .errors import OptionError, kind, shown
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
MAX_STOP = 16
"""The most stop strings one call takes."""
SEED_RANGE = (-(2**63), 2**63 - 1)
"""Seeds are 64-bit signed integers (OpenAI's ``seed``; torch's generator takes them all)."""


def check_not_bool(name: str, value, text: bool = False) -> None:
    """bool is an int subclass: ``temperature=True`` is a bug, not 1.0; and unless ``text`` (a field
    that also takes names, as ``bases``), "10" is text, not a number."""
    if isinstance(value, bool):
        raise OptionError(f"{name}={value!r}: a boolean is not a number; give a number (or None for the default)", name)
    if isinstance(value, str) and not text:
        raise OptionError(f"{name}={shown(value)}: a string is not a number; give a number (or None for the default)", name)


def check_flag(name: str, value) -> bool:
    """``value`` if it is True or False; "yes", 1 or None are not booleans."""
    if not isinstance(value, bool):
        raise OptionError(f"{name}={shown(value)} must be True or False (a boolean), not {kind(value)}", name)
    return value


def check_seed(value) -> int | None:
    """``value`` if it is None or a 64-bit signed integer."""
    lo, hi = SEED_RANGE
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi):
        raise OptionError(f"seed={shown(value)} must be None or an integer from -2**63 to 2**63-1", "seed")
    return value


_TOOL_SHAPE = "a tool is {'type': 'function', 'function': {'name': ..., 'description': ..., 'parameters': {...}}}"
_FUNCTION_FIELDS = {"name": str, "description": str, "parameters": dict, "strict": bool}


def check_tools(tools) -> tuple[dict, ...]:
    """OpenAI-format tools checked for shape (names' characters and schemas are checked by
    ``bind_tools``); OptionError naming the field, e.g. ``tools[0].function.name``."""
    if tools is None:
        return ()
    if not isinstance(tools, (list, tuple)):
        raise OptionError(f"tools must be a list of tools, not {kind(tools)}; {_TOOL_SHAPE}", "tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise OptionError(f"{where} is {kind(tool)}; {_TOOL_SHAPE}", where)
        extra = sorted(set(tool) - {"type", "function"})
        if extra:
            raise OptionError(f"{where}.{extra[0]} is not a field of a tool; {_TOOL_SHAPE}", f"{where}.{extra[0]}")
        if tool.get("type") != "function":
            got = "is missing" if "type" not in tool else f"={shown(tool['type'])} is not allowed"
            raise OptionError(f"{where}.type {got}; only 'function' tools exist ({_TOOL_SHAPE})", f"{where}.type")
        fn = tool.get("function")
        if not isinstance(fn, dict):
            got = "is missing" if fn is None else f"is {kind(fn)}, not an object"
            raise OptionError(f"{where}.function {got}; {_TOOL_SHAPE}", f"{where}.function")
        for key, value in fn.items():
            want = _FUNCTION_FIELDS.get(key)
            if want is None:
                raise OptionError(f"{where}.function.{key} is not a field of a function; {_TOOL_SHAPE}",
                                  f"{where}.function.{key}")
            if not isinstance(value, want) and not (value is None and key != "name"):
                words = {str: "a string", dict: "an object (a JSON schema)", bool: "a boolean"}[want]
                raise OptionError(f"{where}.function.{key} must be {words}, not {kind(value)}", f"{where}.function.{key}")
        if "name" not in fn:
            raise OptionError(f"{where}.function.name is missing; {_TOOL_SHAPE}", f"{where}.function.name")
    return tuple(tools)


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
    check_seed(kwargs.get("seed"))
    for name in ("loop_detection", "parallel_tool_calls"):
        if kwargs.get(name) is not None:
            check_flag(name, kwargs[name])


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
        check_seed(llm.seed)
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
        tools = check_tools(kwargs.get("tools"))
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
            stop=self._stop(stop, kwargs),
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

    def _stop(self, stop, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """The call's stop strings: ``invoke(..., stop=...)``, else the ``stop`` option, else the field's."""
        for given in (stop, kwargs.get("stop")):
            if given is not None:
                checked = _check_stop(given)
                if checked:
                    return checked
        return self.stop

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
    return check_flag("loop_detection", value)


def _check_loop_min_chars(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"loop_min_chars={value!r} must be an integer >= 1 (characters)")
    return value


def _check_stop(stop) -> tuple[str, ...]:
    """Stop strings: one string or a list of 1 to ``MAX_STOP`` non-empty strings (None: none)."""
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if (not isinstance(stops, (list, tuple)) or len(stops) > MAX_STOP
            or not all(isinstance(s, str) and s for s in stops)):
        raise OptionError(
            f"stop={shown(stop)} is not allowed; give a string or a list of up to {MAX_STOP} non-empty strings", "stop"
        )
    return tuple(stops)
