"""Grammar building: OpenAI-format tools and JSON schemas -> what xgrammar compiles.

Owns the shape of constrained output: the tool-call structural tag for the tool-choice
modes "forced", "auto" and "none" (`tool_calls_format`), calls-or-answer for tools
plus a response schema (`tool_calls_or_json_format`), and the compact JSON style shared
with JSON-schema and JSON-mode grammars (`JSON_STYLE`). Tools are validated here
(`select_tools`); schemas by `schema`.

May import `schema` and `tool_format`; xgrammar only lazily (inside `json_grammar`),
so tool validation (`check_unique_tool_names`, `select_tools`) works without it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..formats.hermes import CALL_SEPARATOR, TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from .schema import compile_error, prepare_schema

if TYPE_CHECKING:  # pragma: no cover
    import xgrammar

__all__ = [
    "JSON_STYLE",
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


def tool_calls_format(specs: list[ToolSpec], mode: ToolChoiceMode, parallel: bool) -> dict:
    """The tool-call format for `mode`.

    "forced": calls only; "auto": free text, then optionally calls; "none": free text
    that never contains the call marker.
    """
    free_text = {"type": "any_text", "excludes": [TOOL_CALL_OPEN]}
    if mode == "none":
        return free_text
    calls = _calls(_call_tag(specs), parallel)
    if mode == "forced":
        return calls
    return _seq(free_text, {"type": "optional", "content": calls})


def tool_calls_or_json_format(specs: list[ToolSpec], schema: dict, owner: str, parallel: bool) -> dict:
    """Either calls (as in "forced") or one JSON value valid under `schema`."""
    answer = {"type": "grammar", "grammar": _ebnf(json_grammar(schema, owner))}
    return {"type": "or", "elements": [_calls(_call_tag(specs), parallel), answer]}


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
