"""Shared helpers: the tool marker, tool building, errors, time zones, fake randomness.

A catalog tool is a plain function marked with `@catalog_tool`. Its Google-style
docstring is the one source of truth: `build_tool` parses the `Args:` block into
the parameter descriptions of the schema and keeps the rest (summary, `Returns:`,
`Example:`) as the tool description, so the two never drift apart.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from langchain_core.tools import BaseTool, ToolException, tool

_MARK = "__catalog_tool__"


def catalog_tool(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a function as a catalog tool; the function itself is left unchanged."""
    setattr(fn, _MARK, True)
    return fn


def is_catalog_tool(obj: Any) -> bool:
    return callable(obj) and getattr(obj, _MARK, False)


def tool_description(fn: Callable[..., Any]) -> str:
    """The docstring without its `Args:` block, each block folded onto one line."""
    blocks = inspect.cleandoc(fn.__doc__ or "").split("\n\n")
    kept = [" ".join(line.strip() for line in b.splitlines()) for b in blocks if not b.startswith("Args:")]
    return "\n".join(b for b in kept if b)


def build_tool(fn: Callable[..., Any]) -> BaseTool:
    """A fresh StructuredTool for `fn`; a ToolException becomes a message to the model."""
    t = tool(fn, parse_docstring=True, error_on_invalid_docstring=True, description=tool_description(fn))
    t.handle_tool_error = True
    return t


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, with an error that says what went wrong."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if not available_timezones():
            raise ToolException(
                "no time zone database found on this system: install the 'tzdata' package "
                "(pip install tzdata)"
            ) from None
        raise ToolException(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'Asia/Tokyo'") from None


def fake_rng(*parts: Any) -> random.Random:
    """A random generator seeded by a hash of `parts`: same arguments, same fake output."""
    key = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).lower()
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return random.Random(seed)
