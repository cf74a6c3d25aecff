"""Generated text -> text pieces, reasoning and tool calls, incrementally.

The parsing itself lives with the formats (``formats.base.FormatParser``, one split per family
in ``formats/``); this module keeps the names the chat model reads:

- ``ToolCallParser(schemas, format="hermes")``: ``.feed(text)`` and ``.finish(ended)``, each a
  list of events;
- the events ``TextPiece``, ``ReasoningPiece``, ``CallStart``, ``ArgsDelta``, ``ParsedCall``
  (see ``formats.base`` for what each carries and how argument text adds up);
- ``parse(text, schemas)``: the whole text at once; ``coerce``, ``validation_error``.

It never raises on model output: anything that does not parse becomes an invalid call carrying
the raw text, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..formats.base import (
    ArgsDelta,
    CallStart,
    Event,
    Format,
    FormatParser,
    ParsedCall,
    ReasoningPiece,
    TextPiece,
    coerce,
    validation_error,
)
from ..formats.registry import get

__all__ = [
    "ArgsDelta",
    "CallStart",
    "Event",
    "ParsedCall",
    "ReasoningPiece",
    "TextPiece",
    "ToolCallParser",
    "coerce",
    "parse",
    "validation_error",
]


class ToolCallParser(FormatParser):
    """Incremental parser for one generation.

    Args:
        schemas: the bound tools' parameter schemas by name; a call naming another tool is invalid.
        format: the tool-call format (a name of ``formats.names()`` or a ``Format``); "hermes",
            the package's own, by default.
        reasoning_opened: whether the prompt opened the reasoning (see ``formats.base.Format.split``).
    """

    def __init__(self, schemas: Mapping[str, dict], format: str | Format = "hermes", reasoning_opened: bool | None = None):
        super().__init__(get(format), schemas, reasoning_opened)


def parse(text: str, schemas: Mapping[str, dict], format: str | Format = "hermes") -> tuple[str, list[ParsedCall]]:
    """The whole text at once: (content, calls)."""
    parser = ToolCallParser(schemas, format)
    events = [*parser.feed(text), *parser.finish()]
    content = "".join(e.text for e in events if isinstance(e, TextPiece))
    return content, [e for e in events if isinstance(e, ParsedCall)]
