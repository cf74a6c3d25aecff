"""Llama 3.1 / 3.2 / 3.3: a bare JSON object per call, optionally after ``<|python_tag|>``.

    {"name": "get_weather", "parameters": {"city": "Paris"}}

Some checkpoints write ``arguments`` instead of ``parameters``; several calls are joined by
``;``; built-in tools are written ``<|python_tag|>brave_search.call(query="...")``, and code for
the code interpreter follows ``<|python_tag|>`` as it is (read as a call of ``python`` with
``{"code": ...}``, as llama.cpp does). Results go
back in the ``ipython`` role, and the official templates take one call per assistant turn.

Where a call is read: a JSON object whose head is ``{"name": "...", "parameters"|"arguments":``
(``"type": "function"`` may come first) or ``{"parameters"|"arguments":`` (the name after them),
anywhere in the text (also inside a Markdown code
block, whose fences are dropped, or a JSON list, whose brackets are); whatever follows ``<|python_tag|>``; and Meta's documented
alternative, ``<function=NAME>{...}</function>``. Text that may still
become such a head is held back while it streams.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import regex

from .base import Format, Piece, call, find_outside_strings, json_end, partial_marker, text
from .hermes import FUNCTION_CLOSE, FUNCTION_TAG

PYTHON_TAG = "<|python_tag|>"
EOM, EOT = "<|eom_id|>", "<|eot_id|>"

# A call's head; ``partial=True`` matches tell text that may still become one.
_HEAD_PATTERN = (  # the name, then the arguments; or the arguments first (the name after them)
    r'\{\s*(?:(?:"type"\s*:\s*"function"\s*,\s*)?"name"\s*:\s*"(?:[^"\\]|\\.)*"\s*,\s*"(?:parameters|arguments)"\s*:'
    r'|"(?:parameters|arguments)"\s*:)'
)
_CUT_PATTERN = r'\{\s*(?:(?:"type"\s*:\s*"function"\s*,\s*)?"name"|"(?:parameters|arguments)")\s*:'  # cut by the end
_HEAD = regex.compile(_HEAD_PATTERN)
_CUT_HEAD = regex.compile(_CUT_PATTERN)
_FENCED_HEAD = regex.compile(r"```(?:json)?\s*" + _HEAD_PATTERN)  # a call in a Markdown code block
_FENCED_CUT = regex.compile(r"```(?:json)?\s*" + _CUT_PATTERN)
_LISTED_HEAD = regex.compile(r"\[\s*" + _HEAD_PATTERN)  # calls written as a JSON list (Llama 3.2 does)
_LISTED_CUT = regex.compile(r"\[\s*" + _CUT_PATTERN)
_SEPARATOR = regex.compile(r"\s*;?\s*")
_LIST_SEPARATOR = regex.compile(r"\s*[;,]?\s*")
_rejected: dict[tuple[int, str], tuple[str, int]] = {}  # (start, its text) -> (the text, where a call may start)


class Llama3(Format):
    name = "llama3"
    template_markers = ("<|python_tag|>", "ipython")
    openers = ('{"name"', PYTHON_TAG)
    markers = (PYTHON_TAG, EOM, EOT, FUNCTION_CLOSE)
    end_markers = (EOM, EOT, "<|end_of_text|>")

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        return json.dumps({"name": name, "parameters": arguments}, ensure_ascii=False)

    def format_calls(self, calls: Sequence[dict]) -> str:
        return "; ".join(self.format_call(c["name"], c["arguments"]) for c in calls)

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        pieces: list[Piece] = []
        pos = 0  # start of the text not yet read
        while True:
            at, begin, mode = _next_call(s, pos, final)
            pieces.append(text(s[pos:at]))
            if begin is None:  # no call, or one may be arriving at ``at``: text up to there
                return pieces
            if mode == "function":
                pos = _function_block(s, begin, final, pieces)
            else:
                pos = _calls(s, begin, final, pieces, mode)
            if pos is None:  # the calls run to the end (or what follows is not known yet)
                return pieces


def _next_call(s: str, start: int, final: bool) -> tuple[int, int | None, str]:
    """(where the text before the next call ends, where the call starts, how it is written:
    "json", "fenced" (in a code block) or "function" (``<function=NAME>``)); the start is None
    where no call follows (the text then ends at ``at``: the end, or text that may still become
    a call, held back)."""
    i = start
    key = (start, s[start : start + 32])
    seen = _rejected.get(key)  # a stream asks again with more text: skip what was ruled out in it
    if seen is not None and s.startswith(seen[0], start):
        i = seen[1]
    while i < len(s):
        found = [(s.find(PYTHON_TAG, i), "tag"), (s.find("{", i), "{"), (s.find("```", i), "`"),
                 (s.find("<function", i), "<"), (s.find("[", i), "[")]
        found = [(p, kind) for p, kind in found if p >= 0]
        if not found:
            break
        at, kind = min(found)
        if kind == "tag":
            return at, at, "json"
        if kind == "<":
            m = FUNCTION_TAG.match(s, at, partial=True)
            if m and not m.partial:
                return at, at, "function"
        else:
            head, cut, mode = {"{": (_HEAD, _CUT_HEAD, "json"), "`": (_FENCED_HEAD, _FENCED_CUT, "fenced"),
                               "[": (_LISTED_HEAD, _LISTED_CUT, "listed")}[kind]
            m = head.match(s, at, partial=True)
            if m and (not m.partial or final and cut.match(s, at)):  # a head (or, at the end, a cut one)
                return at, s.index("{", at), mode
        if m and not final:  # may still become a head
            return at, None, "json"
        i = at + 1
        if m is None and not final:  # not a head, whatever follows (it failed inside the text): remember
            if len(_rejected) > 64:
                _rejected.clear()
            _rejected[key] = (s[start:], i)
    if not final:
        keep = partial_marker(s[start:], (PYTHON_TAG, "```", "<function"))
        return len(s) - keep, None, "json"
    return len(s), None, "json"


def _function_block(s: str, at: int, final: bool, pieces: list[Piece]) -> int | None:
    """A ``<function=NAME>{...}</function>`` call (Llama 3.1's documented alternative form) at
    ``at``; returns where text resumes, or None (the block runs to the end)."""
    tag = FUNCTION_TAG.match(s, at)
    name, begin = tag.group(1) or tag.group(2), tag.end()
    end = find_outside_strings(s, FUNCTION_CLOSE, begin)
    if end < 0 and final:
        end = s.find(FUNCTION_CLOSE, begin)
    if end >= 0:
        pieces.append(call(s[begin:end], name=name, named=True))
        return end + len(FUNCTION_CLOSE)
    body = s[begin:]
    safe = len(body) - partial_marker(body, FUNCTION_CLOSE)
    inside = body.find(FUNCTION_CLOSE)
    if inside >= 0:
        safe = min(safe, inside)
    pieces.append(call(body, closed=False, safe=None if final else safe, name=name, named=True))
    return None


def _calls(s: str, at: int, final: bool, pieces: list[Piece], mode: str = "json") -> int | None:
    """Calls from ``at`` (a tag or a head) on, joined by ``;`` (by ``,`` in a JSON list), the
    code block's or the list's end dropped; returns where text resumes, or None where the calls
    run to the end of the text (or what follows them is not known yet)."""
    closer = {"fenced": "```", "listed": "]"}.get(mode)
    separator = _LIST_SEPARATOR if mode == "listed" else _SEPARATOR
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
                if stop < 0:  # no end of turn: whole only if the answer was not cut
                    pieces.append(call(s[pos:], closed=False, form="python"))
                    return None
                pieces.append(call(s[pos:stop], form="python"))
                return stop
        end = json_end(s, pos) if s.startswith("{", pos) else None
        if end is None:
            pieces.append(call(s[pos:], closed=False))
            return None
        pieces.append(call(s[pos:end]))
        nxt = separator.match(s, end).end()
        if s.startswith("{", nxt) or s.startswith(PYTHON_TAG, nxt):
            pos = nxt  # the next call
            continue
        if closer and s.startswith(closer, nxt):  # the end of the code block or the list
            return nxt + len(closer)
        tail = s[nxt:]
        if nxt == len(s) or not final and partial_marker(tail, (PYTHON_TAG, "```")) == len(tail):
            return None if not final else len(s)  # a separator at the end: dropped
        return nxt if ";" in s[end:nxt] or "," in s[end:nxt] else end


LLAMA3 = Llama3()
