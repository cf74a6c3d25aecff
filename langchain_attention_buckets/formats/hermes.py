"""Hermes (NousResearch Hermes 2 Pro / 3, Qwen2.5): one ``<tool_call>`` block per call.

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Several calls follow one another. This is also the package's own fallback format, written into
the system turn where a chat template renders no tools (the embedded model): the same markers
serve both, so one parser and one grammar serve both. Results go back in ``tool`` turns, which
Hermes templates wrap in ``<tool_response>``.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Format, Piece, find_outside_strings, partial_marker, split_objects, text

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
CALL_SEPARATOR = "\n"


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The text of one call, as the model is asked to write it."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}{body}{TOOL_CALL_CLOSE}"


def split_tagged(s: str, final: bool, open_: str, close: str) -> list[Piece]:
    """Text and ``open_ {...} close`` call blocks. A closing marker inside a JSON string does not
    end a call; at the end of the text, a call that never closed outside a string ends at its
    first closing marker."""
    pieces: list[Piece] = []
    pos = 0
    while True:
        at = s.find(open_, pos)
        if at < 0:
            rest = s[pos:]
            pieces.append(text(rest if final else rest[: len(rest) - partial_marker(rest, open_)]))
            return pieces
        pieces.append(text(s[pos:at]))
        begin = at + len(open_)
        end = find_outside_strings(s, close, begin)
        if end < 0 and final:
            end = s.find(close, begin)
        if end >= 0:
            pieces.extend(split_objects(s[begin:end], closed=True))
            pos = end + len(close)
            continue
        body = s[begin:]
        safe = len(body) - partial_marker(body, close)
        inside = body.find(close)  # a marker inside a string: the call may end there after all
        if inside >= 0:
            safe = min(safe, inside)
        pieces.extend(split_objects(body, closed=False, safe=None if final else safe))
        return pieces


class Hermes(Format):
    name = "hermes"
    template_markers = (TOOL_CALL_OPEN,)
    openers = (TOOL_CALL_OPEN,)
    markers = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)
    closer = TOOL_CALL_CLOSE

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        return format_tool_call(name, arguments)

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        return split_tagged(s, final, TOOL_CALL_OPEN, TOOL_CALL_CLOSE)


HERMES = Hermes()
