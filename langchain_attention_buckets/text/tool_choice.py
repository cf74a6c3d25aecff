"""Tool choice: the forms a caller may write, in one normal form.

Owns ``ToolChoice`` (what ``bind_tools`` accepts), ``Choice`` (the normal form),
``normalize_tool_choice`` and the one rule for tool names (``check_tool_name``). Imports nothing from this package: rendering,
grammar selection and the call options all read a ``Choice``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# Tool names as MCP servers and real catalogs write them: letters, digits, '_', '-' and '.'
# (``orders.create``), 1-128 characters. OpenAI's API allows less (^[a-zA-Z0-9_-]{1,64}$).
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

ToolChoice = Literal["auto", "none", "any", "required"] | str | bool | dict | None


@dataclass(frozen=True)
class Choice:
    """The tool choice of one call: "auto", "none", "required" (some call) or "named" (the call ``name``)."""

    kind: Literal["auto", "none", "required", "named"]
    name: str | None = None


def check_tool_name(name: object) -> None:
    """Raise ValueError if ``name`` is not a tool name the package accepts (``TOOL_NAME``)."""
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise ValueError(
            f"tool name {name!r} is not allowed; use 1-128 letters, digits, '_', '-' or '.' "
            "(the pattern ^[A-Za-z0-9_.-]{1,128}$, as MCP tool names)"
        )


def normalize_tool_choice(tool_choice: ToolChoice, names: Sequence[str]) -> Choice:
    """The tool choice in one form; ValueError for values that are not allowed."""
    if tool_choice is None or tool_choice == "auto":
        return Choice("auto")
    if tool_choice == "none" or tool_choice is False:
        return Choice("none")
    if tool_choice is True or tool_choice in ("any", "required"):
        if not names:
            raise ValueError(f"tool_choice={tool_choice!r} needs at least one bound tool")
        return Choice("required")
    name = None
    if isinstance(tool_choice, str):
        name = tool_choice
    elif isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if not isinstance(name, str):
        raise ValueError(
            f"tool_choice={tool_choice!r} is not allowed; use None, 'auto', 'none', 'any', 'required', "
            "True, a tool name, or {'type': 'function', 'function': {'name': ...}}"
        )
    if name not in names:
        raise ValueError(f"tool_choice names {name!r}, which is not a bound tool; bound tools: {', '.join(names) or 'none'}")
    return Choice("named", name)
