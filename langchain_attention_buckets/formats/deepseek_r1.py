"""DeepSeek-R1 and its distills: ``<think>`` reasoning, then DeepSeek's tool-call tokens.

    <think>
    ...
    </think>

    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
    ```json
    {"city": "Paris"}
    ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>

(DeepSeek-V3.1 writes ``<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜>``;
both are read.) The R1 templates (0528 and the updated distills) write ``<think>`` into the
generation prompt, so the output usually starts inside the reasoning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .base import THINK, Format, Piece, call, find_outside_strings, partial_marker, text

CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"
END = "<｜end▁of▁sentence｜>"


class DeepSeekR1(Format):
    name = "deepseek-r1"
    template_markers = (CALLS_BEGIN,)
    openers = (CALLS_BEGIN, CALL_BEGIN)
    markers = (CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP, *THINK)
    end_markers = (END, CALLS_END)
    reasoning = THINK
    closer = CALL_END

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        return f"{CALL_BEGIN}function{SEP}{name}\n```json\n{args}\n```{CALL_END}"

    def format_calls(self, calls: Sequence[dict]) -> str:
        body = "\n".join(self.format_call(c["name"], c["arguments"]) for c in calls)
        return f"{CALLS_BEGIN}{body}{CALLS_END}"

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        pieces: list[Piece] = []
        pos = 0
        while True:
            at = s.find(CALL_BEGIN, pos)
            if at < 0:
                rest = s[pos:].replace(CALLS_BEGIN, "")
                pieces.append(text(rest if final else rest[: len(rest) - partial_marker(rest, (CALLS_BEGIN, CALL_BEGIN))]))
                return pieces
            pieces.append(text(s[pos:at].replace(CALLS_BEGIN, "")))
            begin = at + len(CALL_BEGIN)
            end = find_outside_strings(s, CALL_END, begin)  # not a marker inside an argument string
            if end < 0 and final:
                end = s.find(CALL_END, begin)
            body = s[begin:] if end < 0 else s[begin:end]
            inside = body.find(CALL_END)
            piece = _named_call(body, closed=end >= 0, final=final)
            if end < 0 and not final and inside >= 0 and piece.safe is not None:  # may end there after all
                piece = replace(piece, safe=min(piece.safe, max(0, inside - (len(body) - len(piece.text)))))
            pieces.append(piece)
            if end < 0:
                return pieces
            pos = end + len(CALL_END)


def _named_call(body: str, closed: bool, final: bool) -> Piece:
    """``function<｜tool▁sep｜>NAME\\n```json\\n{...}\\n```` or ``NAME<｜tool▁sep｜>{...}``."""
    sep = body.find(SEP)
    if sep < 0:
        return call(body, closed, safe=0 if not final else None, named=True)
    kind, rest = body[:sep].strip(), body[sep + len(SEP) :]
    if kind == "function" or not kind:  # R1: the name on the line after the separator
        line = rest.find("\n")
        if line < 0 and not closed:
            return call(body, closed, safe=0 if not final else None, named=True)
        name, args = (rest, "") if line < 0 else (rest[:line], rest[line + 1 :])
    else:  # V3.1: the name before the separator
        name, args = kind, rest
    safe = None if final or closed else len(args) - partial_marker(args, CALL_END)
    return call(args, closed, safe=safe, name=name.strip() or None, named=True)


DEEPSEEK_R1 = DeepSeekR1()
