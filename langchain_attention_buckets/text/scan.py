"""One JSON scanner, read a character (or byte) at a time: open strings and containers, array items.

Shared by the tool-call parser (``parse``: where a call's arguments end, whether a marker sits
inside a string, the text that makes a cut-off object certainly invalid) and the grammar's
steering (``constrain.steering``: which string or array is being written, for the repetition
rules). JSON's structural characters are ASCII, so bytes and characters read the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["JsonScanner"]

_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPEN = {0x7B: 0x7D, 0x5B: 0x5D}  # { -> }, [ -> ]
_CLOSE = {0x7D, 0x5D}


@dataclass
class Frame:
    """An open container."""

    kind: int  # ord("{") or ord("[")
    items: list[bytes] = field(default_factory=list)  # arrays: the text of each finished item
    item_start: int | None = None  # arrays: where the current item began
    closed_end: int = -1  # where the last string/container directly inside ended


class JsonScanner:
    """Incremental JSON scanner: inside a string or not, the open containers, array items.

    Lenient: text outside JSON (free text before a call) leaves it at the top level; a closing
    bracket that matches nothing sets ``broken`` and is otherwise ignored.

    Args:
        text: read at once (str or bytes).
        reset_at: when this marker (or one of these) has just been read outside a string, start
            afresh (a call's body starts there; free text before it may hold stray quotes or brackets).
        reset_after: markers after which to start afresh even inside a string (the reasoning's
            end: free reasoning text need not pair its quotes).
    """

    def __init__(
        self, text: str | bytes = b"", *, reset_at: bytes | tuple[bytes, ...] | None = None, reset_after: tuple[bytes, ...] = ()
    ) -> None:
        self.reset_at = (reset_at,) if isinstance(reset_at, bytes) else tuple(reset_at or ())
        self.reset_after = reset_after
        self.reset()
        if text:
            self.feed(text)

    def reset(self) -> None:
        self.buf = bytearray()  # what was read (a non-ASCII character as one placeholder byte)
        self.in_string = self.escape = self.broken = False
        self.string_start = -1
        self.stack: list[Frame] = []

    @property
    def escaped(self) -> bool:
        return self.escape

    def feed(self, data: str | bytes) -> None:
        for c in data.encode() if isinstance(data, str) else data:
            self._read(c)
        if not self.in_string and any(self.buf.endswith(m) for m in self.reset_at):
            self.reset()
        elif any(self.buf.endswith(m) for m in self.reset_after):
            self.reset()

    def read(self, ch: str) -> None:
        """Read one character."""
        self._read(ord(ch) if ord(ch) < 128 else 0x61)  # non-ASCII: never structural

    def _read(self, b: int) -> None:
        pos = len(self.buf)
        self.buf.append(b)
        if self.in_string:
            if self.escape:
                self.escape = False
            elif b == _BACKSLASH:
                self.escape = True
            elif b == _QUOTE:
                self.in_string = False
                self._closed(pos + 1)
            return
        if b == _QUOTE:
            self._item_begins(pos)
            self.in_string, self.string_start = True, pos
        elif b in _OPEN:
            self._item_begins(pos)
            self.stack.append(Frame(b))
        elif b in _CLOSE:
            if self.stack and _OPEN[self.stack[-1].kind] == b:
                self._item_ends(self.stack.pop(), pos)
                self._closed(pos + 1)
            else:
                self.broken = True
        elif b == 0x2C:  # ,
            if self.stack:
                self._item_ends(self.stack[-1], pos)
        elif b not in b" \n\t\r:":
            self._item_begins(pos)

    def _item_begins(self, pos: int) -> None:
        if self.stack and self.stack[-1].kind == 0x5B and self.stack[-1].item_start is None:
            self.stack[-1].item_start = pos

    def _item_ends(self, frame: Frame, pos: int) -> None:
        if frame.kind == 0x5B and frame.item_start is not None:
            frame.items.append(bytes(self.buf[frame.item_start : pos]).strip())
            frame.item_start = None

    def _closed(self, end: int) -> None:
        if self.stack:
            self.stack[-1].closed_end = end

    # ---- what the parser reads ----

    def spoiler(self) -> str:
        """Text that, appended, makes what was read certainly not a JSON object, even to
        langchain-core's ``parse_partial_json`` (which closes open strings and brackets, but
        gives up on an unmatched closing bracket outside strings)."""
        close_string = (("\\" if self.escape else "") + '"') if self.in_string else ""
        return close_string + ("]" if self.stack and self.stack[-1].kind == 0x7B else "}")

    # ---- what the repetition rules read ----

    def string_text(self) -> bytes | None:
        """The text of the string being written (after its opening quote), or None."""
        return bytes(self.buf[self.string_start + 1 :]) if self.in_string else None

    def finished_item(self) -> tuple[list[bytes], bytes] | None:
        """(earlier items, the item just closed) when an array item ended with a closing
        quote or bracket and nothing but whitespace since; else None."""
        if self.in_string or not self.stack or self.stack[-1].kind != 0x5B:
            return None
        top = self.stack[-1]
        if top.item_start is None or top.closed_end != len(self.buf.rstrip()):
            return None
        return top.items, bytes(self.buf[top.item_start :]).strip()

    def open_item(self) -> tuple[list[bytes], bytes] | None:
        """(earlier items, the text so far) of the innermost array's unfinished item."""
        for frame in reversed(self.stack):
            if frame.kind == 0x5B:
                if frame.item_start is None:
                    return None
                return frame.items, bytes(self.buf[frame.item_start :])
        return None
