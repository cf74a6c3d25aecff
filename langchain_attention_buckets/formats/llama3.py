"""Llama 3.1 / 3.2 / 3.3: a bare JSON object per call, optionally after ``<|python_tag|>``.

    {"name": "get_weather", "parameters": {"city": "Paris"}}

Some checkpoints write ``arguments`` instead of ``parameters``; several calls are joined by
``;``; built-in tools are written ``<|python_tag|>brave_search.call(query="...")``, and code for
the code interpreter follows ``<|python_tag|>`` as it is (read as a call of ``python`` with
``{"code": ...}``, as llama.cpp does). Results go
back in the ``ipython`` role, and the official templates take one call per assistant turn.

Where a call is read: a JSON object whose head is ``{"name": "...", "parameters"|"arguments":``
(``"type": "function"`` may come first), anywhere in the text, and whatever follows
``<|python_tag|>``. Text that may still become such a head is held back while it streams.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import regex

from .base import Format, Piece, call, json_end, partial_marker, text

PYTHON_TAG = "<|python_tag|>"
EOM, EOT = "<|eom_id|>", "<|eot_id|>"

# A call's head; ``partial=True`` matches tell text that may still become one.
_HEAD = regex.compile(
    r'\{\s*(?:"type"\s*:\s*"function"\s*,\s*)?"name"\s*:\s*"(?:[^"\\]|\\.)*"\s*,\s*"(?:parameters|arguments)"\s*:'
)
_CUT_HEAD = regex.compile(r'\{\s*(?:"type"\s*:\s*"function"\s*,\s*)?"name"\s*:')  # a head cut by the end
_SEPARATOR = regex.compile(r"\s*;?\s*")


class Llama3(Format):
    name = "llama3"
    template_markers = ("<|python_tag|>", "ipython")
    openers = ('{"name"', PYTHON_TAG)
    markers = (PYTHON_TAG, EOM, EOT)
    end_markers = (EOM, EOT, "<|end_of_text|>")

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        return json.dumps({"name": name, "parameters": arguments}, ensure_ascii=False)

    def format_calls(self, calls: Sequence[dict]) -> str:
        return "; ".join(self.format_call(c["name"], c["arguments"]) for c in calls)

    def chat_dicts(self, messages: Sequence[dict]) -> list[dict]:
        """One call per assistant turn (the templates refuse more), results in the ``ipython`` role."""
        out: list[dict] = []
        for m in super().chat_dicts(messages):
            if m.get("tool_calls") and len(m["tool_calls"]) > 1:
                first, *rest = m["tool_calls"]
                out.append({**m, "tool_calls": [first]})
                out.extend({"role": "assistant", "content": "", "tool_calls": [c]} for c in rest)
            elif m.get("role") == "tool":
                out.append({**m, "role": "ipython"})
            else:
                out.append(m)
        return out

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        pieces: list[Piece] = []
        pos = 0  # start of the text not yet read
        scan = 0
        while True:
            at, kind = _next_call(s, scan, final)
            if kind == "hold":  # a head or a tag may be arriving: text up to there
                pieces.append(text(s[pos:at]))
                return pieces
            if kind is None:
                pieces.append(text(s[pos:]))
                return pieces
            pieces.append(text(s[pos:at]))
            pos = _calls(s, at, final, pieces)
            if pos is None:  # the calls run to the end (or are held)
                return pieces
            scan = pos


def _next_call(s: str, start: int, final: bool) -> tuple[int, str | None]:
    """Where the next call starts ("call"), or text may still become one ("hold"), or (len, None)."""
    i = start
    while i < len(s):
        tag = s.find(PYTHON_TAG, i)
        brace = s.find("{", i)
        if tag < 0 and brace < 0:
            break
        if brace < 0 or 0 <= tag < brace:
            return tag, "call"
        m = _HEAD.match(s, brace, partial=True)
        if m and not m.partial:
            return brace, "call"
        if m and m.partial:  # runs to the end of the text
            if not final:
                return brace, "hold"
            if _CUT_HEAD.match(s, brace):
                return brace, "call"  # a call cut inside its head
        i = brace + 1
    if not final:
        keep = partial_marker(s[start:], PYTHON_TAG)
        if keep:
            return len(s) - keep, "hold"
    return len(s), None


def _calls(s: str, at: int, final: bool, pieces: list[Piece]) -> int | None:
    """Calls from ``at`` (a tag or a head) on, joined by ``;``; returns where text resumes, or None
    where the calls run to the end of the text (or what follows them is not known yet)."""
    pos = at
    while True:
        if s.startswith(PYTHON_TAG, pos):
            pos += len(PYTHON_TAG)
            pos += len(s[pos:]) - len(s[pos:].lstrip())
            if pos == len(s) and not final:
                return None  # what follows the tag is not known yet
            if not s.startswith("{", pos):  # a built-in tool (name.call(...)) or code, to the end of the turn
                stop = min([i for i in (s.find(EOM, pos), s.find(EOT, pos)) if i >= 0], default=-1)
                if stop < 0 and not final:
                    pieces.append(call(s[pos:], closed=False, safe=0, form="python"))
                    return None
                stop = len(s) if stop < 0 else stop
                pieces.append(call(s[pos:stop], form="python"))
                return stop
        end = json_end(s, pos) if s.startswith("{", pos) else None
        if end is None:
            pieces.append(call(s[pos:], closed=False))
            return None
        pieces.append(call(s[pos:end]))
        nxt = _SEPARATOR.match(s, end).end()
        if s.startswith("{", nxt) or s.startswith(PYTHON_TAG, nxt):
            pos = nxt  # the next call
            continue
        if nxt == len(s) or not final and partial_marker(s[nxt:], PYTHON_TAG) == len(s) - nxt:
            return None if not final else len(s)  # a separator at the end: dropped
        return nxt if ";" in s[end:nxt] else end


LLAMA3 = Llama3()
