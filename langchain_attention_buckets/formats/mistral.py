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

from .base import THINK_TOKENS, Format, Piece, call, json_calls_after, json_end, list_calls, partial_marker, split_marked

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
            pos = list_calls(s, lead, final, pieces)
        elif not final and _could_be_bare_list(s):
            return pieces
        else:
            pos = 0
        return split_marked(s, final, TOOL_CALLS, _after_marker, pos, pieces)


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
    rest = s[pos:].lstrip()
    if not rest or rest[0] in "[{" or not name:  # v3's list, one object, or no call this format knows
        return json_calls_after(s, pos, final, pieces, TOOL_CALLS)
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


MISTRAL = Mistral()
