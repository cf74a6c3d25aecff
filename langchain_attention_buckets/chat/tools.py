"""Tools as ``bind_tools`` takes them: converted to OpenAI's format once, repeats dropped, checked.

What would fail at the first call fails at bind time: names (allowed characters, unique) and
schemas (the grammar's subset; with constrained decoding, compiled to a grammar too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

from ..text.tool_choice import check_tool_name

__all__ = ["check_tools", "format_tools"]

def format_tools(tools: Sequence[Any], strict: bool | None = None) -> list[dict]:
    """The tools in OpenAI's format, a repeat of the same tool dropped."""
    return _one_per_name([convert_to_openai_tool(t, strict=strict) for t in tools])


def check_tools(formatted: list[dict], constrained: bool) -> None:
    """ValueError naming a tool whose name or schema a call could not use."""
    from ..constrain.grammar import json_grammar, select_tools

    for tool in formatted:
        check_tool_name(tool["function"].get("name"))  # MCP's rule: letters, digits, '_', '-', '.'
    specs = select_tools(formatted, None)  # unique names; each schema checked, naming the tool
    if constrained:
        for name, params in specs:  # xgrammar's own parse of the schema (no tokenizer needed)
            json_grammar(params, f"tool '{name}'")


def _one_per_name(tools: list[dict]) -> list[dict]:
    """The tools with a repeat of the same tool dropped (a pydantic model and its JSON schema differ
    only in titles); two different tools with one name stay, for the unique-name check to refuse."""
    out, seen = [], {}
    for tool in tools:
        fn = tool.get("function") or {}
        given = {k: v for k, v in fn.items() if v not in ("", None)}  # no description == empty one
        key = json.dumps(_without_titles(given), sort_keys=True, default=str)
        if seen.get(fn.get("name")) == key:
            continue
        seen.setdefault(fn.get("name"), key)
        out.append(tool)
    return out


def _without_titles(node: Any) -> Any:
    """A schema without its "title" annotations (property names called "title" are kept)."""
    if isinstance(node, list):
        return [_without_titles(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _without_titles(v) for name, v in value.items()}
        elif key != "title":
            out[key] = _without_titles(value)
    return out
