"""An offline catalog of LangChain tools and labelled requests, for tool-retrieval experiments.

`build_catalog()` returns fresh `BaseTool` objects, one per `@catalog_tool` function,
in module order (MODULES) then definition order. Real tools compute their answers
offline (math, units, currency from the fixed `rates.json` snapshot, dates and time
zones, text, read-only `shop.db` lookups, city facts, an in-memory calendar and
inventory); tools in `fake_apis` stand in for network APIs with deterministic made-up
answers and say "(offline fake)". `load_requests()` reads `requests.jsonl`: natural
user requests, each labelled with the tool names it needs. `reset_state()` empties
the in-memory calendar and inventory.

Import it with `examples/` on sys.path: `from tool_catalog import build_catalog`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from langchain_core.tools import BaseTool

from . import (
    calendar_tools,
    currency,
    database,
    dates,
    fake_apis,
    geo,
    inventory,
    math_tools,
    text,
    units,
)
from ._common import build_tool, is_catalog_tool

CATALOG_DIR = Path(__file__).resolve().parent
MODULES: tuple[ModuleType, ...] = (
    math_tools, units, currency, dates, geo, text, database, calendar_tools, inventory, fake_apis,
)

__all__ = ["CATALOG_DIR", "MODULES", "build_catalog", "load_requests", "reset_state", "tool_functions"]


def tool_functions(module: ModuleType) -> list[Callable]:
    """The catalog functions defined in `module`, in definition order."""
    return [f for f in vars(module).values() if is_catalog_tool(f) and f.__module__ == module.__name__]


def build_catalog() -> list[BaseTool]:
    """Fresh tool objects for the whole catalog, in a fixed order, with unique names."""
    tools = [build_tool(f) for m in MODULES for f in tool_functions(m)]
    names = [t.name for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RuntimeError(f"duplicate tool names in the catalog: {dupes}")
    return tools


def load_requests() -> list[dict]:
    """The labelled requests: [{"request": str, "tools": [tool names]}, ...] in file order."""
    lines = (CATALOG_DIR / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def reset_state() -> None:
    """Empty the in-memory calendar and reload the inventory from shop.db on next use."""
    calendar_tools.reset()
    inventory.reset()
