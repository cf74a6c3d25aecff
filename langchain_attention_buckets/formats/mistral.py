"""Mistral: ``[TOOL_CALLS]`` then the calls.

Tokenizer v3 (Mistral-7B-Instruct-v0.3, Mixtral 8x22B, Nemo): one JSON list,

    [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, {...}]

and the calls of earlier turns carry 9-character alphanumeric ids (``"id": "a1b2c3d4e"``) that
the tool results repeat as ``tool_call_id``. Tokenizer v11 and later (Mistral Small 3.2,
Magistral, Devstral): one ``[TOOL_CALLS]`` per call, the name, then the arguments,

    [TOOL_CALLS]get_weather{"city": "Paris"}
    [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}
    [TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}

All of these are read; a list at the very start without ``[TOOL_CALLS]`` (a detokenizer that
dropped the special token) too. Magistral reasons in ``[THINK]`` ... ``[/THINK]`` first
(``formats.for_template`` sets that reasoning where the template knows ``[THINK]``).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from typing import Any

from .base import THINK_TOKENS, Format, Piece, call, json_end, partial_marker, text

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
CALL_ID = "[CALL_ID]"
_ALPHANUMERIC = string.ascii_letters + string.digits
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
_BARE_LIST = re.compile(r'\s*\[\s*\{\s*"name"\s*:')
_SPACE = re.compile(r"\s*")


def mistral_id(seed: str) -> str:
    """A 9-character alphanumeric id derived from ``seed`` (Mistral's templates refuse others)."""
    if len(seed) == 9 and seed.isalnum():
        return seed
    n = int.from_bytes(hashlib.sha1(seed.encode("utf-8", "replace")).digest()[:8], "big")
    out = []
    for _ in range(9):
        n, r = divmod(n, len(_ALPHANUMERIC))
        out.append(_ALPHANUMERIC[r])
    return "".join(out)


class Mistral(Format):
    name = "mistral"
    template_markers = (TOOL_CALLS,)
    openers = (TOOL_CALLS,)
    markers = (TOOL_CALLS, ARGS, CALL_ID, "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]",
               *THINK_TOKENS)
    end_markers = ("</s>",)

    def __init__(self, style: str = "v3"):
        if style not in ("v3", "v11"):
            raise ValueError(f"style={style!r}; allowed: 'v3' (a JSON list) or 'v11' (name then arguments)")
        self.style = style

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        if self.style == "v11":
            return f"{TOOL_CALLS}{name}{ARGS}{args}"
        return f"{TOOL_CALLS}[{self._object(name, args, id)}]"

    def format_calls(self, calls: Sequence[dict]) -> str:
        if self.style == "v11":
            return "".join(self.format_call(c["name"], c["arguments"]) for c in calls)
        objects = ", ".join(
            self._object(c["name"], json.dumps(c["arguments"], ensure_ascii=False), c.get("id")) for c in calls
        )
        return f"{TOOL_CALLS}[{objects}]"

    @staticmethod
    def _object(name: str, args: str, id: str | None) -> str:
        head = f'{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {args}'
        return head + (f', "id": {json.dumps(mistral_id(id))}}}' if id else "}")

    def call_id(self, seed: str) -> str:
        return mistral_id(seed)

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        pieces: list[Piece] = []
        if _BARE_LIST.match(s):
            lead = len(s) - len(s.lstrip())
            pos = _list(s, lead, final, pieces)
        elif not final and _could_be_bare_list(s):
            return pieces
        else:
            pos = 0
        while pos is not None:
            at = s.find(TOOL_CALLS, pos)
            if at < 0:
                rest = s[pos:]
                pieces.append(text(rest if final else rest[: len(rest) - partial_marker(rest, TOOL_CALLS)]))
                return pieces
            pieces.append(text(s[pos:at]))
            pos = _after_marker(s, at + len(TOOL_CALLS), final, pieces)
        return pieces


def _could_be_bare_list(s: str) -> bool:
    """Whether the text so far may still become ``[{"name":`` at the start."""
    lead = _SPACE.match(s).end()
    if s[lead : lead + 1] != "[" or len(s) - lead > 40:
        return False
    t = re.sub(r"\s+", "", s[lead:])
    return '[{"name":'.startswith(t[:9])


def _after_marker(s: str, pos: int, final: bool, pieces: list[Piece]) -> int | None:
    """The call(s) after one ``[TOOL_CALLS]``; returns where text resumes, or None (the end)."""
    name = _NAME.match(s, pos)  # v11: the name right after the marker
    pos += len(s[pos:]) - len(s[pos:].lstrip())
    if pos == len(s):
        if final:
            pieces.append(call("", closed=False))
        return None
    if s[pos] == "[":
        return _list(s, pos, final, pieces)
    if s[pos] == "{":
        end = json_end(s, pos)
        pieces.append(call(s[pos:] if end is None else s[pos:end], closed=end is not None))
        return end
    if not name:  # not a call this format knows: the text up to the next marker, as an invalid call
        stop = s.find(TOOL_CALLS, pos)
        if stop < 0 and not final:
            pieces.append(call(s[pos:], closed=False, safe=0))
            return None
        pieces.append(call(s[pos:stop] if stop >= 0 else s[pos:]))
        return stop if stop >= 0 else None
    if name.end() == len(s) and not final:
        return None  # the name may go on
    call_id, at = None, name.end()
    if s.startswith(CALL_ID, at):
        m = re.compile(r"[A-Za-z0-9]*").match(s, at + len(CALL_ID))
        if m.end() == len(s) and not final:
            return None
        call_id, at = m.group(0) or None, m.end()
    if s.startswith(ARGS, at):
        at += len(ARGS)
    elif not final and partial_marker(s[at:], (ARGS, CALL_ID)) == len(s) - at and at < len(s):
        return None
    args_at = at + len(s[at:]) - len(s[at:].lstrip())
    if args_at == len(s) and not final:
        return None
    end = json_end(s, args_at) if s.startswith("{", args_at) else None
    if end is None and s.startswith("{", args_at):  # open arguments
        pieces.append(call(s[at:], closed=False, name=name.group(0), named=True, id=call_id))
        return None
    if end is None:  # no arguments object: an invalid call up to the next marker
        stop = s.find(TOOL_CALLS, at)
        pieces.append(call(s[at:stop] if stop >= 0 else s[at:], name=name.group(0), named=True, id=call_id))
        return stop if stop >= 0 else None
    pieces.append(call(s[at:end], name=name.group(0), named=True, id=call_id))
    return end


def _list(s: str, pos: int, final: bool, pieces: list[Piece]) -> int | None:
    """The calls of a JSON list opening at ``pos``; returns where text resumes, or None."""
    pos += 1
    while True:
        pos += len(s[pos:]) - len(s[pos:].lstrip(" \t\r\n,"))
        if pos == len(s):  # the list goes on, or was cut between calls: what was written stands
            return None
        if s[pos] == "]":
            return pos + 1
        if s[pos] != "{":  # not a list of call objects: the rest of the list as an invalid call
            stop = s.find("]", pos)
            if stop < 0 and not final:
                pieces.append(call(s[pos:], closed=False, safe=0))
                return None
            stop = len(s) if stop < 0 else stop
            pieces.append(call(s[pos:stop]))
            return min(stop + 1, len(s))
        end = json_end(s, pos)
        if end is None:
            pieces.append(call(s[pos:], closed=False))
            return None
        pieces.append(call(s[pos:end]))
        pos = end


MISTRAL = Mistral()
