"""Hermes (NousResearch Hermes 2 Pro / 3, Qwen2.5): one ``<tool_call>`` block per call.

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Several calls follow one another; ``<function=NAME>{...}</function>`` blocks are read as calls
too. This is also the package's own fallback format, written into
the system turn where a chat template renders no tools (the embedded model): the same markers
serve both, so one parser and one grammar serve both. Results go back in ``tool`` turns, which
Hermes templates wrap in ``<tool_response>``.
"""

from __future__ import annotations

import json
from typing import Any

import regex

from .base import Format, Piece, call, find_outside_strings, partial_marker, split_objects, text

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
CALL_SEPARATOR = "\n"


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The text of one call, as the model is asked to write it."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}{body}{TOOL_CALL_CLOSE}"


FUNCTION_CLOSE = "</function>"
# ``<function=NAME>{...}</function>`` or ``<function name="NAME">{...}</function>``: the form some
# Hermes and Qwen checkpoints (and Llama 3.1's documented alternative) write; llama.cpp reads it too.
FUNCTION_TAG = regex.compile(r'<function(?:=([^>\s"]+)| name="([^"]+)")>')


def split_tagged(s: str, final: bool, open_: str, close: str, functions: bool = True) -> list[Piece]:
    """Text and ``open_ {...} close`` call blocks (and, with ``functions``, ``<function=NAME>``
    blocks). A closing marker inside a JSON string does not end a call; at the end of the text, a
    call that never closed outside a string ends at its first closing marker."""
    pieces: list[Piece] = []
    pos = 0
    while True:
        at = s.find(open_, pos)
        tag = FUNCTION_TAG.search(s, pos, at if at >= 0 else len(s)) if functions else None
        if at < 0 and tag is None:
            rest = s[pos:]
            pieces.append(text(rest if final else rest[: len(rest) - _held(rest, open_, functions)]))
            return pieces
        if tag is not None:  # a function tag comes first
            at, begin, close_, name = tag.start(), tag.end(), FUNCTION_CLOSE, tag.group(1) or tag.group(2)
        else:
            begin, close_, name = at + len(open_), close, None
        pieces.append(text(s[pos:at]))
        end = find_outside_strings(s, close_, begin)
        if end < 0 and final:
            end = s.find(close_, begin)
        if end >= 0:
            body = s[begin:end]
            pieces.extend(split_objects(body, closed=True) if name is None else [call(body, name=name, named=True)])
            pos = end + len(close_)
            continue
        body = s[begin:]
        safe = len(body) - partial_marker(body, close_)
        inside = body.find(close_)  # a marker inside a string: the call may end there after all
        if inside >= 0:
            safe = min(safe, inside)
        safe = None if final else safe
        if name is None:
            pieces.extend(split_objects(body, closed=False, safe=safe))
        else:
            pieces.append(call(body, closed=False, safe=safe, name=name, named=True))
        return pieces


def _held(rest: str, open_: str, functions: bool) -> int:
    """How much of the end of ``rest`` may still become an opener."""
    keep = partial_marker(rest, open_)
    if functions:
        lt = rest.rfind("<")
        m = FUNCTION_TAG.match(rest, lt, partial=True) if lt >= 0 else None
        if m is not None and m.partial:
            keep = max(keep, len(rest) - lt)
    return keep


class Hermes(Format):
    name = "hermes"
    template_markers = (TOOL_CALL_OPEN,)
    openers = (TOOL_CALL_OPEN,)
    markers = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE, FUNCTION_CLOSE)
    end_markers = ("<|im_end|>", "<|endoftext|>")  # ChatML's end of turn (Hermes, Qwen)
    closer = TOOL_CALL_CLOSE

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        return format_tool_call(name, arguments)

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        return split_tagged(s, final, TOOL_CALL_OPEN, TOOL_CALL_CLOSE)


HERMES = Hermes()
