"""Grammar building: OpenAI-format tools and JSON schemas -> what xgrammar compiles.

Owns the shape of constrained output: the tool-call structural tag for the tool-choice
modes "forced", "auto" and "none" (`tool_calls_format`), calls-or-answer for tools
plus a response schema (`tool_calls_or_json_format`), and the compact JSON style shared
with JSON-schema and JSON-mode grammars (`JSON_STYLE`). Tools are validated here
(`select_tools`); schemas by `schema`.

Each model family writes calls in its own syntax (`CallSyntax`, from a format's name with
`call_syntax`): Hermes / Qwen ``<tool_call>{"name": N, "arguments": A}</tool_call>`` blocks
(the package's own fallback too), Llama 3.x ``{"name": N, "parameters": A}`` objects joined by
``; `` (optionally after ``<|python_tag|>``), Mistral ``[TOOL_CALLS][{"name": N, "arguments": A},
...]`` and Granite the same list after ``<|tool_call|>``. In "auto" the grammar is lazy: free
text that never holds an opener, and from an opener on the calls, constrained. Where the format
reasons (``<think>`` ... ``</think>``), the reasoning comes first, free: optional where the model
may open it, required where the prompt already opened it (thinking-only templates), absent where
the prompt closed it (thinking switched off).

May import `schema` and `tool_format`; xgrammar only lazily (inside `json_grammar`),
so tool validation (`check_unique_tool_names`, `select_tools`) works without it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..formats.granite import TOOL_CALL as GRANITE_CALL
from ..formats.hermes import CALL_SEPARATOR, TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from .schema import compile_error, prepare_schema

if TYPE_CHECKING:  # pragma: no cover
    import xgrammar

__all__ = [
    "HERMES",
    "JSON_STYLE",
    "CallSyntax",
    "call_syntax",
    "syntax_of",
    "answer_format",
    "ToolChoiceMode",
    "check_unique_tool_names",
    "json_grammar",
    "plan_tool_calls",
    "select_tools",
    "tool_calls_format",
    "tool_calls_or_json_format",
]

ToolChoiceMode = Literal["forced", "auto", "none"]
ToolSpec = tuple[str, dict]  # (name, prepared parameters schema): all that shapes a grammar

# Compact JSON on one line, as `tool_format.format_tool_call` writes it (json.dumps defaults).
_SEPARATORS = (", ", ": ")
JSON_STYLE: dict[str, Any] = {"any_whitespace": False, "separators": _SEPARATORS}


# ---------------------------------------------------------------------------
# Call syntax per family
# ---------------------------------------------------------------------------

CallStyle = Literal["hermes", "llama3", "mistral", "mistral-v11", "deepseek", "granite"]
ReasoningStart = Literal["none", "optional", "inside"]


@dataclass(frozen=True)
class CallSyntax:
    """How a family writes calls, as far as its grammars need it.

    Attributes:
        style: "hermes" (``<tool_call>`` blocks), "llama3" (bare JSON objects joined by ``; ``),
            "mistral" (one ``[TOOL_CALLS]`` list), "mistral-v11" (``[TOOL_CALLS]name[ARGS]{...}``
            per call), "deepseek" (DeepSeek's call tokens, arguments in a ```json fence) or "granite"
            (one ``<|tool_call|>`` list).
        openers: the strings that start calls: free text never holds them in "auto" and "none".
        reasoning: the reasoning delimiters (start, end), or None.
        reasoning_start: how the output starts: "inside" the reasoning (the prompt opened it),
            "optional" (the model may open it) or "none" (no reasoning: switched off or none).
    """

    style: CallStyle = "hermes"
    openers: tuple[str, ...] = (TOOL_CALL_OPEN,)
    reasoning: tuple[str, str] | None = None
    reasoning_start: ReasoningStart = "none"

    def for_prompt(self, prompt: str) -> CallSyntax:
        """This syntax with ``reasoning_start`` read from the end of the rendered prompt: a prompt
        that opened the reasoning (``<think>\\n``) starts the output inside it; one that closed it
        (thinking switched off) starts it without; otherwise the model may reason first."""
        if not self.reasoning:
            return self
        start, end = self.reasoning
        opened, closed = prompt.rfind(start), prompt.rfind(end)
        tail = prompt[max(opened, closed) :].strip() if max(opened, closed) >= 0 else None
        if opened > closed and tail == start:
            mode: ReasoningStart = "inside"
        elif closed > opened and tail == end:
            mode = "none"
        else:
            mode = "optional"
        return CallSyntax(self.style, self.openers, self.reasoning, mode)

    @property
    def markers(self) -> tuple[str, ...]:
        """Every marker the output may hold (special tokens the grammar must allow)."""
        return tuple(dict.fromkeys((*self.openers, *(self.reasoning or ()), *_STYLE_MARKERS[self.style])))

    def key(self) -> dict:
        return {"style": self.style, "openers": list(self.openers), "reasoning": self.reasoning, "start": self.reasoning_start}


LLAMA_TAG = "<|python_tag|>"
MISTRAL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"
DS_CALLS_BEGIN, DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CALL_BEGIN, DS_CALL_END, DS_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
HERMES = CallSyntax()
"""The package's own format (and Hermes / Qwen2.5 models')."""
_STYLE_MARKERS: dict[str, tuple[str, ...]] = {
    "hermes": (TOOL_CALL_CLOSE,),
    "llama3": (LLAMA_TAG,),
    "mistral": (MISTRAL_CALLS,),
    "mistral-v11": (MISTRAL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID),
    "deepseek": (DS_CALLS_BEGIN, DS_CALLS_END, DS_CALL_BEGIN, DS_CALL_END, DS_SEP),
    "granite": (GRANITE_CALL,),
}
# The styles that write one JSON list of {"name", "arguments"} objects after a marker.
_LIST_MARKERS = {"mistral": MISTRAL_CALLS, "granite": GRANITE_CALL}
# The grammar style of each format (formats.names()); a new family names its style here.
_STYLES: dict[str, CallStyle] = {
    "hermes": "hermes",
    "qwen3": "hermes",
    "llama3": "llama3",
    "mistral": "mistral",
    "deepseek-r1": "deepseek",
    "granite": "granite",
}


def syntax_of(fmt: Any) -> CallSyntax:
    """The call syntax of a format object (``formats.get(name)``): its style, openers and reasoning.

    Raises:
        ValueError: a format with no grammar here (the message lists those there are).
    """
    if fmt.name not in _STYLES:
        raise ValueError(f"no call grammar for the format {fmt.name!r}; there are grammars for: {', '.join(_STYLES)}")
    style = _STYLES[fmt.name]
    if style == "mistral" and getattr(fmt, "style", "v3") == "v11":
        style = "mistral-v11"
    openers = tuple(fmt.openers) or HERMES.openers
    reasoning = tuple(fmt.reasoning) if fmt.reasoning else None
    return CallSyntax(style, openers, reasoning, "optional" if reasoning else "none")


def call_syntax(format_name: str, reasoning_format: str | None = None) -> CallSyntax:
    """The call syntax of the format called ``format_name`` (with ``reasoning_format``'s reasoning)."""
    from ..formats import get

    return syntax_of(get(format_name, reasoning_format))


# ---------------------------------------------------------------------------
# Tools: validate, select
# ---------------------------------------------------------------------------


def check_unique_tool_names(names: Sequence[str]) -> None:
    """Raise ValueError naming every tool name that appears more than once."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"tool names must be unique; repeated: {', '.join(dupes)}")


def select_tools(tools: list, allowed: list[str] | None) -> list[ToolSpec]:
    """Validated (name, parameters) of `tools`, keeping only the `allowed` names if given.

    Raises:
        ValueError: a malformed tool, a repeated name, an unknown `allowed` name, or a
            parameters schema the grammar cannot enforce.
    """
    specs = [_tool_name_and_parameters(t) for t in tools]
    names = [name for name, _ in specs]
    check_unique_tool_names(names)
    if allowed is None:
        return specs
    unknown = [n for n in allowed if n not in names]
    if unknown:
        raise ValueError(f"allowed names {unknown} are not among the tools {names}")
    return [(n, p) for n, p in specs if n in allowed]


def plan_tool_calls(
    tools: list, mode: ToolChoiceMode, allowed: list[str] | None, parallel: bool
) -> tuple[list[ToolSpec], ToolChoiceMode, bool]:
    """(specs, mode, parallel) for a turn with tools bound, with the mode checked.

    "auto" with no (allowed) tool is the same free-text grammar as "none", so it
    comes back as "none" (and one cache entry serves both).
    """
    if mode not in ("forced", "auto", "none"):
        raise ValueError(f"mode must be 'forced', 'auto' or 'none', got {mode!r}")
    specs = [] if mode == "none" else select_tools(tools, allowed)
    if mode == "forced" and not specs:
        raise ValueError("mode 'forced' needs at least one (allowed) tool")
    if not specs:
        return [], "none", True
    return specs, mode, bool(parallel)


def _tool_name_and_parameters(tool: Any) -> ToolSpec:
    if not isinstance(tool, dict):
        raise ValueError(f"a tool must be an OpenAI-format dict, got {type(tool).__name__}")
    if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
        raise ValueError(f"a tool must look like {{'type': 'function', 'function': {{...}}}}, got keys {sorted(tool)}")
    fn = tool["function"]
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a tool's function needs a non-empty string name, got {name!r}")
    owner = f"tool '{name}'"
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    params = prepare_schema(params, owner)
    if not any(k in params for k in ("type", "$ref", "anyOf", "oneOf", "allOf")):
        params = {"type": "object", **params}
    if params.get("type", "object") != "object":
        raise ValueError(f"{owner}: parameters must be an object schema (type 'object'), got {params['type']!r}")
    return name, params


# ---------------------------------------------------------------------------
# Structural tags (xgrammar's format dicts)
# ---------------------------------------------------------------------------


def tool_calls_format(specs: list[ToolSpec], mode: ToolChoiceMode, parallel: bool, syntax: CallSyntax = HERMES) -> dict:
    """The tool-call format for `mode`, in `syntax`.

    "forced": calls only; "auto": free text, then optionally calls; "none": free text
    that never contains a call opener. Reasoning, where the syntax has it, comes first.
    """
    free_text = {"type": "any_text", "excludes": list(syntax.openers)}
    if mode == "none":
        return _reasoned(syntax, free_text)
    calls = _calls_in(syntax, specs, parallel)
    if mode == "forced":
        return _reasoned(syntax, calls)
    return _reasoned(syntax, _seq(free_text, {"type": "optional", "content": calls}))


def tool_calls_or_json_format(
    specs: list[ToolSpec], schema: dict, owner: str, parallel: bool, syntax: CallSyntax = HERMES
) -> dict:
    """Either calls (as in "forced") or one JSON value valid under `schema`."""
    answer = {"type": "grammar", "grammar": _ebnf(json_grammar(schema, owner))}
    return _reasoned(syntax, {"type": "or", "elements": [_calls_in(syntax, specs, parallel), answer]})


def answer_format(grammar: xgrammar.Grammar, syntax: CallSyntax) -> dict:
    """A JSON answer (structured output) after the syntax's reasoning."""
    return _reasoned(syntax, {"type": "grammar", "grammar": _ebnf(grammar)})


def _reasoned(syntax: CallSyntax, body: dict) -> dict:
    """``body`` after the reasoning: required where the prompt opened it, optional where the
    model may open it; a blank line or newline may follow its end."""
    if syntax.reasoning is None or syntax.reasoning_start == "none":
        return body
    start, end = syntax.reasoning
    gap = {"type": "optional", "content": {"type": "or", "elements": [_const("\n\n"), _const("\n")]}}
    begin = "" if syntax.reasoning_start == "inside" else start
    thought = _seq({"type": "tag", "begin": begin, "content": {"type": "any_text", "excludes": [end]}, "end": end}, gap)
    if syntax.reasoning_start == "optional":
        thought = {"type": "optional", "content": thought}
    return _seq(thought, body)


def _calls_in(syntax: CallSyntax, specs: list[ToolSpec], parallel: bool) -> dict:
    if syntax.style == "hermes":
        return _calls(_call_tag(specs), parallel)
    if syntax.style == "llama3":
        call = _json_call(specs, "parameters")
        calls = _seq(call, {"type": "star", "content": _seq(_const("; "), call)}) if parallel else call
        if LLAMA_TAG in syntax.openers:
            return _seq({"type": "optional", "content": _const(LLAMA_TAG)}, calls)
        return calls
    if syntax.style in _LIST_MARKERS:  # Mistral v3, Granite: MARKER[{"name": N, "arguments": A}, ...]
        call = _json_call(specs, "arguments")
        calls = _seq(call, {"type": "star", "content": _seq(_const(", "), call)}) if parallel else call
        return _seq(_const(_LIST_MARKERS[syntax.style] + "["), calls, _const("]"))
    if syntax.style == "mistral-v11":  # [TOOL_CALLS]N, an optional [CALL_ID] of 9 alphanumerics, [ARGS]A
        call_id = {"type": "optional", "content": _seq(_const(MISTRAL_CALL_ID), {"type": "regex", "pattern": "[A-Za-z0-9]{9}"})}
        call = _named_call(specs, lambda name: MISTRAL_CALLS + name, "", between=[call_id, _const(MISTRAL_ARGS)])
        return _seq(call, {"type": "star", "content": call}) if parallel else call
    if syntax.style == "deepseek":
        call = _named_call(specs, lambda name: f"{DS_CALL_BEGIN}function{DS_SEP}{name}\n```json\n", f"\n```{DS_CALL_END}")
        calls = _seq(call, {"type": "star", "content": _seq(_const("\n"), call)}) if parallel else call
        return _seq(_const(DS_CALLS_BEGIN), calls, _const(DS_CALLS_END))
    raise ValueError(f"unknown call style {syntax.style!r}")


def _named_call(specs: list[ToolSpec], head, tail: str, between: list[dict] = ()) -> dict:
    """``head(N) [between] A tail``: the name outside the arguments object, N among specs, A per N's schema."""
    bodies = []
    for name, params in specs:
        args = {"type": "grammar", "grammar": _ebnf(json_grammar(params, f"tool '{name}'"))}
        body = [_const(head(name)), *between, args]
        bodies.append(_seq(*body, *([_const(tail)] if tail else [])))
    return bodies[0] if len(bodies) == 1 else {"type": "or", "elements": bodies}


def _json_call(specs: list[ToolSpec], key: str) -> dict:
    """``{"name": N, "<key>": A}``, N among specs, A per N's schema."""
    bodies = []
    for name, params in specs:
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + f', "{key}": '
        grammar = json_grammar(params, f"tool '{name}'")
        bodies.append(_seq(_const(head), {"type": "grammar", "grammar": _ebnf(grammar)}, _const("}")))
    return bodies[0] if len(bodies) == 1 else {"type": "or", "elements": bodies}


def json_grammar(schema: dict, owner: str) -> xgrammar.Grammar:
    """Compact, strict JSON for `schema`; xgrammar's errors become ValueErrors naming `owner`."""
    import xgrammar

    try:
        return xgrammar.Grammar.from_json_schema(schema, **JSON_STYLE, strict_mode=True)
    except (RuntimeError, ValueError) as err:
        raise compile_error(owner, err) from None


def _call_tag(specs: list[ToolSpec]) -> dict:
    """`<tool_call>{"name": N, "arguments": A}</tool_call>`, N among specs, A per N's schema;
    a single optional "\\n" after the open marker and before the close marker."""
    bodies = []
    for name, params in specs:
        grammar = json_grammar(params, f"tool '{name}'")
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '
        bodies.append(_seq(_const(head), {"type": "grammar", "grammar": _ebnf(grammar)}, _const("}")))
    newline = {"type": "optional", "content": _const("\n")}
    body = bodies[0] if len(bodies) == 1 else {"type": "or", "elements": bodies}
    return {"type": "tag", "begin": TOOL_CALL_OPEN, "content": _seq(newline, body, newline), "end": TOOL_CALL_CLOSE}


# xgrammar 0.2.8 prints U+0080..U+00FF as "\xHH", but its EBNF parser reads "\x" greedily:
# "n\xe9e" (née) comes back as "n\u0e9e". Re-spell them as fixed-width "\u00HH" so the
# printed grammar parses back to itself. Escaped backslashes match first and stay as is.
_LATIN1_ESCAPE = re.compile(r"(\\\\)|\\x([0-9a-fA-F]{2})")


def _ebnf(grammar: xgrammar.Grammar) -> str:
    """The grammar as EBNF text that parses back to the same grammar."""
    return _LATIN1_ESCAPE.sub(lambda m: m.group(1) or "\\u00" + m.group(2), str(grammar))


def _const(text: str) -> dict:
    return {"type": "const_string", "value": text}


def _seq(*elements: dict) -> dict:
    return {"type": "sequence", "elements": list(elements)}


def _calls(call: dict, parallel: bool) -> dict:
    """One call, or calls separated by CALL_SEPARATOR."""
    if not parallel:
        return call
    return _seq(call, {"type": "star", "content": _seq(_const(CALL_SEPARATOR), call)})
